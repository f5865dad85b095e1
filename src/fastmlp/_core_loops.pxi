# fastmlp._core, included by _core.pyx: the loops over whole networks. Forward and backward
# passes over the layers, the overflow guard of predictions, the epoch of mini-batch steps
# with its polls (Ctrl-C, a stop event, a fork from another thread), the save points and
# roll-back after a divergence, and the typed bodies of prediction, full-data gradients and
# training, which run these without the GIL.

cdef void _forward(const Net* net, const floating* params, const floating* X,
                   Py_ssize_t m, floating* work, uint64_t step) noexcept nogil:
    """Forward pass of m rows: the ops of net.ops in turn (each writes its output into `work`;
    the logits land in Z of the last layer). `step`: the training step, which draws dropout's
    masks (the ops of a training plan). With sparse input (net.sparse), X is NULL and the rows
    are net.sparse.rows[:m]."""
    cdef Py_ssize_t i = 0, code
    cdef const floating* A
    if not net.dropout and not net.norm and _is_small(net, m):
        _forward_small(net, params, X, m, work)
        return
    while i < net.n_ops:
        A = X if i == 0 else work + net.ops[i - 1].out_off
        code = net.ops[i].code
        if code == OP_DENSE:
            i += _dense_op(net, params, work, i, A, m, step)
        elif code == OP_ACTIVATION:
            i += _activation_op(net, params, work, i, A, m, step)
        elif code == OP_BATCH_NORM:
            i += _batch_norm_op(net, params, work, i, A, m, step)
        elif code == OP_LAYER_NORM:
            i += _layer_norm_op(net, params, work, i, A, m, step)
        else:
            i += _dropout_op(net, params, work, i, A, m, step)


cdef void _backward(const Net* net, const floating* params, const floating* X, Py_ssize_t m,
                    floating* work, floating* target, floating alpha, floating beta_w,
                    floating beta_b) noexcept nogil:
    """Backward pass after `_forward` and `_output_loss` (which left dL/dZ_L in d_off[L-1]):
    the ops' backward steps, last op first.

    target[W_l] = alpha * dL/dW_l + beta_w * target[W_l], and likewise for b_l with beta_b:
    with target = grad, alpha = 1, betas 0 that is the gradient; with target = params,
    alpha = -lr, beta_b = 1 and beta_w = 1 - lr * l2 it is the SGD step with weight decay,
    applied inside the gradient GEMM once dL/dA_{l-1} has been taken from the old W_l.
    """
    cdef Py_ssize_t i = net.n_ops - 1, code
    cdef const floating* A
    if not net.dropout and not net.norm and _is_small(net, m):
        _backward_small(net, params, X, m, work, target, alpha, beta_w, beta_b)
        return
    while i >= 0:
        A = X if i == 0 else work + net.ops[i - 1].out_off
        code = net.ops[i].code
        if code == OP_DENSE:
            i -= _dense_op_backward(net, params, work, i, A, m, target, alpha, beta_w, beta_b)
        elif code == OP_ACTIVATION:
            i -= _activation_op_backward(net, params, work, i, A, m, target, alpha, beta_w, beta_b)
        elif code == OP_BATCH_NORM:
            i -= _batch_norm_op_backward(net, params, work, i, A, m, target, alpha, beta_w, beta_b)
        elif code == OP_LAYER_NORM:
            i -= _layer_norm_op_backward(net, params, work, i, A, m, target, alpha, beta_w, beta_b)
        else:
            i -= _dropout_op_backward(net, params, work, i, A, m, target, alpha, beta_w, beta_b)


# The overflow guard of predict_proba and loss_gradient. Where a row's values come near the
# top of the dtype's range, whether a layer's sums overflow depends on the order of their
# terms and on fused multiply-adds, so on the path (tiles, BLAS, the small loops) the batch's
# size picks: a row could give NaN alone and a finite number in a batch. The guard decides
# from a bound that holds in every order instead: every partial sum of b_j + sum_p a_p W_pj
# is at most max_p |a_p| * reach + max_j |b_j| in size, reach = max_j sum_p |W_pj|, so a row
# whose input a to some layer holds an |a_p| above that layer's limit (`_input_limits`: where
# the bound reaches half the dtype's largest number, the half covering rounding) is out of
# range. Such rows' logits become NaN, and the caller warns. `_reference` has the same steps
# (`_input_limits`, `_overflow_rows`), the same arithmetic.

cdef double _max_abs(const floating* a, Py_ssize_t n) noexcept nogil:
    """max(|a[:n]|), NaN if a holds a NaN (as NumPy's max)."""
    cdef Py_ssize_t p
    cdef double v, mx = 0
    for p in range(n):
        v = fabs(a[p])
        if not v <= mx:
            mx = v
            if v != v:
                break
    return mx


cdef void _input_limits(const Net* net, const floating* params, floating* limit) noexcept nogil:
    """OUT limit[l] = the largest |a_p| a row's input to layer l may hold: (top - max_j |b_j|) /
    max_j sum_p |W_pj| in double (sums row after row), top half the dtype's largest number,
    then rounded to the dtype; infinite where the weights are all 0, NaN where one is NaN."""
    cdef Py_ssize_t l, p, j, k, n
    cdef const floating* W
    cdef double c, reach, bmax, top = (<double>FLT_MAX if floating is float else DBL_MAX) / 2
    for l in range(net.n_layers):
        k, n, W = net.size[l], net.size[l + 1], params + net.w_off[l]
        reach = 0
        for j in range(n):
            c = 0
            for p in range(k):
                c += fabs(W[p * n + j])
            if not c <= reach:
                reach = c
                if c != c:
                    break
        bmax = _max_abs(params + net.b_off[l], n)
        limit[l] = <floating>(INFINITY if reach == 0 else (top - bmax) / reach)


cdef inline bint _beyond(const floating* a, Py_ssize_t n, floating t) noexcept nogil:
    """Whether some |a[p]| > t (or t < 0): an integer OR the compiler vectorises."""
    cdef Py_ssize_t p
    cdef int out = t < 0
    for p in range(n):
        out |= (a[p] > t) | (a[p] < -t)
    return out != 0


cdef Py_ssize_t _overflow_rows(const Net* net, const floating* X, Py_ssize_t m, floating* work,
                               const floating* limit) noexcept nogil:
    """After `_forward` of m rows: the logits of the rows out of range (the guard above,
    `limit` from `_input_limits`) become NaN. Returns how many."""
    cdef Py_ssize_t i, l, L = net.n_layers, k = net.size[L], j, count = 0, row
    cdef const floating* data = <const floating*>(net.sparse.data if net.sparse != NULL else NULL)
    cdef const Py_ssize_t* indptr = net.sparse.indptr if net.sparse != NULL else NULL
    cdef floating* z
    cdef bint out
    for i in range(m):
        for l in range(L):
            if l > 0:
                out = _beyond(work + net.a_off[l - 1] + i * net.size[l], net.size[l], limit[l])
            elif net.sparse != NULL:       # (the implicit zeros are beyond a limit < 0 only)
                row = net.sparse.rows[i]
                out = _beyond(data + indptr[row], indptr[row + 1] - indptr[row], limit[0])
            else:
                out = _beyond(X + i * net.size[0], net.size[0], limit[0])
            if out:
                z = work + net.z_off[L - 1] + i * k
                for j in range(k):
                    z[j] = NAN
                count += 1
                break
    return count


cdef struct Poll:
    # When and how the training loop looks up from its batches (`_poll`).
    Py_ssize_t every          # batches between polls (from a batch's flops)
    Py_ssize_t countdown      # batches left until the next poll
    PyObject* event           # borrowed: train's `stop` (it has is_set()), or NULL
    PyObject* errors          # borrowed: a list; gets what a signal handler raised
    bint stopped              # set by a poll: training ends before the next batch


# _fork.PENDING: set while an os.fork() waits for the loops to reach a batch boundary
cdef const int* _fork_flag = <const int*><size_t>_fork.PENDING_ADDRESS


cdef inline bint _fork_waits() noexcept nogil:
    return fm_read_flag(_fork_flag) != 0


cdef bint _poll(Poll* stop) noexcept nogil:
    """Take the GIL for a moment: first wait while an os.fork() from another thread
    happens, if one waits (`_fork.pause`: every loop of this call at rest); run
    pending signal handlers (Ctrl-C raises KeyboardInterrupt in them) and ask
    stop.event.is_set(). True, with stop.stopped set, when the loop must end; an exception
    is kept in stop.errors for the caller to raise."""
    stop.countdown = stop.every
    with gil:
        try:
            if _fork_waits():
                _fork.pause()
            PyErr_CheckSignals()
            if stop.event != NULL and (<object>stop.event).is_set():
                stop.stopped = True
        except BaseException as exc:
            (<list>stop.errors).append(exc)
            stop.stopped = True
    return stop.stopped


cdef inline bint _boundary(Poll* stop) noexcept nogil:
    """At a batch boundary of a loop on one thread: `_poll` every stop.every batches, and at
    once while a fork waits. True when the loop must end."""
    stop.countdown -= 1
    return (stop.countdown <= 0 or _fork_waits()) and _poll(stop)


cdef void _poll_init(Poll* poll, Py_ssize_t every, stop, list errors) noexcept:
    """`poll` for a loop polling every `every` batches (or blocks of rows), `stop` (an Event,
    or None) and `errors` (the list that gets a signal handler's exception)."""
    poll.every = poll.countdown = every
    poll.event, poll.errors, poll.stopped = <PyObject*>stop if stop is not None else NULL, <PyObject*>errors, False


cdef double _epoch(const Net* net, Opt* opt, Py_ssize_t n_params, floating* params,
                   const floating* X, const floating* Y, const floating* w, Py_ssize_t n,
                   Py_ssize_t batch_size, const Py_ssize_t* order, floating* work,
                   floating* grad, floating* state, Poll* stop) noexcept nogil:
    """One epoch of mini-batch steps; returns the mean of the batch losses (each taken before
    its step, with the L2 penalty), weighted by the batches' total sample weights.

    Batches are consecutive rows of X, or rows order[start:start + batch_size] gathered
    into the work buffer when `order` is not NULL; with sparse input (net.sparse, X NULL)
    only the batch's row ids are written, for the first layer to read. Plain SGD (opt.fused) takes its step
    inside the backward pass; the others go through `grad`. Ends early, params whole: a
    batch loss that is not finite is returned at once, before its step; a poll (every
    stop.every batches) that sets stop.stopped ends it before the next batch.
    """
    cdef Py_ssize_t start, m, r, j, src
    cdef Py_ssize_t n_in = net.size[0], k = net.size[net.n_layers]
    cdef const floating* Xb
    cdef const floating* Yb
    cdef const floating* Wb = NULL
    cdef floating* xb = work + net.xb_off
    cdef floating* yb = work + net.yb_off
    cdef floating* wb = work + net.wb_off
    cdef floating* Zout = work + net.z_off[net.n_layers - 1]
    cdef floating* Dout = work + net.d_off[net.n_layers - 1]
    cdef floating lr = <floating>opt.lr, l2 = <floating>net.l2
    cdef double total = 0, weight, total_weight = 0, loss
    start = 0
    while start < n:
        if _boundary(stop):
            return 0
        m = min(batch_size, n - start)
        if net.sparse != NULL:
            for r in range(m):
                net.sparse.rows[r] = start + r if order == NULL else order[start + r]
        if order == NULL:
            Xb = X + start * n_in if X != NULL else NULL
            Yb = Y + start * k
            if w != NULL:
                Wb = w + start
        else:
            for r in range(m):
                src = order[start + r]
                if X != NULL:
                    memcpy(xb + r * n_in, X + src * n_in, n_in * sizeof(floating))
                for j in range(k):
                    yb[r * k + j] = Y[src * k + j]
                if w != NULL:
                    wb[r] = w[src]
            Xb, Yb = xb if X != NULL else NULL, yb
            if w != NULL:
                Wb = wb
        weight = m
        if w != NULL:
            weight = 0
            for r in range(m):
                weight += Wb[r]
        _forward(net, params, Xb, m, work, <uint64_t>opt.t)
        # a batch of total weight 0 contributes nothing (its data gradient is 0)
        loss = _output_loss(m, k, Zout, Yb, Wb, Dout,
                            <floating>(1.0 / weight if weight > 0 else 0), net.loss,
                            <floating>net.loss_parameter)
        if net.l2 != 0:
            loss += weight * 0.5 * net.l2 * _sum_squared_weights(net, params)
        if not isfinite(loss):
            return loss            # diverged: no step from a non-finite loss
        total += loss
        total_weight += weight
        if opt.fused:
            _backward(net, params, Xb, m, work, params, -lr, 1 - lr * l2, <floating>1)
            opt.t += 1
        else:
            _backward(net, params, Xb, m, work, grad, <floating>1, <floating>0, <floating>0)
            if net.l2 != 0:
                _add_l2(net, params, grad)
            _update(opt, net, n_params, params, grad, state)
        start += m
    return total / total_weight if total_weight > 0 else 0


cdef Py_ssize_t _weight_count(const Net* net) noexcept nogil:
    """The weights of `net` (its biases left out): multiply-adds per row and pass."""
    cdef Py_ssize_t i, weights = 0
    for i in range(net.n_layers):
        weights += net.size[i] * net.size[i + 1]
    return weights


cdef inline Py_ssize_t _pack_size(const Net* net) noexcept nogil:
    """Elements of one pack buffer (`_backprop_dense`'s scratch) for `net`."""
    cdef Py_ssize_t l, widest = 0
    for l in range(net.n_layers + 1):
        widest = max(widest, net.size[l])
    return min(widest, SMALL_MAX_PACKED) * FM_PACK_COLUMNS


cdef double _epoch_small(const Net* net, Opt* opt, floating* params, const floating* X,
                         const floating* Y, Py_ssize_t n, floating* work, Poll* stop) noexcept nogil:
    """`_epoch` for one full batch of plain SGD (opt.fused) on unweighted, unshuffled rows of a
    small network (`_is_small`): its steps and arithmetic, without its general cases."""
    cdef Py_ssize_t k = net.size[net.n_layers]
    cdef floating lr = <floating>opt.lr, l2 = <floating>net.l2
    cdef double loss
    if _boundary(stop):
        return 0
    _forward_small(net, params, X, n, work)
    loss = _output_loss(n, k, work + net.z_off[net.n_layers - 1], Y, NULL, work + net.d_off[net.n_layers - 1],
                        <floating>(1.0 / <double>n), net.loss, <floating>net.loss_parameter)
    if net.l2 != 0:
        loss += <double>n * 0.5 * net.l2 * _sum_squared_weights(net, params)
    if not isfinite(loss):
        return loss                # diverged: no step from a non-finite loss
    _backward_small(net, params, X, n, work, params, -lr, 1 - lr * l2, <floating>1)
    opt.t += 1
    return loss / <double>n


cdef void _set_rows(const Net* net, Py_ssize_t start, Py_ssize_t m) noexcept nogil:
    """Sparse input: the next batch is rows start..start + m - 1 of X."""
    cdef Py_ssize_t r
    if net.sparse != NULL:
        for r in range(m):
            net.sparse.rows[r] = start + r


cdef void _save_point(floating* snap, const floating* params, const floating* state,
                      Py_ssize_t n_params, Py_ssize_t kept) noexcept nogil:
    """snap = params, and the first `kept` vectors of the optimizer's state after them."""
    memcpy(snap, params, n_params * sizeof(floating))
    if kept:
        memcpy(snap + n_params, state, kept * n_params * sizeof(floating))


cdef bint _all_finite(const floating* a, Py_ssize_t size) noexcept nogil:
    """No NaN or infinity in a[:size]: x - x is 0 for finite x, NaN otherwise (an integer
    OR over the elements, which the compiler vectorises)."""
    cdef Py_ssize_t i
    cdef int bad = 0
    for i in range(size):
        bad |= (a[i] - a[i]) != 0
    return bad == 0


cdef Py_ssize_t _roll_back(double* losses, Py_ssize_t cur, Py_ssize_t written, floating* params,
                           floating* state, const floating* snaps, const long* steps, Opt* opt,
                           Py_ssize_t n_params, Py_ssize_t kept) noexcept nogil:
    """After a divergence: params, state and opt.t back to the save point taken when epoch
    `cur` started, or when the epoch before it started if that one holds non-finite params
    (the steps of epoch cur - 1 overflowed). The losses of the epochs undone (those written,
    < `written`) become NaN. Returns the epoch whose start the params are now at."""
    cdef Py_ssize_t snap_size = (1 + kept) * n_params
    if cur > 0 and not _all_finite(snaps + (cur % 2) * snap_size, n_params):
        if cur < written:
            losses[cur] = NAN
        cur -= 1
    if cur < written:
        losses[cur] = NAN
    memcpy(params, snaps + (cur % 2) * snap_size, n_params * sizeof(floating))
    memcpy(state, snaps + (cur % 2) * snap_size + n_params, kept * n_params * sizeof(floating))
    opt.t = steps[cur % 2]
    return cur


# ---------------------------------------------------------------- whole networks

cdef _predict_typed(net, const floating[::1] params, const floating[:, ::1] X, csr, Py_ssize_t n,
                    floating[:, ::1] out):
    cdef _Plan plan = _Plan(net, min(n, CHUNK_ROWS), False, csr)
    cdef const Net* cnet = &plan.net
    cdef Py_ssize_t k = out.shape[1], start, m, n_in = cnet.size[0]
    _check_fit(cnet, params.shape[0], n_in if X is None else X.shape[1], k,
               out.shape[0] == n and (X is None or X.shape[0] == n))
    cdef floating[::1] work = np.empty(cnet.work_size, _dtype(&params[0]))
    cdef floating* Z = &work[0] + cnet.z_off[cnet.n_layers - 1]
    cdef const floating* Xp = NULL if X is None else &X[0, 0]
    cdef floating[::1] limit = np.empty(cnet.n_layers, _dtype(&params[0]))
    cdef Py_ssize_t bad = 0
    cdef Poll poll       # blocks of rows, polled as the training loop polls its batches
    errors = []
    _poll_init(&poll, _per_check(2.0 * <double>cnet.capacity * <double>_weight_count(cnet)), None, errors)
    with _fork.computing, nogil:
        _input_limits(cnet, &params[0], &limit[0])
        start = 0
        while start < n and not _boundary(&poll):
            m = min(cnet.capacity, n - start)
            _set_rows(cnet, start, m)
            _forward(cnet, &params[0], Xp + start * n_in if Xp != NULL else NULL, m, &work[0], 0)
            bad += _overflow_rows(cnet, Xp + start * n_in if Xp != NULL else NULL, m, &work[0], &limit[0])
            _output_activation(m, k, Z, &out[start, 0], cnet.output)
            start += m
    if errors:
        raise errors[0]        # a signal handler's exception (Ctrl-C), between blocks
    if bad:
        warn_overflow(bad, n, _dtype(&params[0]), "their outputs are NaN", 3)


cdef _loss_gradient_typed(net, const floating[::1] params, const floating[:, ::1] X, csr,
                          const floating[:, ::1] Y, floating[::1] grad, const floating[::1] w):
    cdef Py_ssize_t n = Y.shape[0]
    cdef _Plan plan = _Plan(net, min(n, CHUNK_ROWS), False, csr)
    cdef const Net* cnet = &plan.net
    cdef Py_ssize_t L = cnet.n_layers, n_in = cnet.size[0]
    cdef Py_ssize_t k = Y.shape[1], start, m, i
    cdef bint want_grad = grad is not None, weighted = w is not None
    _check_fit(cnet, params.shape[0], n_in if X is None else X.shape[1], k,
               (X is None or X.shape[0] == n) and (csr is None or csr[0].shape[0] == n + 1)
               and (not want_grad or grad.shape[0] == cnet.n_params) and (not weighted or w.shape[0] == n))
    cdef floating[::1] work = np.empty(cnet.work_size, _dtype(&params[0]))
    cdef const floating* Xp = NULL
    cdef double total = 0, weight = n
    cdef floating zero_or_one, scale
    cdef floating[::1] limit = np.empty(cnet.n_layers, _dtype(&params[0]))
    cdef Py_ssize_t bad = 0
    cdef Poll poll       # blocks of rows, polled as the training loop polls its batches
    errors = []
    _poll_init(&poll, _per_check((6.0 if want_grad else 2.0) * <double>cnet.capacity * <double>_weight_count(cnet)),
               None, errors)
    with _fork.computing, nogil:
        _input_limits(cnet, &params[0], &limit[0])
        if weighted:
            weight = 0
            for i in range(n):
                weight += w[i]
        scale = <floating>(1.0 / weight)
        start = 0
        while start < n and not _boundary(&poll):
            m = min(cnet.capacity, n - start)
            _set_rows(cnet, start, m)
            Xp = NULL if X is None else &X[start, 0]
            _forward(cnet, &params[0], Xp, m, &work[0], 0)
            bad += _overflow_rows(cnet, Xp, m, &work[0], &limit[0])
            total += _output_loss(m, k, &work[0] + cnet.z_off[L - 1], &Y[start, 0],
                                  &w[start] if weighted else NULL,
                                  &work[0] + cnet.d_off[L - 1] if want_grad else NULL,
                                  scale, cnet.loss, <floating>cnet.loss_parameter)
            if want_grad:
                zero_or_one = 0 if start == 0 else 1    # later chunks add to the gradient
                _backward(cnet, &params[0], Xp, m, &work[0], &grad[0],
                          <floating>1, zero_or_one, zero_or_one)
            start += m
        total /= weight
        if want_grad:       # the running statistics: no gradient
            for i in range(cnet.n_trainable, cnet.n_params):
                grad[i] = 0
        if cnet.l2 != 0:
            total += 0.5 * cnet.l2 * _sum_squared_weights(cnet, &params[0])
            if want_grad:
                _add_l2(cnet, &params[0], &grad[0])
    if errors:
        raise errors[0]        # a signal handler's exception (Ctrl-C), between blocks
    if bad:
        warn_overflow(bad, n, _dtype(&params[0]),
                      "their losses are NaN, and so is the loss" + (" and its gradient" if want_grad else ""), 3)
    return total


cdef Py_ssize_t _per_check(double flops) noexcept nogil:
    """How many units of work costing `flops` each make FLOPS_PER_GIL_CHECK (at least 1)."""
    if flops >= FLOPS_PER_GIL_CHECK:
        return 1
    return FLOPS_PER_GIL_CHECK // max(<Py_ssize_t>flops, 1)


cdef Py_ssize_t _polls(const Net* net, Py_ssize_t batch_size, Py_ssize_t n, bint every_epoch,
                       Poll* poll) noexcept nogil:
    """The GIL is taken back about once per FLOPS_PER_GIL_CHECK flops: sets poll's count of
    batches between checks inside an epoch, and returns the epochs between checks (1 with
    `every_epoch`)."""
    cdef double batch_flops = 6.0 * <double>batch_size * <double>_weight_count(net)
    poll.every = poll.countdown = _per_check(batch_flops)
    return 1 if every_epoch else _per_check(batch_flops * <double>(-(-n // batch_size)))


cdef Py_ssize_t _train_typed(const floating* witness, net, optimizer, params_in, X_in, csr, Y_in,
                             w_in, losses_in, state_in, Py_ssize_t epochs, Py_ssize_t batch_size, rng,
                             callback, stop, dropout_key) except -1:
    cdef _Plan plan = _Plan(net, batch_size, rng is not None, csr, True, dropout_key)
    cdef const Net* cnet = &plan.net
    cdef char* data[6]
    cdef Opt opt = _opt(optimizer)
    cdef Py_ssize_t n = _loop_arrays(cnet, cnp.NPY_FLOAT if floating is float else cnp.NPY_DOUBLE, params_in, X_in,
                                     csr, Y_in, w_in, losses_in, state_in, opt.n_state, epochs, batch_size,
                                     data)
    cdef floating* params = <floating*>data[0]
    cdef const floating* Xp = <const floating*>data[1]
    cdef const floating* Y = <const floating*>data[2]
    cdef const floating* w_ptr = <const floating*>data[3]
    cdef double* losses = <double*>data[4]
    cdef floating* state = <floating*>data[5]
    cdef Py_ssize_t e = 0, last, n_params = cnet.n_params, cur = -1
    cdef Poll poll
    cdef Py_ssize_t epochs_per_check = _polls(cnet, batch_size, n, rng is not None or callback is not None, &poll)
    cdef floating *work, *grad, *snaps
    cdef Py_ssize_t[::1] order = np.empty(n, np.intp) if rng is not None else None
    cdef const Py_ssize_t* order_ptr = &order[0] if rng is not None else NULL
    cdef bint small = (opt.fused and rng is None and w_ptr == NULL and batch_size == n and not cnet.dropout
                       and not cnet.norm and _is_small(cnet, n))
    cdef double loss
    cdef long steps[2]
    errors = []     # (below, through `try`, nothing raises once the buffer is made)
    _poll_init(&poll, poll.every, stop, errors)
    # the state vectors a save point keeps: none for plain SGD (its step is fused, its state unused)
    cdef Py_ssize_t kept = 0 if opt.fused else opt.n_state
    # one buffer: layers' work, gradient, 2 save points (params and the state kept)
    work = _work_buffer(cnet.work_size + (3 + 2 * kept) * n_params, params)
    grad, snaps = work + cnet.work_size, work + cnet.work_size + n_params
    try:
        while e < epochs:
            if stop is not None and stop.is_set():
                break
            if rng is not None:   # each epoch's order depends only on the stream, not on the last
                _take_order(shuffled(rng, n, False), order)
            last = min(epochs, e + epochs_per_check)
            with _fork.computing, nogil:   # (a fork from another thread waits for a boundary)
                while e < last:
                    cur, steps[e % 2] = e, opt.t
                    _save_point(&snaps[(e % 2) * (1 + kept) * n_params], params, state, n_params, kept)
                    if small:
                        loss = _epoch_small(cnet, &opt, params, Xp, Y, n, work, &poll)
                    else:
                        loss = _epoch(cnet, &opt, n_params, params, Xp, Y, w_ptr, n,
                                      batch_size, order_ptr, work, grad, state, &poll)
                    if poll.stopped:
                        break          # after a whole step; this epoch's loss is not written
                    losses[e] = loss
                    e += 1
                    if not isfinite(loss):
                        break          # diverged: params as after the last finite batch
            if errors:
                raise errors[0]        # a signal handler's exception (Ctrl-C)
            if poll.stopped or not isfinite(losses[e - 1]):
                break
            PyErr_CheckSignals()   # raises KeyboardInterrupt between epochs; params are whole
            if callback is not None:
                if not callback(e - 1, losses[e - 1]):
                    break
                if e < epochs:
                    opt.lr = next_lr(optimizer)    # the callback may have set the next epoch's rate
    finally:
        if cur >= 0 and ((cur < e and not isfinite(losses[cur])) or not _all_finite(params, n_params)):
            _roll_back(losses, cur, e, params, state, snaps, steps, &opt, n_params, kept)
        PyMem_RawFree(work)
        optimizer.t = opt.t
    return e
