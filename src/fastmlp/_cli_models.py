"""The command line's models: building the estimator `train` fits, saving and loading model
files, predictions, scores, and the lines `train` and `info` print."""

import difflib
import importlib.util
import os
import sys
import warnings

import numpy as np

from . import _cli_io, _estimator_io
from ._cli_io import UsageError, listing


def estimator(task, args):
    """The unfitted MLPClassifier/MLPRegressor for `task` with the options of `fastmlp train`."""
    _cli_io.require("sklearn", "cli")
    from ._sklearn import MLPClassifier, MLPRegressor

    cls = MLPClassifier if task == "classification" else MLPRegressor
    options = {} if args.validation_fraction is None else {"validation_fraction": args.validation_fraction}
    if args.scoring is not None:
        options["scoring"] = args.scoring
    if args.class_weight is not None:
        options["class_weight"] = args.class_weight
    loss = getattr(args, "loss", None)
    if loss is not None and task == "classification":
        raise UsageError(f"--loss {loss} is a regression loss; the target is classified (log-loss)")
    if loss is not None:
        options.update({"loss": loss, "delta": args.delta, "quantile": args.quantile})
    return cls(hidden_layer_sizes=tuple(args.hidden), activation=args.activation, solver=args.solver,
               alpha=args.alpha, batch_size=args.batch_size, learning_rate_init=args.lr, max_iter=args.epochs,
               random_state=args.seed, early_stopping=args.early_stopping, backend=args.backend,
               progress=_progress(args.progress), dropout=dropout(args), norm=norm(args), **options)


def norm(args):
    """`fastmlp train --norm`: one setting (for every hidden layer) or one per --hidden width;
    "none" is None."""
    kinds = [None if kind == "none" else kind for kind in getattr(args, "norm", ["none"])]
    if len(kinds) not in (1, len(args.hidden)):
        raise UsageError(f"--norm takes one setting or one per hidden layer ({len(args.hidden)}), got {len(kinds)}")
    if args.solver == "lbfgs" and "batch" in kinds:
        raise UsageError("--norm batch needs a stochastic --solver (sgd, adam, adamw, rprop), not lbfgs")
    return kinds[0] if len(kinds) == 1 else kinds


def dropout(args):
    """`fastmlp train --dropout`: one rate (for every hidden layer) or one per --hidden width."""
    rates = getattr(args, "dropout", [0.0])
    if len(rates) not in (1, len(args.hidden)):
        raise UsageError(f"--dropout takes one rate or one per hidden layer ({len(args.hidden)}), got {len(rates)}")
    if args.solver == "lbfgs" and any(rates):
        raise UsageError("--dropout needs a stochastic --solver (sgd, adam, adamw, rprop), not lbfgs")
    return rates[0] if len(rates) == 1 else tuple(rates)


def check_scoring(name):
    """A UsageError unless `name` is one of scikit-learn's scorer names."""
    _cli_io.require("sklearn", "cli")
    from sklearn.metrics import get_scorer_names

    names = get_scorer_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=4)
        hint = f"; did you mean {listing(close)}?" if close else ""
        raise UsageError(f"--scoring {name!r} is not a scikit-learn scorer name (see sklearn.metrics."
                         f"get_scorer_names()){hint}")


def outputs(task, y):
    """The output units the estimator gives target `y` (an array (n,) or (n, k)): one per
    class, one for two classes (a logistic unit), one per column of several targets."""
    if y.ndim == 2:
        return y.shape[1]
    n_classes = len(np.unique(y)) if task == "classification" else 1
    return n_classes if n_classes > 2 else 1


def target_values(frame, targets, task, path):
    """(task, y) for the target columns `targets` of `frame`: y an array (n,) for one target,
    (n, k) for several (multi-output regression, or multilabel classification of 0/1
    columns). `task`: "auto", "classification" or "regression"."""
    import pandas as pd

    columns = [frame[name] for name in targets]
    tasks = [_cli_io.infer_task(y) if task == "auto" else task for y in columns]
    if len(columns) > 1 and len(set(tasks)) > 1:
        kinds = ", ".join(f"{name} ({kind})" for name, kind in zip(targets, tasks))
        raise UsageError(f"the --target columns are not all of one task: {kinds}; train them separately, "
                         "or give --task")
    task = tasks[0]
    for name, y in zip(targets, columns):
        if task == "regression" and (not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y)):
            raise UsageError(f"target column {name!r} is not numeric: it cannot be a regression target")
        if task == "classification":
            _cli_io.class_labels(y, name, path)
            if len(columns) > 1 and not (pd.api.types.is_numeric_dtype(y) and _cli_io.is_binary(y)):
                raise UsageError(f"several --target columns are classified as 0/1 labels each (multilabel); "
                                 f"column {name!r} holds {_cli_io.some_values(y)}")
    if task == "regression":
        values = [y.to_numpy(dtype=np.float64) for y in columns]
    elif len(columns) > 1:
        values = [y.to_numpy().astype(np.int64) for y in columns]
    else:
        y = columns[0].to_numpy()
        values = [y.astype(np.int64) if y.dtype.kind == "f" else y]   # whole numbers: labels 0, 1, ...
    return task, values[0] if len(values) == 1 else np.column_stack(values)


def split(rows, y, task, test_size, seed):
    """(training rows, held-out rows) of `rows`: a shuffled split, stratified by class where
    every class has two rows or more."""
    from sklearn.model_selection import train_test_split

    stratify = y if task == "classification" and y.ndim == 1 and _stratifiable(y, test_size) else None
    try:
        return train_test_split(rows, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise UsageError(f"--test-size {test_size:g}: {exc}") from None


def _stratifiable(y, test_size):
    counts = np.unique(y, return_counts=True)[1]
    n_test = int(np.ceil(test_size * len(y)))
    return counts.min() >= 2 and n_test >= len(counts) and len(y) - n_test >= len(counts)


def folds(y, task, k, seed):
    """The (train, test) positions of `k` folds: stratified by class where every class has
    `k` rows or more."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if k > len(y):
        raise UsageError(f"--cv {k}: more folds than the {len(y)} rows")
    if task == "classification" and y.ndim == 1 and np.unique(y, return_counts=True)[1].min() >= k:
        splitter = StratifiedKFold(k, shuffle=True, random_state=seed)
    else:
        splitter = KFold(k, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(y)), y))


def check_memory(layer_sizes, batch):
    """A UsageError when training a network of `layer_sizes` on batches of `batch` rows needs
    more memory than the machine has, before anything is allocated (a request that large can
    be granted lazily and then exhaust the machine)."""
    n_params = sum((n_in + 1) * n_out for n_in, n_out in zip(layer_sizes, layer_sizes[1:]))
    # float64: weights, gradients and the two Adam moments, and each layer's pre-activations
    # and activations for one batch (a lower bound of what a fit allocates)
    needed = 8 * (4 * n_params + 2 * batch * sum(layer_sizes))
    available = physical_memory()
    if available is not None and needed > available:
        layers = "-".join(map(str, layer_sizes))
        raise UsageError(f"a {layers} network needs at least {size(needed)} of memory to train on batches of "
                         f"{batch} rows, more than this machine has ({size(available)}): use smaller --hidden "
                         "widths" + (" or --batch-size" if 2 * batch * sum(layer_sizes) > 4 * n_params else ""))


def physical_memory():
    """The machine's memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def size(n_bytes):
    """`n_bytes` in binary units: "1.5 GiB"."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n_bytes < 1024 or unit == "EiB":
            return f"{n_bytes:.3g} {unit}" if unit != "bytes" else f"{n_bytes} bytes"
        n_bytes /= 1024


def fit(est, X, y, interrupted=None):
    """est.fit(X, y) for `train`. Ctrl-C ends the fit early: the estimator keeps the epochs so
    far and warns, as scikit-learn's do; the command line says so itself (`train_command`),
    so that warning is not shown. `interrupted()`, when given, is asked after every epoch
    too, so that a Ctrl-C whose KeyboardInterrupt was lost (raised where Python only prints
    it, in a finalizer say) still ends the fit. Running out of memory is a UsageError."""
    if interrupted is not None:
        est.set_params(callback=lambda epoch, logs: not interrupted())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Training interrupted by user")
        try:
            est.fit(X, y)
        except MemoryError as exc:
            widths = " ".join(map(str, est.hidden_layer_sizes))
            raise UsageError(f"not enough memory to train a network with --hidden {widths} ({exc}): use smaller "
                             "widths or --batch-size") from None
    return est


def _progress(asked):
    """--progress / --no-progress, else a bar when stderr is a terminal and tqdm is there."""
    if asked is not None:
        if asked:
            _cli_io.require("tqdm", "progress")
        return asked
    return sys.stderr.isatty() and importlib.util.find_spec("tqdm") is not None


def save(est, path, metadata):
    return _estimator_io.save_estimator(est, path, metadata)


def load(path, backend):
    """The `Model` in a model file: an estimator (with the preprocessing `train` stored), or
    an MLP."""
    if _estimator_io.read_record(path) is not None:
        _cli_io.require("sklearn", "cli")
    model, meta = _estimator_io.load_model(path, backend)
    return Model(model, meta, path)


def is_classifier(model):
    return hasattr(model, "classes_") if hasattr(model, "n_outputs_") else model.output in ("sigmoid", "softmax")


class Model:
    """A model file's network with what `train` stored beside it: its target columns, task and
    preprocessing (`_preprocess`). Older files and plain ``MLP.save`` files have none: their
    networks read the numeric columns as they are."""

    def __init__(self, model, meta, path):
        from . import _preprocess

        self.model, self.meta, self.path = model, meta or {}, path
        targets = self.meta.get("targets", self.meta.get("target"))
        self.targets = [targets] if isinstance(targets, str) else list(targets or [])
        record = self.meta.get("preprocessing")
        try:
            self.preprocessing = None if record is None else _preprocess.Preprocessing(record)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UsageError(f"{path} is not a fastmlp model file: its preprocessing record is damaged "
                             f"({' '.join(str(exc).split())})") from None
        self.classifier = is_classifier(model)
        self.decimal = self.meta.get("decimal", ".")

    @property
    def classes(self):
        return getattr(self.model, "classes_", None)

    @property
    def multilabel(self):
        return self.classifier and len(self.targets) > 1

    def inputs(self, frame, path):
        """The network's input rows for the CSV columns `frame`."""
        from ._preprocess import PreprocessingError

        if self.preprocessing is None:
            names = getattr(self.model, "feature_names_in_", None)
            n_features = self.model.layer_sizes[0] if not self.meta else self.model.n_features_in_
            target = self.targets[0] if self.targets else None
            X = _cli_io.model_features(frame, path, names, n_features, target)
            return X if names is not None else X.to_numpy()
        absent = [name for name in self.preprocessing.record["columns"] if name not in frame.columns]
        if absent:
            raise UsageError(f"{path} lacks the model's feature column(s) {listing(absent)}; "
                             f"its columns are: {listing(frame.columns)}")
        try:
            return self.preprocessing.transform(frame, path)
        except PreprocessingError as exc:
            raise UsageError(str(exc)) from None

    def predict(self, X):
        predicted = np.asarray(self.model.predict(X))
        if self.preprocessing is not None and not self.classifier:
            predicted = self.preprocessing.unscale_target(predicted)
        return predicted

    def predict_proba(self, X):
        return np.asarray(self.model.predict_proba(X))

    def output_names(self):
        if self.targets:
            return list(self.targets)
        return ["prediction"]


# ================================================================== predictions and scores


def predictions(model, X, proba, names=None):
    """A DataFrame: a column per target (`names`, default the model's) with the predicted
    labels or values, then (with `proba`) one column of probabilities per class (multilabel:
    per target, the probability of 1)."""
    import pandas as pd

    if proba and not model.classifier:
        raise UsageError("--proba is for classifiers; this model predicts values (regression)")
    names = names or model.output_names()
    predicted = model.predict(X)
    if predicted.ndim == 1:
        predicted = predicted[:, None]
    if predicted.shape[1] != len(names):
        names = [f"{names[0]}_{k}" for k in range(predicted.shape[1])]
    frame = pd.DataFrame({name: predicted[:, k] for k, name in enumerate(names)})
    if proba:
        probabilities = model.predict_proba(X)
        if model.multilabel:
            labels = names
        else:
            classes = model.classes
            if classes is None:        # an MLP: sigmoid gives P(1), softmax one column per class index
                n = probabilities.shape[1]
                classes = [1] if n == 1 and model.model.output == "sigmoid" else range(n)
            labels = list(classes)
        for k, label in enumerate(labels):
            frame[f"proba_{label}"] = probabilities[:, k]
    return frame


def true_values(model, frame, targets, path):
    """The target columns `targets` of `frame`, checked against what `model` predicts: an
    array (n,) for one target, (n, k) for several."""
    if len(targets) != len(model.output_names()) and model.targets:
        raise UsageError(f"the model predicts {len(model.output_names())} target(s) "
                         f"({listing(model.output_names())}); --target gives {len(targets)}")
    columns = []
    for name in targets:
        y = _cli_io.column(frame, name, path)
        check_target(model, y, name)
        columns.append(y.to_numpy())
    return columns[0] if len(columns) == 1 else np.column_stack(columns)


def scores(model, X, y):
    """{name: value} of the model's predictions of the rows `X` against `y`. Classification:
    accuracy, balanced accuracy, macro F1, ROC AUC (binary; one-vs-rest for several classes;
    None when `y` holds a single class), log loss and the confusion matrix; multilabel:
    subset accuracy, macro F1, macro ROC AUC and the mean log loss of the labels; regression:
    R², RMSE and MAE (averaged over targets, and per target when there are several)."""
    from sklearn import metrics

    predicted = model.predict(X)
    n = len(y)
    if not model.classifier:
        y = np.asarray(y, dtype=np.float64)
        result = {"task": "regression", "rows": n,
                  "r2": float(metrics.r2_score(y, predicted)) if n > 1 else None,
                  "rmse": float(np.sqrt(metrics.mean_squared_error(y, predicted))),
                  "mae": float(metrics.mean_absolute_error(y, predicted))}
        if y.ndim == 2:
            result["per_target"] = {
                name: {"r2": float(metrics.r2_score(y[:, k], predicted[:, k])) if n > 1 else None,
                       "rmse": float(np.sqrt(metrics.mean_squared_error(y[:, k], predicted[:, k]))),
                       "mae": float(metrics.mean_absolute_error(y[:, k], predicted[:, k]))}
                for k, name in enumerate(model.output_names())}
        return result
    proba = model.predict_proba(X)
    if model.multilabel:
        y = np.asarray(y).astype(np.int64)
        losses = [metrics.log_loss(y[:, k], proba[:, k], labels=[0, 1]) for k in range(y.shape[1])]
        return {"task": "multilabel classification", "rows": n,
                "accuracy": float(metrics.accuracy_score(y, predicted)),
                "f1_macro": float(metrics.f1_score(y, predicted, average="macro", zero_division=0)),
                "roc_auc": _auc(lambda: metrics.roc_auc_score(y, proba, average="macro")),
                "log_loss": float(np.mean(losses))}
    classes = model.classes
    if classes is None:
        classes = np.arange(max(2, proba.shape[1]))
    classes = np.asarray(classes)
    if proba.shape[1] == 1:
        proba = np.column_stack([1 - proba[:, 0], proba[:, 0]])
    y = np.asarray(y)
    if classes.dtype.kind in "iub" and y.dtype.kind == "f":
        y = y.astype(np.int64)
    matrix = metrics.confusion_matrix(y, predicted, labels=classes)
    known = np.isin(y, classes)
    if len(classes) == 2:
        auc = _auc(lambda: metrics.roc_auc_score(y == classes[1], proba[:, 1]))
    else:
        auc = _auc(lambda: metrics.roc_auc_score(y[known], proba[known], multi_class="ovr", labels=classes))
    return {"task": "classification", "rows": n,
            "accuracy": float(metrics.accuracy_score(y, predicted)),
            "balanced_accuracy": float(_quiet(metrics.balanced_accuracy_score, y, predicted)),
            "f1_macro": float(metrics.f1_score(y, predicted, average="macro", labels=classes, zero_division=0)),
            "roc_auc": auc,
            "log_loss": float(metrics.log_loss(y[known], proba[known], labels=classes)) if known.any() else None,
            "confusion_matrix": {"labels": classes.tolist(), "rows": "true", "columns": "predicted",
                                 "matrix": matrix.tolist()}}


def _quiet(function, *args):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args)


def _auc(compute):
    """ROC AUC, or None where it is undefined (a single class in the true values)."""
    try:
        return float(_quiet(compute))
    except ValueError:
        return None


NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "f1_macro": "macro F1",
         "roc_auc": "ROC AUC", "log_loss": "log loss", "r2": "R²", "rmse": "RMSE", "mae": "MAE"}


def score_lines(result, indent=""):
    """The lines `evaluate` prints for `scores`' result."""
    lines = []
    for key, label in NAMES.items():
        if key in result:
            value = result[key]
            shown = "n/a" if value is None else (f"{value:.4g}" if key in ("rmse", "mae", "log_loss")
                                                 else f"{value:.3f}")
            if value is not None and key + "_std" in result:       # (cross-validation: over the folds)
                shown += f" (± {result[key + '_std']:.{'4g' if key in ('rmse', 'mae', 'log_loss') else '3f'}})"
            lines.append(f"{indent}{label + ':':<19}{shown}")
    for name, values in result.get("per_target", {}).items():
        lines.append(f"{indent}{name}:")
        lines += score_lines(values, indent + "  ")
    confusion = result.get("confusion_matrix")
    if confusion is not None:
        labels = [str(label) for label in confusion["labels"]]
        width = max(len(label) for label in labels + [str(v) for row in confusion["matrix"] for v in row])
        lines.append(f"{indent}confusion matrix (rows: true, columns: predicted):")
        lines.append(f"{indent}  {'':>{width}}  " + "  ".join(f"{label:>{width}}" for label in labels))
        for label, row in zip(labels, confusion["matrix"]):
            lines.append(f"{indent}  {label:>{width}}  " + "  ".join(f"{v:>{width}}" for v in row))
    return lines


def check_target(model, y, target):
    """A UsageError when the values of target column `y` cannot be compared with what `model`
    predicts: text for a regression model, or labels of another kind than its classes."""
    import pandas as pd

    values = _cli_io.some_values(y)
    if not model.classifier:
        if not pd.api.types.is_numeric_dtype(y):
            raise UsageError(f"target column {target!r} holds text ({values}), but the model predicts numbers "
                             "(regression): score it on a numeric column")
        return
    if model.multilabel:
        if not pd.api.types.is_numeric_dtype(y) or not _cli_io.is_binary(y):
            raise UsageError(f"target column {target!r} holds {values}, not the 0/1 labels the model predicts")
        return
    classes = np.asarray(model.classes if model.classes is not None else [0, 1])
    text_classes = classes.dtype.kind in "OUS"
    if _cli_io.is_text(y) != text_classes:
        kinds = ("text", "numbers") if text_classes else ("numbers", "text")
        raise UsageError(f"target column {target!r} holds {kinds[1]} ({values}), but the model's classes are "
                         f"{kinds[0]} ({listing(classes, 5)}): score it on a column of its class labels")
    if y.dtype.kind == "f" and not np.all(y.to_numpy() == np.round(y.to_numpy())):
        raise UsageError(f"target column {target!r} holds decimal numbers ({values}), not class labels like the "
                         f"model's ({listing(classes, 5)})")


# ================================================================== plots and summaries


def plot_loss(est, path):
    from . import plot

    fig, ax = _cli_io.figure()
    plot.loss_curve(est, ax=ax)
    _cli_io.save_figure(fig, path)


def summary(est, data, shape, targets, seconds, path, plot_path):
    """The lines `train` prints. `shape`: (rows, feature columns) of the data trained on."""
    rows, features = shape
    if len(targets) > 1:
        kind = "multilabel" if hasattr(est, "classes_") else "regression"
        what = f"{len(targets)} {kind} targets ({listing(targets, 8)})"
    elif hasattr(est, "classes_"):
        what = f"{len(est.classes_)} classes ({listing(est.classes_, 8)})"
    else:
        what = f"regression target {targets[0]!r}"
    layers = "-".join(str(n) for n in est._mlp.layer_sizes)
    stopped = ""
    if est.n_iter_ < est.max_iter:
        stalled = f"validation {est.scoring or 'score'}" if est.early_stopping else "training loss"
        stopped = (" (converged)" if est.solver == "lbfgs" else
                   f" (stopped: the {stalled} improved by less than {est.tol:g} for {est.n_iter_no_change} epochs)")
    lines = [
        f"data:        {data}: {rows} rows, {features} features, {what}",
        (f"model:       {type(est).__name__} {layers} ({est.activation}, {est.out_activation_}), "
         f"solver {est.solver}, backend {est._mlp.backend}"),
        f"epochs run:  {est.n_iter_} of {est.max_iter}{stopped}",
        f"final loss:  {est.loss_:.4g}",
    ]
    if est.early_stopping and getattr(est, "validation_scores_", None):
        score = est.scoring or ("accuracy" if hasattr(est, "classes_") else "r2")
        lines.append(f"validation:  best {score} {est.best_validation_score_:.3f}")
    lines.append(f"time:        {seconds:.2f} s")
    lines.append(f"saved:       {path}" + (f" (loss curve: {plot_path})" if plot_path else ""))
    return lines


def describe(path):
    """[(key, value)] that `info` prints, read without scikit-learn."""
    from ._model import MLP
    from ._persistence import load as load_mlp

    record = _estimator_io.read_record(path)
    mlp = load_mlp(MLP, path, "numpy")
    layers = "-".join(str(n) for n in mlp.layer_sizes)
    if record is None:
        history = mlp.history_["loss"]
        activation = mlp.activation if isinstance(mlp.activation, str) else ", ".join(mlp.activation)
        return [
            ("model", "fastmlp.MLP"), ("layers", layers),
            ("activations", f"{activation} (hidden), {mlp.output} (output), loss {mlp.loss_name}"),
            ("dtype", mlp.dtype.name), ("epochs trained", len(history)),
            ("final loss", f"{history[-1]:.4g}" if history else "n/a (not trained)"),
        ]
    params, fitted, meta = record["params"], record["attributes"], record["metadata"]
    lines = [("model", f"{record['class']} (scikit-learn estimator)"), ("layers", layers),
             ("activations", f"{params.get('activation')} (hidden), {fitted.get('out_activation_')} (output)")]
    if record["classes"] is not None:
        lines.append(("classes", listing(record["classes"]["values"])))
    prep = meta.get("preprocessing")
    if isinstance(prep, dict) and isinstance(prep.get("columns"), list):
        lines.append(("features", listing(prep["columns"])))
    elif record["feature_names"] is not None:
        lines.append(("features", listing(record["feature_names"])))
    targets = meta.get("targets", meta.get("target"))
    if isinstance(targets, str) or (isinstance(targets, list) and len(targets) == 1):
        lines.append(("target", targets if isinstance(targets, str) else targets[0]))
    elif isinstance(targets, list):
        lines.append(("targets", listing(targets)))
    loss = fitted.get("loss_")
    if params.get("loss") not in (None, "squared_error"):      # a regressor's other loss, with its parameter
        lines.append(("loss", params["loss"] + "".join(f" ({key} {getattr(mlp, key)})" for key in ("delta", "quantile")
                                                       if getattr(mlp, key) is not None)))
    lines += [(name, params[key] if isinstance(params[key], str) else "per class")
              for key, name in (("class_weight", "class weight"), ("scoring", "scoring")) if params.get(key)]
    lines += [("dtype", mlp.dtype.name), ("solver", params.get("solver")),
              ("epochs trained", fitted.get("n_iter_")),
              ("final loss", "n/a" if loss is None else f"{loss:.4g}")]
    if isinstance(prep, dict):
        _cli_io.require("sklearn", "cli")
        from ._preprocess import Preprocessing

        try:
            columns = Preprocessing(prep).describe()
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise UsageError(f"{path} is not a fastmlp model file: its preprocessing record is damaged "
                             f"({' '.join(str(exc).split())})") from None
        lines.append(("columns", ""))
        lines += [(f"  {name}", what) for name, what in columns]
    return lines
