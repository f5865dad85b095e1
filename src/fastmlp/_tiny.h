/* One full-batch SGD step of the seed's XOR network shape, for fastmlp/_core.pyx's
 * `_tiny_loop`: 2 inputs, 4 Leaky ReLU hidden units, one logit with BCE, float64, no L2
 * penalty. The four hidden units sit in the four lanes of one AVX2 register, so each row
 * costs a handful of vector operations where the scalar loop runs one per unit.
 *
 * Every lane does, for its unit, the operations `_tiny_forward`, `_bce1` and
 * `_tiny_backward` do, in the same order and with the same roundings (separate multiplies
 * and adds: the function is built for AVX2 without FMA, so no multiply-add is fused), and
 * sums that run over units (the logit) are added one unit at a time as there. The step is
 * therefore bit for bit the scalar loop's; _core's tests check that on both paths.
 *
 * Built with a `target` attribute so the module stays built for any x86-64; _core calls it
 * only where fm_avx2_available() says the CPU runs AVX2. Elsewhere it is a stub never called.
 */
#ifndef FASTMLP_TINY_H
#define FASTMLP_TINY_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#define FM_TINY_SIMD 1
#define FM_TINY_TARGET __attribute__((target("avx2")))

static int fm_avx2_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}

/* `_bce1` for float64: adds BCE(sigmoid(z), y) to *total (log1p(e) as a factor of *product,
 * a log taken every 64 factors, or a series where e < 1e-4); returns scale * (sigmoid(z) - y). */
FM_TINY_TARGET static inline double fm_bce1_d(double z, double y, double scale, double* total,
                                              double* product, int* factors) {
    double e, g, d;
    if (z >= 0) {
        e = exp(-z);
        *total = *total + (z - z * y);
        g = scale * (1 / (1 + e) - y);
    } else {
        e = exp(z);
        *total = *total + (-z * y);
        g = scale * (e / (1 + e) - y);
    }
    d = e;
    if (d < 1e-4) {
        *total = *total + d * (1 - d * (0.5 - d * (1.0 / 3 - d * 0.25)));
    } else {
        *product = *product * (1 + d);
        *factors += 1;
        if (*factors == 64) {
            *total = *total + log(*product);
            *product = 1;
            *factors = 0;
        }
    }
    return g;
}

/* The step on params (W1 (2, 4), b1 (4,), W2 (4, 1), b2 (1,): _Plan's layout) over the n
 * rows of X (n, 2), Y (n,): first snap[0:17] = params (the epoch's save point), then the
 * loss; where it is finite, the step with rate -alpha. Z, A (n, 4) and G (n,) are scratch.
 * Returns the summed loss (total + log(product), not divided by n). */
FM_TINY_TARGET static double fm_tiny24_step_d(ptrdiff_t n, const double* X, const double* Y,
                                              double* params, double* snap, double slope,
                                              double alpha, double scale, double* Z, double* A,
                                              double* G) {
    double* W1 = params;
    double* b1 = params + 8;
    double* W2 = params + 12;
    double* b2 = params + 16;
    const __m256d w1a = _mm256_loadu_pd(W1), w1b = _mm256_loadu_pd(W1 + 4);
    const __m256d bias = _mm256_loadu_pd(b1), w2 = _mm256_loadu_pd(W2);
    const __m256d vslope = _mm256_set1_pd(slope), valpha = _mm256_set1_pd(alpha);
    const __m256d zero = _mm256_setzero_pd();
    __m256d gw1a = zero, gw1b = zero, gw2 = zero, nb1 = bias;
    double total = 0, product = 1, loss, nb2 = b2[0], out[4];
    int factors = 0;
    ptrdiff_t i;
    memcpy(snap, params, 17 * sizeof(double));
    for (i = 0; i < n; i++) {        /* forward: `_tiny_forward` per row */
        __m256d s = _mm256_add_pd(bias, _mm256_mul_pd(_mm256_set1_pd(X[2 * i]), w1a));
        s = _mm256_add_pd(s, _mm256_mul_pd(_mm256_set1_pd(X[2 * i + 1]), w1b));
        __m256d a = _mm256_blendv_pd(_mm256_mul_pd(vslope, s), s, _mm256_cmp_pd(s, zero, _CMP_GE_OQ));
        _mm256_storeu_pd(Z + 4 * i, s);
        _mm256_storeu_pd(A + 4 * i, a);
        _mm256_storeu_pd(out, _mm256_mul_pd(a, w2));
        G[i] = ((((b2[0] + out[0]) + out[1]) + out[2]) + out[3]);
    }
    for (i = 0; i < n; i++) {        /* loss and gradient sums: `_bce1`, `_tiny_backward` */
        double g = fm_bce1_d(G[i], Y[i], scale, &total, &product, &factors);
        __m256d vg = _mm256_set1_pd(g), z = _mm256_loadu_pd(Z + 4 * i);
        __m256d t = _mm256_add_pd(zero, _mm256_mul_pd(vg, w2));
        nb2 = nb2 + alpha * g;
        t = _mm256_blendv_pd(_mm256_mul_pd(vslope, t), t, _mm256_cmp_pd(z, zero, _CMP_GE_OQ));
        t = _mm256_blendv_pd(t, z, _mm256_cmp_pd(z, z, _CMP_UNORD_Q));   /* NaN z: NaN */
        gw2 = _mm256_add_pd(gw2, _mm256_mul_pd(_mm256_loadu_pd(A + 4 * i), vg));
        nb1 = _mm256_add_pd(nb1, _mm256_mul_pd(valpha, t));
        gw1a = _mm256_add_pd(gw1a, _mm256_mul_pd(_mm256_set1_pd(X[2 * i]), t));
        gw1b = _mm256_add_pd(gw1b, _mm256_mul_pd(_mm256_set1_pd(X[2 * i + 1]), t));
    }
    loss = total + log(product);
    if (!isfinite(loss))
        return loss;                 /* diverged: no step from a non-finite loss */
    _mm256_storeu_pd(W1, _mm256_add_pd(w1a, _mm256_mul_pd(valpha, gw1a)));
    _mm256_storeu_pd(W1 + 4, _mm256_add_pd(w1b, _mm256_mul_pd(valpha, gw1b)));
    _mm256_storeu_pd(W2, _mm256_add_pd(w2, _mm256_mul_pd(valpha, gw2)));
    _mm256_storeu_pd(b1, nb1);
    b2[0] = nb2;
    return loss;
}
#else
#define FM_TINY_SIMD 0
static int fm_avx2_available(void) { return 0; }
/* never called: fm_avx2_available() is 0 */
static double fm_tiny24_step_d(ptrdiff_t n, const double* X, const double* Y, double* params,
                               double* snap, double slope, double alpha, double scale,
                               double* Z, double* A, double* G) { return 0; }
#endif

#endif
