"""Files for the scikit-learn estimators, in the model file format of ``MLP.save``.

An estimator's file is its network's ``MLP.save`` archive (config, params, history; see
``_persistence``) plus one more 0-d str member, ``estimator``, holding JSON:

================  =============================================================================
format            1
class             "MLPClassifier" or "MLPRegressor"
params            the constructor arguments (``get_params()``; a RandomState instance and
                  a ``callback`` function are written as null; ``scoring`` and
                  ``class_weight`` only when set, a callable scoring left out, and a
                  class_weight dict as {"items": [[label, weight], ...]}, a list of dicts as
                  a list of those, since JSON keys are strings)
attributes        the fitted bookkeeping: n_iter_, t_, n_features_in_, n_outputs_, n_layers_,
                  out_activation_, loss_, loss_curve_, validation_scores_,
                  validation_loss_curve_, best_validation_score_, best_loss_ and the private
                  counters the estimators keep between calls (those the fit set; L-BFGS sets
                  fewer; files from before validation_loss_curve_ load with it None)
feature_names     ``feature_names_in_`` (column names of a pandas X) or null
classes           {"dtype": numpy dtype string, "values": [...], "y_type": "binary", ...}
                  for a classifier, null for a regressor
metadata          whatever JSON object the caller gave `save_estimator` (the command line
                  keeps the target column's name there)
================  =============================================================================

``fastmlp.load`` still reads such a file (as the bare network: it ignores the extra
member), and nothing in it is pickled: everything is read with ``_persistence``'s checked
reader, and every field of the record is checked against what a real fit leaves there
(classes unique and sorted, counts >= 0, finite losses, the output activation of the
record's class, curves of one length) before use: ModelFileError naming the field. What is not kept is the optimizer's state: ``partial_fit`` or ``warm_start`` on a
loaded estimator continue from its weights with a fresh optimizer.
"""

import json
import math
import os

import numpy as np

from . import _persistence
from ._errors import ModelFileError
from ._model import MLP

MEMBER = "estimator"
FORMAT = 1
# fitted attributes kept, with the JSON types each may have
_ATTRIBUTES = {
    "n_iter_": int, "t_": int, "n_features_in_": int, "n_outputs_": int, "n_layers_": int,
    "out_activation_": str, "loss_": float, "loss_curve_": list, "validation_scores_": list,
    "best_validation_score_": float, "best_loss_": float, "_no_improvement_count": int,
    "_learning_rate": float, "validation_loss_curve_": list,
}
_CLASS_KINDS = "biufUO"       # numpy dtype kinds allowed for classes_ (object: strings only)
_CODE_PARAMS = {"callback"}   # functions: a model file holds no code, so these are written as null
# parameters newer than the format: written only when not None (a file of an estimator that
# does not use them is read by earlier versions too); a callable scoring is not written
_OPTIONAL_PARAMS = ("scoring", "class_weight", "delta", "quantile")


# ================================================================== save


def save_estimator(est, path, metadata=None):
    """Write the fitted estimator `est` to `path` (".npz" appended when missing), atomically,
    as ``MLP.save`` writes a model. `metadata`: a JSON-friendly dict kept with it. Returns the
    path written."""
    mlp = getattr(est, "_mlp", None)
    if mlp is None:
        raise ValueError(f"this {type(est).__name__} is not fitted yet: fit it before saving")
    record = json.loads(json.dumps(_record(est, metadata or {}), default=_jsonable))
    return _persistence.save(mlp, path, {MEMBER: record})


def _record(est, metadata):
    params = est.get_params(deep=False)
    if not isinstance(params["random_state"], (int, np.integer, type(None))):
        params["random_state"] = None
    for name in _CODE_PARAMS & set(params):
        params[name] = None
    for name in _OPTIONAL_PARAMS:
        if name in params and (params[name] is None or callable(params[name])):
            del params[name]
    if params.get("class_weight") is not None:
        params["class_weight"] = _class_weight_record(params["class_weight"])
    classes = None
    if hasattr(est, "classes_"):
        binarizer = est._label_binarizer
        classes = {"dtype": est.classes_.dtype.str, "values": est.classes_.tolist(), "y_type": binarizer.y_type_}
    names = getattr(est, "feature_names_in_", None)
    return {
        "format": FORMAT,
        "class": type(est).__name__,
        "params": params,
        "attributes": {key: getattr(est, key) for key in _ATTRIBUTES if hasattr(est, key)},
        "feature_names": None if names is None else [str(name) for name in names],
        "classes": classes,
        "metadata": metadata,
    }


def _class_weight_record(class_weight):
    """class_weight in JSON: "balanced", {"items": [[label, weight], ...]}, or a list of those."""
    if isinstance(class_weight, dict):
        return {"items": [[label, weight] for label, weight in class_weight.items()]}
    if isinstance(class_weight, (list, tuple)):
        return [_class_weight_record(item) for item in class_weight]
    return class_weight


def _class_weight_value(record):
    """The class_weight a `_class_weight_record` holds (TypeError for anything else)."""
    if record is None or isinstance(record, str):
        return record
    if isinstance(record, list):
        if not all(isinstance(item, dict) for item in record):
            _not_class_weight(record)
        return [_class_weight_value(item) for item in record]
    if not isinstance(record, dict) or set(record) != {"items"} or not isinstance(record["items"], list):
        _not_class_weight(record)
    pairs = record["items"]
    if not all(isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (str, int, float, bool))
               for pair in pairs):
        _not_class_weight(record)
    return {label: weight for label, weight in pairs}


def _not_class_weight(record):
    raise TypeError(f"params: class_weight {_short(record)} is not 'balanced', {{'items': [[label, weight], "
                    "...]}} or a list of those")


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to a model file")


# ================================================================== load


def read_record(path):
    """The ``estimator`` record of the file at `path` (checked to be a JSON object of the
    known format), or None for a plain ``MLP.save`` file. ModelFileError for anything that is
    not a fastmlp model file, FileNotFoundError for a missing path."""
    with _persistence.Archive(path) as archive:
        if "config" not in archive:
            archive.fail("it has no 'config' member")
        if MEMBER not in archive:
            return None
        record = archive.json(MEMBER)
        keys = {"format", "class", "params", "attributes", "feature_names", "classes", "metadata"}
        if not isinstance(record, dict) or set(record) != keys:
            archive.fail(f"{MEMBER} is not a JSON object with the keys {sorted(keys)}")
        if record["format"] != FORMAT:
            archive.fail(f"{MEMBER} has format {record['format']!r}; this fastmlp reads format {FORMAT}")
        if not isinstance(record["metadata"], dict):
            archive.fail(f"{MEMBER}: metadata is not a JSON object")
        return record


def load_model(path, backend=None):
    """(model, metadata): a fitted ``MLPClassifier``/``MLPRegressor`` from a `save_estimator`
    file, or an ``MLP`` (metadata None) from an ``MLP.save`` file. `backend` None: the
    estimator's own ``backend`` parameter (``"auto"`` for an ``MLP``)."""
    record = read_record(path)
    if record is None:
        return _persistence.load(MLP, path, backend or "auto"), None
    return _estimator(path, record, backend), record["metadata"]


def load_estimator(path, backend=None):
    """The fitted estimator written by `save_estimator` to `path`, on `backend` (None: the
    estimator's ``backend`` parameter). Its predictions equal the saved estimator's."""
    record = read_record(path)
    if record is None:
        raise ModelFileError(f"{os.fsdecode(path)} holds a fastmlp.MLP (MLP.save), not a scikit-learn "
                             "estimator: read it with fastmlp.load")
    return _estimator(path, record, backend)


def _estimator(path, record, backend):
    from . import _sklearn
    from ._sklearn_train import loss_scales

    def fail(problem):
        raise ModelFileError(f"{os.fsdecode(path)} is not a fastmlp model file: {MEMBER}: {problem}")

    cls = {"MLPClassifier": _sklearn.MLPClassifier, "MLPRegressor": _sklearn.MLPRegressor}.get(record["class"])
    if cls is None or not isinstance(record["params"], dict):
        fail(f"unknown class {record['class']!r} or params not an object")
    if (cls is _sklearn.MLPClassifier) != (record["classes"] is not None):
        fail(f"class {record['class']!r} does not fit classes {'null' if record['classes'] is None else 'given'}: "
             "a classifier's record has its classes, a regressor's has none")
    try:
        params = dict(record["params"])
        if isinstance(params.get("hidden_layer_sizes"), list):
            params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        if "class_weight" in params:
            params["class_weight"] = _class_weight_value(params["class_weight"])
        est = cls(**params)
        if backend is not None:
            est.set_params(backend=backend)
        est._validate_params()
        _set_attributes(est, record["attributes"])
        if hasattr(est, "loss_curve_") and not hasattr(est, "validation_loss_curve_"):
            est.validation_loss_curve_ = None        # (a file from before it was kept)
        _set_features(est, record["feature_names"])
        if cls is _sklearn.MLPClassifier:
            _set_classes(est, record["classes"])
        _check_bookkeeping(est, _sklearn)
        est._mlp = _persistence.load(MLP, path, est.backend)
        _check_network(est, _sklearn)
    except (TypeError, ValueError, KeyError) as exc:
        if isinstance(exc, ModelFileError):
            raise
        fail(" ".join(str(exc).split()))
    est._loss_scale, est._loss_report = loss_scales(est.out_activation_, est.n_outputs_, est._mlp.loss_name)
    est._run, est._best_params = None, est._mlp.params_.copy()
    return est


def _set_attributes(est, attributes):
    if not isinstance(attributes, dict):
        raise TypeError("attributes is not an object")
    unknown = sorted(set(attributes) - set(_ATTRIBUTES))
    missing = sorted({"n_iter_", "n_features_in_", "n_outputs_", "n_layers_", "out_activation_"} - set(attributes))
    if unknown or missing:
        raise ValueError(f"attributes: unknown {unknown}, missing {missing}")
    for key, value in attributes.items():
        kind = _ATTRIBUTES[key]
        if kind is list:
            ok = value is None or (isinstance(value, list) and all(_is_number(v) for v in value))
        elif kind is float:
            ok = value is None or _is_number(value)
        else:
            ok = isinstance(value, kind) and not isinstance(value, bool)
        if not ok:
            raise TypeError(f"attribute {key} = {value!r} is not a {kind.__name__}")
        if not _ALLOWED.get(key, lambda v: True)(value):
            raise ValueError(f"attribute {key} = {_short(value)} is not {_MEANING[key]}")
        setattr(est, key, float(value) if kind is float and value is not None else value)


# what each attribute may hold, beyond its JSON type: what a real fit leaves there (None:
# what the solver or early stopping does not set, as scikit-learn's; inf as it starts them)
def _at_least(low):
    return lambda v: v >= low


def _finite_numbers(v):
    return v is None or all(map(math.isfinite, v))


_ALLOWED = {
    "n_iter_": _at_least(0), "t_": _at_least(0), "_no_improvement_count": _at_least(0),
    "n_features_in_": _at_least(1), "n_outputs_": _at_least(1), "n_layers_": _at_least(2),
    "loss_": lambda v: v is not None and math.isfinite(v), "loss_curve_": _finite_numbers,
    "best_loss_": lambda v: v is None or (not math.isnan(v) and v != -math.inf),
    "validation_scores_": lambda v: True,        # (NaN or -inf for a diverged epoch, as scikit-learn's)
    "validation_loss_curve_": lambda v: True,    # (NaN or inf for a diverged epoch)
    "best_validation_score_": lambda v: v is None or (not math.isnan(v) and v != math.inf),
    "_learning_rate": lambda v: v is not None and math.isfinite(v) and v > 0,
}
_MEANING = {
    "n_iter_": "an integer >= 0", "t_": "an integer >= 0", "_no_improvement_count": "an integer >= 0",
    "n_features_in_": "an integer >= 1", "n_outputs_": "an integer >= 1", "n_layers_": "an integer >= 2",
    "loss_": "a finite number", "loss_curve_": "a list of finite numbers",
    "best_loss_": "null or a number, not NaN or -inf", "best_validation_score_": "null or a number, not NaN or inf",
    "_learning_rate": "a finite number > 0",
}


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _set_features(est, names):
    if names is None:
        return
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise TypeError("feature_names is not a list of strings")
    if len(names) != est.n_features_in_:
        raise ValueError(f"{len(names)} feature names for n_features_in_={est.n_features_in_}")
    est.feature_names_in_ = np.asarray(names, dtype=object)


def _set_classes(est, classes):
    from sklearn.preprocessing import LabelBinarizer

    if not isinstance(classes, dict) or set(classes) != {"dtype", "values", "y_type"}:
        raise ValueError("classes is not an object with 'dtype', 'values' and 'y_type'")
    dtype, values = np.dtype(str(classes["dtype"])), classes["values"]
    if dtype.kind not in _CLASS_KINDS or not isinstance(values, list) or not values:
        raise ValueError(f"classes: dtype {dtype} or values {values!r} not supported")
    if dtype.kind in "UO" and not all(isinstance(v, str) for v in values):
        raise TypeError("classes: text classes must be strings")
    if dtype.kind not in "UO" and not all(isinstance(v, (bool, int, float)) for v in values):
        raise TypeError("classes: numeric classes must be numbers")
    if classes["y_type"] not in ("binary", "multiclass", "multilabel-indicator"):
        raise ValueError(f"classes: unknown y_type {classes['y_type']!r}")
    array = np.array(values, dtype=dtype)
    if array.ndim != 1 or not np.array_equal(np.unique(array), array):
        raise ValueError(f"classes: values {_short(values)} are not unique and sorted (as np.unique gives them)")
    binarizer = LabelBinarizer()
    binarizer.classes_ = array
    binarizer.y_type_, binarizer.sparse_input_ = classes["y_type"], False
    est._label_binarizer, est.classes_ = binarizer, binarizer.classes_


def _check_network(est, sklearn_module):
    """The network in the file is the one the estimator's record describes."""
    mlp, hidden = est._mlp, est.hidden_layer_sizes
    hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
    expected = (est.n_features_in_, *hidden, est.n_outputs_)
    if mlp.layer_sizes != expected or est.n_layers_ != len(expected):
        raise ValueError(f"the network has layers {mlp.layer_sizes}, the estimator describes {expected}")
    output = sklearn_module.OUTPUTS.get(est.out_activation_, (None,))[0]
    activation = sklearn_module.ACTIVATIONS[est.activation]
    if mlp.output != output or mlp.activation != activation:
        raise ValueError(f"the network's activations ({mlp.activation}, {mlp.output}) are not the estimator's "
                         f"({activation}, {output})")
    est._check_same_loss()      # (and its parameter)
    if hasattr(est, "classes_"):
        n_classes, y_type = len(est.classes_), est._label_binarizer.y_type_
        wanted = 1 if y_type == "binary" else n_classes
        if est.n_outputs_ != wanted or (y_type == "binary" and n_classes > 2):
            raise ValueError(f"{est.n_outputs_} outputs do not fit {n_classes} {y_type} classes")


def _check_bookkeeping(est, sklearn_module):
    """The fitted attributes agree with each other and with the estimator's kind: the output
    activation is the one its fit would choose (a classifier's record relabelled as a
    regressor's, or the reverse, is refused), the last loss is the curve's last, and with
    early stopping every epoch has its validation score."""
    wanted = est._out_activation()
    if est.out_activation_ != wanted:
        raise ValueError(f"attribute out_activation_ = {est.out_activation_!r} is not the {type(est).__name__}'s "
                         f"{wanted!r} for these settings")
    curve, scores = getattr(est, "loss_curve_", None), getattr(est, "validation_scores_", None)
    if est.solver in sklearn_module._sklearn_train.STOCHASTIC and curve and getattr(est, "loss_", None) != curve[-1]:
        raise ValueError(f"attribute loss_ = {getattr(est, 'loss_', None)!r} is not the last of loss_curve_ "
                         f"({curve[-1]!r})")
    if curve is not None and scores is not None and len(scores) != len(curve):
        raise ValueError(f"attribute validation_scores_ has {len(scores)} scores for {len(curve)} epochs in "
                         "loss_curve_")
    losses = getattr(est, "validation_loss_curve_", None)
    if curve is not None and losses is not None and len(losses) != len(curve):
        raise ValueError(f"attribute validation_loss_curve_ has {len(losses)} losses for {len(curve)} epochs in "
                         "loss_curve_")
