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
    OP_DENSE, OP_ACTIVATION, OP_DROPOUT

_OP_CODES = _registry.implemented("compiled", "layer op", _registry.LAYER_OPS, {
    "dense": OP_DENSE, "activation": OP_ACTIVATION, "dropout": OP_DROPOUT,
})

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
    if fused:           # (b_{l-1}'s step may come with it: nothing below reads the biases)
        _backprop_dense(m, n_out, n_in, D, params + net.w_off[l], work + below.d_off, work + below.in_off,
                        work + below.out_off, below.setting, <floating>net.slope, work + net.pk_off,
                        pack_size, target + net.b_off[below.layer], alpha, beta_b)
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
