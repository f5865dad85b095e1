"""Command line: ``python -m fastmlp xor`` trains the seed's XOR network and reports it;
``train``, ``predict``, ``evaluate`` and ``info`` work with CSV files (see ``_cli``)."""

import sys
import time

from . import __version__, _cli

# (imported by the commands that need them, so that --help and --version stay quick:
# NumPy, the backends, pandas and scikit-learn)
XOR = ([[0, 0], [0, 1], [1, 0], [1, 1]], [[0], [1], [1], [0]])


def xor_data():
    """The seed's XOR inputs and targets, as float arrays."""
    import numpy as np

    return np.array(XOR[0], dtype=float), np.array(XOR[1], dtype=float)


def xor_model(backend="auto", dtype="float64"):
    """The seed's network: 2-4-1, Leaky ReLU, sigmoid + BCE, N(0, 0.1^2) weights, seed 42."""
    from . import MLP

    return MLP([2, 4, 1], activation="leaky_relu", output="sigmoid", loss="bce", init="normal",
               init_scale=0.1, seed=42, dtype=dtype, backend=backend)


def _xor(args):
    from . import _cli_io

    XOR_X, XOR_Y = xor_data()
    if args.plot:
        _cli_io.plot_path(args.plot)
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
    if args.plot:
        plot_xor(net, args.plot)
        print(f"decision boundary: {args.plot}")
    return 0


def plot_xor(net, path):
    """Save the decision boundary `net` learned on XOR, with the four points, to `path`."""
    from . import _cli_io, plot

    XOR_X, XOR_Y = xor_data()
    fig, ax = _cli_io.figure()
    plot.decision_boundary(net, XOR_X, XOR_Y, ax=ax)
    ax.set_title("XOR: P(1) learned by the 2-4-1 network")
    _cli_io.save_figure(fig, path)


def parser():
    """The ``fastmlp`` argument parser: ``--version``, ``xor`` and the CSV commands."""
    main_parser = _cli.Parser(prog="fastmlp", description="Fast multi-layer perceptrons on the CPU: the seed's "
                              "XOR demo, and networks trained on, applied to and scored on CSV files.")
    main_parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    sub = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    xor = sub.add_parser("xor", help="train the seed's XOR network and print its predictions")
    xor.add_argument("--backend", choices=("auto", "cython", "numpy"), default="auto")
    xor.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    xor.add_argument("--epochs", type=int, default=5000)
    xor.add_argument("--lr", type=float, default=0.1)
    xor.add_argument("--plot", metavar="FILE", help="save the learned decision boundary to this image")
    xor.set_defaults(handler=_xor)
    _cli.add_commands(sub)
    return main_parser


def main(argv=None):
    args = parser().parse_args(argv)
    return _cli.run(args.handler, args)


if __name__ == "__main__":
    sys.exit(main())
