"""The command line's models: building the estimator `train` fits, saving and loading model
files, predictions, scores, and the lines `train` and `info` print."""

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
    return cls(hidden_layer_sizes=tuple(args.hidden), activation=args.activation, solver=args.solver,
               alpha=args.alpha, batch_size=args.batch_size, learning_rate_init=args.lr, max_iter=args.epochs,
               random_state=args.seed, early_stopping=args.early_stopping, backend=args.backend,
               progress=_progress(args.progress), **options)


def outputs(task, y):
    """The output units the estimator gives target `y`: one per class, one for two classes
    (a logistic unit) or a regression target."""
    n_classes = y.nunique() if task == "classification" else 1
    return n_classes if n_classes > 2 else 1


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


def fit(est, X, y):
    """est.fit(X, y) for `train`. Ctrl-C ends the fit early: the estimator keeps the epochs so
    far and warns, as scikit-learn's do; the command line says so itself (`train_command`),
    so that warning is not shown. Running out of memory is a UsageError."""
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
    """(model, metadata) from a model file: an estimator, or an MLP with metadata None."""
    if _estimator_io.read_record(path) is not None:
        _cli_io.require("sklearn", "cli")
    return _estimator_io.load_model(path, backend)


def is_classifier(model):
    return hasattr(model, "classes_") if hasattr(model, "n_outputs_") else model.output in ("sigmoid", "softmax")


# ================================================================== predictions and scores


def predictions(model, X, proba, name):
    """A DataFrame: column `name` with the predicted labels or values, then (with `proba`)
    one column of probabilities per class."""
    import pandas as pd

    if proba and not is_classifier(model):
        raise UsageError("--proba is for classifiers; this model predicts values (regression)")
    data = X if hasattr(model, "feature_names_in_") else X.to_numpy()
    predicted = np.asarray(model.predict(data))
    if predicted.ndim != 1:
        raise UsageError("this model predicts several outputs per row; the command line writes one column")
    frame = pd.DataFrame({name: predicted})
    if proba:
        probabilities = model.predict_proba(data)
        classes = getattr(model, "classes_", None)
        if classes is None:        # an MLP: sigmoid gives P(1), softmax one column per class index
            n = probabilities.shape[1]
            classes = [1] if n == 1 and model.output == "sigmoid" else range(n)
        for k, label in enumerate(classes):
            frame[f"proba_{label}"] = probabilities[:, k]
    return frame


def scores(model, X, y, target):
    """[(name, value)]: accuracy for a classifier, r2 and rmse for a regressor. The target
    column `y` is checked against what the model predicts first."""
    from sklearn.metrics import accuracy_score, mean_squared_error, r2_score

    check_target(model, y, target)
    predicted = predictions(model, X, False, "p")["p"].to_numpy()
    if is_classifier(model):
        return [("accuracy", accuracy_score(y.to_numpy(), predicted))]
    return [("r2", r2_score(y, predicted)), ("rmse", float(np.sqrt(mean_squared_error(y, predicted))))]


def check_target(model, y, target):
    """A UsageError when the values of target column `y` cannot be compared with what `model`
    predicts: text for a regression model, or labels of another kind than its classes."""
    import pandas as pd

    values = _cli_io.some_values(y)
    if not is_classifier(model):
        if not pd.api.types.is_numeric_dtype(y):
            raise UsageError(f"target column {target!r} holds text ({values}), but the model predicts numbers "
                             "(regression): score it on a numeric column")
        return
    classes = np.asarray(getattr(model, "classes_", [0, 1]))
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


def summary(est, data, X, y, seconds, path, plot_path):
    """The lines `train` prints."""
    rows, features = X.shape
    if hasattr(est, "classes_"):
        what = f"{len(est.classes_)} classes ({listing(est.classes_, 8)})"
    else:
        what = f"regression target {y.name!r}"
    layers = "-".join(str(n) for n in est._mlp.layer_sizes)
    stopped = ""
    if est.n_iter_ < est.max_iter:
        stalled = "validation score" if est.early_stopping else "training loss"
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
        score = "accuracy" if hasattr(est, "classes_") else "r2"
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
    if record["feature_names"] is not None:
        lines.append(("features", listing(record["feature_names"])))
    if isinstance(meta.get("target"), str):
        lines.append(("target", meta["target"]))
    loss = fitted.get("loss_")
    lines += [("dtype", mlp.dtype.name), ("solver", params.get("solver")),
              ("epochs trained", fitted.get("n_iter_")),
              ("final loss", "n/a" if loss is None else f"{loss:.4g}")]
    return lines
