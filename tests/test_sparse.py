"""Sparse input (scipy.sparse CSR/CSC/COO, matrices and arrays): the first layer reads the
CSR rows directly in both backends, and every result equals the dense input's."""

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from _support import BACKENDS, DTYPES, assert_close, backend_module
from fastmlp import MLP
from fastmlp._spec import Network, Optimizer

FORMATS = ["csr_matrix", "csr_array", "csc_matrix", "coo_array"]


def sparse_data(n, d, density=0.1, seed=0, k=1):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed)
    X.data = rng.standard_normal(X.data.shape)
    Y = (rng.random((n, k)) < 0.5).astype(float)
    return X, Y


def as_format(X, name, dtype=np.float64):
    return getattr(sp, name)(X.astype(dtype))


# the fused SGD step (scales W_0 by 1 - lr * l2 inside the sparse product), SGD's gradient
# path with momentum, and Adam; each against the same fit on the dense X
OPTIMIZERS = [dict(optimizer="sgd", lr=0.05, l2=1e-3), dict(optimizer="sgd", lr=0.05, momentum=0.9),
              dict(optimizer="adam", lr=0.01), dict(optimizer="lbfgs", lr=1.0, batch_size=None)]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("form", FORMATS)
@pytest.mark.parametrize("options", OPTIMIZERS, ids=lambda o: o["optimizer"] + ("_l2" if "l2" in o else ""))
def test_sparse_fit_equals_dense_fit(backend, dtype, form, options):
    X, Y = sparse_data(120, 40)
    options = dict(options)
    l2, batch_size = options.pop("l2", 0.0), options.pop("batch_size", 16)
    fits = []
    for data in (X.toarray(), as_format(X, form)):
        net = MLP([40, 8, 6, 1], activation="tanh", l2=l2, seed=1, dtype=dtype, backend=backend)
        net.fit(data, Y, epochs=5, batch_size=batch_size, **options)
        fits.append((net.params_.copy(), net.predict_proba(data), net.loss(data, Y), net.history_["loss"]))
    for sparse_result, dense_result in zip(fits[1], fits[0]):
        assert_close(sparse_result, dense_result, dtype, scale=10)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sparse_backends_agree_on_loss_gradient_and_predictions(dtype):
    """Across backends on the same CSR input, with more rows than one forward chunk (2048),
    empty rows, duplicate entries (summed) and unsorted column indices."""
    X, Y = sparse_data(2500, 30, density=0.05, k=3)
    X = sp.csr_matrix((np.r_[X.data, 1.5, 1.5], np.r_[X.indices, 2, 2],
                       np.r_[X.indptr[:-1], X.indptr[-1] + 2]), shape=X.shape)  # last row: 2 duplicates
    X.indices[X.indptr[0]:X.indptr[1]] = X.indices[X.indptr[0]:X.indptr[1]][::-1].copy()
    X = X.astype(dtype)
    net = MLP([30, 7, 3], activation="gelu", l2=0.01, seed=0, dtype=dtype)
    dense = X.toarray()
    results = {}
    for backend in BACKENDS:
        impl = backend_module(backend)
        grad = np.empty_like(net.params_)
        out = np.empty((2500, 3), dtype)
        loss = impl.loss_gradient(net._net, net.params_, X, Y.astype(dtype), grad)
        results[backend] = (loss, grad, impl.predict_proba(net._net, net.params_, X, out).copy())
        dense_grad = np.empty_like(grad)
        dense_loss = impl.loss_gradient(net._net, net.params_, dense, Y.astype(dtype), dense_grad)
        assert_close(loss, dense_loss, dtype)
        assert_close(grad, dense_grad, dtype, scale=10)
    for a, b in zip(results["cython"], results["numpy"]):
        assert_close(a, b, dtype, scale=10)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), d=st.integers(1, 12), density=st.floats(0, 1), seed=st.integers(0, 2**16),
       batch=st.integers(1, 50), shuffle=st.booleans())
def test_sparse_training_matches_dense_for_any_shape(n, d, density, seed, batch, shuffle):
    """Any shape and density (all-zero matrices, empty rows, one column), batches that do
    or do not divide n: both backends train on sparse X exactly as on the dense X."""
    X = sp.random(n, d, density=density, format="csr", random_state=seed)
    Y = (np.random.default_rng(seed).random((n, 2)) < 0.5).astype(float)
    for backend in BACKENDS:
        params = []
        for data in (X, X.toarray()):
            net = MLP([d, 3, 2], activation="relu", seed=seed, backend=backend)
            net.fit(data, Y, epochs=2, batch_size=batch, shuffle=shuffle, optimizer="adam")
            params.append(net.params_)
        assert_close(params[0], params[1], np.float64)


@pytest.mark.slow     # (tracemalloc over a fit of 3000 x 20000 rows: seconds)
@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_input_is_never_made_dense(backend):
    """A 3000 x 20000 X at 0.05% density: dense it would take 480 MB; training and predicting
    from the sparse rows allocate a small fraction of that."""
    X, Y = sparse_data(3000, 20000, density=0.0005)
    net = MLP([20000, 4, 1], seed=0, backend=backend)
    tracemalloc.start()
    try:
        net.fit(X, Y, epochs=2, batch_size=100, optimizer="adam")
        net.predict_proba(X)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.05 * X.shape[0] * X.shape[1] * 8, f"peak {peak / 1e6:.1f} MB"


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_sparse_input_is_refused(backend):
    X, Y = sparse_data(20, 5)
    net = MLP([5, 3, 1], seed=0, backend=backend)
    before = net.params_.copy()
    bad = X.copy()
    bad.indices[0] = 5                       # a column past the last one
    with pytest.raises(ValueError, match="column index lies outside 0..4"):
        net.fit(bad, Y)
    bad = X.copy()
    bad.indptr[3] = bad.indptr[4] + 1        # rows that overlap
    with pytest.raises(ValueError, match="indptr"):
        net.predict_proba(bad)
    bad = X.copy()
    bad.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        net.fit(bad, Y)
    with pytest.raises(ValueError, match="X has 4 features but the network takes 5"):
        net.predict(X[:, :4])
    with pytest.raises(ValueError, match="X is empty"):
        net.predict(X[:0])
    np.testing.assert_array_equal(net.params_, before)


def test_compiled_loops_check_their_own_copy_of_the_csr_arrays():
    """The compiled backend re-checks the CSR structure on the copies its loops read, so an
    X changed after the Python-side check cannot send them outside the weights."""
    from types import SimpleNamespace

    core = pytest.importorskip("fastmlp._core")
    net = Network((5, 3, 1), ("relu",), "sigmoid", "bce")
    good = sp.random(4, 5, density=0.5, format="csr", random_state=0)
    core._dense_or_csr(good, net, np.float64)
    for indptr, indices in [([0, 1, 2, 3, 3], [0, 1, 5]), ([0, 2, 1, 3, 3], [0, 1, 2]),
                            ([1, 1, 2, 3, 3], [0, 1, 2]), ([0, 1, 2, 3, 9], [0, 1, 2])]:
        bad = SimpleNamespace(indptr=np.array(indptr), indices=np.array(indices), data=np.ones(3))
        with pytest.raises(ValueError, match="not a valid CSR matrix"):
            core._dense_or_csr(bad, net, np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
def test_sparse_train_at_backend_level_with_shuffling_and_weights(backend):
    """``train`` itself (gathered Y and weights, row ids instead of gathered X rows)."""
    X, Y = sparse_data(64, 12, density=0.3)
    impl = backend_module(backend)
    net = Network((12, 5, 1), ("leaky_relu",), "sigmoid", "bce", l2=0.01)
    w = np.random.default_rng(0).random(64)
    runs = []
    for data in (X, X.toarray()):
        params = np.random.default_rng(1).standard_normal(net.param_count()) * 0.3
        losses = np.zeros(3)
        impl.train(net, params, data, Y, optimizer=Optimizer("adam", 0.01), state=np.zeros((2, len(params))),
                   losses=losses, epochs=3, batch_size=10, rng=np.random.default_rng(2), sample_weight=w)
        runs.append((params, losses))
    for a, b in zip(*runs):
        assert_close(a, b, np.float64)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_estimators_take_sparse_input(backend, solver):
    """TF-IDF-like sparse features: the estimators fit and predict from CSR and CSC as from
    the dense array (scikit-learn accepts both formats for its MLPs)."""
    sklearn = pytest.importorskip("sklearn")  # noqa: F841
    from fastmlp import MLPClassifier, MLPRegressor

    X, _ = sparse_data(150, 60, density=0.08, seed=3)
    X.data = np.abs(X.data)
    labels = np.array(["ham", "spam", "eggs"])[np.asarray(X[:, :20].sum(axis=1)).ravel().astype(int) % 3]
    target = np.asarray(X[:, :10].sum(axis=1)).ravel()
    for Estimator, y in ((MLPClassifier, labels), (MLPRegressor, target)):
        fits = [Estimator(hidden_layer_sizes=(12,), solver=solver, max_iter=30, random_state=0, backend=backend).fit(data, y)
                for data in (X.toarray(), X.tocsc(), X)]
        expected = fits[0].predict(X.toarray())
        for est in fits[1:]:
            predicted = est.predict(X)
            if Estimator is MLPClassifier:
                np.testing.assert_array_equal(predicted, expected)
                assert_close(est.predict_proba(X), fits[0].predict_proba(X.toarray()), np.float64, scale=100)
            else:
                assert_close(predicted, expected, np.float64, scale=100)
            assert est.n_iter_ == fits[0].n_iter_


# A fit whose callback rewrites the caller's CSR arrays (indices far outside the columns,
# indptr past the values) after the first epoch; run in a child, since the failure it
# guards against was a segfault of the NumPy backend inside scipy's sparse products.
REWRITING_CALLBACK_CHILD = """
import sys
import numpy as np, scipy.sparse as sp
from fastmlp import MLP
backend, dtype, optimizer = sys.argv[1:]
X = sp.random(200, 30, density=0.2, format="csr", random_state=0, dtype=dtype)
y = (np.random.default_rng(0).random(200) < 0.5).astype(float)
def rewrite(epoch, logs):
    X.indices[:] = 2**30 + 12345
    X.indptr[1:] = 1000 * X.indptr[-1]
    return True
net = MLP([30, 8, 1], seed=0, dtype=dtype, backend=backend)
try:
    net.fit(X, y, epochs=5, batch_size=None if optimizer == "lbfgs" else 16, optimizer=optimizer,
            callback=rewrite)
except ValueError as error:
    print("refused:", error)
else:
    print("trained:", len(net.history_["loss"]), "epochs")
"""


@pytest.mark.slow     # (a subprocess)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "lbfgs"])
def test_callback_rewriting_the_csr_arrays_cannot_crash_a_fit(backend, dtype, optimizer):
    """Each backend trains on its own checked copy of the CSR arrays: the epoch loops finish
    on it; L-BFGS, whose every evaluation checks X again, refuses the rewritten X."""
    child = subprocess.run([sys.executable, "-c", REWRITING_CALLBACK_CHILD, backend, dtype, optimizer],
                           capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, (child.returncode, child.stderr[-2000:])
    if optimizer == "lbfgs":
        assert child.stdout.startswith("refused: X is not a valid CSR matrix"), child.stdout
    else:
        assert child.stdout.strip() == "trained: 5 epochs", child.stdout


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_reads_its_own_copy_of_the_csr_arrays(backend, dtype):
    """A callback that rewrites the caller's column indices and indptr (to other valid ones)
    changes nothing in the fit: it trains on the structure it checked at its start."""
    X, Y = sparse_data(50, 12)
    X = X.astype(dtype)
    fits = []
    for rewrite in (False, True):
        data = X.copy()

        def callback(epoch, logs, data=data, rewrite=rewrite):
            if rewrite:
                data.indices[:] = 0
                data.indptr[1:] = data.indptr[-1]
            return True

        net = MLP([12, 5, 1], seed=0, dtype=dtype, backend=backend)
        net.fit(data, Y, epochs=3, batch_size=8, callback=callback)
        fits.append(net.params_.copy())
        assert not rewrite or (data.indices == 0).all()
    np.testing.assert_array_equal(fits[0], fits[1])
