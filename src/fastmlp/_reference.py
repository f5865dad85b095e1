"""NumPy backend: the seed's math, one small function per step.

The readable definition of every kernel, the fallback when the compiled module is
missing, and the oracle the tests hold ``fastmlp._core`` against. Every public function
here has the same name, signature and in/out behaviour as its twin in ``_core.pyx``:
outputs are written into the buffers the caller passes (and returned).
"""

import numpy as np

from ._common import (
    check_activation,
    check_l2,
    check_output,
    check_output_name,
    check_sample_weight,
    check_slope,
    dense_backward_args,
    dense_forward_args,
    elementwise_args,
    network_args,
    train_args,
    unflatten,
)

# ------------------------------------------------------------------ the math
# Unchecked functions, used inside the loops below; the public kernels check, then call them.


def _dense_forward(A, W, b, Z):
    np.matmul(A, W, out=Z)
    Z += b
    return Z


def _dense_backward(A_prev, W, dZ, dW, db, dA_prev):
    np.matmul(A_prev.T, dZ, out=dW)
    np.sum(dZ, axis=0, out=db)
    if dA_prev is not None:
        np.matmul(dZ, W.T, out=dA_prev)


def _sigmoid(Z, A):
    # 1 / (1 + exp(-z)), written so that exp never overflows: e = exp(-|z|)
    e = np.exp(-np.abs(Z))
    np.divide(np.where(Z >= 0, 1, e), 1 + e, out=A)
    return A


# name -> (A = f(Z), f'(Z) from Z and A). Leaky ReLU's derivative is 1 at z = 0 as in the
# seed; ReLU's is 0 there, as in PyTorch.
_ACTIVATIONS = {
    "leaky_relu": (lambda Z, slope: np.where(Z >= 0, Z, slope * Z), lambda Z, A, slope: np.where(Z >= 0, 1, slope)),
    "relu": (lambda Z, slope: np.where(Z > 0, Z, 0), lambda Z, A, slope: Z > 0),
    "tanh": (lambda Z, slope: np.tanh(Z), lambda Z, A, slope: 1 - A * A),
    "sigmoid": (lambda Z, slope: _sigmoid(Z, np.empty_like(Z)), lambda Z, A, slope: A * (1 - A)),
    "identity": (lambda Z, slope: Z, lambda Z, A, slope: 1),
}


def _activation(name, Z, A, slope):
    A[...] = _ACTIVATIONS[name][0](Z, slope)
    return A


def _activation_backward(name, Z, A, dA, dZ, slope):
    np.multiply(dA, _ACTIVATIONS[name][1](Z, A, slope), out=dZ, casting="unsafe")
    return dZ


def _softmax(Z, P):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    np.divide(E, E.sum(axis=1, keepdims=True), out=P)
    return P


def _output_activation(output, Z, P):
    if output == "sigmoid":
        return _sigmoid(Z, P)
    if output == "softmax":
        return _softmax(Z, P)
    P[...] = Z
    return P


def _output_loss(output, Z, Y, G, scale, w=None):
    """Sum over rows of w_i times the per-sample loss of logits Z against Y (w None: all 1);
    G = scale * its gradient.

    Per-sample loss: BCE and squared error are means over the outputs (PyTorch's
    BCEWithLogitsLoss and MSELoss); cross-entropy is -sum_j y_j log softmax(z)_j.
    """
    k = Z.shape[1]
    if output == "sigmoid":   # max(z, 0) - z*y + log(1 + exp(-|z|)), gradient sigmoid(z) - y
        losses = (np.maximum(Z, 0) - Z * Y + np.log1p(np.exp(-np.abs(Z)))) / k
        if G is not None:
            _sigmoid(Z, G)
            G -= Y
            G *= scale / k
    elif output == "softmax":  # log softmax = z - logsumexp(z), gradient softmax(z) * sum(y) - y
        shifted = Z - Z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        losses = -(Y * (shifted - lse))
        if G is not None:
            _softmax(Z, G)
            G *= Y.sum(axis=1, keepdims=True)
            G -= Y
            G *= scale
    else:                      # squared error, gradient 2 (z - y)
        R = Z - Y
        losses = R * R / k
        if G is not None:
            np.multiply(R, 2 * scale / k, out=G)
    if w is None:
        return float(np.sum(losses, dtype=np.float64))
    if G is not None:
        G *= w[:, None]
    return float(np.sum(w[:, None] * losses, dtype=np.float64))


# ------------------------------------------------------------------ kernels


def dense_forward(A, W, b, Z):
    """Z = A @ W + b.  IN: A (n, n_in), W (n_in, n_out), b (n_out,).  OUT: Z (n, n_out)."""
    return _dense_forward(*dense_forward_args(A, W, b, Z))


def dense_backward(A_prev, W, dZ, dW, db, dA_prev=None):
    """Gradients of a dense layer.  IN: A_prev (n, n_in), W (n_in, n_out), dZ (n, n_out).
    OUT: dW = A_prev.T @ dZ, db = dZ summed over rows, and dA_prev = dZ @ W.T if given."""
    _dense_backward(*dense_backward_args(A_prev, W, dZ, dW, db, dA_prev))


def activation(name, Z, A, negative_slope=0.01):
    """A = name(Z) for a hidden activation name.  IN: Z.  OUT: A (same shape)."""
    (Z,) = elementwise_args(A, "A", (Z, "Z"))
    return _activation(check_activation(name), Z, A, check_slope(negative_slope))


def activation_backward(name, Z, A, dA, dZ, negative_slope=0.01):
    """dZ = dA * name'(Z).  IN: Z, A = name(Z), dA.  OUT: dZ (same shape)."""
    Z, A, dA = elementwise_args(dZ, "dZ", (Z, "Z"), (A, "A"), (dA, "dA"))
    return _activation_backward(check_activation(name), Z, A, dA, dZ, check_slope(negative_slope))


def leaky_relu(Z, A, negative_slope=0.01):
    """A = Z where Z >= 0, else negative_slope * Z.  IN: Z.  OUT: A (same shape)."""
    return activation("leaky_relu", Z, A, negative_slope)


def leaky_relu_backward(Z, dA, dZ, negative_slope=0.01):
    """dZ = dA * (1 where Z >= 0, else negative_slope).  IN: Z, dA.  OUT: dZ."""
    return activation_backward("leaky_relu", Z, Z, dA, dZ, negative_slope)


def sigmoid(Z, A):
    """A = 1 / (1 + exp(-Z)), computed without overflow.  IN: Z.  OUT: A."""
    return output_activation("sigmoid", Z, A)


def output_activation(output, Z, P):
    """P = the output activation of the logits Z: "sigmoid", "softmax" (per row) or
    "identity".  IN: Z (n, k).  OUT: P (n, k)."""
    (Z,) = elementwise_args(P, "P", (Z, "Z"))
    return _output_activation(check_output_name(output), Z, P)


def output_loss(output, Z, Y, G):
    """Mean over samples of the loss paired with `output`, from the logits Z (stable).

    "sigmoid": binary cross-entropy, averaged over outputs too (BCEWithLogitsLoss);
    "softmax": cross-entropy -sum_j y_j log softmax(z)_j (CrossEntropyLoss, Y one-hot);
    "identity": squared error, averaged over outputs too (MSELoss).
    IN: Z, Y (n, k).  OUT: G = d(mean loss)/dZ.  Returns the mean loss.
    """
    Z, Y = elementwise_args(G, "G", (Z, "Z"), (Y, "Y"))
    check_output_name(output)
    if G.size == 0:
        raise ValueError("the loss needs at least one element")
    return _output_loss(output, Z, Y, G, 1.0 / len(Z)) / len(Z)


def sigmoid_bce(Z, Y, G):
    """Mean binary cross-entropy of sigmoid(Z) against Y, from the logits Z (stable).

    IN: Z, Y (n, k).  OUT: G = d(mean loss)/dZ = (sigmoid(Z) - Y) / (n * k).
    Returns the mean loss over samples and outputs (PyTorch's BCEWithLogitsLoss).
    """
    return output_loss("sigmoid", Z, Y, G)


# ------------------------------------------------------------------ whole networks


def _forward(layers, hidden, slope, X):
    """Pre-activations Zs and activations As (As[0] = X) of every layer; Zs[-1] are logits."""
    Zs, As = [], [X]
    for (W, b), act in zip(layers, hidden + (None,)):
        Z = _dense_forward(As[-1], W, b, np.empty((len(X), W.shape[1]), X.dtype))
        Zs.append(Z)
        if act is not None:
            As.append(_activation(act, Z, np.empty_like(Z), slope))
    return Zs, As


def _loss_gradient(layers, grads, hidden, slope, output, l2, X, Y, w=None):
    """Mean loss over the rows of X, weighted by w if given (+ the L2 penalty); its gradient
    goes into `grads` unless that is None. A total weight of 0 gives a data loss of 0."""
    Zs, As = _forward(layers, hidden, slope, X)
    dZ = None if grads is None else np.empty_like(Zs[-1])
    weight = len(X) if w is None else float(np.sum(w, dtype=np.float64))
    scale = 1.0 / weight if weight > 0 else 0.0
    loss = _output_loss(output, Zs[-1], Y, dZ, scale, w) * scale
    if l2:
        loss += 0.5 * l2 * sum(float(np.sum(W * W, dtype=np.float64)) for W, _ in layers)
    if grads is None:
        return loss
    # backward pass: the chain rule, from the output layer down to the first
    for l in reversed(range(len(layers))):
        (W, _), (dW, db) = layers[l], grads[l]
        dA_prev = None if l == 0 else np.empty_like(As[l])
        _dense_backward(As[l], W, dZ, dW, db, dA_prev)
        if l2:
            dW += l2 * W
        if l > 0:
            dZ = _activation_backward(hidden[l - 1], Zs[l - 1], As[l], dA_prev, dA_prev, slope)
    return loss


def predict_proba(params, sizes, hidden, negative_slope, output, X, out):
    """OUT: out (n, sizes[-1]) = the network's output activations for X."""
    sizes, hidden, X, _ = network_args(params, sizes, hidden, output, X)
    check_output(out, (len(X), sizes[-1]), "out", params.dtype)
    layers = list(zip(*unflatten(params, sizes)))
    Zs, _ = _forward(layers, hidden, check_slope(negative_slope), X)
    return _output_activation(output, Zs[-1], out)


def loss_gradient(params, sizes, hidden, negative_slope, output, X, Y, grad=None, l2=0.0,
                  sample_weight=None):
    """Mean loss of the network on (X, Y), plus 0.5 * l2 * sum(W**2) over the weights.

    With sample_weight (n,), the mean is sum(w_i * loss_i) / sum(w_i).
    OUT: grad (same layout as params), the gradient of that, if given.
    """
    sizes, hidden, X, Y = network_args(params, sizes, hidden, output, X, Y)
    w = check_sample_weight(sample_weight, len(X), params.dtype)
    layers = list(zip(*unflatten(params, sizes)))
    grads = None
    if grad is not None:
        check_output(grad, params.shape, "grad", params.dtype)
        grads = list(zip(*unflatten(grad, sizes)))
    return _loss_gradient(layers, grads, hidden, check_slope(negative_slope), output, check_l2(l2), X, Y, w)


def _update(opt, params, grad, state):
    """One optimizer step (PyTorch's rules; see ``_core._update``); state is (2, n) buffers."""
    opt["t"] += 1
    lr, t = opt["lr"], opt["t"]
    s1, s2 = state
    if opt["name"] == "sgd":
        s1 *= opt["momentum"]
        s1 += grad                                  # v = momentum * v + g
        params -= lr * (grad + opt["momentum"] * s1 if opt["nesterov"] else s1)
    elif opt["name"] == "adam":
        s1[...] = opt["beta1"] * s1 + (1 - opt["beta1"]) * grad            # m
        s2[...] = opt["beta2"] * s2 + (1 - opt["beta2"]) * grad * grad     # v
        step = lr / (1 - opt["beta1"] ** t)
        params -= step * s1 / (np.sqrt(s2) / np.sqrt(1 - opt["beta2"] ** t) + opt["eps"])
    else:  # rprop (iRPROP-): s1 = per-weight step sizes, s2 = the previous gradient
        if t == 1:
            s1[...], s2[...] = lr, 0
        agree = grad * s2
        s1[...] = np.where(agree > 0, np.minimum(s1 * opt["etaplus"], opt["step_max"]),
                           np.where(agree < 0, np.maximum(s1 * opt["etaminus"], opt["step_min"]), s1))
        grad[agree < 0] = 0
        params -= np.sign(grad) * s1
        s2[...] = grad


def train(params, sizes, hidden, negative_slope, output, X, Y, epochs, batch_size, rng,
          losses, optimizer, state, l2=0.0, sample_weight=None, callback=None):
    """Train `params` in place by mini-batch steps of `optimizer`.

    Batches are consecutive rows of X, or of a permutation drawn by ``rng.shuffle`` at the
    start of every epoch when `rng` is a numpy Generator. `optimizer` is a dict (see
    ``fastmlp._common.optimizer_config``) whose "t", the number of steps taken, is updated;
    `state` (2, len(params)) holds the optimizer's buffers between calls (zeros at first).
    OUT: params, state, optimizer["t"], and losses[e] = the mean training loss of epoch e
    (each batch's loss taken before its step, with the L2 penalty). With sample_weight
    (n,), each batch's loss is its weighted mean and epochs weigh batches by total weight.
    callback(epoch, loss), if given, runs after every epoch; it may change optimizer["lr"]
    for the next epoch, and returning False stops training (later losses stay untouched).
    """
    sizes, hidden, X, Y = network_args(params, sizes, hidden, output, X, Y)
    n = len(X)
    epochs, batch_size = train_args(epochs, batch_size, n, losses, optimizer, state, params, callback)
    slope = check_slope(negative_slope)
    optimizer["l2"] = l2 = check_l2(l2)
    w = check_sample_weight(sample_weight, n, params.dtype)
    grad = np.empty_like(params)
    layers = list(zip(*unflatten(params, sizes)))
    grads = list(zip(*unflatten(grad, sizes)))
    order = np.empty(n, dtype=np.intp)
    for epoch in range(epochs):
        if rng is not None:   # each epoch's order depends only on the stream, not on the last
            order[...] = np.arange(n)
            rng.shuffle(order)
        total = total_weight = 0.0
        for start in range(0, n, batch_size):
            rows = slice(start, start + batch_size) if rng is None else order[start : start + batch_size]
            Xb, Yb, wb = X[rows], Y[rows], None if w is None else w[rows]
            weight = len(Xb) if w is None else float(np.sum(wb, dtype=np.float64))
            total += _loss_gradient(layers, grads, hidden, slope, output, l2, Xb, Yb, wb) * weight
            total_weight += weight
            if optimizer["name"] == "sgd" and optimizer["momentum"] == 0:
                params -= optimizer["lr"] * grad
                optimizer["t"] += 1
            else:
                _update(optimizer, params, grad, state)
        losses[epoch] = total / total_weight if total_weight > 0 else 0.0
        if callback is not None and not callback(epoch, losses[epoch]):
            break
