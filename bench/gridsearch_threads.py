"""Does ``GridSearchCV(n_jobs=2)`` on joblib's threading backend run two fits at once?

Issue 9: fastmlp's estimators train in the compiled loop, which releases the GIL, so a
search whose fits run in threads should use both cores. This times the same search with
``n_jobs=1`` and ``n_jobs=2`` under ``joblib.parallel_config(backend="threading")`` and
prints the speed-up, for ``fastmlp.MLPClassifier`` and, for contrast, scikit-learn's
``MLPClassifier`` (NumPy releases the GIL inside each product, the Python between them
holds it).

The search: digits (standardised 75/25 split of seed 0, the training part searched),
``hidden_layer_sizes`` in {(50,), (100,)} x ``alpha`` in {1e-4, 1e-3}, ``cv=3``: 12 fits of
``max_iter=40`` epochs each (Adam, scikit-learn's defaults otherwise; ``tol=0`` so every
fit runs all its epochs and the two workers get equal shares), ``refit=False`` so only
the parallel part is timed. BLAS is limited to one thread per call
(``threadpoolctl.threadpool_limits(1)``, as ``gil_threads.py`` does): each fit uses one
core, and two fits can use two. Best of ``--repeats`` searches, n_jobs=1 and n_jobs=2
interleaved; the searches must agree on every score.

Run (about 30 s on a 2-core machine)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gridsearch_threads.py
"""

import argparse
import time
import warnings

import joblib
import numpy as np
import sklearn
import sklearn.neural_network
from _common import (
    OtherLoad,
    blas_threads,
    fastmlp,
    interleaved,
    print_header,
    scaled_split,
)
from gil_threads import matmul_control
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

COMMAND = "python bench/gridsearch_threads.py"
GRID = {"hidden_layer_sizes": [(50,), (100,)], "alpha": [1e-4, 1e-3]}
CV = 3
EPOCHS = 40
ESTIMATORS = {
    "fastmlp.MLPClassifier (cython)": lambda: fastmlp.MLPClassifier(
        max_iter=EPOCHS, tol=0.0, random_state=0, backend="cython"),
    f"scikit-learn {sklearn.__version__} MLPClassifier": lambda: sklearn.neural_network.MLPClassifier(
        max_iter=EPOCHS, tol=0.0, random_state=0),
}


def search(make, X, y, n_jobs):
    """A zero-argument callable running the search; it keeps the last scores."""
    scores = []

    def run():
        with joblib.parallel_config(backend="threading"):
            gs = GridSearchCV(make(), GRID, cv=CV, n_jobs=n_jobs, refit=False)
            gs.fit(X, y)
        scores[:] = [gs.cv_results_["mean_test_score"]]

    return run, scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many searches (default 3)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print_header(COMMAND)
    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = scaled_split(X, y, 0)
    n_fits = CV * int(np.prod([len(v) for v in GRID.values()]))
    print()
    print(f"search: GridSearchCV(est, {GRID}, cv={CV}, refit=False) on digits' {X_train.shape[0]}x{X_train.shape[1]} "
          f"training part: {n_fits} fits of max_iter={EPOCHS}, tol=0 (every epoch runs); joblib threading "
          f"backend; BLAS limited to 1 thread; best of {args.repeats}, n_jobs=1 and 2 interleaved")
    header = f"{'estimator':<34} {'n_jobs=1 (s)':>13} {'n_jobs=2 (s)':>13} {'speed-up':>9} {'best mean CV acc':>17}"
    print(header)
    print("-" * len(header))
    with OtherLoad() as load, blas_threads(1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for label, make in ESTIMATORS.items():
            one, s1 = search(make, X_train, y_train, 1)
            two, s2 = search(make, X_train, y_train, 2)
            times = interleaved({1: one, 2: two}, args.repeats)
            # the same fits, whichever thread ran them
            np.testing.assert_allclose(s1[0], s2[0], rtol=0, atol=1e-12)
            t1, t2 = min(times[1]), min(times[2])
            print(f"{label:<34} {t1:>13.3f} {t2:>13.3f} {t1 / t2:>8.2f}x {100 * s1[0].max():>16.2f}%")
        seq, par = matmul_control(args.repeats)
        print(f"{'np.matmul control (gil_threads)':<34} {seq:>13.3f} {par:>13.3f} {seq / par:>8.2f}x {'-':>17}")
    if load.line() is not None:
        print(load.line())
    print()
    print("speed-up near 2: two fits ran at once (the GIL was free while they trained); near 1: "
          "serialised. The control row (two threads of 512x512 np.matmul, which releases the GIL) "
          "is what two threads get on this machine right now.")
    print(f"total run time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
