"""The seed article's XOR script: the oracle that fastmlp is checked and timed against.

One copy, shared by ``tests/test_model.py`` (fastmlp reproduces its weights) and
``bench/test_bench_xor.py`` (its time is a benchmark row). The script's data, initial
weights and training loop are the article's verbatim, comments included; only its prints
are left out, and it is wrapped in a function that returns what those two users need.

Importable as ``_seed`` in the test suite (pytest's ``pythonpath`` has tests/); bench/
loads it by path (``bench/_common.py``).
"""

from typing import NamedTuple

import numpy as np

# the script's data: the four XOR cases and their labels
X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
y = np.array([[0], [1], [1], [0]], dtype=float)
X.flags.writeable = y.flags.writeable = False  # shared by every caller: nobody may change them


def leaky_relu(z, alpha=0.01):
    return np.where(z >= 0, z, alpha * z)


def leaky_relu_grad(z, alpha=0.01):
    return np.where(z >= 0, 1.0, alpha)


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


class SeedRun(NamedTuple):
    """What one run of the script leaves: weights as [W1, b1, W2, b2] with 1-D biases (the
    layout of fastmlp's ``coefs_`` / ``intercepts_``), and the loop's last ``a2`` and ``loss``
    (both from the forward pass of the last epoch, i.e. before its update)."""

    initial: list
    final: list
    a2: np.ndarray
    loss: float


def seed_script():
    """Run the seed article's script once on its XOR data; returns a SeedRun."""
    # --- Initialise weights ---
    rng = np.random.default_rng(42)
    W1 = rng.standard_normal((2, 4)) * 0.1  # 2 inputs → 4 hidden neurons
    b1 = np.zeros((1, 4))
    W2 = rng.standard_normal((4, 1)) * 0.1  # 4 hidden → 1 output neuron
    b2 = np.zeros((1, 1))
    initial = [W1.copy(), b1.ravel().copy(), W2.copy(), b2.ravel().copy()]

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

    return SeedRun(initial, [W1, b1.ravel(), W2, b2.ravel()], a2, float(loss))
