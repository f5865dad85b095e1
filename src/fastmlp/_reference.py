"""NumPy backend: the seed's math, one small function per step.

The readable definition of every kernel, the fallback when the compiled module is
missing, and the oracle the tests hold ``fastmlp._core`` against. Every public function
here has the same name, signature and in/out behaviour as its twin in ``_core.pyx``, and
so do the private steps both have (``_forward``, ``_output_loss``, ``_backward``,
``_update``, ``_epoch``, ...): the same role and argument order, except that the compiled
ones also take the extents (m, n, k, size) that NumPy arrays carry themselves.
"""

import math

import numpy as np
import scipy.sparse
from scipy.special import erf, xlogy

from . import _fork
from ._registry import ACTIVATIONS, LAYER_OPS, LOSSES, OPTIMIZERS, OUTPUTS, implemented
from ._spec import CHECKED as _CHECKED
from ._spec import NORM_EPS, NORM_MOMENTUM
from ._spec import (check_dropout_key, dropout_keep, loss_gradient_args, loss_parameter, next_lr, predict_args, shuffled,
                    train_args, warn_overflow)
from ._validation import (
    check_csr,
    choice,
    dense_backward_args,
    dense_forward_args,
    elementwise_args,
    real,
)

# ------------------------------------------------------------------ the math
# Each activation beside its derivative, each loss beside its gradient (registry order).


def _sigmoid(Z, e=None):
    """1 / (1 + exp(-z)), written so that exp never overflows: e = exp(-|z|)."""
    e = np.exp(-np.abs(Z)) if e is None else e
    return np.where(Z >= 0, 1, e) / (1 + e)


def _softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def _Phi(Z):
    """The standard normal CDF."""
    return 0.5 * (1 + erf(Z / math.sqrt(2)))


def _silu_grad(z):
    """SiLU'(z) = s + z s (1 - s), s = sigmoid(z), elementwise (as _core_math.pxi's)."""
    s = _sigmoid(z)
    return s + z * s * (1 - s)


# name -> (f(Z, slope), f'(Z, A, slope) where A = f(Z)). Leaky ReLU's derivative is 1 at
# z = 0 as in the seed; ReLU's is 0 there, as in PyTorch. GELU is the exact z * Phi(z);
# SiLU is z * sigmoid(z) (PyTorch's nn.SiLU), its derivative s + z s (1 - s).
# A NaN z gives NaN (heaviside(NaN) is NaN; ReLU is 0 where z <= 0, which NaN is not).
_ACTIVATIONS = implemented("numpy", "activation", tuple(ACTIVATIONS), {
    "identity": (lambda Z, s: Z, lambda Z, A, s: 1),
    "leaky_relu": (lambda Z, s: np.where(Z >= 0, Z, s * Z), lambda Z, A, s: np.where(Z < 0, s, np.heaviside(Z, 1))),
    "relu": (lambda Z, s: np.where(Z <= 0, 0, Z), lambda Z, A, s: np.heaviside(Z, 0)),
    "tanh": (lambda Z, s: np.tanh(Z), lambda Z, A, s: 1 - A * A),
    "sigmoid": (lambda Z, s: _sigmoid(Z), lambda Z, A, s: A * (1 - A)),
    "gelu": (lambda Z, s: Z * _Phi(Z), lambda Z, A, s: _Phi(Z) + Z * np.exp(-0.5 * Z * Z) / math.sqrt(2 * math.pi)),
    "silu": (lambda Z, s: Z * _sigmoid(Z), lambda Z, A, s: _silu_grad(Z)),
})

_OUTPUTS = implemented("numpy", "output", OUTPUTS, {
    "sigmoid": _sigmoid,
    "softmax": _softmax,
    "identity": lambda Z: Z,
    "exp": np.exp,
})


def _bce(Z, Y):
    """max(z, 0) - z*y + log(1 + exp(-|z|)), averaged over outputs; gradient sigmoid(z) - y."""
    k, e = Z.shape[1], np.exp(-np.abs(Z))
    return (np.maximum(Z, 0) - Z * Y + np.log1p(e)).sum(axis=1) / k, (_sigmoid(Z, e) - Y) / k


def _cross_entropy(Z, Y):
    """-sum_j y_j log softmax(z)_j, log softmax = z - logsumexp(z); gradient softmax(z) sum(y) - y."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return -(Y * log_p).sum(axis=1), _softmax(Z) * Y.sum(axis=1, keepdims=True) - Y


def _mse(Z, Y):
    """(z - y)**2 averaged over outputs; gradient 2 (z - y)."""
    k = Z.shape[1]
    return ((Z - Y) ** 2).sum(axis=1) / k, 2 * (Z - Y) / k


def _poisson(Z, Y):
    """exp(z) - y z + y log y - y (half the Poisson deviance of the rate exp(z)), averaged over
    outputs; gradient exp(z) - y."""
    k, E = Z.shape[1], np.exp(Z)
    return (E - Y * Z + xlogy(Y, Y) - Y).sum(axis=1) / k, (E - Y) / k


def _huber(Z, Y, delta):
    """0.5 r**2 where |r| <= delta, else delta (|r| - 0.5 delta), r = z - y (PyTorch's
    HuberLoss), averaged over outputs; gradient r clipped to [-delta, delta]."""
    k, R, delta = Z.shape[1], Z - Y, Z.dtype.type(delta)
    A = np.abs(R)
    return np.where(A <= delta, 0.5 * R * R, delta * (A - 0.5 * delta)).sum(axis=1) / k, np.clip(R, -delta, delta) / k


def _mae(Z, Y):
    """|z - y| (PyTorch's L1Loss), averaged over outputs; gradient sign(z - y), 0 where z = y."""
    k = Z.shape[1]
    return np.abs(Z - Y).sum(axis=1) / k, np.sign(Z - Y) / k


def _quantile(Z, Y, q):
    """The pinball loss max(q r, (q - 1) r), r = y - z (scikit-learn's mean_pinball_loss with
    alpha = q), averaged over outputs; gradient -q where r > 0, 1 - q where r < 0, 0 where r = 0."""
    k, R, q = Z.shape[1], Y - Z, Z.dtype.type(q)
    return np.where(R >= 0, q * R, (q - 1) * R).sum(axis=1) / k, np.where(R > 0, -q, np.where(R < 0, 1 - q, R * 0)) / k


# loss -> per-sample losses (n,) and their gradients with respect to the logits (n, k); a loss
# with a parameter (``_registry.LOSS_PARAMETERS``) takes it as a third argument
_LOSSES = implemented("numpy", "loss", tuple(LOSSES), {
    "bce": _bce,
    "cross_entropy": _cross_entropy,
    "mse": _mse,
    "poisson": _poisson,
    "huber": _huber,
    "mae": _mae,
    "quantile": _quantile,
})


# ------------------------------------------------------------------ steps
# The twins of _core's steps: same names, roles and argument order.


def _activation(Z, A, act, slope):
    """A = act(Z)."""
    A[...] = _ACTIVATIONS[act][0](Z, slope)
    return A


def _activation_backward(Z, A, D, act, slope):
    """D *= act'(Z), in place (dL/dA in, dL/dZ out); A = act(Z)."""
    np.multiply(D, _ACTIVATIONS[act][1](Z, A, slope), out=D, casting="unsafe")
    return D


def _output_activation(Z, P, out):
    """P = the output activation `out` of the logits Z."""
    P[...] = _OUTPUTS[out](Z)
    return P


def _output_loss(Z, Y, w, G, scale, loss, parameter=None):
    """Sum over rows of w_i times the per-sample loss of logits Z against Y (w None: all 1);
    G = scale * its gradient with respect to Z, unless G is None. `parameter`: the loss's
    (huber's delta, quantile's quantile; None for a loss without one).

    Per-sample losses: BCE, squared error, Huber, absolute error and the pinball loss are
    means over the outputs (PyTorch's BCEWithLogitsLoss, MSELoss, HuberLoss, L1Loss);
    cross-entropy is -sum_j y_j log softmax(z)_j.
    """
    losses, grad = _LOSSES[loss](Z, Y) if parameter is None else _LOSSES[loss](Z, Y, parameter)
    if w is not None:
        losses, grad = w * losses, w[:, None] * grad
    if G is not None:
        np.multiply(grad, scale, out=G, casting="unsafe")
    return float(np.sum(losses, dtype=np.float64))


# Dropout's masks (see ``_spec``): SplitMix64's finalizer on uint64 counters, vectorized.
_GOLDEN = 0x9E3779B97F4A7C15
_MASK64 = 2**64 - 1


def _mix64(x):
    """SplitMix64's finalizer of x, a uint64 array (arithmetic wraps modulo 2**64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _dropout_stream(key, step, layer):
    """The uint64 seed of one dropout op's masks at one training step:
    mix(mix(key + (step + 1) * GOLDEN) + (layer + 1) * GOLDEN)."""
    first = _mix64(np.array([(key + (step + 1) * _GOLDEN) & _MASK64], np.uint64))
    return int(_mix64(first + np.uint64(((layer + 1) * _GOLDEN) & _MASK64))[0])


def _dropout(A, M, out, stream, threshold, scale):
    """Inverted dropout: M = scale where the unit is kept, else 0; out = A * M. Unit p of
    the batch (row-major) is kept when mix(stream + (p + 1) * GOLDEN) >> 11 >= threshold."""
    p = np.arange(1, A.size + 1, dtype=np.uint64)
    kept = (_mix64(p * np.uint64(_GOLDEN) + np.uint64(stream)) >> np.uint64(11)) >= np.uint64(threshold)
    M[...] = np.where(kept.reshape(A.shape), M.dtype.type(scale), M.dtype.type(0))
    np.multiply(A, M, out=out)
    return out


def _dropout_backward(M, D):
    """D *= M, in place (dL/d(out) in, dL/dA out)."""
    np.multiply(D, M, out=D)
    return D


class _Work:
    """One batch's values, op by op: out[i] the output of op i of `ops` (net.ops(training)),
    aux[i] a dropout op's mask; Z[l] the pre-activations of dense layer l and A[l] the input
    of dense layer l + 1 (what the ops after layer l left); D[l] dL/dZ_l, which the ops after
    dense layer l turn into dL/dZ_l in place on the way back; `layers`, the views (W_l, b_l)
    of the params the forward pass read; `key`, the run's dropout key."""

    def __init__(self, net, training=False, key=0):
        self.ops, self.key = net.ops(training), key
        self.out, self.aux = [None] * len(self.ops), [None] * len(self.ops)
        self.Z, self.A, self.D = ([None] * net.n_layers for _ in range(3))
        self.layers = None


# The layer ops: each one's forward, then its backward. Forward: op i of work.ops, on its
# input A (X for the first op, else the output of op i - 1); it writes work.out[i] (and
# work.Z[l] or work.A[l], the layer's values the head and the overflow guard read) and
# returns how many ops it ran (here 1; the compiled twin's dense op runs an activation after
# it in the same pass). Backward: after the ops above it, with work.D[l] holding dL/d(its
# output); dense layers write their gradients into `target` (see `_backward`).


def _dense_op(net, params, work, i, A, step):
    """Z_l = A W_l + b_l."""
    l = work.ops[i][1]
    W, b = work.layers[l]
    work.out[i] = work.Z[l] = A @ W + b
    return 1


def _dense_op_backward(net, params, work, i, A, target, alpha, beta_w, beta_b):
    """dL/dA = D_l W_l^T into D[l - 1] (for the ops below), then target[W_l] = alpha * A^T D_l
    + beta_w * target[W_l] and target[b_l] = alpha * (D_l summed over rows) + beta_b * target[b_l]."""
    l = work.ops[i][1]
    D, (W, _) = work.D[l], work.layers[l]
    if i > 0:
        work.D[l - 1] = D @ W.T
    W_target, b_target = target[l]
    _axpby(alpha, A.T @ D, beta_w, W_target)
    _axpby(alpha, D.sum(axis=0), beta_b, b_target)
    return 1


def _activation_op(net, params, work, i, A, step):
    """A_l = act_l(Z_l)."""
    work.out[i] = work.A[work.ops[i][1]] = _activation(A, np.empty_like(A), work.ops[i][2], net.negative_slope)
    return 1


def _activation_op_backward(net, params, work, i, A, target, alpha, beta_w, beta_b):
    """D[l] *= act_l'(Z_l)."""
    _activation_backward(A, work.out[i], work.D[work.ops[i][1]], work.ops[i][2], net.negative_slope)
    return 1


def _dropout_op(net, params, work, i, A, step):
    """Inverted dropout of A with the layer's rate and this step's masks (training only)."""
    _, l, rate = work.ops[i]
    threshold, scale = dropout_keep(rate)
    work.aux[i], work.out[i] = np.empty_like(A), np.empty_like(A)
    work.A[l] = _dropout(A, work.aux[i], work.out[i], _dropout_stream(work.key, step, l), threshold, scale)
    return 1


def _dropout_op_backward(net, params, work, i, A, target, alpha, beta_w, beta_b):
    """D[l] *= the forward pass's mask."""
    _dropout_backward(work.aux[i], work.D[work.ops[i][1]])
    return 1


def _norm_step(target, gamma, alpha, beta_b, dgamma, dbeta):
    """target[gamma_j] = alpha * dgamma_j + beta_b * target[gamma_j] (gamma: gamma_0's offset in
    the flat target), likewise beta (no decay)."""
    n = len(dgamma)
    _axpby(alpha, dgamma, beta_b, target[gamma : gamma + n])
    _axpby(alpha, dbeta, beta_b, target[gamma + n : gamma + 2 * n])


def _batch_norm_op(net, params, work, i, A, step):
    """Batch normalization of Z_l (its setting: training). Training: the batch's mean and
    biased variance per unit, and the running statistics updated in params (momentum
    NORM_MOMENTUM, the variance unbiased by m / (m - 1)); inference: the running ones.
    out = gamma * (Z - mean) / sqrt(var + eps) + beta; aux[i] = (the normalized Z, 1 / std)."""
    _, l, training = work.ops[i]
    (gamma, mean_off), n = net.norm_offsets(l), A.shape[1]
    g, b = params[gamma : gamma + n], params[gamma + n : gamma + 2 * n]
    running_mean, running_var = params[mean_off : mean_off + n], params[mean_off + n : mean_off + 2 * n]
    if training:
        m = A.shape[0]
        mean = A.sum(axis=0, dtype=np.float64) / m
        var = ((A - mean) ** 2).sum(axis=0, dtype=np.float64) / m
        running_mean[...] = (1 - NORM_MOMENTUM) * running_mean + NORM_MOMENTUM * mean
        running_var[...] = (1 - NORM_MOMENTUM) * running_var + NORM_MOMENTUM * (var * m / (m - 1))
    else:
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    inv = (1 / np.sqrt(var + NORM_EPS)).astype(A.dtype)
    xhat = ((A - mean.astype(A.dtype)) * inv).astype(A.dtype)
    work.aux[i] = (xhat, inv)
    work.out[i] = (g * xhat + b).astype(A.dtype)
    return 1


def _batch_norm_op_backward(net, params, work, i, A, target, alpha, beta_w, beta_b):
    """D[l] = dL/dZ_l from dL/d(out); target's gamma_l and beta_l stepped as biases are.
    Training: dZ = gamma / (m std) * (m dy - sum dy - xhat sum(dy xhat)); inference: the
    statistics are constants, dZ = gamma / std * dy."""
    _, l, training = work.ops[i]
    xhat, inv = work.aux[i]
    D, gamma, n = work.D[l], net.norm_offsets(l)[0], A.shape[1]
    dbeta = D.sum(axis=0, dtype=np.float64)
    dgamma = (D * xhat).sum(axis=0, dtype=np.float64)
    g = params[gamma : gamma + n].astype(np.float64)
    if training:
        m = A.shape[0]
        dZ = (g * inv / m) * (m * D - dbeta - xhat * dgamma)
    else:
        dZ = D * (g * inv)
    dZ = dZ.astype(D.dtype)
    _norm_step(target[-1], gamma, alpha, beta_b, dgamma, dbeta)
    work.D[l] = dZ
    return 1


def _layer_norm_op(net, params, work, i, A, step):
    """Layer normalization of Z_l: each row's mean and biased variance over its units,
    out = gamma * (Z - mean) / sqrt(var + eps) + beta (training and inference alike);
    aux[i] = (the normalized Z, 1 / std per row)."""
    l, n = work.ops[i][1], A.shape[1]
    gamma = net.norm_offsets(l)[0]
    g, b = params[gamma : gamma + n], params[gamma + n : gamma + 2 * n]
    mean = A.sum(axis=1, dtype=np.float64, keepdims=True) / n
    var = ((A - mean) ** 2).sum(axis=1, dtype=np.float64, keepdims=True) / n
    inv = 1 / np.sqrt(var + NORM_EPS)
    xhat = ((A - mean) * inv).astype(A.dtype)
    work.aux[i] = (xhat, inv.astype(A.dtype))
    work.out[i] = (g * xhat + b).astype(A.dtype)
    return 1


def _layer_norm_op_backward(net, params, work, i, A, target, alpha, beta_w, beta_b):
    """D[l] = dL/dZ_l: with dx = gamma dy, dZ = (n dx - sum dx - xhat sum(dx xhat)) / (n std)
    per row; target's gamma_l and beta_l stepped as biases are."""
    l = work.ops[i][1]
    xhat, inv = work.aux[i]
    D, gamma, n = work.D[l], net.norm_offsets(l)[0], A.shape[1]
    dbeta = D.sum(axis=0, dtype=np.float64)
    dgamma = (D * xhat).sum(axis=0, dtype=np.float64)
    dx = D * params[gamma : gamma + n].astype(np.float64)
    dZ = (inv / n) * (n * dx - dx.sum(axis=1, keepdims=True) - xhat * (dx * xhat).sum(axis=1, keepdims=True))
    _norm_step(target[-1], gamma, alpha, beta_b, dgamma, dbeta)
    work.D[l] = dZ.astype(D.dtype)
    return 1


# op name -> (forward, backward)
_OPS = implemented("numpy", "layer op", LAYER_OPS, {
    "dense": (_dense_op, _dense_op_backward),
    "activation": (_activation_op, _activation_op_backward),
    "dropout": (_dropout_op, _dropout_op_backward),
    "batch_norm": (_batch_norm_op, _batch_norm_op_backward),
    "layer_norm": (_layer_norm_op, _layer_norm_op_backward),
})


def _forward(net, params, X, work, step):
    """Forward pass: the ops of work.ops in turn, A_0 = X; the logits in work.Z[-1]. `step`:
    the training step, which draws dropout's masks (none in inference)."""
    A, work.layers, i = X, net.layers(params), 0
    while i < len(work.ops):
        i += _OPS[work.ops[i][0]][0](net, params, work, i, A, step)
        A = work.out[i - 1]


def _input_limits(net, params, limit):
    """OUT limit[l] = the largest |a_p| a row's input to layer l may hold: (top - max_j |b_j|)
    / max_j sum_p |W_pj| in float64 (W's rows summed in order), top half the dtype's largest
    number, then rounded to limit's dtype (the model's); infinite where the weights are all 0,
    NaN where one is NaN. Every partial sum of a layer's b_j + sum_p a_p W_pj is at most
    max_p |a_p| * max_j sum_p |W_pj| + max_j |b_j| in size, in any order."""
    top = float(np.finfo(limit.dtype).max) / 2
    for l, (W, b) in enumerate(net.layers(params)):
        reach, bmax = float(np.abs(W).sum(axis=0, dtype=np.float64).max()), float(np.abs(b).max())
        limit[l] = math.inf if reach == 0 else (top - bmax) / reach
    return limit


def _overflow_rows(net, X, work, limit):
    """After `_forward`: the logits of the rows out of range become NaN; returns how many.

    A row is out of range when its input to some layer l holds an |a_p| > limit[l] (from
    `_input_limits`): then some order of that layer's sums could overflow and another not, and
    the answer would depend on the kernel the compiled backend picks for the batch's size.
    The compiled twin applies the same rule to the same numbers.
    """
    bad = np.zeros(len(work.Z[-1]), bool)
    for l, t in enumerate(limit):
        A = X if l == 0 else work.A[l - 1]
        if not scipy.sparse.issparse(A):
            bad |= (np.abs(A) > t).any(axis=1)
        elif t >= 0:    # CSR: its stored values, read only (abs(A) would sum A's duplicates in place)
            seen = np.concatenate(([0], np.cumsum(np.abs(A.data[: A.indptr[-1]]) > t)))
            bad |= seen[A.indptr[1:]] > seen[A.indptr[:-1]]
        else:           # (implicit zeros are beyond a limit < 0 only)
            bad |= bool(t < 0)
    work.Z[-1][bad] = np.nan
    return int(np.count_nonzero(bad))


def _axpby(alpha, x, beta, y):
    """y = alpha * x + beta * y in place; y is not read when beta == 0 (BLAS's rule)."""
    if beta == 0:
        np.multiply(x, alpha, out=y, casting="unsafe")
        return
    if beta != 1:
        y *= beta
    y += alpha * x


def _backward(net, params, X, work, target, alpha, beta_w, beta_b):
    """Backward pass after `_forward` and `_output_loss` (which left dL/dZ_L in work.D[-1]):
    the ops' backward steps, last op first.

    target[W_l] = alpha * dL/dW_l + beta_w * target[W_l], and likewise for b_l with beta_b:
    with target = grad, alpha = 1, betas 0 that is the gradient; with target = params,
    alpha = -lr, beta_b = 1 and beta_w = 1 - lr * l2 it is the SGD step with weight decay,
    taken once dL/dA_{l-1} has been computed from the old W_l.
    """
    # targets[l]: the views (W_l, b_l) of target (those _forward read when it is params);
    # targets[-1]: target itself, where the norm ops step gamma and beta
    targets = [*(work.layers if target is params else net.layers(target)), target]
    i = len(work.ops) - 1
    while i >= 0:
        i -= _OPS[work.ops[i][0]][1](net, params, work, i, X if i == 0 else work.out[i - 1], targets, alpha,
                                     beta_w, beta_b)


def _sum_squared_weights(net, params):
    """sum over layers of sum(W_l ** 2): the L2 penalty is 0.5 * l2 times this."""
    return sum(float(np.sum(W * W, dtype=np.float64)) for W, _ in net.layers(params))


def _add_l2(net, params, grad):
    """grad[W_l] += l2 * W_l for every layer (the gradient of 0.5 * l2 * sum(W**2))."""
    for (W, _), (dW, _) in zip(net.layers(params), net.layers(grad)):
        dW += net.l2 * W


# optimizer -> its step (PyTorch's rules) on params p with gradient g, and its state: as
# many vectors laid out like p as its registry entry declares (OPTIMIZERS[name].state)
def _sgd(opt, net, p, g, v):
    v *= opt.momentum
    v += g                                                  # v = momentum * v + g
    p -= opt.lr * (g + opt.momentum * v if opt.nesterov else v)


def _adam(opt, net, p, g, m, v):
    m[...] = opt.beta1 * m + (1 - opt.beta1) * g
    v[...] = opt.beta2 * v + (1 - opt.beta2) * g * g
    step = opt.lr / (1 - opt.beta1**opt.t)
    p -= step * m / (np.sqrt(v) / math.sqrt(1 - opt.beta2**opt.t) + opt.eps)


def _adamw(opt, net, p, g, m, v):
    for W, _ in net.layers(p):                              # decoupled decay, weights only
        W *= 1 - opt.lr * opt.weight_decay
    _adam(opt, net, p, g, m, v)


def _rprop(opt, net, p, g, step, prev):
    """iRPROP-: per-weight step sizes, and the previous gradient."""
    if opt.t == 1:
        step[...], prev[...] = opt.lr, 0
    agree = g * prev
    step[...] = np.where(agree > 0, np.minimum(step * opt.etaplus, opt.step_max),
                         np.where(agree < 0, np.maximum(step * opt.etaminus, opt.step_min), step))
    g[agree < 0] = 0
    p -= np.sign(g) * step
    prev[...] = g


_UPDATES = implemented("numpy", "optimizer", tuple(OPTIMIZERS), {
    "sgd": _sgd, "adam": _adam, "adamw": _adamw, "rprop": _rprop,
})


def _update(opt, net, params, grad, state):
    """One optimizer step on the flat params with gradient grad (which includes the L2 term);
    state: (opt.n_state, len(params))."""
    opt.t += 1
    if net.trainable_count() < len(params):     # (the running statistics are no parameters)
        size = net.trainable_count()
        params, grad, state = params[:size], grad[:size], state[:, :size]
    _UPDATES[opt.name](opt, net, params, grad, *state)


def _epoch(net, opt, params, X, Y, w, batch_size, order, work, grad, state, stop):
    """One epoch of mini-batch steps; returns the mean of the batch losses (each taken before
    its step, with the L2 penalty), weighted by the batches' total sample weights.

    Batches are consecutive rows of X, or rows order[start:start + batch_size]. Plain SGD
    (opt.fused) takes its step inside the backward pass; the others go through `grad`.
    Ends early, params whole: a batch loss that is not finite is returned at once, before
    its step; None is returned, before the next batch, once `stop` (an Event or None) is set.
    Between batches, an os.fork() from another thread happens if one waits (`_fork`).
    """
    total = total_weight = 0.0
    for start in range(0, X.shape[0], batch_size):
        if _fork.PENDING.value:
            _fork.pause()
        if start and stop is not None and stop.is_set():   # (train asks before each epoch)
            return None
        rows = slice(start, start + batch_size) if order is None else order[start : start + batch_size]
        Xb, Yb, wb = X[rows], Y[rows], None if w is None else w[rows]
        weight = Xb.shape[0] if w is None else float(np.sum(wb, dtype=np.float64))
        _forward(net, params, Xb, work, opt.t)
        work.D[-1] = np.empty_like(work.Z[-1])
        # a batch of total weight 0 contributes nothing (its data gradient is 0)
        loss = _output_loss(work.Z[-1], Yb, wb, work.D[-1], 1 / weight if weight > 0 else 0, net.loss,
                            net.loss_parameter)
        if net.l2:
            loss += weight * 0.5 * net.l2 * _sum_squared_weights(net, params)
        if not math.isfinite(loss):
            return loss            # diverged: no step from a non-finite loss
        total += loss
        total_weight += weight
        if opt.fused:
            _backward(net, params, Xb, work, params, -opt.lr, 1 - opt.lr * net.l2, 1)
            opt.t += 1
        else:
            _backward(net, params, Xb, work, grad, 1, 0, 0)
            if net.l2:
                _add_l2(net, params, grad)
            _update(opt, net, params, grad, state)
    return total / total_weight if total_weight > 0 else 0.0


# ------------------------------------------------------------------ kernels


def dense_forward(A, W, b, Z):
    """Z = A @ W + b.  IN: A (n, n_in), W (n_in, n_out), b (n_out,).  OUT: Z (n, n_out)."""
    A, W, b, Z = dense_forward_args(A, W, b, Z)
    np.matmul(A, W, out=Z)
    Z += b
    return Z


def dense_backward(A_prev, W, dZ, dW, db, dA_prev=None):
    """Gradients of a dense layer.  IN: A_prev (n, n_in), W (n_in, n_out), dZ (n, n_out).
    OUT: dW = A_prev.T @ dZ, db = dZ summed over rows, and dA_prev = dZ @ W.T if given."""
    A_prev, W, dZ, dW, db, dA_prev = dense_backward_args(A_prev, W, dZ, dW, db, dA_prev)
    np.matmul(A_prev.T, dZ, out=dW)
    np.sum(dZ, axis=0, out=db)
    if dA_prev is not None:
        np.matmul(dZ, W.T, out=dA_prev)


def activation(name, Z, A, negative_slope=0.01):
    """A = name(Z) for a hidden activation name.  IN: Z.  OUT: A (same shape)."""
    (Z,) = elementwise_args(A, "A", (Z, "Z"), in_place=("Z",))
    return _activation(Z, A, choice(name, "activation", tuple(ACTIVATIONS)), real(negative_slope, "negative_slope"))


def activation_backward(name, Z, A, dA, dZ, negative_slope=0.01):
    """dZ = dA * name'(Z).  IN: Z, A = name(Z), dA.  OUT: dZ (same shape)."""
    Z, A, dA = elementwise_args(dZ, "dZ", (Z, "Z"), (A, "A"), (dA, "dA"), in_place=("dA",))
    act, slope = choice(name, "activation", tuple(ACTIVATIONS)), real(negative_slope, "negative_slope")
    np.copyto(dZ, dA)
    return _activation_backward(Z, A, dZ, act, slope)


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
    (Z,) = elementwise_args(P, "P", (Z, "Z"), in_place=("Z",))
    return _output_activation(Z, P, choice(output, "output", OUTPUTS))


def output_loss(loss, Z, Y, G, parameter=None):
    """Mean over samples of `loss`, from the logits Z (stable).

    "bce": binary cross-entropy of sigmoid(Z), averaged over outputs too (BCEWithLogitsLoss);
    "cross_entropy": -sum_j y_j log softmax(z)_j (CrossEntropyLoss, Y one-hot);
    "mse", "huber", "mae": squared error, Huber loss (threshold `parameter`, default 1),
    absolute error, averaged over outputs too (MSELoss, HuberLoss, L1Loss); "quantile": the
    pinball loss of quantile `parameter` (default 0.5), averaged over outputs too.
    IN: Z, Y (n, k).  OUT: G = d(mean loss)/dZ.  Returns the mean loss.
    """
    Z, Y = elementwise_args(G, "G", (Z, "Z"), (Y, "Y"), in_place=("Z", "Y"))
    choice(loss, "loss", tuple(LOSSES))
    parameter = loss_parameter(loss, parameter)
    if G.size == 0:
        raise ValueError("the loss needs at least one element")
    return _output_loss(Z, Y, None, G, 1.0 / len(Z), loss, parameter) / len(Z)


def sigmoid_bce(Z, Y, G):
    """Mean binary cross-entropy of sigmoid(Z) against Y, from the logits Z (stable).

    IN: Z, Y (n, k).  OUT: G = d(mean loss)/dZ = (sigmoid(Z) - Y) / (n * k).
    Returns the mean loss over samples and outputs (PyTorch's BCEWithLogitsLoss).
    """
    return output_loss("bce", Z, Y, G)


# ------------------------------------------------------------------ whole networks

# predict_proba's blocks of rows: about FLOPS_PER_BLOCK flops each (the compiled backend
# polls about that often), and at least BLOCK_ROWS rows (the compiled backend's block)
FLOPS_PER_BLOCK = 50_000_000
BLOCK_ROWS = 2048


def _own_csr(X):
    """A dense X itself; for a CSR X, a CSR matrix over its values and private copies of its
    indices and indptr, checked again (``check_csr``): a callback or another thread that rewrites the caller's index
    arrays meanwhile cannot send scipy's sparse products out of bounds. The twin of the
    compiled backend's ``_csr_arrays``, which likewise reads the values in place."""
    if not scipy.sparse.issparse(X):
        return X
    own = scipy.sparse.csr_matrix((X.data, np.array(X.indices), np.array(X.indptr)), shape=X.shape, copy=False)
    return check_csr(own, X.dtype)


def predict_proba(net, params, X, out):
    """OUT: out (n, net.sizes[-1]) = the network's output activations for X.

    Large inputs go through in blocks of rows of about FLOPS_PER_BLOCK flops (at least
    BLOCK_ROWS rows), so that Ctrl-C, and an os.fork() from another thread, wait at most
    for one block."""
    X = _own_csr(predict_args(net, params, X, out))
    work, n, bad = _Work(net), X.shape[0], 0
    rows = max(BLOCK_ROWS, FLOPS_PER_BLOCK // (2 * sum(a * b for a, b in zip(net.sizes[:-1], net.sizes[1:]))))
    with np.errstate(over="ignore", invalid="ignore"):   # the guard warns instead
        limit = _input_limits(net, params, np.empty(net.n_layers, params.dtype))
    with _fork.computing:
        for start in range(0, n, rows):
            if _fork.PENDING.value:
                _fork.pause()
            block = X if rows >= n else X[start : start + rows]
            with np.errstate(over="ignore", invalid="ignore"):
                _forward(net, params, block, work, 0)
                bad += _overflow_rows(net, block, work, limit)
            _output_activation(work.Z[-1], out[start : start + rows], net.output)
    if bad:
        warn_overflow(bad, n, params.dtype, "their outputs are NaN", 4)
    return out


def loss_gradient(net, params, X, Y, grad=None, sample_weight=None):
    """Mean loss of the network on (X, Y), plus 0.5 * l2 * sum(W**2) over the weights.

    With sample_weight (n,), the mean is sum(w_i * loss_i) / sum(w_i).
    OUT: grad (same layout as params), the gradient of that, if given.
    """
    X, Y, w = loss_gradient_args(net, params, X, Y, grad, sample_weight)
    X = _own_csr(X)
    weight = X.shape[0] if w is None else float(np.sum(w, dtype=np.float64))
    work = _Work(net)
    # (a fork from another thread waits for its end)
    with _fork.computing, np.errstate(over="ignore", invalid="ignore"):   # the guard warns instead
        _forward(net, params, X, work, 0)
        bad = _overflow_rows(net, X, work, _input_limits(net, params, np.empty(net.n_layers, params.dtype)))
        work.D[-1] = None if grad is None else np.empty_like(work.Z[-1])
        loss = _output_loss(work.Z[-1], Y, w, work.D[-1], 1 / weight, net.loss, net.loss_parameter) / weight
        if net.l2:
            loss += 0.5 * net.l2 * _sum_squared_weights(net, params)
        if grad is not None:
            _backward(net, params, X, work, grad, 1, 0, 0)
            grad[net.trainable_count():] = 0      # the running statistics: no gradient
            if net.l2:
                _add_l2(net, params, grad)
    if bad:
        warn_overflow(bad, X.shape[0], params.dtype,
                      "their losses are NaN, and so is the loss" + (" and its gradient" if grad is not None else ""), 4)
    return loss


def train(net, params, X, Y, *, optimizer, state, losses, epochs, batch_size, rng=None,
          sample_weight=None, callback=None, stop=None, dropout_key=0):
    """Train `params` in place by mini-batch steps of `optimizer` (a ``fastmlp._spec.Optimizer``).

    Batches are consecutive rows of X, or of a permutation drawn by ``rng.shuffle`` at the
    start of every epoch when `rng` (a numpy Generator) is given. `state`, shaped
    (optimizer.n_state, len(params)) (``optimizer.new_state(params)``), holds the
    optimizer's buffers between calls (zeros at first); ``optimizer.t`` counts
    the steps taken. OUT: params, state, optimizer.t, and losses[e] = the mean training loss
    of epoch e (each batch's loss taken before its step, with the L2 penalty). With
    sample_weight (n,), each batch's loss is its weighted mean and epochs weigh batches by
    total weight. callback(epoch, loss), if given, runs after every epoch; it may change
    ``optimizer.lr`` for the next epoch, and returning False stops training (later losses
    stay untouched). Returns how many epochs' losses were written: losses[:count].

    Training ends early, params and state whole, in three cases. A batch loss that is not
    finite: its step is not taken, losses[e] = that loss and train returns (no callback for
    epoch e). `stop` (a threading.Event, or anything with is_set()) set: train returns
    without raising after the current step (checked before every batch here, every few
    batches compiled, and between epochs); the partial epoch's loss is not written. An
    exception from a signal handler (Ctrl-C's KeyboardInterrupt) likewise, raised.

    Dropout (net.dropout) draws step t's masks from (`dropout_key`, an int in [0, 2**64), t =
    ``optimizer.t`` before the step, layer, position in the batch): see ``_spec``.
    """
    X, Y, w, epochs, batch_size = train_args(net, params, X, Y, optimizer, state, losses, epochs,
                                             batch_size, rng, sample_weight, callback, stop)
    return _train(_CHECKED, net, params, X, Y, w, optimizer, state, losses, epochs, batch_size, rng, callback,
                  stop, check_dropout_key(dropout_key))


def _train(token, net, params, X, Y, w, optimizer, state, losses, epochs, batch_size, rng, callback, stop,
           dropout_key=0):
    """`train` on arguments as ``_spec.train_args`` returns them, unchecked: for `train`, and
    for ``_training``'s runs of a model's fit, whose arguments that fit checked. `token` must
    be ``_spec.CHECKED``, which only they hold. Returns how many epochs' losses it wrote."""
    if token is not _CHECKED:
        raise TypeError("_train is fastmlp's own; call train")
    X = _own_csr(X)     # (a callback may rewrite the caller's CSR arrays between epochs)
    work, grad = _Work(net, True, dropout_key), np.empty_like(params)
    kept = 0 if optimizer.fused else len(state)   # state vectors a save point keeps (plain SGD: none)
    snaps, steps, cur, written = np.empty((2, (1 + kept) * len(params)), params.dtype), [0, 0], -1, 0
    try:
        with np.errstate(all="ignore"):    # an overflow is a divergence, handled here
            for epoch in range(epochs):
                if stop is not None and stop.is_set():
                    return written
                # each epoch's order depends only on the stream, not on the last
                order = None if rng is None else shuffled(rng, X.shape[0])
                cur, steps[epoch % 2] = epoch, optimizer.t
                _save_point(snaps[epoch % 2], params, state, kept)
                with _fork.computing:     # (a fork from another thread waits for a batch's end)
                    loss = _epoch(net, optimizer, params, X, Y, w, batch_size, order, work, grad, state, stop)
                if loss is None:
                    return written
                losses[epoch], written = loss, epoch + 1
                if not math.isfinite(loss) or (callback is not None and not callback(epoch, losses[epoch])):
                    return written
                if epoch + 1 < epochs:
                    next_lr(optimizer)      # the callback may have set the next epoch's rate
    finally:
        if cur >= 0 and ((cur < written and not math.isfinite(losses[cur])) or not np.isfinite(params).all()):
            _roll_back(losses, cur, written, params, state, snaps, steps, optimizer, kept)
    return written


def _save_point(snap, params, state, kept):
    """snap = params, and the first `kept` vectors of the optimizer's state after them."""
    n = len(params)
    snap[:n] = params
    snap[n:] = state[:kept].ravel()


def _roll_back(losses, cur, written, params, state, snaps, steps, opt, kept):
    """After a divergence: params, state and opt.t back to the save point taken when epoch
    `cur` started, or when the epoch before it started if that one holds non-finite params
    (the steps of epoch cur - 1 overflowed). The losses of the epochs undone (those written,
    < `written`) become NaN. Returns the epoch whose start the params are now at."""
    n = len(params)
    if cur > 0 and not np.isfinite(snaps[cur % 2][:n]).all():
        if cur < written:
            losses[cur] = np.nan
        cur -= 1
    if cur < written:
        losses[cur] = np.nan
    params[...] = snaps[cur % 2][:n]
    state[:kept] = snaps[cur % 2][n:].reshape(kept, n)
    opt.t = steps[cur % 2]
    return cur
