# fastmlp._core, included by _core.pyx: the layer ops. A network is the sequence of ops
# ``Network.ops`` lists (dense, activation, dropout), closed by the output head; `_Plan`
# turns it into the `Op` array of `Net`, and the loops' `_forward` and `_backward` walk it.
# Each op has its forward beside its backward, with the names and arguments of its twin in
# _reference.py: forward (net, params, work, i, A, m, step) runs op i on its input A (X for
# the first op, else op i - 1's output) and returns how many ops it ran; backward (net,
# params, work, i, A, m, target, alpha, beta_w, beta_b) runs after the ops above it, with
# dL/d(its output) in its `d_off` buffer, and returns how many ops it ran.
#
# One fusion, for speed: a dense op followed by an activation op runs both in one pass
# (`_dense_activation` forward, `_backprop_dense` backward, which carries the gradient back
# through the dense layer and the activation below it at once): the dense op looks one op
# ahead and returns 2. A new op is a code here, its two functions and a case in the walkers.

# The op codes: the table must name exactly what fastmlp._registry.LAYER_OPS lists
# (checked here, at import).

cdef enum LayerOp:
    OP_DENSE, OP_ACTIVATION, OP_DROPOUT, OP_BATCH_NORM, OP_LAYER_NORM

_OP_CODES = _registry.implemented("compiled", "layer op", _registry.LAYER_OPS, {
    "dense": OP_DENSE, "activation": OP_ACTIVATION, "dropout": OP_DROPOUT,
    "batch_norm": OP_BATCH_NORM, "layer_norm": OP_LAYER_NORM,
})

cdef double _NORM_EPS = _SPEC_NORM_EPS, _NORM_MOMENTUM = _SPEC_NORM_MOMENTUM

# Dropout's masks (see ``fastmlp._spec``): SplitMix64's finalizer on uint64 counters.
cdef enum:
    DROPOUT_BITS_SHIFT = 11        # a hash's top 53 bits: hash >> 11

cdef uint64_t _GOLDEN = 0x9E3779B97F4A7C15ULL


cdef inline uint64_t _mix64(uint64_t x) noexcept nogil:
    """SplitMix64's finalizer of x (arithmetic modulo 2**64)."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL
    return x ^ (x >> 31)


cdef inline uint64_t _dropout_stream(uint64_t key, uint64_t step, uint64_t layer) noexcept nogil:
    """The seed of one dropout op's masks at one training step:
    mix(mix(key + (step + 1) * GOLDEN) + (layer + 1) * GOLDEN)."""
    return _mix64(_mix64(key + (step + 1) * _GOLDEN) + (layer + 1) * _GOLDEN)


cdef void _dropout(Py_ssize_t size, const floating* A, floating* M, floating* out, uint64_t stream,
                   uint64_t threshold, floating scale) noexcept nogil:
    """Inverted dropout: M = scale where the unit is kept, else 0; out = A * M. Unit p of the
    batch (row-major) is kept when mix(stream + (p + 1) * GOLDEN) >> 11 >= threshold."""
    cdef Py_ssize_t p
    cdef uint64_t golden = _GOLDEN, counter = stream     # (locals: the stores below cannot alias them)
    cdef floating m
    for p in range(size):
        counter = counter + golden
        m = scale if (_mix64(counter) >> DROPOUT_BITS_SHIFT) >= threshold else 0
        M[p] = m
        out[p] = A[p] * m


cdef void _dropout_backward(Py_ssize_t size, const floating* M, floating* D) noexcept nogil:
    """D *= M, in place (dL/d(out) in, dL/dA out)."""
    cdef Py_ssize_t p
    for p in range(size):
        D[p] = D[p] * M[p]


# ---------------------------------------------------------------- dense


cdef Py_ssize_t _dense_op(const Net* net, const floating* params, floating* work, Py_ssize_t i,
                          const floating* A, Py_ssize_t m, uint64_t step) noexcept nogil:
    """Z_l = A W_l + b_l, and A_l = act_l(Z_l) in the same pass when op i + 1 is the
    activation (then 2 ops ran). With sparse input, the first layer reads net.sparse's rows."""
    cdef const Op* op = net.ops + i
    cdef const Op* act = op + 1 if i + 1 < net.n_ops and op[1].code == OP_ACTIVATION else NULL
    cdef Py_ssize_t l = op.layer
    cdef floating* Aout = work + act.out_off if act != NULL else NULL
    cdef int code = act.setting if act != NULL else 0
    if l == 0 and net.sparse != NULL:
        _sparse_activation(m, op.width, net.sparse, params + net.w_off[0], params + net.b_off[0],
                           work + op.out_off, Aout, code, <floating>net.slope)
    else:
        _dense_activation(m, op.width, net.size[l], A, params + net.w_off[l], params + net.b_off[l],
                          work + op.out_off, Aout, code, <floating>net.slope)
    return 2 if act != NULL else 1


cdef inline bint _bias_taken(const Net* net, Py_ssize_t i, Py_ssize_t m) noexcept nogil:
    """Whether the backward step of the dense op two above dense op i (across an activation)
    took op i's bias step in its pass (`_bias_in_pass`)."""
    cdef const Op* op = net.ops + i
    return (i + 2 < net.n_ops and op[1].code == OP_ACTIVATION and op[2].code == OP_DENSE
            and _bias_in_pass(m, op[2].width, op.width, op[1].setting, _pack_size(net)))


cdef Py_ssize_t _dense_op_backward(const Net* net, const floating* params, floating* work, Py_ssize_t i,
                                   const floating* A, Py_ssize_t m, floating* target, floating alpha,
                                   floating beta_w, floating beta_b) noexcept nogil:
    """dL/dA = D_l W_l^T into the buffer of the ops below (times act'(Z) when op i - 1 is an
    activation: then 2 ops ran), then target[W_l] = alpha * A^T D_l + beta_w * target[W_l]
    and target[b_l] = alpha * (D_l summed over rows) + beta_b * target[b_l] (unless the op
    above took that bias step already, see `_bias_taken`). dL/dA is taken from the old W_l
    before its step (target may be params: the fused SGD step)."""
    cdef const Op* op = net.ops + i
    cdef const Op* below = op - 1 if i > 0 else NULL
    cdef bint fused = below != NULL and below.code == OP_ACTIVATION
    cdef Py_ssize_t l = op.layer, n_in = net.size[op.layer], n_out = op.width
    cdef floating* D = work + op.d_off
    cdef Py_ssize_t pack_size = _pack_size(net)
    if fused:           # (b_{l-1}'s step may come with it: nothing below reads the biases,
                        # unless a norm lies between: dL/db_{l-1} is then the norm's dL/dZ)
        _backprop_dense(m, n_out, n_in, D, params + net.w_off[l], work + below.d_off, work + below.in_off,
                        work + below.out_off, below.setting, <floating>net.slope, work + net.pk_off, pack_size,
                        target + net.b_off[below.layer] if (below - 1).code == OP_DENSE else <floating*>NULL,
                        alpha, beta_b)
    elif below != NULL:
        _backprop_dense(m, n_out, n_in, D, params + net.w_off[l], work + below.d_off, <floating*>NULL,
                        <floating*>NULL, ACT_IDENTITY, <floating>0, work + net.pk_off, pack_size,
                        <floating*>NULL, alpha, beta_b)
    if l == 0 and net.sparse != NULL:
        _sparse_tn(m, n_out, n_in, alpha, net.sparse, D, beta_w, target + net.w_off[0])
    else:
        _mm_tn(m, n_out, n_in, alpha, A, D, beta_w, target + net.w_off[l])
    if not _bias_taken(net, i, m):
        _colsum(m, n_out, alpha, D, beta_b, target + net.b_off[l])
    return 2 if fused else 1


# ---------------------------------------------------------------- activation


cdef Py_ssize_t _activation_op(const Net* net, const floating* params, floating* work, Py_ssize_t i,
                               const floating* A, Py_ssize_t m, uint64_t step) noexcept nogil:
    """A_l = act_l(Z_l) (when not fused into the dense op before it)."""
    cdef const Op* op = net.ops + i
    _activation(m * op.width, A, work + op.out_off, op.setting, <floating>net.slope)
    return 1


cdef Py_ssize_t _activation_op_backward(const Net* net, const floating* params, floating* work,
                                        Py_ssize_t i, const floating* A, Py_ssize_t m, floating* target,
                                        floating alpha, floating beta_w, floating beta_b) noexcept nogil:
    """D_l *= act_l'(Z_l) (when not fused into the dense op above it)."""
    cdef const Op* op = net.ops + i
    _activation_backward(m * op.width, A, work + op.out_off, work + op.d_off, op.setting, <floating>net.slope)
    return 1


# ---------------------------------------------------------------- dropout


cdef Py_ssize_t _dropout_op(const Net* net, const floating* params, floating* work, Py_ssize_t i,
                            const floating* A, Py_ssize_t m, uint64_t step) noexcept nogil:
    """Inverted dropout of A with the layer's rate and this step's masks (training only)."""
    cdef const Op* op = net.ops + i
    _dropout(m * op.width, A, work + op.aux_off, work + op.out_off,
             _dropout_stream(net.dropout_key, step, <uint64_t>op.layer), op.threshold, <floating>op.scale)
    return 1


cdef Py_ssize_t _dropout_op_backward(const Net* net, const floating* params, floating* work, Py_ssize_t i,
                                     const floating* A, Py_ssize_t m, floating* target, floating alpha,
                                     floating beta_w, floating beta_b) noexcept nogil:
    """D_l *= the forward pass's mask."""
    cdef const Op* op = net.ops + i
    _dropout_backward(m * op.width, work + op.aux_off, work + op.d_off)
    return 1


# ---------------------------------------------------------------- normalization
# Batch norm (PyTorch's BatchNorm1d) and layer norm (LayerNorm) between a dense layer and
# its activation: out = gamma * (Z - mean) / sqrt(var + eps) + beta, the statistics taken
# per unit over the batch's rows (batch norm in training; in inference, the running ones)
# or per row over its units (layer norm). Sums run in double. The normalized input and
# 1 / std stay in the op's aux buffer for the backward step, which leaves dL/dZ in the
# layer's gradient buffer and steps gamma and beta as biases are (no decay).


cdef inline void _norm_step(floating* target, Py_ssize_t gamma, floating alpha, floating beta_b,
                            double dgamma, double dbeta, Py_ssize_t n) noexcept nogil:
    """target[gamma] = alpha * dgamma + beta_b * target[gamma] (gamma: the offset of one unit's
    gamma in the flat target), and likewise its beta, n further; target is not read when
    beta_b == 0."""
    cdef Py_ssize_t at = gamma
    if beta_b == 0:
        target[at] = <floating>(alpha * dgamma)
        target[at + n] = <floating>(alpha * dbeta)
    else:
        target[at] = beta_b * target[at] + <floating>(alpha * dgamma)
        target[at + n] = beta_b * target[at + n] + <floating>(alpha * dbeta)


cdef inline void _column_sums(Py_ssize_t m, Py_ssize_t n, const floating* D, const floating* xhat,
                              double* db, double* dg) noexcept nogil:
    """db = D summed over its m rows, dg = D * xhat summed likewise (row after row: the
    compiler vectorises across the units)."""
    cdef Py_ssize_t r, j
    for j in range(n):
        db[j] = dg[j] = 0
    for r in range(m):
        for j in range(n):
            db[j] += D[r * n + j]
            dg[j] += <double>D[r * n + j] * xhat[r * n + j]


cdef Py_ssize_t _batch_norm_op(const Net* net, const floating* params, floating* work, Py_ssize_t i,
                               const floating* A, Py_ssize_t m, uint64_t step) noexcept nogil:
    """Batch normalization of Z_l. Training (the op's setting): each unit's mean and biased
    variance over the batch, and the running statistics updated in params (momentum
    NORM_MOMENTUM, the variance unbiased by m / (m - 1)); inference: the running ones.
    Row after row, each unit's sums in double."""
    cdef const Op* op = net.ops + i
    cdef Py_ssize_t n = op.width, r, j
    cdef floating* out = work + op.out_off
    cdef floating* xhat = work + op.aux_off
    cdef floating* inv = work + op.stat_off
    cdef double* mean = <double*>(work + op.sum_off)
    cdef double* var = mean + n
    cdef const floating* g = params + op.p_off
    cdef floating* running = <floating*>params + op.r_off     # (the training pass writes it)
    cdef double d
    if op.setting:
        for j in range(n):
            mean[j] = var[j] = 0
        for r in range(m):
            for j in range(n):
                mean[j] += A[r * n + j]
        for j in range(n):
            mean[j] = mean[j] / m
        for r in range(m):
            for j in range(n):
                d = A[r * n + j] - mean[j]
                var[j] += d * d
        for j in range(n):
            var[j] = var[j] / m
            running[j] = <floating>((1 - _NORM_MOMENTUM) * <double>running[j] + _NORM_MOMENTUM * mean[j])
            running[n + j] = <floating>((1 - _NORM_MOMENTUM) * <double>running[n + j]
                                        + _NORM_MOMENTUM * (var[j] * m / (m - 1)))
    else:
        for j in range(n):
            mean[j], var[j] = running[j], running[n + j]
    for j in range(n):
        inv[j] = <floating>(1 / sqrt(var[j] + _NORM_EPS))
        mean[j] = <floating>mean[j]
    for r in range(m):
        for j in range(n):
            xhat[r * n + j] = (A[r * n + j] - <floating>mean[j]) * inv[j]
            out[r * n + j] = g[j] * xhat[r * n + j] + g[n + j]
    return 1


cdef Py_ssize_t _batch_norm_op_backward(const Net* net, const floating* params, floating* work, Py_ssize_t i,
                                        const floating* A, Py_ssize_t m, floating* target, floating alpha,
                                        floating beta_w, floating beta_b) noexcept nogil:
    """D_l = dL/dZ_l from dL/d(out), in place; gamma_l and beta_l stepped. Training:
    dZ = gamma / (m std) * (m dy - sum dy - xhat sum(dy xhat)); inference: gamma / std * dy."""
    cdef const Op* op = net.ops + i
    cdef Py_ssize_t n = op.width, r, j
    cdef floating* D = work + op.d_off
    cdef const floating* xhat = work + op.aux_off
    cdef const floating* inv = work + op.stat_off
    cdef double* db = <double*>(work + op.sum_off)
    cdef double* dg = db + n
    cdef double* c = dg + n
    _column_sums(m, n, D, xhat, db, dg)
    for j in range(n):
        c[j] = <double>params[op.p_off + j] * inv[j] / (m if op.setting else 1)
    if op.setting:
        for r in range(m):
            for j in range(n):
                D[r * n + j] = <floating>(c[j] * (m * <double>D[r * n + j] - db[j] - xhat[r * n + j] * dg[j]))
    else:
        for r in range(m):
            for j in range(n):
                D[r * n + j] = <floating>(D[r * n + j] * c[j])
    for j in range(n):
        _norm_step(target, op.p_off + j, alpha, beta_b, dg[j], db[j], n)     # (after D's pass read gamma)
    return 1


cdef inline void _row_moments(const floating* a, Py_ssize_t n, double* mean, double* var) noexcept nogil:
    """The mean and biased variance of a[:n], in double, each sum over four interleaved
    partial sums (independent chains: the additions overlap)."""
    cdef Py_ssize_t j
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, mu, d0, d1, d2, d3
    for j in range(0, n - 3, 4):
        s0 += a[j]
        s1 += a[j + 1]
        s2 += a[j + 2]
        s3 += a[j + 3]
    for j in range(n - n % 4, n):
        s0 += a[j]
    mu = ((s0 + s1) + (s2 + s3)) / n
    s0 = s1 = s2 = s3 = 0
    for j in range(0, n - 3, 4):
        d0, d1, d2, d3 = a[j] - mu, a[j + 1] - mu, a[j + 2] - mu, a[j + 3] - mu
        s0 += d0 * d0
        s1 += d1 * d1
        s2 += d2 * d2
        s3 += d3 * d3
    for j in range(n - n % 4, n):
        d0 = a[j] - mu
        s0 += d0 * d0
    mean[0], var[0] = mu, ((s0 + s1) + (s2 + s3)) / n


cdef inline void _row_dots(const floating* d, const floating* g, const floating* xhat, Py_ssize_t n,
                           double* s1, double* s2) noexcept nogil:
    """s1 = sum of d * g, s2 = sum of d * g * xhat over n units, in double (two partial sums
    each, interleaved)."""
    cdef Py_ssize_t j
    cdef double a0 = 0, a1 = 0, b0 = 0, b1 = 0, x0, x1
    for j in range(0, n - 1, 2):
        x0, x1 = <double>d[j] * g[j], <double>d[j + 1] * g[j + 1]
        a0 += x0
        a1 += x1
        b0 += x0 * xhat[j]
        b1 += x1 * xhat[j + 1]
    if n % 2:
        x0 = <double>d[n - 1] * g[n - 1]
        a0 += x0
        b0 += x0 * xhat[n - 1]
    s1[0], s2[0] = a0 + a1, b0 + b1


cdef Py_ssize_t _layer_norm_op(const Net* net, const floating* params, floating* work, Py_ssize_t i,
                               const floating* A, Py_ssize_t m, uint64_t step) noexcept nogil:
    """Layer normalization of Z_l: each row's mean and biased variance over its units."""
    cdef const Op* op = net.ops + i
    cdef Py_ssize_t n = op.width, r, j
    cdef const floating* a
    cdef floating* out
    cdef floating* xhat
    cdef const floating* g = params + op.p_off
    cdef double mean, var, c
    for r in range(m):
        a, out, xhat = A + r * n, work + op.out_off + r * n, work + op.aux_off + r * n
        _row_moments(a, n, &mean, &var)
        c = 1 / sqrt(var + _NORM_EPS)
        (work + op.stat_off)[r] = <floating>c
        for j in range(n):
            xhat[j] = <floating>((a[j] - mean) * c)
            out[j] = g[j] * xhat[j] + g[n + j]
    return 1


cdef Py_ssize_t _layer_norm_op_backward(const Net* net, const floating* params, floating* work, Py_ssize_t i,
                                        const floating* A, Py_ssize_t m, floating* target, floating alpha,
                                        floating beta_w, floating beta_b) noexcept nogil:
    """D_l = dL/dZ_l, in place: with dx = gamma dy, dZ = (n dx - sum dx - xhat sum(dx xhat)) /
    (n std) per row; gamma_l and beta_l stepped once every row's dZ is taken."""
    cdef const Op* op = net.ops + i
    cdef Py_ssize_t n = op.width, r, j
    cdef floating* D = work + op.d_off
    cdef const floating* xhat = work + op.aux_off
    cdef double* db = <double*>(work + op.sum_off)
    cdef double* dg = db + n
    cdef const floating* g = params + op.p_off
    cdef double s1, s2, c
    _column_sums(m, n, D, xhat, db, dg)
    for r in range(m):
        _row_dots(D + r * n, g, xhat + r * n, n, &s1, &s2)
        c = (<double>(work + op.stat_off)[r]) / n
        for j in range(n):
            D[r * n + j] = <floating>(c * (n * (<double>D[r * n + j] * g[j]) - s1 - xhat[r * n + j] * s2))
    for j in range(n):
        _norm_step(target, op.p_off + j, alpha, beta_b, dg[j], db[j], n)
    return 1
