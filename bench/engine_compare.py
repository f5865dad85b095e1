"""Two builds of fastmlp, the three speed tiers of the one-engine issue, each timed in its own process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE FASTMLP_BLAS=scipy \\
        python bench/engine_compare.py --src base=/path/a/src --src new=/path/b/src [--rounds 5]

Jobs (the benchmark suite's settings, compiled backend):
  xor     2-4-1 float64, 5000 full-batch epochs at lr 0.1 (the seed's job)
  small   32-64-64-1 float64, batch 32, 10 epochs on 4096 rows, no shuffle
  medium  784-256-256-1 float32, batch 128, 1 epoch on 8192 rows, no shuffle (warm start
          from the same weights each call: the epoch alone)
  medium10, medium64  the same over 10 epochs, float32 and float64
  digits  fastmlp.MLPClassifier at scikit-learn's defaults on digits (speed.py's job: the
          stratified 75% split, standardized; max_iter=145, tol=0)

Each round starts one process per build and job (interleaved: base, new, base, new, ...);
a process imports the build's fastmlp (PYTHONPATH), warms up, and reports the median of
several calls. The table gives each build's median over the rounds and new/base.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, statistics, sys, time
import numpy as np
import fastmlp

def data(n, d, seed, dtype):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    w = rng.standard_normal(d)
    y = ((X @ w > 0) ^ (rng.random(n) < 0.1)).astype(dtype).reshape(-1, 1)
    return np.ascontiguousarray(X), y

job, calls = sys.argv[1], int(sys.argv[2])
if job == "xor":
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float64)
    y = np.array([[0], [1], [1], [0]], dtype=np.float64)
    net = fastmlp.MLP([2, 4, 1], init="normal", init_scale=0.1, seed=42, dtype="float64", backend="cython")
    run = lambda: net.fit(X, y, epochs=5000, lr=0.1)
elif job == "digits":
    import warnings
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    warnings.simplefilter("ignore")
    X, y = load_digits(return_X_y=True)
    X, _, y, _ = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    X = np.ascontiguousarray(StandardScaler().fit(X).transform(X))
    net = fastmlp.MLPClassifier(backend="cython", random_state=0, max_iter=145, tol=0.0)
    run = lambda: net.fit(X, y)
elif job == "small":
    X, y = data(4096, 32, 1, np.float64)
    net = fastmlp.MLP([32, 64, 64, 1], seed=0, dtype="float64", backend="cython")
    run = lambda: net.fit(X, y, epochs=10, lr=0.01, batch_size=32, shuffle=False)
else:
    dtype = np.float64 if job == "medium64" else np.float32
    epochs = 1 if job == "medium" else 10
    X, y = data(8192, 784, 2, dtype)
    net = fastmlp.MLP([784, 256, 256, 1], seed=0, dtype=dtype, backend="cython")
    net.fit(X, y, epochs=1, lr=0.01, batch_size=128, shuffle=False)
    initial = net.params_.copy()
    def run():
        net.params_[...] = initial
        net.fit(X, y, epochs=epochs, lr=0.01, batch_size=128, shuffle=False, warm_start=True)
times = []
for i in range(calls + 1):
    t0 = time.perf_counter()
    run()
    if i:
        times.append(time.perf_counter() - t0)
loss = net.loss_curve_[-1] if job == "digits" else net.history_["loss"][-1]
print(json.dumps({"median": statistics.median(times), "loss": float(loss)}))
"""

CALLS = {"xor": 30, "small": 10, "medium": 7, "medium10": 3, "medium64": 3, "digits": 5}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", action="append", required=True, help="NAME=DIR (a src/ holding fastmlp)")
    parser.add_argument("--jobs", default="xor,small,medium")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    builds = [s.split("=", 1) for s in args.src]
    jobs = args.jobs.split(",")
    results = {(b, j): [] for b, _ in builds for j in jobs}
    losses = {}
    for r in range(args.rounds):
        for job in jobs:
            for name, src in builds if r % 2 == 0 else builds[::-1]:
                env = dict(os.environ, PYTHONPATH=src)
                out = subprocess.run([sys.executable, "-c", CHILD, job, str(CALLS[job])], env=env,
                                     capture_output=True, text=True, check=True)
                row = json.loads(out.stdout)
                results[name, job].append(row["median"])
                losses[name, job] = row["loss"]
    base = builds[0][0]
    print(f"{'job':8} " + " ".join(f"{name:>12}" for name, _ in builds) + "   ratio to " + base)
    for job in jobs:
        med = {name: statistics.median(results[name, job]) for name, _ in builds}
        cells = " ".join(f"{med[name] * 1e3:10.3f}ms" for name, _ in builds)
        ratios = " ".join(f"{med[name] / med[base]:.3f}" for name, _ in builds[1:])
        print(f"{job:8} {cells}   {ratios}   (last loss: "
              + ", ".join(f"{losses[name, job]:.12g}" for name, _ in builds) + ")")


if __name__ == "__main__":
    main()
