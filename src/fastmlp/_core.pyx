# Compiler directives live in setup.py (one place for all of them).
"""Compiled backend: the same functions as ``fastmlp._reference``, in Cython.

Three layers, as in scikit-learn's ``_loss.pyx``:

1. ``cdef inline ... noexcept nogil`` math on single elements and raw rows;
2. loops over whole layers, batches and epochs on pointers into buffers allocated
   before the loop starts (nothing is allocated and no Python object is touched in them);
3. thin ``def`` wrappers that check their arguments (``_validation``, ``_spec``), convert inputs
   once and allocate work buffers, then run layer 2 without the GIL.

float32 and float64 share one source through the ``floating`` fused type. Dense layers
call BLAS ``?gemm`` (``scipy.linalg.cython_blas``'s, or Intel MKL's: see ``fastmlp._blas``) on
row-major data by swapping the operands (C^T = B^T A^T); layers too small for a BLAS call to
pay off use plain loops.

The training steps mirror ``_reference``'s line by line: ``_forward``, ``_output_loss``,
``_backward``, ``_update`` and ``_epoch`` (and the smaller ``_activation``, ...) have the
same roles and argument order there; here they also take the extents (m, n, k, size)
that NumPy arrays carry themselves.
"""

import os

import numpy as np

cimport numpy as cnp
import scipy

cimport cython
from cython cimport floating
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_RawFree, PyMem_RawMalloc
from cpython.ref cimport PyObject
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport INFINITY, M_2_SQRTPI, M_SQRT1_2, NAN, erf, exp, expf, fabs, isfinite, log, pow, sqrt, tanh, tanhf
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport ddot, dgemm, dsdot, sgemm

from . import _fork, _registry
from ._spec import CHECKED as _CHECKED
from ._spec import loss_gradient_args, next_lr, out_of_range, predict_args, shuffled, train_args, warn_overflow
from ._validation import (
    choice,
    dense_backward_args,
    dense_forward_args,
    elementwise_args,
    real,
)

cdef extern from "<math.h>" nogil:
    float erff(float x)

cdef extern from *:
    """
    /* _fork.PENDING, read afresh each time (another thread sets it). */
    static inline int fm_read_flag(const int *flag) { return *(const volatile int *)flag; }
    """
    int fm_read_flag(const int* flag) noexcept nogil

cdef extern from "_kernels.h" nogil:
    # Small products in registers, for AVX-512 CPUs (see the header); `pack` holds
    # n * FM_PACK_COLUMNS elements.
    int FM_PACK_COLUMNS
    int fm_simd_available()
    void fm_forward_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A, const double* W,
                      const double* b, double* Z, double* Aout, double slope)
    void fm_forward_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A, const float* W,
                      const float* b, float* Z, float* Aout, float slope)
    void fm_tn_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha, const double* A,
                 const double* D, double beta, double* C)
    void fm_tn_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha, const float* A,
                 const float* D, float beta, float* C)
    void fm_nt_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha, const double* D,
                 const double* W, double beta, double* C, const double* Zp, double slope,
                 double* pack)
    void fm_nt_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha, const float* D,
                 const float* W, float beta, float* C, const float* Zp, float slope, float* pack)
    void fm_outer_d(Py_ssize_t m, Py_ssize_t k, double alpha, const double* d, const double* w,
                    double* C, const double* Zp, double slope)
    void fm_outer_f(Py_ssize_t m, Py_ssize_t k, float alpha, const float* d, const float* w,
                    float* C, const float* Zp, float slope)
    void fm_tn1_d(Py_ssize_t m, Py_ssize_t k, double alpha, const double* A, const double* d,
                  double beta, double* c)
    void fm_tn1_f(Py_ssize_t m, Py_ssize_t k, float alpha, const float* A, const float* d,
                  float beta, float* c)
    void fm_colsum_d(Py_ssize_t m, Py_ssize_t n, double alpha, const double* D, double beta,
                     double* out)
    void fm_colsum_f(Py_ssize_t m, Py_ssize_t n, float alpha, const float* D, float beta,
                     float* out)
    # ... and the passes between a large layer's BLAS products
    void fm_bias_leaky_d(Py_ssize_t m, Py_ssize_t n, const double* b, double* Z, double* Aout,
                         double slope)
    void fm_bias_leaky_f(Py_ssize_t m, Py_ssize_t n, const float* b, float* Z, float* Aout,
                         float slope)
    void fm_matvec_d(Py_ssize_t m, Py_ssize_t k, const double* A, const double* w, double b,
                     double* z)
    void fm_matvec_f(Py_ssize_t m, Py_ssize_t k, const float* A, const float* w, float b,
                     float* z)
    void fm_leaky_grad_d(Py_ssize_t m, Py_ssize_t n, const double* Zp, double* D, double slope,
                         double alpha, double beta, double* out, double* acc)
    void fm_leaky_grad_f(Py_ssize_t m, Py_ssize_t n, const float* Zp, float* D, float slope,
                         float alpha, float beta, float* out, float* acc)

cdef enum:
    # Below this many multiply-adds (m * n * k) a dense product runs as plain loops.
    BLAS_MIN_WORK = 4096
    # The training loop takes the GIL back to check for Ctrl-C (and its `stop` event) about
    # once per this many flops of work: inside a long epoch every few batches, and between
    # epochs (without shuffling or a callback) not after every epoch of a tiny network.
    FLOPS_PER_GIL_CHECK = 50000000
    # Rows per chunk when predicting or taking full-data gradients: bounds the work buffer.
    CHUNK_ROWS = 2048
    # Elements per BLAS ?dot call (its n is a C int).
    DOT_CHUNK = 1 << 30
    # A one-hidden-layer network whose widths multiply to at most this (h * max(n_in, n_out))
    # runs its steps through the row-by-row loops of `_forward_small` / `_backward_small`.
    TINY_NET_MAX_WORK = 64
    # Products of BLAS_MIN_WORK up to this many multiply-adds, with at least SMALL_MIN_COLUMNS
    # columns in C, run as _kernels.h's register tiles where the CPU has AVX-512 (a BLAS
    # call's fixed cost and its threads outweigh the arithmetic there); larger ones call BLAS.
    SMALL_MAX_WORK = 131072
    SMALL_MIN_COLUMNS = 8
    # ... and the passes over one matrix (a one-column layer's products, the bias gradient)
    # from this many elements up (below: the plain loops, as for the XOR network).
    SMALL_MIN_ELEMENTS = 256
    # The widest D (columns of a layer) _kernels.h's fm_nt packs for: the pack buffer's bound.
    SMALL_MAX_PACKED = 1024

# The codes of the extension points. Each table must name exactly what fastmlp._registry
# lists (checked here, at import): a registered name without a kernel fails the import.

cdef enum Activation:
    ACT_IDENTITY, ACT_LEAKY_RELU, ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_GELU

cdef enum Output:
    OUT_SIGMOID, OUT_SOFTMAX, OUT_IDENTITY, OUT_EXP

cdef enum Loss:
    LOSS_BCE, LOSS_CROSS_ENTROPY, LOSS_MSE, LOSS_POISSON

cdef enum OptimizerCode:
    OPT_SGD, OPT_ADAM, OPT_ADAMW, OPT_RPROP

# For fastmlp._blas's thread policy: where the BLAS this module calls lives (SciPy's: its wheels carry it
# in scipy.libs, beside the package), and the smallest product it is given.
BLAS_LIBRARY_DIR = os.path.dirname(os.path.abspath(scipy.__file__))
BLAS_MIN_PRODUCT = BLAS_MIN_WORK

_ACTIVATION_CODES = _registry.implemented("compiled", "activation", tuple(_registry.ACTIVATIONS), {
    "identity": ACT_IDENTITY, "leaky_relu": ACT_LEAKY_RELU, "relu": ACT_RELU, "tanh": ACT_TANH,
    "sigmoid": ACT_SIGMOID, "gelu": ACT_GELU,
})
_OUTPUT_CODES = _registry.implemented("compiled", "output", _registry.OUTPUTS, {
    "sigmoid": OUT_SIGMOID, "softmax": OUT_SOFTMAX, "identity": OUT_IDENTITY, "exp": OUT_EXP,
})
_LOSS_CODES = _registry.implemented("compiled", "loss", tuple(_registry.LOSSES), {
    "bce": LOSS_BCE, "cross_entropy": LOSS_CROSS_ENTROPY, "mse": LOSS_MSE, "poisson": LOSS_POISSON,
})
_OPTIMIZER_CODES = _registry.implemented("compiled", "optimizer", tuple(_registry.OPTIMIZERS), {
    "sgd": OPT_SGD, "adam": OPT_ADAM, "adamw": OPT_ADAMW, "rprop": OPT_RPROP,
})


# =====================================================================================
# 1. elements and rows
# =====================================================================================

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


cdef inline void _gemm(char transa, char transb, int m, int n, int k, floating alpha,
                       const floating* a, int lda, const floating* b, int ldb,
                       floating beta, floating* c, int ldc) noexcept nogil:
    """Column-major BLAS ?gemm: c = alpha * op(a) @ op(b) + beta * c."""
    if floating is float:
        _sgemm_fn(&transa, &transb, &m, &n, &k, &alpha, <float*>a, &lda, <float*>b, &ldb,
                  &beta, c, &ldc)
    else:
        _dgemm_fn(&transa, &transb, &m, &n, &k, &alpha, <double*>a, &lda, <double*>b, &ldb,
                  &beta, c, &ldc)


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


# =====================================================================================
# 2. layers, networks, epochs
# =====================================================================================

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
    else:
        for i in range(size):
            A[i] = Z[i]


cdef void _bias_activation(Py_ssize_t m, Py_ssize_t n, const floating* b, floating* Z,
                           floating* A, int act, floating slope) noexcept nogil:
    """Z += b (broadcast over rows); A = act(Z). A may be NULL (bias only)."""
    cdef Py_ssize_t i, j
    cdef floating* z
    if _small and m * n >= SMALL_MIN_ELEMENTS and (A == NULL or act == ACT_LEAKY_RELU):
        if floating is float:       # one pass in _kernels.h, the same values
            fm_bias_leaky_f(m, n, b, Z, A, slope)
        else:
            fm_bias_leaky_d(m, n, b, Z, A, slope)
        return
    for i in range(m):
        z = Z + i * n
        for j in range(n):
            z[j] = z[j] + b[j]
    if A != NULL:
        _activation(m * n, Z, A, act, slope)


cdef inline floating _leaky_grad1(floating z, floating d, floating slope) noexcept nogil:
    """d * Leaky ReLU'(z): d where z >= 0, slope * d where z < 0, NaN where z is NaN (a
    select on z >= 0 alone would give slope * d there)."""
    return d if z >= 0 else (slope * d if z < 0 else z)


cdef inline floating _relu_grad1(floating z, floating d) noexcept nogil:
    """d * ReLU'(z): d where z > 0, 0 * d where z <= 0 (NaN for a NaN d, as the product
    d * 0 is), NaN where z is NaN."""
    return d if z > 0 else (0 * d if z <= 0 else z)


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


cdef struct Net:
    # the architecture
    Py_ssize_t n_layers       # dense layers (weights), = len(sizes) - 1
    Py_ssize_t n_params       # length of the flat parameter vector
    Py_ssize_t* size          # [n_layers + 1] widths, input first
    Py_ssize_t* w_off         # [n_layers] offset of W_l in the flat parameter vector
    Py_ssize_t* b_off         # [n_layers] offset of b_l
    int* act                  # [n_layers - 1] hidden activation codes
    int output                # output activation code
    int loss                  # loss code
    double slope              # Leaky ReLU negative slope
    double l2                 # the penalty 0.5 * l2 * sum(W**2) over the weights
    # the work buffer, laid out for batches of up to `capacity` rows
    Py_ssize_t capacity
    Py_ssize_t* z_off         # [n_layers] pre-activations Z_l (capacity, size[l + 1])
    Py_ssize_t* a_off         # [n_layers] activations A_l (hidden layers only; = z_off[l]
                              # where A_l is written over Z_l, see _Plan)
    Py_ssize_t* d_off         # [n_layers] dL/dZ_l
    Py_ssize_t xb_off         # gathered batch of X rows (shuffled training only)
    Py_ssize_t yb_off         # gathered batch of Y rows
    Py_ssize_t wb_off         # gathered batch of sample weights
    Py_ssize_t pk_off         # scratch for _kernels.h's fm_nt (_backprop_dense's `pack`)
    Py_ssize_t work_size
    # sparse input: X is CSR and the first layer reads it through `sparse` (NULL: dense X)
    Sparse* sparse
    # one hidden layer on dense input with h * max(n_in, n_out) <= TINY_NET_MAX_WORK: the
    # multiply-adds per row of its largest product (0: not such a network). Batches of m rows
    # with m * small_work < BLAS_MIN_WORK go through `_forward_small` and `_backward_small`.
    Py_ssize_t small_work


cdef struct Sparse:
    # CSR rows of X (index arrays: our own checked intp copies) and the ids of the rows that
    # make up the current batch: the loops write `rows`, the first layer reads it
    const Py_ssize_t* indptr
    const Py_ssize_t* indices
    const void* data          # floating, of the network's dtype
    Py_ssize_t* rows          # [capacity]


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


cdef double _output_loss(Py_ssize_t m, Py_ssize_t k, const floating* Z, const floating* Y,
                         const floating* w, floating* G, floating scale,
                         int loss) noexcept nogil:
    """Sum over the m rows of w_i times the per-sample loss of logits Z (m, k) against Y
    (w = NULL: all weights 1).

    The per-sample loss is the mean over outputs for BCE, MSE and Poisson (PyTorch's
    convention for BCEWithLogitsLoss and MSELoss), the sum -sum_j y_j log p_j for
    cross-entropy.
    G = scale * d(that sum)/dZ unless NULL: scale = 1/sum(w) gives the gradient of the
    (weighted) mean.
    """
    cdef Py_ssize_t i
    cdef double total = 0
    if w != NULL:
        for i in range(m):
            total += w[i] * _output_loss(1, k, Z + i * k, Y + i * k, NULL,
                                         G + i * k if G != NULL else NULL, scale * w[i], loss)
        return total
    if loss == LOSS_CROSS_ENTROPY:
        return _sum_cross_entropy(m, k, Z, Y, G, scale)
    if loss == LOSS_MSE:
        return _sum_mse(m * k, Z, Y, G, scale / k) / k
    if loss == LOSS_POISSON:
        return _sum_poisson(m * k, Z, Y, G, scale / k) / k
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


cdef void _forward(const Net* net, const floating* params, const floating* X,
                   Py_ssize_t m, floating* work) noexcept nogil:
    """Forward pass of m rows; Z_l and A_l land in `work`, the logits in Z of the last layer.
    With sparse input (net.sparse), X is NULL and the rows are net.sparse.rows[:m]."""
    cdef Py_ssize_t l, L = net.n_layers
    cdef const floating* A_prev = X
    cdef floating* A
    cdef floating slope = <floating>net.slope
    if _is_small(net, m):
        _forward_small(net, params, X, m, work)
        return
    for l in range(L):
        A = work + net.a_off[l] if l < L - 1 else NULL
        if l == 0 and net.sparse != NULL:
            _sparse_activation(m, net.size[1], net.sparse, params + net.w_off[0], params + net.b_off[0],
                               work + net.z_off[0], A, net.act[0] if L > 1 else 0, slope)
        else:
            _dense_activation(m, net.size[l + 1], net.size[l], A_prev, params + net.w_off[l],
                              params + net.b_off[l], work + net.z_off[l], A,
                              net.act[l] if l < L - 1 else 0, slope)
        A_prev = A


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
            if k > pack_size:          # no room for the column sums: the derivative alone
                bias = NULL
            if floating is float:
                fm_leaky_grad_f(m, k, Z_prev, D_prev, slope, alpha, beta, bias, pack)
            else:
                fm_leaky_grad_d(m, k, Z_prev, D_prev, slope, alpha, beta, bias, pack)
            return bias != NULL
    _activation_backward(m * k, Z_prev, A_prev, D_prev, act, slope)
    return False


cdef void _backward(const Net* net, const floating* params, const floating* X, Py_ssize_t m,
                    floating* work, floating* target, floating alpha, floating beta_w,
                    floating beta_b) noexcept nogil:
    """Backward pass after `_forward` and `_output_loss` (which left dL/dZ_L in d_off[L-1]).

    target[W_l] = alpha * dL/dW_l + beta_w * target[W_l], and likewise for b_l with beta_b:
    with target = grad, alpha = 1, betas 0 that is the gradient; with target = params,
    alpha = -lr, beta_b = 1 and beta_w = 1 - lr * l2 it is the SGD step with weight decay,
    applied inside the gradient GEMM once dL/dA_{l-1} has been taken from the old W_l.
    """
    cdef Py_ssize_t l
    cdef Py_ssize_t n_in, n_out
    cdef const floating* A_prev
    cdef floating* D
    cdef floating slope = <floating>net.slope
    cdef bint bias_done = False, prev_done = False
    cdef Py_ssize_t pack_size
    if _is_small(net, m):
        _backward_small(net, params, X, m, work, target, alpha, beta_w, beta_b)
        return
    pack_size = _pack_size(net)
    for l in range(net.n_layers - 1, -1, -1):
        n_in, n_out = net.size[l], net.size[l + 1]
        D = work + net.d_off[l]
        A_prev = X if l == 0 else work + net.a_off[l - 1]
        prev_done = False
        if l > 0:       # (b_{l-1}'s step may come with it: nothing below reads the biases)
            prev_done = _backprop_dense(m, n_out, n_in, D, params + net.w_off[l],
                                        work + net.d_off[l - 1], work + net.z_off[l - 1],
                                        work + net.a_off[l - 1], net.act[l - 1], slope,
                                        work + net.pk_off, pack_size,
                                        target + net.b_off[l - 1], alpha, beta_b)
        if l == 0 and net.sparse != NULL:
            _sparse_tn(m, n_out, n_in, alpha, net.sparse, D, beta_w, target + net.w_off[0])
        else:
            _mm_tn(m, n_out, n_in, alpha, A_prev, D, beta_w, target + net.w_off[l])
        if not bias_done:
            _colsum(m, n_out, alpha, D, beta_b, target + net.b_off[l])
        bias_done = prev_done


cdef inline bint _is_small(const Net* net, Py_ssize_t m) noexcept nogil:
    """Whether m rows go through the small-network loops (every product below BLAS_MIN_WORK,
    where the general loops would not call BLAS either: the same sums, the same results)."""
    return net.small_work != 0 and m * net.small_work < BLAS_MIN_WORK


cdef inline floating _act1(floating z, int act, floating slope) noexcept nogil:
    """act(z) for one element: `_activation`'s formulas."""
    if act == ACT_LEAKY_RELU:
        return z if z >= 0 else slope * z
    if act == ACT_RELU:
        return 0 if z <= 0 else z
    if act == ACT_TANH:
        return _tanh(z)
    if act == ACT_SIGMOID:
        return _sigmoid1(z)
    if act == ACT_GELU:
        return _gelu(z)
    return z


cdef void _forward_small(const Net* net, const floating* params, const floating* X,
                         Py_ssize_t m, floating* work) noexcept nogil:
    """`_forward` of a one-hidden-layer network on dense rows, one row at a time, four hidden
    units at a time (independent sums in registers, one pass over x): each unit sums
    b_j + x_1 w_1j + x_2 w_2j + ... and each output b_c + a_1 w_1c + a_2 w_2c + ... in that
    order, as `_dense_activation`'s loops do, so the results are theirs."""
    cdef Py_ssize_t d = net.size[0], h = net.size[1], k = net.size[2], i, j, p
    cdef const floating* W1 = params + net.w_off[0]
    cdef const floating* b1 = params + net.b_off[0]
    cdef const floating* W2 = params + net.w_off[1]
    cdef const floating* x
    cdef const floating* w
    cdef floating* z
    cdef floating* a
    cdef floating s[4]
    cdef floating s0, xp, out, slope = <floating>net.slope
    cdef int act = net.act[0], r
    for i in range(m):
        x, z, a = X + i * d, work + net.z_off[0] + i * h, work + net.a_off[0] + i * h
        out = params[net.b_off[1]]     # the first output's sum, built as the units come
        j = 0
        while j + 4 <= h:              # (loops of 4: the compiler unrolls and pairs them)
            for r in range(4):
                s[r] = b1[j + r]
            for p in range(d):
                xp, w = x[p], W1 + p * h + j
                for r in range(4):
                    s[r] = s[r] + xp * w[r]
            for r in range(4):
                z[j + r] = s[r]
                s[r] = _act1(s[r], act, slope)
                a[j + r] = s[r]
            for r in range(4):
                out = out + s[r] * W2[(j + r) * k]
            j += 4
        for j in range(j, h):
            s0 = b1[j]
            for p in range(d):
                s0 = s0 + x[p] * W1[p * h + j]
            z[j], a[j] = s0, _act1(s0, act, slope)
            out = out + a[j] * W2[j * k]
        _output_row(h, k, a, W2, params + net.b_off[1], out, work + net.z_off[1] + i * k)


cdef inline void _output_row(Py_ssize_t h, Py_ssize_t k, const floating* a, const floating* W2,
                             const floating* b2, floating first, floating* z) noexcept nogil:
    """z (k,) = b2 + a (h,) @ W2 (h, k), the first output's sum given (`first`)."""
    cdef Py_ssize_t j, p
    cdef floating s
    z[0] = first
    for j in range(1, k):
        s = b2[j]
        for p in range(h):
            s = s + a[p] * W2[p * k + j]
        z[j] = s


cdef void _layer_grad_small(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, floating alpha,
                            const floating* A, const floating* D, floating beta_w,
                            floating beta_b, floating* W, floating* b) noexcept nogil:
    """W (k, n) = alpha * A (m, k).T @ D (m, n) + beta_w * W and b = alpha * (D summed over
    rows) + beta_b * b, each element summed over the rows in order, in double, as `_mm_tn`
    and `_colsum` do; W and b are not read where their beta is 0. The elements of W go four
    at a time: W[q + r] (r < 4) takes column a_r of A and column c_r of D."""
    cdef Py_ssize_t i, j, r, q = 0, size = k * n
    cdef Py_ssize_t a0 = 0, c0 = 0, a1, c1, a2, c2, a3, c3
    cdef double s[4]
    cdef double s0
    cdef floating t
    cdef floating u[4]
    cdef const floating* Ai
    cdef const floating* Di
    while q + 4 <= size:               # (loops of 4: the compiler unrolls and pairs them)
        s[0] = s[1] = s[2] = s[3] = 0
        if c0 + 4 <= n:                # four columns of D, one of A
            for i in range(m):
                Ai, Di = A + i * k + a0, D + i * n + c0
                for r in range(4):
                    s[r] += Ai[0] * Di[r]
            a3, c3 = a0, c0 + 3
        elif n == 1:                   # four columns of A, D's one
            for i in range(m):
                Ai, Di = A + i * k + a0, D + i
                for r in range(4):
                    s[r] += Ai[r] * Di[0]
            a3, c3 = a0 + 3, 0
        else:
            a1, c1 = _next_a(a0, c0, n), _next_c(c0, n)
            a2, c2 = _next_a(a1, c1, n), _next_c(c1, n)
            a3, c3 = _next_a(a2, c2, n), _next_c(c2, n)
            for i in range(m):
                Ai, Di = A + i * k, D + i * n
                s[0], s[1] = s[0] + Ai[a0] * Di[c0], s[1] + Ai[a1] * Di[c1]
                s[2], s[3] = s[2] + Ai[a2] * Di[c2], s[3] + Ai[a3] * Di[c3]
        for r in range(4):
            _store_grad(W + q + r, s[r], alpha, beta_w)
        q += 4
        a0, c0 = _next_a(a3, c3, n), _next_c(c3, n)
    for q in range(q, size):
        s0 = 0
        for i in range(m):
            s0 += A[i * k + q // n] * D[i * n + q % n]
        _store_grad(W + q, s0, alpha, beta_w)
    j = 0
    while j + 4 <= n:                  # the bias, in floating as `_colsum`, four at a time
        for r in range(4):
            u[r] = 0 if beta_b == 0 else beta_b * b[j + r]
        for i in range(m):
            for r in range(4):
                u[r] = u[r] + alpha * D[i * n + j + r]
        for r in range(4):
            b[j + r] = u[r]
        j += 4
    for j in range(j, n):
        t = 0 if beta_b == 0 else beta_b * b[j]
        for i in range(m):
            t = t + alpha * D[i * n + j]
        b[j] = t


cdef inline Py_ssize_t _next_a(Py_ssize_t a, Py_ssize_t c, Py_ssize_t n) noexcept nogil:
    """The row of the element after (a, c) in a row-major matrix of n columns."""
    return a if c + 1 < n else a + 1


cdef inline Py_ssize_t _next_c(Py_ssize_t c, Py_ssize_t n) noexcept nogil:
    """... and its column."""
    return c + 1 if c + 1 < n else 0


cdef inline void _store_grad(floating* w, double s, floating alpha, floating beta) noexcept nogil:
    """w = alpha * s + beta * w (`_mm_tn`'s rule: w is not read when beta is 0)."""
    if beta == 0:
        w[0] = alpha * <floating>s
    else:
        w[0] = beta * w[0] + alpha * <floating>s


cdef void _backward_small(const Net* net, const floating* params, const floating* X, Py_ssize_t m,
                          floating* work, floating* target, floating alpha, floating beta_w,
                          floating beta_b) noexcept nogil:
    """`_backward` of a one-hidden-layer network on dense rows (see `_forward_small`), with
    the same sums in the same order: dL/dA_1 from W_2 before target's W_2 is written."""
    cdef Py_ssize_t d = net.size[0], h = net.size[1], k = net.size[2], i, j, p
    cdef const floating* W2 = params + net.w_off[1]
    cdef const floating* D2 = work + net.d_off[1]
    cdef const floating* Z1 = work + net.z_off[0]
    cdef const floating* A1 = work + net.a_off[0]
    cdef floating* D1 = work + net.d_off[0]
    cdef floating slope = <floating>net.slope
    cdef double s
    cdef int act = net.act[0]
    cdef double u[4]
    cdef floating t
    cdef Py_ssize_t r
    for i in range(m):                  # dL/dA_1 = D2 @ W2.T, summed in double as `_mm_nt`
        p = 0
        while k == 1 and p + 4 <= h:    # (loops of 4: the compiler unrolls and pairs them)
            for r in range(4):
                u[r] = 0
                u[r] += D2[i] * W2[p + r]
            for r in range(4):
                t = <floating>u[r]
                D1[i * h + p + r] = t if act != ACT_LEAKY_RELU else _leaky_grad1(Z1[i * h + p + r], t, slope)
            p += 4
        for p in range(p, h):
            s = 0
            for j in range(k):
                s += D2[i * k + j] * W2[p * k + j]
            t = <floating>s
            D1[i * h + p] = t if act != ACT_LEAKY_RELU else _leaky_grad1(Z1[i * h + p], t, slope)
    if act != ACT_LEAKY_RELU:           # (leaky ReLU's derivative is applied above)
        _activation_backward(m * h, Z1, A1, D1, act, slope)
    _layer_grad_small(m, k, h, alpha, A1, D2, beta_w, beta_b, target + net.w_off[1], target + net.b_off[1])
    _layer_grad_small(m, h, d, alpha, X, D1, beta_w, beta_b, target + net.w_off[0], target + net.b_off[0])


cdef struct Opt:
    int code                  # an OPT_* code
    double lr, momentum, beta1, beta2, eps, weight_decay, etaplus, etaminus, step_min, step_max
    bint nesterov
    bint fused                # plain SGD: the step is taken inside the gradient GEMMs
    long t                    # steps taken so far (Adam's bias correction; Rprop's start)


cdef void _update(Opt* opt, const Net* net, Py_ssize_t size, floating* params,
                  floating* grad, floating* s1, floating* s2) noexcept nogil:
    """One optimizer step on the flat parameters with gradient `grad` (which includes the L2
    term); s1, s2 are the optimizer's state, laid out like params (see `_update_range`)."""
    cdef Py_ssize_t l, lo, hi
    opt.t += 1
    for l in range(net.n_layers):
        lo, hi = net.w_off[l], net.b_off[l]
        _update_range(opt, opt.t, params + lo, grad + lo, s1 + lo, s2 + lo, hi - lo, True)
        lo, hi = net.b_off[l], net.b_off[l] + net.size[l + 1]
        _update_range(opt, opt.t, params + lo, grad + lo, s1 + lo, s2 + lo, hi - lo, False)


cdef void _update_range(const Opt* opt, long t, floating* p, floating* g, floating* s1,
                        floating* s2, Py_ssize_t size, bint weights) noexcept nogil:
    """Step `t` (counted from 1) of the optimizer on p[:size], with gradient g and state s1, s2
    of the same extent: all weights of one layer (`weights`) or all biases, or a part of
    them. Each element's update reads only its own entries, so a step may be taken in any
    partition of the parameters. PyTorch's update rules:

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
    if opt.code == OPT_SGD:
        for i in range(size):
            v = mu * s1[i] + g[i]
            s1[i] = v
            d = g[i] + mu * v if opt.nesterov else v
            p[i] -= lr * d
    elif opt.code == OPT_ADAM or opt.code == OPT_ADAMW:
        if opt.code == OPT_ADAMW and weights:
            decay = <floating>(1 - opt.lr * opt.weight_decay)
            for i in range(size):
                p[i] *= decay
        step = <floating>(opt.lr / (1 - pow(opt.beta1, t)))
        root_bc2 = <floating>sqrt(1 - pow(opt.beta2, t))
        for i in range(size):
            m = b1 * s1[i] + (1 - b1) * g[i]
            v = b2 * s2[i] + (1 - b2) * g[i] * g[i]
            s1[i], s2[i] = m, v
            p[i] -= step * m / (_sqrt(v) / root_bc2 + eps)
    elif opt.code == OPT_RPROP:   # s1 = step sizes, s2 = previous gradient
        if t == 1:
            for i in range(size):
                s1[i] = lr
                s2[i] = 0
        for i in range(size):
            d = g[i] * s2[i]
            if d > 0:
                s1[i] = min(s1[i] * <floating>opt.etaplus, <floating>opt.step_max)
            elif d < 0:
                s1[i] = max(s1[i] * <floating>opt.etaminus, <floating>opt.step_min)
                g[i] = 0
            if g[i] > 0:
                p[i] -= s1[i]
            elif g[i] < 0:
                p[i] += s1[i]
            s2[i] = g[i]


cdef void _add_l2(const Net* net, const floating* params, floating* grad) noexcept nogil:
    """grad[W_l] += l2 * W_l for every layer (the gradient of 0.5 * l2 * sum(W**2))."""
    cdef Py_ssize_t l, i
    cdef floating l2 = <floating>net.l2
    for l in range(net.n_layers):
        for i in range(net.w_off[l], net.b_off[l]):
            grad[i] += l2 * params[i]


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
                   floating* grad, floating* s1, floating* s2, Poll* stop) noexcept nogil:
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
        _forward(net, params, Xb, m, work)
        # a batch of total weight 0 contributes nothing (its data gradient is 0)
        loss = _output_loss(m, k, Zout, Yb, Wb, Dout,
                            <floating>(1.0 / weight if weight > 0 else 0), net.loss)
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
            _update(opt, net, n_params, params, grad, s1, s2)
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
    loss = _output_loss(n, k, work + net.z_off[1], Y, NULL, work + net.d_off[1],
                        <floating>(1.0 / <double>n), net.loss)
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
                      Py_ssize_t n_params, bint with_state) noexcept nogil:
    """snap = params, and the optimizer's state (2 * n_params) after them unless it keeps none."""
    memcpy(snap, params, n_params * sizeof(floating))
    if with_state:
        memcpy(snap + n_params, state, 2 * n_params * sizeof(floating))


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
                           Py_ssize_t n_params, bint with_state) noexcept nogil:
    """After a divergence: params, state and opt.t back to the save point taken when epoch
    `cur` started, or when the epoch before it started if that one holds non-finite params
    (the steps of epoch cur - 1 overflowed). The losses of the epochs undone (those written,
    < `written`) become NaN. Returns the epoch whose start the params are now at."""
    if cur > 0 and not _all_finite(snaps + (cur % 2) * 3 * n_params, n_params):
        if cur < written:
            losses[cur] = NAN
        cur -= 1
    if cur < written:
        losses[cur] = NAN
    memcpy(params, snaps + (cur % 2) * 3 * n_params, n_params * sizeof(floating))
    if with_state:
        memcpy(state, snaps + (cur % 2) * 3 * n_params + n_params, 2 * n_params * sizeof(floating))
    opt.t = steps[cur % 2]
    return cur


# =====================================================================================
# 3. Python wrappers
# =====================================================================================
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

    def __cinit__(self, net, Py_ssize_t capacity, bint gather, csr=None):
        sizes = [int(s) for s in net.sizes]
        cdef Py_ssize_t L = len(sizes) - 1, l
        if L < 1 or min(sizes) < 1 or max(sizes) > INT_MAX or not 1 <= capacity <= INT_MAX:
            raise ValueError(f"a network needs at least 2 layer sizes in 1..{INT_MAX} and batches "
                             f"of 1..{INT_MAX} rows, got sizes {sizes} and {capacity} rows")
        ints = np.zeros((6, L + 1), dtype=np.intp)
        ints[0, :] = sizes
        acts = np.zeros(L, dtype=np.intc)     # at least one element, never empty
        acts[: L - 1] = [_ACTIVATION_CODES[a] for a in net.activations]
        cdef Py_ssize_t[:, ::1] iv = ints
        cdef int[::1] av = acts
        self._ints, self._acts = ints, acts
        small = L == 2 and csr is None and sizes[1] * max(sizes[0], sizes[2]) <= TINY_NET_MAX_WORK
        # Leaky ReLU with a slope > 0 keeps the sign of z, so its derivative (all that the
        # backward pass reads of Z_l) can come from A_l, written over Z_l: a buffer of the
        # batch's size less to write and read in each layer (not for the small-network
        # loops, which keep both).
        inplace = net.negative_slope > 0 and not small
        off = 0                     # a Python int: offsets cannot wrap around
        for l in range(L):
            iv[1, l] = off
            off += sizes[l] * sizes[l + 1]
            iv[2, l] = off
            off += sizes[l + 1]
        self.net.n_params = off
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
        self.net.work_size = off
        self.net.n_layers = L
        self.net.size = &iv[0, 0]
        self.net.w_off = &iv[1, 0]
        self.net.b_off = &iv[2, 0]
        self.net.z_off = &iv[3, 0]
        self.net.a_off = &iv[4, 0]
        self.net.d_off = &iv[5, 0]
        self.net.act = &av[0]
        self.net.output = _OUTPUT_CODES[net.output]
        self.net.loss = _LOSS_CODES[net.loss]
        self.net.slope = net.negative_slope
        self.net.l2 = net.l2
        self.net.capacity = capacity
        self.net.sparse = NULL
        self.net.small_work = 0
        if small:
            self.net.small_work = sizes[1] * max(sizes[0], sizes[2])
        if csr is not None:
            self._attach(csr[0], csr[1], csr[2], np.empty(capacity, np.intp))

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
    """The C copy of a ``fastmlp._spec.Optimizer``."""
    cdef Opt opt
    opt.code = _OPTIMIZER_CODES[optimizer.name]
    opt.lr, opt.momentum, opt.nesterov = optimizer.lr, optimizer.momentum, optimizer.nesterov
    opt.beta1, opt.beta2, opt.eps = optimizer.beta1, optimizer.beta2, optimizer.eps
    opt.weight_decay = optimizer.weight_decay
    opt.etaplus, opt.etaminus = optimizer.etaplus, optimizer.etaminus
    opt.step_min, opt.step_max = optimizer.step_min, optimizer.step_max
    opt.fused, opt.t = optimizer.fused, optimizer.t
    return opt


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
                               floating[:, ::1] G, int loss):
    cdef Py_ssize_t m = Z.shape[0], k = Z.shape[1]
    cdef double total
    with nogil:
        total = _output_loss(m, k, &Z[0, 0], &Y[0, 0], NULL, &G[0, 0], <floating>(1.0 / m), loss)
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


def output_loss(loss, Z, Y, G):
    """Mean over samples of `loss`, from the logits Z (stable).

    "bce": binary cross-entropy of sigmoid(Z), averaged over outputs too (BCEWithLogitsLoss);
    "cross_entropy": -sum_j y_j log softmax(z)_j (CrossEntropyLoss, Y one-hot);
    "mse": squared error, averaged over outputs too (MSELoss).
    IN: Z, Y (n, k).  OUT: G = d(mean loss)/dZ (may be Z or Y itself).  Returns the mean loss.
    """
    Z, Y = elementwise_args(G, "G", (Z, "Z"), (Y, "Y"), in_place=("Z", "Y"))
    code = _LOSS_CODES[choice(loss, "loss", tuple(_registry.LOSSES))]
    if G.size == 0:
        raise ValueError("the loss needs at least one element")
    if G.dtype == np.float32:
        return _output_loss_typed[float](Z, Y, G, code)
    return _output_loss_typed[double](Z, Y, G, code)


def sigmoid_bce(Z, Y, G):
    """Mean binary cross-entropy of sigmoid(Z) against Y, from the logits Z (stable).

    IN: Z, Y (n, k).  OUT: G = d(mean loss)/dZ = (sigmoid(Z) - Y) / (n * k).
    Returns the mean loss over samples and outputs (PyTorch's BCEWithLogitsLoss).
    """
    return output_loss("bce", Z, Y, G)


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
            _forward(cnet, &params[0], Xp + start * n_in if Xp != NULL else NULL, m, &work[0])
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
            _forward(cnet, &params[0], Xp, m, &work[0])
            bad += _overflow_rows(cnet, Xp, m, &work[0], &limit[0])
            total += _output_loss(m, k, &work[0] + cnet.z_off[L - 1], &Y[start, 0],
                                  &w[start] if weighted else NULL,
                                  &work[0] + cnet.d_off[L - 1] if want_grad else NULL,
                                  scale, cnet.loss)
            if want_grad:
                zero_or_one = 0 if start == 0 else 1    # later chunks add to the gradient
                _backward(cnet, &params[0], Xp, m, &work[0], &grad[0],
                          <floating>1, zero_or_one, zero_or_one)
            start += m
        total /= weight
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


cdef Py_ssize_t _per_check(double flops) noexcept nogil:
    """How many units of work costing `flops` each make FLOPS_PER_GIL_CHECK (at least 1)."""
    if flops >= FLOPS_PER_GIL_CHECK:
        return 1
    return FLOPS_PER_GIL_CHECK // max(<Py_ssize_t>flops, 1)


cdef Py_ssize_t _loop_arrays(const Net* net, int kind, params, X, csr, Y, w, losses, state, Py_ssize_t epochs,
                             Py_ssize_t batch_size, char** data) except -1:
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
               and 1 <= batch_size <= n and st[0] == 2 and st[1] == net.n_params and l[0] >= epochs
               and (w is None or v[0] == n))
    return n


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
                             callback, stop) except -1:
    cdef _Plan plan = _Plan(net, batch_size, rng is not None, csr)
    cdef const Net* cnet = &plan.net
    cdef char* data[6]
    cdef Py_ssize_t n = _loop_arrays(cnet, cnp.NPY_FLOAT if floating is float else cnp.NPY_DOUBLE, params_in, X_in,
                                     csr, Y_in, w_in, losses_in, state_in, epochs, batch_size, data)
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
    cdef Opt opt = _opt(optimizer)
    cdef bint small = opt.fused and rng is None and w_ptr == NULL and batch_size == n and _is_small(cnet, n)
    cdef double loss
    cdef long steps[2]
    errors = []     # (below, through `try`, nothing raises once the buffer is made)
    _poll_init(&poll, poll.every, stop, errors)
    # one buffer: layers' work, gradient, 2 save points (6 * n_params)
    work = _work_buffer(cnet.work_size + 7 * n_params, params)
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
                    _save_point(&snaps[(e % 2) * 3 * n_params], params, state, n_params,
                                not opt.fused)
                    if small:
                        loss = _epoch_small(cnet, &opt, params, Xp, Y, n, work, &poll)
                    else:
                        loss = _epoch(cnet, &opt, n_params, params, Xp, Y, w_ptr, n,
                                      batch_size, order_ptr, work, grad, state,
                                      state + n_params, &poll)
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
            _roll_back(losses, cur, e, params, state, snaps, steps, &opt, n_params,
                       not opt.fused)
        PyMem_RawFree(work)
        optimizer.t = opt.t
    return e


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
          sample_weight=None, callback=None, stop=None):
    """Train `params` in place by mini-batch steps of `optimizer` (a ``fastmlp._spec.Optimizer``).

    Batches are consecutive rows of X, or of a permutation drawn by ``rng.shuffle`` at the
    start of every epoch when `rng` (a numpy Generator) is given. `state` (2, len(params))
    holds the optimizer's buffers between calls (zeros at first); ``optimizer.t`` counts
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
    """
    X, Y, w, epochs, batch_size = train_args(net, params, X, Y, optimizer, state, losses, epochs,
                                             batch_size, rng, sample_weight, callback, stop)
    return _train(_CHECKED, net, params, X, Y, w, optimizer, state, losses, epochs, batch_size, rng, callback,
                  stop)


def _train(token, net, params, X, Y, w, optimizer, state, losses, epochs, batch_size, rng, callback, stop):
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
                            batch_size, rng, callback, stop)
    return _train_typed[double](<const double*>NULL, net, optimizer, params, X, csr, Y, w, losses, state, epochs,
                        batch_size, rng, callback, stop)


cnp.import_array()
