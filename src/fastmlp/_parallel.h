/* Threads for the compiled training loop (_core.pyx, `_epoch_par`).
 *
 * fm_parallel(n, task, ctx) runs task(ctx, 0) on the calling thread and task(ctx, t) for
 * t = 1..n-1 on threads of its own, and returns once all have finished. Between barriers
 * the threads take chunks of a phase's work from a shared counter (fm_next), so that a
 * thread whose core runs slower takes fewer. The threads meet at an fm_barrier: each
 * batch of a training run crosses a few of them (after its losses, after each layer's
 * weight gradients, at its end), a few hundred per epoch. A waiting thread yields its core
 * between polls (after fm_barrier_spins() plain polls, 0 by default): on the shared
 * virtual machine this was measured on, spinning threads held up the very threads they
 * waited for.
 *
 * Only POSIX threads are used; elsewhere (Windows) fm_parallel returns -1 and the caller
 * runs the single-threaded loop. Creating threads can fail (limits, memory): then the
 * ones already started are told to stop before doing anything, and fm_parallel returns -1
 * as well, so a task never waits at a barrier for a thread that does not exist.
 */
#ifndef FASTMLP_PARALLEL_H
#define FASTMLP_PARALLEL_H

#define FM_MAX_THREADS 8

typedef void (*fm_task)(void *ctx, int thread);

#if defined(_WIN32) || !defined(__GNUC__)

typedef struct { int n; } fm_barrier;
static inline int fm_barrier_spins(int spins) { (void)spins; return 0; }
static inline void fm_barrier_init(fm_barrier *b, int n) { b->n = n; }
static inline void fm_barrier_wait(fm_barrier *b) { (void)b; }
static inline long fm_next(long *counter) { return (*counter)++; }
static inline int fm_parallel(int n, fm_task task, void *ctx)
{
    (void)n; (void)task; (void)ctx;
    return -1;
}

#else

#include <pthread.h>
#include <sched.h>

/* Polls of the barrier's generation before a waiting thread starts yielding its core
 * (fm_barrier_spins): a plain load each, without the pause instruction, whose loops a
 * hypervisor may take for a spinning lock and deschedule the virtual CPU for. */
static int fm_spins = 0;

static inline int fm_barrier_spins(int spins)
{
    if (spins >= 0)
        fm_spins = spins;
    return fm_spins;
}

/* A reusable counting barrier: the last of n arrivals resets the count and moves the
 * generation on, which releases the others. The acquire/release pairs order every write
 * made before the barrier (by any thread) before every read after it. */
typedef struct {
    int n;
    int count;
    int generation;
} fm_barrier;

static inline void fm_barrier_init(fm_barrier *b, int n)
{
    b->n = n;
    b->count = 0;
    b->generation = 0;
}

static inline void fm_barrier_wait(fm_barrier *b)
{
    int gen = __atomic_load_n(&b->generation, __ATOMIC_ACQUIRE);
    long spins = 0;
    if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->n) {
        __atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
        __atomic_add_fetch(&b->generation, 1, __ATOMIC_RELEASE);
        return;
    }
    while (__atomic_load_n(&b->generation, __ATOMIC_ACQUIRE) == gen) {
        if (++spins > fm_spins)
            sched_yield();
    }
}

/* The next chunk of a phase's work: a shared counter's value before this thread's +1.
 * Relaxed: the data the chunks read and write is ordered by the barriers around the phase. */
static inline long fm_next(long *counter)
{
    return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

typedef struct {
    fm_task task;
    void *ctx;
    int thread;
    int *go;          /* 1: run the task; -1: thread creation failed, return at once */
} fm_thread_arg;

static void *fm_thread_main(void *p)
{
    fm_thread_arg *a = (fm_thread_arg *)p;
    int go;
    while ((go = __atomic_load_n(a->go, __ATOMIC_ACQUIRE)) == 0)
        sched_yield();
    if (go > 0)
        a->task(a->ctx, a->thread);
    return NULL;
}

static inline int fm_parallel(int n, fm_task task, void *ctx)
{
    pthread_t threads[FM_MAX_THREADS];
    fm_thread_arg args[FM_MAX_THREADS];
    int go = 0, started = 0, t;
    if (n < 1 || n > FM_MAX_THREADS)
        return -1;
    for (t = 1; t < n; t++) {
        args[t].task = task;
        args[t].ctx = ctx;
        args[t].thread = t;
        args[t].go = &go;
        if (pthread_create(&threads[t], NULL, fm_thread_main, &args[t]) != 0)
            break;
        started++;
    }
    __atomic_store_n(&go, started == n - 1 ? 1 : -1, __ATOMIC_RELEASE);
    if (started == n - 1)
        task(ctx, 0);
    for (t = 1; t <= started; t++)
        pthread_join(threads[t], NULL);
    return started == n - 1 ? 0 : -1;
}

#endif
#endif
