"""Serving throughput: onnxruntime running ``fastmlp.to_onnx``'s graph vs fastmlp's own
``predict_proba``, on the medium network (784-256-256-1, weights as initialised: inference
cost does not depend on training).

For each dtype (float32, float64) and batch size (a large batch of 8192 rows, a small one of
32), every variant is timed as the best of several rounds (in a block of its own), each
round enough calls to last about 0.1 s, and printed as rows per second, with the ratio
onnxruntime / fastmlp (compiled backend): above 1, onnxruntime serves faster. The outputs
are checked to agree first.

Both run with their libraries' default threads (OpenBLAS: every core; onnxruntime: one
intra-op thread per physical core) unless ``--threads N`` caps both at N.

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/onnx_serving.py``
(``--rounds``, ``--threads``, ``--batches 8192 32``).
"""

import argparse
import contextlib
import time

import numpy as np
from _common import (
    cpu_busy_line,
    cpu_model,
    describe_pool,
    fastmlp,
    fastmlp_line,
    openblas_line,
)

SIZES = [784, 256, 256, 1]
COMMAND = "python bench/onnx_serving.py"
ROUND_SECONDS = 0.1
PAUSE_SECONDS = 1.0              # lets the previous variant's worker threads stop spinning


def calls_per_round(call):
    """How many calls of `call` last about ROUND_SECONDS (after a warm-up call)."""
    call()                                            # warm-up (allocations, thread pools)
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < ROUND_SECONDS / 4:
        call()
        calls += 1
    return max(1, calls * 4)


def best_rates(calls, rows, rounds):
    """{name: rows per second} of each zero-argument call (one batch of `rows` rows each):
    the best of `rounds` rounds. Each variant is timed in a block of its own after a pause:
    OpenBLAS's and onnxruntime's worker threads spin for a while after a call, so variants
    taking turns would slow each other down (numpy and scipy each bring an OpenBLAS pool)."""
    rates = {}
    for name, call in calls.items():
        time.sleep(PAUSE_SECONDS)
        count, best = calls_per_round(call), float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(count):
                call()
            best = min(best, time.perf_counter() - start)
        rates[name] = rows * count / best
    return rates


def session(net, threads):
    import onnxruntime as ort
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(fastmlp.to_onnx(net).SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def variants(dtype, threads):
    """{name: (model, predict(X))} for the network in `dtype`."""
    out = {}
    for backend in fastmlp.available_backends():
        net = fastmlp.MLP(SIZES, seed=0, dtype=dtype, backend=backend)
        out[f"fastmlp {backend}"] = net.predict_proba
    sess = session(net, threads)
    out["onnxruntime"] = lambda X: sess.run(["probabilities"], {"X": X})[0]
    return out


def measure(dtypes, batches, rounds, threads):
    rows = []
    for dtype in dtypes:
        predictors = variants(dtype, threads)
        for batch in batches:
            X = np.random.default_rng(1).standard_normal((batch, SIZES[0])).astype(dtype)
            expected = predictors["fastmlp numpy"](X)
            for name, predict in predictors.items():
                np.testing.assert_allclose(predict(X), expected, rtol=1e-4, atol=1e-5, err_msg=name)
            rates = best_rates({name: (lambda p=predict, X=X: p(X)) for name, predict in predictors.items()}, batch, rounds)
            rows.append((dtype, batch, rates))
    return rows


def blas_limit(threads):
    if not threads:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits
    return threadpool_limits(threads)


def header(threads):
    import onnxruntime as ort
    print(fastmlp_line())
    print(f"onnxruntime {ort.__version__} (CPUExecutionProvider); network {'-'.join(map(str, SIZES))}")
    print(f"cpu: {cpu_model()}; threads: {threads or 'library defaults'}")
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            print("  " + describe_pool(pool))
    except ImportError:
        pass
    print(openblas_line(COMMAND))
    busy = cpu_busy_line()
    if busy:
        print(busy)


def table(rows):
    names = list(rows[0][2])
    base = "fastmlp cython" if "fastmlp cython" in names else names[0]
    print()
    print("| dtype | batch | " + " | ".join(f"{n} rows/s" for n in names) + f" | onnxruntime / {base} |")
    print("|---|---:|" + "---:|" * len(names) + "---:|")
    for dtype, batch, rates in rows:
        cells = " | ".join(f"{rates[n]:,.0f}" for n in names)
        print(f"| {dtype} | {batch} | {cells} | {rates['onnxruntime'] / rates[base]:.2f} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="best of this many timed rounds")
    parser.add_argument("--threads", type=int, default=0, help="cap BLAS and onnxruntime at N threads")
    parser.add_argument("--batches", type=int, nargs="+", default=[8192, 32])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    args = parser.parse_args()
    header(args.threads)
    with blas_limit(args.threads):
        table(measure(args.dtypes, args.batches, args.rounds, args.threads))


if __name__ == "__main__":
    main()
