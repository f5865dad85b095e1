/* Where one training step of the small (tabular) tier goes, in C, without Python or the loops:
 * the 32-64-64-1 float64 job's products (batch 32) through _kernels.h's AVX-512 tiles, the
 * same products through OpenBLAS's dgemm (SciPy's copy, called as fastmlp calls it: row-major
 * by swapping the operands), and the core's FMA peak. Each figure is the best of 7 runs.
 *
 *   gcc -O3 -fno-trapping-math -fno-math-errno -fwrapv -pthread -Wno-unused-function \
 *       -o /tmp/rates bench/small_tier_rates.c -ldl -lm
 *   /tmp/rates "$(python -c 'import glob, os, scipy; print(glob.glob(os.path.join(os.path.dirname(scipy.__file__), "..", "scipy.libs", "libscipy_openblas*.so"))[0])')" [threads]
 *
 * "two threads" splits each batch by rows (16 per thread: forward, backward and partial weight
 * gradients), then takes the SGD step from the sum of the two partials, half the parameters
 * each: two handoffs to a spinning worker per batch (the caller takes a half back when the
 * worker has not started it). A measurement of what a second core could give, not a design:
 * with another process on the second core it runs 2-3x SLOWER than one thread.
 * (The compiler flags are setup.py's; without -fno-trapping-math GCC keeps fm_nt's tile in memory.)
 */
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../src/fastmlp/_kernels.h"

typedef void (*dgemm_t)(const char*, const char*, const int*, const int*, const int*, const double*,
                        const double*, const int*, const double*, const int*, const double*, double*,
                        const int*);

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double* rnd(size_t n) {
    double* p = aligned_alloc(64, ((n * 8 + 63) / 64) * 64);
    for (size_t i = 0; i < n; i++)
        p[i] = (rand() / (double)RAND_MAX - 0.5) * 0.2;
    return p;
}

#define TIME(label, flops, reps, stmt)                                                  \
    do {                                                                                \
        double best = 1e9;                                                              \
        for (int rr = 0; rr < 7; rr++) {                                                \
            double t0 = now();                                                          \
            for (int it = 0; it < (reps); it++) {                                       \
                stmt;                                                                   \
                __asm__ volatile("" ::: "memory");                                      \
            }                                                                           \
            double t = (now() - t0) / (reps);                                           \
            if (t < best)                                                               \
                best = t;                                                               \
        }                                                                               \
        printf("%-46s %9.3f us %7.1f GFLOP/s\n", label, best * 1e6, (flops) / best * 1e-9); \
    } while (0)

/* 24 independent chains of 8-wide FMAs: the core's floating-point peak. */
FM_TARGET static double peak(long n) {
    typedef double v8 __attribute__((vector_size(64)));
    v8 a[24], x = {1, 1, 1, 1, 1, 1, 1, 1}, y = {1e-9, 1e-9, 1e-9, 1e-9, 1e-9, 1e-9, 1e-9, 1e-9};
    for (int i = 0; i < 24; i++)
        a[i] = x * (double)i;
    for (long i = 0; i < n; i++) {
#pragma GCC unroll 24
        for (int j = 0; j < 24; j++)
            a[j] = a[j] * x + y;
    }
    double s = 0;
    for (int i = 0; i < 24; i++)
        s += a[i][0];
    return s;
}

/* The network: parameters in one vector (W1 b1 W2 b2 W3 b3), per-thread work buffers. */
#define NP (32 * 64 + 64 + 64 * 64 + 64 + 64 + 1)
static double *X, *P, *W1, *b1, *W2, *b2, *W3, *b3;
static const double lr = 0.01, slope = 0.01;
typedef struct { double *Z1, *Z2, *z3, *D3, *D2, *G1, *pack, *grad; } Work;
static Work work[2];

/* Forward and backward of rows [t * h, t * h + h) of the batch at X; target (laid out like P)
 * = alpha * gradient + beta * target (alpha = -lr, beta = 1, target = P: the SGD step fused,
 * as fastmlp takes it). */
static void rows(int t, int h, double alpha, double beta, double* target) {
    Work* s = &work[t];
    const double* x = X + t * h * 32;
    double *gW1 = target, *gb1 = gW1 + 32 * 64, *gW2 = gb1 + 64, *gb2 = gW2 + 64 * 64,
           *gW3 = gb2 + 64, *gb3 = gW3 + 64, d3sum = 0;
    fm_forward_d(h, 64, 32, x, W1, b1, s->Z1, s->Z1, slope);
    fm_forward_d(h, 64, 64, s->Z1, W2, b2, s->Z2, s->Z2, slope);
    fm_matvec_d(h, 64, s->Z2, W3, b3[0], s->z3);
    for (int i = 0; i < h; i++) {   /* sigmoid + BCE: dL/dz = (sigmoid(z) - y) / batch */
        s->D3[i] = (1 / (1 + exp(-s->z3[i])) - ((t * h + i) & 1)) / 32;
        d3sum += s->D3[i];
    }
    fm_outer_d(h, 64, 1, s->D3, W3, s->D2, s->Z2, slope);
    fm_nt_d(h, 64, 64, 1, s->D2, W2, 0, s->G1, s->Z1, slope, s->pack);
    fm_tn1_d(h, 64, alpha, s->Z2, s->D3, beta, gW3);
    gb3[0] = beta * gb3[0] + alpha * d3sum;
    fm_tn_d(h, 64, 64, alpha, s->Z1, s->D2, beta, gW2);
    fm_colsum_d(h, 64, alpha, s->D2, beta, gb2);
    fm_tn_d(h, 64, 32, alpha, x, s->G1, beta, gW1);
    fm_colsum_d(h, 64, alpha, s->G1, beta, gb1);
}

/* Two threads: a spinning worker; `phase` 0 = rows, 1 = the step over half of P. */
static _Alignas(64) _Atomic long seq = 0;
static _Alignas(64) _Atomic long done = 0;
static _Alignas(64) _Atomic long claim = 0;
static _Atomic int quit = 0;
static int phase;
static long taken_back = 0;

static void part(int t) {
    if (phase == 0) {
        rows(t, 16, 1, 0, work[t].grad);
    } else {
        size_t lo = t ? NP / 2 : 0, hi = t ? NP : NP / 2;
        for (size_t i = lo; i < hi; i++)
            P[i] -= lr * (work[0].grad[i] + work[1].grad[i]);
    }
}

static void* worker(void* unused) {
    long seen = 0, s, c;
    (void)unused;
    for (;;) {
        while ((s = atomic_load_explicit(&seq, memory_order_acquire)) == seen) {
            if (atomic_load_explicit(&quit, memory_order_relaxed))
                return NULL;
            __builtin_ia32_pause();
        }
        seen = s;
        c = s - 1;
        if (atomic_compare_exchange_strong(&claim, &c, s)) {
            part(1);
            atomic_store_explicit(&done, s, memory_order_release);
        }
    }
}

static void both(int ph) {
    long s, c;
    phase = ph;
    s = atomic_fetch_add_explicit(&seq, 1, memory_order_acq_rel) + 1;
    part(0);
    c = s - 1;
    if (atomic_compare_exchange_strong(&claim, &c, s)) {   /* not started: do it here */
        taken_back++;
        part(1);
        return;
    }
    while (atomic_load_explicit(&done, memory_order_acquire) != s)
        __builtin_ia32_pause();
}

int main(int argc, char** argv) {
    const double one = 1, zero = 0;
    const int m = 32, n64 = 64, k32 = 32, k64 = 64;
    double *Xall = rnd(4096 * 32), *P0, batch_flops = 2.0 * 32 * (32 * 64 * 2 + 64 * 64 * 3 + 64 * 2);
    volatile double sink;
    dgemm_t dgemm = NULL;
    if (argc > 1) {
        void* lib = dlopen(argv[1], RTLD_NOW);
        void (*threads)(int) = lib ? (void (*)(int))dlsym(lib, "scipy_openblas_set_num_threads") : NULL;
        dgemm = lib ? (dgemm_t)dlsym(lib, "scipy_dgemm_") : NULL;
        if (threads)
            threads(argc > 2 ? atoi(argv[2]) : 1);
    }
    X = Xall;
    P = rnd(NP);
    W1 = P, b1 = W1 + 32 * 64, W2 = b1 + 64, b2 = W2 + 64 * 64, W3 = b2 + 64, b3 = W3 + 64;
    P0 = malloc(NP * 8);
    memcpy(P0, P, NP * 8);
    for (int t = 0; t < 2; t++) {
        Work* s = &work[t];
        s->Z1 = rnd(32 * 64), s->Z2 = rnd(32 * 64), s->z3 = rnd(32), s->D3 = rnd(32);
        s->D2 = rnd(32 * 64), s->G1 = rnd(32 * 64), s->pack = rnd(64 * 64), s->grad = rnd(NP);
    }
    Work* s = &work[0];
    {
        volatile long n = 1000000;
        TIME("FMA peak (24 chains of 8-wide FMAs)", 24.0 * 16 * n, 3, sink = peak(n));
    }
    TIME("fm_forward_d 32x64x32 (+bias, leaky)", 2.0 * 32 * 64 * 32, 20000,
         fm_forward_d(32, 64, 32, X, W1, b1, s->Z1, s->Z1, slope));
    TIME("fm_forward_d 32x64x64 (+bias, leaky)", 2.0 * 32 * 64 * 64, 20000,
         fm_forward_d(32, 64, 64, s->Z1, W2, b2, s->Z2, s->Z2, slope));
    TIME("fm_matvec_d 32x64 (one output)", 2.0 * 32 * 64, 20000, fm_matvec_d(32, 64, s->Z2, W3, 0.1, s->z3));
    TIME("fm_outer_d 32x64 (+leaky')", 2.0 * 32 * 64, 20000, fm_outer_d(32, 64, 1, s->D3, W3, s->D2, s->Z2, slope));
    TIME("fm_nt_d 32x64x64 dA (+leaky')", 2.0 * 32 * 64 * 64, 20000,
         fm_nt_d(32, 64, 64, 1, s->D2, W2, 0, s->G1, s->Z1, slope, s->pack));
    TIME("fm_tn_d dW2 64x64 over 32 rows (+SGD)", 2.0 * 32 * 64 * 64, 20000,
         fm_tn_d(32, 64, 64, -lr, s->Z1, s->D2, 1, W2));
    TIME("fm_tn_d dW1 32x64 over 32 rows (+SGD)", 2.0 * 32 * 64 * 32, 20000,
         fm_tn_d(32, 64, 32, -lr, X, s->G1, 1, W1));
    if (dgemm) {
        TIME("OpenBLAS dgemm 32x64x32 (forward)", 2.0 * 32 * 64 * 32, 20000,
             dgemm("N", "N", &n64, &m, &k32, &one, W1, &n64, X, &k32, &zero, s->Z1, &n64));
        TIME("OpenBLAS dgemm 32x64x64 (forward)", 2.0 * 32 * 64 * 64, 20000,
             dgemm("N", "N", &n64, &m, &k64, &one, W2, &n64, s->Z1, &k64, &zero, s->Z2, &n64));
        TIME("OpenBLAS dgemm 32x64x64 (dA = D W^T)", 2.0 * 32 * 64 * 64, 20000,
             dgemm("T", "N", &k64, &m, &n64, &one, W2, &n64, s->D2, &n64, &zero, s->G1, &k64));
        TIME("OpenBLAS dgemm 64x64 over 32 rows (dW)", 2.0 * 32 * 64 * 64, 20000,
             dgemm("N", "T", &n64, &k64, &m, &one, s->D2, &n64, s->Z1, &k64, &one, W2, &n64));
        int N = 1024;
        double *A = rnd(N * N), *B = rnd(N * N), *C = rnd(N * N);
        TIME("OpenBLAS dgemm 1024^3", 2.0 * N * N * N, 3,
             dgemm("N", "N", &N, &N, &N, &one, A, &N, B, &N, &zero, C, &N));
    }
    if (sink == 0)
        printf("(the peak loop's sum is 0)\n");
    for (int round = 0; round < 3; round++) {
        pthread_t th;
        memcpy(P, P0, NP * 8);
        TIME("batch, one thread", batch_flops, 2000, (X = Xall + (it % 128) * 32 * 32, rows(0, 32, -lr, 1, P)));
        memcpy(P, P0, NP * 8);
        pthread_create(&th, NULL, worker, NULL);
        TIME("batch, two threads (rows split, summed step)", batch_flops, 2000,
             (X = Xall + (it % 128) * 32 * 32, both(0), both(1)));
        atomic_store(&quit, 1);
        pthread_join(th, NULL);
        printf("    (halves taken back by the caller: %ld of %d)\n", taken_back, 2 * 7 * 2000);
        atomic_store(&quit, 0), atomic_store(&seq, 0), atomic_store(&done, 0), atomic_store(&claim, 0);
        taken_back = 0;
    }
    return 0;
}
