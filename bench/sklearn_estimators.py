"""fastmlp.MLPClassifier against scikit-learn's MLPClassifier, same constructor arguments.

The drop-in comparison of issue 9: both estimators are built with the same keyword
arguments (scikit-learn's defaults: one hidden layer of 100 ReLU units, Adam with lr 1e-3,
alpha 1e-4, batches of min(200, n), up to 200 epochs, shuffled, stopping once the training
loss has not improved by tol=1e-4 for 10 epochs) and ``random_state=seed``. Each stops by
its own rule, so the epoch counts may differ by a few (the ``epochs`` column); fastmlp
starts from scikit-learn's initial weights and visits the rows in its order, so with the
same float rounding they would run step for step.

Data: ``load_breast_cancer()`` (569 x 30, 2 classes) and ``load_digits()`` (1797 x 64, 10
classes), bundled with scikit-learn. Seed s: ``train_test_split(test_size=0.25,
stratify=y, random_state=s)``, a ``StandardScaler`` fit on the training part, both
estimators with ``random_state=s``. The table gives each row's mean test accuracy over the
seeds and its paired (per-seed) difference from scikit-learn's with the standard error.

Fit time: seed 0's data, each row fitted ``--repeats`` times in interleaved rounds (row 1,
row 2, ..., row 1, ...: load that comes and goes hits every row alike), best of the
rounds, once with every library's default BLAS threads and once with BLAS limited to one
thread (threadpoolctl). The float32 rows get float32 X (both libraries then train in
float32) and are compared with scikit-learn in float32.

Run (about 1 to 2 minutes on a 2-core machine)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/sklearn_estimators.py

Options: ``--seeds N`` (default 10), ``--repeats R`` (default 5), ``--datasets``.
"""

import argparse
import time
import warnings

import numpy as np
import sklearn
import sklearn.neural_network
from _common import (
    OtherLoad,
    blas_threads,
    fastmlp,
    interleaved,
    paired_diff,
    print_header,
    scaled_split,
)
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning

COMMAND = "python bench/sklearn_estimators.py"
KWARGS = {}   # the same constructor arguments for both: scikit-learn's defaults
DATASETS = {"breast_cancer": load_breast_cancer, "digits": load_digits}
THREADS = (None, 1)   # default BLAS threads, then one


class Row:
    """One estimator class, backend and dtype: per-seed accuracy and epochs, seed 0's times."""

    def __init__(self, label, make, dtype, reference=None):
        self.label, self.make, self.dtype, self.reference = label, make, np.dtype(dtype), reference
        self.acc, self.epochs = {}, {}
        self.times = {}       # BLAS threads -> [seconds per round]
        self.warned = 0       # fits that ended at max_iter (ConvergenceWarning)

    def estimator(self, seed):
        return self.make(random_state=seed, **KWARGS)

    def fit(self, est, X, y):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            est.fit(X, y)
        for w in caught:
            if not issubclass(w.category, ConvergenceWarning):   # anything else is news: show it
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        return any(issubclass(w.category, ConvergenceWarning) for w in caught)

    def best(self, threads):
        return min(self.times.get(threads, [float("nan")]))


def make_rows():
    sk = sklearn.neural_network.MLPClassifier
    sk64 = Row(f"scikit-learn {sklearn.__version__}", sk, "float64")
    sk32 = Row(f"scikit-learn {sklearn.__version__}", sk, "float32")
    rows = [sk64]
    for backend in fastmlp.available_backends():
        def make(backend=backend, **kw):
            return fastmlp.MLPClassifier(backend=backend, **kw)
        rows.append(Row(f"fastmlp {backend}", make, "float64", reference=sk64))
    if "cython" in fastmlp.available_backends():
        rows += [sk32, Row("fastmlp cython", lambda **kw: fastmlp.MLPClassifier(backend="cython", **kw),
                           "float32", reference=sk32)]
    return rows


def run_dataset(loader, rows, seeds, repeats):
    X, y = loader(return_X_y=True)
    for seed in seeds:
        X_train, X_test, y_train, y_test = scaled_split(X, y, seed)
        for row in rows:
            est = row.estimator(seed)
            row.warned += row.fit(est, X_train.astype(row.dtype), y_train)
            row.acc[seed] = 100 * float(np.mean(est.predict(X_test.astype(row.dtype)) == y_test))
            row.epochs[seed] = est.n_iter_
    # fit times on seed 0's split, rows interleaved, per BLAS thread setting
    X_train, _, y_train, _ = scaled_split(X, y, seeds[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        variants = {}
        for i, row in enumerate(rows):
            est, Xr = row.estimator(seeds[0]), X_train.astype(row.dtype)
            variants[i] = lambda est=est, Xr=Xr: est.fit(Xr, y_train)
        for threads in THREADS:
            with blas_threads(threads):
                times = interleaved(variants, repeats)
            for i, row in enumerate(rows):
                row.times[threads] = times[i]
    return X.shape, len(np.unique(y))


def thread_label(threads):
    return "default BLAS threads" if threads is None else f"BLAS {threads} thread"


def print_table(name, shape, n_classes, rows, seeds, repeats):
    n_test = int(np.ceil(0.25 * shape[0]))
    print()
    print(f"=== {name}: {shape[0]} x {shape[1]}, {n_classes} classes ({n_test} test rows: one = "
          f"{100 / n_test:.2f} pp); {len(seeds)} seeds; fit ms = best of {repeats} interleaved fits of seed "
          f"{seeds[0]}")
    t_cols = "".join(f" {'fit ms (' + ('dflt' if t is None else str(t)) + ' thr)':>16} {'speed-up':>9}"
                     for t in THREADS)
    header = (f"{'estimator':<22} {'dtype':<8} {'epochs s0 (range)':>18} {'ms/epoch':>9}"
              f"{t_cols} {'test acc % mean+-sd':>20} {'diff pp (+-SE)':>16}")
    print(header)
    print("-" * len(header))
    for row in rows:
        acc = np.array(list(row.acc.values()))
        epochs = list(row.epochs.values())
        span = f"{min(epochs)}" if min(epochs) == max(epochs) else f"{min(epochs)}-{max(epochs)}"
        e0 = row.epochs[seeds[0]]
        cols = ""
        for t in THREADS:
            ratio = "(ref)" if row.reference is None else f"{row.reference.best(t) / row.best(t):.2f}x"
            cols += f" {1e3 * row.best(t):>16.1f} {ratio:>9}"
        if row.reference is None:
            diff = "(ref)"
        else:
            mean, se, _ = paired_diff(row.acc, row.reference.acc)
            diff = f"{mean:+.2f} (+-{se:.2f})"
        sd = acc.std(ddof=1) if len(acc) > 1 else 0.0
        print(f"{row.label:<22} {row.dtype.name:<8} {f'{e0} ({span})':>18} "
              f"{1e3 * row.best(THREADS[0]) / max(e0, 1):>9.3f}{cols} {f'{acc.mean():.2f} +- {sd:.2f}':>20} "
              f"{diff:>16}")
    print("    speed-up = the scikit-learn row of the same dtype's fit time / this row's, same BLAS "
          "threads; diff = mean over seeds of (row - scikit-learn same dtype) test accuracy, paired by "
          "seed; ms/epoch at default threads, seed 0")
    warned = ", ".join(f"{r.label} {r.dtype.name} {r.warned}" for r in rows if r.warned)
    print(f"    fits that reached max_iter (ConvergenceWarning, suppressed): {warned or 'none'} "
          f"(of {len(seeds)} each)")


def print_targets(results):
    print()
    print("=== issue 9 targets: fastmlp.MLPClassifier (cython, float64) vs scikit-learn's, same arguments")
    for name, rows in results.items():
        for row in rows:
            if row.label != "fastmlp cython" or row.dtype != np.float64:
                continue
            mean, se, n = paired_diff(row.acc, row.reference.acc)
            ok = "yes" if mean >= -1 else "no"
            print(f"{name}: accuracy within 1 pp: {ok} ({mean:+.2f} pp +- {se:.2f}, {n} seeds); fit "
                  + "; ".join(f"{row.reference.best(t) / row.best(t):.2f}x faster at {thread_label(t)} "
                              f"({1e3 * row.reference.best(t):.1f} / {1e3 * row.best(t):.1f} ms)"
                              for t in THREADS)
                  + " (target 3x)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default 10)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds of seed 0 (default 5)")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.repeats < 1:
        parser.error("--seeds and --repeats must be >= 1")
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    print_header(COMMAND)
    params = sklearn.neural_network.MLPClassifier(**KWARGS).get_params()
    print()
    print("both: MLPClassifier(" + ", ".join(f"{k}={v!r}" for k, v in params.items() if k != "random_state")
          + ", random_state=seed) -- scikit-learn's defaults, passed to neither explicitly")
    results = {}
    for name in args.datasets:
        rows = make_rows()
        with OtherLoad() as load:
            shape, n_classes = run_dataset(DATASETS[name], rows, seeds, args.repeats)
        print_table(name, shape, n_classes, rows, seeds, args.repeats)
        if load.line() is not None:
            print(load.line())
        results[name] = rows
    print_targets(results)
    print()
    print(f"total run time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
