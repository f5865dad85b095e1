"""Activations, output/loss pairs and L2: each in both backends, compared with each other,
with an independent formula, and with finite differences."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit, log_softmax, softmax, xlogy
from scipy.stats import norm

import fastmlp
from _support import DTYPES, assert_close, backend_module, fd_gradient, make_data
from fastmlp._registry import ACTIVATIONS, LOSSES, OUTPUTS

FORMULAS = {  # f(z), f'(z) written independently of both backends
    "leaky_relu": (lambda z, s: np.where(z >= 0, z, s * z), lambda z, s: np.where(z >= 0, 1.0, s)),
    "relu": (lambda z, s: np.maximum(z, 0), lambda z, s: (z > 0).astype(float)),
    "tanh": (lambda z, s: np.tanh(z), lambda z, s: 1 / np.cosh(z) ** 2),
    "sigmoid": (lambda z, s: expit(z), lambda z, s: expit(z) * expit(-z)),
    "identity": (lambda z, s: z, lambda z, s: np.ones_like(z)),
    "gelu": (lambda z, s: z * norm.cdf(z), lambda z, s: norm.cdf(z) + z * norm.pdf(z)),   # exact (erf) GELU
    "silu": (lambda z, s: z * expit(z), lambda z, s: expit(z) * (1 + z * expit(-z))),     # PyTorch's nn.SiLU
}

OUTPUT_FORMULAS = {"sigmoid": expit, "softmax": lambda z: softmax(z, axis=1), "identity": lambda z: z, "exp": np.exp}

# mean loss over samples and its gradient with respect to the logits, for targets Y
LOSS_FORMULAS = {
    "bce": (lambda z, Y: np.mean(Y * np.logaddexp(0, -z) + (1 - Y) * np.logaddexp(0, z)),
            lambda z, Y: (expit(z) - Y) / z.size),
    "cross_entropy": (lambda z, Y: -np.mean(np.sum(Y * log_softmax(z, axis=1), axis=1)),
                      lambda z, Y: (softmax(z, axis=1) - Y) / len(z)),
    "mse": (lambda z, Y: np.mean((z - Y) ** 2), lambda z, Y: 2 * (z - Y) / z.size),
    # half the Poisson deviance of the rate exp(z): y log(y / exp(z)) - y + exp(z)
    "poisson": (lambda z, Y: np.mean(xlogy(Y, Y) - Y * z - Y + np.exp(z)), lambda z, Y: (np.exp(z) - Y) / z.size),
    # the parameterized losses at their registry defaults (delta = 1, quantile = 0.5); their
    # subgradient where z = y is 0 (tests/test_losses.py checks other parameters)
    "huber": (lambda z, Y: np.mean(np.where(np.abs(z - Y) <= 1, 0.5 * (z - Y) ** 2, np.abs(z - Y) - 0.5)),
              lambda z, Y: np.clip(z - Y, -1, 1) / z.size),
    "mae": (lambda z, Y: np.mean(np.abs(z - Y)), lambda z, Y: np.sign(z - Y) / z.size),
    "quantile": (lambda z, Y: np.mean(np.maximum(0.5 * (Y - z), -0.5 * (Y - z))),
                 lambda z, Y: -0.5 * np.sign(Y - z) / z.size),
}


@pytest.mark.parametrize("kind, formulas, registered", [
    ("activation", FORMULAS, ACTIVATIONS), ("output", OUTPUT_FORMULAS, OUTPUTS), ("loss", LOSS_FORMULAS, LOSSES)])
def test_every_registered_name_has_a_formula_here(kind, formulas, registered):
    assert set(formulas) == set(registered), (
        f"{kind} formulas missing for {set(registered) - set(formulas)}, unknown {set(formulas) - set(registered)}")


def targets(loss, shape, draw_or_rng, dtype=np.float64):
    """Targets a loss accepts: {0, 1} for bce, one-hot rows for cross_entropy, counts for
    poisson, reals for the identity output's losses (mse, huber, mae, quantile)."""
    n, k = shape
    if isinstance(draw_or_rng, np.random.Generator):
        rng = draw_or_rng
        return {"bce": (rng.random(shape) < 0.5) * 1.0, "cross_entropy": np.eye(k)[rng.integers(0, k, n)],
                "poisson": rng.poisson(2.0, shape) * 1.0}.get(loss, rng.standard_normal(shape)).astype(dtype)
    draw = draw_or_rng
    if loss == "cross_entropy":
        return np.eye(k, dtype=dtype)[draw(hnp.arrays(np.int64, n, elements=st.integers(0, k - 1)))]
    if loss == "bce":
        return draw(hnp.arrays(dtype, shape, elements=st.sampled_from([0.0, 1.0])))
    if loss == "poisson":
        return draw(hnp.arrays(dtype, shape, elements=st.floats(0, 100, width=32)))
    return draw(hnp.arrays(dtype, shape, elements=st.floats(-100, 100, width=32)))


def both():
    return backend_module("cython"), backend_module("numpy")


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data(), slope=st.floats(0, 1))
@settings(max_examples=30, deadline=None)
def test_activation_kernels(name, dtype, data, slope):
    shape = data.draw(st.tuples(st.integers(1, 30), st.integers(1, 30)))
    Z = data.draw(hnp.arrays(dtype, shape, elements=st.floats(-30, 30, width=32)))
    dA = data.draw(hnp.arrays(dtype, shape, elements=st.floats(-5, 5, width=32)))
    z = Z.astype(np.float64)
    f, df = FORMULAS[name]
    for mod in both():
        A, dZ = np.empty_like(Z), np.empty_like(Z)
        assert mod.activation(name, Z, A, slope) is A
        assert mod.activation_backward(name, Z, A, dA, dZ, slope) is dZ
        assert_close(A, f(z, slope), dtype, scale=10)
        assert_close(dZ, dA * df(z, slope), dtype, scale=10)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
@settings(max_examples=30, deadline=None)
def test_output_and_loss_kernels(loss, dtype, data):
    output = LOSSES[loss]
    n, k = data.draw(st.integers(1, 25)), data.draw(st.integers(2 if output == "softmax" else 1, 12))
    bound = 30 if output == "exp" else 500     # exp(z) must stay finite in float32
    Z = data.draw(hnp.arrays(dtype, (n, k), elements=st.floats(-bound, bound, width=32)))
    Y = targets(loss, (n, k), data.draw, dtype)
    z = Z.astype(np.float64)
    P = OUTPUT_FORMULAS[output](z)
    value_formula, grad_formula = LOSS_FORMULAS[loss]
    got = []
    for mod in both():
        out, G = np.empty_like(Z), np.empty_like(Z)
        assert mod.output_activation(output, Z, out) is out
        value = mod.output_loss(loss, Z, Y, G)
        assert np.isfinite(value) and np.isfinite(G).all()
        assert_close(out, P, dtype, scale=10)
        assert_close(value, value_formula(z, Y), dtype, scale=100)
        assert_close(G, grad_formula(z, Y), dtype, scale=100)
        got.append((out, value, G))
    for a, b in zip(*got):
        assert_close(a, b, dtype, scale=10)


@pytest.mark.parametrize("loss", LOSSES)
def test_output_loss_gradient_finite_differences(backend, loss):
    mod = backend_module(backend)
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((6, 4)) * 3
    Y = targets(loss, (6, 4), rng)
    G = np.empty_like(Z)
    mod.output_loss(loss, Z, Y, G)
    numeric = fd_gradient(lambda: mod.output_loss(loss, Z, Y, np.empty_like(Z)), Z)
    np.testing.assert_allclose(G, numeric, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradient_finite_differences(backend, name):
    mod = backend_module(backend)
    rng = np.random.default_rng(3)
    Z = rng.standard_normal((5, 7)) * 2
    Z[np.abs(Z) < 1e-2] = 0.5  # away from kinks
    w = rng.standard_normal(Z.shape)
    A, dZ = mod.activation(name, Z, np.empty_like(Z), 0.2), np.empty_like(Z)
    mod.activation_backward(name, Z, A, w, dZ, 0.2)
    numeric = fd_gradient(lambda: float(np.sum(w * mod.activation(name, Z, np.empty_like(Z), 0.2))), Z)
    np.testing.assert_allclose(dZ, numeric, rtol=1e-7, atol=1e-9)


def test_softmax_is_stable(backend):
    mod = backend_module(backend)
    Z = np.array([[1000.0, 0.0, -1000.0], [-1e300, 0.0, 0.0]])
    Y = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    with np.errstate(over="raise", invalid="raise"):
        P, G = np.empty_like(Z), np.empty_like(Z)
        mod.output_activation("softmax", Z, P)
        loss = mod.output_loss("cross_entropy", Z, Y, G)
    np.testing.assert_allclose(P, [[1, 0, 0], [0, 0.5, 0.5]], atol=1e-300)
    np.testing.assert_allclose(loss, (2000 + 1e300 + np.log(2)) / 2)


# ---------------------------------------------------------------- networks


def _net_cases():
    for act in ACTIVATIONS:
        yield act, "sigmoid", 0.0
    for out in ("softmax", "identity", "exp"):
        yield "tanh", out, 0.0
    yield "leaky_relu", "softmax", 0.3
    yield ["relu", "sigmoid"], "identity", 0.1


def _data(sizes, output, n=23, seed=0, dtype=np.float64):
    X, Y = make_data(n, sizes, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    if output == "softmax":
        Y = rng.integers(0, sizes[-1], n)
    elif output == "identity":
        Y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    elif output == "exp":
        Y = rng.poisson(1.5, (n, sizes[-1])).astype(dtype)
    return X, Y


@pytest.mark.parametrize("act, output, l2", list(_net_cases()))
def test_network_gradient_finite_differences(backend, act, output, l2):
    sizes = [4, 6, 5, 3] if isinstance(act, list) else [4, 6, 3]
    X, Y = _data(sizes, output)
    net = fastmlp.MLP(sizes, activation=act, output=output, l2=l2, negative_slope=0.1, seed=4, backend=backend)
    for b in net.intercepts_:  # keep pre-activations away from the ReLU kinks
        b[...] = 0.3
    dcoefs, dintercepts = net.gradients(X, Y)
    analytic = np.concatenate([a.ravel() for pair in zip(dcoefs, dintercepts) for a in pair])
    numeric = fd_gradient(lambda: net.loss(X, Y), net.params_)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("act, output, l2", list(_net_cases()))
@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_same_in_both_backends(dtype, act, output, l2, shuffle):
    sizes = [5, 40, 30, 3] if isinstance(act, list) else [5, 70, 3]   # BLAS-sized and loop-sized layers
    X, Y = _data(sizes, output, n=90, dtype=dtype)
    nets = [fastmlp.MLP(sizes, activation=act, output=output, l2=l2, seed=1, dtype=dtype, backend=b)
            .fit(X, Y, epochs=4, lr=0.05, batch_size=16, shuffle=shuffle) for b in ("cython", "numpy")]
    c, r = nets
    assert c.params_.dtype == dtype
    assert_close(c.params_, r.params_, dtype, scale=10)
    assert_close(c.history_["loss"], r.history_["loss"], dtype, scale=10)
    assert_close(c.predict_proba(X), r.predict_proba(X), dtype, scale=10)
    if output in ("sigmoid", "softmax"):   # labels agree exactly; values (identity, exp) above
        np.testing.assert_array_equal(c.predict(X[:5]), r.predict(X[:5]))


def test_losses_follow_pytorch_conventions(backend):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((8, 3))
    for output, Y, formula in [
        ("softmax", rng.integers(0, 4, 8), lambda z, y: -np.mean(log_softmax(z, axis=1)[np.arange(8), y])),
        ("identity", rng.standard_normal((8, 4)), lambda z, y: np.mean((z - y) ** 2)),
        ("sigmoid", (rng.random((8, 4)) < 0.5) * 1.0, lambda z, y: np.mean(np.logaddexp(0, z) - z * y)),
    ]:
        net = fastmlp.MLP([3, 5, 4], activation="tanh", output=output, l2=0.5, seed=0, backend=backend)
        W1, W2 = net.coefs_
        z = np.tanh(X @ W1 + net.intercepts_[0]) @ W2 + net.intercepts_[1]
        penalty = 0.5 * 0.5 * (np.sum(W1**2) + np.sum(W2**2))
        np.testing.assert_allclose(net.loss(X, Y), formula(z, Y) + penalty, rtol=1e-12)


def test_l2_is_weight_decay_on_weights_only(backend):
    X, Y = make_data(10, [3, 4, 1])
    net = fastmlp.MLP([3, 4, 1], l2=0.7, seed=0, backend=backend)
    plain = fastmlp.MLP([3, 4, 1], seed=0, backend=backend)
    (dW, db), (pW, pb) = net.gradients(X, Y), plain.gradients(X, Y)
    for a, b, W in zip(dW, pW, net.coefs_):
        np.testing.assert_allclose(a, b + 0.7 * W, rtol=1e-12, atol=1e-15)
    for a, b in zip(db, pb):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    # one full-batch SGD step equals W - lr * (dW + l2 W)
    expected = net.params_ - 0.1 * np.concatenate([a.ravel() for pair in zip(dW, db) for a in pair])
    net.fit(X, Y, epochs=1, lr=0.1, batch_size=None, warm_start=True)
    np.testing.assert_allclose(net.params_, expected, rtol=1e-12, atol=1e-15)


def test_softmax_labels_and_predict(backend):
    X, _ = make_data(30, [4, 3])
    y = np.arange(30) % 3
    net = fastmlp.MLP([4, 8, 3], output="softmax", seed=0, backend=backend)
    assert net.loss_name == "cross_entropy"
    assert net.loss(X, y) == net.loss(X, np.eye(3)[y]) == net.loss(X, y.astype(float))
    net.fit(X, y, epochs=200, lr=0.5, batch_size=None)
    proba = net.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1)
    assert net.predict(X).shape == (30,) and set(net.predict(X)) <= {0, 1, 2}
    assert np.mean(net.predict(X) == y) > 0.6


@pytest.mark.parametrize(
    "y, match",
    [(np.full(6, 3), r"0\.\.2"), (np.full(6, -1), r"0\.\.2"), (np.full(6, 0.5), "integers"),
     (np.ones((6, 3)), "one-hot"), (np.full((6, 3), 0.5), "one-hot")],
)
def test_softmax_bad_labels(backend, y, match):
    net = fastmlp.MLP([2, 3], output="softmax", seed=0, backend=backend)
    before = net.params_.copy()
    with pytest.raises(ValueError, match=match):
        net.fit(np.zeros((6, 2)), y)
    np.testing.assert_array_equal(net.params_, before)


def test_regression(backend, dtype):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (200, 2)).astype(dtype)
    y = (X[:, 0] ** 2 - X[:, 1]).astype(dtype)
    net = fastmlp.MLP([2, 16, 1], activation="tanh", output="identity", seed=0, dtype=dtype, backend=backend)
    assert net.loss_name == "mse"
    net.fit(X, y, epochs=300, lr=0.1, batch_size=20)
    pred = net.predict(X)
    assert pred.shape == (200,) and pred.dtype == dtype
    assert net.history_["loss"][-1] < 0.1 * net.history_["loss"][0]
    two = fastmlp.MLP([2, 4, 2], output="identity", seed=0, backend=backend)
    assert two.predict(X).shape == (200, 2)


def test_option_errors():
    with pytest.raises(ValueError, match="at least 2 units"):
        fastmlp.MLP([3, 1], output="softmax")
    with pytest.raises(ValueError, match="goes with loss"):
        fastmlp.MLP([3, 2], output="softmax", loss="bce")
    with pytest.raises(ValueError, match="l2"):
        fastmlp.MLP([3, 1], l2=-1)
    with pytest.raises(TypeError, match="l2"):
        fastmlp.MLP([3, 1], l2="big")
    with pytest.raises(ValueError, match="activation"):
        fastmlp.MLP([3, 4, 4, 1], activation=["relu", "swish"])


def test_init_follows_activation():
    relu = fastmlp.MLP([400, 300, 1], activation="relu", seed=0)
    gelu = fastmlp.MLP([400, 300, 1], activation="gelu", seed=0)
    tanh = fastmlp.MLP([400, 300, 1], activation="tanh", seed=0)
    assert abs(relu.coefs_[0].std() - np.sqrt(2 / 400)) < 0.005        # He
    np.testing.assert_array_equal(gelu.coefs_[0], relu.coefs_[0])      # GELU: the ReLU family
    assert abs(tanh.coefs_[0].std() - np.sqrt(2 / 700)) < 0.005        # Glorot uniform: var = 2/(n_in+n_out)


@pytest.mark.parametrize("kind, names", [("activation", tuple(ACTIVATIONS)), ("output", OUTPUTS),
                                         ("loss", tuple(LOSSES))])
@pytest.mark.parametrize("value", [np.tanh, len, 3, None, "swish"])
def test_a_bad_option_name_is_refused_with_the_registered_names(kind, names, value):
    """Anything but a registered name (a NumPy function, a number, None, a typo) raises a
    ValueError that shows the value and lists the registry's names, whatever it is."""
    if kind == "loss" and value is None:
        return    # (the output's own loss)
    with pytest.raises(ValueError) as raised:
        fastmlp.MLP([3, 4, 2], **{kind: value})
    message = str(raised.value)
    assert f"{kind} must be one of {', '.join(map(repr, names))}" in message
    assert repr(value) in message
    assert ("give its name" in message) == callable(value)


def test_activation_names_one_per_hidden_layer_or_a_bad_entry_is_named():
    net = fastmlp.MLP([3, 4, 5, 1], activation=("relu", "tanh"))
    assert net._net.activations == ("relu", "tanh")
    with pytest.raises(ValueError, match=r"unknown activation <ufunc 'tanh'> \(give its name, a string\)"):
        fastmlp.MLP([3, 4, 5, 1], activation=["relu", np.tanh])


@pytest.mark.parametrize("kind, value", [("optimizer", np.tanh), ("optimizer", "nadam"), ("lr_schedule", 1),
                                         ("threads", "many")])
def test_bad_fit_option_names_are_refused_with_the_accepted_ones(kind, value):
    from fastmlp._training import FIT_OPTIMIZERS, SCHEDULES

    names = {"optimizer": FIT_OPTIMIZERS, "lr_schedule": SCHEDULES}.get(kind)
    with pytest.raises(ValueError, match=f"unknown {kind} ") as raised:
        fastmlp.MLP([2, 1]).fit(np.zeros((4, 2)), np.zeros(4), epochs=1, **{kind: value})
    if names is not None:
        assert f"{kind} must be one of {', '.join(map(repr, names))}" in str(raised.value)


def test_bad_init_name_is_refused_with_the_accepted_ones():
    from fastmlp._initializers import INITS

    with pytest.raises(ValueError, match=r"unknown init <built-in function zeros> \(give its name") as raised:
        fastmlp.MLP([2, 1], init=np.zeros)
    assert f"init must be one of {', '.join(map(repr, INITS))}" in str(raised.value)


@pytest.mark.parametrize("slope", [1e300, -1e39, 10**400])
def test_negative_slope_beyond_float32_is_refused_up_front(slope):
    """The compiled backend holds the slope in the model's dtype: beyond float32's range it
    would be infinite. Refused with a ValueError naming it (was: a bare OverflowError)."""
    with pytest.raises(ValueError, match="negative_slope must be"):
        fastmlp.MLP([3, 4, 1], negative_slope=slope)


def test_negative_slope_as_large_as_float32_holds_trains_or_diverges_cleanly(backend, dtype):
    net = fastmlp.MLP([3, 4, 1], negative_slope=-3e38, seed=0, backend=backend, dtype=dtype)
    assert np.isfinite(net.params_).all()
    try:
        net.fit(np.ones((8, 3)), np.ones(8), epochs=2)
    except fastmlp.DivergenceError:
        pass
