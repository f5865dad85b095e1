"""The compiled backend's small products (_kernels.h: AVX-512 register tiles for products of
4096 to 131072 multiply-adds with 8 or more columns in C; passes over one matrix for
one-column layers and column sums) against NumPy, and the same
calls with them turned off (BLAS and the plain loops), around their tile sizes (4 rows;
32 float64 or 64 float32 columns) and both work thresholds, in both dtypes.

Where the CPU has no AVX-512 the "tiles" cases are skipped: the module never calls them."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastmlp
from _support import DTYPES, assert_close, backend_module

core = backend_module("cython")


@pytest.fixture(params=["tiles", "blas"])
def small(request):
    """Run the test with _kernels.h's products on ("tiles") and off ("blas")."""
    want = request.param == "tiles"
    before = core._small_kernels()
    if core._small_kernels(want) != want:
        pytest.skip("this CPU has no AVX-512: the small kernels never run")
    yield want
    core._small_kernels(before)


def random(shape, dtype, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def check_dense(m, k, n, dtype, seed=0):
    """dense_forward and dense_backward of an (m, k) x (k, n) layer against float64 NumPy."""
    A, W, b, dZ = random((m, k), dtype, seed), random((k, n), dtype, seed + 1), random(n, dtype, seed + 2), \
        random((m, n), dtype, seed + 3)
    A64, W64, dZ64 = (x.astype(np.float64) for x in (A, W, dZ))
    Z, dW, db, dA = (np.empty(s, dtype) for s in [(m, n), (k, n), (n,), (m, k)])
    core.dense_forward(A, W, b, Z)
    core.dense_backward(A, W, dZ, dW, db, dA)
    scale = 10 * max(1.0, np.sqrt(max(m, n, k)) / 4)
    assert_close(Z, A64 @ W64 + b, dtype, scale=scale)
    assert_close(dW, A64.T @ dZ64, dtype, scale=scale)
    assert_close(db, dZ64.sum(axis=0), dtype, scale=scale)
    assert_close(dA, dZ64 @ W64.T, dtype, scale=scale)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [1, 3, 4, 5, 31, 32, 33])
@pytest.mark.parametrize("n", [8, 31, 32, 33, 63, 64, 65, 130])
def test_products_around_the_tile_sizes(small, dtype, m, n):
    """Full tiles, edge rows (m % 4) and edge columns (n % 32, n % 64), the inner dimension
    k chosen so that every product (forward m*k*n, dW k*m*n, dA m*n*k) is in the tiles'
    range, and one k with more columns of dA than rows in a 64-column block of the pack."""
    for k in (max(1, 4096 // (m * n)), 40, 71):
        if m * n * k <= 131072:
            check_dense(m, k, n, dtype, seed=m + n + k)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m, k, n", [
    (16, 32, 8), (16, 32, 7), (1, 512, 8), (8, 64, 8), (7, 73, 8),       # 4096 = BLAS_MIN_WORK
    (32, 64, 64), (64, 64, 32), (16, 128, 64), (33, 64, 63),             # 131072 = SMALL_MAX_WORK
    (33, 64, 64), (64, 1024, 2), (2, 1024, 64), (2, 1025, 64),           # around it
])
def test_products_at_the_work_thresholds(small, dtype, m, k, n):
    check_dense(m, k, n, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [7, 31, 32, 33, 63, 64, 65, 100])
@pytest.mark.parametrize("m", [1, 3, 4, 8, 9, 64])
def test_one_column_layers_and_column_sums(small, dtype, m, k):
    """n = 1 (fm_outer for dA, fm_tn1 for dW: blocks of 32 or 64 elements of W's column) and
    the bias gradient's column sums (fm_colsum) from 256 elements up, and below (loops)."""
    check_dense(m, k, 1, dtype, seed=m * k)
    check_dense(k, m, 32, dtype, seed=m * k + 1)


@pytest.mark.parametrize("dtype", DTYPES)
@given(m=st.integers(1, 70), k=st.integers(1, 140), n=st.integers(1, 140), seed=st.integers(0, 2**16))
@settings(max_examples=60, deadline=None)
def test_products_hypothesis(dtype, m, k, n, seed):
    before = core._small_kernels()
    try:
        for on in (True, False):
            core._small_kernels(on)
            check_dense(m, k, n, dtype, seed)
    finally:
        core._small_kernels(before)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["leaky_relu", "tanh", "relu"])
@pytest.mark.parametrize("m", [4, 31, 32])
def test_network_gradient_matches_the_reference(small, dtype, activation, m):
    """Forward with the bias and Leaky ReLU in the tiles' epilogue, backward with Leaky
    ReLU's derivative in it (tanh and relu: the separate passes after the tiles)."""
    sizes = [32, 64, 40, 1]
    X, Y = random((m, 32), dtype, m), (random((m, 1), dtype, m + 1) > 0).astype(dtype)
    grads = []
    for backend in ("cython", "numpy"):
        net = fastmlp.MLP(sizes, activation=activation, negative_slope=0.1, seed=3, dtype=dtype,
                          backend=backend)
        grad = np.empty_like(net.params_)
        loss = backend_module(backend).loss_gradient(net._net, net.params_, X, Y, grad=grad)
        grads.append((loss, grad))
    assert_close(grads[0][0], grads[1][0], dtype, scale=10)
    assert_close(grads[0][1], grads[1][1], dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("l2", [0.0, 0.01])
def test_sgd_fit_matches_the_reference(small, dtype, l2):
    """Plain SGD takes its step inside the weight-gradient product (alpha = -lr, beta =
    1 - lr * l2): a tabular-shaped fit ends where the NumPy backend's does."""
    sizes = [32, 64, 64, 1]
    X, Y = random((256, 32), dtype, 0), (random((256, 1), dtype, 1) > 0).astype(dtype)
    params = []
    for backend in ("cython", "numpy"):
        net = fastmlp.MLP(sizes, seed=0, dtype=dtype, l2=l2, backend=backend)
        net.fit(X, Y, epochs=3, lr=0.05, batch_size=32, shuffle=False)
        params.append(net.params_.copy())
    assert_close(params[0], params[1], dtype, scale=100)


# Negative pre-activations whose Leaky ReLU (slope * z) underflows to -0: the compiled
# backend writes A over Z and reads the derivative off A's sign, so it must still see z < 0.
SUBNORMAL = {np.dtype(np.float32): -3e-45, np.dtype(np.float64): -1e-322}


def underflow_net(backend, dtype):
    """A 4-64-64-1 network whose hidden unit 0 of both layers has z = a negative subnormal
    on every row (zero incoming weights, that bias): slope * z rounds to -0."""
    net = fastmlp.MLP([4, 64, 64, 1], negative_slope=0.01, seed=5, dtype=dtype, backend=backend)
    z = SUBNORMAL[np.dtype(dtype)]
    assert z < 0 and np.asarray(z, dtype) * np.asarray(0.01, dtype) == 0
    coefs, intercepts = net.coefs_, net.intercepts_      # views into params_
    for layer in (0, 1):
        coefs[layer][:, 0] = 0
        intercepts[layer][0] = z
    return net


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [4, 64, 300])
def test_leaky_derivative_where_slope_times_z_underflows(small, dtype, m):
    """Gradients (through the tiles at 4 rows, BLAS and the passes after it at 64 and 300)
    and one epoch of fused SGD: both backends take the slope,
    not 1, as the derivative at those units (a 100x larger bias gradient otherwise)."""
    X = random((m, 4), dtype, m) + 2
    Y = (random((m, 1), dtype, m + 1) > 0).astype(dtype)
    grads, fits = [], []
    for backend in ("cython", "numpy"):
        net = underflow_net(backend, dtype)
        dcoefs, dintercepts = net.gradients(X, Y)
        assert dintercepts[0][0] != 0 and dintercepts[1][0] != 0
        grads.append(np.concatenate([a.ravel() for pair in zip(dcoefs, dintercepts) for a in pair]))
        fitted = underflow_net(backend, dtype).fit(X, Y, epochs=1, lr=0.1, batch_size=m, shuffle=False,
                                                   warm_start=True)
        fits.append(fitted.params_.copy())
    assert_close(grads[0], grads[1], dtype, scale=10)
    assert_close(fits[0], fits[1], dtype, scale=10)


def test_fit_is_reproducible(small):
    sizes = [32, 64, 64, 1]
    X, Y = random((512, 32), np.float64, 0), (random((512, 1), np.float64, 1) > 0).astype(np.float64)
    runs = [fastmlp.MLP(sizes, seed=0).fit(X, Y, epochs=2, batch_size=32).params_ for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes, m", [([2, 4, 1], 4), ([3, 5, 2], 7), ([4, 8, 8, 1], 16), ([5, 9, 6, 7, 3], 9),
                                      ([2, 1, 1], 3), ([6, 12, 1], 1)])
@pytest.mark.parametrize("activation", ["leaky_relu", "relu", "tanh", "sigmoid", "gelu", "identity"])
def test_small_networks_of_any_depth_match_the_reference(dtype, sizes, m, activation):
    """Batches whose products are all under BLAS_MIN_WORK go through _small.h's loops, layer
    by layer, whatever the depth and widths (widths around its blocks of 4, one-output
    layers): loss, gradients and a few full-batch SGD epochs (the step fused into the
    gradient) end where the NumPy backend's do."""
    X = random((m, sizes[0]), dtype, m)
    Y = (random((m, sizes[-1]), dtype, m + 1) > 0).astype(dtype)
    results = []
    for backend in ("cython", "numpy"):
        net = fastmlp.MLP(sizes, activation=activation, seed=2, dtype=dtype, l2=0.01, backend=backend)
        grad = np.empty_like(net.params_)
        loss = backend_module(backend).loss_gradient(net._net, net.params_, X, Y, grad=grad)
        net.fit(X, Y, epochs=5, lr=0.1, batch_size=None)
        results.append((loss, grad, net.params_.copy(), np.asarray(net.history_["loss"])))
    for got, want in zip(*results):
        assert_close(got, want, dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [8, 9, 15, 16, 64])
@pytest.mark.parametrize("k", [8, 15, 16, 33, 71, 100])
def test_gradient_through_the_transposed_pack(small, dtype, n, k):
    """dA = dZ @ W.T goes through fm_nt, which packs W's rows transposed by 8 x 8 blocks
    (FM_TRANSPOSE8) and moves the edges one element at a time: n (the packed rows' length)
    and k (W's rows: 32 or 64 per pack block) around multiples of 8 and of the blocks."""
    m = max(4, -(-4096 // (n * k)))          # enough rows for the tiles' work range
    if m * n * k <= 131072:
        check_dense(m, k, n, dtype, seed=n * k)


# The passes between the products that run in AVX-512 lanes where the CPU has them (ReLU and
# its derivative, Adam's step) give the plain loops' values bit for bit: the tests compare
# them with _kernels.h on and off, so a fused multiply-add or a reordered operation there fails.

def _toggled(run):
    """run() with _kernels.h on, then off; skips where the CPU has no AVX-512."""
    before = core._small_kernels()
    try:
        if not core._small_kernels(True):
            pytest.skip("this CPU has no AVX-512: the small kernels never run")
        on = run()
        core._small_kernels(False)
        off = run()
    finally:
        core._small_kernels(before)
    return on, off


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [1, 7, 8, 17, 64, 1000])
def test_relu_passes_are_the_plain_loops(dtype, size):
    """ReLU and its derivative, with zeros of both signs, NaN, infinities and subnormals among
    the inputs, around the vector widths (8 float64 or 16 float32 lanes)."""
    rng = np.random.default_rng(size)
    special = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-310, -1e-310, 1e-40, -1e-40])
    Z = np.concatenate([special, rng.standard_normal(size)])[:max(size, 1)].astype(dtype)
    dA = np.concatenate([rng.standard_normal(size), special])[-Z.size:].astype(dtype)
    Z, dA = Z.reshape(1, -1), dA.reshape(1, -1)

    def run():
        A, dZ = np.empty_like(Z), np.empty_like(Z)
        core.activation("relu", Z, A)
        core.activation_backward("relu", Z, A, dA, dZ)
        return A.tobytes(), dZ.tobytes()

    on, off = _toggled(run)
    assert on == off


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_adam_step_is_the_plain_loop(dtype, optimizer, activation):
    """Adam's step in AVX-512 lanes: a network too small for the tiles (every product under
    BLAS_MIN_WORK, so only the passes differ between the two runs) fits to the same bits;
    80 and 40 weights: vector bodies and tails in both dtypes."""
    X = random((2, 2), dtype, 0)
    Y = (random((2, 1), dtype, 1) > 0).astype(dtype)

    def run():
        net = fastmlp.MLP([2, 40, 1], activation=activation, seed=3, dtype=dtype, backend="cython")
        net.fit(X, Y, epochs=30, lr=0.01, batch_size=None, optimizer=optimizer)
        return net.params_.tobytes()

    on, off = _toggled(run)
    assert on == off
