# fastmlp._core, included by _core.pyx: the element math. Activations and their
# derivatives, the output activations with their losses (value and gradient from the
# logits together), the L2 penalty and the optimizers' steps, on single elements and on
# contiguous runs of them. The twin of _reference.py: the same names, the same formulas,
# the same order of operations, read side by side.

# The codes of the extension points. Each table must name exactly what fastmlp._registry
# lists (checked here, at import): a registered name without a kernel fails the import.

cdef enum Activation:
    ACT_IDENTITY, ACT_LEAKY_RELU, ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_GELU, ACT_SILU

cdef enum Output:
    OUT_SIGMOID, OUT_SOFTMAX, OUT_IDENTITY, OUT_EXP

cdef enum Loss:
    LOSS_BCE, LOSS_CROSS_ENTROPY, LOSS_MSE, LOSS_POISSON, LOSS_HUBER, LOSS_MAE, LOSS_QUANTILE

cdef enum OptimizerCode:
    OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_RPROP

_ACTIVATION_CODES = _registry.implemented("compiled", "activation", tuple(_registry.ACTIVATIONS), {
    "identity": ACT_IDENTITY, "leaky_relu": ACT_LEAKY_RELU, "relu": ACT_RELU, "tanh": ACT_TANH,
    "sigmoid": ACT_SIGMOID, "gelu": ACT_GELU, "silu": ACT_SILU,
})
_OUTPUT_CODES = _registry.implemented("compiled", "output", _registry.OUTPUTS, {
    "sigmoid": OUT_SIGMOID, "softmax": OUT_SOFTMAX, "identity": OUT_IDENTITY, "exp": OUT_EXP,
})
_LOSS_CODES = _registry.implemented("compiled", "loss", tuple(_registry.LOSSES), {
    "bce": LOSS_BCE, "cross_entropy": LOSS_CROSS_ENTROPY, "mse": LOSS_MSE, "poisson": LOSS_POISSON,
    "huber": LOSS_HUBER, "mae": LOSS_MAE, "quantile": LOSS_QUANTILE,
})
_OPTIMIZER_CODES = _registry.implemented("compiled", "optimizer", tuple(_registry.OPTIMIZERS), {
    "sgd": OPT_SGD, "adam": OPT_ADAM, "adamw": OPT_ADAMW, "rprop": OPT_RPROP,
})


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _tanh(floating x) noexcept nogil:
    if floating is float:
        return tanhf(x)
    else:
        return tanh(x)


cdef inline floating _erf(floating x) noexcept nogil:
    if floating is float:
        return erff(x)
    else:
        return erf(x)


cdef inline floating _sqrt(floating x) noexcept nogil:
    return sqrt(x)


cdef inline floating _gelu(floating z) noexcept nogil:
    """z * Phi(z), Phi the standard normal CDF: 0.5 z (1 + erf(z / sqrt(2)))."""
    return <floating>0.5 * z * (1 + _erf(z * <floating>M_SQRT1_2))


cdef inline floating _gelu_grad(floating z) noexcept nogil:
    """Phi(z) + z * phi(z), phi the standard normal density exp(-z^2 / 2) / sqrt(2 pi)."""
    return (<floating>0.5 * (1 + _erf(z * <floating>M_SQRT1_2))
            + z * _exp(<floating>-0.5 * z * z) * <floating>(0.5 * M_2_SQRTPI * M_SQRT1_2))


cdef inline floating _sigmoid1(floating z) noexcept nogil:
    """1 / (1 + exp(-z)) with e = exp(-|z|), so exp never overflows."""
    cdef floating e
    if z >= 0:
        return 1 / (1 + _exp(-z))
    e = _exp(z)
    return e / (1 + e)


cdef inline floating _silu(floating z) noexcept nogil:
    """z * sigmoid(z) (PyTorch's nn.SiLU)."""
    return z * _sigmoid1(z)


cdef inline floating _silu_grad(floating z) noexcept nogil:
    """s + z s (1 - s), s = sigmoid(z)."""
    cdef floating s = _sigmoid1(z)
    return s + z * s * (1 - s)


# The element loops below are written branch-free (a select, not a conditional store) so
# that the compiler vectorises them: with random signs a branch mispredicts half the time.

cdef void _activation(Py_ssize_t size, const floating* Z, floating* A, int act,
                      floating slope) noexcept nogil:
    """A = act(Z) elementwise. A may be Z (Leaky ReLU with a slope > 0, see `_Plan`):
    then a product slope * z < 0 that underflows to -0 is stored as the negative number
    nearest 0, so that A keeps the sign of each z (as _kernels.h's FM_LEAKY_NEG)."""
    cdef Py_ssize_t i
    cdef floating v, tiny = <floating>(1.401298464324817e-45 if floating is float
                                       else 4.9406564584124654e-324)
    if act == ACT_LEAKY_RELU and A == Z:
        for i in range(size):
            v = slope * A[i]
            A[i] = A[i] if A[i] >= 0 else (v if v != 0 else -tiny)
    elif act == ACT_LEAKY_RELU:
        for i in range(size):
            A[i] = Z[i] if Z[i] >= 0 else slope * Z[i]
    elif act == ACT_RELU and _small:    # (the same values in AVX-512 lanes)
        if floating is float:
            fm_relu_f(size, Z, A)
        else:
            fm_relu_d(size, Z, A)
    elif act == ACT_RELU:           # (z <= 0, not z > 0: a NaN z stays NaN)
        for i in range(size):
            A[i] = 0 if Z[i] <= 0 else Z[i]
    elif act == ACT_TANH:
        for i in range(size):
            A[i] = _tanh(Z[i])
    elif act == ACT_SIGMOID:
        for i in range(size):
            A[i] = _sigmoid1(Z[i])
    elif act == ACT_GELU:
        for i in range(size):
            A[i] = _gelu(Z[i])
    elif act == ACT_SILU:
        for i in range(size):
            A[i] = _silu(Z[i])
    else:
        for i in range(size):
            A[i] = Z[i]


cdef inline floating _leaky_grad1(floating z, floating d, floating slope) noexcept nogil:
    """d * Leaky ReLU'(z): d where z >= 0, slope * d where z < 0, NaN where z is NaN (a
    select on z >= 0 alone would give slope * d there). Two plain selects, which the
    compiler turns into vector operations."""
    cdef floating r = d if z >= 0 else slope * d
    return r if z == z else z


cdef inline floating _relu_grad1(floating z, floating d) noexcept nogil:
    """d * ReLU'(z): d where z > 0, 0 * d where z <= 0 (NaN for a NaN d, as the product
    d * 0 is), NaN where z is NaN."""
    cdef floating r = d if z > 0 else 0 * d
    return r if z == z else z


cdef void _activation_backward(Py_ssize_t size, const floating* Z, const floating* A,
                               floating* D, int act, floating slope) noexcept nogil:
    """D *= act'(Z), in place (D holds dL/dA on entry, dL/dZ on exit); A = act(Z).

    Leaky ReLU's derivative is 1 at z = 0 (the seed's choice), ReLU's is 0 there (PyTorch's);
    a NaN z gives a NaN dL/dZ for every activation but the identity.
    """
    cdef Py_ssize_t i
    if act == ACT_LEAKY_RELU:
        for i in range(size):
            D[i] = _leaky_grad1(Z[i], D[i], slope)
    elif act == ACT_RELU and _small:
        if floating is float:
            fm_relu_grad_f(size, Z, D)
        else:
            fm_relu_grad_d(size, Z, D)
    elif act == ACT_RELU:
        for i in range(size):
            D[i] = _relu_grad1(Z[i], D[i])
    elif act == ACT_TANH:
        for i in range(size):
            D[i] = D[i] * (1 - A[i] * A[i])
    elif act == ACT_SIGMOID:
        for i in range(size):
            D[i] = D[i] * (A[i] * (1 - A[i]))
    elif act == ACT_GELU:
        for i in range(size):
            D[i] = D[i] * _gelu_grad(Z[i])
    elif act == ACT_SILU:
        for i in range(size):
            D[i] = D[i] * _silu_grad(Z[i])


cdef inline floating _bce1(floating z, floating y, floating scale, double* total,
                          double* product, int* factors) noexcept nogil:
    """One element of `_sum_bce`: adds BCE(sigmoid(z), y) to total (log1p(e) as a factor of
    product, a log taken every 64 factors, or as a series where e < 1e-4); returns
    scale * (sigmoid(z) - y)."""
    cdef floating e, g
    cdef double d
    if z >= 0:
        e = _exp(-z)
        total[0] += z - z * y
        g = scale * (1 / (1 + e) - y)
    else:
        e = _exp(z)
        total[0] += -z * y
        g = scale * (e / (1 + e) - y)
    d = e
    if d < 1e-4:
        total[0] += d * (1 - d * (0.5 - d * (1.0 / 3 - d * 0.25)))
    else:
        product[0] *= 1 + d
        factors[0] += 1
        if factors[0] == 64:        # product <= 2**64: far from overflow
            total[0] += log(product[0])
            product[0], factors[0] = 1, 0
    return g


cdef double _sum_bce(Py_ssize_t size, const floating* Z, const floating* Y, floating* G,
                 floating scale) noexcept nogil:
    """Sum of BCE(sigmoid(z), y) over the elements; G = scale * (sigmoid(Z) - Y) if not NULL.

    Sigmoid and BCE share one exp per element: with e = exp(-|z|),
    loss = max(z, 0) - z*y + log1p(e) and sigmoid(z) = 1/(1+e) (z >= 0) or e/(1+e).
    The log1p terms are summed as log of a product of (1 + e) over up to 64 elements (a
    log per 64 elements, not one per element), except where e < 1e-4: there 1 + e would
    round away e's digits, and a 4-term series gives log1p(e) to full precision (`_bce1`).
    """
    cdef Py_ssize_t i
    cdef floating g
    cdef double total = 0, product = 1
    cdef int factors = 0
    for i in range(size):
        g = _bce1(Z[i], Y[i], scale, &total, &product, &factors)
        if G != NULL:
            G[i] = g
    return total + log(product)


cdef double _sum_cross_entropy(Py_ssize_t m, Py_ssize_t k, const floating* Z, const floating* Y,
                        floating* G, floating scale) noexcept nogil:
    """Sum over rows of -sum_j y_j log softmax(z)_j; G = scale * (softmax(Z) * sum(y) - Y).

    Stable: log softmax(z)_j = z_j - (max(z) + log(sum_j exp(z_j - max(z)))).
    """
    cdef Py_ssize_t i, j
    cdef const floating* z
    cdef const floating* y
    cdef floating* g
    cdef floating mx, r
    cdef double total = 0, ysum, zy, s
    for i in range(m):
        z, y = Z + i * k, Y + i * k
        mx = z[0]
        for j in range(1, k):
            mx = z[j] if z[j] > mx else mx
        s, ysum, zy = 0, 0, 0
        if G != NULL:   # keep exp(z - max) in G: one exp per output, not two
            g = G + i * k
            for j in range(k):
                g[j] = _exp(z[j] - mx)
                s += g[j]
                ysum += y[j]
                zy += y[j] * z[j]
            r = <floating>(ysum / s)
            for j in range(k):
                g[j] = scale * (g[j] * r - y[j])
        else:
            for j in range(k):
                s += _exp(z[j] - mx)
                ysum += y[j]
                zy += y[j] * z[j]
        total += ysum * (mx + log(s)) - zy
    return total


cdef double _sum_mse(Py_ssize_t size, const floating* Z, const floating* Y, floating* G,
                 floating scale) noexcept nogil:
    """Sum of (z - y)**2 over the elements; G = scale * 2 * (Z - Y) if not NULL."""
    cdef Py_ssize_t i
    cdef floating r
    cdef double total = 0
    for i in range(size):
        r = Z[i] - Y[i]
        total += r * r
        if G != NULL:
            G[i] = (2 * scale) * r
    return total


cdef double _sum_poisson(Py_ssize_t size, const floating* Z, const floating* Y, floating* G,
                         floating scale) noexcept nogil:
    """Sum of exp(z) - y z + y log y - y over the elements (half the Poisson deviance of the
    rate exp(z): 0 where exp(z) = y); G = scale * (exp(Z) - Y) if not NULL."""
    cdef Py_ssize_t i
    cdef floating e, y
    cdef double total = 0
    for i in range(size):
        e, y = _exp(Z[i]), Y[i]
        total += e - y * Z[i] - y + (y * log(y) if y != 0 else 0)   # (NaN for y < 0, as xlogy)
        if G != NULL:
            G[i] = scale * (e - y)
    return total


cdef double _sum_huber(Py_ssize_t size, const floating* Z, const floating* Y, floating* G,
                       floating scale, floating delta) noexcept nogil:
    """Sum of 0.5 r**2 where |r| <= delta, else delta (|r| - 0.5 delta), r = z - y (PyTorch's
    HuberLoss); G = scale * r clipped to [-delta, delta] if not NULL (NaN for a NaN r)."""
    cdef Py_ssize_t i
    cdef floating r, a
    cdef double total = 0
    for i in range(size):
        r = Z[i] - Y[i]
        a = fabs(r)
        total += <floating>0.5 * r * r if a <= delta else delta * (a - <floating>0.5 * delta)
        if G != NULL:
            G[i] = scale * (r if not a > delta else (delta if r > 0 else -delta))
    return total


cdef inline floating _sign(floating r) noexcept nogil:
    """1, -1 or 0 (r = 0) as r's sign; NaN for a NaN r (np.sign's)."""
    return 1 if r > 0 else (-1 if r < 0 else r * 0)


cdef double _sum_mae(Py_ssize_t size, const floating* Z, const floating* Y, floating* G,
                     floating scale) noexcept nogil:
    """Sum of |z - y| (PyTorch's L1Loss); G = scale * sign(Z - Y) if not NULL (0 where z = y,
    PyTorch's subgradient)."""
    cdef Py_ssize_t i
    cdef floating r
    cdef double total = 0
    for i in range(size):
        r = Z[i] - Y[i]
        total += fabs(r)
        if G != NULL:
            G[i] = scale * _sign(r)
    return total


cdef double _sum_quantile(Py_ssize_t size, const floating* Z, const floating* Y, floating* G,
                          floating scale, floating q) noexcept nogil:
    """Sum of the pinball loss max(q r, (q - 1) r), r = y - z (scikit-learn's mean_pinball_loss
    with alpha = q); G = scale * its derivative in z, -q where r > 0, 1 - q where r < 0 and
    0 where r = 0 (a subgradient, as the absolute error's), if not NULL."""
    cdef Py_ssize_t i
    cdef floating r
    cdef double total = 0
    for i in range(size):
        r = Y[i] - Z[i]
        total += q * r if r >= 0 else (q - 1) * r
        if G != NULL:
            G[i] = scale * (-q if r > 0 else ((1 - q) if r < 0 else r * 0))
    return total


cdef double _output_loss(Py_ssize_t m, Py_ssize_t k, const floating* Z, const floating* Y,
                         const floating* w, floating* G, floating scale,
                         int loss, floating parameter) noexcept nogil:
    """Sum over the m rows of w_i times the per-sample loss of logits Z (m, k) against Y
    (w = NULL: all weights 1); `parameter`: the loss's (huber's delta, quantile's quantile).

    The per-sample loss is the mean over outputs for BCE, MSE, Poisson, Huber, absolute error
    and the pinball loss (PyTorch's convention for BCEWithLogitsLoss, MSELoss, HuberLoss and
    L1Loss), the sum -sum_j y_j log p_j for cross-entropy.
    G = scale * d(that sum)/dZ unless NULL: scale = 1/sum(w) gives the gradient of the
    (weighted) mean.
    """
    cdef Py_ssize_t i
    cdef double total = 0
    if w != NULL:
        for i in range(m):
            total += w[i] * _output_loss(1, k, Z + i * k, Y + i * k, NULL,
                                         G + i * k if G != NULL else NULL, scale * w[i], loss, parameter)
        return total
    if loss == LOSS_CROSS_ENTROPY:
        return _sum_cross_entropy(m, k, Z, Y, G, scale)
    if loss == LOSS_MSE:
        return _sum_mse(m * k, Z, Y, G, scale / k) / k
    if loss == LOSS_POISSON:
        return _sum_poisson(m * k, Z, Y, G, scale / k) / k
    if loss == LOSS_HUBER:
        return _sum_huber(m * k, Z, Y, G, scale / k, parameter) / k
    if loss == LOSS_MAE:
        return _sum_mae(m * k, Z, Y, G, scale / k) / k
    if loss == LOSS_QUANTILE:
        return _sum_quantile(m * k, Z, Y, G, scale / k, parameter) / k
    return _sum_bce(m * k, Z, Y, G, scale / k) / k


cdef void _output_activation(Py_ssize_t m, Py_ssize_t k, const floating* Z, floating* P,
                             int out) noexcept nogil:
    """P = the output activation of the logits Z: sigmoid, softmax (per row), identity or exp."""
    cdef Py_ssize_t i, j
    cdef floating mx
    cdef double s
    if out == OUT_SOFTMAX:
        for i in range(m):
            mx = Z[i * k]
            for j in range(1, k):
                mx = Z[i * k + j] if Z[i * k + j] > mx else mx
            s = 0
            for j in range(k):
                P[i * k + j] = _exp(Z[i * k + j] - mx)
                s += P[i * k + j]
            for j in range(k):
                P[i * k + j] = <floating>(P[i * k + j] / s)
    elif out == OUT_IDENTITY:
        for i in range(m * k):
            P[i] = Z[i]
    elif out == OUT_EXP:
        for i in range(m * k):
            P[i] = _exp(Z[i])
    else:
        for i in range(m * k):
            P[i] = _sigmoid1(Z[i])


cdef double _sum_squared_weights(const Net* net, const floating* params) noexcept nogil:
    """sum over layers of sum(W_l ** 2): the L2 penalty is 0.5 * l2 times this.

    BLAS ?dot in chunks that fit its int; float32 weights through dsdot, which sums in double.
    """
    cdef Py_ssize_t l, start, end
    cdef double total = 0
    cdef int n, one = 1
    for l in range(net.n_layers):
        start, end = net.w_off[l], net.b_off[l]
        while start < end:
            n = <int>min(end - start, DOT_CHUNK)
            if floating is float:
                total += dsdot(&n, <float*>params + start, &one, <float*>params + start, &one)
            else:
                total += ddot(&n, <double*>params + start, &one, <double*>params + start, &one)
            start += n
    return total


cdef struct Opt:
    # filled by `_opt` from the fastmlp._spec.Optimizer's fields of the same names
    int code                  # an OPT_* code
    double lr, momentum, beta1, beta2, eps, weight_decay, etaplus, etaminus, step_min, step_max
    bint nesterov
    bint fused                # plain SGD: the step is taken inside the gradient GEMMs
    long t                    # steps taken so far (Adam's bias correction; Rprop's start)
    int n_state               # vectors of state per parameter (fastmlp._registry.OPTIMIZERS)


cdef void _update(Opt* opt, const Net* net, Py_ssize_t size, floating* params,
                  floating* grad, floating* state) noexcept nogil:
    """One optimizer step on the flat parameters with gradient `grad` (which includes the L2
    term); `state` holds the optimizer's opt.n_state vectors, each laid out like params, one
    after the other (see `_update_range`)."""
    cdef Py_ssize_t l, lo, hi
    opt.t += 1
    for l in range(net.n_layers):
        lo, hi = net.w_off[l], net.b_off[l]
        _update_range(opt, opt.t, params + lo, grad + lo, state + lo, size, hi - lo, True)
        lo, hi = net.b_off[l], net.b_off[l] + net.size[l + 1] * (1 if net.g_off[l] < 0 else 3)
        _update_range(opt, opt.t, params + lo, grad + lo, state + lo, size, hi - lo, False)   # (b, gamma, beta)


cdef void _update_range(const Opt* opt, long t, floating* p, floating* g, floating* s,
                        Py_ssize_t stride, Py_ssize_t size, bint weights) noexcept nogil:
    """Step `t` (counted from 1) of the optimizer on p[:size], with gradient g of the same
    extent and state vector j at s + j * stride: all weights of one layer (`weights`) or all
    biases, or a part of them. Each element's update reads only its own entries, so a step
    may be taken in any partition of the parameters. PyTorch's update rules:

    sgd:   v = momentum * v + g;  p -= lr * (g + momentum * v if nesterov else v)
    adam:  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
           p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    adamw: W *= 1 - lr * weight_decay (weights only, decoupled), then the adam step
    rprop: iRPROP-: per-weight steps grow by etaplus while g keeps its sign, shrink by
           etaminus (and g counts as 0) when it flips; p -= sign(g) * step
    """
    cdef Py_ssize_t i
    cdef floating lr = <floating>opt.lr, mu = <floating>opt.momentum, v, m, d, step, decay
    cdef floating b1 = <floating>opt.beta1, b2 = <floating>opt.beta2, eps = <floating>opt.eps
    cdef floating root_bc2
    cdef floating* s2
    if opt.code == OPT_SGD:   # s = velocity
        for i in range(size):
            v = mu * s[i] + g[i]
            s[i] = v
            d = g[i] + mu * v if opt.nesterov else v
            p[i] -= lr * d
    elif opt.code == OPT_ADAM or opt.code == OPT_ADAMW:   # s = m, s2 = v
        s2 = s + stride
        if opt.code == OPT_ADAMW and weights:
            decay = <floating>(1 - opt.lr * opt.weight_decay)
            for i in range(size):
                p[i] *= decay
        step = <floating>(opt.lr / (1 - pow(opt.beta1, t)))
        root_bc2 = <floating>sqrt(1 - pow(opt.beta2, t))
        if _small:      # (the same values in AVX-512 lanes)
            if floating is float:
                fm_adam_f(size, p, g, s, s2, b1, b2, step, root_bc2, eps)
            else:
                fm_adam_d(size, p, g, s, s2, b1, b2, step, root_bc2, eps)
            return
        for i in range(size):
            m = b1 * s[i] + (1 - b1) * g[i]
            v = b2 * s2[i] + (1 - b2) * g[i] * g[i]
            s[i], s2[i] = m, v
            p[i] -= step * m / (_sqrt(v) / root_bc2 + eps)
    elif opt.code == OPT_RPROP:   # s = step sizes, s2 = previous gradient
        s2 = s + stride
        if t == 1:
            for i in range(size):
                s[i] = lr
                s2[i] = 0
        for i in range(size):
            d = g[i] * s2[i]
            if d > 0:
                s[i] = min(s[i] * <floating>opt.etaplus, <floating>opt.step_max)
            elif d < 0:
                s[i] = max(s[i] * <floating>opt.etaminus, <floating>opt.step_min)
                g[i] = 0
            if g[i] > 0:
                p[i] -= s[i]
            elif g[i] < 0:
                p[i] += s[i]
            s2[i] = g[i]


cdef void _add_l2(const Net* net, const floating* params, floating* grad) noexcept nogil:
    """grad[W_l] += l2 * W_l for every layer (the gradient of 0.5 * l2 * sum(W**2))."""
    cdef Py_ssize_t l, i
    cdef floating l2 = <floating>net.l2
    for l in range(net.n_layers):
        for i in range(net.w_off[l], net.b_off[l]):
            grad[i] += l2 * params[i]
