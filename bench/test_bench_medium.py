"""Medium: 8192 x 784 (MNIST-sized), a 784-256-256-1 network, batches of 128, one epoch.

BLAS-bound: the rows show how close each trainer gets to the "GEMM floor", the time of
just the eight matrix products one epoch of this network needs, on preallocated buffers.
Run in float32 and float64; each dtype prints as its own group.

Rows: fastmlp cython (without and with shuffling), fastmlp numpy, PyTorch (2 threads,
the machine's cores), scikit-learn's MLPClassifier (ReLU, plain SGD), the GEMM floor.
fastmlp and scikit-learn use their BLAS's default thread count (see the session header).
Each training row times initialisation plus one epoch, as ``fit`` does.
"""

import numpy as np
import pytest

import fastmlp

N, D = 8192, 784
SIZES = [D, 256, 256, 1]
BATCH = 128
EPOCHS = 1
LR = 0.01
ROUNDS = 5


def group(dtype):
    return f"medium: {N}x{D} {dtype}, {'-'.join(map(str, SIZES))}, batch {BATCH}, {EPOCHS} epoch"


@pytest.fixture(scope="module", params=["float32", "float64"])
def data(request, make_data):
    """(dtype name, X, y): built once per dtype for the whole module."""
    X, y = make_data(N, D, seed=2, dtype=np.dtype(request.param))
    return request.param, X, y


@pytest.mark.parametrize(
    "backend, shuffle, epoch_only",
    [("cython", False, False), ("cython", True, False), ("cython", False, True), ("numpy", False, False)],
    ids=["cython", "cython-shuffle", "cython-epoch-only", "numpy"],
)
def test_fastmlp(benchmark, data, backend, shuffle, epoch_only, assert_finite_history):
    """A whole fit (initialisation + 1 epoch); with epoch_only, a warm-started fit from the
    same initial weights each round: the epoch alone, as the GEMM floor row times it."""
    dtype, X, y = data
    net = fastmlp.MLP(SIZES, activation="leaky_relu", output="sigmoid", loss="bce", seed=0,
                      dtype=dtype, backend=backend)
    initial, initial_loss = net.params_.copy(), net.loss(X, y)  # every round starts from these
    benchmark.group = group(dtype)
    benchmark.name = f"fastmlp {backend}{' shuffle' if shuffle else ''}{' epoch only' if epoch_only else ''}"
    kwargs = {"epochs": EPOCHS, "lr": LR, "batch_size": BATCH, "shuffle": shuffle, "warm_start": epoch_only}

    def reset():
        net.params_[...] = initial

    benchmark.pedantic(net.fit, args=(X, y), kwargs=kwargs, setup=reset, rounds=ROUNDS, iterations=1,
                       warmup_rounds=1)
    assert net.backend == backend and net.params_.dtype == np.dtype(dtype)
    assert_finite_history(net.history_["loss"][-EPOCHS:], EPOCHS)
    # one epoch on learnable labels lowers the training loss
    assert net.loss(X, y) < initial_loss


def test_torch(benchmark, data, torch_threads, torch_fit, assert_finite_history):
    torch = pytest.importorskip("torch")
    torch_threads(2)
    dtype, X, y = data
    benchmark.group = group(dtype)
    benchmark.name = f"torch {torch.__version__} 2 threads"
    history = benchmark.pedantic(torch_fit, args=(torch, X, y, SIZES, BATCH, EPOCHS, LR),
                                 rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert_finite_history(history, EPOCHS)


def test_sklearn(benchmark, data, sklearn_sgd, assert_finite_history):
    sklearn = pytest.importorskip("sklearn")
    dtype, X, y = data
    clf = sklearn_sgd(SIZES, BATCH, EPOCHS, LR)
    benchmark.group = group(dtype)
    benchmark.name = f"sklearn {sklearn.__version__} (relu)"
    benchmark.pedantic(clf.fit, args=(X, y.ravel()), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    assert clf.n_iter_ == EPOCHS
    assert clf.coefs_[0].dtype == np.dtype(dtype)  # scikit-learn keeps float32 as given
    assert_finite_history(clf.loss_curve_, EPOCHS)


# ---------------------------------------------------------------- the GEMM floor


def gemm_buffers(dtype, seed=3):
    """Weights, activations and gradients of one batch, allocated (and filled) once."""
    rng = np.random.default_rng(seed)
    h1, h2, k = SIZES[1:]

    def fill(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(dtype)

    return {
        "W1": fill(D, h1), "W2": fill(h1, h2), "W3": fill(h2, k),
        "A1": fill(BATCH, h1), "A2": fill(BATCH, h2),
        "dZ1": fill(BATCH, h1), "dZ2": fill(BATCH, h2), "dZ3": fill(BATCH, k),
        "Z1": np.empty((BATCH, h1), dtype), "Z2": np.empty((BATCH, h2), dtype),
        "Z3": np.empty((BATCH, k), dtype),
        "dW1": np.empty((D, h1), dtype), "dW2": np.empty((h1, h2), dtype),
        "dW3": np.empty((h2, k), dtype),
        "dA1": np.empty((BATCH, h1), dtype), "dA2": np.empty((BATCH, h2), dtype),
    }


def gemm_floor(X, b):
    """The matrix products of one epoch of SIZES over X in batches of BATCH, nothing else."""
    mm = np.matmul
    for start in range(0, len(X), BATCH):
        Xb = X[start : start + BATCH]
        # forward
        mm(Xb, b["W1"], out=b["Z1"])
        mm(b["A1"], b["W2"], out=b["Z2"])
        mm(b["A2"], b["W3"], out=b["Z3"])
        # backward (no dX for the input layer)
        mm(b["A2"].T, b["dZ3"], out=b["dW3"])
        mm(b["dZ3"], b["W3"].T, out=b["dA2"])
        mm(b["A1"].T, b["dZ2"], out=b["dW2"])
        mm(b["dZ2"], b["W2"].T, out=b["dA1"])
        mm(Xb.T, b["dZ1"], out=b["dW1"])


def test_gemm_floor(benchmark, data):
    dtype, X, y = data
    assert len(X) % BATCH == 0  # every batch full: 8192 / 128 = 64 batches
    b = gemm_buffers(dtype)
    benchmark.group = group(dtype)
    benchmark.name = "GEMM floor (np.matmul, out=)"
    benchmark.pedantic(gemm_floor, args=(X, b), rounds=ROUNDS, iterations=1, warmup_rounds=1)
    # the buffers hold the last batch's products
    Xb = X[-BATCH:].astype(np.float64)
    rtol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(b["Z1"], Xb @ b["W1"].astype(np.float64), rtol=rtol, atol=rtol)
    np.testing.assert_allclose(b["dW1"], Xb.T @ b["dZ1"].astype(np.float64), rtol=rtol, atol=rtol)
    assert np.isfinite(b["dA1"]).all() and np.isfinite(b["dW3"]).all()
