# fastmlp._core, included by _core.pyx: the entry points and their checks.
#
# The public functions check and convert their arguments (``_spec``, ``_validation``), then
# call a typed ``cdef`` function for their dtype (not callable from Python, so nothing can
# reach the loops unchecked). The typed functions build the C plan of the network and check
# once more that the arrays' extents fit it: what the loops index is bounded by the plan's
# own numbers, whatever the Network object in hand claims.

cdef enum:
    INT_MAX = 2147483647       # BLAS's int: the largest extent a ?gemm call may get

cdef class _Plan:
    """The C description (`Net`) of a ``Network`` and its work buffer's layout for batches of
    up to `capacity` rows, and the arrays that back its pointers."""
    cdef Net net
    cdef Sparse csr
    cdef object _ints            # keeps the integer arrays behind net's pointers alive
    cdef object _acts
    cdef object _csr             # ... and the CSR arrays and batch row ids behind net.sparse

    def __cinit__(self, net, Py_ssize_t capacity, bint gather, csr=None, bint training=False,
                  dropout_key=0):
        sizes = [int(s) for s in net.sizes]
        cdef Py_ssize_t L = len(sizes) - 1, l
        if L < 1 or min(sizes) < 1 or max(sizes) > INT_MAX or not 1 <= capacity <= INT_MAX:
            raise ValueError(f"a network needs at least 2 layer sizes in 1..{INT_MAX} and batches "
                             f"of 1..{INT_MAX} rows, got sizes {sizes} and {capacity} rows")
        ints = np.zeros((7, L + 1), dtype=np.intp)
        ints[0, :] = sizes
        acts = np.zeros(L, dtype=np.intc)     # at least one element, never empty
        acts[: L - 1] = [_ACTIVATION_CODES[a] for a in net.activations]
        cdef Py_ssize_t[:, ::1] iv = ints
        cdef int[::1] av = acts
        self._ints, self._acts = ints, acts
        small = csr is None
        largest = max([sizes[l] * sizes[l + 1] for l in range(L)])
        # Leaky ReLU with a slope > 0 keeps the sign of z, so its derivative (all that the
        # backward pass reads of Z_l) can come from A_l, written over Z_l: a buffer of the
        # batch's size less to write and read in each layer (not where every layer is small
        # enough for the small-network loops: keeping both costs nothing there, and the
        # activation then needs no care for a product that underflows to -0).
        inplace = net.negative_slope > 0 and largest >= BLAS_MIN_WORK
        for l in range(L):          # the flat vector's layout: the Network's
            gamma = net.norm_offsets(l)[0] if l < L - 1 else None
            iv[1, l], iv[2, l] = net._slices[l][0].start, net._slices[l][2].start
            iv[6, l] = -1 if gamma is None else gamma
        self.net.n_params, self.net.n_trainable = net.param_count(), net.trainable_count()
        off = 0
        for l in range(L):
            iv[3, l] = off          # Z
            off += capacity * sizes[l + 1]
            iv[4, l] = off          # A
            if l < L - 1 and inplace and acts[l] == ACT_LEAKY_RELU:
                iv[4, l] = iv[3, l]     # A_l written over Z_l
            elif l < L - 1:
                off += capacity * sizes[l + 1]
            iv[5, l] = off          # D
            off += capacity * sizes[l + 1]
        self.net.xb_off = off
        if gather and csr is None:
            off += capacity * sizes[0]
        self.net.yb_off = off
        if gather:
            off += capacity * sizes[L]
        self.net.wb_off = off
        if gather:
            off += capacity
        self.net.pk_off = off
        off += min(max(sizes), SMALL_MAX_PACKED) * FM_PACK_COLUMNS
        off = self._lay_ops(net, net.ops(training), capacity, off, iv)
        self.net.dropout_key = dropout_key
        self.net.work_size = off
        self.net.n_layers = L
        self.net.size = &iv[0, 0]
        self.net.w_off = &iv[1, 0]
        self.net.b_off = &iv[2, 0]
        self.net.g_off = &iv[6, 0]
        self.net.z_off = &iv[3, 0]
        self.net.a_off = &iv[4, 0]
        self.net.d_off = &iv[5, 0]
        self.net.act = &av[0]
        self.net.output = _OUTPUT_CODES[net.output]
        self.net.loss = _LOSS_CODES[net.loss]
        self.net.loss_parameter = 0 if net.loss_parameter is None else net.loss_parameter
        self.net.slope = net.negative_slope
        self.net.l2 = net.l2
        self.net.capacity = capacity
        self.net.sparse = NULL
        self.net.small_work = 0
        if small:
            self.net.small_work = largest
        if csr is not None:
            self._attach(csr[0], csr[1], csr[2], np.empty(capacity, np.intp))

    cdef Py_ssize_t _lay_ops(self, net, ops, Py_ssize_t capacity, Py_ssize_t off, Py_ssize_t[:, ::1] iv) except -1:
        """net.ops from ``Network.ops`` (name, layer, setting): op codes, settings and their
        places in the work buffer (a dense op writes Z_l, an activation A_l, a dropout its
        output and its mask from `off` on); returns the work buffer's size."""
        cdef Py_ssize_t i, l, prev_out = -1, n_ops = len(ops)
        cdef Op* op = <Op*>PyMem_Malloc(max(n_ops, 1) * sizeof(Op))
        if op == NULL:
            raise MemoryError("no memory for a network's op list")
        self.net.ops, self.net.n_ops, self.net.dropout, self.net.norm = op, n_ops, False, False
        for i in range(n_ops):
            name, l, setting = ops[i]
            op[i].code, op[i].layer, op[i].width = _OP_CODES[name], l, iv[0, l + 1]
            op[i].in_off, op[i].d_off, op[i].setting = prev_out, iv[5, l], 0
            op[i].aux_off, op[i].threshold, op[i].scale = 0, 0, 1.0
            op[i].stat_off, op[i].sum_off, op[i].p_off, op[i].r_off = 0, 0, -1, -1
            if op[i].code == OP_DENSE:
                op[i].out_off = iv[3, l]
            elif op[i].code == OP_ACTIVATION:
                op[i].out_off, op[i].setting = iv[4, l], _ACTIVATION_CODES[setting]
            elif op[i].code == OP_BATCH_NORM or op[i].code == OP_LAYER_NORM:
                # (setting: training) output, normalized input, 1 / std, gamma's and beta's gradients
                gamma, mean = net.norm_offsets(l)
                op[i].setting, op[i].p_off, op[i].r_off = bool(setting), gamma, -1 if mean is None else mean
                op[i].out_off, op[i].aux_off = off, off + capacity * op[i].width
                op[i].stat_off = op[i].aux_off + capacity * op[i].width
                op[i].sum_off = op[i].stat_off + max(capacity, op[i].width)
                op[i].sum_off += op[i].sum_off % 2      # (doubles: aligned in float32 too)
                off = op[i].sum_off + 6 * op[i].width      # (3 width doubles)
                self.net.norm = True
            else:
                op[i].threshold, op[i].scale = dropout_keep(setting)
                op[i].out_off, op[i].aux_off = off, off + capacity * op[i].width
                off += 2 * capacity * op[i].width
                self.net.dropout = True
            prev_out = op[i].out_off
        return off

    def __dealloc__(self):
        PyMem_Free(self.net.ops)

    cdef _attach(self, const Py_ssize_t[::1] indptr, const Py_ssize_t[::1] indices, data,
                 Py_ssize_t[::1] rows):
        """Sparse input: the loops read X's CSR arrays from ``_csr_arrays`` (kept alive here)."""
        cdef const signed char[::1] values = data.view(np.int8)
        self._csr = (indptr, indices, data, rows)
        self.csr.indptr, self.csr.indices = &indptr[0], &indices[0]
        self.csr.data, self.csr.rows = &values[0], &rows[0]
        self.net.sparse = &self.csr


cdef int _check_fit(const Net* net, Py_ssize_t n_params, Py_ssize_t n_in, Py_ssize_t n_out,
                    bint rows_agree) except -1:
    """ValueError unless arrays of these extents (and equal row counts) fit `net`."""
    if n_params != net.n_params or n_in != net.size[0] or n_out != net.size[net.n_layers] or not rows_agree:
        raise ValueError(f"the arrays (params ({n_params},), {n_in} inputs, {n_out} outputs) do not "
                         f"fit the network's sizes ({net.n_params} params, {net.size[0]} inputs, "
                         f"{net.size[net.n_layers]} outputs) or their row counts differ")
    return 0


cdef _csr_arrays(X, Py_ssize_t n_features, dtype):
    """(indptr, indices, data) of a CSR X for the loops: intp copies of the index arrays
    (ours, so nothing can change them after this check), checked to stay inside the rows'
    stored values and the network's inputs, and the values in the network's dtype; each
    holds one element at least, so that the pointers to them exist."""
    indptr = np.array(X.indptr, dtype=np.intp)
    indices = np.array(X.indices, dtype=np.intp)
    data = np.ascontiguousarray(X.data, dtype=dtype)
    cdef const Py_ssize_t[::1] ip = indptr
    cdef const Py_ssize_t[::1] ix = indices
    cdef Py_ssize_t i, bad = 0, n = ip.shape[0] - 1
    if n < 1 or ip[0] != 0 or ip[n] > ix.shape[0] or ip[n] > data.shape[0]:
        raise ValueError("X is not a valid CSR matrix: its indptr does not delimit its indices and data")
    for i in range(n):
        bad |= ip[i + 1] < ip[i]
    for i in range(ip[n]):
        bad |= (ix[i] < 0) | (ix[i] >= n_features)
    if bad:
        raise ValueError(f"X is not a valid CSR matrix: its indptr decreases or a column index is "
                         f"outside 0..{n_features - 1}")
    if indices.shape[0] == 0:
        indices, data = np.zeros(1, np.intp), np.zeros(1, dtype)
    return indptr, indices, data


cdef object _dtype(const floating* witness):
    """The numpy dtype of `floating` (the pointer only selects the specialization)."""
    if floating is float:
        return np.float32
    else:
        return np.float64


cdef Opt _opt(optimizer):
    """The C copy of a ``fastmlp._spec.Optimizer``: each member of `Opt` from the field of the
    same name (Cython fills a struct from a mapping, member by member), so a hyperparameter
    reaches the steps once it is a member there."""
    return {**vars(optimizer), "code": _OPTIMIZER_CODES[optimizer.name], "fused": optimizer.fused,
            "n_state": optimizer.n_state}


cdef int _take_order(perm, Py_ssize_t[::1] order) except -1:
    """order[:] = perm (a permutation from ``_spec.shuffled``), each index checked to lie in
    0..n-1 as it is copied: rows are gathered by these, so they must stay inside X. The copy
    is ours; the rng keeps no handle on it."""
    cdef const Py_ssize_t[::1] p = perm
    cdef Py_ssize_t i, v, n = order.shape[0]
    if p.shape[0] != n:
        out_of_range(perm, n)
    for i in range(n):
        v = p[i]
        if v < 0 or v >= n:
            out_of_range(perm, n)
        order[i] = v
    return 0


# ---------------------------------------------------------------- typed kernels
# The public functions below check and convert their arguments, then call these.

cdef _dense_forward_typed(const floating[:, ::1] A, const floating[:, ::1] W,
                          const floating[::1] b, floating[:, ::1] Z):
    cdef Py_ssize_t m = A.shape[0], k = A.shape[1], n = W.shape[1]
    with nogil:
        _dense_activation(m, n, k, &A[0, 0], &W[0, 0], &b[0], &Z[0, 0], <floating*>NULL, 0,
                          <floating>0)


cdef _dense_backward_typed(const floating[:, ::1] A_prev, const floating[:, ::1] W,
                           const floating[:, ::1] dZ, floating[:, ::1] dW, floating[::1] db,
                           floating[:, ::1] dA_prev):
    cdef Py_ssize_t m = A_prev.shape[0], k = A_prev.shape[1], n = W.shape[1]
    cdef bint want_dA = dA_prev is not None
    cdef floating[::1] pack = np.empty(min(n, SMALL_MAX_PACKED) * FM_PACK_COLUMNS, _dtype(&W[0, 0]))
    with nogil:
        _mm_tn(m, n, k, <floating>1, &A_prev[0, 0], &dZ[0, 0], <floating>0, &dW[0, 0])
        _colsum(m, n, <floating>1, &dZ[0, 0], <floating>0, &db[0])
        if want_dA:
            _backprop_dense(m, n, k, &dZ[0, 0], &W[0, 0], &dA_prev[0, 0], NULL, NULL,
                            ACT_IDENTITY, <floating>0, &pack[0], pack.shape[0], NULL, 0, 0)


cdef _activation_typed(const floating[:, ::1] Z, floating[:, ::1] A, int act, floating slope):
    with nogil:
        _activation(Z.shape[0] * Z.shape[1], &Z[0, 0], &A[0, 0], act, slope)


cdef _activation_backward_typed(const floating[:, ::1] Z, const floating[:, ::1] A,
                                floating[:, ::1] D, int act, floating slope):
    with nogil:
        _activation_backward(Z.shape[0] * Z.shape[1], &Z[0, 0], &A[0, 0], &D[0, 0], act, slope)


cdef _output_activation_typed(const floating[:, ::1] Z, floating[:, ::1] P, int out):
    with nogil:
        _output_activation(Z.shape[0], Z.shape[1], &Z[0, 0], &P[0, 0], out)


cdef double _output_loss_typed(const floating[:, ::1] Z, const floating[:, ::1] Y,
                               floating[:, ::1] G, int loss, double parameter):
    cdef Py_ssize_t m = Z.shape[0], k = Z.shape[1]
    cdef double total
    with nogil:
        total = _output_loss(m, k, &Z[0, 0], &Y[0, 0], NULL, &G[0, 0], <floating>(1.0 / m), loss,
                             <floating>parameter)
    return total / m


def dense_forward(A, W, b, Z):
    """Z = A @ W + b.  IN: A (n, n_in), W (n_in, n_out), b (n_out,).  OUT: Z (n, n_out),
    sharing no memory with the inputs."""
    A, W, b, Z = dense_forward_args(A, W, b, Z)
    if Z.size:
        if A.shape[1] == 0:
            Z[...] = b
        elif Z.dtype == np.float32:
            _dense_forward_typed[float](A, W, b, Z)
        else:
            _dense_forward_typed[double](A, W, b, Z)
    return Z


def dense_backward(A_prev, W, dZ, dW, db, dA_prev=None):
    """Gradients of a dense layer.  IN: A_prev (n, n_in), W (n_in, n_out), dZ (n, n_out).
    OUT: dW = A_prev.T @ dZ, db = dZ summed over rows, and dA_prev = dZ @ W.T if given
    (outputs share no memory with the inputs or each other)."""
    A_prev, W, dZ, dW, db, dA_prev = dense_backward_args(A_prev, W, dZ, dW, db, dA_prev)
    if A_prev.size == 0 or dZ.size == 0:     # degenerate shapes: let NumPy define them
        np.matmul(A_prev.T, dZ, out=dW)
        np.sum(dZ, axis=0, out=db)
        if dA_prev is not None:
            np.matmul(dZ, W.T, out=dA_prev)
    elif dW.dtype == np.float32:
        _dense_backward_typed[float](A_prev, W, dZ, dW, db, dA_prev)
    else:
        _dense_backward_typed[double](A_prev, W, dZ, dW, db, dA_prev)


def activation(name, Z, A, negative_slope=0.01):
    """A = name(Z) for a hidden activation name.  IN: Z.  OUT: A (same shape; may be Z itself)."""
    (Z,) = elementwise_args(A, "A", (Z, "Z"), in_place=("Z",))
    code = _ACTIVATION_CODES[choice(name, "activation", tuple(_registry.ACTIVATIONS))]
    slope = real(negative_slope, "negative_slope")
    if A.size == 0:
        pass
    elif A.dtype == np.float32:
        _activation_typed[float](Z, A, code, slope)
    else:
        _activation_typed[double](Z, A, code, slope)
    return A


def activation_backward(name, Z, A, dA, dZ, negative_slope=0.01):
    """dZ = dA * name'(Z).  IN: Z, A = name(Z), dA.  OUT: dZ (same shape; may be dA itself)."""
    Z, A, dA = elementwise_args(dZ, "dZ", (Z, "Z"), (A, "A"), (dA, "dA"), in_place=("dA",))
    code = _ACTIVATION_CODES[choice(name, "activation", tuple(_registry.ACTIVATIONS))]
    slope = real(negative_slope, "negative_slope")
    np.copyto(dZ, dA)
    if dZ.size == 0:
        pass
    elif dZ.dtype == np.float32:
        _activation_backward_typed[float](Z, A, dZ, code, slope)
    else:
        _activation_backward_typed[double](Z, A, dZ, code, slope)
    return dZ


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
    "identity".  IN: Z (n, k).  OUT: P (n, k; may be Z itself)."""
    (Z,) = elementwise_args(P, "P", (Z, "Z"), in_place=("Z",))
    code = _OUTPUT_CODES[choice(output, "output", _registry.OUTPUTS)]
    if code == OUT_SOFTMAX and P.shape[1] == 0:
        raise ValueError("softmax needs at least one column (class)")
    if P.size == 0:
        pass
    elif P.dtype == np.float32:
        _output_activation_typed[float](Z, P, code)
    else:
        _output_activation_typed[double](Z, P, code)
    return P


def output_loss(loss, Z, Y, G, parameter=None):
    """Mean over samples of `loss`, from the logits Z (stable).

    "bce": binary cross-entropy of sigmoid(Z), averaged over outputs too (BCEWithLogitsLoss);
    "cross_entropy": -sum_j y_j log softmax(z)_j (CrossEntropyLoss, Y one-hot);
    "mse", "huber", "mae": squared error, Huber loss (threshold `parameter`, default 1),
    absolute error, averaged over outputs too (MSELoss, HuberLoss, L1Loss); "quantile": the
    pinball loss of quantile `parameter` (default 0.5), averaged over outputs too.
    IN: Z, Y (n, k).  OUT: G = d(mean loss)/dZ (may be Z or Y itself).  Returns the mean loss.
    """
    Z, Y = elementwise_args(G, "G", (Z, "Z"), (Y, "Y"), in_place=("Z", "Y"))
    code = _LOSS_CODES[choice(loss, "loss", tuple(_registry.LOSSES))]
    parameter = loss_parameter(loss, parameter)
    parameter = 0.0 if parameter is None else parameter
    if G.size == 0:
        raise ValueError("the loss needs at least one element")
    if G.dtype == np.float32:
        return _output_loss_typed[float](Z, Y, G, code, parameter)
    return _output_loss_typed[double](Z, Y, G, code, parameter)


def sigmoid_bce(Z, Y, G):
    """Mean binary cross-entropy of sigmoid(Z) against Y, from the logits Z (stable).

    IN: Z, Y (n, k).  OUT: G = d(mean loss)/dZ = (sigmoid(Z) - Y) / (n * k).
    Returns the mean loss over samples and outputs (PyTorch's BCEWithLogitsLoss).
    """
    return output_loss("bce", Z, Y, G)


cdef floating* _work_buffer(Py_ssize_t size, const floating* witness) except NULL:
    """`size` numbers of `_train_typed`'s scratch, from PyMem_RawMalloc (the caller frees
    them): cheaper than an ndarray, most of all right after an idle pause."""
    cdef floating* buffer = NULL
    if 0 <= size and <size_t>size <= (<size_t>-1) // sizeof(floating):
        buffer = <floating*>PyMem_RawMalloc(size * sizeof(floating))
    if buffer == NULL:
        raise MemoryError(f"no memory for the training loop's buffers ({size} numbers)")
    return buffer


cdef char* _array_data(a, int typenum, int ndim, bint write, Py_ssize_t* shape, str name) except NULL:
    """The data of `a` for the training loop, its extents written to shape[:ndim]: an
    ndarray of `typenum` with `ndim` dimensions in C order, aligned, in native byte order
    (and writeable with `write`), else TypeError or ValueError. The arrays were checked
    before (``_spec.train_args``, a model's fit); this is the loop's own guard. Read through
    NumPy's C API, not as typed memoryviews, whose buffer requests cost ~30 us for a fit's
    six arrays right after an idle pause."""
    cdef cnp.ndarray arr
    cdef int i
    if not cnp.PyArray_Check(a):
        raise TypeError(f"{name} must be a numpy array, got {type(a).__name__}")
    arr = <cnp.ndarray>a
    if (cnp.PyArray_TYPE(arr) != typenum or cnp.PyArray_NDIM(arr) != ndim or not cnp.PyArray_IS_C_CONTIGUOUS(arr)
            or not cnp.PyArray_ISALIGNED(arr) or not cnp.PyArray_ISNOTSWAPPED(arr)
            or (write and not cnp.PyArray_ISWRITEABLE(arr))):
        raise ValueError(f"{name} must be a{' writeable' if write else 'n'} aligned C-ordered {ndim}-d array "
                         f"of {cnp.PyArray_DescrFromType(typenum)}, got {a.dtype} of shape {a.shape}")
    for i in range(ndim):
        shape[i] = cnp.PyArray_DIM(arr, i)
    return <char*>cnp.PyArray_DATA(arr)


cdef Py_ssize_t _loop_arrays(const Net* net, int kind, params, X, csr, Y, w, losses, state, Py_ssize_t n_state,
                             Py_ssize_t epochs, Py_ssize_t batch_size, char** data) except -1:
    """data[:6] = the data of params, X (NULL when None: CSR input), Y, w (NULL when None),
    losses and state for `_train_typed`, each checked by `_array_data` (dtype `kind`, losses
    float64) and their extents checked against `net`, the batch size and the epochs.
    Returns the number of rows."""
    cdef Py_ssize_t p[1]
    cdef Py_ssize_t x[2]
    cdef Py_ssize_t y[2]
    cdef Py_ssize_t v[1]
    cdef Py_ssize_t l[1]
    cdef Py_ssize_t st[2]
    data[0] = _array_data(params, kind, 1, True, p, "params")
    data[1] = NULL if X is None else _array_data(X, kind, 2, False, x, "X")
    data[2] = _array_data(Y, kind, 2, False, y, "Y")
    data[3] = NULL if w is None else _array_data(w, kind, 1, False, v, "sample_weight")
    data[4] = _array_data(losses, cnp.NPY_DOUBLE, 1, True, l, "losses")
    data[5] = _array_data(state, kind, 2, True, st, "state")
    cdef Py_ssize_t n = y[0]
    _check_fit(net, p[0], net.size[0] if X is None else x[1], y[1],
               (x[0] == n if X is not None else csr is not None and csr[0].shape[0] == n + 1)
               and 1 <= batch_size <= n and st[0] == n_state and st[1] == net.n_params and l[0] >= epochs
               and (w is None or v[0] == n))
    return n


@cython.boundscheck(True)      # net may be anything here: net.sizes[0] of () raises, not reads
def _dense_or_csr(X, net, dtype):
    """(X, None) for a dense X, or (None, its checked CSR arrays) for a sparse one."""
    if isinstance(X, np.ndarray):
        return X, None
    return None, _csr_arrays(X, net.sizes[0], dtype)


def predict_proba(net, params, X, out):
    """OUT: out (n, net.sizes[-1]) = the network's output activations for X. `params` may be
    read-only (memory-mapped, shared); `out` shares no memory with params or X.

    Rows go through in blocks of CHUNK_ROWS, without the GIL; about once per
    FLOPS_PER_GIL_CHECK flops, between blocks, it is taken back for a moment: a signal
    handler's exception (Ctrl-C's KeyboardInterrupt) is raised then (out partly written),
    and an os.fork() from another thread happens there (``fastmlp._fork``)."""
    X = predict_args(net, params, X, out)
    X, csr = _dense_or_csr(X, net, params.dtype)
    if params.dtype == np.float32:
        _predict_typed[float](net, params, X, csr, out.shape[0], out)
    else:
        _predict_typed[double](net, params, X, csr, out.shape[0], out)
    return out


def loss_gradient(net, params, X, Y, grad=None, sample_weight=None):
    """Mean loss of the network on (X, Y), plus 0.5 * l2 * sum(W**2) over the weights.

    With sample_weight (n,), the mean is sum(w_i * loss_i) / sum(w_i). `params` may be
    read-only. OUT: grad (same layout as params, sharing no memory with the inputs), the
    gradient of that, if given. Ctrl-C and forks are seen between blocks of rows, as in
    `predict_proba`.
    """
    X, Y, w = loss_gradient_args(net, params, X, Y, grad, sample_weight)
    X, csr = _dense_or_csr(X, net, params.dtype)
    if params.dtype == np.float32:
        return _loss_gradient_typed[float](net, params, X, csr, Y, grad, w)
    return _loss_gradient_typed[double](net, params, X, csr, Y, grad, w)


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
    without raising after the current step (checked every few batches, about once per
    FLOPS_PER_GIL_CHECK flops, and between epochs); the partial epoch's loss is not written.
    An exception from a signal handler (Ctrl-C's KeyboardInterrupt, a SIGTERM handler's
    SystemExit), seen at the same points: likewise, and raised.

    The epochs run without the GIL; it is taken back for a moment at those points, and
    between epochs to shuffle and for the callback. The work buffers are allocated once per
    call.

    Dropout (net.dropout) draws step t's masks from (`dropout_key`, an int in [0, 2**64), t =
    ``optimizer.t`` before the step, layer, position in the batch): see ``_spec``.
    """
    X, Y, w, epochs, batch_size = train_args(net, params, X, Y, optimizer, state, losses, epochs,
                                             batch_size, rng, sample_weight, callback, stop)
    return _train(_CHECKED, net, params, X, Y, w, optimizer, state, losses, epochs, batch_size, rng, callback,
                  stop, check_dropout_key(dropout_key))


def _train(token, net, params, X, Y, w, optimizer, state, losses, epochs, batch_size, rng, callback, stop,
           dropout_key=0):
    """`train` on arguments as ``_spec.train_args`` returns them, unchecked but for the
    arrays' types, dtypes, layouts and extents: for `train`, and for ``_training``'s runs of
    a model's fit, whose arguments that fit checked. `token` must be ``_spec.CHECKED``,
    which only they hold. Returns how many epochs' losses it wrote (see `train`)."""
    if token is not _CHECKED:
        raise TypeError("_train is fastmlp's own; call train")
    cdef bint single = cnp.PyArray_Check(params) and cnp.PyArray_TYPE(<cnp.ndarray>params) == cnp.NPY_FLOAT
    csr = None
    if not cnp.PyArray_Check(X):     # sparse: its checked CSR arrays
        if X is None:
            raise TypeError("X must be an array or a sparse matrix, got None")
        X, csr = _dense_or_csr(X, net, np.float32 if single else np.float64)
    if single:
        return _train_typed[float](<const float*>NULL, net, optimizer, params, X, csr, Y, w, losses, state, epochs,
                            batch_size, rng, callback, stop, dropout_key)
    return _train_typed[double](<const double*>NULL, net, optimizer, params, X, csr, Y, w, losses, state, epochs,
                        batch_size, rng, callback, stop, dropout_key)
