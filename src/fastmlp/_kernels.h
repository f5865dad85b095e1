/* Small dense products (one training step of a small network: tens of rows, tens to hundreds
 * of columns) for fastmlp/_core.pyx, compiled for AVX-512 and chosen at run time.
 *
 * At these sizes (_core.pyx: up to SMALL_MAX_WORK multiply-adds) a BLAS ?gemm call spends
 * much of its time outside the arithmetic (argument checks, packing both operands, and
 * OpenBLAS splitting a 32 x 64 product over threads). These loops do only the arithmetic: C is cut into tiles of
 * FM_MR rows by 4 vectors of columns, each tile summed in registers over the whole inner
 * dimension (every element's terms added in order), then written once, with the layer's
 * next operation fused into that write: the bias and Leaky ReLU after a forward product,
 * alpha and beta (the SGD step) after a weight gradient, Leaky ReLU's derivative after the
 * product that carries the gradient back to the previous layer.
 *
 * The functions carry a `target` attribute, so the module itself stays built for any
 * x86-64; _core calls them only when fm_simd_available() says the CPU (and the OS) run
 * AVX-512. Elsewhere (other compilers or CPUs) fm_simd_available() is 0 and the functions
 * are stubs that are never called.
 *
 * Every function is written once, for a type T, and stamped out for double (suffix d) and
 * float (suffix f) by FM_KERNELS at the end. Row-major, C-contiguous operands throughout.
 */
#ifndef FASTMLP_KERNELS_H
#define FASTMLP_KERNELS_H

#include <float.h>
#include <stddef.h>

#define FM_MR 4                     /* rows of C per tile */

/* FM_EXACT on a function (and FM_EXACT_BODY at the top of its body): no a * b + c fused
 * into one rounding there, so that an AVX-512 loop gives the values, bit for bit, that the
 * module's own plain loops (built for any x86-64, without FMA) give. FM_SQRT: the
 * correctly rounded square root of a float or a double. */
#if defined(__clang__)
#define FM_EXACT
#define FM_EXACT_BODY _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define FM_EXACT __attribute__((optimize("fp-contract=off")))
#define FM_EXACT_BODY
#else
#define FM_EXACT
#define FM_EXACT_BODY
#endif
#define FM_SQRT(x) (sizeof(x) == sizeof(float) ? (__typeof__(x))__builtin_sqrtf((float)(x))   \
                                              : (__typeof__(x))__builtin_sqrt((double)(x)))

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define FM_SIMD 1
#if defined(__clang__)
#define FM_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma")))
#else
#define FM_TARGET __attribute__((target("avx512f,avx512vl,avx512dq,avx2,fma,prefer-vector-width=512")))
#endif
#define FM_INLINE static inline __attribute__((always_inline))

static int fm_simd_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
}
#else
#define FM_SIMD 0
#define FM_TARGET
#define FM_INLINE static inline
static int fm_simd_available(void) { return 0; }
#endif

/* One tile of C: acc (mr x nr) = sum over q < kc of a(r, q) * b[q * ldb + j], with
 * a(r, q) = a[r * a_rs + q * a_cs], then EPILOGUE(r, j) for each element (it reads
 * acc[r][j] and writes C). MRB and NRB bound the loops: the constants FM_MR and NR for a
 * full tile (loops unrolled, the accumulators kept in registers from first term to
 * epilogue), the tile's own extents at the edges of C. The sums start from their first
 * term plus 0 (the value and the sign of 0 + first term, as the sum started from 0 had),
 * not from a loop storing zeros: GCC turned that loop into a 1 KB memset per tile. */
#define FM_TILE(T, NR, MRB, NRB, kc, a, a_rs, a_cs, b, ldb, EPILOGUE)                   \
    do {                                                                                \
        T acc[FM_MR][NR];                                                               \
        ptrdiff_t r, j, q;                                                              \
        for (r = 0; r < (MRB); r++)                                                     \
            for (j = 0; j < (NRB); j++)                                                 \
                acc[r][j] = (kc) > 0 ? (a)[r * (a_rs)] * (b)[j] + 0 : 0;                \
        for (q = 1; q < (kc); q++) {                                                    \
            const T* bq = (b) + q * (ldb);                                              \
            for (r = 0; r < (MRB); r++) {                                               \
                T x = (a)[r * (a_rs) + q * (a_cs)];                                     \
                for (j = 0; j < (NRB); j++)                                             \
                    acc[r][j] += x * bq[j];                                             \
            }                                                                           \
        }                                                                               \
        for (r = 0; r < (MRB); r++)                                                     \
            for (j = 0; j < (NRB); j++)                                                 \
                EPILOGUE(r, j);                                                         \
    } while (0)

/* A full tile or an edge tile, as its extents mr, nr say. */
#define FM_ANY_TILE(T, NR, mr, nr, kc, a, a_rs, a_cs, b, ldb, EPILOGUE)                 \
    do {                                                                                \
        if ((mr) == FM_MR && (nr) == NR)                                                \
            FM_TILE(T, NR, FM_MR, NR, kc, a, a_rs, a_cs, b, ldb, EPILOGUE);             \
        else                                                                            \
            FM_TILE(T, NR, mr, nr, kc, a, a_rs, a_cs, b, ldb, EPILOGUE);                \
    } while (0)

#define FM_MIN(x, y) ((x) < (y) ? (x) : (y))

/* dst[j * ldd + i] = src[i * lds + j] for i, j < 8: an 8 x 8 block transposed in registers
 * (three rounds of two-vector shuffles: pairs of elements, pairs of pairs, halves), eight
 * loads and eight stores instead of 64 of each. GCC 12+ and Clang have the builtin; other
 * compilers move the elements one by one. */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define FM_TRANSPOSE8(T, src, lds, dst, ldd)                                            \
    do {                                                                                \
        typedef T v8_ __attribute__((vector_size(8 * sizeof(T)), aligned(sizeof(T))));  \
        v8_ r_[8], s_[8], t_[8];                                                        \
        int i_;                                                                         \
        for (i_ = 0; i_ < 8; i_++)                                                      \
            r_[i_] = *(const v8_*)((src) + i_ * (lds));                                 \
        for (i_ = 0; i_ < 8; i_ += 2) {                                                 \
            s_[i_] = __builtin_shufflevector(r_[i_], r_[i_ + 1], 0, 8, 2, 10, 4, 12, 6, 14); \
            s_[i_ + 1] = __builtin_shufflevector(r_[i_], r_[i_ + 1], 1, 9, 3, 11, 5, 13, 7, 15); \
        }                                                                               \
        for (i_ = 0; i_ < 8; i_ += 4) {                                                 \
            t_[i_] = __builtin_shufflevector(s_[i_], s_[i_ + 2], 0, 1, 8, 9, 4, 5, 12, 13); \
            t_[i_ + 1] = __builtin_shufflevector(s_[i_ + 1], s_[i_ + 3], 0, 1, 8, 9, 4, 5, 12, 13); \
            t_[i_ + 2] = __builtin_shufflevector(s_[i_], s_[i_ + 2], 2, 3, 10, 11, 6, 7, 14, 15); \
            t_[i_ + 3] = __builtin_shufflevector(s_[i_ + 1], s_[i_ + 3], 2, 3, 10, 11, 6, 7, 14, 15); \
        }                                                                               \
        for (i_ = 0; i_ < 4; i_++) {                                                    \
            *(v8_*)((dst) + i_ * (ldd)) =                                               \
                __builtin_shufflevector(t_[i_], t_[i_ + 4], 0, 1, 2, 3, 8, 9, 10, 11);  \
            *(v8_*)((dst) + (i_ + 4) * (ldd)) =                                         \
                __builtin_shufflevector(t_[i_], t_[i_ + 4], 4, 5, 6, 7, 12, 13, 14, 15); \
        }                                                                               \
    } while (0)
#else
#define FM_TRANSPOSE8(T, src, lds, dst, ldd)                                            \
    do {                                                                                \
        int i_, j_;                                                                     \
        for (i_ = 0; i_ < 8; i_++)                                                      \
            for (j_ = 0; j_ < 8; j_++)                                                  \
                (dst)[j_ * (ldd) + i_] = (src)[i_ * (lds) + j_];                        \
    } while (0)
#endif

/* Leaky ReLU of a z < 0 (or NaN): slope * z. Written over z itself (`inplace`: no Z kept
 * beside A, fastmlp/_core.pyx's _Plan), a product that underflows to -0 becomes the
 * negative number nearest 0 instead (`tiny`, a local: the type's smallest subnormal), so that
 * A >= 0 exactly where z >= 0 and the derivative, read off A's sign, is the one of z. */
#define FM_LEAKY_NEG(z, inplace)                                                        \
    (slope * (z) != 0 || !(inplace) ? slope * (z) : -tiny)

/* v * Leaky ReLU'(z): v where z >= 0, slope * v where z < 0, and z itself (NaN) where z is
 * NaN, which a select on z >= 0 alone would turn into slope * v. */
#define FM_LEAKY_GRAD(z, v) ((z) >= 0 ? (v) : (z) < 0 ? slope * (v) : (z))

/* The epilogues, for element (r, j) of the tile at (i0, j0) or (p0, j0) of C. */
#define FM_BIAS_LEAKY(r, j)                                                             \
    do {                                                                                \
        __typeof__(acc[0][0]) z_ = acc[r][j] + b[j0 + j];                                                   \
        Z[(i0 + r) * n + j0 + j] = z_;                                                  \
        if (Aout != NULL)                                                               \
            Aout[(i0 + r) * n + j0 + j] = z_ >= 0 ? z_ : FM_LEAKY_NEG(z_, Aout == Z);   \
    } while (0)
#define FM_ALPHA_BETA(r, j)                                                             \
    do {                                                                                \
        __typeof__(acc[0][0])* c_ = C + (p0 + r) * n + j0 + j;                                              \
        *c_ = beta == 0 ? alpha * acc[r][j] : beta * *c_ + alpha * acc[r][j];           \
    } while (0)
#define FM_ALPHA_BETA_LEAKY_GRAD(r, j)                                                  \
    do {                                                                                \
        __typeof__(acc[0][0])* c_ = C + (i0 + r) * k + p0 + j;                                              \
        __typeof__(acc[0][0]) v_ = beta == 0 ? alpha * acc[r][j] : beta * *c_ + alpha * acc[r][j];          \
        *c_ = Zp == NULL ? v_ : FM_LEAKY_GRAD(Zp[(i0 + r) * k + p0 + j], v_);           \
    } while (0)

#define FM_KERNELS(T, S, NR, TINY)                                                          \
/* Z (m, n) = A (m, k) @ W (k, n) + b; Aout = Leaky ReLU(Z) with `slope` unless NULL. */   \
FM_TARGET static void fm_forward_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T* A,  \
                                     const T* W, const T* b, T* Z, T* Aout, T slope) {   \
    const T tiny = TINY;                                                                \
    ptrdiff_t i0, j0;                                                                   \
    for (i0 = 0; i0 < m; i0 += FM_MR)                                                   \
        for (j0 = 0; j0 < n; j0 += NR)                                                  \
            FM_ANY_TILE(T, NR, FM_MIN(FM_MR, m - i0), FM_MIN(NR, n - j0), k,            \
                        A + i0 * k, k, 1, W + j0, n, FM_BIAS_LEAKY);                    \
}                                                                                       \
                                                                                        \
/* C (k, n) = alpha * A.T @ D + beta * C, A (m, k), D (m, n); C not read if beta == 0. */ \
FM_TARGET static void fm_tn_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha,          \
                                const T* A, const T* D, T beta, T* C) {                  \
    ptrdiff_t p0, j0;                                                                   \
    for (p0 = 0; p0 < k; p0 += FM_MR)                                                   \
        for (j0 = 0; j0 < n; j0 += NR)                                                  \
            FM_ANY_TILE(T, NR, FM_MIN(FM_MR, k - p0), FM_MIN(NR, n - j0), m,            \
                        A + p0, 1, k, D + j0, n, FM_ALPHA_BETA);                        \
}                                                                                       \
                                                                                        \
/* C (m, k) = alpha * D (m, n) @ W.T + beta * C, W (k, n), then C *= Leaky ReLU'(Zp)      \
 * (FM_LEAKY_GRAD) unless Zp is NULL; C not read if beta == 0. `pack`       \
 * holds n * NR elements: W's rows p0..p0 + NR - 1, transposed (8 x 8 blocks at a time), for \
 * each block of NR columns of C. */                                                                     \
FM_TARGET static void fm_nt_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha,          \
                                const T* D, const T* W, T beta, T* C, const T* Zp,       \
                                T slope, T* pack) {                                      \
    ptrdiff_t p0, i0, q, c;                                                             \
    for (p0 = 0; p0 < k; p0 += NR) {                                                    \
        ptrdiff_t nr = FM_MIN(NR, k - p0);                                              \
        const T* w = W + p0 * n;                                                        \
        for (c = 0; c + 8 <= nr; c += 8) {          /* 8 x 8 blocks, then the edges */  \
            for (q = 0; q + 8 <= n; q += 8)                                             \
                FM_TRANSPOSE8(T, w + c * n + q, n, pack + q * NR + c, NR);              \
            for (; q < n; q++)                                                          \
                for (i0 = c; i0 < c + 8; i0++)                                          \
                    pack[q * NR + i0] = w[i0 * n + q];                                  \
        }                                                                               \
        for (; c < nr; c++)                                                             \
            for (q = 0; q < n; q++)                                                     \
                pack[q * NR + c] = w[c * n + q];                                        \
        for (i0 = 0; i0 < m; i0 += FM_MR)                                               \
            FM_ANY_TILE(T, NR, FM_MIN(FM_MR, m - i0), nr, n, D + i0 * n, n, 1, pack,    \
                        NR, FM_ALPHA_BETA_LEAKY_GRAD);                                  \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* A layer with one output (n = 1). C (m, k) = alpha * d (m,) outer w (k,), then          \
 * C *= Leaky ReLU'(Zp) unless Zp is NULL: fm_nt's job for a column vector d. */          \
FM_TARGET static void fm_outer_##S(ptrdiff_t m, ptrdiff_t k, T alpha, const T* d,        \
                                   const T* w, T* C, const T* Zp, T slope) {             \
    ptrdiff_t i, p;                                                                     \
    for (i = 0; i < m; i++) {                                                           \
        T a = alpha * d[i];                                                             \
        T* c = C + i * k;                                                               \
        if (Zp == NULL)                                                                 \
            for (p = 0; p < k; p++)                                                     \
                c[p] = a * w[p];                                                        \
        else                                                                            \
            for (p = 0; p < k; p++) {                                                   \
                T v = a * w[p];                                                         \
                c[p] = FM_LEAKY_GRAD(Zp[i * k + p], v);                                 \
            }                                                                           \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* c (k,) = alpha * A.T @ d + beta * c, A (m, k), d (m,): fm_tn's job for n = 1, in       \
 * blocks of NR elements of c, each summed in registers over the rows in order. */        \
FM_TARGET static void fm_tn1_##S(ptrdiff_t m, ptrdiff_t k, T alpha, const T* A,          \
                                 const T* d, T beta, T* c) {                              \
    ptrdiff_t p0, p, i;                                                                 \
    for (p0 = 0; p0 < k; p0 += NR) {                                                    \
        ptrdiff_t nr = FM_MIN(NR, k - p0);                                              \
        T acc[NR];                                                                      \
        for (p = 0; p < NR; p++)                                                        \
            acc[p] = 0;                                                                 \
        if (nr == NR)                                                                   \
            for (i = 0; i < m; i++)                                                     \
                for (p = 0; p < NR; p++)                                                \
                    acc[p] += A[i * k + p0 + p] * d[i];                                 \
        else                                                                            \
            for (i = 0; i < m; i++)                                                     \
                for (p = 0; p < nr; p++)                                                \
                    acc[p] += A[i * k + p0 + p] * d[i];                                 \
        for (p = 0; p < nr; p++)                                                        \
            c[p0 + p] = beta == 0 ? alpha * acc[p] : beta * c[p0 + p] + alpha * acc[p]; \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* The passes between a large layer's BLAS products (m x n, any size). */                  \
/* Z += b (broadcast over rows); Aout = Leaky ReLU(Z) unless NULL (in place where Aout    \
 * is Z, see FM_LEAKY_NEG): one pass, not two. */                                         \
FM_TARGET static void fm_bias_leaky_##S(ptrdiff_t m, ptrdiff_t n, const T* b, T* Z,      \
                                        T* Aout, T slope) {                              \
    const T tiny = TINY;                                                                \
    ptrdiff_t i, j;                                                                     \
    for (i = 0; i < m; i++) {                                                           \
        T* z = Z + i * n;                                                               \
        if (Aout == NULL)                                                               \
            for (j = 0; j < n; j++)                                                     \
                z[j] = z[j] + b[j];                                                     \
        else if (Aout == Z)                                                             \
            for (j = 0; j < n; j++) {                                                   \
                T v = z[j] + b[j];                                                      \
                z[j] = v >= 0 ? v : FM_LEAKY_NEG(v, 1);                                 \
            }                                                                           \
        else {                                                                          \
            T* a = Aout + i * n;                                                        \
            for (j = 0; j < n; j++) {                                                   \
                T v = z[j] + b[j];                                                      \
                z[j] = v;                                                               \
                a[j] = v >= 0 ? v : slope * v;                                          \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* z (m,) = b + A (m, k) @ w (k,): a layer with one output. Each row's dot product in     \
 * NR lanes (lane p sums the terms p, p + NR, ...), the lanes added in a fixed tree. */   \
FM_TARGET static void fm_matvec_##S(ptrdiff_t m, ptrdiff_t k, const T* A, const T* w,    \
                                    T b, T* z) {                                         \
    ptrdiff_t i, p, q, h;                                                               \
    for (i = 0; i < m; i++) {                                                           \
        const T* a = A + i * k;                                                         \
        T acc[NR], tail = 0;                                                            \
        for (q = 0; q < NR; q++)                                                        \
            acc[q] = 0;                                                                 \
        for (p = 0; p + NR <= k; p += NR)                                               \
            for (q = 0; q < NR; q++)                                                    \
                acc[q] += a[p + q] * w[p + q];                                          \
        for (; p < k; p++)                                                              \
            tail += a[p] * w[p];                                                        \
        for (h = NR / 2; h > 0; h /= 2)                                                 \
            for (q = 0; q < h; q++)                                                     \
                acc[q] += acc[q + h];                                                   \
        z[i] = b + (acc[0] + tail);                                                     \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* D (m, n) *= Leaky ReLU'(Zp) (FM_LEAKY_GRAD), then, unless out is NULL,   \
 * out (n,) = alpha * (D summed over rows) + beta * out as fm_colsum sums it (each        \
 * column's rows in order), in the same pass. `acc`: n elements of scratch. */            \
FM_TARGET static void fm_leaky_grad_##S(ptrdiff_t m, ptrdiff_t n, const T* Zp, T* D,     \
                                        T slope, T alpha, T beta, T* out, T* acc) {      \
    ptrdiff_t i, j;                                                                     \
    if (out == NULL) {                                                                  \
        for (i = 0; i < m * n; i++)                                                     \
            D[i] = FM_LEAKY_GRAD(Zp[i], D[i]);                                          \
        return;                                                                         \
    }                                                                                   \
    for (j = 0; j < n; j++)                                                             \
        acc[j] = 0;                                                                     \
    for (i = 0; i < m; i++) {                                                           \
        const T* z = Zp + i * n;                                                        \
        T* d = D + i * n;                                                               \
        for (j = 0; j < n; j++) {                                                       \
            T v = FM_LEAKY_GRAD(z[j], d[j]);                                            \
            d[j] = v;                                                                   \
            acc[j] += v;                                                                \
        }                                                                               \
    }                                                                                   \
    for (j = 0; j < n; j++)                                                             \
        out[j] = beta == 0 ? alpha * acc[j] : beta * out[j] + alpha * acc[j];           \
}                                                                                       \
                                                                                        \
/* A = ReLU(Z) (0 where z <= 0; a NaN z stays NaN), Z and A of `size` elements. */        \
FM_TARGET static void fm_relu_##S(ptrdiff_t size, const T* Z, T* A) {                   \
    ptrdiff_t i;                                                                        \
    for (i = 0; i < size; i++)                                                          \
        A[i] = Z[i] <= 0 ? 0 : Z[i];                                                    \
}                                                                                       \
                                                                                        \
/* D *= ReLU'(Z): d where z > 0, 0 * d where z <= 0, z itself (NaN) where z is NaN. */    \
FM_TARGET static void fm_relu_grad_##S(ptrdiff_t size, const T* Z, T* D) {              \
    ptrdiff_t i;                                                                        \
    for (i = 0; i < size; i++) {                                                        \
        T r = Z[i] > 0 ? D[i] : 0 * D[i];                                               \
        D[i] = Z[i] == Z[i] ? r : Z[i];                                                 \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* Adam's step on p (size,) with gradient g and moments m, v (fastmlp/_core_math.pxi's    \
 * _update_range gives the rule and `step`, `root_bc2`): the same operations in the same  \
 * order as there (1.0 - b1 in double, as Cython writes it), none fused (FM_EXACT): the   \
 * plain loop's results. */                                                              \
FM_TARGET FM_EXACT static void fm_adam_##S(ptrdiff_t size, T* p, const T* g, T* m, T* v, \
                                           T b1, T b2, T step, T root_bc2, T eps) {      \
    ptrdiff_t i;                                                                        \
    FM_EXACT_BODY                                                                       \
    for (i = 0; i < size; i++) {                                                        \
        T mi = b1 * m[i] + (1.0 - b1) * g[i];                                           \
        T vi = b2 * v[i] + (1.0 - b2) * g[i] * g[i];                                    \
        m[i] = mi;                                                                      \
        v[i] = vi;                                                                      \
        p[i] -= step * mi / (FM_SQRT(vi) / root_bc2 + eps);                             \
    }                                                                                   \
}                                                                                       \
                                                                                        \
/* out (n,) = alpha * (D (m, n) summed over rows, in order) + beta * out. */              \
FM_TARGET static void fm_colsum_##S(ptrdiff_t m, ptrdiff_t n, T alpha, const T* D,       \
                                    T beta, T* out) {                                    \
    ptrdiff_t j0, j, i;                                                                 \
    for (j0 = 0; j0 < n; j0 += NR) {                                                    \
        ptrdiff_t nr = FM_MIN(NR, n - j0);                                              \
        T acc[NR];                                                                      \
        for (j = 0; j < NR; j++)                                                        \
            acc[j] = 0;                                                                 \
        if (nr == NR)                                                                   \
            for (i = 0; i < m; i++)                                                     \
                for (j = 0; j < NR; j++)                                                \
                    acc[j] += D[i * n + j0 + j];                                        \
        else                                                                            \
            for (i = 0; i < m; i++)                                                     \
                for (j = 0; j < nr; j++)                                                \
                    acc[j] += D[i * n + j0 + j];                                        \
        for (j = 0; j < nr; j++)                                                        \
            out[j0 + j] = beta == 0 ? alpha * acc[j] : beta * out[j0 + j] + alpha * acc[j]; \
    }                                                                                   \
}

#if FM_SIMD
FM_KERNELS(double, d, 32, DBL_TRUE_MIN)
FM_KERNELS(float, f, 64, FLT_TRUE_MIN)
#else
/* never called: fm_simd_available() is 0 */
#define FM_STUBS(T, S)                                                                  \
static void fm_forward_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T* A, const T* W, \
                           const T* b, T* Z, T* Aout, T slope) {}                        \
static void fm_tn_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha, const T* A,        \
                      const T* D, T beta, T* C) {}                                       \
static void fm_nt_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha, const T* D,        \
                      const T* W, T beta, T* C, const T* Zp, T slope, T* pack) {}        \
static void fm_outer_##S(ptrdiff_t m, ptrdiff_t k, T alpha, const T* d, const T* w,      \
                         T* C, const T* Zp, T slope) {}                                  \
static void fm_tn1_##S(ptrdiff_t m, ptrdiff_t k, T alpha, const T* A, const T* d,        \
                       T beta, T* c) {}                                                  \
                                                  \
static void fm_bias_leaky_##S(ptrdiff_t m, ptrdiff_t n, const T* b, T* Z, T* Aout,       \
                              T slope) {}                                                \
static void fm_matvec_##S(ptrdiff_t m, ptrdiff_t k, const T* A, const T* w, T b, T* z) {} \
static void fm_leaky_grad_##S(ptrdiff_t m, ptrdiff_t n, const T* Zp, T* D, T slope,      \
                              T alpha, T beta, T* out, T* acc) {}                             \
static void fm_relu_##S(ptrdiff_t size, const T* Z, T* A) {}                            \
static void fm_relu_grad_##S(ptrdiff_t size, const T* Z, T* D) {}                       \
static void fm_adam_##S(ptrdiff_t size, T* p, const T* g, T* m, T* v, T b1, T b2,        \
                        T step, T root_bc2, T eps) {}
FM_STUBS(double, d)
FM_STUBS(float, f)
#endif

#define FM_PACK_COLUMNS 64          /* pack holds n * FM_PACK_COLUMNS elements (>= NR) */

#endif
