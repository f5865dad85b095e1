"""Pipelines to ONNX: fastmlp's estimators inside skl2onnx, and ``fastmlp.to_onnx(pipeline)``.

Two ways out of Python for a model and its preprocessing, both on skl2onnx's converters for
the scikit-learn steps and on ``_onnx``'s graph builder for the network itself (the same
nodes, so every activation, output, dtype and label type ``to_onnx`` exports):

- ``register_skl2onnx()`` tells skl2onnx how to convert ``MLPClassifier`` and
  ``MLPRegressor`` (a shape calculator and a converter each), after which
  ``skl2onnx.to_onnx(pipeline, X)`` converts any pipeline holding them, in skl2onnx's
  conventions: a classifier gives ``output_label`` (strings, or int64 for integer, boolean
  and float labels, which scikit-learn holds to integral values; ``[N, n_classes]`` int64
  for multilabel targets) and ``output_probability`` (a ZipMap by default, which holds float32 only; with
  ``options={id(clf): {"zipmap": False}}`` the ``[N, n_classes]`` tensor), a regressor
  ``variable``, ``[N, n_outputs]``. The network runs in its own dtype; the probabilities and
  values come out in the float type of the estimator's input (float64 for a float64 input,
  else float32), as skl2onnx's own converters do. Registering is explicit (skl2onnx has no
  plug-in discovery) and idempotent; ``fastmlp.to_onnx`` of a pipeline does it itself.
- ``pipeline_to_onnx(pipeline, X)``, reached through ``fastmlp.to_onnx``: the steps before
  the last are converted by skl2onnx, and the network and the outputs of ``to_onnx`` for a
  plain estimator are appended (``"label"`` and ``"probabilities"``, or ``"variable"``; labels
  in the type of ``classes_``, values in the network's dtype).

The graph's inputs follow `X`: a DataFrame gives one input per column, named as the column,
of shape ``[N, 1]``: float32 columns as float tensors, other floats as double, integers as
int64, booleans as bool, text (object, str, category) as string tensors. A missing number is
NaN there, as in the DataFrame; the graph sees text as it is, so a pipeline meant to be fed
``""`` for a missing text cell must have been fitted (and be called) with ``""`` there too.
An array gives one input ``"X"``, ``[N, n_features]``, of its dtype; no `X` (for a pipeline
fitted on an array) the same in the network's dtype.
"""

from __future__ import annotations

import sys

import numpy as np

from . import _onnx
from ._onnx import OPSET, _Graph, _forward, _network

SKL2ONNX_HINT = "pip install 'fastmlp[onnx]' (or pip install skl2onnx)"
_ML_OPSET = 3                         # ai.onnx.ml's version that goes with opset 17
_ALIASES = {"MLPClassifier": "FastmlpMLPClassifier", "MLPRegressor": "FastmlpMLPRegressor"}


def _skl2onnx(what):
    try:
        import skl2onnx
    except ImportError:
        raise ImportError(f"{what} needs the skl2onnx package: {SKL2ONNX_HINT}") from None
    return skl2onnx


def is_pipeline(model) -> bool:
    pipeline = sys.modules.get("sklearn.pipeline")          # loaded if `model` is a Pipeline
    return pipeline is not None and isinstance(model, pipeline.Pipeline)


def register_skl2onnx() -> None:
    """Register fastmlp's ``MLPClassifier`` and ``MLPRegressor`` with skl2onnx, so that
    ``skl2onnx.to_onnx`` converts them and pipelines holding them (see this module's
    docstring for the outputs). Classifiers take skl2onnx's ``zipmap``,
    ``output_class_labels`` and ``nocl`` (labels as class indices, int64) options.
    ImportError when skl2onnx is missing."""
    skl2onnx = _skl2onnx("fastmlp.register_skl2onnx")
    from ._sklearn import MLPClassifier, MLPRegressor
    skl2onnx.update_registered_converter(
        MLPClassifier, _ALIASES["MLPClassifier"], _classifier_shapes, _convert_classifier,
        options={"zipmap": [True, False, "columns"], "output_class_labels": [False, True], "nocl": [False, True]})
    skl2onnx.update_registered_converter(
        MLPRegressor, _ALIASES["MLPRegressor"], _regressor_shapes, _convert_regressor)


# ------------------------------------------------------------------ skl2onnx: shapes


def _float_type(variable_type):
    """skl2onnx's rule for a model's float outputs: double for a double input, else float."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType
    return DoubleTensorType if isinstance(variable_type, DoubleTensorType) else FloatTensorType


def _check_operator(operator, n_outputs):
    from skl2onnx.common.data_types import BooleanTensorType, DoubleTensorType, FloatTensorType, Int64TensorType
    from skl2onnx.common.utils import check_input_and_output_numbers, check_input_and_output_types
    check_input_and_output_numbers(operator, input_count_range=1, output_count_range=n_outputs)
    check_input_and_output_types(operator, good_input_types=[BooleanTensorType, DoubleTensorType,
                                                             FloatTensorType, Int64TensorType])


def _no_class_labels(scope, est):
    return bool(scope.get_options(est, {"nocl": False}).get("nocl"))


def _string_labels(est, nocl):
    """Whether a classifier's labels are strings in skl2onnx's convention; else int64:
    integers, booleans and floats (scikit-learn takes integral ones only), class indices
    (option nocl) and the multilabel indicator matrix."""
    if nocl or (est.n_outputs_ > 1 and est.out_activation_ != "softmax"):
        return False
    classes = np.asarray(est.classes_)
    return classes.dtype.kind in "OUS" and all(isinstance(c, str) for c in classes.tolist())


def _classifier_shapes(operator):
    from skl2onnx.common.data_types import DoubleTensorType, Int64TensorType, StringTensorType
    _check_operator(operator, 2)
    est = operator.raw_operator
    N = operator.inputs[0].get_first_dimension()
    multilabel = est.n_outputs_ > 1 and est.out_activation_ != "softmax"
    n_columns = est.n_outputs_ if est.n_outputs_ > 1 else 2
    probabilities = _float_type(operator.inputs[0].type)
    zipmap = operator.scope_inst.get_options(est, {"zipmap": True}).get("zipmap")
    if zipmap is True and probabilities is DoubleTensorType:
        raise ValueError("fastmlp's MLPClassifier gets a float64 input here, and skl2onnx's ZipMap holds float32 "
                         f"probabilities only: pass options={{id(classifier): {{'zipmap': False}}}} "
                         "(or feed float32)")
    strings = _string_labels(est, _no_class_labels(operator.scope_inst, est))
    label_type = StringTensorType if strings else Int64TensorType
    operator.outputs[0].type = label_type([N, n_columns] if multilabel else [N])
    operator.outputs[1].type = probabilities([N, n_columns])


def _regressor_shapes(operator):
    _check_operator(operator, 1)
    est = operator.raw_operator
    operator.outputs[0].type = _float_type(operator.inputs[0].type)([operator.inputs[0].get_first_dimension(),
                                                                     est.n_outputs_])


# ------------------------------------------------------------------ skl2onnx: converters


def _convert_classifier(scope, operator, container):
    est = operator.raw_operator
    net, head = _network(est)
    if _no_class_labels(scope, est):                          # labels: the classes' indices
        from functools import partial
        from types import SimpleNamespace
        head = partial(_onnx._classifier_outputs, SimpleNamespace(
            out_activation_=est.out_activation_, n_outputs_=est.n_outputs_, classes_=np.arange(len(est.classes_))))
    g, P = _network_graph(scope, operator, net)
    outputs = {name: (value, elem_type) for name, value, elem_type, _ in head(g, P, net)}
    for variable, name in zip(operator.outputs, ("label", "probabilities")):
        _expose(g, *outputs[name], variable)
    _flush(g, scope, container)


def _convert_regressor(scope, operator, container):
    net, _ = _network(operator.raw_operator)
    g, P = _network_graph(scope, operator, net)
    _expose(g, P, g.type, operator.outputs[0])
    _flush(g, scope, container)


def _network_graph(scope, operator, net):
    """A graph naming its tensors in skl2onnx's scope, computing `net` in its own dtype on the
    operator's input: (the graph, the output activations)."""
    import onnx
    g = _Graph(onnx, net.dtype, namer=scope.get_unique_variable_name)
    X = g.op("Cast", operator.inputs[0].full_name, to=g.type, hint="fastmlp_input")
    return g, _forward(g, net, X)


def _expose(g, value, elem_type, variable):
    """Make `value` skl2onnx's output `variable`, cast to the type skl2onnx declared for it."""
    from skl2onnx.common.data_types import guess_proto_type
    wanted = guess_proto_type(variable.type)
    if wanted != elem_type:
        value = g.op("Cast", value, to=wanted)
    g.nodes.append(g.onnx.helper.make_node("Identity", [value], [variable.full_name]))


def _flush(g, scope, container):
    """Move the nodes and constants of `g` into skl2onnx's container."""
    helper = g.onnx.helper
    for tensor in g.constants:
        if tensor.data_type == g.onnx.TensorProto.STRING:
            container.add_initializer(tensor.name, tensor.data_type, list(tensor.dims), list(tensor.string_data))
        else:
            container.add_initializer(tensor.name, tensor.data_type, list(tensor.dims), tensor)
    for node in g.nodes:
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        container.add_node(node.op_type, list(node.input), list(node.output),
                           name=scope.get_unique_operator_name(node.op_type), **attributes)


# ------------------------------------------------------------------ fastmlp.to_onnx(pipeline)


def pipeline_to_onnx(pipeline, X=None):
    """The ONNX model of a fitted Pipeline ending in a fastmlp estimator (``fastmlp.to_onnx``)."""
    final = pipeline.steps[-1][1] if pipeline.steps else None
    estimators = sys.modules.get("fastmlp._sklearn")
    if estimators is None or not isinstance(final, (estimators.MLPClassifier, estimators.MLPRegressor)):
        raise TypeError("fastmlp.to_onnx exports a Pipeline whose last step is a fastmlp MLPClassifier or "
                        f"MLPRegressor, got one ending in {type(final).__module__}.{type(final).__qualname__}")
    net, _ = _network(final)                                 # NotFittedError before any work
    steps = [(name, step) for name, step in pipeline.steps[:-1] if step is not None and step != "passthrough"]
    return graph_of(steps, final, _input_types(pipeline, X, net.dtype), doc="fastmlp Pipeline")


def graph_of(steps, estimator, inputs, *, then=None, doc="fastmlp"):
    """The ONNX model of the fitted scikit-learn `steps` (a list of (name, transformer), may
    be empty) followed by the fastmlp `estimator`, for the graph inputs `inputs` ([(name, ONNX
    element type, width)]). `then(g, outputs)`, given, rewrites the estimator's outputs
    [(name, value, element type, shape)] (the command line maps a regression back from its
    standardized target so)."""
    import onnx
    helper = onnx.helper
    net, head = _network(estimator)
    _skl2onnx("fastmlp.to_onnx of a Pipeline")
    register_skl2onnx()
    graph_inputs = [helper.make_tensor_value_info(name, elem_type, ["N", width]) for name, elem_type, width in inputs]
    clashes = {name for name, _, _ in inputs} & {"label", "probabilities", "variable"}
    if clashes:
        raise ValueError(f"fastmlp.to_onnx: the graph's outputs are named label and probabilities, or variable: "
                         f"rename the input column {sorted(clashes)[0]!r}")
    if steps:
        proto, features = _preprocessing(onnx, steps, inputs)
        graph = proto.graph
        del graph.input[:]
        graph.input.extend(graph_inputs)
    else:                                                     # the columns go to the network as they are
        proto = helper.make_model(helper.make_graph([], "fastmlp", graph_inputs, []))
        graph, features = proto.graph, None
    fresh = _fresh_names(graph)
    for name in ("label", "probabilities", "variable"):     # skl2onnx's own tensors may be named so
        if name in {o for node in graph.node for o in node.output}:
            new = _rename(graph, name, fresh(name))
            features = new if features == name else features
    g = _Graph(onnx, net.dtype, namer=fresh)
    if features is None:
        columns = [g.op("Cast", v.name, to=g.type) for v in graph.input]
        features = columns[0] if len(columns) == 1 else g.op("Concat", *columns, axis=1)
    else:
        features = g.op("Cast", features, to=g.type)
    outputs = head(g, _forward(g, net, features), net)
    for name, value, elem_type, shape in (outputs if then is None else then(g, outputs)):
        g.output(name, value, elem_type, shape)
    graph.node.extend(g.nodes)
    graph.initializer.extend(g.constants)
    graph.output.extend(g.outputs)
    doc = f"{doc} {'-'.join(map(str, net.layer_sizes))}"
    graph.name, graph.doc_string = "fastmlp", doc
    _set_opsets(onnx, proto)
    from . import __version__
    proto.producer_name, proto.producer_version, proto.doc_string = "fastmlp", __version__, doc
    onnx.checker.check_model(proto)
    return proto


def _preprocessing(onnx, steps, inputs):
    """(skl2onnx's model of the steps before the network, the name of its output matrix), for
    the graph inputs `inputs`. skl2onnx sees integer and boolean columns as floats (it cannot
    join them with float columns in one transformer): a Cast at the start gives them their
    own type in the graph; its inputs are then replaced by ``graph_inputs``."""
    import skl2onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, StringTensorType
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    T = onnx.TensorProto
    floats = {elem_type for _, elem_type, _ in inputs if elem_type in (T.FLOAT, T.DOUBLE)}
    numbers = T.FLOAT if floats == {T.FLOAT} else T.DOUBLE            # what skl2onnx sees for integers
    seen = [(name, elem_type if elem_type in (T.FLOAT, T.DOUBLE, T.STRING) else numbers, width)
            for name, elem_type, width in inputs]
    types = {T.FLOAT: FloatTensorType, T.DOUBLE: DoubleTensorType, T.STRING: StringTensorType}
    proto = skl2onnx.convert_sklearn(Pipeline(steps), initial_types=[(name, types[t]([None, width]))
                                                                     for name, t, width in seen],
                                     target_opset={"": OPSET, "ai.onnx.ml": _ML_OPSET},
                                     custom_conversion_functions={SimpleImputer: _convert_imputer})
    graph = proto.graph
    if len(graph.output) != 1:
        raise TypeError(f"fastmlp.to_onnx: the steps before the network give {len(graph.output)} outputs in "
                        "skl2onnx, not one matrix")
    features = graph.output[0].name
    del graph.output[:]
    fresh = _fresh_names(graph)
    casts = []
    for (name, elem_type, _), (_, seen_type, _) in zip(inputs, seen):
        if seen_type != elem_type:
            inner = _rename(graph, name, fresh(name))
            casts.append(onnx.helper.make_node("Cast", [name], [inner], to=seen_type, name=fresh("Cast")))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return proto, features


def _rename(graph, old, new):
    """Rename the tensor `old` of `graph` (its nodes' inputs and outputs) to `new`; `new`."""
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for info in graph.value_info:
        if info.name == old:
            info.name = new
    return new


def _convert_imputer(scope, operator, container):
    """skl2onnx's SimpleImputer, except for float64 inputs with NaN for missing: skl2onnx uses
    the Imputer operator there, which onnxruntime has no float64 kernel for (and which holds
    the statistics as float32). Those become Where(IsNaN(x), statistics, x) in float64."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    imputer = operator.raw_operator
    missing = imputer.missing_values
    statistics = np.asarray(getattr(imputer, "statistics_", []))
    if (not all(isinstance(v.type, DoubleTensorType) for v in operator.inputs) or statistics.dtype.kind != "f"
            or not (isinstance(missing, float) and np.isnan(missing)) or getattr(imputer, "add_indicator", False)
            or np.isnan(statistics).any()):
        return convert_sklearn_imputer(scope, operator, container)
    statistics = statistics.astype(np.float64)
    from skl2onnx.common._apply_operation import apply_concat
    names = [v.full_name for v in operator.inputs]
    if len(names) > 1:
        joined = scope.get_unique_variable_name("fastmlp_imputer_input")
        apply_concat(scope, names, joined, container, axis=1)
    else:
        joined = names[0]
    fill = scope.get_unique_variable_name("fastmlp_imputer_statistics")
    container.add_initializer(fill, TensorProto.DOUBLE, [1, statistics.size], statistics)
    isnan = scope.get_unique_variable_name("fastmlp_imputer_isnan")
    container.add_node("IsNaN", [joined], [isnan], name=scope.get_unique_operator_name("IsNaN"))
    container.add_node("Where", [isnan, fill, joined], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Where"))


def _set_opsets(onnx, proto):
    """Opset 17 for the default domain (skl2onnx targets it, the network needs it), IR 8."""
    versions = {o.domain: o.version for o in proto.opset_import}
    versions[""] = OPSET
    if any(node.domain == "ai.onnx.ml" for node in proto.graph.node):
        versions.setdefault("ai.onnx.ml", _ML_OPSET)
    del proto.opset_import[:]
    proto.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in versions.items())
    proto.ir_version = _onnx.IR_VERSION


def _fresh_names(graph):
    """A namer giving names no tensor or node of `graph` has."""
    used = {v.name for v in [*graph.input, *graph.output, *graph.initializer]}
    used |= {name for node in graph.node for name in [*node.input, *node.output, node.name]}
    count = 0

    def fresh(hint):
        nonlocal count
        while True:
            count += 1
            name = f"fastmlp_{hint}_{count}"
            if name not in used:
                used.add(name)
                return name
    return fresh


def _input_types(pipeline, X, dtype):
    """[(name, ONNX element type, width)] of the graph's inputs (module docstring)."""
    names = getattr(pipeline, "feature_names_in_", None)
    if X is None:
        if names is not None:
            raise TypeError("fastmlp.to_onnx: this Pipeline was fitted on a DataFrame: pass X=, a few rows of it, "
                            "for the names and types of the graph's inputs")
        n = getattr(pipeline, "n_features_in_", None)
        if n is None:
            raise TypeError("fastmlp.to_onnx: the Pipeline does not say how many features it takes: pass X=, a few "
                            "rows of its input")
        return [_typed("X", np.dtype(dtype), n)]
    if hasattr(X, "columns") and hasattr(X, "dtypes"):             # a DataFrame
        columns = [str(c) for c in X.columns]
        if names is not None and list(map(str, names)) != columns:
            raise ValueError(f"fastmlp.to_onnx: X's columns {columns} are not the ones the Pipeline was fitted on, "
                             f"{list(map(str, names))}")
        return [_typed(name, dtype, 1) for name, dtype in zip(columns, X.dtypes)]
    array = np.asarray(X)
    if array.ndim != 2:
        raise ValueError(f"fastmlp.to_onnx: X must be 2-D (rows of the Pipeline's input), got shape {array.shape}")
    n = getattr(pipeline, "n_features_in_", array.shape[1])
    if array.shape[1] != n:
        raise ValueError(f"fastmlp.to_onnx: X has {array.shape[1]} columns, the Pipeline takes {n}")
    return [_typed("X", array.dtype, array.shape[1])]


def _typed(name, dtype, width):
    """(name, ONNX element type, width) of an input holding columns of `dtype`."""
    from onnx import TensorProto
    kind, size = getattr(dtype, "kind", "O"), getattr(dtype, "itemsize", 0)
    if kind == "f":
        return name, TensorProto.FLOAT if size == 4 else TensorProto.DOUBLE, width
    if kind in "iu":
        return name, TensorProto.INT64, width
    if kind == "b":
        return name, TensorProto.BOOL, width
    if kind in "OUST":
        return name, TensorProto.STRING, width
    raise TypeError(f"fastmlp.to_onnx: the input {name!r} has dtype {dtype}, which has no ONNX tensor type here "
                    "(numbers, booleans and text have)")
