"""Small tabular: 4096 x 32 float64, a 32-64-64-1 network, batches of 32, 10 epochs.

Small batches of a small network: per-step overhead (Python, framework dispatch, BLAS call
setup) dominates the arithmetic here. Rows: fastmlp on each backend, PyTorch (one
thread, the same loop over contiguous batches), scikit-learn's MLPClassifier (plain SGD).

scikit-learn has no Leaky ReLU: its row uses ReLU, the closest it offers. Each row times
initialisation plus training, as ``fit`` does.
"""

import numpy as np
import pytest

import fastmlp

N, D = 4096, 32
SIZES = [D, 64, 64, 1]
BATCH = 32
EPOCHS = 10
LR = 0.01
GROUP = f"tabular: {N}x{D} float64, {'-'.join(map(str, SIZES))}, batch {BATCH}, {EPOCHS} epochs, no shuffle"


@pytest.fixture(scope="module")
def data(make_data):
    return make_data(N, D, seed=1, dtype=np.float64)


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_fastmlp(benchmark, data, backend, assert_finite_history):
    X, y = data
    net = fastmlp.MLP(SIZES, activation="leaky_relu", output="sigmoid", loss="bce", seed=0,
                      dtype="float64", backend=backend)
    benchmark.group = GROUP
    benchmark.name = f"fastmlp {backend}"
    kwargs = {"epochs": EPOCHS, "lr": LR, "batch_size": BATCH, "shuffle": False}
    rounds = 20 if backend == "cython" else 5
    benchmark.pedantic(net.fit, args=(X, y), kwargs=kwargs, rounds=rounds, iterations=1,
                       warmup_rounds=1)
    assert net.backend == backend
    assert_finite_history(net.history_["loss"], EPOCHS)
    assert net.history_["loss"][-1] < net.history_["loss"][0]


def test_torch(benchmark, data, torch_threads, torch_fit, assert_finite_history):
    torch = pytest.importorskip("torch")
    torch_threads(1)
    X, y = data
    benchmark.group = GROUP
    benchmark.name = f"torch {torch.__version__} 1 thread"
    history = benchmark.pedantic(torch_fit, args=(torch, X, y, SIZES, BATCH, EPOCHS, LR),
                                 rounds=5, iterations=1, warmup_rounds=1)
    assert_finite_history(history, EPOCHS)
    assert history[-1] < history[0]


def test_sklearn(benchmark, data, sklearn_sgd, assert_finite_history):
    sklearn = pytest.importorskip("sklearn")
    X, y = data
    clf = sklearn_sgd(SIZES, BATCH, EPOCHS, LR)
    benchmark.group = GROUP
    benchmark.name = f"sklearn {sklearn.__version__} (relu)"
    benchmark.pedantic(clf.fit, args=(X, y.ravel()), rounds=5, iterations=1, warmup_rounds=1)
    assert clf.n_iter_ == EPOCHS
    assert_finite_history(clf.loss_curve_, EPOCHS)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
