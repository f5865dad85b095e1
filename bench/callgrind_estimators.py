"""Instructions per fit of the scikit-learn estimators, fastmlp.MLP and scikit-learn, under
callgrind: the estimator layer's overhead and the digits comparison without the noise.

On a shared 2-core machine the wall clock of the same fit varies by 2x and more between
rounds (``estimator_overhead.py`` and ``sklearn_estimators.py`` print how busy the other
processes kept the cores); the instructions a fit executes do not vary. One valgrind run
per job fits every variant of that job ``--fits`` times after a warm-up of each, and calls
``os.getpgrp()`` between the variants: with ``--dump-before=getpgrp`` callgrind writes (and
zeroes) its counts at each call, so each dump holds one variant's fits and nothing else
(imports and warm-ups fall in the first dump, which is dropped).

Jobs (see ``estimator_overhead.py`` and the benchmark suite for the first three):

- ``tabular``: 4096x32 float64, 32-64-64-1 Leaky ReLU, sigmoid + BCE, batch 32, 10 epochs,
  plain SGD, no shuffle; ``tabular-adam``: the same with Adam and shuffling;
- ``medium`` / ``medium32``: 8192x784 float64 / float32, 784-256-256-1, batch 128, 1 epoch,
  plain SGD, no shuffle; ``MLP`` and ``MLPClassifier`` only, each warmed up on the first
  512 rows (a whole warm-up fit would double valgrind's time);
- ``digits``: scikit-learn's digits (seed 0's standardised 75/25 split), its
  MLPClassifier defaults (100 ReLU, softmax, Adam, alpha 1e-4, batch 200, shuffled) for
  20 epochs (``max_iter=20, tol=0``), and ``fastmlp.MLP`` doing the same.

Variants: ``MLP``, ``MLPClassifier`` and, on the tabular jobs, ``MLP (regr)`` (identity
output, MSE) and ``MLPRegressor``; on digits, scikit-learn's ``MLPClassifier``.

Instruction counts are not times: valgrind runs OpenBLAS's Haswell kernels (it has no
AVX-512), a memory-bound pass costs more time per instruction than a GEMM, and BLAS runs
with one thread (``OPENBLAS_NUM_THREADS=1``) so the counts repeat. They measure the work
each layer adds, which is what the overhead question asks.

Run (valgrind must be installed; each job takes 5 to 15 minutes of one core, most of it
the imports under valgrind)::

    python bench/callgrind_estimators.py run          # tabular, medium32, digits; or name jobs

which runs, for each job::

    PYTHONHASHSEED=0 OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind --dump-before=getpgrp \\
        --callgrind-out-file=DIR/JOB python bench/callgrind_estimators.py count JOB --fits K
"""

import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import warnings

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from _common import fastmlp, make_data, scaled_split

JOBS = ("tabular", "tabular-adam", "medium", "medium32", "digits")
DEFAULT_JOBS = ("tabular", "medium32", "digits")
FITS = {"tabular": 3, "tabular-adam": 3, "medium": 1, "medium32": 1, "digits": 2}


def estimator_kwargs(sizes, batch, epochs, lr, optimizer, shuffle):
    return dict(hidden_layer_sizes=tuple(sizes[1:-1]), activation="leaky_relu", negative_slope=0.01,
                solver=optimizer, alpha=0.0, momentum=0.0, batch_size=batch, learning_rate_init=lr,
                max_iter=epochs, shuffle=shuffle, tol=0.0, n_iter_no_change=np.inf, random_state=0,
                backend="cython")


def overhead_variants(X, y, sizes, batch, epochs, lr, optimizer, shuffle):
    """The four fits estimator_overhead.py times, as zero-argument callables."""
    fit_kw = dict(epochs=epochs, lr=lr, batch_size=batch, shuffle=shuffle, optimizer=optimizer)
    common = dict(activation="leaky_relu", negative_slope=0.01, seed=0, dtype=X.dtype.name, backend="cython")
    clf_net = fastmlp.MLP(sizes, output="sigmoid", loss="bce", **common)
    reg_net = fastmlp.MLP(sizes, output="identity", loss="mse", **common)
    est_kw = estimator_kwargs(sizes, batch, epochs, lr, optimizer, shuffle)
    clf, reg = fastmlp.MLPClassifier(**est_kw), fastmlp.MLPRegressor(**est_kw)
    labels = y.ravel()
    reg_kw = {**fit_kw, "lr": 0.5 * lr if optimizer == "sgd" else lr}   # MLPRegressor's half-MSE
    return {
        "MLP": lambda: clf_net.fit(X, y, **fit_kw),
        "MLPClassifier": lambda: clf.fit(X, labels),
        "MLP (regr)": lambda: reg_net.fit(X, y, **reg_kw),
        "MLPRegressor": lambda: reg.fit(X, labels),
    }


def digits_variants():
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier

    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = scaled_split(X, y, 0)
    epochs = 20
    kw = dict(random_state=0, max_iter=epochs, tol=0.0)
    est, sk = fastmlp.MLPClassifier(backend="cython", **kw), MLPClassifier(**kw)
    batch = min(200, X_train.shape[0])
    net = fastmlp.MLP([X_train.shape[1], 100, 10], activation="relu", output="softmax", l2=1e-4 / batch,
                      seed=0, backend="cython")
    return {
        "MLP": lambda: net.fit(X_train, y_train, epochs=epochs, lr=1e-3, batch_size=batch, shuffle=True,
                               optimizer="adam"),
        "MLPClassifier": lambda: est.fit(X_train, y_train),
        "scikit-learn MLPClassifier": lambda: sk.fit(X_train, y_train),
    }


def variants(job):
    """{name: fit} and {name: warm-up} (a cheaper fit through the same code, or the fit)."""
    if job == "digits":
        fits = digits_variants()
        return fits, fits
    if job.startswith("tabular"):
        X, y = make_data(4096, 32, seed=1)
        sizes, batch, epochs = [32, 64, 64, 1], 32, 10
    else:
        X, y = make_data(8192, 784, seed=2, dtype=np.float32 if job == "medium32" else np.float64)
        sizes, batch, epochs = [784, 256, 256, 1], 128, 1
    optimizer, shuffle = ("adam", True) if job.endswith("-adam") else ("sgd", False)
    fits = overhead_variants(X, y, sizes, batch, epochs, 0.01, optimizer, shuffle)
    if job.startswith("tabular"):
        return fits, fits
    keep = ("MLP", "MLPClassifier")
    small = overhead_variants(X[:512], y[:512], sizes, batch, epochs, 0.01, optimizer, shuffle)
    return {k: fits[k] for k in keep}, {k: small[k] for k in keep}


def count(job, fits):
    """The process callgrind watches: warm-ups, then each variant's fits between two
    os.getpgrp() calls (callgrind's dump points). Prints the variants in dump order."""
    from sklearn.exceptions import ConvergenceWarning

    warnings.simplefilter("ignore", ConvergenceWarning)
    fns, warmups = variants(job)
    for fn in warmups.values():
        fn()
    for name, fn in fns.items():
        os.getpgrp()
        for _ in range(fits):
            fn()
        print(name, flush=True)
    os.getpgrp()


def totals(prefix):
    """The instruction totals of callgrind's numbered dumps PREFIX.1, PREFIX.2, ... in order."""
    files = sorted(glob.glob(prefix + ".*"), key=lambda f: int(f.rsplit(".", 1)[1]))
    out = []
    for f in files:
        with open(f) as fh:
            for line in fh:
                m = re.match(r"(?:summary|totals):\s+(\d+)", line)
                if m:
                    out.append(int(m.group(1)))
                    break
    return out


def run(jobs, outdir):
    python = os.path.realpath(sys.executable)   # not a pyenv shim: valgrind must trace python itself
    env = {**os.environ, "PYTHONHASHSEED": "0", "OPENBLAS_NUM_THREADS": "1"}
    for job in jobs:
        prefix = os.path.join(outdir, job)
        cmd = ["valgrind", "--tool=callgrind", "--dump-before=getpgrp", f"--callgrind-out-file={prefix}",
               python, os.path.abspath(__file__), "count", job, "--fits", str(FITS[job])]
        print("$ PYTHONHASHSEED=0 OPENBLAS_NUM_THREADS=1 " + " ".join(cmd), flush=True)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            raise SystemExit(f"valgrind failed on {job}")
        names = proc.stdout.split("\n")[:-1]
        counts = totals(prefix)[1:1 + len(names)]   # dump 1: imports and warm-ups
        per_fit = {n: c / FITS[job] for n, c in zip(names, counts)}
        print(f"=== {job}: instructions per fit (mean of {FITS[job]})")
        for name, c in per_fit.items():
            ref = "MLP (regr)" if name == "MLPRegressor" else "MLP"
            rel = "" if name in ("MLP", "MLP (regr)") else f"  {c / per_fit[ref]:.4f}x {ref}"
            print(f"  {name:<28} {c / 1e6:>10.2f} M{rel}")
        print(flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("count", help="the fits to count (run under valgrind)")
    c.add_argument("job", choices=JOBS)
    c.add_argument("--fits", type=int, default=1)
    r = sub.add_parser("run", help="run valgrind on each job and print the counts")
    r.add_argument("jobs", nargs="*", help=f"any of {', '.join(JOBS)} (default: {' '.join(DEFAULT_JOBS)})")
    r.add_argument("--outdir", default=None, help="keep callgrind's files here (default: a temporary dir)")
    args = parser.parse_args(argv)
    if args.cmd == "run" and not set(args.jobs) <= set(JOBS):
        parser.error(f"unknown job(s) {sorted(set(args.jobs) - set(JOBS))}; choose from {', '.join(JOBS)}")
    if args.cmd == "count":
        count(args.job, args.fits)
    elif args.outdir:
        os.makedirs(args.outdir, exist_ok=True)
        run(args.jobs or list(DEFAULT_JOBS), args.outdir)
    else:
        with tempfile.TemporaryDirectory() as outdir:
            run(args.jobs or list(DEFAULT_JOBS), outdir)


if __name__ == "__main__":
    main()
