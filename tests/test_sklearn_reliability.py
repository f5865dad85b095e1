"""The estimators keep MLP's promises (issue 21): a fit or partial_fit that raises leaves
the estimator as it was (item 7); restarts stop on Ctrl-C within a few batches, in a thread
pool bounded by the cores, holding no more than what runs at once (item 8)."""

import copy
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils.validation import check_is_fitted

from fastmlp import MLPClassifier, MLPRegressor


def data(kind, n=90):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 4))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0) if kind == "classifier" else X @ [1.0, -2.0, 0.5, 0.0]
    return X, y


def fitted(kind, backend, **params):
    Est = MLPClassifier if kind == "classifier" else MLPRegressor
    est = Est(hidden_layer_sizes=(5,), max_iter=6, random_state=0, batch_size=30, backend=backend, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*data(kind))


def state(est):
    """Everything an estimator holds, comparable with ==: its attributes (arrays and lists as
    lists), its weights, its optimizer's state and scalars."""
    out = {}
    for key, value in vars(est).items():
        if key in ("_mlp", "_run", "_label_binarizer", "callback"):
            continue
        out[key] = value.tolist() if isinstance(value, np.ndarray) else copy.deepcopy(value)
    out["params"] = est._mlp.params_.tolist()
    run = vars(est).get("_run")
    if run is not None:
        out["run"] = (run.state.tolist(), vars(run.optimizer).copy(), run.history, run.diverged)
    return out


def failing(calls, error=RuntimeError):
    """A callback that raises `error` on its call number `calls` (from 1), after that epoch ran."""
    count = []

    def callback(epoch, logs):
        count.append(epoch)
        if len(count) >= calls:
            raise error("callback failed")
    return callback


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
@pytest.mark.parametrize("solver, early_stopping", [("sgd", False), ("adam", False), ("adam", True),
                                                    ("lbfgs", False)])
@pytest.mark.parametrize("how", ["warm_start", "partial_fit", "refit"])
def test_a_raising_callback_leaves_the_estimator_as_it_was(kind, solver, early_stopping, how, backend):
    """Weights, optimizer state, n_iter_, t_, curves, best scores: all as before the call,
    and the estimator then continues exactly as one that never made the call."""
    if how == "partial_fit" and (early_stopping or (solver == "lbfgs" and kind == "classifier")):
        pytest.skip("partial_fit takes no early_stopping; the classifier's needs a stochastic solver")
    est = fitted(kind, backend, solver=solver, early_stopping=early_stopping, validation_fraction=0.2,
                 momentum=0.5)
    untouched = copy.deepcopy(est)
    # one epoch (one L-BFGS iteration) has changed the weights when the callback raises
    est.set_params(callback=failing(1 if how == "partial_fit" and solver != "lbfgs" else 2),
                   warm_start=how == "warm_start")
    before = state(est)
    X, y = data(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(RuntimeError, match="callback failed"):
            est.partial_fit(X, y) if how == "partial_fit" else est.fit(X, y)
    assert state(est) == before
    # and it goes on as the untouched one: the optimizer's state and stream were restored
    est.set_params(callback=None, warm_start=True)
    untouched.set_params(warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        untouched.fit(X, y)
    assert state(est) == state(untouched)


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_a_first_fit_that_raises_leaves_the_estimator_unfitted(Est, backend):
    X, y = data("classifier" if Est is MLPClassifier else "regressor")
    for solver in ("adam", "lbfgs"):
        est = Est(hidden_layer_sizes=(4,), solver=solver, max_iter=5, callback=failing(1), backend=backend)
        with pytest.raises(RuntimeError):
            est.fit(X, y)
        with pytest.raises(NotFittedError):
            check_is_fitted(est)
        assert not hasattr(est, "n_features_in_") and not hasattr(est, "classes_")
    if Est is MLPClassifier:
        est = Est(hidden_layer_sizes=(4,), max_iter=5, callback=failing(0), backend=backend)
        with pytest.raises(RuntimeError):
            est.partial_fit(X, y, classes=[0, 1, 2])
        assert not hasattr(est, "classes_") and not hasattr(est, "_label_binarizer")


def test_a_random_state_instance_is_restored(backend):
    X, y = data("regressor")
    random_state = np.random.RandomState(3)
    est = MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=random_state, callback=failing(2),
                       backend=backend)
    drawn = copy.deepcopy(random_state).randint(1000, size=5)
    with pytest.raises(RuntimeError):
        est.fit(X, y)
    np.testing.assert_array_equal(random_state.randint(1000, size=5), drawn)


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit])
def test_lbfgs_interrupted_by_the_callback_is_undone(error, backend):
    """L-BFGS lets Ctrl-C through (as scikit-learn's); the estimator is as it was."""
    est = fitted("regressor", backend, solver="lbfgs")
    est.set_params(warm_start=True, callback=failing(2, error))
    before = state(est)
    with pytest.raises(error):
        est.fit(*data("regressor"))
    assert state(est) == before
