"""Fits to count instructions of under callgrind: noise-free comparisons between builds.

On a shared machine wall-clock times of the same fit vary by 2x between rounds; the
instructions a fit executes do not. Run each job with N = 0 and N = k fits and take
(count(k) - count(0)) / k as the instructions of one fit (imports and the warm-up fit
cancel out):

    PYTHONHASHSEED=0 OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind \\
        --callgrind-out-file=/tmp/cg.JOB.N python bench/callgrind_fit.py JOB N

Valgrind runs no AVX-512 code: under it the compiled module's small products (_kernels.h) are
off (_core._small_kernels() is False), so the counts are those of the BLAS and plain-loop path
that CPUs without AVX-512 take; the tabular job's tiles show only in wall clock and perf.

JOB: xor (the seed's 5000-epoch fit, compiled), xor1 (the same, one epoch: the fixed cost
per fit), xornumpy (200 epochs on the NumPy backend), tabular (one 4096x32 epoch, batch
32), medium (one 1024-row epoch of 784-256-256-1, float32, batch 128).
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import fastmlp, make_data, xor_data  # noqa: E402


def job(name):
    X, y = xor_data()
    if name in ("xor", "xor1", "xornumpy"):
        backend = "numpy" if name == "xornumpy" else "auto"
        epochs = {"xor": 5000, "xor1": 1, "xornumpy": 200}[name]
        net = fastmlp.MLP([2, 4, 1], init="normal", init_scale=0.1, seed=42, backend=backend)
        return lambda: net.fit(X, y, epochs=epochs, lr=0.1)
    if name == "tabular":
        Xt, yt = make_data(4096, 32)
        net = fastmlp.MLP([32, 64, 64, 1], seed=0)
        return lambda: net.fit(Xt, yt, epochs=1, lr=0.01, batch_size=32, shuffle=False)
    if name == "medium":
        Xm, ym = make_data(1024, 784, dtype=np.float32)
        net = fastmlp.MLP([784, 256, 256, 1], seed=0, dtype="float32")
        return lambda: net.fit(Xm, ym, epochs=1, lr=0.01, batch_size=128, shuffle=False)
    raise SystemExit(f"unknown job {name!r}; choose xor, xor1, xornumpy, tabular or medium")


if __name__ == "__main__":
    fit = job(sys.argv[1])
    fit()  # warm-up: first-call paths run in every count
    for _ in range(int(sys.argv[2])):
        fit()
