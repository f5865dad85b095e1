"""fastmlp.MLPClassifier / MLPRegressor against scikit-learn's estimators of the same names.

Both start from scikit-learn's initial weights (drawn from the same RandomState in the
same order) and visit the rows in the same order, so where fastmlp can express
scikit-learn's objective exactly (equal batches, constant rate or plain SGD) the fitted
weights agree to rounding; elsewhere (Adam's epsilon, momentum under a changing rate) they
are compared loosely. Every test runs on both backends (the `backend` fixture), most in
both dtypes.
"""

import copy
import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from joblib import parallel_backend  # noqa: E402
from sklearn import neural_network  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification, make_multilabel_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402

import fastmlp  # noqa: E402
from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402

RTOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}


def _standardise(X):
    return (X - X.mean(axis=0)) / X.std(axis=0)


def data(kind, n=120, seed=0):
    """(X, y) of a small problem: binary, multiclass, multilabel, regression, regression2."""
    if kind in ("binary", "multiclass"):
        X, y = make_classification(n_samples=n, n_features=6, n_informative=4, n_classes=2 if kind == "binary" else 3,
                                   random_state=seed)
    elif kind == "multilabel":
        X, y = make_multilabel_classification(n_samples=n, n_features=6, n_classes=3, random_state=seed)
    else:
        X, y = make_regression(n_samples=n, n_features=6, n_targets=1 if kind == "regression" else 2, noise=1.0,
                               random_state=seed)
        y = y / y.std()
    return _standardise(X), y


def pair(kind, backend, **params):
    """(ours, scikit-learn's) estimators for `kind` with the same parameters."""
    ours, theirs = ((MLPRegressor, neural_network.MLPRegressor) if kind.startswith("regression")
                    else (MLPClassifier, neural_network.MLPClassifier))
    return ours(backend=backend, **params), theirs(**params)


def fit_quietly(est, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kwargs)


def assert_same_fit(ours, theirs, dtype, scale=1.0, loss_rtol=None):
    rtol = RTOL[np.dtype(dtype)] * scale
    loss_rtol = rtol if loss_rtol is None else loss_rtol
    assert ours.n_iter_ == theirs.n_iter_
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=loss_rtol)
    if hasattr(theirs, "loss_curve_"):
        np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=loss_rtol)


COMMON = dict(hidden_layer_sizes=(8, 4), activation="tanh", random_state=1, max_iter=25, batch_size=40,
              learning_rate_init=0.01, alpha=0.01)


# ================================================================== parity with scikit-learn


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression", "regression2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_sgd_matches_sklearn_step_for_step(kind, dtype, backend):
    """Equal batches (120 rows, batch_size 40) and a constant rate: the same weights and losses."""
    X, y = data(kind)
    ours, theirs = pair(kind, backend, solver="sgd", **COMMON)
    fit_quietly(ours, X.astype(dtype), y)
    fit_quietly(theirs, X.astype(dtype), y)
    # multi-output regression reports its L2 term at the epoch's end weights (see _sklearn_train.report)
    assert_same_fit(ours, theirs, dtype, scale=50, loss_rtol=1e-3 if kind == "regression2" else None)


@pytest.mark.parametrize("n_outputs", [1, 2, 3])
@pytest.mark.parametrize("alpha", [0.0, 0.01])
def test_regression_losses_are_sklearns_for_any_number_of_outputs(n_outputs, alpha, backend):
    """scikit-learn reports half the mean squared error over every entry (plus its penalty):
    loss_, loss_curve_, best_loss_ and so the epoch the tolerance stops at are its own for
    1, 2 and 3 outputs, with and without alpha (issue 21, item 3: alpha=0 reported k times it)."""
    X, y = make_regression(n_samples=120, n_features=6, n_targets=n_outputs, noise=1.0, random_state=0)
    X, y = _standardise(X), y / y.std()
    params = dict(hidden_layer_sizes=(8,), activation="tanh", random_state=1, max_iter=200, batch_size=40,
                  solver="sgd", learning_rate_init=0.01, alpha=alpha, tol=1e-3)
    ours, theirs = MLPRegressor(backend=backend, **params), neural_network.MLPRegressor(**params)
    fit_quietly(ours, X, y)
    fit_quietly(theirs, X, y)
    # multi-output with alpha > 0: the L2 term is taken at the epoch's end weights (see _sklearn_train.report)
    rtol = 1e-3 if alpha and n_outputs > 1 else 1e-9
    assert ours.n_iter_ == theirs.n_iter_ < 200
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    assert ours.loss_ == pytest.approx(theirs.loss_, rel=rtol)
    assert ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=rtol)
    lbfgs = dict(params, solver="lbfgs", max_iter=8)
    ours, theirs = MLPRegressor(backend=backend, **lbfgs), neural_network.MLPRegressor(**lbfgs)
    fit_quietly(ours, X, y)
    fit_quietly(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_ and ours.loss_ == pytest.approx(theirs.loss_, rel=1e-5)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression"])
@pytest.mark.parametrize("learning_rate", ["invscaling", "adaptive"])
def test_plain_sgd_schedules_match_sklearn(kind, learning_rate, backend):
    """Without momentum the rate schedules ("invscaling" by samples seen, "adaptive" / 5
    after n_iter_no_change epochs without progress) give scikit-learn's steps exactly."""
    X, y = data(kind)
    params = dict(COMMON, solver="sgd", momentum=0.0, learning_rate=learning_rate, max_iter=60,
                  learning_rate_init=0.2, tol=1e-2, n_iter_no_change=2)
    ours, theirs = pair(kind, backend, **params)
    fit_quietly(ours, X, y)
    fit_quietly(theirs, X, y)
    assert_same_fit(ours, theirs, np.float64, scale=100)
    assert ours.t_ == theirs.t_ and ours.best_loss_ == pytest.approx(theirs.best_loss_, rel=1e-7)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression"])
def test_adam_is_close_to_sklearn(kind, backend):
    """Adam's epsilon enters PyTorch's update and scikit-learn's at different places: close, not equal."""
    X, y = data(kind)
    ours, theirs = pair(kind, backend, solver="adam", **COMMON)
    fit_quietly(ours, X, y)
    fit_quietly(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_
    for a, b in zip(ours.coefs_, theirs.coefs_):
        np.testing.assert_allclose(a, b, atol=1e-3)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=1e-3)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression"])
def test_lbfgs_matches_sklearn(kind, backend):
    X, y = data(kind)
    ours, theirs = pair(kind, backend, solver="lbfgs", **COMMON)
    fit_quietly(ours, X, y)
    fit_quietly(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)
    np.testing.assert_allclose(ours.predict(X[:10]), theirs.predict(X[:10]), rtol=1e-5, atol=1e-6)
    assert not hasattr(ours, "loss_curve_")        # as scikit-learn: a stochastic solver's record


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regression"])
def test_early_stopping_matches_sklearn(kind, backend):
    """The same (stratified for binary) split, validation scores, best weights and stop."""
    X, y = data(kind, n=200)
    params = dict(COMMON, solver="sgd", early_stopping=True, validation_fraction=0.2, max_iter=100,
                  batch_size=20, n_iter_no_change=3, learning_rate_init=0.05)
    ours, theirs = pair(kind, backend, **params)
    fit_quietly(ours, X, y)
    fit_quietly(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_ < 100
    np.testing.assert_allclose(ours.validation_scores_, theirs.validation_scores_, rtol=1e-9)
    assert ours.best_validation_score_ == pytest.approx(theirs.best_validation_score_)
    assert ours.best_loss_ is None and theirs.best_loss_ is None
    assert_same_fit(ours, theirs, np.float64, scale=100)


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_sample_weight_full_batch_matches_sklearn(kind, backend):
    """One batch: alpha / sum(sample_weight) is exactly scikit-learn's penalty."""
    X, y = data(kind)
    w = np.random.default_rng(0).uniform(0.5, 3.0, len(X))
    ours, theirs = pair(kind, backend, solver="sgd", **dict(COMMON, batch_size=len(X)))
    fit_quietly(ours, X, y, sample_weight=w)
    fit_quietly(theirs, X, y, sample_weight=w)
    assert_same_fit(ours, theirs, np.float64, scale=100)


def test_partial_fit_matches_sklearn(backend):
    X, y = data("multiclass")
    labels = np.array(["a", "b", "c"])[y]
    ours, theirs = pair("multiclass", backend, solver="sgd", **COMMON)
    for start in range(0, 120, 40):
        for est in (ours, theirs):
            est.partial_fit(X[start:start + 40], labels[start:start + 40], classes=["a", "b", "c"])
    assert ours.t_ == theirs.t_ == 120 and ours.n_iter_ == theirs.n_iter_ == 1
    assert_same_fit(ours, theirs, np.float64, scale=100)
    with pytest.raises(ValueError, match="classes not in"):
        ours.partial_fit(X[:3], ["a", "b", "z"])


def test_partial_fit_needs_classes_first_and_a_stochastic_solver(backend):
    X, y = data("binary")
    with pytest.raises(ValueError, match="classes must be passed on the first call"):
        MLPClassifier(backend=backend).partial_fit(X, y)
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    with pytest.raises(ValueError, match="early_stopping"):
        MLPRegressor(early_stopping=True, backend=backend).partial_fit(X, y.astype(float))


# ================================================================== labels, outputs, dtypes


@pytest.mark.parametrize("labels", [["no", "yes"], [-1, 1], [1, 2, 3], ["setosa", "versicolor", "virginica"]],
                         ids=["strings2", "pm1", "1..3", "strings3"])
def test_any_labels(labels, backend):
    X, y = data("binary" if len(labels) == 2 else "multiclass")
    y = np.asarray(labels)[y]
    params = dict(hidden_layer_sizes=(16,), random_state=0, max_iter=200, learning_rate_init=0.01)
    clf = fit_quietly(MLPClassifier(backend=backend, **params), X, y)
    theirs = fit_quietly(neural_network.MLPClassifier(**params), X, y)
    assert np.mean(clf.predict(X) == theirs.predict(X)) > 0.95
    np.testing.assert_array_equal(clf.classes_, np.unique(y))
    assert set(clf.predict(X)) <= set(labels) and clf.predict(X).dtype == y.dtype
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), len(labels))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[np.argmax(proba, axis=1)])
    np.testing.assert_allclose(clf.predict_log_proba(X), np.log(proba))
    assert clf.score(X, y) > 0.9
    assert clf.out_activation_ == ("logistic" if len(labels) == 2 else "softmax")
    assert clf.n_outputs_ == (1 if len(labels) == 2 else len(labels)) and clf.n_layers_ == 3


def test_multilabel(backend):
    X, Y = data("multilabel")
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(16,), random_state=0, backend=backend), X, Y)
    assert clf.predict(X).shape == Y.shape and clf.predict_proba(X).shape == Y.shape
    assert clf.out_activation_ == "logistic" and clf.n_outputs_ == 3
    assert set(np.unique(clf.predict(X))) <= {0, 1}


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_float32_trains_and_predicts_in_float32(Est, dtype, backend):
    X, y = data("binary")
    est = fit_quietly(Est(hidden_layer_sizes=(8,), max_iter=20, random_state=0, backend=backend), X.astype(dtype), y)
    assert all(W.dtype == dtype for W in est.coefs_ + est.intercepts_)
    out = est.predict_proba(X) if Est is MLPClassifier else est.predict(X)
    assert out.dtype == dtype


def test_extras(backend):
    """Our activations and solvers, and the best of several restarts."""
    X, y = data("binary")
    for params in (dict(activation="leaky_relu", negative_slope=0.1), dict(activation="gelu"),
                   dict(solver="adamw", alpha=0.01), dict(solver="rprop", learning_rate_init=0.01)):
        clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(16,), random_state=0, max_iter=200, backend=backend,
                                        **{"learning_rate_init": 0.01, **params}), X, y)
        assert clf.score(X, y) > 0.9, params
    one = fit_quietly(MLPClassifier(hidden_layer_sizes=(4,), random_state=3, max_iter=30, backend=backend), X, y)
    runs = [fit_quietly(MLPClassifier(hidden_layer_sizes=(4,), random_state=3, max_iter=30, n_restarts=4,
                                      backend=backend), X, y) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].coefs_[0], runs[1].coefs_[0])      # repeatable
    assert runs[0].n_restarts == 4 and runs[0].loss_ <= one.loss_ * 1.5


def test_warm_start_continues(backend):
    X, y = data("regression")
    est = fit_quietly(MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0, backend=backend), X, y)
    first = est.coefs_[0].copy()
    est.set_params(warm_start=True)
    fit_quietly(est, X, y)
    assert est.t_ == 10 * len(X) and not np.array_equal(est.coefs_[0], first)
    ref = fit_quietly(neural_network.MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0), X, y)
    ref.set_params(warm_start=True)
    fit_quietly(ref, X, y)
    np.testing.assert_allclose(est.loss_curve_, ref.loss_curve_, rtol=1e-3)


def test_coefs_can_be_set(backend):
    X, y = data("regression")
    est = fit_quietly(MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, backend=backend), X, y)
    est.coefs_ = [np.zeros_like(W) for W in est.coefs_]
    est.intercepts_ = [np.full_like(b, 2.0) for b in est.intercepts_]
    np.testing.assert_allclose(est.predict(X), 2.0)


# ================================================================== errors and warnings


def test_errors_and_warnings(backend):
    X, y = data("binary")
    with pytest.raises(NotFittedError):
        MLPClassifier(backend=backend).predict(X)
    with pytest.raises(NotFittedError):
        MLPRegressor(backend=backend).predict(X)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier(max_iter=2, backend=backend).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        MLPRegressor(solver="lbfgs", max_iter=2, backend=backend).fit(X, y.astype(float))
    messages = []
    for Est in (MLPClassifier, neural_network.MLPClassifier):     # the same message as scikit-learn's
        with pytest.raises(InvalidParameterError, match="The 'momentum' parameter of") as info:
            Est(momentum=2.0).fit(X, y)
        messages.append(str(info.value).replace("fastmlp.", ""))
    assert messages[0] == messages[1]
    clf = MLPClassifier(max_iter=5, backend=backend)
    fit_quietly(clf, X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(InvalidParameterError, match="activation"):
        MLPClassifier(activation="swish").fit(X, y)
    with pytest.raises(ValueError, match="backend"):
        MLPClassifier(backend="fortran").fit(X, y)


def test_verbose_prints_sklearns_lines(backend, capsys):
    X, y = data("binary")
    fit_quietly(MLPClassifier(max_iter=3, verbose=True, backend=backend), X, y)
    assert capsys.readouterr().out.splitlines()[0].startswith("Iteration 1, loss = ")


# ================================================================== scikit-learn's machinery


def test_clone_pickle_deepcopy(backend):
    X, y = data("multiclass")
    clf = fit_quietly(MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, random_state=0, backend=backend), X, y)
    fresh = clone(clf)
    assert fresh.get_params() == clf.get_params() and not hasattr(fresh, "classes_")
    for copied in (pickle.loads(pickle.dumps(clf)), copy.deepcopy(clf)):
        np.testing.assert_array_equal(copied.predict_proba(X), clf.predict_proba(X))
        copied.partial_fit(X, y)                   # continues its own copy of the weights
        assert not np.array_equal(copied.coefs_[0], clf.coefs_[0])
        assert np.shares_memory(copied.coefs_[0], copied._mlp.params_)
    assert "MLPClassifier(" in repr(clf) and "backend" in repr(clf)


def test_pipeline_and_grid_search_in_threads(backend):
    X, y = make_classification(n_samples=150, n_features=8, random_state=0)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=50, random_state=0, backend=backend))
    search = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1e-2], "mlpclassifier__hidden_layer_sizes": [(8,), (16,)]},
                          cv=3, n_jobs=2)
    with warnings.catch_warnings(), parallel_backend("threading", n_jobs=2):
        warnings.simplefilter("ignore", ConvergenceWarning)
        search.fit(X, y)
    assert search.best_score_ > 0.7 and search.predict(X).shape == (150,)


def test_feature_names(backend):
    pd = pytest.importorskip("pandas")
    X, y = data("regression")
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = fit_quietly(MLPRegressor(max_iter=5, backend=backend), frame, y)
    np.testing.assert_array_equal(est.feature_names_in_, frame.columns)
    assert est.n_features_in_ == X.shape[1]
    with pytest.raises(ValueError, match="feature names"):
        est.predict(frame.rename(columns={"f0": "other"}))


def test_exported_from_the_package():
    assert fastmlp.MLPClassifier is MLPClassifier and "MLPRegressor" in fastmlp.__all__


def test_divergence_as_sklearn(backend):
    """Without early stopping, scikit-learn's ValueError (a fastmlp.DivergenceError); with it,
    the best epoch's finite weights are kept and no error is raised, as in scikit-learn."""
    X, y = data("regression")
    with pytest.raises(fastmlp.DivergenceError, match="Solver produced non-finite parameter weights"):
        fit_quietly(MLPRegressor(solver="sgd", learning_rate_init=50.0, max_iter=20, random_state=0,
                                 backend=backend), X * 1e3, y)
    est = fit_quietly(MLPRegressor(solver="sgd", learning_rate_init=50.0, max_iter=20, random_state=0,
                                   early_stopping=True, backend=backend), X * 1e3, y)
    assert all(np.isfinite(W).all() for W in est.coefs_) and np.isfinite(est.predict(X)).all()


def test_early_stopping_split_is_stratified_on_the_labels(backend):
    X, y = data("binary", n=20)
    y = np.zeros(20, dtype=int)
    y[0] = 1
    with pytest.raises(ValueError, match=r"Classes with too few members are: \['True'\]"):
        MLPClassifier(early_stopping=True, backend=backend).fit(X, y)


def test_poisson_regression_matches_scikit_learn(backend, dtype):
    """loss="poisson": an exponential output and half the Poisson deviance, as scikit-learn's;
    plain SGD on equal batches gives scikit-learn's weights and loss curve."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 4)).astype(dtype)
    y = rng.poisson(np.exp(0.5 * X[:, 0])).astype(dtype)
    options = dict(loss="poisson", hidden_layer_sizes=(7,), solver="sgd", batch_size=20, momentum=0.0,
                   learning_rate_init=0.01, max_iter=5, shuffle=False, random_state=0, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPRegressor(backend=backend, **options).fit(X, y)
        theirs = neural_network.MLPRegressor(**options).fit(X, y)
    assert ours.out_activation_ == theirs.out_activation_ == "exp"
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    for a, b in zip(ours.coefs_ + ours.intercepts_, theirs.coefs_ + theirs.intercepts_):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(ours.loss_curve_, theirs.loss_curve_, rtol=rtol)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=rtol)
    with pytest.raises(ValueError, match=">= 0"):
        MLPRegressor(backend=backend, **options).fit(X, -y - 1)


# ================================================================== L-BFGS: max_fun, tol, verbose, partial_fit


def fit_recording(est, X, y):
    """`est` fitted, and the messages of the ConvergenceWarnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    return [str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)]


LBFGS = dict(solver="lbfgs", hidden_layer_sizes=(8, 4), activation="tanh", random_state=1, alpha=0.01)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression"])
@pytest.mark.parametrize("limits", [dict(max_fun=10, max_iter=200), dict(max_fun=40, max_iter=200, tol=0.0),
                                    dict(max_fun=15000, max_iter=7)], ids=["max_fun10", "max_fun40", "max_iter7"])
def test_lbfgs_limits_stop_and_warn_as_sklearn(kind, limits, backend):
    """maxfun and maxiter reach SciPy: a small max_fun stops L-BFGS-B at scikit-learn's
    iteration, with its ConvergenceWarning word for word (SciPy's status and message)."""
    X, y = data(kind)
    ours, theirs = pair(kind, backend, **LBFGS, **limits)
    ours_warned, theirs_warned = fit_recording(ours, X, y), fit_recording(theirs, X, y)
    assert ours.n_iter_ == theirs.n_iter_ <= min(limits["max_fun"], limits["max_iter"])
    assert ours_warned == theirs_warned and len(ours_warned) == 1
    expected = "ITERATIONS REACHED LIMIT" if limits["max_iter"] < 10 else "F,G EVALUATIONS EXCEEDS LIMIT"
    assert ours_warned[0].startswith(f"lbfgs failed to converge after {ours.n_iter_} iteration(s) (status=1):\n")
    assert expected in ours_warned[0]
    assert ("Increase the number of iterations" in ours_warned[0]) == (ours.n_iter_ == limits["max_iter"])
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)
    np.testing.assert_allclose(ours.predict(X[:10]), theirs.predict(X[:10]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "regression"])
def test_lbfgs_tol_is_sklearns_gradient_tolerance(kind, backend):
    """tol is SciPy's gtol on scikit-learn's gradient (fastmlp's, whose scale differs by c
    for multilabel and regression, gets tol / c): L-BFGS converges at scikit-learn's
    iteration, without a warning."""
    X, y = data(kind)
    ours, theirs = pair(kind, backend, **LBFGS, max_iter=2000, tol=1e-2)
    assert fit_recording(ours, X, y) == fit_recording(theirs, X, y) == []
    assert ours.n_iter_ == theirs.n_iter_ < 2000
    np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_lbfgs_verbose_prints_as_sklearn(kind, backend, capfd, monkeypatch):
    """verbose=True asks SciPy to print (iprint=1) exactly where scikit-learn does: SciPy
    >= 1.15 deprecates iprint and prints nothing, so there scikit-learn passes nothing and
    neither prints; older SciPy prints its L-BFGS-B report. verbose=False: silence."""
    import scipy.optimize
    from sklearn.utils.fixes import _get_additional_lbfgs_options_dict

    X, y = data(kind)
    scipy_prints = bool(_get_additional_lbfgs_options_dict("iprint", 1))
    minimize, seen = scipy.optimize.minimize, []
    monkeypatch.setattr(scipy.optimize, "minimize", lambda *a, **k: seen.append(k["options"]) or minimize(*a, **k))
    for verbose in (True, False):
        outputs = []
        for est in pair(kind, backend, **LBFGS, max_iter=5, verbose=verbose):
            with warnings.catch_warnings():
                warnings.simplefilter("error", DeprecationWarning)     # no deprecated iprint
                warnings.simplefilter("ignore", ConvergenceWarning)
                est.fit(X, y)
            outputs.append(capfd.readouterr().out)
        assert bool(outputs[0]) == bool(outputs[1]) == (verbose and scipy_prints), outputs
        theirs, ours = seen.pop(), seen.pop()
        assert ours.get("iprint") == theirs.get("iprint") == ((1 if verbose else -1) if scipy_prints else None)
        assert ours["maxfun"] == theirs["maxfun"] == 15000 and ours["maxiter"] == theirs["maxiter"] == 5


def test_regressor_partial_fit_with_lbfgs_as_sklearn(backend):
    """scikit-learn 1.9.1's MLPRegressor.partial_fit is there for every solver (its guard never
    calls the solver check) and with "lbfgs" each call runs a whole L-BFGS fit (max_iter,
    max_fun) from the current weights; MLPClassifier's is for stochastic solvers only."""
    assert hasattr(MLPRegressor(solver="lbfgs"), "partial_fit")
    assert hasattr(neural_network.MLPRegressor(solver="lbfgs"), "partial_fit")
    assert not hasattr(MLPClassifier(solver="lbfgs"), "partial_fit")
    assert not hasattr(neural_network.MLPClassifier(solver="lbfgs"), "partial_fit")
    X, y = data("regression")
    ours, theirs = pair("regression", backend, **LBFGS, max_iter=15)
    for rows in (slice(None), slice(60)):
        warned = []
        for est in (ours, theirs):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                est.partial_fit(X[rows], y[rows])
            warned.append([str(w.message) for w in caught if issubclass(w.category, ConvergenceWarning)])
        assert warned[0] == warned[1] and "after 15 iteration(s)" in warned[0][0]
        assert ours.n_iter_ == theirs.n_iter_ == 15 and ours.t_ == theirs.t_ == 0
        np.testing.assert_allclose(ours.loss_, theirs.loss_, rtol=1e-6)
        np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-5, atol=1e-6)
    assert not hasattr(ours, "loss_curve_") and not hasattr(theirs, "loss_curve_")
    fresh = fit_quietly(MLPRegressor(backend=backend, **LBFGS, max_iter=15), X[:60], y[:60])
    assert not np.allclose(fresh.predict(X), ours.predict(X), atol=1e-3)      # it continued, not restarted
