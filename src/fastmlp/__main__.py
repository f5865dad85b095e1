"""Command line: ``python -m fastmlp xor`` trains the seed's XOR network and reports it."""

import argparse
import sys
import time

import numpy as np

from . import MLP

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=float)


def xor_model(backend="auto", dtype="float64"):
    """The seed's network: 2-4-1, Leaky ReLU, sigmoid + BCE, N(0, 0.1^2) weights, seed 42."""
    return MLP([2, 4, 1], activation="leaky_relu", output="sigmoid", loss="bce", init="normal",
               init_scale=0.1, seed=42, dtype=dtype, backend=backend)


def _xor(args):
    net = xor_model(args.backend, args.dtype)
    start = time.perf_counter()
    net.fit(XOR_X, XOR_Y, epochs=args.epochs, lr=args.lr)
    seconds = time.perf_counter() - start
    proba = net.predict_proba(XOR_X)[:, 0]
    print(f"XOR, 2-4-1 MLP, {args.epochs} full-batch epochs at lr={args.lr} ({args.dtype})")
    print("Predictions after training:")
    for inputs, p in zip(XOR_X.astype(int), proba):
        print(f"  {inputs} -> {p:.4f}")
    print(f"final loss: {net.loss(XOR_X, XOR_Y):.6f}")
    print(f"backend: {net.backend}")
    print(f"training time: {seconds * 1e3:.3f} ms")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="fastmlp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    xor = sub.add_parser("xor", help="train the seed's XOR network and print its predictions")
    xor.add_argument("--backend", choices=("auto", "cython", "numpy"), default="auto")
    xor.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    xor.add_argument("--epochs", type=int, default=5000)
    xor.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args(argv)
    try:
        return _xor(args)
    except (ValueError, TypeError, ImportError) as exc:
        print(f"fastmlp: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
