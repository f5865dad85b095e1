"""The seed's job: the 2-4-1 XOR network, 5000 full-batch epochs at lr=0.1, float64.

Rows: fastmlp on each backend, the seed article's own NumPy script (its loop copied
verbatim), and PyTorch (one thread) from the same initial weights. Every row checks that
the trained network solves XOR, so a fast-but-wrong build cannot post a time.
"""

import numpy as np
import pytest

import fastmlp

GROUP = "xor: 2-4-1, 5000 full-batch epochs, lr 0.1, float64"
EPOCHS = 5000
LR = 0.1


def seed_weights():
    """The seed's initial weights: default_rng(42), W = standard_normal * 0.1, b = 0."""
    rng = np.random.default_rng(42)
    W1 = rng.standard_normal((2, 4)) * 0.1
    W2 = rng.standard_normal((4, 1)) * 0.1
    return W1, W2


# ---------------------------------------------------------------- the seed's script


def leaky_relu(z, alpha=0.01):
    return np.where(z >= 0, z, alpha * z)


def leaky_relu_grad(z, alpha=0.01):
    return np.where(z >= 0, 1.0, alpha)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def seed_script(X, y):
    """The seed article's training script, its loop verbatim; returns (a2, loss)."""
    # --- Initialise weights ---
    rng = np.random.default_rng(42)
    W1 = rng.standard_normal((2, 4)) * 0.1  # 2 inputs → 4 hidden neurons
    b1 = np.zeros((1, 4))
    W2 = rng.standard_normal((4, 1)) * 0.1  # 4 hidden → 1 output neuron
    b2 = np.zeros((1, 1))

    lr = 0.1
    epochs = 5000

    for epoch in range(epochs):
        # Forward pass — store all intermediates
        z1 = X @ W1 + b1  # pre-activation, hidden layer
        a1 = leaky_relu(z1)  # activation, hidden layer
        z2 = a1 @ W2 + b2  # pre-activation, output layer
        a2 = sigmoid(z2)  # predicted probability

        # Loss — binary cross-entropy
        loss = -np.mean(
            y * np.log(a2 + 1e-8) + (1 - y) * np.log(1 - a2 + 1e-8)
        )

        # Backward pass — chain rule applied layer by layer
        # Output layer: combined BCE + sigmoid gradient simplifies to (a2 - y) / n
        dL_dz2 = (a2 - y) / len(y)
        dL_dW2 = a1.T @ dL_dz2
        dL_db2 = dL_dz2.sum(axis=0, keepdims=True)

        # Hidden layer: gradient flows back through W2, then through Leaky ReLU
        dL_da1 = dL_dz2 @ W2.T
        dL_dz1 = dL_da1 * leaky_relu_grad(z1)
        dL_dW1 = X.T @ dL_dz1
        dL_db1 = dL_dz1.sum(axis=0, keepdims=True)

        # Gradient descent update
        W2 -= lr * dL_dW2
        b2 -= lr * dL_db2
        W1 -= lr * dL_dW1
        b1 -= lr * dL_db1

    return a2, loss


# ---------------------------------------------------------------- PyTorch


def torch_xor(torch, X, y):
    """The same network and steps in PyTorch; returns the final probabilities (4, 1)."""
    nn, F = torch.nn, torch.nn.functional
    Xt = torch.from_numpy(X)
    yt = torch.from_numpy(y)
    W1, W2 = seed_weights()
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


def test_seed_script(benchmark, xor_data):
    X, y = xor_data
    benchmark.group = GROUP
    benchmark.name = "seed NumPy script"
    a2, loss = benchmark.pedantic(seed_script, args=(X, y), rounds=5, iterations=1, warmup_rounds=1)
    assert_solves_xor(a2, y)
    assert np.isfinite(loss) and loss < 0.05


def test_torch(benchmark, xor_data, torch_threads):
    torch = pytest.importorskip("torch")
    torch_threads(1)
    X, y = xor_data
    benchmark.group = GROUP
    benchmark.name = f"torch {torch.__version__} 1 thread"
    proba, loss = benchmark.pedantic(torch_xor, args=(torch, X, y), rounds=3, iterations=1,
                                     warmup_rounds=1)
    assert_solves_xor(proba, y)
    assert np.isfinite(loss) and loss < 0.05
