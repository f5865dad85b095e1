"""``fastmlp export MODEL.npz MODEL.onnx``: a model file written by ``fastmlp train`` as one
ONNX graph, its preprocessing and its network, taking the CSV file's raw columns.

``export_model_file(model_path, onnx_path)`` reads the file and its preprocessing record
(``fastmlp._preprocess``, whose docstring has the layout) and builds, through
``_onnx_pipeline.graph_of``, a graph with one input per column the model reads, named as the
column, of shape ``[N, 1]``, in the CSV's order:

- a numeric column is a float64 tensor, NaN for a missing cell (filled in by the recorded
  median, as ``predict`` does; with ``--no-impute`` the graph passes NaN on where ``predict``
  refuses the row);
- a text column is a string tensor, ``""`` for a missing cell (filled in by the recorded most
  frequent text; with ``--no-impute`` it is an unknown text: all its one-hot columns 0).

Its outputs are ``to_onnx``'s: ``"label"`` and ``"probabilities"`` for a classifier,
``"variable"`` for a regressor, mapped back from the standardized target as ``predict``
does (so in float64). Date columns are not exported: ONNX has no operator that parses dates,
so a model reading one is refused (train it with ``--drop`` on that column to export it).

Model files without a preprocessing record (``MLP.save``, or estimators saved without
``train``) read the numeric columns as they are: an estimator with feature names gives one
float64 input per name, an ``MLP`` or an estimator without names ``to_onnx``'s input ``"X"``.
"""

from __future__ import annotations

import copy
import os
from typing import IO, Any

import numpy as np

from ._errors import ModelFileError


def export_model_file(model_path: str | os.PathLike[str], onnx_path: str | os.PathLike[str] | IO[bytes] | None = None,
                      backend: str | None = None) -> Any:
    """The ``onnx.ModelProto`` of the model file at `model_path` (module docstring), written
    to `onnx_path` too when given (atomically). ModelFileError for a file that is not a
    fastmlp model file or whose preprocessing record is damaged; ValueError for a model that
    reads date columns; ImportError without onnx or skl2onnx."""
    from . import _estimator_io
    from ._onnx import _write, to_onnx
    model, meta = _estimator_io.load_model(model_path, backend)
    record = (meta or {}).get("preprocessing")
    if record is not None:
        from ._preprocess import Preprocessing          # the command line's preprocessing
        try:
            preprocessing = Preprocessing(record)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelFileError(f"{os.fspath(model_path)} is not a fastmlp model file: its preprocessing record is "
                                 f"damaged ({' '.join(str(exc).split())})") from None
        proto = preprocessing_to_onnx(model, preprocessing)
    elif getattr(model, "feature_names_in_", None) is not None:
        from ._onnx_pipeline import graph_of
        from onnx import TensorProto
        proto = graph_of([], model, [(str(name), TensorProto.DOUBLE, 1) for name in model.feature_names_in_],
                         doc="fastmlp model file")
    else:
        proto = to_onnx(model)
    if onnx_path is not None:
        _write(proto, onnx_path)
    return proto


def preprocessing_to_onnx(estimator, preprocessing):
    """The graph of `estimator` (a fitted MLPClassifier/MLPRegressor) behind `preprocessing`,
    an object like ``_preprocess.Preprocessing``: ``record`` (the JSON record),
    ``column_transformer`` (fitted, reading the record's numeric and categorical columns by
    name) and ``target_scaler`` (a fitted StandardScaler or None)."""
    from onnx import TensorProto

    from ._onnx_pipeline import graph_of
    record = preprocessing.record
    dates = [d["column"] for d in record.get("dates", [])]
    if dates:
        raise ValueError(f"fastmlp export: the model reads the date column(s) {', '.join(map(repr, dates))}, and ONNX "
                         "has no operator that parses dates: train the model with --drop on them to export it")
    text = set((record.get("categorical") or {"columns": []})["columns"])
    inputs = [(name, TensorProto.STRING if name in text else TensorProto.DOUBLE, 1) for name in record["columns"]]
    transformer = copy.deepcopy(preprocessing.column_transformer)
    if text:                                                  # a missing text is "" in the graph, NaN in pandas
        categorical = transformer.named_transformers_["categorical"]
        imputer = getattr(categorical, "named_steps", {}).get("impute")
        if imputer is not None:
            imputer.missing_values = ""
    scaler = preprocessing.target_scaler
    then = None if scaler is None or hasattr(estimator, "classes_") else _unscaled(scaler)
    return graph_of([("preprocessing", transformer)], estimator, inputs, then=then, doc="fastmlp model file")


def _unscaled(scaler):
    """The regressor's values mapped back from the standardized target: v * scale + mean,
    in float64 (as ``Preprocessing.unscale_target``)."""
    mean, scale = np.asarray(scaler.mean_, np.float64), np.asarray(scaler.scale_, np.float64)

    def then(g, outputs):
        (name, value, _, shape), = outputs
        double = g.onnx.TensorProto.DOUBLE
        value = g.op("Cast", value, to=double)
        value = g.op("Add", g.op("Mul", value, g.const(scale, "target_scale", np.float64)),
                     g.const(mean, "target_mean", np.float64))
        return [(name, value, double, shape)]
    return then
