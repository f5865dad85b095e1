"""The command line's CSV commands: ``fastmlp train``, ``predict``, ``evaluate``, ``info``.

Models are scikit-learn estimators (``MLPClassifier``, ``MLPRegressor``) kept in the files
of ``_estimator_io``; ``predict``, ``evaluate`` and ``info`` also read a plain ``MLP.save``
file. Bad input ends the command with exit status 2 and a one-line message (`run`).
"""

import argparse
import math
import os
import signal
import sys
import threading
import time
import warnings

from . import _cli_io, _cli_models
from ._cli_io import UsageError

BACKENDS = ("auto", "cython", "numpy")
SOLVERS = ("adam", "sgd", "adamw", "rprop", "lbfgs")
ACTIVATIONS = ("relu", "tanh", "logistic", "identity", "leaky_relu", "gelu")


class Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (no usage block) and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _checked(kind, what, accept):
    """An argparse type: `text` as a `kind` for which accept(value) holds."""
    def convert(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value
    return convert


POSITIVE_INT = _checked(int, "a positive integer", lambda n: n >= 1)
POSITIVE = _checked(float, "a positive number", lambda x: 0 < x < math.inf)
NON_NEGATIVE = _checked(float, "a number >= 0", lambda x: 0 <= x < math.inf)
FRACTION = _checked(float, "a fraction in (0, 1)", lambda x: 0 < x < 1)
SEED = _checked(int, "an integer in [0, 2**32)", lambda n: 0 <= n < 2**32)
WIDTH = _checked(int, "a positive integer width", lambda n: n >= 1)


def _batch_size(text):
    return text if text == "auto" else _checked(int, "'auto' or a positive integer", lambda n: n >= 1)(text)


# ================================================================== parsers


def add_commands(sub):
    """Add train, predict, evaluate and info to the subparsers `sub`."""
    train = sub.add_parser("train", help="train a network on a CSV file and save it",
                           description="Train an MLPClassifier or MLPRegressor on the columns of a CSV file "
                                       "(a header row; every column but the target and --drop is a numeric feature).")
    train.add_argument("data", metavar="DATA.csv")
    train.add_argument("--target", required=True, metavar="COLUMN", help="the column to predict")
    train.add_argument("--output", "-o", required=True, metavar="MODEL", help="model file to write (.npz)")
    train.add_argument("--drop", nargs="+", default=[], metavar="COLUMN",
                       help="columns that are not features (ids, other targets)")
    train.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                       help="auto: a text, boolean or few-valued integer target is classification")
    train.add_argument("--hidden", type=WIDTH, nargs="+", default=[100], metavar="N",
                       help="hidden layer widths (default: 100)")
    train.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    train.add_argument("--epochs", type=POSITIVE_INT, default=200, metavar="N",
                       help="maximum epochs (L-BFGS: iterations), default 200")
    train.add_argument("--lr", type=POSITIVE, default=0.001,
                       help="initial learning rate (default 0.001)")
    train.add_argument("--solver", choices=SOLVERS, default="adam")
    train.add_argument("--batch-size", type=_batch_size, default="auto", metavar="N",
                       help="'auto' (min(200, rows)) or N")
    train.add_argument("--alpha", type=NON_NEGATIVE, default=1e-4, metavar="A",
                       help="L2 penalty (default 0.0001)")
    train.add_argument("--seed", type=SEED, default=None, metavar="N",
                       help="random seed of the weights, shuffling and validation split")
    train.add_argument("--early-stopping", action="store_true",
                       help="hold out --validation-fraction of the rows and stop when their score stalls")
    train.add_argument("--validation-fraction", type=FRACTION, default=None, metavar="F",
                       help="rows held out by --early-stopping (default 0.1)")
    train.add_argument("--backend", choices=BACKENDS, default="auto")
    train.add_argument("--plot", metavar="FILE", help="save the loss curve to this image (.png, .svg, .pdf)")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="a progress bar on stderr (default: when stderr is a terminal)")
    train.set_defaults(handler=train_command)

    predict = sub.add_parser("predict", help="predict the rows of a CSV file",
                             description="Predictions (class labels or values) for each row of a CSV file.")
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("data", metavar="DATA.csv")
    predict.add_argument("--output", "-o", metavar="FILE", help="write a CSV file instead of printing")
    predict.add_argument("--proba", action="store_true", help="add each class's probability")
    predict.add_argument("--backend", choices=BACKENDS, default=None)
    predict.set_defaults(handler=predict_command)

    evaluate = sub.add_parser("evaluate", help="score a model on a CSV file",
                              description="Accuracy (classification) or R² and RMSE (regression).")
    evaluate.add_argument("model", metavar="MODEL")
    evaluate.add_argument("data", metavar="DATA.csv")
    evaluate.add_argument("--target", metavar="COLUMN", help="the true values (default: the model's target)")
    evaluate.add_argument("--backend", choices=BACKENDS, default=None)
    evaluate.set_defaults(handler=evaluate_command)

    info = sub.add_parser("info", help="describe a model file")
    info.add_argument("model", metavar="MODEL")
    info.set_defaults(handler=info_command)


# ================================================================== running


def run(handler, args):
    """Call handler(args); bad input becomes a one-line message on stderr and status 2."""
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        try:
            return handler(args) or 0
        except UsageError as exc:
            message = str(exc)
        except BrokenPipeError:             # the reader went away (| head): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        except FileNotFoundError as exc:
            message = f"no such file: {exc.filename}"
        except (OSError, ValueError, TypeError, ImportError) as exc:
            message = str(exc)
        except MemoryError as exc:
            message = f"out of memory{': ' + str(exc) if str(exc) else ''}"
        except KeyboardInterrupt as exc:
            print(f"fastmlp: interrupted{': ' + str(exc) if str(exc) else ''}", file=sys.stderr)
            return 130
    print(f"fastmlp: error: {_one_line(message)}", file=sys.stderr)
    return 2


def _one_line(message, limit=400):
    """`message` on one line, at most about `limit` characters (a library's message may quote
    a whole column)."""
    message = " ".join(message.split())
    return message if len(message) <= limit else message[:limit].rsplit(" ", 1)[0] + " ..."


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"fastmlp: warning: {' '.join(str(message).split())}", file=sys.stderr)


# ================================================================== commands


class Interrupts:
    """``with Interrupts() as interrupts``: Ctrl-C (SIGINT) noted in `received` as well as
    raised as KeyboardInterrupt, so that a fit which catches it and returns early (as the
    estimators do, keeping the epochs so far) is still known to have been interrupted; after
    `defer()`, noted only, so that the files being moved into place all are. Does nothing
    outside the main thread or when SIGINT is not Python's default (ignored, or handled by
    the program calling `main`)."""

    def __init__(self):
        self.received = self.deferred = False
        self.previous = None

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = True
        if not self.deferred:
            raise KeyboardInterrupt

    def defer(self):
        self.deferred = True

    def __exit__(self, *exc_info):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
        return False


def train_command(args):
    if args.validation_fraction is not None and not args.early_stopping:
        raise UsageError("--validation-fraction sets the rows --early-stopping holds out: give both")
    _cli_io.existing_file(args.data, "CSV file")
    model_path = _cli_io.writable(_cli_io.model_file(args.output), "model file")
    if args.plot:
        _cli_io.plot_path(args.plot)
    unchanged = f"{model_path} left as it was" if os.path.exists(model_path) else f"{model_path} not written"
    plot = None
    try:
        with Interrupts() as interrupts:
            est, X, y, task, seconds = _trained(args)
            if interrupts.received:       # the estimator stopped early on Ctrl-C: nothing is saved
                raise KeyboardInterrupt
            if args.plot:
                plot = _cli_io.write_beside(args.plot, lambda name: _cli_models.plot_loss(est, name))
            interrupts.defer()            # from here, the files are written and moved into place
            path = _cli_models.save(est, model_path, {"target": args.target, "task": task})
            if plot is not None:
                os.replace(plot, args.plot)
                plot = None
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"nothing saved ({unchanged})") from None
    finally:
        _cli_io.discard(plot)
    for line in _cli_models.summary(est, args.data, X, y, seconds, path, args.plot):
        print(line)


def _trained(args):
    """(fitted estimator, features, target column, task, seconds the fit took) of `fastmlp train`."""
    frame = _cli_io.read_csv(args.data)
    y = _cli_io.column(frame, args.target, args.data)
    for name in args.drop:
        _cli_io.column(frame, name, args.data)
    features = [name for name in frame.columns if name != args.target and name not in args.drop]
    X = _cli_io.numeric_features(frame, features, args.data, " (or leave it out with --drop COLUMN)")
    if X.shape[1] == 0:
        raise UsageError(f"{args.data} has no feature columns besides the target {args.target!r}")
    task = _cli_io.infer_task(y) if args.task == "auto" else args.task
    if task == "regression" and y.dtype.kind not in "iuf":
        raise UsageError(f"target column {args.target!r} is not numeric: it cannot be a regression target")
    if task == "classification":
        _cli_io.class_labels(y, args.target, args.data)
    batch = len(X) if args.solver == "lbfgs" else min(200 if args.batch_size == "auto" else args.batch_size, len(X))
    _cli_models.check_memory([X.shape[1], *args.hidden, _cli_models.outputs(task, y)], batch)
    est = _cli_models.estimator(task, args)
    start = time.perf_counter()
    _cli_models.fit(est, X, y.to_numpy())
    return est, X, y, task, time.perf_counter() - start


def predict_command(args):
    if args.output:
        _cli_io.writable(args.output)
    model, meta, frame = _model_and_data(args.model, args.data, args.backend)
    target = meta.get("target") if meta else None
    X = _features(model, meta, frame, args.data, target)
    predicted = _cli_models.predictions(model, X, args.proba, target or "prediction")
    if args.output:     # written beside, then moved over any earlier file: never half a file
        written = _cli_io.write_beside(args.output, lambda name: predicted.to_csv(name, index=False))
        try:
            os.replace(written, args.output)
        finally:
            _cli_io.discard(written)       # (gone once moved)
        print(f"wrote {len(predicted)} predictions to {args.output}")
    else:
        predicted.to_csv(sys.stdout, index=False, lineterminator="\n")


def evaluate_command(args):
    model, meta, frame = _model_and_data(args.model, args.data, args.backend)
    target = args.target or (meta.get("target") if meta else None)
    if target is None:
        raise UsageError(f"{args.model} does not name its target column: give --target COLUMN")
    y = _cli_io.column(frame, target, args.data)
    X = _features(model, meta, frame, args.data, target)
    for name, value in _cli_models.scores(model, X, y, target):
        print(f"{name}: {value:.3f}" if name != "rmse" else f"{name}: {value:.4g}")


def _model_and_data(model_path, data_path, backend):
    """(model, its metadata, the CSV file's DataFrame) for predict and evaluate."""
    _cli_io.existing_file(model_path, "model file")
    _cli_io.existing_file(data_path, "CSV file")
    model, meta = _cli_models.load(model_path, backend)
    return model, meta, _cli_io.read_csv(data_path)


def _features(model, meta, frame, path, target):
    """The columns of `frame` that `model` reads."""
    names = getattr(model, "feature_names_in_", None)
    n_features = model.layer_sizes[0] if meta is None else model.n_features_in_
    return _cli_io.model_features(frame, path, names, n_features, target)


def info_command(args):
    _cli_io.existing_file(args.model, "model file")
    for key, value in _cli_models.describe(args.model):
        print(f"{key + ':':<16}{value}")

