/* The products of a small layer (every product of the batch under BLAS_MIN_WORK
 * multiply-adds: _core.pyx) as plain loops, for fastmlp/_core.pyx.
 *
 * At these sizes (XOR's 2-4-1 on four rows: a few dozen multiply-adds per product) the
 * arithmetic is the least of the cost; what counts is doing it in one pass per product with
 * nothing around it: each product in one call, FM_B sums at a time held in registers
 * (`restrict` tells the compiler the operands do not overlap), every element's terms added
 * in the order of the inner dimension. Built for the baseline instruction set: copies for
 * AVX2 chosen at load time (GCC's target_clones) ran XOR and a 4-8-8-1 network no faster.
 *
 * Written once for a type T and stamped out for double (suffix d) and float (suffix f) by
 * FM_SMALL at the end. Row-major, C-contiguous operands.
 */
#ifndef FASTMLP_SMALL_H
#define FASTMLP_SMALL_H

#include <stddef.h>

/* Register blocks: FM_B outputs (or rows) at a time in fixed-size local arrays, which the
 * compiler keeps in registers (one vector), with a scalar loop for the rest. */
#define FM_B 4

#define FM_SMALL(T, S)                                                                          \
/* Z (m, n) = A (m, k) @ W (k, n) + b: z_ij = b_j + a_i0 w_0j + a_i1 w_1j + ..., in that       \
 * order, for FM_B outputs at a time (one output: FM_B rows at a time). */                    \
static void fm_small_forward_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,              \
        const T* restrict A, const T* restrict W, const T* restrict b, T* restrict Z) {        \
    ptrdiff_t i = 0, j, p, r;                                                                   \
    T s[FM_B];                                                                                  \
    if (n == 1) {                                                                               \
        for (; i + FM_B <= m; i += FM_B) {                                                      \
            for (r = 0; r < FM_B; r++) s[r] = b[0];                                             \
            for (p = 0; p < k; p++)                                                             \
                for (r = 0; r < FM_B; r++) s[r] = s[r] + A[(i + r) * k + p] * W[p];             \
            for (r = 0; r < FM_B; r++) Z[i + r] = s[r];                                         \
        }                                                                                       \
        for (; i < m; i++) {                                                                    \
            T t = b[0];                                                                         \
            for (p = 0; p < k; p++) t = t + A[i * k + p] * W[p];                                \
            Z[i] = t;                                                                           \
        }                                                                                       \
        return;                                                                                 \
    }                                                                                           \
    for (i = 0; i < m; i++) {                                                                  \
        const T* restrict a = A + i * k;                                                        \
        T* restrict z = Z + i * n;                                                              \
        for (j = 0; j + FM_B <= n; j += FM_B) {                                                 \
            for (r = 0; r < FM_B; r++) s[r] = b[j + r];                                         \
            for (p = 0; p < k; p++)                                                             \
                for (r = 0; r < FM_B; r++) s[r] = s[r] + a[p] * W[p * n + j + r];               \
            for (r = 0; r < FM_B; r++) z[j + r] = s[r];                                         \
        }                                                                                       \
        for (; j < n; j++) {                                                                    \
            T t = b[j];                                                                         \
            for (p = 0; p < k; p++) t = t + a[p] * W[p * n + j];                                \
            z[j] = t;                                                                           \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* P (m, k) = D (m, n) @ W.T, W (k, n): p_ip = d_i0 w_p0 + d_i1 w_p1 + ..., in that order,     \
 * for FM_B of them at a time. */                                                             \
static void fm_small_back_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,                 \
        const T* restrict D, const T* restrict W, T* restrict P) {                              \
    ptrdiff_t i, j, p, r;                                                                       \
    T s[FM_B];                                                                                  \
    for (i = 0; i < m; i++) {                                                                  \
        const T* restrict d = D + i * n;                                                        \
        T* restrict q = P + i * k;                                                              \
        for (p = 0; p + FM_B <= k; p += FM_B) {                                                 \
            for (r = 0; r < FM_B; r++) s[r] = d[0] * W[(p + r) * n];                            \
            for (j = 1; j < n; j++)                                                             \
                for (r = 0; r < FM_B; r++) s[r] = s[r] + d[j] * W[(p + r) * n + j];             \
            for (r = 0; r < FM_B; r++) q[p + r] = s[r];                                         \
        }                                                                                       \
        for (; p < k; p++) {                                                                    \
            T t = d[0] * W[p * n];                                                              \
            for (j = 1; j < n; j++) t = t + d[j] * W[p * n + j];                                \
            q[p] = t;                                                                           \
        }                                                                                       \
    }                                                                                           \
}                                                                                               \
                                                                                                \
/* W (k, n) = alpha * A.T @ D + beta_w * W and b = alpha * (D summed over rows) + beta_b * b,  \
 * A (m, k), D (m, n): the layer's gradient (alpha 1, betas 0) or its SGD step (alpha -lr,     \
 * beta_b 1, beta_w 1 - lr * l2). Each sum runs over the rows in order, FM_B elements of W at  \
 * a time in registers; W and b are not read where their beta is 0. */                        \
static void fm_small_grad_##S(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, T alpha,        \
        const T* restrict A, const T* restrict D, T beta_w, T beta_b, T* restrict W,          \
        T* restrict b) {                                                                        \
    ptrdiff_t i, j, p, r;                                                                       \
    T s[FM_B];                                                                                  \
    for (p = 0; p < k; p++) {                                                                  \
        for (j = 0; j + FM_B <= n; j += FM_B) {                                                 \
            for (r = 0; r < FM_B; r++) s[r] = 0;                                                \
            for (i = 0; i < m; i++)                                                             \
                for (r = 0; r < FM_B; r++) s[r] = s[r] + A[i * k + p] * D[i * n + j + r];       \
            for (r = 0; r < FM_B; r++)                                                          \
                W[p * n + j + r] = beta_w == 0 ? alpha * s[r] : beta_w * W[p * n + j + r] + alpha * s[r]; \
        }                                                                                       \
        if (n == 1 && p + FM_B <= k) {      /* one output: FM_B rows of W at a time */          \
            for (r = 0; r < FM_B; r++) s[r] = 0;                                                \
            for (i = 0; i < m; i++)                                                             \
                for (r = 0; r < FM_B; r++) s[r] = s[r] + A[i * k + p + r] * D[i];               \
            for (r = 0; r < FM_B; r++)                                                          \
                W[p + r] = beta_w == 0 ? alpha * s[r] : beta_w * W[p + r] + alpha * s[r];       \
            p += FM_B - 1;                                                                      \
            continue;                                                                           \
        }                                                                                       \
        for (; j < n; j++) {                                                                    \
            T t = 0;                                                                            \
            for (i = 0; i < m; i++) t = t + A[i * k + p] * D[i * n + j];                        \
            W[p * n + j] = beta_w == 0 ? alpha * t : beta_w * W[p * n + j] + alpha * t;         \
        }                                                                                       \
    }                                                                                           \
    for (j = 0; j < n; j++) {                                                                   \
        T t = 0;                                                                                \
        for (i = 0; i < m; i++) t = t + D[i * n + j];                                           \
        b[j] = beta_b == 0 ? alpha * t : beta_b * b[j] + alpha * t;                             \
    }                                                                                           \
}

FM_SMALL(double, d)
FM_SMALL(float, f)

#undef FM_SMALL
#endif
