"""Where a digits fit's time goes: fastmlp.MLPClassifier against scikit-learn's, and parts.

Issue 9 asks fastmlp's estimator to fit digits at least 3x faster than scikit-learn's
``MLPClassifier`` with the same arguments. This script takes seed 0's fit apart:

1. Fits side by side (interleaved rounds, best of ``--repeats``), at every library's
   default BLAS threads and with BLAS limited to one thread (threadpoolctl), all running
   the epochs scikit-learn runs on seed 0 (``max_iter=E, tol=0``, so both stop at E):
   scikit-learn's ``MLPClassifier``; ``fastmlp.MLPClassifier``; ``fastmlp.MLP`` with the
   same network, Adam, batch, L2 and shuffling (no scikit-learn bookkeeping); the GEMM
   floor, the five matrix products of each batch and nothing else (``np.matmul(out=)`` on
   preallocated buffers; NumPy's OpenBLAS, while fastmlp's compiled backend calls SciPy's);
   and ``fastmlp.MLPClassifier`` fitted inside ``threadpool_limits(1)`` while scikit-learn
   keeps its default threads (what a fit that limits BLAS itself would give).
2. fastmlp.MLPClassifier's own time, split by wrapping its pieces (one BLAS thread): the
   fit's set-up outside the training loop (scikit-learn's input checks, labels,
   initialisation), the per-epoch bookkeeping the loop calls back into (``EpochWatch``:
   loss curve, stopping rule; ``SklearnOrder.shuffle``: scikit-learn's row order), and the
   compiled loop itself (the rest of the backend's ``train`` call).

Run (about 1 minute on a 2-core machine)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/digits_breakdown.py
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
    print_header,
    scaled_split,
)
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning

from fastmlp import _sklearn_train, _training  # the pieces part 2 wraps

COMMAND = "python bench/digits_breakdown.py"
HIDDEN = 100
ALPHA, LR = 1e-4, 1e-3


def gemm_floor(X, n_classes, batch, epochs):
    """The products of `epochs` epochs of X-100-k in batches of `batch`: forward X@W1 and
    A1@W2, backward dW2 = A1.T@D2, dA1 = D2@W2.T, dW1 = Xb.T@D1 (no dX)."""
    rng = np.random.default_rng(0)
    d, n = X.shape[1], X.shape[0]
    W1, W2 = rng.standard_normal((d, HIDDEN)), rng.standard_normal((HIDDEN, n_classes))
    A1, D1, D2 = (rng.standard_normal((batch, HIDDEN)), rng.standard_normal((batch, HIDDEN)),
                  rng.standard_normal((batch, n_classes)))
    Z1, Z2, dA1 = np.empty((batch, HIDDEN)), np.empty((batch, n_classes)), np.empty((batch, HIDDEN))
    dW1, dW2 = np.empty((d, HIDDEN)), np.empty((HIDDEN, n_classes))
    starts = range(0, n, batch)
    mm = np.matmul

    def run():
        for _ in range(epochs):
            for s in starts:
                Xb = X[s:s + batch]
                m = Xb.shape[0]
                mm(Xb, W1, out=Z1[:m])
                mm(A1[:m], W2, out=Z2[:m])
                mm(A1[:m].T, D2[:m], out=dW2)
                mm(D2[:m], W2.T, out=dA1[:m])
                mm(Xb.T, D1[:m], out=dW1)

    return run


class Stopwatch:
    """Wraps functions to add up their time (seconds) and calls."""

    def __init__(self):
        self.seconds, self.calls = {}, {}

    def wrap(self, name, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
                self.calls[name] = self.calls.get(name, 0) + 1
        return timed


class TimedBackend:
    """A backend module whose ``train`` is timed; everything else passes through."""

    def __init__(self, impl, watch):
        self._impl, self.train = impl, watch.wrap("train", impl.train)

    def __getattr__(self, name):
        return getattr(self._impl, name)


def split_fit(est, X, y, repeats):
    """{part: seconds} of the best of `repeats` fits, and the epochs run."""
    originals = (_training._epochs, _sklearn_train.EpochWatch.__call__, _sklearn_train.SklearnOrder.shuffle)
    best = None
    try:
        for _ in range(repeats):
            watch = Stopwatch()

            def epochs(impl, *args, _orig=originals[0], _watch=watch):
                return _orig(TimedBackend(impl, _watch), *args)

            _training._epochs = epochs
            _sklearn_train.EpochWatch.__call__ = watch.wrap("watch", originals[1])
            _sklearn_train.SklearnOrder.shuffle = watch.wrap("shuffle", originals[2])
            start = time.perf_counter()
            est.fit(X, y)
            total = time.perf_counter() - start
            s = watch.seconds
            parts = {"total": total, "set-up (outside the loop)": total - s["train"],
                     "EpochWatch (per-epoch bookkeeping)": s.get("watch", 0.0),
                     "SklearnOrder.shuffle (row order)": s.get("shuffle", 0.0),
                     "compiled loop (rest of train)": s["train"] - s.get("watch", 0.0) - s.get("shuffle", 0.0)}
            if best is None or total < best["total"]:
                best = parts
    finally:
        _training._epochs, _sklearn_train.EpochWatch.__call__, _sklearn_train.SklearnOrder.shuffle = originals
    return best, est.n_iter_


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds; best of them (default 7)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print_header(COMMAND)
    warnings.simplefilter("ignore", ConvergenceWarning)
    X, y = load_digits(return_X_y=True)
    X_train, _, y_train, _ = scaled_split(X, y, 0)
    n_classes = len(np.unique(y))
    epochs = sklearn.neural_network.MLPClassifier(random_state=0).fit(X_train, y_train).n_iter_
    batch = min(200, X_train.shape[0])
    kw = dict(random_state=0, max_iter=epochs, tol=0.0)
    sk = sklearn.neural_network.MLPClassifier(**kw)
    est = fastmlp.MLPClassifier(backend="cython", **kw)
    net = fastmlp.MLP([X_train.shape[1], HIDDEN, n_classes], activation="relu", output="softmax",
                      l2=ALPHA / batch, seed=0, backend="cython")

    def est_one_thread():
        with blas_threads(1):
            est.fit(X_train, y_train)

    fits = {
        f"scikit-learn {sklearn.__version__} MLPClassifier": lambda: sk.fit(X_train, y_train),
        "fastmlp.MLPClassifier": lambda: est.fit(X_train, y_train),
        "fastmlp.MLP, same network and steps": lambda: net.fit(
            X_train, y_train, epochs=epochs, lr=LR, batch_size=batch, shuffle=True, optimizer="adam"),
        "GEMM floor (np.matmul, out=)": gemm_floor(X_train, n_classes, batch, epochs),
    }
    print()
    print(f"digits, seed 0: {X_train.shape[0]}x{X_train.shape[1]} training rows, 64-{HIDDEN}-{n_classes}, "
          f"batch {batch}, Adam, {epochs} epochs (scikit-learn's n_iter_ at its defaults; every row runs "
          f"exactly these: max_iter={epochs}, tol=0); best of {args.repeats} interleaved rounds")
    header = f"{'fit':<44} {'default threads ms':>19} {'sk / row':>9} {'BLAS 1 thread ms':>17} {'sk / row':>9}"
    print(header)
    print("-" * len(header))
    sk_name = next(iter(fits))
    best = {}
    with OtherLoad() as load:
        for threads in (None, 1):
            with blas_threads(threads):
                times = interleaved({**fits, "fastmlp.MLPClassifier in threadpool_limits(1)": est_one_thread}
                                    if threads is None else fits, args.repeats)
            best[threads] = {k: min(v) for k, v in times.items()}
    for name in best[None]:
        cols = ""
        for threads in (None, 1):
            t = best[threads].get(name)
            if t is None:
                cols += f" {'-':>19} {'-':>9}" if threads is None else f" {'-':>17} {'-':>9}"
                continue
            ratio = "(ref)" if name == sk_name else f"{best[threads][sk_name] / t:.2f}x"
            cols += (f" {1e3 * t:>19.1f} {ratio:>9}" if threads is None else f" {1e3 * t:>17.1f} {ratio:>9}")
        print(f"{name:<44}{cols}")
    print("    sk / row: scikit-learn's time at the same BLAS setting / the row's; the threadpool_limits(1) "
          "row is compared with scikit-learn at its default threads")
    if load.line() is not None:
        print(load.line())

    print()
    print(f"fastmlp.MLPClassifier's fit, split (BLAS 1 thread, best of {args.repeats} by total):")
    with blas_threads(1):
        parts, n_iter = split_fit(est, X_train, y_train, args.repeats)
    total = parts["total"]
    for name, seconds in parts.items():
        per_epoch = f"{1e6 * seconds / n_iter:>9.1f} us/epoch" if name != "total" else ""
        print(f"  {name:<38} {1e3 * seconds:>8.2f} ms {100 * seconds / total:>6.1f}%  {per_epoch}")
    print(f"  ({n_iter} epochs; the compiled loop includes the per-epoch save point and the Python-C "
          "transitions around the two callbacks)")
    print()
    print(f"total run time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
