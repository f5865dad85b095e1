"""Does fastmlp's compiled training loop really run without the GIL?

Fits two independent models one after the other, then the same two fits at once in two
``threading.Thread``s, and prints both wall times and their ratio. With the GIL released
for the whole loop, two threads on two cores take about as long as one fit (ratio near 2);
a loop that held the GIL would give a ratio near 1.

BLAS itself is multi-threaded (OpenBLAS uses every core by default), which would let one
fit use both cores and hide the effect, so the comparison runs under
``threadpoolctl.threadpool_limits(1)``: each fit gets one BLAS thread, i.e. one core.
The NumPy backend runs the same comparison for contrast (NumPy releases the GIL inside
each matmul, but the Python between them holds it), and a control row times plain
``np.matmul`` calls from two threads: the parallel speed-up this machine gives right now.

Run: ``python bench/gil_threads.py`` (``--backends cython`` for the compiled one only).
"""

import argparse
import os
import sys
import threading
import time

import numpy as np

from _common import describe_pool, fastmlp, fastmlp_line, make_data, openblas_line

SIZES = [784, 256, 256, 1]
N = 4096
BATCH = 128
EPOCHS = 2
LR = 0.01
DTYPE = "float64"


def make_jobs(backend):
    """Two independent (model, X, y) fits of the same size, with different data and seeds."""
    jobs = []
    for seed in (0, 1):
        X, y = make_data(N, SIZES[0], seed=100 + seed, dtype=DTYPE)
        net = fastmlp.MLP(SIZES, seed=seed, dtype=DTYPE, backend=backend)
        jobs.append((net, X, y))
    return jobs


def fit(job):
    net, X, y = job
    net.fit(X, y, epochs=EPOCHS, lr=LR, batch_size=BATCH, shuffle=False)


def sequential(tasks):
    """Wall time of the zero-argument callables `tasks`, run one after the other."""
    start = time.perf_counter()
    for task in tasks:
        task()
    return time.perf_counter() - start


def threaded(tasks):
    """Wall time of the same callables, each in its own thread."""
    threads = [threading.Thread(target=task) for task in tasks]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def compare(backend, repeats):
    jobs = make_jobs(backend)
    fit(jobs[0])  # warm up (first BLAS calls, page faults in the data)
    tasks = [lambda job=job: fit(job) for job in jobs]
    seq, par = [], []
    for _ in range(repeats):
        seq.append(sequential(tasks))
        params_seq = [job[0].params_.copy() for job in jobs]
        par.append(threaded(tasks))
        # the threaded fits computed exactly what the sequential ones did
        for job, p in zip(jobs, params_seq):
            assert np.array_equal(job[0].params_, p), "threaded fit differs from the sequential one"
            assert np.isfinite(job[0].history_["loss"]).all()
    return min(seq), min(par)


def matmul_control(repeats):
    """The same comparison for plain np.matmul calls, which run without the GIL: what two
    truly parallel threads achieve on this machine right now (other load included)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((512, 512)), rng.standard_normal((512, 512))
    out = [np.empty((512, 512)) for _ in range(2)]
    jobs = [lambda o=o: [np.matmul(a, b, out=o) for _ in range(40)] for o in out]
    jobs[0]()
    return min(sequential(jobs) for _ in range(repeats)), min(threaded(jobs) for _ in range(repeats))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=["cython", "numpy"], choices=["cython", "numpy"])
    parser.add_argument("--repeats", type=int, default=3, help="best of this many (default 3)")
    args = parser.parse_args(argv)

    try:
        import threadpoolctl
    except ImportError:
        sys.exit("gil_threads.py needs threadpoolctl: pip install threadpoolctl")
    import fastmlp._core  # noqa: F401  (loads scipy's BLAS, so threadpool_limits reaches it)

    print(fastmlp_line())
    print(f"os.cpu_count() = {os.cpu_count()}")
    print(openblas_line("python bench/gil_threads.py"))
    print(
        f"job: two independent fits, each {'-'.join(map(str, SIZES))} on {N}x{SIZES[0]} {DTYPE}, "
        f"batch {BATCH}, {EPOCHS} epochs, no shuffle; best of {args.repeats}"
    )
    with threadpoolctl.threadpool_limits(1):
        pools = threadpoolctl.threadpool_info()
        print("BLAS limited to 1 thread per call (threadpoolctl.threadpool_limits(1)), so each fit uses one core:")
        for pool in pools:
            print("  " + describe_pool(pool))
        print()
        print(f"{'fastmlp backend':<20} {'sequential (s)':>15} {'2 threads (s)':>14} {'seq / threaded':>15}")
        rows = [(backend, lambda b=backend: compare(b, args.repeats)) for backend in args.backends]
        rows.append(("np.matmul (control)", lambda: matmul_control(args.repeats)))
        for label, run in rows:
            seq, par = run()
            print(f"{label:<20} {seq:>15.3f} {par:>14.3f} {seq / par:>15.2f}")
    print()
    print("seq / threaded near 2: the two jobs ran in parallel (the GIL was free); near 1: serialised.")
    print("The control row (40 products of 512x512 float64 matrices per thread, np.matmul, which")
    print("releases the GIL) is the ceiling here: plain BLAS calls from two threads. If it is well")
    print("below 2 as well, something else is using the cores (rerun on a quiet machine).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
