"""A scikit-learn search of a fastmlp pipeline runs on a ``dask.distributed`` cluster through
joblib's Dask backend and finds what the same search finds in one process.

One local cluster (2 worker processes x 1 thread, localhost only) serves every test in the
module. Skips when ``distributed`` or scikit-learn is not installed.
"""

import logging
import re
import sys

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
pytest.importorskip("sklearn")

import joblib  # noqa: E402
from sklearn.datasets import load_breast_cancer  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastmlp  # noqa: E402

from _support import backend_module  # noqa: E402

GRID = {"mlp__hidden_layer_sizes": [(4,), (16,)], "mlp__learning_rate_init": [1e-3, 1e-2]}
CV = 3
N_FITS = CV * len(GRID["mlp__hidden_layer_sizes"]) * len(GRID["mlp__learning_rate_init"])


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=None, silence_logs=logging.ERROR)
    try:
        with distributed.Client(cluster) as dask_client:
            yield dask_client
    finally:
        cluster.close()


def search(backend):
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", fastmlp.MLPClassifier(max_iter=20, random_state=0, backend=backend))])
    return GridSearchCV(pipe, GRID, cv=CV)


def calls_in(key):
    """How many joblib calls a task of the Dask backend ran ("batch_of_<func>_<n>_calls-<id>")."""
    name = key if isinstance(key, str) else key[0]
    assert "_fit_and_score" in name, name
    found = re.search(r"_(\d+)_calls", name)
    return int(found.group(1)) if found else 1


# max_iter=20 stops short of convergence on purpose; scikit-learn hands these filters to the workers
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_grid_search_on_a_dask_cluster_matches_the_local_search(client, backend):
    X, y = load_breast_cancer(return_X_y=True)

    with distributed.get_task_stream(client) as stream, joblib.parallel_config(backend="dask", n_jobs=-1):
        remote = search(backend).fit(X, y)
    local = search(backend).fit(X, y)  # one process, joblib's default n_jobs=None

    # the fits ran as tasks on the cluster's workers, all of them there
    tasks = stream.data
    assert tasks, "no task ran on the cluster"
    ran_on = {task["worker"] for task in tasks}
    assert ran_on <= set(client.scheduler_info()["workers"])
    assert sum(calls_in(task["key"]) for task in tasks) == N_FITS
    # ... with the backend asked for (a lambda: cloudpickle sends it by value, this module does
    # not import on the workers)
    module = backend_module(backend).__name__
    loaded = client.run(lambda name: name in sys.modules, module, workers=sorted(ran_on))
    assert all(loaded.values()), f"{module} was not loaded on the workers that ran the fits"

    # and they found what the single-process search finds: fits are deterministic for a random_state
    for name in ["mean_test_score", "std_test_score", *(f"split{i}_test_score" for i in range(CV))]:
        np.testing.assert_allclose(remote.cv_results_[name], local.cv_results_[name], rtol=1e-12, atol=0,
                                   err_msg=name)
    assert list(remote.cv_results_["params"]) == list(local.cv_results_["params"])
    np.testing.assert_array_equal(remote.cv_results_["rank_test_score"], local.cv_results_["rank_test_score"])
    assert remote.best_params_ == local.best_params_
    assert np.ptp(local.cv_results_["mean_test_score"]) > 0, "the grid's settings should score differently"
    assert remote.best_score_ > 0.9
    np.testing.assert_array_equal(remote.predict(X), local.predict(X))
