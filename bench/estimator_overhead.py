"""What the scikit-learn estimator layer costs over ``fastmlp.MLP`` doing the same work.

Issue 9's target: ``fastmlp.MLPClassifier`` / ``MLPRegressor`` within 5% of ``MLP`` on
the benchmark suite's tabular and medium jobs. The jobs' sizes, batch, epochs and rate
are read from ``test_bench_tabular.py`` and ``test_bench_medium.py``:

- tabular: 4096 x 32 float64, 32-64-64-1, batch 32, 10 epochs, lr 0.01;
- medium: 8192 x 784, 784-256-256-1, batch 128, 1 epoch, lr 0.01, float64 and float32.

Each job runs as four configurations: plain SGD (the jobs' optimizer) and Adam, each
without and with shuffling. Every configuration is fitted three ways, with the same
network (Leaky ReLU 0.01, sigmoid + BCE; identity + MSE for the regressor), optimizer,
batch size and number of epochs, from scratch (each ``fit`` re-initialises):

- ``MLP``: ``fastmlp.MLP(sizes, ...).fit(X, y, epochs=E, lr=lr, batch_size=B, shuffle=S,
  optimizer=...)``;
- ``MLPClassifier(hidden_layer_sizes=..., activation="leaky_relu", solver=..., alpha=0,
  momentum=0, batch_size=B, learning_rate_init=lr, max_iter=E, shuffle=S, tol=0,
  n_iter_no_change=inf, backend="cython")``: every epoch runs (no stopping rule; the
  ConvergenceWarning at max_iter is silenced); binary labels give the same single
  sigmoid output and BCE loss;
- ``MLPRegressor(...)`` with the same arguments, against ``MLP(output="identity")``.

What the estimators add is theirs to pay: scikit-learn's input validation (``validate_data``
checks X for NaN/inf), label encoding, scikit-learn's Glorot initialisation drawn from a
``RandomState``, its row order (``RandomState.shuffle`` each epoch) and its per-epoch
bookkeeping (the training loop calls back after every epoch).

The four fits of a configuration run in interleaved rounds (MLP, classifier, MLP for the
regressor, regressor, MLP, ...), twice: with BLAS at its default threads, as the benchmark
suite runs (wall clock), and with BLAS limited to one thread (threadpoolctl), timed by
the thread's CPU time, which leaves out the time other processes of the same system held
the core (not a VM's steal time; see ``_common.timed_rounds``). Each ratio is the median
over rounds of (estimator time / the same round's MLP time). On a machine too busy for
either, ``callgrind_estimators.py`` counts the instructions of the same fits.

Run (about 2 minutes on a 2-core machine)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/estimator_overhead.py
"""

import argparse
import importlib
import time
import warnings

import numpy as np
from _common import (
    OtherLoad,
    blas_threads,
    fastmlp,
    make_data,
    print_header,
    timed_rounds,
)
from sklearn.exceptions import ConvergenceWarning

COMMAND = "python bench/estimator_overhead.py"
TARGET = 1.05
SLOPE = 0.01
CONFIGS = (("sgd", False), ("sgd", True), ("adam", False), ("adam", True))


def jobs():
    """(name, X, y, sizes, batch, epochs, lr, repeats) of the tabular and medium jobs, as the
    benchmark suite's modules define them (imported here, after _common has made fastmlp
    importable: they import it themselves)."""
    medium, tabular = importlib.import_module("test_bench_medium"), importlib.import_module("test_bench_tabular")
    X, y = make_data(tabular.N, tabular.D, seed=1, dtype=np.float64)
    yield ("tabular", X, y, tabular.SIZES, tabular.BATCH, tabular.EPOCHS, tabular.LR, 15)
    for dtype in ("float64", "float32"):
        X, y = make_data(medium.N, medium.D, seed=2, dtype=np.dtype(dtype))
        yield (f"medium {dtype}", X, y, medium.SIZES, medium.BATCH, medium.EPOCHS, medium.LR, 7)


def variants(X, y, sizes, batch, epochs, lr, optimizer, shuffle):
    """{"MLP", "MLPClassifier", "MLPRegressor"} -> a zero-argument fit; plus "MLP (regr)"."""
    dtype = X.dtype.name
    fit_kw = dict(epochs=epochs, lr=lr, batch_size=batch, shuffle=shuffle, optimizer=optimizer)
    classifier = fastmlp.MLP(sizes, activation="leaky_relu", negative_slope=SLOPE, output="sigmoid",
                             loss="bce", seed=0, dtype=dtype, backend="cython")
    regressor = fastmlp.MLP(sizes, activation="leaky_relu", negative_slope=SLOPE, output="identity",
                            loss="mse", seed=0, dtype=dtype, backend="cython")
    est_kw = dict(hidden_layer_sizes=tuple(sizes[1:-1]), activation="leaky_relu", negative_slope=SLOPE,
                  solver=optimizer, alpha=0.0, momentum=0.0, batch_size=batch, learning_rate_init=lr,
                  max_iter=epochs, shuffle=shuffle, tol=0.0, n_iter_no_change=np.inf, random_state=0,
                  backend="cython")
    clf, reg = fastmlp.MLPClassifier(**est_kw), fastmlp.MLPRegressor(**est_kw)
    labels = y.ravel()
    # MLPRegressor's squared error is half fastmlp's mse: its SGD steps with 0.5 * lr (see
    # _sklearn_train); the MLP row takes the same steps
    reg_lr = {**fit_kw, "lr": 0.5 * lr if optimizer == "sgd" else lr}
    return {
        "MLP": lambda: classifier.fit(X, y, **fit_kw),
        "MLPClassifier": lambda: clf.fit(X, labels),
        "MLP (regr)": lambda: regressor.fit(X, y, **reg_lr),
        "MLPRegressor": lambda: reg.fit(X, labels),
    }


def ratio(times, name, reference):
    """Median over rounds of times[name] / times[reference]."""
    return float(np.median(np.array(times[name]) / np.array(times[reference])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=float, default=1.0, help="scale each job's rounds (default 1)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print_header(COMMAND)
    results = []
    for name, X, y, sizes, batch, epochs, lr, rounds in jobs():
        rounds = max(3, round(rounds * args.rounds))
        print()
        print(f"=== {name}: {X.shape[0]}x{X.shape[1]} {X.dtype}, {'-'.join(map(str, sizes))}, batch {batch}, "
              f"{epochs} epoch{'s' if epochs > 1 else ''}, lr {lr}; {rounds} interleaved rounds per setting")
        print(f"{'':<20} {'default BLAS threads, wall clock':^42} | {'BLAS 1 thread, thread CPU time':^42}")
        half = f"{'MLP ms':>8} {'Clf ms':>8} {'Clf/MLP':>8} {'Reg ms':>7} {'Reg/MLP':>8}"
        header = f"{'optimizer, shuffle':<20} {half}  | {half}"
        print(header)
        print("-" * len(header))
        with OtherLoad() as load, warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for optimizer, shuffle in CONFIGS:
                fits = variants(X, y, sizes, batch, epochs, lr, optimizer, shuffle)
                cols = []
                for threads in (None, 1):
                    with blas_threads(threads):
                        wall, cpu = timed_rounds(fits, rounds)
                    times = wall if threads is None else cpu
                    clf, reg = ratio(times, "MLPClassifier", "MLP"), ratio(times, "MLPRegressor", "MLP (regr)")
                    setting = "default threads, wall" if threads is None else "1 thread, CPU"
                    results += [(clf, name, optimizer, shuffle, "MLPClassifier", setting),
                                (reg, name, optimizer, shuffle, "MLPRegressor", setting)]
                    ms = {k: 1e3 * min(v) for k, v in times.items()}
                    cols.append(f"{ms['MLP']:>8.1f} {ms['MLPClassifier']:>8.1f} {clf:>8.3f} "
                                f"{ms['MLPRegressor']:>7.1f} {reg:>8.3f}")
                print(f"{optimizer + (', shuffle' if shuffle else ', no shuffle'):<20} {cols[0]}  | {cols[1]}")
        if load.line() is not None:
            print(load.line())
    print()
    print("Clf/MLP, Reg/MLP = median over rounds of the estimator's time / the same round's MLP time "
          "(Reg against MLP with an identity output and MSE); ms = best time")
    for setting in ("default threads, wall", "1 thread, CPU"):
        top = max(r for r in results if r[5] == setting)
        print(f"largest overhead ({setting}): {top[4]} on {top[1]}, {top[2]}, shuffle={top[3]}: "
              f"{top[0]:.3f}x (target < {TARGET:.2f}x: {'met' if top[0] < TARGET else 'missed'})")
    print(f"total run time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
