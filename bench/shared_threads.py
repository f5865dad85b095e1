"""fit(threads="shared") against the default threads on the medium job, quiet and with one
core kept busy by another process.

The medium job of the benchmark suite (test_bench_medium: 8192x784, 784-256-256-1, batches
of 128, one epoch, no shuffle, plain SGD) is timed as a warm-started fit from the same
weights (the epoch alone), three ways, interleaved, each call after 0.2 s of idle:

- ``auto``: the default; the compiled loop on one thread, SciPy's OpenBLAS on its threads;
- ``shared``: each batch's rows shared among the loop's own threads, OpenBLAS on one each;
- the GEMM floor: the same products alone through ``scipy.linalg.blas.?gemm`` on
  OpenBLAS's threads (``_jaxjobs.ScipyFloor``).

Then the same rounds again while another process spins on one core (``--busy``, the
default: both; ``--quiet-only`` skips it). Both fits reach the same loss (checked).

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/shared_threads.py [--rounds 9]
"""

import argparse
import multiprocessing
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _jaxjobs as jj  # noqa: E402
import test_bench_medium as b  # noqa: E402
from _common import OtherLoad, fastmlp, make_data, print_header  # noqa: E402

COMMAND = "python bench/shared_threads.py"


def spin(stop):
    """Another process's load: one core busy until `stop` is set."""
    while not stop.is_set():
        for _ in range(100000):
            pass


def variants(dtype):
    X, y = make_data(b.N, b.D, seed=2, dtype=np.dtype(dtype))
    net = fastmlp.MLP(b.SIZES, activation="leaky_relu", output="sigmoid", loss="bce", seed=0, dtype=dtype)
    initial = net.params_.copy()
    floor = jj.ScipyFloor(X, b.SIZES, b.BATCH, np.dtype(dtype))
    losses = {}

    def fit(threads):
        def run():
            net.params_[...] = initial
            net.fit(X, y, epochs=b.EPOCHS, lr=b.LR, batch_size=b.BATCH, shuffle=False, warm_start=True,
                    threads=threads)
            losses[threads] = net.history_["loss"][-1]
        return run

    return {"fastmlp threads='auto'": fit("auto"), "fastmlp threads='shared'": fit("shared"),
            f"GEMM floor (scipy {'s' if dtype == 'float32' else 'd'}gemm)": lambda: floor.run(b.EPOCHS)}, losses


def settled(runs, rounds, settle=0.2):
    """``interleaved``, with `settle` seconds of idle before each timed call: OpenBLAS's
    idle threads spin for a while after its last call, and would share the cores with the
    next row (the shared loop's second thread most of all)."""
    for fn in runs.values():
        fn()
    times = {name: [] for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            time.sleep(settle)
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def table(title, runs, rounds):
    with OtherLoad() as load:
        times = settled(runs, rounds)
    floor = next(name for name in runs if name.startswith("GEMM"))
    print(f"=== {title}")
    print(f"{'row':34s} {'median ms':>10s} {'best ms':>9s} {'med/floor':>10s} {'med/auto':>9s}")
    for name, t in times.items():
        med = np.median(t)
        print(f"{name:34s} {med * 1e3:10.1f} {min(t) * 1e3:9.1f} {med / np.median(times[floor]):10.2f} "
              f"{med / np.median(times[next(iter(runs))]):9.2f}")
    line = load.line()
    if line:
        print(line)
    return times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--quiet-only", action="store_true")
    opts = parser.parse_args()
    print_header(COMMAND)
    print(f"started {time.strftime('%Y-%m-%d %H:%M:%S')} UTC, {opts.rounds} interleaved rounds, medians")
    for dtype in ("float32", "float64"):
        runs, losses = variants(dtype)
        table(f"medium {dtype}, one epoch (warm-started fit), quiet", runs, opts.rounds)
        if not opts.quiet_only:
            stop = multiprocessing.Event()
            busy = multiprocessing.Process(target=spin, args=(stop,), daemon=True)
            busy.start()
            try:
                time.sleep(0.5)
                table(f"medium {dtype}, one epoch, another process spinning on one core", runs,
                      max(3, opts.rounds // 3))
            finally:
                stop.set()
                busy.join()
        rel = abs(losses["shared"] - losses["auto"]) / abs(losses["auto"])
        print(f"    last epoch's loss: auto {losses['auto']:.8f}, shared {losses['shared']:.8f} "
              f"(rel {rel:.1e}): {'OK' if rel < 1e-4 else 'MISMATCH'}")
        print()


if __name__ == "__main__":
    main()
