"""The command line's CSV commands: ``fastmlp train``, ``predict``, ``evaluate``, ``info``, ``export``.

Models are scikit-learn estimators (``MLPClassifier``, ``MLPRegressor``) kept in the files
of ``_estimator_io``, with the preprocessing `train` learned (``_preprocess``) in their
metadata; ``predict``, ``evaluate`` and ``info`` also read a plain ``MLP.save`` file. Bad
input ends the command with exit status 2 and a one-line message (`run`).

Importing this module imports neither NumPy, pandas, scikit-learn nor a backend: the
parsers are built from the standard library alone (``fastmlp --help`` is quick), and each
command imports what it needs when it runs. A command is one function adding its parser
to `COMMANDS`; its handler is set with ``set_defaults(handler=...)``.
"""

import argparse
import math
import os
import signal
import sys
import threading
import time
import warnings

from . import _registry

BACKENDS = ("auto", "cython", "numpy")
# the registry's names (scikit-learn's spelling, as the estimators take them): a new
# activation or optimizer is offered here without an edit
SOLVERS = (*_registry.OPTIMIZERS, "lbfgs")
ACTIVATIONS = tuple(_registry.sklearn_activations())
REGRESSION_LOSSES = tuple(_registry.SKLEARN_REGRESSION_LOSSES)


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
RATE = _checked(float, "a rate in [0, 1)", lambda x: 0 <= x < 1)
SEED = _checked(int, "an integer in [0, 2**32)", lambda n: 0 <= n < 2**32)
WIDTH = _checked(int, "a positive integer width", lambda n: n >= 1)


def _batch_size(text):
    return text if text == "auto" else _checked(int, "'auto' or a positive integer", lambda n: n >= 1)(text)


# ================================================================== parsers


def add_commands(sub):
    """Add every command of `COMMANDS` to the subparsers `sub`."""
    for add in COMMANDS:
        add(sub)


def _csv_options(parser, decimal_default="."):
    parser.add_argument("--sep", metavar="C", default=None,
                        help="the column separator (default: detected from the header: comma, semicolon or tab)")
    parser.add_argument("--decimal", metavar="C", default=decimal_default,
                        help="the decimal mark of the numbers (default: '.'" +
                             ("" if decimal_default == "." else "; predict and evaluate: the training file's") + ")")


TRAIN_DESCRIPTION = """Train an MLPClassifier or MLPRegressor on the columns of a CSV file (a header row; every
column but the targets and --drop is a feature). By default the features are prepared
before training, and the same preparation is stored in the model file and applied by
predict and evaluate: numeric columns are standardized (--no-scale to keep them as they
are) and so are regression targets (predictions are mapped back); missing values are
filled in (median, or the most frequent text; --no-impute refuses them); text columns are
one-hot encoded; date columns become numbers (year, month, day, weekday, and the time);
columns that look like IDs (a different value on every row) are left out with a notice.
--no-scale --no-impute on numeric columns trains exactly as fastmlp 0.1 did."""


def add_train(sub):
    train = sub.add_parser("train", help="train a network on a CSV file and save it",
                           description=TRAIN_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    train.add_argument("data", metavar="DATA.csv")
    train.add_argument("--target", required=True, nargs="+", metavar="COLUMN",
                       help="the column(s) to predict; several: multi-output regression, or multilabel "
                            "classification of 0/1 columns")
    train.add_argument("--output", "-o", required=True, metavar="MODEL", help="model file to write (.npz)")
    train.add_argument("--drop", nargs="+", default=[], action="extend", metavar="COLUMN",
                       help="columns that are not features (their values are not looked at)")
    train.add_argument("--include", nargs="+", default=[], action="extend", metavar="COLUMN",
                       help="use these columns as features even where they look like IDs")
    train.add_argument("--task", choices=("auto", "classification", "regression"), default="auto",
                       help="auto: a text, boolean, 0/1 or few-valued integer target is classification")
    train.add_argument("--no-scale", dest="scale", action="store_false",
                       help="do not standardize numeric features and regression targets (default: standardize)")
    train.add_argument("--no-impute", dest="impute", action="store_false",
                       help="refuse missing values instead of filling them in (default: fill in)")
    train.add_argument("--test-size", type=FRACTION, default=None, metavar="F",
                       help="hold out this fraction of the rows, train on the rest, and report the scores on it")
    train.add_argument("--cv", type=_checked(int, "an integer >= 2", lambda n: n >= 2), default=None,
                       metavar="K", help="report K-fold cross-validated scores, then train on all the rows")
    _csv_options(train)
    train.add_argument("--hidden", type=WIDTH, nargs="+", default=[100], metavar="N",
                       help="hidden layer widths (default: 100)")
    train.add_argument("--activation", choices=ACTIVATIONS, default="relu")
    train.add_argument("--dropout", type=RATE, nargs="+", default=[0.0], metavar="P",
                       help="dropout rate after each hidden activation in training: one for every hidden "
                            "layer or one per --hidden width (default 0: none; not with --solver lbfgs)")
    train.add_argument("--norm", choices=("none", "batch", "layer"), nargs="+", default=["none"],
                       help="normalization between each hidden layer's product and its activation: batch "
                            "(BatchNorm1d; not with --solver lbfgs) or layer (LayerNorm), one for every hidden "
                            "layer or one per --hidden width (default none)")
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
    train.add_argument("--scoring", metavar="NAME", default=None,
                       help="the score --early-stopping watches on the held-out rows: a scikit-learn scorer "
                            "name (f1_macro, roc_auc, neg_log_loss, neg_mean_absolute_error, ...; default: "
                            "accuracy, or R² for regression)")
    train.add_argument("--class-weight", choices=("balanced",), default=None,
                       help="classification: weigh each class by n_rows / (n_classes * its rows), so rare "
                            "classes count as much as common ones")
    train.add_argument("--loss", choices=REGRESSION_LOSSES, default=None,
                       help="regression loss, scikit-learn's names (default squared_error; huber takes --delta, "
                            "quantile --quantile)")
    train.add_argument("--delta", type=POSITIVE, default=None, metavar="D",
                       help="the threshold of --loss huber (default 1.0)")
    train.add_argument("--quantile", type=FRACTION, default=None, metavar="Q",
                       help="the quantile --loss quantile predicts (default 0.5)")
    train.add_argument("--backend", choices=BACKENDS, default="auto")
    train.add_argument("--plot", metavar="FILE", help="save the loss curve to this image (.png, .svg, .pdf)")
    train.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                       help="a progress bar on stderr (default: when stderr is a terminal)")
    train.set_defaults(handler=train_command)


def add_predict(sub):
    predict = sub.add_parser("predict", help="predict the rows of a CSV file",
                             description="Predictions (class labels or values) for each row of a CSV file, "
                                         "prepared as the model's training file was.")
    predict.add_argument("model", metavar="MODEL")
    predict.add_argument("data", metavar="DATA.csv")
    predict.add_argument("--output", "-o", metavar="FILE", help="write a CSV file instead of printing")
    predict.add_argument("--proba", action="store_true",
                         help="add one probability column per class (proba_<class>)")
    predict.add_argument("--keep", nargs="+", default=[], action="extend", metavar="COLUMN",
                         help="copy these input columns (an ID, say) to the output, before the predictions")
    _csv_options(predict, None)
    predict.add_argument("--backend", choices=BACKENDS, default=None)
    predict.set_defaults(handler=predict_command)


def add_evaluate(sub):
    evaluate = sub.add_parser("evaluate", help="score a model on a CSV file",
                              description="Classification: accuracy, balanced accuracy, macro F1, ROC AUC, log "
                                          "loss and the confusion matrix. Regression: R², RMSE and MAE.")
    evaluate.add_argument("model", metavar="MODEL")
    evaluate.add_argument("data", metavar="DATA.csv")
    evaluate.add_argument("--target", nargs="+", metavar="COLUMN",
                          help="the true values (default: the model's targets)")
    evaluate.add_argument("--json", action="store_true", help="print the scores as one JSON object")
    _csv_options(evaluate, None)
    evaluate.add_argument("--backend", choices=BACKENDS, default=None)
    evaluate.set_defaults(handler=evaluate_command)


def add_info(sub):
    info = sub.add_parser("info", help="describe a model file and what it does with each column")
    info.add_argument("model", metavar="MODEL")
    info.set_defaults(handler=info_command)


def add_export(sub):
    export = sub.add_parser("export", help="write a model file as an ONNX graph, preprocessing included",
                            description="One ONNX graph of the model and the preprocessing train learned: one "
                                        "input per CSV column (shape (N, 1); numbers as doubles, NaN where "
                                        "missing; text as strings, '' where missing). Needs "
                                        "pip install 'fastmlp[onnx]'.")
    export.add_argument("model", metavar="MODEL")
    export.add_argument("output", metavar="MODEL.onnx")
    export.set_defaults(handler=export_command)


# the commands, in the order --help lists them: each adds its parser (and handler) to `sub`
COMMANDS = [add_train, add_predict, add_evaluate, add_info, add_export]


# ================================================================== running


def run(handler, args):
    """Call handler(args); bad input becomes a one-line message on stderr and status 2."""
    from ._cli_io import UsageError

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
    from . import _cli_io, _cli_models
    from ._cli_io import UsageError

    if args.validation_fraction is not None and not args.early_stopping:
        raise UsageError("--validation-fraction sets the rows --early-stopping holds out: give both")
    for option, loss in (("delta", "huber"), ("quantile", "quantile")):
        if getattr(args, option, None) is not None and getattr(args, "loss", None) != loss:
            raise UsageError(f"--{option} is the parameter of --loss {loss}: give both")
    if args.scoring is not None:
        if not args.early_stopping:
            raise UsageError("--scoring sets the score --early-stopping watches: give both")
        _cli_models.check_scoring(args.scoring)
    _cli_io.existing_file(args.data, "CSV file")
    model_path = _cli_io.writable(_cli_io.model_file(args.output), "model file")
    if args.plot:
        _cli_io.plot_path(args.plot)
    unchanged = f"{model_path} left as it was" if os.path.exists(model_path) else f"{model_path} not written"
    plot = None
    try:
        with Interrupts() as interrupts:
            trained = _trained(args, interrupts)
            est = trained["estimator"]
            if interrupts.received:       # the estimator stopped early on Ctrl-C: nothing is saved
                raise KeyboardInterrupt
            if args.plot:
                plot = _cli_io.write_beside(args.plot, lambda name: _cli_models.plot_loss(est, name))
            interrupts.defer()            # from here, the files are written and moved into place
            path = _cli_models.save(est, model_path, trained["meta"])
            if plot is not None:
                os.replace(plot, args.plot)
                plot = None
    except KeyboardInterrupt:
        raise KeyboardInterrupt(f"nothing saved ({unchanged})") from None
    finally:
        _cli_io.discard(plot)
    for line in _cli_models.summary(est, args.data, trained["shape"], trained["meta"]["targets"],
                                    trained["seconds"], path, args.plot):
        print(line)
    for title, result in trained["reports"]:
        print(title)
        for line in _cli_models.score_lines(result, "  "):
            print(line)


def _trained(args, interrupts):
    """What `fastmlp train` did: {"estimator", "meta" (saved with it), "shape" (rows and feature
    columns trained on), "seconds" (of the final fit), "reports" ([(title, scores)])}.
    `interrupts`: the `Interrupts` of the command (a fit that Ctrl-C stopped ends it)."""
    from . import _cli_io, _cli_models, _preprocess
    from ._cli_io import UsageError

    frame = _cli_io.read_csv(args.data, args.sep, args.decimal)
    targets = list(dict.fromkeys(args.target))
    _cli_io.columns_of(frame, targets, args.data)
    _cli_io.columns_of(frame, args.drop, args.data)         # a typo; the values are not looked at
    _cli_io.columns_of(frame, args.include, args.data)
    for name in targets:
        if name in args.drop:
            raise UsageError(f"column {name!r} is both a --target and a --drop column")
        _cli_io.column(frame, name, args.data)              # no empty values
    features = [name for name in frame.columns if name not in targets and name not in args.drop]
    try:
        columns_plan = _preprocess.plan(frame, features, path=args.data, include=args.include, impute=args.impute)
    except _preprocess.PreprocessingError as exc:
        raise UsageError(str(exc)) from None
    used = [name for name in features if name not in dict(columns_plan["left_out"])]
    if not used:
        raise UsageError(f"{args.data} has no feature columns besides the target(s) {_cli_io.listing(targets)}")
    task, y = _cli_models.target_values(frame, targets, args.task, args.data)
    if args.class_weight is not None and task != "classification":
        raise UsageError("--class-weight weighs classes: the target is a regression target (give --task "
                         "classification if its values are class labels)")
    scale_target = args.scale and task == "regression"
    rows = frame.index.to_numpy()
    reports = []
    if args.test_size is not None:
        rows, held_out = _cli_models.split(rows, y, task, args.test_size, args.seed)
    if args.cv is not None:
        reports.append((f"cross-validation ({args.cv} folds):", _cross_validated(
            args, frame.loc[rows], y[_positions(frame, rows)], columns_plan, features, targets, task, scale_target,
            interrupts)))
    train_rows = _positions(frame, rows)

    def prepare(part, y_part):
        prep = _preprocess.fit(part, columns_plan, features, targets, y_part, scale=args.scale, impute=args.impute,
                               scale_target=scale_target)
        return prep, prep.transform(part, args.data)

    prep, X = prepare(frame.loc[rows], y[train_rows])
    batch = len(X) if args.solver == "lbfgs" else min(200 if args.batch_size == "auto" else args.batch_size, len(X))
    _cli_models.check_memory([X.shape[1], *args.hidden, _cli_models.outputs(task, y)], batch)
    est = _cli_models.estimator(task, args)
    start = time.perf_counter()
    _cli_models.fit(est, X, prep.scale_target(y[train_rows]), lambda: interrupts.received)
    seconds = time.perf_counter() - start
    if args.test_size is not None:
        model = _cli_models.Model(est, {"targets": targets, "preprocessing": prep.record}, args.output)
        test = frame.loc[held_out]
        reports.append((f"held out ({len(test)} rows, --test-size {args.test_size:g}):",
                        _cli_models.scores(model, prep.transform(test, args.data), y[_positions(frame, held_out)])))
    meta = {"target": targets[0] if len(targets) == 1 else targets, "targets": targets, "task": task,
            "decimal": args.decimal, "preprocessing": prep.record}
    for notice in columns_plan["notices"]:     # (after the checks: bad input is one line)
        print(f"fastmlp: notice: {notice}", file=sys.stderr)
    return {"estimator": est, "meta": meta, "shape": (len(X), len(used)), "seconds": seconds, "reports": reports}


def _positions(frame, labels):
    return frame.index.get_indexer(labels)


def _cross_validated(args, frame, y, columns_plan, features, targets, task, scale_target, interrupts):
    """The mean (and standard deviation) of each score over `args.cv` folds of `frame`, the
    preprocessing fitted on each fold's training rows only."""
    import numpy as np

    from . import _cli_models, _preprocess

    results = []
    for train, test in _cli_models.folds(y, task, args.cv, args.seed):
        part = frame.iloc[train]
        prep = _preprocess.fit(part, columns_plan, features, targets, y[train], scale=args.scale,
                               impute=args.impute, scale_target=scale_target)
        est = _cli_models.estimator(task, args)
        est.set_params(progress=False)
        with warnings.catch_warnings():     # (the final fit warns, once)
            warnings.filterwarnings("ignore", message="Stochastic Optimizer")
            _cli_models.fit(est, prep.transform(part, args.data), prep.scale_target(y[train]),
                            lambda: interrupts.received)
        if interrupts.received:
            raise KeyboardInterrupt
        model = _cli_models.Model(est, {"targets": targets, "preprocessing": prep.record}, args.output)
        results.append(_cli_models.scores(model, prep.transform(frame.iloc[test], args.data), y[test]))
    summary = {"task": results[0]["task"], "folds": len(results)}
    for key in _cli_models.NAMES:
        values = [r[key] for r in results if r.get(key) is not None] if key in results[0] else []
        if values:
            summary[key] = float(np.mean(values))
            summary[key + "_std"] = float(np.std(values))
    return summary


def predict_command(args):
    from . import _cli_io, _cli_models
    from ._cli_io import UsageError

    if args.output:
        _cli_io.writable(args.output)
    model, frame = _model_and_data(args)
    _cli_io.columns_of(frame, args.keep, args.data)
    X = model.inputs(frame, args.data)
    predicted = _cli_models.predictions(model, X, args.proba)
    clash = [name for name in args.keep if name in predicted.columns]
    if clash:
        raise UsageError(f"--keep {clash[0]}: the output has a prediction column of that name")
    for k, name in enumerate(dict.fromkeys(args.keep)):
        predicted.insert(k, name, frame[name].to_numpy())
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
    import json

    from . import _cli_io, _cli_models
    from ._cli_io import UsageError

    model, frame = _model_and_data(args)
    targets = args.target or model.targets
    if not targets:
        raise UsageError(f"{args.model} does not name its target column: give --target COLUMN")
    _cli_io.columns_of(frame, targets, args.data)
    X = model.inputs(frame, args.data)
    y = _cli_models.true_values(model, frame, targets, args.data)
    result = _cli_models.scores(model, X, y)
    if args.json:
        print(json.dumps(result))
    else:
        for line in _cli_models.score_lines(result):
            print(line)


def _model_and_data(args):
    """(the model, the CSV file's DataFrame) for predict and evaluate."""
    from . import _cli_io, _cli_models

    _cli_io.existing_file(args.model, "model file")
    _cli_io.existing_file(args.data, "CSV file")
    model = _cli_models.load(args.model, args.backend)
    return model, _cli_io.read_csv(args.data, args.sep, args.decimal or model.decimal, args.decimal is not None)


def export_command(args):
    from . import _cli_io
    from ._onnx_model_file import export_model_file

    _cli_io.existing_file(args.model, "model file")
    _cli_io.writable(args.output, "ONNX file")
    export_model_file(args.model, args.output)      # written whole, or not at all
    print(f"wrote {args.output}")


def info_command(args):
    from . import _cli_io, _cli_models

    _cli_io.existing_file(args.model, "model file")
    for key, value in _cli_models.describe(args.model):
        print(f"{key + ':':<16}{value}".rstrip())
