"""NumPy backend: the seed's math, one small function per step.

The readable definition of every kernel, the fallback when the compiled module is
missing, and the oracle the tests hold ``fastmlp._core`` against. Every public function
here has the same name, signature and in/out behaviour as its twin in ``_core.pyx``:
outputs are written into the buffers the caller passes (and returned).
"""

import numpy as np

from ._common import (
    check_output,
    check_slope,
    dense_backward_args,
    dense_forward_args,
    elementwise_args,
    network_args,
    train_args,
    unflatten,
)

# ------------------------------------------------------------------ kernels
# Each public kernel checks its arguments, then calls the unchecked `_name` twin that the
# network functions below use inside their loops.


def _dense_forward(A, W, b, Z):
    np.matmul(A, W, out=Z)
    Z += b
    return Z


def _dense_backward(A_prev, W, dZ, dW, db, dA_prev):
    np.matmul(A_prev.T, dZ, out=dW)
    np.sum(dZ, axis=0, out=db)
    if dA_prev is not None:
        np.matmul(dZ, W.T, out=dA_prev)


def _leaky_relu(Z, A, slope):
    A[...] = np.where(Z >= 0, Z, slope * Z)
    return A


def _leaky_relu_backward(Z, dA, dZ, slope):
    np.multiply(dA, np.where(Z >= 0, 1.0, slope).astype(dZ.dtype), out=dZ)
    return dZ


def _sigmoid(Z, A):
    # 1 / (1 + exp(-z)), written so that exp never overflows: e = exp(-|z|)
    e = np.exp(-np.abs(Z))
    np.divide(np.where(Z >= 0, 1, e), 1 + e, out=A)
    return A


def _sigmoid_bce(Z, Y, G, scale):
    """Sum of BCE(sigmoid(Z), Y) from the logits; G = scale * (sigmoid(Z) - Y) unless None."""
    losses = np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))
    if G is not None:
        _sigmoid(Z, G)
        G -= Y
        G *= scale
    return float(np.sum(losses, dtype=np.float64))


def dense_forward(A, W, b, Z):
    """Z = A @ W + b.  IN: A (n, n_in), W (n_in, n_out), b (n_out,).  OUT: Z (n, n_out)."""
    return _dense_forward(*dense_forward_args(A, W, b, Z))


def dense_backward(A_prev, W, dZ, dW, db, dA_prev=None):
    """Gradients of a dense layer.  IN: A_prev (n, n_in), W (n_in, n_out), dZ (n, n_out).
    OUT: dW = A_prev.T @ dZ, db = dZ summed over rows, and dA_prev = dZ @ W.T if given."""
    _dense_backward(*dense_backward_args(A_prev, W, dZ, dW, db, dA_prev))


def leaky_relu(Z, A, negative_slope=0.01):
    """A = Z where Z >= 0, else negative_slope * Z.  IN: Z.  OUT: A (same shape)."""
    (Z,) = elementwise_args(A, "A", (Z, "Z"))
    return _leaky_relu(Z, A, check_slope(negative_slope))


def leaky_relu_backward(Z, dA, dZ, negative_slope=0.01):
    """dZ = dA * (1 where Z >= 0, else negative_slope).  IN: Z, dA.  OUT: dZ."""
    Z, dA = elementwise_args(dZ, "dZ", (Z, "Z"), (dA, "dA"))
    return _leaky_relu_backward(Z, dA, dZ, check_slope(negative_slope))


def sigmoid(Z, A):
    """A = 1 / (1 + exp(-Z)), computed without overflow.  IN: Z.  OUT: A."""
    (Z,) = elementwise_args(A, "A", (Z, "Z"))
    return _sigmoid(Z, A)


def sigmoid_bce(Z, Y, G):
    """Mean binary cross-entropy of sigmoid(Z) against Y, from the logits Z (stable).

    IN: Z, Y (n, k).  OUT: G = d(mean loss)/dZ = (sigmoid(Z) - Y) / (n * k).
    Returns the mean loss over samples and outputs (PyTorch's BCEWithLogitsLoss).
    """
    Z, Y = elementwise_args(G, "G", (Z, "Z"), (Y, "Y"))
    return _sigmoid_bce(Z, Y, G, 1.0 / Z.size) / Z.size


# ------------------------------------------------------------------ whole networks

_ACTIVATIONS = {"leaky_relu": (_leaky_relu, _leaky_relu_backward)}


def _forward(layers, hidden, slope, X):
    """Pre-activations Zs and activations As (As[0] = X) of every layer; Zs[-1] are logits."""
    Zs, As = [], [X]
    for (W, b), act in zip(layers, hidden + (None,)):
        Z = _dense_forward(As[-1], W, b, np.empty((len(X), W.shape[1]), X.dtype))
        Zs.append(Z)
        if act is not None:
            As.append(_ACTIVATIONS[act][0](Z, np.empty_like(Z), slope))
    return Zs, As


def _loss_gradient(layers, grads, hidden, slope, X, Y):
    """Mean loss over the rows of X; its gradient goes into `grads` unless that is None."""
    Zs, As = _forward(layers, hidden, slope, X)
    dZ = None if grads is None else np.empty_like(Zs[-1])
    loss = _sigmoid_bce(Zs[-1], Y, dZ, 1.0 / Y.size) / Y.size
    if grads is None:
        return loss
    # backward pass: the chain rule, from the output layer down to the first
    for l in reversed(range(len(layers))):
        (W, _), (dW, db) = layers[l], grads[l]
        dA_prev = None if l == 0 else np.empty_like(As[l])
        _dense_backward(As[l], W, dZ, dW, db, dA_prev)
        if l > 0:
            dZ = _ACTIVATIONS[hidden[l - 1]][1](Zs[l - 1], dA_prev, dA_prev, slope)
    return loss


def predict_proba(params, sizes, hidden, negative_slope, output, X, out):
    """OUT: out (n, sizes[-1]) = the network's output activations for X."""
    sizes, hidden, X, _ = network_args(params, sizes, hidden, output, X)
    check_output(out, (len(X), sizes[-1]), "out", params.dtype)
    layers = list(zip(*unflatten(params, sizes)))
    Zs, _ = _forward(layers, hidden, check_slope(negative_slope), X)
    return _sigmoid(Zs[-1], out)


def loss_gradient(params, sizes, hidden, negative_slope, output, X, Y, grad=None):
    """Mean loss of the network on (X, Y); OUT: grad (same layout as params) if given."""
    sizes, hidden, X, Y = network_args(params, sizes, hidden, output, X, Y)
    layers = list(zip(*unflatten(params, sizes)))
    grads = None
    if grad is not None:
        check_output(grad, params.shape, "grad", params.dtype)
        grads = list(zip(*unflatten(grad, sizes)))
    return _loss_gradient(layers, grads, hidden, check_slope(negative_slope), X, Y)


def train_sgd(params, sizes, hidden, negative_slope, output, X, Y, epochs, lr, batch_size, rng, losses):
    """Mini-batch gradient descent on `params` in place.

    Batches are consecutive rows of X, or of a permutation drawn by ``rng.shuffle`` at the
    start of every epoch when `rng` is a numpy Generator. OUT: params, and losses[e] = the
    mean training loss of epoch e (each batch's loss taken before its update).
    """
    sizes, hidden, X, Y = network_args(params, sizes, hidden, output, X, Y)
    n = len(X)
    epochs, lr, batch_size = train_args(epochs, lr, batch_size, n, losses, params.dtype)
    slope = check_slope(negative_slope)
    grad = np.empty_like(params)
    layers = list(zip(*unflatten(params, sizes)))
    grads = list(zip(*unflatten(grad, sizes)))
    order = np.arange(n)
    for epoch in range(epochs):
        if rng is not None:
            rng.shuffle(order)
        total = 0.0
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size) if rng is None else order[start : start + batch_size]
            Xb, Yb = X[rows], Y[rows]
            total += _loss_gradient(layers, grads, hidden, slope, Xb, Yb) * len(Xb)
            params -= lr * grad
        losses[epoch] = total / n
