"""The seed's job: the 2-4-1 XOR network, 5000 full-batch epochs at lr=0.1, float64.

Rows: fastmlp on each backend, the seed article's own NumPy script (tests/_seed.py, the one
copy the tests check fastmlp against, handed in by the ``seed_script`` fixture), and
PyTorch (one thread) from the script's initial weights. Every row checks that the trained
network solves XOR, so a fast-but-wrong build cannot post a time.
"""

import numpy as np
import pytest

import fastmlp

GROUP = "xor: 2-4-1, 5000 full-batch epochs, lr 0.1, float64"
EPOCHS = 5000
LR = 0.1


# ---------------------------------------------------------------- PyTorch


def torch_xor(torch, X, y, W1, W2):
    """The same network and steps in PyTorch from the initial weights W1 (2, 4), W2 (4, 1)
    and zero biases; returns the final probabilities (4, 1) and the last loss."""
    nn, F = torch.nn, torch.nn.functional
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y)
    l1 = nn.Linear(2, 4, dtype=torch.float64)
    l2 = nn.Linear(4, 1, dtype=torch.float64)
    with torch.no_grad():  # the seed's initial weights (nn.Linear keeps W as (out, in))
        l1.weight.copy_(torch.from_numpy(W1.T))
        l2.weight.copy_(torch.from_numpy(W2.T))
        l1.bias.zero_()
        l2.bias.zero_()
    opt = torch.optim.SGD([*l1.parameters(), *l2.parameters()], lr=LR)
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(EPOCHS):
        opt.zero_grad()
        loss = loss_fn(l2(F.leaky_relu(l1(Xt), 0.01)), yt)
        loss.backward()
        opt.step()
    with torch.no_grad():
        return torch.sigmoid(l2(F.leaky_relu(l1(Xt), 0.01))).numpy(), loss.item()


# ---------------------------------------------------------------- rows


def assert_solves_xor(proba, y):
    proba = np.asarray(proba).reshape(-1)
    assert np.array_equal(np.round(proba), y.reshape(-1)), proba


@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_fastmlp(benchmark, xor_data, backend):
    X, y = xor_data
    net = fastmlp.MLP([2, 4, 1], activation="leaky_relu", output="sigmoid", loss="bce",
                      init="normal", init_scale=0.1, seed=42, dtype="float64", backend=backend)
    benchmark.group = GROUP
    benchmark.name = f"fastmlp {backend}"
    rounds = 100 if backend == "cython" else 5
    benchmark.pedantic(net.fit, args=(X, y), kwargs={"epochs": EPOCHS, "lr": LR},
                       rounds=rounds, iterations=1, warmup_rounds=1)
    assert net.backend == backend
    assert net.predict(X).tolist() == [0, 1, 1, 0]
    assert len(net.history_["loss"]) == EPOCHS and np.isfinite(net.history_["loss"]).all()
    assert net.history_["loss"][-1] < 0.05


def test_seed_script(benchmark, xor_data, seed_script):
    _, y = xor_data
    benchmark.group = GROUP
    benchmark.name = "seed NumPy script"
    run = benchmark.pedantic(seed_script, rounds=5, iterations=1, warmup_rounds=1)
    assert_solves_xor(run.a2, y)
    assert np.isfinite(run.loss) and run.loss < 0.05


def test_torch(benchmark, xor_data, seed_script, torch_threads):
    torch = pytest.importorskip("torch")
    torch_threads(1)
    X, y = xor_data
    W1, _, W2, _ = seed_script().initial  # the seed's initial weights (its biases are zero)
    benchmark.group = GROUP
    benchmark.name = f"torch {torch.__version__} 1 thread"
    proba, loss = benchmark.pedantic(torch_xor, args=(torch, X, y, W1, W2), rounds=3, iterations=1,
                                     warmup_rounds=1)
    assert_solves_xor(proba, y)
    assert np.isfinite(loss) and loss < 0.05
