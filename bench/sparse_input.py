"""Sparse input (TF-IDF-like features): fastmlp's estimators on a CSR X beside the same
fit on the dense X, and beside scikit-learn's MLPClassifier on the same CSR X.

Data: `n` rows of `d` features with `density` of them non-zero (log-normal values, rows
scaled to unit length as TF-IDF rows are), a binary label from a sparse linear rule.
Every fit: hidden (64,), Adam, batch 200, `epochs` epochs (tol=0 so all run), the same
random_state; the estimators draw the same initial weights and rows, so the three agree
on the training loss (printed) and differ only in speed and memory.

Run: ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/sparse_input.py``
(``--rows``, ``--features``, ``--density``, ``--epochs``, ``--repeats``).
"""

import argparse
import statistics
import sys
import warnings

import numpy as np
import scipy.sparse as sp

from _common import OtherLoad, fastmlp, interleaved, print_header


def tfidf_like(n, d, density, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=seed,
                  data_rvs=lambda k: rng.lognormal(0.0, 1.0, k))
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
    X = sp.diags(1 / np.maximum(norms, 1e-12)) @ X
    w = sp.random(d, 1, density=0.05, random_state=seed + 1).toarray().ravel() * 50
    y = (X @ w > np.median(X @ w)).astype(int)
    return X.tocsr(), y


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--features", type=int, default=20000)
    parser.add_argument("--density", type=float, default=0.002)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print_header("python bench/sparse_input.py")
    from sklearn.neural_network import MLPClassifier as SklearnMLP

    X, y = tfidf_like(args.rows, args.features, args.density)
    dense = X.toarray()
    print(f"\nX: {X.shape[0]} x {X.shape[1]} CSR, {X.nnz} non-zeros ({X.nnz / np.prod(X.shape):.2%}); "
          f"{X.data.nbytes + X.indices.nbytes + X.indptr.nbytes >> 20} MB sparse, {dense.nbytes >> 20} MB dense")
    options = dict(hidden_layer_sizes=(64,), max_iter=args.epochs, tol=0.0, n_iter_no_change=10 ** 6,
                   random_state=0)
    fits, losses = {}, {}

    def fit(name, make, data):
        def run():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                losses[name] = make(**options).fit(data, y).loss_
        fits[name] = run

    fit("fastmlp cython, CSR X", lambda **o: fastmlp.MLPClassifier(backend="cython", **o), X)
    fit("fastmlp cython, dense X", lambda **o: fastmlp.MLPClassifier(backend="cython", **o), dense)
    fit("fastmlp numpy, CSR X", lambda **o: fastmlp.MLPClassifier(backend="numpy", **o), X)
    fit("scikit-learn, CSR X", SklearnMLP, X)
    with OtherLoad() as load:
        times = interleaved(fits, args.repeats)
    base = statistics.median(times["fastmlp cython, CSR X"])
    print(f"\n{'fit (' + str(args.epochs) + ' epochs)':<26} {'median s':>9} {'best s':>8} {'vs cython CSR':>14} {'final loss':>11}")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{name:<26} {median:9.3f} {min(seconds):8.3f} {median / base:13.2f}x {losses[name]:11.5f}")
    line = load.line()
    if line:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
