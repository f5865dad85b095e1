"""Every kernel, compiled against NumPy: float32/float64, hypothesis-drawn shapes and
values, read-only and non-contiguous inputs, outputs written in place."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.special import expit

from _support import DTYPES, assert_close, backend_module

dims = st.integers(1, 40)


def both():
    return backend_module("cython"), backend_module("numpy")


def values(shape, dtype, bound=50.0):
    return hnp.arrays(dtype, shape, elements=st.floats(-bound, bound, allow_nan=False, width=32))


@st.composite
def matrix(draw, dtype, bound=50.0):
    shape = (draw(dims), draw(dims))
    return draw(values(shape, dtype, bound))


def random(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ---------------------------------------------------------------- dense layers


@pytest.mark.parametrize("dtype", DTYPES)
@given(n=dims, n_in=dims, n_out=dims, seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_dense_forward(dtype, n, n_in, n_out, seed):
    A, W, b = random((n, n_in), dtype, seed), random((n_in, n_out), dtype, seed + 1), random(n_out, dtype, seed + 2)
    expected = A.astype(np.float64) @ W + b
    for mod in both():
        Z = np.empty((n, n_out), dtype)
        assert mod.dense_forward(A, W, b, Z) is Z
        assert_close(Z, expected, dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("want_dA", [True, False])
@given(n=dims, n_in=dims, n_out=dims, seed=st.integers(0, 2**16))
@settings(max_examples=40, deadline=None)
def test_dense_backward(dtype, want_dA, n, n_in, n_out, seed):
    A, W, dZ = random((n, n_in), dtype, seed), random((n_in, n_out), dtype, seed + 1), random((n, n_out), dtype, seed + 2)
    A64, W64, dZ64 = (x.astype(np.float64) for x in (A, W, dZ))
    for mod in both():
        dW, db = np.empty((n_in, n_out), dtype), np.empty(n_out, dtype)
        dA = np.empty((n, n_in), dtype) if want_dA else None
        assert mod.dense_backward(A, W, dZ, dW, db, dA) is None
        assert_close(dW, A64.T @ dZ64, dtype, scale=10)
        assert_close(db, dZ64.sum(axis=0), dtype, scale=10)
        if want_dA:
            assert_close(dA, dZ64 @ W64.T, dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_kernels_agree_across_backends(dtype):
    """Large enough for the BLAS path (m * n * k >= 4096) and small enough for the loops."""
    # (n_out = 1: matrix-vector products; n_in = 1: outer products)
    for n, n_in, n_out in [(3, 2, 4), (64, 33, 17), (128, 100, 60), (200, 50, 1), (200, 1, 50), (300, 1, 1)]:
        A, W, b = random((n, n_in), dtype, 1), random((n_in, n_out), dtype, 2), random(n_out, dtype, 3)
        dZ = random((n, n_out), dtype, 4)
        outs = []
        for mod in both():
            Z, dW, db, dA = (np.empty(s, dtype) for s in [(n, n_out), (n_in, n_out), (n_out,), (n, n_in)])
            mod.dense_forward(A, W, b, Z)
            mod.dense_backward(A, W, dZ, dW, db, dA)
            outs.append((Z, dW, db, dA))
        for c, r in zip(*outs):
            assert_close(c, r, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_in", [1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 127])
def test_matrix_vector_products_below_the_blas_threshold(dtype, n_in):
    """One output (n_out = 1): the loops' dot products (8 interleaved partial sums, then the
    rest), their outer products and their row sums, with row counts on both sides of
    m * n_in = 4096 (below it they run as loops, above as BLAS), against float64 NumPy."""
    for n in (1, 3, 4096 // n_in - 1, 4096 // n_in, 4096 // n_in + 1):
        if n < 1:
            continue
        A, W, b = random((n, n_in), dtype, n), random((n_in, 1), dtype, n + 1), random(1, dtype, n + 2)
        dZ = random((n, 1), dtype, n + 3)
        A64, W64, dZ64 = (x.astype(np.float64) for x in (A, W, dZ))
        Z, dW, db, dA = (np.empty(s, dtype) for s in [(n, 1), (n_in, 1), (1,), (n, n_in)])
        mod = backend_module("cython")
        mod.dense_forward(A, W, b, Z)
        mod.dense_backward(A, W, dZ, dW, db, dA)
        assert_close(Z, A64 @ W64 + b, dtype, scale=10)
        assert_close(dW, A64.T @ dZ64, dtype, scale=10)
        assert_close(db, dZ64.sum(axis=0), dtype, scale=10)
        assert_close(dA, dZ64 @ W64.T, dtype, scale=10)


# ---------------------------------------------------------------- activations and loss


def test_leaky_relu_gradient_is_one_at_zero(backend):
    """The seed's derivative: 1 where z >= 0, so exactly 1 at z == 0."""
    mod = backend_module(backend)
    Z = np.array([[0.0, -0.0, -1.0, 2.0]])
    dZ = np.empty_like(Z)
    mod.leaky_relu_backward(Z, np.ones_like(Z), dZ, 0.25)
    np.testing.assert_array_equal(dZ, [[1.0, 1.0, 0.25, 1.0]])


@pytest.mark.parametrize("dtype", DTYPES)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_sigmoid(dtype, data):
    Z = data.draw(matrix(dtype, bound=1e4))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        outs = []
        for mod in both():
            A = np.empty_like(Z)
            assert mod.sigmoid(Z, A) is A
            outs.append(A)
    for A in outs:
        assert np.all((A >= 0) & (A <= 1))
        assert_close(A, expit(Z.astype(np.float64)), dtype)


def test_sigmoid_bce_extreme_logits(backend):
    mod = backend_module(backend)
    Z = np.array([[-1e308, 1e308, -800.0, 800.0]])
    Y = np.array([[0.0, 1.0, 1.0, 0.0]])
    G = np.empty_like(Z)
    loss = mod.sigmoid_bce(Z, Y, G)
    np.testing.assert_allclose(loss, (800.0 + 800.0) / 4)
    np.testing.assert_allclose(G, [[0, 0, -0.25, 0.25]])


# ---------------------------------------------------------------- memory layouts


def _kernel_calls(dtype):
    """(name, call) pairs: each call takes a dict of inputs and returns the outputs it wrote."""
    n, n_in, n_out = 7, 5, 3

    def inputs():
        # values exactly representable in float32, so converting dtypes loses nothing
        def random(shape, dtype, seed):
            return np.random.default_rng(seed).standard_normal(shape).astype(np.float32).astype(dtype)

        return {
            "A": random((n, n_in), dtype, 1), "W": random((n_in, n_out), dtype, 2), "b": random(n_out, dtype, 3),
            "dZ": random((n, n_out), dtype, 4), "Y": (random((n, n_out), dtype, 5) > 0).astype(dtype),
        }

    def dense_forward(mod, x):
        Z = np.empty((n, n_out), dtype)
        return [mod.dense_forward(x["A"], x["W"], x["b"], Z)]

    def dense_backward(mod, x):
        outs = [np.empty(s, dtype) for s in [(n_in, n_out), (n_out,), (n, n_in)]]
        mod.dense_backward(x["A"], x["W"], x["dZ"], *outs)
        return outs

    def leaky_relu(mod, x):
        return [mod.leaky_relu(x["dZ"], np.empty((n, n_out), dtype), 0.1)]

    def leaky_relu_backward(mod, x):
        return [mod.leaky_relu_backward(x["dZ"], x["Y"], np.empty((n, n_out), dtype), 0.1)]

    def sigmoid(mod, x):
        return [mod.sigmoid(x["dZ"], np.empty((n, n_out), dtype))]

    def sigmoid_bce(mod, x):
        G = np.empty((n, n_out), dtype)
        return [np.array(mod.sigmoid_bce(x["dZ"], x["Y"], G)), G]

    calls = [dense_forward, dense_backward, leaky_relu, leaky_relu_backward, sigmoid, sigmoid_bce]
    return inputs, calls


def _read_only(x):
    x = x.copy()
    x.flags.writeable = False
    return x


def _non_contiguous(x):
    """The same values seen through a strided view (every other element of a bigger array)."""
    if x.ndim == 1:
        big = np.zeros(2 * len(x), x.dtype)
        big[::2] = x
        return big[::2]
    return np.asfortranarray(x)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("layout", [_read_only, _non_contiguous, lambda x: x.astype(np.float64 if x.dtype == np.float32 else np.float32)], ids=["read-only", "non-contiguous", "other-dtype"])
def test_inputs_in_any_layout(backend, dtype, layout):
    mod = backend_module(backend)
    inputs, calls = _kernel_calls(dtype)
    x = inputs()
    for call in calls:
        expected = call(mod, x)
        got = call(mod, {k: layout(v) for k, v in x.items()})
        for e, g in zip(expected, got):
            assert g.dtype == e.dtype
            assert_close(g, e, dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_outputs_written_in_place(backend, dtype):
    mod = backend_module(backend)
    A = random((6, 4), dtype, 0)
    out = np.full((6, 4), np.nan, dtype)
    assert np.shares_memory(mod.sigmoid(A, out), out) and not np.isnan(out).any()
    out[...] = np.nan
    mod.leaky_relu(A, out)
    assert not np.isnan(out).any()


@pytest.mark.parametrize(
    "bad, error",
    [
        (lambda dt: np.empty((3, 4), dt)[:, ::2], ValueError),    # non-contiguous output
        (lambda dt: np.empty((3, 3), dt), ValueError),            # wrong shape
        (lambda dt: np.empty((3, 2), np.int64), TypeError),       # not float
        (lambda dt: np.empty((3, 2), dt).tolist(), TypeError),    # not an array
    ],
)
def test_bad_output_buffers_raise(backend, bad, error):
    mod = backend_module(backend)
    Z = np.zeros((3, 2))
    with pytest.raises(error):
        mod.sigmoid(Z, bad(np.float64))
    ro = np.empty((3, 2))
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        mod.leaky_relu(Z, ro)


def test_bad_kernel_inputs_raise(backend):
    mod = backend_module(backend)
    with pytest.raises(ValueError, match="columns"):
        mod.dense_forward(np.zeros((2, 3)), np.zeros((4, 5)), np.zeros(5), np.empty((2, 5)))
    with pytest.raises(ValueError, match="b must have shape"):
        mod.dense_forward(np.zeros((2, 3)), np.zeros((3, 5)), np.zeros(4), np.empty((2, 5)))
    with pytest.raises(TypeError, match="real numbers"):
        mod.sigmoid(np.array([["a", "b"]]), np.empty((1, 2)))
    with pytest.raises(ValueError, match="shape"):
        mod.sigmoid_bce(np.zeros((2, 2)), np.zeros((2, 3)), np.empty((2, 2)))


def test_same_functions_and_signatures():
    """The two backends export the same public functions with the same signatures."""
    import inspect

    core, ref = both()

    def api(mod):
        return {
            name: str(inspect.signature(obj))
            for name, obj in vars(mod).items()
            if not name.startswith("_") and callable(obj) and not isinstance(obj, type)
            and getattr(obj, "__module__", None) == mod.__name__
        }

    core_api, ref_api = api(core), api(ref)
    assert set(core_api) == set(ref_api) == {
        "dense_forward", "dense_backward", "activation", "activation_backward", "leaky_relu",
        "leaky_relu_backward", "sigmoid", "output_activation", "output_loss", "sigmoid_bce",
        "predict_proba", "loss_gradient", "train",
    }
    assert core_api == ref_api


@pytest.mark.parametrize("n", [1, 63, 64, 65, 1000])
def test_sigmoid_bce_accurate_for_tiny_and_large_terms(backend, n):
    """Full float64 accuracy whether exp(-|z|) is near 1 or far below 1e-4, over many elements."""
    mod = backend_module(backend)
    z = np.linspace(-70, 70, n).reshape(-1, 1)
    y = (z > 0).astype(float)            # mostly confident and right: losses down to 1e-31
    G = np.empty_like(z)
    expected = np.mean(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z))))
    np.testing.assert_allclose(mod.sigmoid_bce(z, y, G), expected, rtol=1e-14)
    np.testing.assert_allclose(mod.sigmoid_bce(z, 1 - y, G), np.mean(np.abs(z) + np.log1p(np.exp(-np.abs(z)))), rtol=1e-14)


# ---------------------------------------------------------------- one-hidden-layer networks
# The compiled backend runs networks of one small hidden layer (h * max(n_in, n_out) <= 64,
# batches below BLAS_MIN_WORK multiply-adds) through its own row-by-row loops, with hidden
# units and weight gradients four at a time and the rest one by one: widths around 4 and 8.


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("sizes", [(2, 4, 1), (3, 5, 2), (1, 7, 3), (4, 3, 4), (5, 8, 1), (2, 1, 1)])
@pytest.mark.parametrize("activation", ["leaky_relu", "tanh"])
def test_small_network_loops_match_numpy(dtype, sizes, activation):
    from fastmlp._spec import Network, Optimizer

    net = Network(sizes, activation, negative_slope=0.1, l2=0.01)
    X = random((6, sizes[0]), dtype, 1)
    Y = (random((6, sizes[-1]), dtype, 2) > 0).astype(dtype)
    params = random(net.param_count(), dtype, 3) * 0.5
    (core, ref), results = both(), []
    for mod in (core, ref):
        p, grad = params.copy(), np.empty_like(params)
        loss = mod.loss_gradient(net, p, X, Y, grad)
        out = mod.predict_proba(net, p, X, np.empty((6, sizes[-1]), dtype))
        losses, state = np.empty(10), np.zeros((1, len(p)), dtype)
        for half, batch_size in enumerate((4, 6)):   # mini-batches, then full batches (their own loop)
            mod.train(net, p, X, Y, optimizer=Optimizer("sgd", 0.3), state=state,
                      losses=losses[5 * half:5 * half + 5], epochs=5, batch_size=batch_size)
        results.append((loss, grad, out, losses, p))
    for got, want in zip(*results):
        assert_close(got, want, np.dtype(dtype))
    assert np.abs(results[0][1]).max() > 1e-3       # a gradient worth comparing


# XOR-sized networks (Leaky ReLU, a few inputs and hidden units, one BCE output) trained by
# full batches of plain SGD: the small-network loops, against NumPy.


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("sizes", [(2, 4, 1), (1, 1, 1), (3, 5, 1), (4, 8, 1), (2, 7, 1)])
@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_tiny_network_steps_match_numpy(dtype, sizes, l2):
    from fastmlp._spec import Network, Optimizer

    net = Network(sizes, "leaky_relu", negative_slope=0.1, l2=l2)
    X = random((5, sizes[0]), dtype, 4)
    Y = (random((5, 1), dtype, 5) > 0).astype(dtype)
    params = random(net.param_count(), dtype, 6) * 0.7
    results = []
    for mod in both():
        p, losses, state = params.copy(), np.empty(30), np.zeros((1, len(params)), dtype)
        mod.train(net, p, X, Y, optimizer=Optimizer("sgd", 0.5), state=state, losses=losses,
                  epochs=30, batch_size=5)
        results.append((losses, p))
    for got, want in zip(*results):
        assert_close(got, want, np.dtype(dtype))
    assert np.abs(results[0][1] - params).max() > 0.05    # the steps moved the weights
