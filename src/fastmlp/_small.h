/* The products of a small layer (every product of the batch under BLAS_MIN_WORK
 * multiply-adds: _core.pyx) as plain loops, for fastmlp/_core.pyx.
 *
 * At these sizes (XOR's 2-4-1 on four rows: a few dozen multiply-adds per product) the
 * arithmetic is the least of the cost; what counts is doing it in one pass per product with
 * nothing around it: each product in one call, four sums at a time held in registers
 * (`restrict` tells the compiler the operands do not overlap), every element's terms added
 * in the order of the inner dimension; one-output layers (n = 1) have loops of their own.
 * Built for the baseline instruction set: copies for AVX2 chosen at load time (GCC's
 * target_clones) ran XOR and a 4-8-8-1 network no faster.
 *
 * Written once for a type T: the file includes itself once for double (suffix d) and once
 * for float (suffix f). Row-major, C-contiguous operands.
 */
#ifndef FM_T      /* the file itself: what it defines once, then the kernels for each type */
#ifndef FASTMLP_SMALL_H
#define FASTMLP_SMALL_H

#include <stddef.h>

/* alpha * s + beta * w, w not read where beta is 0 (alpha in the caller's scope). */
#define FM_STEP(w, s, beta) ((beta) == 0 ? alpha * (s) : (beta) * (w) + alpha * (s))

#define FM_T double
#define FM_NAME(f) f##_d
#include "_small.h"
#undef FM_T
#undef FM_NAME
#define FM_T float
#define FM_NAME(f) f##_f
#include "_small.h"
#undef FM_T
#undef FM_NAME

#endif
#else            /* the kernels, for FM_T */

/* Z (m, n) = A (m, k) @ W (k, n) + b: z_ij = b_j + a_i0 w_0j + a_i1 w_1j + ..., in that
 * order, four outputs of a row at a time. */
static void FM_NAME(fm_small_forward)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const FM_T* restrict A,
        const FM_T* restrict W, const FM_T* restrict b, FM_T* restrict Z) {
    ptrdiff_t i, j, p;
    if (n == 1) {
        for (i = 0; i < m; i++) {
            const FM_T* a = A + i * k;
            FM_T s = b[0];
            for (p = 0; p < k; p++) s = s + a[p] * W[p];
            Z[i] = s;
        }
        return;
    }
    for (i = 0; i < m; i++) {
        const FM_T* a = A + i * k;
        FM_T* z = Z + i * n;
        for (j = 0; j + 4 <= n; j += 4) {
            const FM_T* w = W + j;
            FM_T s0 = b[j], s1 = b[j + 1], s2 = b[j + 2], s3 = b[j + 3];
            for (p = 0; p < k; p++, w += n) {
                const FM_T ap = a[p];
                s0 = s0 + ap * w[0]; s1 = s1 + ap * w[1]; s2 = s2 + ap * w[2]; s3 = s3 + ap * w[3];
            }
            z[j] = s0; z[j + 1] = s1; z[j + 2] = s2; z[j + 3] = s3;
        }
        for (; j < n; j++) {
            FM_T s = b[j];
            for (p = 0; p < k; p++) s = s + a[p] * W[p * n + j];
            z[j] = s;
        }
    }
}
/* P (m, k) = D (m, n) @ W.T, W (k, n): p_ip = d_i0 w_p0 + d_i1 w_p1 + ..., in that order. */
static void FM_NAME(fm_small_back)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const FM_T* restrict D,
        const FM_T* restrict W, FM_T* restrict P) {
    ptrdiff_t i, j, p;
    if (n == 1) {
        for (i = 0; i < m; i++) {
            const FM_T d0 = D[i];
            FM_T* q = P + i * k;
            for (p = 0; p < k; p++) q[p] = d0 * W[p];
        }
        return;
    }
    for (i = 0; i < m; i++) {
        const FM_T* d = D + i * n;
        FM_T* q = P + i * k;
        for (p = 0; p < k; p++) {
            const FM_T* w = W + p * n;
            FM_T s = d[0] * w[0];
            for (j = 1; j < n; j++) s = s + d[j] * w[j];
            q[p] = s;
        }
    }
}
/* W (k, n) = alpha * A.T @ D + beta_w * W and b = alpha * (D summed over rows) + beta_b * b,
 * A (m, k), D (m, n): the layer's gradient (alpha 1, betas 0) or its SGD step (alpha -lr,
 * beta_b 1, beta_w 1 - lr * l2). Each sum runs over the rows in order, four elements of W
 * at a time. */
static void FM_NAME(fm_small_grad)(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, FM_T alpha,
        const FM_T* restrict A, const FM_T* restrict D, FM_T beta_w, FM_T beta_b,
        FM_T* restrict W, FM_T* restrict b) {
    ptrdiff_t i, j, p;
    if (n == 1) {
        for (p = 0; p + 4 <= k; p += 4) {
            FM_T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            const FM_T* a = A + p;
            for (i = 0; i < m; i++, a += k) {
                const FM_T di = D[i];
                s0 = s0 + a[0] * di; s1 = s1 + a[1] * di; s2 = s2 + a[2] * di; s3 = s3 + a[3] * di;
            }
            W[p] = FM_STEP(W[p], s0, beta_w);
            W[p + 1] = FM_STEP(W[p + 1], s1, beta_w);
            W[p + 2] = FM_STEP(W[p + 2], s2, beta_w);
            W[p + 3] = FM_STEP(W[p + 3], s3, beta_w);
        }
        for (; p < k; p++) {
            FM_T s = 0;
            for (i = 0; i < m; i++) s = s + A[i * k + p] * D[i];
            W[p] = FM_STEP(W[p], s, beta_w);
        }
    } else {
        for (p = 0; p < k; p++) {
            FM_T* w = W + p * n;
            for (j = 0; j + 4 <= n; j += 4) {
                FM_T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
                const FM_T* d = D + j;
                for (i = 0; i < m; i++, d += n) {
                    const FM_T ai = A[i * k + p];
                    s0 = s0 + ai * d[0];
                    s1 = s1 + ai * d[1];
                    s2 = s2 + ai * d[2];
                    s3 = s3 + ai * d[3];
                }
                w[j] = FM_STEP(w[j], s0, beta_w);
                w[j + 1] = FM_STEP(w[j + 1], s1, beta_w);
                w[j + 2] = FM_STEP(w[j + 2], s2, beta_w);
                w[j + 3] = FM_STEP(w[j + 3], s3, beta_w);
            }
            for (; j < n; j++) {
                FM_T s = 0;
                for (i = 0; i < m; i++) s = s + A[i * k + p] * D[i * n + j];
                w[j] = FM_STEP(w[j], s, beta_w);
            }
        }
    }
    for (j = 0; j < n; j++) {
        FM_T s = 0;
        for (i = 0; i < m; i++) s = s + D[i * n + j];
        b[j] = FM_STEP(b[j], s, beta_b);
    }
}

#endif
