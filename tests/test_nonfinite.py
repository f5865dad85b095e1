"""NaN and overflow inside a network (issue 21, items 4 and 5), both backends, both dtypes.

A NaN weight or pre-activation gives NaN, never a finite number, in every activation's
forward and backward kernel (ReLU included: a max/select on z > 0 would map NaN to 0), in
predict_proba, the loss, its gradient and a training step, whatever kernel path the shape
and batch size pick. A finite row whose values come near the dtype's range inside the
network gives NaN outputs and one RuntimeWarning per call, the same alone and in batches of
any size, in both backends.
"""

import warnings

import numpy as np
import pytest
import scipy.sparse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastmlp
from _support import BACKENDS, DTYPES, backend_module, make_data, train
from fastmlp._registry import ACTIVATIONS, OUTPUTS, default_loss

# Shapes that take each path of the compiled forward and backward: the small-network loops
# (one hidden layer of few units), the AVX-512 register tiles, BLAS, one-output layers
# (matrix-vector and outer products), two hidden layers.
SHAPES = [[2, 4, 1], [4, 8, 1], [10, 32, 1], [20, 64, 3], [64, 128, 1], [8, 16, 16, 2]]
BATCHES = [1, 2, 7, 100, 2500]         # 2500 > the compiled backend's 2048-row chunks

Z_VALUES = [np.nan, -3.0, -0.0, 0.0, 2.5, np.nan, 1e-3, -1e-3]


def _nan_rows(P):
    return np.isnan(P).any(axis=1)


# ---------------------------------------------------------------- kernels, one by one


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", tuple(ACTIVATIONS))
def test_activation_kernels_keep_nan(backend, dtype, name):
    """act(NaN) is NaN; dZ = dA * act'(Z) is NaN where Z is NaN (the identity's derivative
    does not read Z: dZ = dA there), and where dA is NaN."""
    mod = backend_module(backend)
    Z = np.array([Z_VALUES] * 40, dtype)          # 320 elements: past the vector loops' tails
    A = np.empty_like(Z)
    mod.activation(name, Z, A)
    np.testing.assert_array_equal(np.isnan(A), np.isnan(Z))
    dA = np.ones_like(Z)
    dZ = np.empty_like(Z)
    mod.activation_backward(name, Z, A, dA, dZ)
    assert np.isnan(dZ).any() == (name != "identity")
    if name != "identity":
        np.testing.assert_array_equal(np.isnan(dZ), np.isnan(Z))
    dA[:, 1] = np.nan                             # a NaN dL/dA at z = -3 stays NaN
    mod.activation_backward(name, Z, A, dA, dZ)
    assert np.isnan(dZ[:, 1]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", tuple(ACTIVATIONS))
def test_activation_kernels_agree_on_nan_and_signed_zeros(dtype, name):
    Z = np.array([Z_VALUES] * 5, dtype)
    outs = []
    for backend in BACKENDS:
        mod = backend_module(backend)
        A, dZ = np.empty_like(Z), np.empty_like(Z)
        mod.activation(name, Z, A)
        mod.activation_backward(name, Z, A, np.full_like(Z, -2.0), dZ)
        outs.append((A, dZ))
    for c, r in zip(*outs):     # (bit for bit where no transcendental function rounds)
        if name in ("identity", "relu", "leaky_relu"):
            np.testing.assert_array_equal(c, r)
        else:
            np.testing.assert_allclose(c, r, rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_leaky_relu_kernels_keep_nan(backend, dtype):
    mod = backend_module(backend)
    Z = np.array([Z_VALUES] * 40, dtype)
    A, dZ = np.empty_like(Z), np.empty_like(Z)
    mod.leaky_relu(Z, A, 0.1)
    mod.leaky_relu_backward(Z, np.ones_like(Z), dZ, 0.1)
    np.testing.assert_array_equal(np.isnan(A), np.isnan(Z))
    np.testing.assert_array_equal(np.isnan(dZ), np.isnan(Z))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("output", OUTPUTS)
def test_output_kernels_keep_nan(backend, dtype, output):
    """A NaN logit gives NaN outputs (softmax: its whole row), a NaN loss and gradient."""
    mod = backend_module(backend)
    Z = np.random.default_rng(0).standard_normal((6, 3)).astype(dtype)
    Z[2, 1] = Z[4, 0] = np.nan
    P = np.empty_like(Z)
    mod.output_activation(output, Z, P)
    expected = _nan_rows(Z)[:, None] if output == "softmax" else np.isnan(Z)
    np.testing.assert_array_equal(np.isnan(P), np.broadcast_to(expected, Z.shape))
    Y = np.zeros_like(Z)
    Y[:, 0] = 1
    G = np.empty_like(Z)
    assert np.isnan(mod.output_loss(default_loss(output), Z, Y, G))
    assert np.isnan(G[2]).any() and np.isnan(G[4]).any()


# ---------------------------------------------------------------- NaN weights, whole networks


def _model(sizes, activation, output, backend, dtype, seed=0):
    return fastmlp.MLP(sizes, activation=activation, output=output, seed=seed, dtype=dtype, backend=backend)


def _labels(output, n, k, dtype):
    Y = np.zeros((n, k), dtype)
    if output == "softmax":
        Y[np.arange(n), np.arange(n) % k] = 1
    elif output != "identity":
        Y[::2] = 1
    return Y


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", tuple(ACTIVATIONS))
@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("sizes", SHAPES[:5], ids=str)
def test_nan_weights_give_nan_outputs_loss_and_gradient(backend, dtype, activation, output, sizes):
    """The issue's report: ReLU with coefs_[0][:] = NaN gave predict_proba 0.5 and a finite loss."""
    if output == "softmax" and sizes[-1] == 1:
        sizes = sizes[:-1] + [2]
    m = _model(sizes, activation, output, backend, dtype)
    m.coefs_[0][:] = np.nan
    for n in (1, 7, 100):
        X, _ = make_data(n, sizes, seed=n, dtype=dtype)
        Y = _labels(output, n, sizes[-1], dtype)
        assert np.isnan(m.predict_proba(X)).all()
        assert np.isnan(m.loss(X, Y))
        dW, db = m.gradients(X, Y)
        assert all(np.isnan(g).all() for g in dW[1:] + db[1:])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("sizes", SHAPES, ids=str)
def test_one_nan_weight_or_bias_reaches_every_output(backend, dtype, activation, sizes):
    """A single NaN hidden unit (a weight, or a bias) makes every output NaN, however
    negative its other inputs would make its pre-activation."""
    for where in ("weight", "bias"):
        m = _model(sizes, activation, "sigmoid", backend, dtype)
        if where == "weight":
            m.coefs_[0][0, 0] = np.nan
        else:
            m.intercepts_[0][0] = np.nan
        X, _ = make_data(50, sizes, seed=3, dtype=dtype)
        assert np.isnan(m.predict_proba(X)).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", tuple(ACTIVATIONS))
@pytest.mark.parametrize("sizes", SHAPES, ids=str)
def test_training_from_nan_weights_diverges_at_once(backend, dtype, activation, sizes):
    """The first batch's loss is NaN, so no step is taken and the params stay as they were
    (every training path: the tiny XOR loop, the small loops, tiles, BLAS)."""
    m = _model(sizes, activation, "sigmoid", backend, dtype)
    params = m._params.copy()
    params[: sizes[0] * sizes[1]] = np.nan       # W_1
    before = params.copy()
    X, Y = make_data(40, sizes, seed=1, dtype=dtype)
    for batch_size in (40, 8):
        losses = train(backend, m, params, X, Y, epochs=3, batch_size=batch_size)
        assert np.isnan(losses[0])
        np.testing.assert_array_equal(params, before)


# ---------------------------------------------------------------- overflow inside the network


def _big(dtype):
    """A finite input value near the top of the dtype's range (the issue's 3e38 in float32)."""
    return 3e38 if np.dtype(dtype) == np.float32 else 1.6e308


def _predict_each(m, X, sizes_of_batches):
    """{batch size: (outputs of row 0, the warnings)} predicting X[:n]."""
    out = {}
    for n in sizes_of_batches:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            P = m.predict_proba(X[:n])
        out[n] = (P, [w for w in caught if issubclass(w.category, RuntimeWarning)])
    return out


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "tanh", "gelu"])
@pytest.mark.parametrize("sizes", SHAPES, ids=str)
def test_overflowing_row_gives_nan_alone_and_in_any_batch(dtype, activation, sizes):
    """The issue's report: a float32 ReLU row of 3e38 gave NaN alone and 0.5045 in a batch of
    100 (compiled). Now NaN in every batch, both backends, one warning per call naming the
    overflow and the row count; the other rows are what they are without it."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((max(BATCHES), sizes[0])).astype(dtype)
    X[0] = _big(dtype)
    X[5, 0] = -_big(dtype)                          # another, from one feature
    clean = X.copy()
    clean[[0, 5]] = 0
    for backend in BACKENDS:
        m = _model(sizes, activation, "sigmoid", backend, dtype)
        for n, (P, caught) in _predict_each(m, X, BATCHES).items():
            bad = [0] if n <= 5 else [0, 5]
            assert np.isnan(P[bad]).all()
            assert not np.isnan(np.delete(P, bad, axis=0)).any()
            assert len(caught) == 1, [str(w.message) for w in caught]
            message = str(caught[0].message)
            assert message.startswith(f"overflow: {len(bad)} of {n} rows") and np.dtype(dtype).name in message
            assert "outputs are NaN" in message
            good = np.setdiff1d(np.arange(n), bad)
            np.testing.assert_array_equal(P[good], m.predict_proba(clean[:n])[good])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [[4, 8, 1], [20, 64, 3]], ids=str)
def test_overflowing_row_makes_the_loss_nan_with_a_warning(backend, dtype, sizes):
    m = _model(sizes, "relu", "sigmoid", backend, dtype)
    X, Y = make_data(30, sizes, dtype=dtype)
    X[3] = _big(dtype)
    with pytest.warns(RuntimeWarning, match=r"^overflow: 1 of 30 rows .*so is the loss$"):
        assert np.isnan(m.loss(X, Y))
    with pytest.warns(RuntimeWarning, match=r"^overflow: 1 of 30 rows .*the loss and its gradient$"):
        dW, db = m.gradients(X, Y)
    assert all(np.isnan(g).all() for g in dW + db)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ordinary_data_raise_no_warning(backend, dtype):
    sizes = [10, 32, 2]
    m = _model(sizes, "relu", "softmax", backend, dtype)
    X, _ = make_data(300, sizes, dtype=dtype)
    X *= 1e10                                       # large, but far from the range's top
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(m.predict_proba(X)).all()
        m.loss(X, _labels("softmax", 300, 2, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_overflowing_sparse_row_like_its_dense_twin(dtype):
    sizes = [30, 16, 1]
    X, _ = make_data(200, sizes, dtype=dtype)
    X[X < 0.5] = 0
    X[7, 3] = _big(dtype)
    outs = []
    for backend in BACKENDS:
        m = _model(sizes, "relu", "sigmoid", backend, dtype)
        for data in (X, scipy.sparse.csr_matrix(X)):
            with pytest.warns(RuntimeWarning, match="overflow: 1 of 200 rows"):
                outs.append(m.predict_proba(data))
    for P in outs:
        assert _nan_rows(P).tolist() == [i == 7 for i in range(200)]
        np.testing.assert_allclose(P, outs[0], rtol=1e-4)


@pytest.mark.parametrize("dtype", DTYPES)
@given(d=st.integers(1, 12), h=st.integers(1, 40), k=st.integers(1, 3), depth=st.integers(1, 2),
       seed=st.integers(0, 2**16), scale=st.floats(-40, 0), big_rows=st.integers(1, 3))
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_overflow_verdict_is_independent_of_batch_and_backend(dtype, d, h, k, depth, seed, scale, big_rows):
    """Rows of random signs scaled near the top of the range (10**scale of it, with scale
    down to -40: some overflow, some not): which rows are NaN is the same whatever the
    batch size and backend, and the finite ones agree."""
    sizes = [d] + [h] * depth + [k]
    rng = np.random.default_rng(seed)
    top = float(np.finfo(dtype).max)
    X = rng.standard_normal((300, d)).astype(dtype)
    X[:big_rows] = (rng.uniform(-1, 1, (big_rows, d)) * top * 10.0**scale).astype(dtype)
    outputs = {i: [] for i in range(big_rows)}     # row -> its outputs in every batch holding it
    for backend in BACKENDS:
        m = _model(sizes, "relu", "sigmoid", backend, dtype, seed=seed)
        for n in (1, 2, 3, 7, 100, 300):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                P = m.predict_proba(X[:n])
            for i in range(min(n, big_rows)):
                outputs[i].append(P[i])
    for row in outputs.values():
        assert len({bool(np.isnan(p).any()) for p in row}) == 1
        for p in row:
            np.testing.assert_allclose(p, row[0], rtol=1e-3, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_guard_bound_edges(backend, dtype):
    """All-zero weights cannot overflow whatever the input (no warning, finite outputs); an
    infinite weight makes every row with a nonzero input out of range."""
    sizes = [4, 8, 1]
    X = np.ones((3, 4), dtype)
    X[1] = _big(dtype)
    m = _model(sizes, "relu", "sigmoid", backend, dtype)
    m.coefs_[0][:] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isfinite(m.predict_proba(X)).all()
    m = _model(sizes, "relu", "sigmoid", backend, dtype)
    m.coefs_[0][0, 0] = np.inf
    X[2] = 0
    with pytest.warns(RuntimeWarning, match="overflow: 2 of 3 rows"):
        P = m.predict_proba(X)
    assert np.isnan(P).all()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_size", [50, 10, 1])
def test_training_on_an_overflowing_row_still_diverges(backend, batch_size):
    """The training loop is not guarded row by row: the overflow reaches the loss and the
    divergence handling (DivergenceError, weights of the epochs before) as before."""
    X, Y = make_data(50, [4, 8, 1])
    X[3] = 1e308
    m = _model([4, 8, 1], "relu", "sigmoid", backend, np.float64)
    with pytest.raises(fastmlp.DivergenceError), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m.fit(X, Y, epochs=3, lr=0.01, batch_size=batch_size)
    assert np.isfinite(m._params).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_guard_leaves_a_csr_input_as_it_was(backend):
    """The guard reads a CSR X's stored values and never canonicalises it in place
    (duplicate entries, unsorted indices: abs(X) would sum and sort them)."""
    X = scipy.sparse.csr_matrix((np.array([1.5, 1.5, 2.0, -1.0]), np.array([2, 2, 0, 3]), np.array([0, 3, 4])),
                                shape=(2, 4))
    before = [a.copy() for a in (X.data, X.indices, X.indptr)]
    m = _model([4, 8, 1], "relu", "sigmoid", backend, np.float64)
    m.predict_proba(X)
    m.loss(X, np.zeros((2, 1)))
    for a, b in zip((X.data, X.indices, X.indptr), before):
        np.testing.assert_array_equal(a, b)
