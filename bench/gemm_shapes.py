"""The medium job's products one at a time on one thread: how close SciPy's OpenBLAS (and
BLIS in float32, where the ``blis`` package is installed) comes to the chip at these shapes.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/gemm_shapes.py [float32|float64]

Each product of a 784-256-256-1 batch of 128 rows (the forward products of the two hidden
layers, their weight gradients, the gradient carried back to the first), row-major as
fastmlp calls ?gemm (the operands swapped for the column-major interface), best of 5 runs
of 200 calls, with the BLAS on one thread. Compare the GFLOP/s with half the rate
``np.matmul`` reaches on 2048^3 on two cores (speed.py's "limit"): a two-core split of
these calls can be no faster than that share.
"""

import sys
import time

import numpy as np
import scipy.linalg.blas as blas
from threadpoolctl import threadpool_limits

# (m, k, n, A transposed, B transposed): C (m, n) = op(A) @ op(B)
SHAPES = [(128, 784, 256, False, False), (128, 256, 256, False, False),
          (784, 128, 256, True, False), (256, 128, 256, True, False), (128, 256, 256, False, True)]


def best_seconds(call, calls=200, runs=5):
    call()
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        for _ in range(calls):
            call()
        best = min(best, (time.perf_counter() - t0) / calls)
    return best


def main(dtype):
    dtype = np.dtype(dtype)
    gemm = blas.sgemm if dtype == np.float32 else blas.dgemm
    try:
        import blis.py as blis
    except ImportError:
        blis = None
    if dtype != np.float32:
        blis = None     # (blis 1.3.4's float64 gemm with a transposed operand crashed the process here)
    rng = np.random.default_rng(0)
    totals = {"openblas": 0.0, "blis": 0.0}
    flops = 0.0
    with threadpool_limits(1, user_api="blas"):
        for m, k, n, ta, tb in SHAPES:
            A = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
            B = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
            C = np.zeros((m, n), dtype)
            work = 2.0 * m * n * k
            flops += work
            # row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T
            ob = best_seconds(lambda: gemm(1.0, B.T, A.T, 0.0, C.T, trans_a=tb, trans_b=ta, overwrite_c=1))
            totals["openblas"] += ob
            line = f"{m:4d}x{k:4d}x{n:4d} {'T' if ta else 'N'}{'T' if tb else 'N'}: OpenBLAS {work / ob / 1e9:6.1f} GFLOP/s"
            if blis is not None:
                bl = best_seconds(lambda: blis.gemm(A, B, out=C, trans1=ta, trans2=tb, beta=0.0))
                totals["blis"] += bl
                line += f", BLIS {work / bl / 1e9:6.1f}"
            print(line)
    print(f"all five, one thread: OpenBLAS {flops / totals['openblas'] / 1e9:.1f} GFLOP/s"
          + (f", BLIS {flops / totals['blis'] / 1e9:.1f}" if blis is not None else ""))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "float32")
