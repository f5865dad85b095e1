"""fastmlp against scikit-learn's MLPClassifier on two of scikit-learn's bundled data sets.

Data (shipped with scikit-learn, nothing is downloaded):

- ``load_breast_cancer()``: 569 x 30, 2 classes;
- ``load_digits()``: 1797 x 64 (8x8 images), 10 classes.

Each is split with ``train_test_split(test_size=0.25, stratify=y, random_state=seed)`` and
standardised with a ``StandardScaler`` fit on the training part only.

scikit-learn runs ``MLPClassifier`` with its default configuration, which is the one most
people use: one hidden layer of 100 ReLU units, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8),
batches of min(200, n), alpha 1e-4, up to 200 epochs with shuffling, stopping once the
training loss has not improved by tol=1e-4 for 10 epochs (no validation split). It uses a
single logistic output for 2 classes and softmax for more.

fastmlp gets the same network and optimizer: ``[d, 100, 1]`` with a sigmoid output (binary
cross-entropy) or ``[d, 100, 10]`` with softmax (cross-entropy, integer labels), ReLU, Adam
with the same lr/betas/eps and batch size, shuffled every epoch, and exactly as many
epochs as scikit-learn ran for the same seed (``clf.n_iter_``; fastmlp has no stopping rule
on the training loss). The L2 penalties are made equal: scikit-learn adds
``0.5 * alpha * ||W||^2 / batch`` to each batch's mean loss (its gradient gets
``alpha * W / batch``, see ``_backprop``), fastmlp adds ``0.5 * l2 * ||W||^2`` to the mean
loss, so ``l2 = alpha / batch_size``. What still differs: the initialisation (scikit-learn:
Glorot uniform weights *and* biases; fastmlp ``init="auto"``: He normal into the ReLU layer,
Glorot uniform into the output, zero biases), the random streams (shuffles, init), and
where Adam adds eps (scikit-learn to sqrt(v), fastmlp/PyTorch to sqrt(v_hat)), and the
penalty of a short last batch (scikit-learn divides alpha by that batch's size).

Every configuration runs over several seeds (seed s: split ``random_state=s``,
``MLPClassifier(random_state=s)``, ``fastmlp.MLP(seed=s)``), and the table reports the
mean test accuracy +- its standard deviation over the seeds, and the mean of the per-seed
(paired) accuracy differences with its standard error. Seed 0 is also timed: best of 3
fits, each from scratch with the same seed (``fit`` re-initialises in both libraries),
data already split, scaled and converted to the row's dtype.

Run (about 30 to 60 s on a 2-core machine)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/sklearn_datasets.py

Options: ``--seeds N`` (default 10), ``--fixed-split`` (keep the split at random_state=0
and vary only the model seeds), ``--repeats R`` (timed fits of seed 0, default 3).
"""

import argparse
import importlib
import os
import platform
import time
import warnings

import numpy as np
import scipy
import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS, which fastmlp's compiled backend calls)
import sklearn
from sklearn.datasets import load_breast_cancer, load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

from _common import OtherLoad, cpu_busy_line, cpu_model, describe_pool, fastmlp, fastmlp_line, openblas_line

try:
    import threadpoolctl
except ImportError:
    threadpoolctl = None

# scikit-learn's MLPClassifier defaults, written out so the output can state them
HIDDEN = (100,)
SK_CONFIG = dict(hidden_layer_sizes=HIDDEN, activation="relu", solver="adam", alpha=1e-4,
                 batch_size="auto", learning_rate_init=1e-3, max_iter=200, shuffle=True,
                 tol=1e-4, n_iter_no_change=10, early_stopping=False, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-8)

DATASETS = (
    ("breast_cancer", load_breast_cancer),
    ("digits", load_digits),
)

# fastmlp rows: (backend, dtype)
FASTMLP_ROWS = (("cython", "float64"), ("numpy", "float64"), ("cython", "float32"))


# ---------------------------------------------------------------- environment


def print_header():
    print(fastmlp_line())
    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
          f"scikit-learn {sklearn.__version__}")
    print(f"cpu: {cpu_model()}; os.cpu_count()={os.cpu_count()}")
    try:
        importlib.import_module("fastmlp._core")  # so its BLAS shows up below
    except ImportError as exc:
        print(f"fastmlp._core not importable ({exc}): the cython rows will fail")
    if threadpoolctl is None:
        print("threadpoolctl not installed: cannot say which BLAS runs (pip install threadpoolctl)")
    else:
        print(f"threadpoolctl {threadpoolctl.__version__} threadpool_info():")
        for pool in threadpoolctl.threadpool_info():
            print("  " + describe_pool(pool))
        print("  fastmlp cython calls SciPy's OpenBLAS (scipy.linalg.cython_blas); fastmlp numpy and "
              "scikit-learn call NumPy's; every library keeps its default number of threads")
    print(openblas_line("python bench/sklearn_datasets.py"))
    busy = cpu_busy_line()
    if busy is not None:
        print(busy)


# ---------------------------------------------------------------- fits


def split(X, y, seed):
    """Stratified 75/25 split, standardised on the training part; float64, C-contiguous."""
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed, stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train = np.ascontiguousarray(scaler.transform(X_train), dtype=np.float64)
    X_test = np.ascontiguousarray(scaler.transform(X_test), dtype=np.float64)
    return X_train, X_test, y_train, y_test


def fit_sklearn(X, y, seed):
    """(fitted clf, seconds, whether a ConvergenceWarning fired); the warning is not shown."""
    clf = MLPClassifier(random_state=seed, **SK_CONFIG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        start = time.perf_counter()
        clf.fit(X, y)
        seconds = time.perf_counter() - start
    fired = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    for w in caught:  # anything else is news: show it
        if not issubclass(w.category, ConvergenceWarning):
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return clf, seconds, fired


def fastmlp_net(n_features, n_classes, seed, backend, dtype, batch_size):
    n_out = 1 if n_classes == 2 else n_classes
    return fastmlp.MLP([n_features, *HIDDEN, n_out], activation="relu",
                       output="sigmoid" if n_classes == 2 else "softmax",
                       l2=SK_CONFIG["alpha"] / batch_size, seed=seed, dtype=dtype, backend=backend)


def fit_fastmlp(X, y, n_classes, seed, backend, dtype, epochs):
    """(fitted net, seconds)."""
    batch_size = min(200, X.shape[0])   # scikit-learn's batch_size="auto"
    net = fastmlp_net(X.shape[1], n_classes, seed, backend, dtype, batch_size)
    start = time.perf_counter()
    net.fit(X, y, epochs=epochs, lr=SK_CONFIG["learning_rate_init"], batch_size=batch_size, shuffle=True,
            optimizer="adam", beta1=SK_CONFIG["beta_1"], beta2=SK_CONFIG["beta_2"], eps=SK_CONFIG["epsilon"])
    return net, time.perf_counter() - start


class Row:
    """One library/backend/dtype: per-seed accuracy, epochs, final training loss; seed-0 times."""

    def __init__(self, label, dtype):
        self.label, self.dtype = label, dtype
        self.acc, self.epochs, self.loss = {}, {}, {}
        self.times = []
        self.error = None

    def add(self, seed, acc, epochs, loss):
        self.acc[seed], self.epochs[seed], self.loss[seed] = acc, epochs, loss

    @property
    def best_time(self):
        return min(self.times) if self.times else float("nan")


def run_dataset(name, loader, seeds, fixed_split, repeats):
    X, y = loader(return_X_y=True)
    n_classes = len(np.unique(y))
    sk = Row(f"scikit-learn {sklearn.__version__} MLPClassifier", "float64")
    rows = [Row(f"fastmlp {backend}", dtype) for backend, dtype in FASTMLP_ROWS]
    warned = 0
    for seed in seeds:
        X_train, X_test, y_train, y_test = split(X, y, 0 if fixed_split else seed)
        timed = repeats if seed == seeds[0] else 1
        for _ in range(timed):
            clf, seconds, fired = fit_sklearn(X_train, y_train, seed)
            if seed == seeds[0]:
                sk.times.append(seconds)
        warned += fired
        epochs = clf.n_iter_
        sk.add(seed, float(np.mean(clf.predict(X_test) == y_test)), epochs, float(clf.loss_))
        for row, (backend, dtype) in zip(rows, FASTMLP_ROWS):
            if row.error is not None:
                continue
            Xtr, Xte = X_train.astype(dtype), X_test.astype(dtype)
            try:
                for _ in range(timed):
                    net, seconds = fit_fastmlp(Xtr, y_train, n_classes, seed, backend, dtype, epochs)
                    if seed == seeds[0]:
                        row.times.append(seconds)
                pred = net.predict(Xte)
            except Exception as exc:  # report it in the table, keep the other rows going
                row.error = f"{type(exc).__name__}: {exc}"
                continue
            row.add(seed, float(np.mean(pred == y_test)), net.n_iter_, float(net.history_["loss"][-1]))
    return X.shape, n_classes, sk, rows, warned


# ---------------------------------------------------------------- report


def fmt_epochs(row, seed0):
    values = list(row.epochs.values())
    if not values:
        return "-"
    lo, hi = min(values), max(values)
    span = f"{lo}" if lo == hi else f"{lo}-{hi}"
    return f"{row.epochs[seed0]} ({span})"


def paired_diff(row, sk):
    """Per-seed accuracy differences row - sklearn in pp: (mean, standard error, n)."""
    seeds = sorted(set(row.acc) & set(sk.acc))
    d = np.array([100 * (row.acc[s] - sk.acc[s]) for s in seeds])
    if len(d) == 0:
        return float("nan"), float("nan"), 0
    se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
    return float(d.mean()), float(se), len(d)


def print_table(name, shape, n_classes, sk, rows, warned, seeds, fixed_split, repeats):
    n_seeds = len(seeds)
    batch = min(200, int(round(shape[0] * 0.75)))
    print()
    print(f"=== {name}: {shape[0]} x {shape[1]}, {n_classes} classes; "
          f"network {shape[1]}-{'-'.join(map(str, HIDDEN))}-{1 if n_classes == 2 else n_classes} "
          f"({'sigmoid + BCE' if n_classes == 2 else 'softmax + cross-entropy'}), batch {batch}, "
          f"fastmlp l2 = {SK_CONFIG['alpha']:g} / {batch} = {SK_CONFIG['alpha'] / batch:.3g}")
    split_note = "split random_state=0 for every seed" if fixed_split else "split random_state = seed"
    print(f"    {n_seeds} seeds ({seeds[0]}..{seeds[-1]}, {split_note}); fit time = best of {repeats} "
          f"fits of seed {seeds[0]}; epochs = seed {seeds[0]}'s (min-max over seeds), fastmlp runs "
          f"scikit-learn's n_iter_ of the same seed")
    header = (f"{'library / backend':<36} {'dtype':<8} {'epochs':>13} {'fit ms':>9} {'ms/epoch':>9} "
              f"{'test acc % (mean +- std)':>25} {'train loss':>11} {'sk_time/time':>13} "
              f"{'acc diff pp (+- SE)':>20}")
    print(header)
    print("-" * len(header))
    for row in [sk] + rows:
        if row.error is not None and not row.acc:
            print(f"{row.label:<36} {row.dtype:<8} FAILED: {row.error}")
            continue
        acc = 100 * np.array(list(row.acc.values()))
        std = acc.std(ddof=1) if len(acc) > 1 else 0.0
        epochs0 = row.epochs[seeds[0]]
        t = row.best_time
        ratio = "1.00 (ref)" if row is sk else f"{sk.best_time / t:.2f}"
        if row is sk:
            diff = "(ref)"
        else:
            mean, se, _ = paired_diff(row, sk)
            diff = f"{mean:+.2f} (+- {se:.2f})"
        print(f"{row.label:<36} {row.dtype:<8} {fmt_epochs(row, seeds[0]):>13} {1e3 * t:>9.1f} "
              f"{1e3 * t / max(epochs0, 1):>9.3f} {f'{acc.mean():.2f} +- {std:.2f}':>25} "
              f"{np.mean(list(row.loss.values())):>11.5f} {ratio:>13} {diff:>20}")
        if row.error is not None:
            print(f"    ... then FAILED: {row.error}")
    print(f"    sk_time/time > 1: faster than scikit-learn; acc diff = mean over seeds of "
          f"(row - scikit-learn) test accuracy, paired by seed, SE = std/sqrt({n_seeds}); "
          f"train loss = last epoch's mean training loss incl. L2, averaged over seeds")
    print(f"    one test sample = {100 / round(shape[0] * 0.25):.2f} pp of test accuracy")
    if warned:
        print(f"    scikit-learn ConvergenceWarning fired (suppressed) in {warned} of {n_seeds} seed fits: "
              f"those reached max_iter={SK_CONFIG['max_iter']} before the tol={SK_CONFIG['tol']:g} stopping rule")
    else:
        print(f"    scikit-learn ConvergenceWarning did not fire: every seed stopped by the "
              f"tol={SK_CONFIG['tol']:g} rule before max_iter={SK_CONFIG['max_iter']}")


def print_targets(results):
    print()
    print("=== targets (fastmlp cython backend vs scikit-learn, same epochs)")
    for name, (_, _, sk, rows, _) in results.items():
        for row in rows:
            if not row.label.endswith("cython"):
                continue
            extra = "" if row.dtype == "float64" else " [extra row]"
            if not row.acc:
                print(f"{name}, cython {row.dtype}{extra}: FAILED ({row.error})")
                continue
            mean, se, n = paired_diff(row, sk)
            if mean >= -1.0:
                verdict = "yes" if mean <= 1.0 else "yes (better by more than 1 pp)"
            else:
                verdict = "no"
            ratio = sk.best_time / row.best_time
            print(f"{name}, cython {row.dtype}{extra}:")
            print(f"    accuracy within 1 pp of scikit-learn: {verdict} ({mean:+.2f} pp, mean over {n} seeds, "
                  f"SE {se:.2f} pp)")
            print(f"    faster than scikit-learn: {'yes' if ratio > 1 else 'no'} ({ratio:.2f}x: "
                  f"{1e3 * sk.best_time:.1f} ms / {1e3 * row.best_time:.1f} ms)")
    print("    (accuracy 'within 1 pp' = fastmlp's mean test accuracy at most 1 pp below scikit-learn's)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 per configuration (default 10)")
    parser.add_argument("--fixed-split", action="store_true",
                        help="split with random_state=0 for every seed (only the models' seeds vary)")
    parser.add_argument("--repeats", type=int, default=3, help="timed fits of the first seed (default 3)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.repeats < 1:
        parser.error("--seeds and --repeats must be >= 1")
    seeds = list(range(args.seeds))

    start = time.perf_counter()
    print_header()
    print()
    print("scikit-learn: MLPClassifier(" + ", ".join(f"{k}={v!r}" for k, v in SK_CONFIG.items())
          + ", random_state=seed) -- its defaults; it stops when the training loss has not improved by "
          "tol for n_iter_no_change epochs, or at max_iter")
    print("fastmlp: MLP([d, 100, k], activation='relu', output='sigmoid' (k=1) / 'softmax' (k=10), "
          "l2=alpha/batch_size, seed=seed, init='auto'); fit(epochs=<sklearn's n_iter_ for that seed>, "
          "lr=1e-3, batch_size=min(200, n), shuffle=True, optimizer='adam', beta1=0.9, beta2=0.999, eps=1e-8)")
    print("not matched: initialisation (sklearn Glorot-uniform W and b; fastmlp He-normal hidden W, "
          "Glorot output W, zero b), random streams, Adam's eps placement, the L2 of a short last batch "
          "(sklearn divides alpha by that batch's size, fastmlp's l2 is fixed)")

    results = {}
    for name, loader in DATASETS:
        with OtherLoad() as load:
            results[name] = run_dataset(name, loader, seeds, args.fixed_split, args.repeats)
        print_table(name, *results[name], seeds, args.fixed_split, args.repeats)
        if load.fraction is not None:
            line = f"    other processes used {load.fraction:.0%} of all cores while this table ran"
            if load.fraction > 0.05:
                line = ("WARNING:" + line[len("   "):] + ": the timings above are disturbed, "
                        "rerun on a quiet machine")
            print(line)
    print_targets(results)
    print()
    print(f"total run time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
