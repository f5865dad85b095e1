/* fastmlp's own threads for the large products of a training run (fastmlp/_core.pyx).
 *
 * A large product is cut into a fixed number of blocks (`fm_split`, from the shapes and
 * the team size alone), each a one-thread BLAS call; fm_team_run(n, fn, ctx) runs
 * fn(ctx, 0..n-1) with the calling thread and up to `fm_workers` worker threads taking
 * blocks from one counter. The calls are the same whoever runs them, so a product's bits
 * do not depend on whether a worker took a block: the workers can be left out at any time. They are left
 * out when, over the last FM_WINDOW products they shared, the caller spent over a third of
 * the time waiting for the workers' blocks, or a quarter of the products had blocks of
 * uneven times on the caller and the workers (one over 1.5 times the other, plus 20 us): a
 * core was taken by another process, and either a worker holds the caller up (a worker
 * descheduled inside its block: OpenBLAS's own threads wait whole scheduler slices there
 * too) or the caller shares its core while the workers' polling keeps the free core from
 * it. Then the next `fm_team.off` products run on the caller alone, and the workers,
 * idle, go to sleep (the system can move the caller to the free core); that number doubles
 * each time the next window is slow again (16 up to 8192 products), and falls back to 16
 * after a good one. (One slow product is no sign: a worker waking from its sleep, an
 * interrupt.)
 *
 * The worker polls for work for FM_IDLE_NS after its last block, then sleeps on a
 * condition variable until a product wakes it. A second caller (another fit in another
 * thread) finds the team held and runs its blocks alone. The worker blocks every signal and
 * never touches Python. POSIX threads only (elsewhere fm_team_available() is 0 and
 * fastmlp._blas leaves the products whole, on the BLAS's own threads).
 */
#ifndef FASTMLP_TEAM_H
#define FASTMLP_TEAM_H

typedef void (*fm_block_fn)(void *ctx, int block);

#if defined(__GNUC__) && !defined(_WIN32)
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FM_RELAX() _mm_pause()
#else
#define FM_RELAX() ((void)0)
#endif

#define FM_IDLE_NS 200000        /* the worker's polling before it sleeps */
#define FM_WINDOW 32
#define FM_OFF_FIRST 16
#define FM_OFF_MOST 8192

#define FM_MAX_WORKERS 7
static __thread int fm_split = 1;   /* blocks per large product in this thread's products */
static __thread int fm_workers = 0; /* workers this thread's products may use */

static struct {
    pthread_mutex_t mutex;
    pthread_cond_t wake;
    int started, failed, sleeping;  /* workers running, sleeping; one could not start */
    int held;                    /* a caller has the team */
    int allowed;                 /* workers (by number) that may take the job's blocks */
    uint64_t ticket;             /* (job << 32) | next block to take */
    int done;                    /* blocks of the job finished */
    long long worker_ns;         /* time the workers' blocks of the job took */
    int worker_blocks;
    fm_block_fn fn;
    void *ctx;
    int blocks;
    long off, backoff;           /* see the comment at the top */
    int window, uneven;          /* products in this window of FM_WINDOW, and uneven ones */
    long long window_ns, wait_ns;  /* their time, and the time the caller waited for workers */
    long late_events;            /* (counted, for the tests) */
    int forks_handled;
} fm_team = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static int fm_force_late = 0;    /* tests: every product counts as late */

static inline long long fm_now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The next block of job `job`, or -1 once it has none left (or is no longer current). */
static inline int fm_claim(uint64_t job)
{
    uint64_t t = __atomic_load_n(&fm_team.ticket, __ATOMIC_ACQUIRE);
    for (;;) {
        if ((t >> 32) != job || (int)(t & 0xffffffffu) >= fm_team.blocks)
            return -1;
        if (__atomic_compare_exchange_n(&fm_team.ticket, &t, t + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return (int)(t & 0xffffffffu);
    }
}

/* Runs blocks of `job` while it has some; returns how many, and adds their time to *ns
 * (a worker: to the job's worker_ns, before each block is counted done). */
static int fm_take_blocks(uint64_t job, long long *ns)
{
    int b, taken = 0;
    long long t0, dt;
    while ((b = fm_claim(job)) >= 0) {
        t0 = fm_now_ns();
        fm_team.fn(fm_team.ctx, b);      /* (the job's: its caller waits for this block) */
        dt = fm_now_ns() - t0;
        taken++;
        if (ns != NULL) {
            *ns += dt;
        } else {
            __atomic_add_fetch(&fm_team.worker_ns, dt, __ATOMIC_RELAXED);
            __atomic_add_fetch(&fm_team.worker_blocks, 1, __ATOMIC_RELAXED);
        }
        __atomic_add_fetch(&fm_team.done, 1, __ATOMIC_RELEASE);
    }
    return taken;
}

static void *fm_worker(void *arg)
{
    const int number = (int)(intptr_t)arg;
    uint64_t seen = 0, job;
    long long idle_since = fm_now_ns();
    long polls = 0;
    for (;;) {
        job = __atomic_load_n(&fm_team.ticket, __ATOMIC_ACQUIRE) >> 32;
        if (job != seen) {
            seen = job;
            if (number < __atomic_load_n(&fm_team.allowed, __ATOMIC_ACQUIRE))
                fm_take_blocks(job, NULL);
            idle_since = fm_now_ns();
            continue;
        }
        FM_RELAX();
        if (++polls % 256 == 0 && fm_now_ns() - idle_since > FM_IDLE_NS) {
            pthread_mutex_lock(&fm_team.mutex);
            fm_team.sleeping++;
            while (__atomic_load_n(&fm_team.ticket, __ATOMIC_ACQUIRE) >> 32 == seen)
                pthread_cond_wait(&fm_team.wake, &fm_team.mutex);
            fm_team.sleeping--;
            pthread_mutex_unlock(&fm_team.mutex);
            idle_since = fm_now_ns();
        }
    }
    return NULL;
}

static void fm_team_after_fork(void)
{
    /* the child has no worker: start afresh (no product runs at a fork: see _fork.py) */
    pthread_mutex_init(&fm_team.mutex, NULL);
    pthread_cond_init(&fm_team.wake, NULL);
    fm_team.started = fm_team.sleeping = fm_team.held = 0;
}

/* Workers started up to `workers` (at most FM_MAX_WORKERS); how many run. Where one
 * cannot be started (limits, memory), no more are tried and the ones running serve. */
static int fm_team_start(int workers)
{
    pthread_t thread;
    pthread_attr_t attr;
    sigset_t all, old;
    if (workers > FM_MAX_WORKERS)
        workers = FM_MAX_WORKERS;
    if (fm_team.started >= workers || fm_team.failed || pthread_attr_init(&attr) != 0)
        return fm_team.started < workers ? fm_team.started : workers;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);        /* workers inherit: no signals */
    while (fm_team.started < workers) {
        if (pthread_create(&thread, &attr, fm_worker, (void *)(intptr_t)fm_team.started) != 0) {
            fm_team.failed = 1;
            break;
        }
        if (fm_team.started++ == 0 && !fm_team.forks_handled) {
            pthread_atfork(NULL, NULL, fm_team_after_fork);
            fm_team.forks_handled = 1;
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return fm_team.started;
}

static long fm_team_late(void) { return fm_team.late_events; }
static int fm_team_available(void) { return 1; }

/* Whether blocks of a product took uneven times on the caller (a) and the workers (b): one
 * over 1.5 times the other, plus 20 us. */
static inline int fm_uneven(long long a, long long b)
{
    long long lo = a < b ? a : b, hi = a < b ? b : a;
    return 2 * hi > 3 * lo + 40000;
}

/* fn(ctx, b) for b = 0..blocks-1, with the worker when it is on, each block once. */
static void fm_team_run(int blocks, fm_block_fn fn, void *ctx)
{
    long long own_ns = 0, t0, t1, t2;
    uint64_t job;
    int b, spins = 0, workers, own, theirs;
    if (blocks < 2 || __atomic_exchange_n(&fm_team.held, 1, __ATOMIC_ACQUIRE)) {
        for (b = 0; b < blocks; b++)
            fn(ctx, b);                  /* the team is another caller's: alone */
        return;
    }
    if (fm_team.off > 0 || fm_workers < 1 || (workers = fm_team_start(fm_workers)) < 1) {
        if (fm_team.off > 0)
            fm_team.off--;
        for (b = 0; b < blocks; b++)
            fn(ctx, b);
        __atomic_store_n(&fm_team.held, 0, __ATOMIC_RELEASE);
        return;
    }
    fm_team.fn = fn;
    fm_team.ctx = ctx;
    fm_team.blocks = blocks;
    fm_team.done = fm_team.worker_blocks = 0;
    fm_team.worker_ns = 0;
    __atomic_store_n(&fm_team.allowed, workers, __ATOMIC_RELEASE);
    job = (__atomic_load_n(&fm_team.ticket, __ATOMIC_RELAXED) >> 32) + 1;
    __atomic_store_n(&fm_team.ticket, job << 32, __ATOMIC_RELEASE);     /* published */
    if (__atomic_load_n(&fm_team.sleeping, __ATOMIC_ACQUIRE)) {
        pthread_mutex_lock(&fm_team.mutex);
        pthread_cond_broadcast(&fm_team.wake);
        pthread_mutex_unlock(&fm_team.mutex);
    }
    t0 = fm_now_ns();
    own = fm_take_blocks(job, &own_ns);
    t1 = fm_now_ns();
    while (__atomic_load_n(&fm_team.done, __ATOMIC_ACQUIRE) < blocks) {
        if (++spins < 4096)
            FM_RELAX();
        else
            sched_yield();
    }
    t2 = fm_now_ns();
    fm_team.window_ns += t2 - t0;
    fm_team.wait_ns += t2 - t1;
    theirs = __atomic_load_n(&fm_team.worker_blocks, __ATOMIC_ACQUIRE);
    if (fm_force_late || (theirs > 0 && own > 0 && fm_uneven(own_ns / own, fm_team.worker_ns / theirs)))
        fm_team.uneven++;
    if (++fm_team.window == FM_WINDOW) {
        if (fm_team.uneven >= FM_WINDOW / 4               /* the workers slow this run down */
                || 3 * fm_team.wait_ns > fm_team.window_ns) {
            fm_team.late_events++;
            fm_team.backoff = fm_team.backoff ? fm_team.backoff * 2 : FM_OFF_FIRST;
            if (fm_team.backoff > FM_OFF_MOST)
                fm_team.backoff = FM_OFF_MOST;
            fm_team.off = fm_team.backoff;
        } else {
            fm_team.backoff = 0;
        }
        fm_team.window = fm_team.uneven = 0;
        fm_team.window_ns = fm_team.wait_ns = 0;
    }
    __atomic_store_n(&fm_team.held, 0, __ATOMIC_RELEASE);
}

#else

static int fm_split = 1;
static int fm_workers = 0;
static int fm_force_late = 0;
static long fm_team_late(void) { return 0; }
static int fm_team_available(void) { return 0; }
static void fm_team_run(int blocks, fm_block_fn fn, void *ctx)
{
    int b;
    for (b = 0; b < blocks; b++)
        fn(ctx, b);
}

#endif

#endif
