"""What fit(callback=..., progress=...) costs: the same fits with no callback, a no-op
callback, and a progress bar (written to /dev/null), timed side by side.

Without a callback the compiled backend runs all the epochs of a fit inside one call
without the GIL; a callback makes it come back to Python after every epoch, so the cost
shows most on fits of many short epochs (XOR: 5000 epochs of 4 rows) and fades on epochs
with real work (tabular: 4096 x 32 rows in batches of 32).

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/callback_cost.py``
(``--repeats N`` rounds, default 15; best and median of each are printed).
"""

import argparse
import contextlib
import os
import statistics
import sys

from _common import OtherLoad, fastmlp, interleaved, make_data, print_header, xor_data

JOBS = {
    # name: (layer sizes, data, fit options)
    "XOR 2-4-1, 5000 full-batch epochs": ([2, 4, 1], xor_data, dict(epochs=5000, lr=0.1, batch_size=None)),
    "tabular 32-64-64-1, 10 epochs of batch 32": (
        [32, 64, 64, 1], lambda: make_data(4096, 32), dict(epochs=10, lr=0.01, batch_size=32)),
}


def noop(epoch, logs):
    return None


def variants(backend, sizes, X, y, options):
    def fit(**extra):
        def run():
            fastmlp.MLP(sizes, seed=0, backend=backend).fit(X, y, shuffle=False, **options, **extra)
        return run

    def with_bar():
        with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
            fit(progress=True)()

    return {"no callback": fit(), "no-op callback": fit(callback=noop), "progress bar": with_bar}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--backends", nargs="+", default=list(fastmlp.available_backends()))
    args = parser.parse_args()
    print_header("python bench/callback_cost.py")
    for backend in args.backends:
        for job, (sizes, data, options) in JOBS.items():
            X, y = data()
            with OtherLoad() as load:
                times = interleaved(variants(backend, sizes, X, y, options), args.repeats)
            base = statistics.median(times["no callback"])
            print(f"\n{backend}: {job}")
            print(f"  {'variant':<16} {'best ms':>9} {'median ms':>10} {'median / none':>14}")
            for name, seconds in times.items():
                median = statistics.median(seconds)
                print(f"  {name:<16} {min(seconds) * 1e3:9.3f} {median * 1e3:10.3f} {median / base:13.2f}x")
            line = load.line()
            if line:
                print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
