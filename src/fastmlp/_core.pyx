# Compiler directives live in setup.py (one place for all of them).
"""Compiled backend: the same functions as ``fastmlp._reference``, in Cython.

One module, split by role into Cython include files (textual inclusion: one C file, so
the split costs nothing), in the order they are included:

- ``_core_math.pxi``: the element math: activations and their derivatives, outputs and
  losses, optimizer steps (``cdef inline ... noexcept nogil`` on elements and rows). The
  twin of ``_reference.py``, to be read side by side.
- ``_core_products.pxi``: the matrix products: BLAS ?gemm calls, plain loops for layers
  too small for BLAS, _kernels.h's register tiles, a dense layer's forward and backward
  steps, and the loops of small one-hidden-layer networks.
- ``_core_ops.pxi``: the layer ops a network is a sequence of (dense, activation, dropout),
  each one's forward beside its backward, and dropout's counter-based mask generator.
- ``_core_loops.pxi``: whole networks on pointers into buffers allocated before the loop
  starts (nothing is allocated and no Python object is touched in them): forward and
  backward passes, the overflow guard, the epoch and training loops, prediction and
  full-data gradients.
- ``_core_entry.pxi``: the Python-visible functions and their checks: thin ``def``
  wrappers that check their arguments (``_validation``, ``_spec``), convert inputs once and
  allocate work buffers, then run the loops without the GIL.

This file holds the imports, the C declarations the include files share (constants, the
network's C description ``Net``) and the module's setup; the extension points' codes live
with their kernels in ``_core_math.pxi``.

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
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_RawFree, PyMem_RawMalloc
from cpython.ref cimport PyObject
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport INFINITY, M_2_SQRTPI, M_SQRT1_2, NAN, erf, exp, expf, fabs, isfinite, log, pow, sqrt, tanh, tanhf
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport ddot, dgemm, dsdot, sgemm

from . import _fork, _registry
from ._spec import CHECKED as _CHECKED
from ._spec import NORM_EPS as _SPEC_NORM_EPS
from ._spec import NORM_MOMENTUM as _SPEC_NORM_MOMENTUM
from ._spec import (check_dropout_key, dropout_keep, loss_gradient_args, loss_parameter, next_lr, out_of_range,
                    predict_args, shuffled, train_args, warn_overflow)
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

cdef extern from "_small.h" nogil:
    # The products of small layers as plain loops (see the header).
    void fm_small_forward_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* A, const double* W,
                            const double* b, double* Z)
    void fm_small_forward_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* A, const float* W,
                            const float* b, float* Z)
    void fm_small_back_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* D, const double* W,
                         double* P)
    void fm_small_back_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* D, const float* W, float* P)
    void fm_small_grad_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, double alpha, const double* A,
                         const double* D, double beta_w, double beta_b, double* W, double* b)
    void fm_small_grad_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, float alpha, const float* A,
                         const float* D, float beta_w, float beta_b, float* W, float* b)

cdef extern from "_team.h" nogil:
    # fastmlp's own threads for a training run's large products (see the header).
    ctypedef void (*fm_block_fn)(void* ctx, int block) noexcept nogil
    int fm_split            # blocks per large product, this thread's training products
    int fm_workers          # workers they may use
    int fm_force_late       # tests: every product counts as late
    long fm_team_late()
    int fm_team_available()
    void fm_team_run(int blocks, fm_block_fn fn, void* ctx)

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
    void fm_relu_d(Py_ssize_t size, const double* Z, double* A)
    void fm_relu_f(Py_ssize_t size, const float* Z, float* A)
    void fm_relu_grad_d(Py_ssize_t size, const double* Z, double* D)
    void fm_relu_grad_f(Py_ssize_t size, const float* Z, float* D)
    # ... and Adam's step
    void fm_adam_d(Py_ssize_t size, double* p, const double* g, double* m, double* v, double b1,
                   double b2, double step, double root_bc2, double eps)
    void fm_adam_f(Py_ssize_t size, float* p, const float* g, float* m, float* v, float b1,
                   float b2, float step, float root_bc2, float eps)

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

# For fastmlp._blas's thread policy: where the BLAS this module calls lives (SciPy's: its wheels carry it
# in scipy.libs, beside the package), and the smallest product it is given.
BLAS_LIBRARY_DIR = os.path.dirname(os.path.abspath(scipy.__file__))
BLAS_MIN_PRODUCT = BLAS_MIN_WORK


# The network as the loops see it (built by `_Plan` in _core_entry.pxi).

cdef struct Op:
    # One layer op of ``Network.ops`` (see _core_ops.pxi), with its place in the work buffer.
    int code                  # an OP_* code
    int setting               # activation: its ACT_* code
    Py_ssize_t layer          # the dense layer it is (dense) or follows
    Py_ssize_t width          # columns of its output: size[layer + 1]
    Py_ssize_t in_off         # work offset of its input (-1: the network's input X)
    Py_ssize_t out_off        # ... of its output (an activation's may be its input's: see _Plan)
    Py_ssize_t d_off          # ... of the gradient it works on: dL/dZ_layer's buffer
    Py_ssize_t aux_off        # dropout: its mask (scale where kept, 0 where dropped); a norm:
                              # the normalized input, then 1 / std per unit (batch norm) or row
                              # (layer norm), then room for its gamma and beta gradients
    Py_ssize_t stat_off       # a norm: where its 1 / std starts (after the normalized input)
    Py_ssize_t sum_off        # a norm: 3 * width doubles (column sums, coefficients; an even offset)
    Py_ssize_t p_off          # a norm: gamma's offset in the flat parameters (beta follows)
    Py_ssize_t r_off          # batch norm: the running mean's offset (the variance follows)
    uint64_t threshold        # dropout: a unit is dropped where its hash >> 11 is below this
    double scale              # dropout: 1 / (1 - rate)


cdef struct Net:
    # the architecture
    Py_ssize_t n_layers       # dense layers (weights), = len(sizes) - 1
    Py_ssize_t n_params       # length of the flat parameter vector
    Py_ssize_t* size          # [n_layers + 1] widths, input first
    Py_ssize_t* w_off         # [n_layers] offset of W_l in the flat parameter vector
    Py_ssize_t* b_off         # [n_layers] offset of b_l
    Py_ssize_t* g_off         # [n_layers] offset of gamma_l (beta_l follows), -1 without norm
    Py_ssize_t n_trainable    # the trainable part of the flat vector (the running statistics follow)
    int* act                  # [n_layers - 1] hidden activation codes
    int output                # output activation code
    int loss                  # loss code
    double loss_parameter     # the loss's parameter (huber's delta, quantile's quantile; else 0)
    double slope              # Leaky ReLU negative slope
    double l2                 # the penalty 0.5 * l2 * sum(W**2) over the weights
    # the layer ops, input to logits (training plans hold the dropout ops, others do not)
    Op* ops
    Py_ssize_t n_ops
    bint dropout              # some op is dropout (training with a rate > 0)
    bint norm                 # some op is a norm (batch or layer normalization)
    uint64_t dropout_key      # the run's key of dropout's masks
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
    # dense input: the multiply-adds per row of the largest product (0: sparse input). Batches
    # of m rows with m * small_work < BLAS_MIN_WORK go through `_forward_small` and
    # `_backward_small`.
    Py_ssize_t small_work


cdef struct Sparse:
    # CSR rows of X (index arrays: our own checked intp copies) and the ids of the rows that
    # make up the current batch: the loops write `rows`, the first layer reads it
    const Py_ssize_t* indptr
    const Py_ssize_t* indices
    const void* data          # floating, of the network's dtype
    Py_ssize_t* rows          # [capacity]


include "_core_math.pxi"
include "_core_products.pxi"
include "_core_ops.pxi"
include "_core_loops.pxi"
include "_core_entry.pxi"


cnp.import_array()
