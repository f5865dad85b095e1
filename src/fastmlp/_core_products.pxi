# fastmlp._core, included by _core.pyx: the matrix products. BLAS ?gemm (SciPy's, or the
# library fastmlp._blas chose) on row-major data by swapping the operands; plain loops for
# products too small for a BLAS call to pay off; _kernels.h's register tiles on AVX-512
# CPUs; a dense layer's forward step (product, bias and activation fused) and the gradient
# carried back through it; sparse (CSR) first layers; and the row-by-row loops of small
# one-hidden-layer networks.

# The ?gemm the products call (Fortran interface, 32-bit integers): SciPy's OpenBLAS through
# cython_blas, or another library's set by fastmlp._blas through `_use_gemm` (Intel MKL).
ctypedef void (*_sgemm_t)(char* transa, char* transb, int* m, int* n, int* k, float* alpha,
                          float* a, int* lda, float* b, int* ldb, float* beta, float* c,
                          int* ldc) noexcept nogil
ctypedef void (*_dgemm_t)(char* transa, char* transb, int* m, int* n, int* k, double* alpha,
                          double* a, int* lda, double* b, int* ldb, double* beta, double* c,
                          int* ldc) noexcept nogil
cdef _sgemm_t _sgemm_fn = <_sgemm_t>sgemm
cdef _dgemm_t _dgemm_fn = <_dgemm_t>dgemm


def _use_gemm(size_t sgemm_address=0, size_t dgemm_address=0):
    """Make the products call the ?gemm functions at these addresses (a loaded library's
    Fortran-interface sgemm_ and dgemm_ with 32-bit integers, which must stay loaded), or
    SciPy's where an address is 0. For fastmlp._blas only."""
    global _sgemm_fn, _dgemm_fn
    _sgemm_fn = <_sgemm_t>sgemm_address if sgemm_address else <_sgemm_t>sgemm
    _dgemm_fn = <_dgemm_t>dgemm_address if dgemm_address else <_dgemm_t>dgemm


# A large product of a training run (fastmlp._blas says which runs) is cut into `fm_split`
# blocks of c's rows or of its columns, each a one-thread ?gemm over the whole inner
# dimension, which the thread and _team.h's workers share: products of at least
# SPLIT_MIN_WORK multiply-adds in float64, twice that in float32 (whose arithmetic is twice
# as fast: some 20 us of one core's either way). The blocks start at multiples of the BLAS
# kernels' unrolling (SPLIT_ROWS rows, SPLIT_COLUMNS columns of c, column-major), and the
# side is the one whose largest block is the smaller (the blocks are run at once: the
# largest sets the time), the longer side on a tie (each block packs the whole of the other
# operand: the smaller one then). The blocks depend on the shapes and fm_split alone: the
# bits do not depend on who ran them.
DEF SPLIT_MIN_WORK = 1048576
DEF SPLIT_ROWS = 16
DEF SPLIT_COLUMNS = 8
# (for fastmlp._blas, which sets up the team only for runs with a product this large)
SPLIT_MIN_PRODUCT = SPLIT_MIN_WORK

ctypedef struct _Gemm:
    char transa
    char transb
    int m, n, k, lda, ldb, ldc, size
    bint by_rows                # blocks of c's rows (else of its columns), `size` each
    bint f64                    # float64 operands (else float32)
    double alpha, beta
    const void* a
    const void* b
    void* c


cdef void _gemm_block(void* ctx, int block) noexcept nogil:
    """Block `block` of a split product (`_gemm_split`): c's rows (or columns) from
    block * size on."""
    cdef _Gemm* g = <_Gemm*>ctx
    cdef int start = block * g.size, m = g.m, n = g.n
    cdef Py_ssize_t a_off = 0, b_off = 0, c_off
    if g.by_rows:
        m = m - start if m - start < g.size else g.size
        a_off = start if g.transa == b'N' else <Py_ssize_t>start * g.lda
        c_off = start
    else:
        n = n - start if n - start < g.size else g.size
        b_off = <Py_ssize_t>start * g.ldb if g.transb == b'N' else start
        c_off = <Py_ssize_t>start * g.ldc
    cdef float alpha = <float>g.alpha, beta = <float>g.beta
    if g.f64:
        _dgemm_fn(&g.transa, &g.transb, &m, &n, &g.k, &g.alpha, <double*>g.a + a_off, &g.lda,
                  <double*>g.b + b_off, &g.ldb, &g.beta, <double*>g.c + c_off, &g.ldc)
    else:
        _sgemm_fn(&g.transa, &g.transb, &m, &n, &g.k, &alpha, <float*>g.a + a_off, &g.lda,
                  <float*>g.b + b_off, &g.ldb, &beta, <float*>g.c + c_off, &g.ldc)


cdef void _gemm_split(char transa, char transb, int m, int n, int k, floating alpha,
                      const floating* a, int lda, const floating* b, int ldb,
                      floating beta, floating* c, int ldc) noexcept nogil:
    """`_gemm` as fm_split blocks of c's rows or columns (see above), run by the team."""
    cdef _Gemm g
    cdef int rows = _block_size(m, SPLIT_ROWS), columns = _block_size(n, SPLIT_COLUMNS)
    g.transa, g.transb, g.m, g.n, g.k, g.lda, g.ldb, g.ldc = transa, transb, m, n, k, lda, ldb, ldc
    g.alpha, g.beta, g.a, g.b, g.c, g.f64 = alpha, beta, a, b, c, floating is double
    g.by_rows = (<long>rows * n < <long>columns * m or
                 (<long>rows * n == <long>columns * m and m >= n))
    g.size = rows if g.by_rows else columns
    fm_team_run(((m if g.by_rows else n) + g.size - 1) / g.size, _gemm_block, &g)


cdef inline int _block_size(int along, int unroll) noexcept nogil:
    """The extent of fm_split blocks along a side of `along`: a multiple of `unroll`."""
    cdef int size = (along + fm_split - 1) / fm_split
    return (size + unroll - 1) / unroll * unroll


cdef inline void _gemm(char transa, char transb, int m, int n, int k, floating alpha,
                       const floating* a, int lda, const floating* b, int ldb,
                       floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major BLAS ?gemm: c = alpha * op(a) @ op(b) + beta * c."""
    if fm_split > 1 and (m > SPLIT_ROWS or n > SPLIT_COLUMNS) and <double>m * n * k * sizeof(floating) >= 8 * SPLIT_MIN_WORK:
        _gemm_split(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        return
    if floating is float:
        _sgemm_fn(&transa, &transb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb,
                  &beta, c, &ldc)
    else:
        _dgemm_fn(&transa, &transb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb,
                  &beta, c, &ldc)


def _split_products(int blocks=1, int workers=0):
    """This thread's training products from now on: each large one cut into `blocks` blocks
    (1: not cut), shared with up to `workers` of fastmlp's worker threads. For
    fastmlp._blas only (around a training run). Returns the settings it replaced."""
    global fm_split, fm_workers
    before = (fm_split, fm_workers)
    fm_split, fm_workers = max(1, blocks), max(0, workers)
    return before


def _team_available():
    """Whether fastmlp's worker threads exist on this platform (POSIX threads)."""
    return fm_team_available() != 0


def _team_late(force=None):
    """How many products found the workers late; `force`: every product counts as late
    (tests)."""
    global fm_force_late
    if force is not None:
        fm_force_late = bool(force)
    return fm_team_late()


cdef inline floating _dot(Py_ssize_t n, const floating* a, const floating* b) noexcept nogil:
    """sum(a[:n] * b[:n]) as 8 interleaved partial sums (independent chains of additions,
    which the compiler vectorises without reordering any one of them), added up in a fixed
    order: the same result on every call."""
    cdef floating s[8]
    cdef floating total
    cdef Py_ssize_t p = 0, q
    for q in range(8):
        s[q] = 0
    while p + 8 <= n:
        for q in range(8):
            s[q] += a[p + q] * b[p + q]
        p += 8
    total = ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]))
    while p < n:
        total += a[p] * b[p]
        p += 1
    return total


# Whether the small products of _kernels.h run (the CPU has AVX-512, and `_small_kernels`
# has not turned them off).
cdef bint _small = fm_simd_available() != 0


def _small_kernels(enabled=None):
    """Whether products up to SMALL_MAX_WORK multiply-adds run as _kernels.h's AVX-512 tiles
    (True only where the CPU has AVX-512); `enabled` False turns them off (BLAS and the plain
    loops then run everything), True back on where available. For tests and benchmarks."""
    global _small
    if enabled is not None:
        _small = bool(enabled) and fm_simd_available() != 0
    return bool(_small)


cdef inline bint _small_product(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                Py_ssize_t columns) noexcept nogil:
    """Whether an m x n x k product whose result has `columns` columns runs in _kernels.h."""
    return (_small and columns >= SMALL_MIN_COLUMNS
            and BLAS_MIN_WORK <= m * n * k <= SMALL_MAX_WORK)


cdef inline bint _small_pass(Py_ssize_t m, Py_ssize_t k) noexcept nogil:
    """Whether a pass over an m x k matrix (one-column products, column sums) runs in
    _kernels.h."""
    return _small and SMALL_MIN_ELEMENTS <= m * k <= SMALL_MAX_WORK


# Row-major products. All matrices are C-contiguous; `beta == 0` never reads C.

cdef void _mm_nn(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha,
                 const floating* A, const floating* B, floating beta,
                 floating* C) noexcept nogil:
    """C (m, n) = alpha * A (m, k) @ B (k, n) + beta * C."""
    cdef Py_ssize_t i, j, p
    cdef floating a
    cdef floating* c
    if m * n * k >= BLAS_MIN_WORK:
        _gemm(c'N', c'N', <int>n, <int>m, <int>k, alpha, B, <int>n, A, <int>k, beta, C, <int>n)
        return
    for i in range(m):
        c = C + i * n
        for j in range(n):
            c[j] = 0 if beta == 0 else beta * c[j]
        for p in range(k):
            a = alpha * A[i * k + p]
            for j in range(n):
                c[j] += a * B[p * n + j]


cdef void _mm_tn(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha,
                 const floating* A, const floating* B, floating beta,
                 floating* C) noexcept nogil:
    """C (k, n) = alpha * A.T @ B + beta * C, with A (m, k) and B (m, n).

    Small products sum over the rows of A and B into a buffer row by row (each row of C
    takes a multiple of a row of B, each element of C one row's product per step: no chain
    of dependent additions, and the loop over a row vectorises), then scale into C.
    """
    cdef Py_ssize_t i, j, p
    cdef floating a
    cdef floating t[BLAS_MIN_WORK]     # k * n < BLAS_MIN_WORK on this path
    if _small_product(m, n, k, n):
        if floating is float:
            fm_tn_f(m, n, k, alpha, A, B, beta, C)
        else:
            fm_tn_d(m, n, k, alpha, A, B, beta, C)
        return
    if n == 1 and _small_pass(m, k):
        if floating is float:
            fm_tn1_f(m, k, alpha, A, B, beta, C)
        else:
            fm_tn1_d(m, k, alpha, A, B, beta, C)
        return
    if m * n * k >= BLAS_MIN_WORK:
        _gemm(c'N', c'T', <int>n, <int>k, <int>m, alpha, B, <int>n, A, <int>k, beta, C, <int>n)
        return
    memset(t, 0, k * n * sizeof(floating))
    for i in range(m):
        if n == 1:                     # matrix-vector: vectorise over the rows of C
            a = B[i]
            for p in range(k):
                t[p] += A[i * k + p] * a
        else:
            for p in range(k):
                a = A[i * k + p]
                for j in range(n):
                    t[p * n + j] += a * B[i * n + j]
    if beta == 0:
        for p in range(k * n):
            C[p] = alpha * t[p]
    else:
        for p in range(k * n):
            C[p] = beta * C[p] + alpha * t[p]


cdef void _mm_nt(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha,
                 const floating* A, const floating* B, floating beta,
                 floating* C) noexcept nogil:
    """C (m, k) = alpha * A @ B.T + beta * C, with A (m, n) and B (k, n).

    Small products: dot products of rows (`_dot`), or for n == 1 an outer product,
    vectorised along the rows of C.
    """
    cdef Py_ssize_t i, p
    cdef floating a
    if m * n * k >= BLAS_MIN_WORK:
        _gemm(c'T', c'N', <int>k, <int>m, <int>n, alpha, B, <int>n, A, <int>n, beta, C, <int>k)
        return
    for i in range(m):
        if n == 1:
            a = alpha * A[i]
            if beta == 0:
                for p in range(k):
                    C[i * k + p] = a * B[p]
            else:
                for p in range(k):
                    C[i * k + p] = beta * C[i * k + p] + a * B[p]
        elif beta == 0:
            for p in range(k):
                C[i * k + p] = alpha * _dot(n, A + i * n, B + p * n)
        else:
            for p in range(k):
                C[i * k + p] = beta * C[i * k + p] + alpha * _dot(n, A + i * n, B + p * n)


cdef void _colsum(Py_ssize_t m, Py_ssize_t n, floating alpha, const floating* D,
                  floating beta, floating* out) noexcept nogil:
    """out (n,) = alpha * (D (m, n) summed over rows) + beta * out."""
    cdef Py_ssize_t i, j
    if _small and m * n >= SMALL_MIN_ELEMENTS:
        if floating is float:
            fm_colsum_f(m, n, alpha, D, beta, out)
        else:
            fm_colsum_d(m, n, alpha, D, beta, out)
        return
    for j in range(n):
        out[j] = 0 if beta == 0 else beta * out[j]
    if alpha == 1:
        for i in range(m):
            for j in range(n):
                out[j] += D[i * n + j]
    else:
        for i in range(m):
            for j in range(n):
                out[j] += alpha * D[i * n + j]


cdef void _bias_activation(Py_ssize_t m, Py_ssize_t n, const floating* b, floating* Z,
                           floating* A, int act, floating slope) noexcept nogil:
    """Z += b (broadcast over rows); A = act(Z). A may be NULL (bias only)."""
    cdef Py_ssize_t i, j
    cdef floating* z
    cdef bint leaky = A != NULL and act == ACT_LEAKY_RELU
    if _small and m * n >= SMALL_MIN_ELEMENTS:
        if floating is float:       # one pass in _kernels.h (Leaky ReLU fused), the same values
            fm_bias_leaky_f(m, n, b, Z, A if leaky else NULL, slope)
        else:
            fm_bias_leaky_d(m, n, b, Z, A if leaky else NULL, slope)
        if A != NULL and not leaky:
            _activation(m * n, Z, A, act, slope)
        return
    for i in range(m):
        z = Z + i * n
        for j in range(n):
            z[j] = z[j] + b[j]
    if A != NULL:
        _activation(m * n, Z, A, act, slope)


cdef void _sparse_activation(Py_ssize_t m, Py_ssize_t n, const Sparse* sp, const floating* W,
                             const floating* b, floating* Z, floating* Aout, int act,
                             floating slope) noexcept nogil:
    """Z (m, n) = X[rows] @ W + b for the CSR rows sp.rows[:m]; Aout = act(Z) unless NULL.
    Each stored value adds its multiple of one row of W: the work is nnz * n, and the
    sparse rows are never expanded."""
    cdef const floating* data = <const floating*>sp.data
    cdef Py_ssize_t i, j, p, row
    cdef floating a
    cdef floating* z
    cdef const floating* w
    for i in range(m):
        z = Z + i * n
        for j in range(n):
            z[j] = b[j]
        row = sp.rows[i]
        for p in range(sp.indptr[row], sp.indptr[row + 1]):
            a = data[p]
            w = W + sp.indices[p] * n
            for j in range(n):
                z[j] += a * w[j]
    if Aout != NULL:
        _activation(m * n, Z, Aout, act, slope)


cdef void _sparse_tn(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha, const Sparse* sp,
                     const floating* D, floating beta, floating* C) noexcept nogil:
    """C (k, n) = alpha * X[rows].T @ D (m, n) + beta * C for the CSR rows sp.rows[:m];
    C is not read when beta == 0 (BLAS's rule)."""
    cdef const floating* data = <const floating*>sp.data
    cdef Py_ssize_t i, j, p, row
    cdef floating a
    cdef floating* c
    cdef const floating* d
    if beta == 0:
        memset(C, 0, k * n * sizeof(floating))
    elif beta != 1:
        for i in range(k * n):
            C[i] *= beta
    for i in range(m):
        row = sp.rows[i]
        d = D + i * n
        for p in range(sp.indptr[row], sp.indptr[row + 1]):
            a = alpha * data[p]
            c = C + sp.indices[p] * n
            for j in range(n):
                c[j] += a * d[j]


cdef void _dense_activation(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating* A,
                            const floating* W, const floating* b, floating* Z, floating* Aout,
                            int act, floating slope) noexcept nogil:
    """Z (m, n) = A (m, k) @ W (k, n) + b; Aout = act(Z) unless NULL.

    Small layers on AVX-512 CPUs: _kernels.h's tiles, which add the bias (and Leaky ReLU)
    as they write Z; a one-output layer there: fm_matvec's dot products. Large layers: one
    GEMM, then bias and activation in one pass over its output (`_bias_activation`).
    Tiny layers: a single pass that starts each row of Z from b (n == 1: b plus a dot product).
    """
    cdef Py_ssize_t i, j, p
    cdef floating a
    cdef floating* z
    cdef floating* leaky = Aout if act == ACT_LEAKY_RELU else NULL
    if _small_product(m, n, k, n):       # bias and Leaky ReLU in the tiles' epilogue
        if floating is float:
            fm_forward_f(m, n, k, A, W, b, Z, leaky, slope)
        else:
            fm_forward_d(m, n, k, A, W, b, Z, leaky, slope)
        if Aout != NULL and leaky == NULL:
            _activation(m * n, Z, Aout, act, slope)
        return
    if n == 1 and _small and m * k >= SMALL_MIN_ELEMENTS:   # one output: m dot products
        if floating is float:
            fm_matvec_f(m, k, A, W, b[0], Z)
        else:
            fm_matvec_d(m, k, A, W, b[0], Z)
        if Aout != NULL:
            _activation(m, Z, Aout, act, slope)
        return
    if m * n * k >= BLAS_MIN_WORK:
        _mm_nn(m, n, k, <floating>1, A, W, <floating>0, Z)
        _bias_activation(m, n, b, Z, Aout, act, slope)
        return
    for i in range(m):
        z = Z + i * n
        if n == 1:                  # matrix-vector: one dot product per row
            z[0] = b[0] + _dot(k, A + i * k, W)
            continue
        for j in range(n):
            z[j] = b[j]
        for p in range(k):
            a = A[i * k + p]
            for j in range(n):
                z[j] += a * W[p * n + j]
    if Aout != NULL:
        _activation(m * n, Z, Aout, act, slope)


cdef bint _backprop_dense(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const floating* D,
                          const floating* W, floating* D_prev, const floating* Z_prev,
                          const floating* A_prev, int act, floating slope,
                          floating* pack, Py_ssize_t pack_size, floating* bias, floating alpha,
                          floating beta) noexcept nogil:
    """D_prev (m, k) = (D (m, n) @ W.T) * act'(Z_prev): the gradient carried back through a
    dense layer with weights W (k, n) and the activation before it (A_prev = act(Z_prev)).
    `pack`: pack_size elements of scratch for _kernels.h (not read otherwise).

    Returns whether it also took the previous layer's bias step, bias (k,) = alpha *
    D_prev summed over rows + beta * bias, as `_colsum` would (in the derivative's pass,
    after a large product on AVX-512 CPUs); `bias` NULL: never."""
    cdef const floating* leaky = Z_prev if act == ACT_LEAKY_RELU else NULL
    if n == 1 and _small_pass(m, k):                            # an outer product
        if floating is float:
            fm_outer_f(m, k, 1, D, W, D_prev, leaky, slope)
        else:
            fm_outer_d(m, k, 1, D, W, D_prev, leaky, slope)
        if leaky != NULL:
            return False
    elif n <= SMALL_MAX_PACKED and _small_product(m, n, k, k):   # the derivative in the epilogue
        if floating is float:
            fm_nt_f(m, n, k, 1, D, W, 0, D_prev, leaky, slope, pack)
        else:
            fm_nt_d(m, n, k, 1, D, W, 0, D_prev, leaky, slope, pack)
        if leaky != NULL:
            return False
    else:
        _mm_nt(m, n, k, <floating>1, D, W, <floating>0, D_prev)
        if leaky != NULL and _small and m * k >= SMALL_MIN_ELEMENTS:
            if not _bias_in_pass(m, n, k, act, pack_size):    # here: k > pack_size, no room for
                bias = NULL                                   # the column sums: the derivative alone
            if floating is float:
                fm_leaky_grad_f(m, k, Z_prev, D_prev, slope, alpha, beta, bias, pack)
            else:
                fm_leaky_grad_d(m, k, Z_prev, D_prev, slope, alpha, beta, bias, pack)
            return bias != NULL
    _activation_backward(m * k, Z_prev, A_prev, D_prev, act, slope)
    return False


cdef inline bint _bias_in_pass(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, int act,
                              Py_ssize_t pack_size) noexcept nogil:
    """Whether `_backprop_dense` of these extents, given the previous layer's bias, takes its
    step in the derivative's pass (returns True): the branches above, read off. The layer ops
    ask this to know, without carrying a flag between them, that the bias step was taken."""
    return (act == ACT_LEAKY_RELU and not (n == 1 and _small_pass(m, k))
            and not (n <= SMALL_MAX_PACKED and _small_product(m, n, k, k))
            and _small and m * k >= SMALL_MIN_ELEMENTS and k <= pack_size)


cdef inline bint _is_small(const Net* net, Py_ssize_t m) noexcept nogil:
    """Whether m rows go through the small-network loops: dense input, and every product of
    the batch below BLAS_MIN_WORK multiply-adds (where the general loops would not call
    BLAS either)."""
    return net.small_work != 0 and m * net.small_work < BLAS_MIN_WORK


cdef void _forward_small(const Net* net, const floating* params, const floating* X,
                         Py_ssize_t m, floating* work) noexcept nogil:
    """`_forward` of a small network (`_is_small`) on dense rows: each layer's product in
    one pass of _small.h's loops, then its activation over the whole layer."""
    cdef Py_ssize_t l, L = net.n_layers, n
    cdef const floating* A_prev = X
    cdef floating* Z
    for l in range(L):
        n, Z = net.size[l + 1], work + net.z_off[l]
        if floating is float:
            fm_small_forward_f(m, n, net.size[l], A_prev, params + net.w_off[l], params + net.b_off[l], Z)
        else:
            fm_small_forward_d(m, n, net.size[l], A_prev, params + net.w_off[l], params + net.b_off[l], Z)
        if l < L - 1:
            _activation(m * n, Z, work + net.a_off[l], net.act[l], <floating>net.slope)
            A_prev = work + net.a_off[l]


cdef void _backward_small(const Net* net, const floating* params, const floating* X, Py_ssize_t m,
                          floating* work, floating* target, floating alpha, floating beta_w,
                          floating beta_b) noexcept nogil:
    """`_backward` of a small network (see `_forward_small`), layer by layer from the
    output: dL/dA_{l-1} from the old W_l first, then W_l's and b_l's step into target."""
    cdef Py_ssize_t l, n, k
    cdef const floating* A_prev
    cdef const floating* D
    for l in range(net.n_layers - 1, -1, -1):
        n, k, D = net.size[l + 1], net.size[l], work + net.d_off[l]
        A_prev = X if l == 0 else work + net.a_off[l - 1]
        if l > 0:
            if floating is float:
                fm_small_back_f(m, n, k, D, params + net.w_off[l], work + net.d_off[l - 1])
            else:
                fm_small_back_d(m, n, k, D, params + net.w_off[l], work + net.d_off[l - 1])
            _activation_backward(m * k, work + net.z_off[l - 1], A_prev, work + net.d_off[l - 1],
                                 net.act[l - 1], <floating>net.slope)
        if floating is float:
            fm_small_grad_f(m, n, k, alpha, A_prev, D, beta_w, beta_b, target + net.w_off[l],
                            target + net.b_off[l])
        else:
            fm_small_grad_d(m, n, k, alpha, A_prev, D, beta_w, beta_b, target + net.w_off[l],
                            target + net.b_off[l])
