"""One way into training: ``MLP.fit`` and both estimators train through
``_training.run_fit``; schedule "sklearn" is a value a job may hold (with the caller's rate
and end-of-epoch steps), never an option ``fit`` takes."""

import numpy as np
import pytest

import fastmlp
from fastmlp import _training
from _support import make_data


@pytest.fixture
def entries(monkeypatch):
    """The schedules of the jobs run_fit is given, in order."""
    seen = []
    real = _training.run_fit

    def run_fit(impl, net, runs, job, *args, **kwargs):
        seen.append((job.schedule, len(runs)))
        return real(impl, net, runs, job, *args, **kwargs)

    monkeypatch.setattr(_training, "run_fit", run_fit)
    return seen


@pytest.mark.parametrize("options, expected", [
    (dict(optimizer="adam"), ("constant", 1)),
    (dict(optimizer="lbfgs", batch_size=None), ("constant", 1)),
    (dict(optimizer="sgd", lr_schedule="invscaling", n_restarts=2), ("invscaling", 2)),
])
def test_mlp_fit_trains_through_run_fit(entries, backend, options, expected):
    X, Y = make_data(40, [3, 5, 1], seed=1)
    fastmlp.MLP([3, 5, 1], seed=0, backend=backend).fit(X, Y, epochs=2, **options)
    assert entries == [expected]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("solver", ["sgd", "adam", "lbfgs"])
@pytest.mark.parametrize("Estimator", [fastmlp.MLPClassifier, fastmlp.MLPRegressor])
def test_the_estimators_train_through_run_fit(entries, backend, Estimator, solver):
    X, Y = make_data(40, [3, 5, 1], seed=2)
    est = Estimator(hidden_layer_sizes=(5,), solver=solver, max_iter=3, random_state=0, backend=backend)
    est.fit(X, Y[:, 0])
    assert entries == [("sklearn", 1)]
    if solver != "lbfgs":
        est.partial_fit(X, Y[:, 0])
        assert entries == [("sklearn", 1)] * 2


def test_sklearn_is_a_job_schedule_but_no_fit_option():
    X, Y = make_data(20, [3, 5, 1], seed=3)
    model = fastmlp.MLP([3, 5, 1], seed=0)
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        model.fit(X, Y, epochs=1, lr_schedule="sklearn")
    job = _training.FitJob(X, Y, None, None, None, "lbfgs", 1, 20, False, "sklearn", 0.5, False, 1, 1e-4, 1, False)
    assert job.schedule == "sklearn"
    with pytest.raises(ValueError, match="schedule must be one of"):
        _training.FitJob(X, Y, None, None, None, "lbfgs", 1, 20, False, "daily", 0.5, False, 1, 1e-4, 1, False)
    run = _training.Run(model.params_.copy(), "lbfgs", None)
    with pytest.raises(ValueError, match='watch and rate come with schedule="sklearn"'):
        _training.run_fit(model._impl, model._net, [run], job)          # "sklearn" without the caller's watch
    plain = _training.FitJob(X, Y, None, None, None, "lbfgs", 1, 20, False, "constant", 0.5, False, 1, 1e-4, 1, False)
    with pytest.raises(ValueError, match='watch and rate come with schedule="sklearn"'):
        _training.run_fit(model._impl, model._net, [run], plain, watch=lambda loss: True)
    np.testing.assert_array_equal(run.params, model.params_)              # refused before any work
