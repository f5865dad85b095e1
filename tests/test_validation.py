"""Bad input raises a clear ValueError/TypeError before any work, and the model is unchanged."""

import copy

import numpy as np
import pytest

import fastmlp
from _support import XOR_X, XOR_Y

X, Y = XOR_X, XOR_Y.ravel()


def snapshot(net):
    return net.params_.copy(), copy.deepcopy(net.history_), net.n_iter_


@pytest.fixture
def trained(backend):
    return fastmlp.MLP([2, 4, 1], seed=0, backend=backend).fit(X, Y, epochs=3, lr=0.1)


BAD_FIT = [
    # (X, y, kwargs, error, message fragment)
    (X[:, :1], Y, {}, ValueError, "features"),
    (X.ravel(), Y, {}, ValueError, "2-D"),
    (X[None], Y, {}, ValueError, "2-D"),
    (np.empty((0, 2)), np.empty(0), {}, ValueError, "empty"),
    (X, Y[:3], {}, ValueError, "samples"),
    (X, np.ones((4, 2)), {}, ValueError, "shape"),
    (X, np.ones((4, 1, 1)), {}, ValueError, "shape"),
    (np.where(X == 1, np.nan, X), Y, {}, ValueError, "NaN"),
    (np.where(X == 1, np.inf, X), Y, {}, ValueError, "NaN or infinity"),
    (X, np.array([0, 1, np.nan, 0]), {}, ValueError, "NaN"),
    (X, np.array([0, 1, 2, 0]), {}, ValueError, r"\{0, 1\}"),
    (X, np.array([0, 0.5, 1, 0]), {}, ValueError, r"\{0, 1\}"),
    (X.astype(str), Y, {}, TypeError, "real numbers"),
    (X.astype(complex), Y, {}, TypeError, "real numbers"),
    (X.astype(object), Y, {}, TypeError, "real numbers"),
    (X, Y.astype(str), {}, TypeError, "real numbers"),
    ("abcd", Y, {}, TypeError, "string"),
    (X, Y, {"epochs": -1}, ValueError, "epochs"),
    (X, Y, {"epochs": 2.5}, TypeError, "epochs"),
    (X, Y, {"lr": 0}, ValueError, "lr"),
    (X, Y, {"lr": float("nan")}, ValueError, "lr"),
    (X, Y, {"lr": "fast"}, TypeError, "lr"),
    (X, Y, {"batch_size": 0}, ValueError, "batch_size"),
    (X, Y, {"batch_size": "big"}, ValueError, "batch_size"),
    (X, Y, {"shuffle": "yes"}, TypeError, "shuffle"),
    (X, Y, {"warm_start": 1}, TypeError, "warm_start"),
]


@pytest.mark.parametrize("Xb, yb, kwargs, error, match", BAD_FIT)
def test_bad_fit_raises_and_leaves_model(trained, Xb, yb, kwargs, error, match):
    before = snapshot(trained)
    with pytest.raises(error, match=match):
        trained.fit(Xb, yb, **kwargs)
    after = snapshot(trained)
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1:] == before[1:]


@pytest.mark.parametrize("Xb, yb, kwargs, error, match", [c for c in BAD_FIT if not c[2]])
def test_bad_data_for_loss_and_gradients(trained, Xb, yb, kwargs, error, match):
    before = trained.params_.copy()
    with pytest.raises(error, match=match):
        trained.loss(Xb, yb)
    with pytest.raises(error, match=match):
        trained.gradients(Xb, yb)
    np.testing.assert_array_equal(trained.params_, before)


@pytest.mark.parametrize(
    "Xb, error",
    [(X[:, :1], ValueError), (np.empty((0, 2)), ValueError), (X.astype(str), TypeError), (np.full((1, 2), np.nan), ValueError)],
)
def test_bad_predict_input(trained, Xb, error):
    with pytest.raises(error):
        trained.predict_proba(Xb)
    with pytest.raises(error):
        trained.predict(Xb)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"layer_sizes": [2]}, ValueError, "at least"),
        ({"layer_sizes": [2, 0, 1]}, ValueError, ">= 1"),
        ({"layer_sizes": [2, 3.5, 1]}, TypeError, "integer"),
        ({"layer_sizes": [2, True, 1]}, TypeError, "integer"),
        ({"layer_sizes": "21"}, TypeError, "sequence"),
        ({"layer_sizes": 3}, TypeError, "sequence"),
        ({"activation": "swish"}, ValueError, "activation"),
        ({"activation": ["leaky_relu", "leaky_relu"]}, ValueError, "hidden layers"),
        ({"output": "softplus"}, ValueError, "output"),
        ({"loss": "mse"}, ValueError, "loss"),
        ({"negative_slope": float("inf")}, ValueError, "negative_slope"),
        ({"negative_slope": "0.1"}, TypeError, "negative_slope"),
        ({"init": "xavier"}, ValueError, "init"),
        ({"init_scale": 0.1}, ValueError, "init_scale"),
        ({"init": "normal", "init_scale": -1}, ValueError, "init_scale"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"dtype": "float16"}, ValueError, "dtype"),
        ({"dtype": "int64"}, ValueError, "dtype"),
        ({"backend": "fortran"}, ValueError, "backend"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    args = {"layer_sizes": [2, 4, 1], **kwargs}
    with pytest.raises(error, match=match):
        fastmlp.MLP(**args)


def test_backend_entry_points_check_their_arrays(backend):
    """Raw backend functions refuse buffers that would make compiled code read out of bounds."""
    from _support import backend_module

    mod = backend_module(backend)
    net = fastmlp.MLP([2, 4, 1], seed=0, backend=backend)
    args = (net.layer_sizes, net._hidden, net.negative_slope, net.output)
    st = np.zeros((2, len(net.params_)))
    from fastmlp._common import optimizer_config as opt

    with pytest.raises(ValueError, match="params"):
        mod.loss_gradient(net.params_[:-1].copy(), *args, X, XOR_Y)
    with pytest.raises(ValueError, match="X must have shape"):
        mod.predict_proba(net.params_, *args, X[:, :1], np.empty((4, 1)))
    with pytest.raises(ValueError, match="out must have shape"):
        mod.predict_proba(net.params_, *args, X, np.empty((3, 1)))
    with pytest.raises(ValueError, match="Y must have shape"):
        mod.loss_gradient(net.params_, *args, X, XOR_Y[:2])
    with pytest.raises(ValueError, match="losses"):
        mod.train(net.params_.copy(), *args, X, XOR_Y, 5, 4, None, np.empty(4), opt(), st)
    with pytest.raises(ValueError, match="batch_size"):
        mod.train(net.params_.copy(), *args, X, XOR_Y, 5, 0, None, np.empty(5), opt(), st)
    with pytest.raises(ValueError, match="state must have shape"):
        mod.train(net.params_.copy(), *args, X, XOR_Y, 5, 4, None, np.empty(5), opt(), st[:, 1:])
    with pytest.raises(ValueError, match="full batches"):
        mod.train(net.params_.copy(), *args, X, XOR_Y, 5, 2, None, np.empty(5), opt("rprop"), st)
    with pytest.raises(TypeError, match="callback"):
        mod.train(net.params_.copy(), *args, X, XOR_Y, 5, 4, None, np.empty(5), opt(), st, 0.0, None, "print")
    with pytest.raises(TypeError, match="optimizer"):
        mod.train(net.params_.copy(), *args, X, XOR_Y, 5, 4, None, np.empty(5), {"name": "sgd"}, st)
    with pytest.raises(ValueError, match="activation"):
        mod.loss_gradient(net.params_, net.layer_sizes, ("gelu",), 0.01, "sigmoid", X, XOR_Y)
    with pytest.raises(ValueError, match="output"):
        mod.loss_gradient(net.params_, net.layer_sizes, net._hidden, 0.01, "softmax", X, XOR_Y)
    with pytest.raises(TypeError, match="grad must have dtype"):
        mod.loss_gradient(net.params_.astype(np.float32), *args, X, XOR_Y, np.empty(17))


def test_cython_backend_missing_is_an_error_not_a_fallback(monkeypatch):
    """backend="cython" where the module cannot import raises; "auto" warns and uses NumPy."""
    import sys
    import warnings

    from fastmlp import _backend

    monkeypatch.setitem(sys.modules, "fastmlp._core", None)  # makes `import fastmlp._core` fail
    monkeypatch.setattr(_backend, "_warned_fallback", False)
    monkeypatch.delenv("FASTMLP_BACKEND", raising=False)
    with pytest.raises(ImportError, match="'cython' backend is not available"):
        fastmlp.MLP([2, 1], backend="cython")
    assert fastmlp.available_backends() == ("numpy",)
    with pytest.warns(RuntimeWarning, match="NumPy backend"):
        assert fastmlp.MLP([2, 1]).backend == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fastmlp.MLP([2, 1]).backend == "numpy"  # warned once only
