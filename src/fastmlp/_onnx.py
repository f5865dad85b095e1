"""Export to ONNX: ``to_onnx(model, path=None)``.

The graph is built with ``onnx.helper`` from standard operators only (opset 17, IR version
8), one ``Gemm`` per dense layer followed by its activation, in the model's dtype. Every
operator used runs in onnxruntime's CPU provider in float32 and float64. Two activations are
built from primitives in float64 models:

- Leaky ReLU: ``Where(Z >= 0, Z, slope * Z)``, the backends' own formula. ``LeakyRelu``'s
  slope is a float32 attribute (0.01 becomes 0.0099999998: errors of 1e-10 downstream), and
  onnxruntime registers no float64 kernel for it from opset 21 on.
- GELU: ``Erf`` has no float64 kernel, so ``Phi(z) = erfc(-z / sqrt 2) / 2`` is evaluated
  as ``exp(-a^2) * erfcx(a)`` with ``a = |z| / sqrt 2`` and ``erfcx`` a degree-30 Chebyshev
  series in ``y = (a - 3) / (a + 3)`` (Clenshaw's recurrence), whose coefficients are
  interpolated from ``scipy.special.erfcx`` at export: erfc to about 1e-14 on all of
  ``[0, inf)``. ``Phi`` is then ``e / 2`` for ``z < 0`` and ``1 - e / 2`` otherwise.
"""

from __future__ import annotations

import functools
import math
import os
import sys
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from ._model import MLP
from ._registry import ACTIVATIONS, implemented
from ._spec import NORM_EPS

if TYPE_CHECKING:
    import onnx
    from sklearn.pipeline import Pipeline

    from ._sklearn import MLPClassifier, MLPRegressor

OPSET, IR_VERSION = 17, 8          # IR 8 is the one that goes with opset 17: older runtimes load it
INSTALL_HINT = "pip install 'fastmlp[onnx]'"
_CHEBYSHEV_DEGREE, _CHEBYSHEV_SCALE = 30, 3.0
_OUTPUT_OPS = {"sigmoid": "Sigmoid", "softmax": "Softmax", "exp": "Exp"}


def to_onnx(model: MLP | MLPClassifier | MLPRegressor | Pipeline,
            path: str | os.PathLike[str] | IO[bytes] | None = None, *, X: Any = None) -> onnx.ModelProto:
    """An ``onnx.ModelProto`` computing `model`'s predictions; written to `path` too when given
    (atomically: a temporary file beside it, then a rename).

    `model` is a ``fastmlp.MLP`` or a fitted ``MLPClassifier`` or ``MLPRegressor``, float32 or
    float64, with any hidden activations and output. The graph has one input, ``"X"``, of
    shape ``[N, n_features]`` and the model's dtype (``N``, the batch, is dynamic), and these
    outputs:

    - ``MLP``: ``"probabilities"``, ``[N, n_outputs]``, what ``predict_proba`` returns; and
      for a sigmoid or softmax output also ``"label"``, int64, what ``predict`` returns:
      ``[N]`` (one sigmoid unit: ``p >= 0.5``; softmax: the argmax) or ``[N, n_outputs]``
      (several sigmoid units).
    - ``MLPClassifier``: ``"label"``, ``predict``'s labels in the type of ``classes_``
      (strings, integers, floats or booleans), ``[N]``, or the int64 indicator matrix
      ``[N, n_classes]`` for multilabel targets; and ``"probabilities"``, ``[N, n_classes]``,
      ``predict_proba``'s (two columns for binary targets).
    - ``MLPRegressor``: ``"variable"``, ``predict``'s values, ``[N]`` for one output, else
      ``[N, n_outputs]``.

    `model` may also be a fitted scikit-learn ``Pipeline`` whose last step is an
    ``MLPClassifier`` or ``MLPRegressor``: the graph then computes the steps before it too
    (converted by skl2onnx, ``pip install skl2onnx``) and has the outputs above. Its inputs are
    the pipeline's: for a pipeline fitted on a DataFrame, pass ``X=`` (a few rows of it) and
    each column is an input named as the column, of shape ``[N, 1]``, a float, int64, bool or
    string tensor after the column's dtype; otherwise one input ``"X"``, ``[N, n_features]``,
    of `X`'s dtype or, without `X`, the network's (see ``fastmlp._onnx_pipeline``). `X` is used
    for pipelines only.

    ImportError when onnx (or, for a pipeline, skl2onnx) is missing; TypeError for anything
    else than those models or for labels ONNX cannot hold; sklearn's NotFittedError for an
    unfitted estimator.
    """
    try:
        import onnx
    except ImportError:
        raise ImportError(f"fastmlp.to_onnx needs the onnx package: {INSTALL_HINT}") from None
    from ._onnx_pipeline import is_pipeline, pipeline_to_onnx
    if is_pipeline(model):
        proto = pipeline_to_onnx(model, X)
        if path is not None:
            _write(proto, path)
        return proto
    net, head = _network(model)
    graph = _Graph(onnx, net.dtype)
    graph.input = onnx.helper.make_tensor_value_info("X", graph.type, ["N", net.layer_sizes[0]])
    for name, value, elem_type, shape in head(graph, _forward(graph, net, "X"), net):
        graph.output(name, value, elem_type, shape)
    proto = graph.model(f"fastmlp {type(model).__name__} {'-'.join(map(str, net.layer_sizes))}")
    if path is not None:
        _write(proto, path)
    return proto


def _network(model):
    """(the MLP, the function adding the outputs) for `model`; TypeError or NotFittedError."""
    if isinstance(model, MLP):
        return model, _mlp_outputs
    estimators = sys.modules.get("fastmlp._sklearn")    # loaded if `model` is one of ours
    if estimators is not None and isinstance(model, (estimators.MLPClassifier, estimators.MLPRegressor)):
        from sklearn.utils.validation import check_is_fitted
        check_is_fitted(model)
        if isinstance(model, estimators.MLPRegressor):
            return model._mlp, _regressor_outputs
        return model._mlp, functools.partial(_classifier_outputs, model)
    raise TypeError("fastmlp.to_onnx exports a fastmlp.MLP, MLPClassifier or MLPRegressor (or a scikit-learn "
                    "Pipeline ending in one), got "
                    f"{type(model).__module__}.{type(model).__qualname__}")


def _write(proto, path):
    from ._persistence import _atomic_write
    data = proto.SerializeToString()
    if hasattr(path, "write"):
        path.write(data)
        return
    _atomic_write(os.path.realpath(os.fsdecode(os.fspath(path))), lambda file: file.write(data))


class _Graph:
    """Nodes, constants and outputs of the graph being built, each with a fresh name."""

    def __init__(self, onnx, dtype, namer=None):
        self.onnx, self.dtype = onnx, np.dtype(dtype)
        self.type = onnx.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.input = None               # set by to_onnx
        self.nodes, self.constants, self.outputs, self.count = [], [], [], 0
        self.namer = namer              # a function giving a fresh name for a hint, when the names must
                                        # not clash with another graph's (skl2onnx's scope)

    def name(self, hint):
        if self.namer is not None:
            return self.namer(hint)
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value, hint="c", dtype=None):
        """A constant tensor (an initializer) holding `value`, in the model's dtype by default."""
        array = np.asarray(value, self.dtype if dtype is None else dtype)
        tensor = self.onnx.numpy_helper.from_array(array, self.name(hint))
        self.constants.append(tensor)
        return tensor.name

    def op(self, op_type, *inputs, hint=None, **attributes):
        output = self.name(hint or op_type.lower())
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def output(self, name, value, elem_type, shape):
        """Expose `value` as the graph output `name` (renamed by an Identity node)."""
        self.nodes.append(self.onnx.helper.make_node("Identity", [value], [name]))
        self.outputs.append(self.onnx.helper.make_tensor_value_info(name, elem_type, shape))

    def model(self, doc):
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, "fastmlp", [self.input], self.outputs, self.constants,
                                  doc_string=doc)
        from . import __version__
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                                 producer_name="fastmlp", producer_version=__version__, doc_string=doc)


# ------------------------------------------------------------------ the network


def _forward(g, net, A):
    """The output activations (name of an [N, n_outputs] tensor) of `net` for the input
    tensor named `A`, [N, n_features] in the network's dtype: its inference ops (dropout, a
    training-only op, is the identity here; batch normalization reads the running statistics)."""
    n_layers = len(net.coefs_)
    for l, (W, b) in enumerate(zip(net.coefs_, net.intercepts_)):
        Z = g.op("Gemm", A, g.const(W, f"W{l}"), g.const(b, f"b{l}"), hint=f"Z{l}")
        if l < n_layers - 1 and net._net.norm[l] is not None:
            Z = _norm(g, Z, net._net.norm[l], net.norm_layers_[l], l)
        A = _hidden(g, Z, net._net.activations[l], net.negative_slope) if l < n_layers - 1 else Z
    if net.output == "identity":
        return A
    return g.op(_OUTPUT_OPS[net.output], A, hint="P", **({"axis": 1} if net.output == "softmax" else {}))


def _norm(g, Z, kind, views, l):
    """The tensor named `Z` through hidden layer l's normalization: BatchNormalization in
    inference mode (its running statistics) or LayerNormalization over the units (opset 17)."""
    gamma, beta = g.const(views["gamma"], f"gamma{l}"), g.const(views["beta"], f"beta{l}")
    if kind == "batch":
        return g.op("BatchNormalization", Z, gamma, beta, g.const(views["running_mean"], f"running_mean{l}"),
                    g.const(views["running_var"], f"running_var{l}"), epsilon=NORM_EPS, hint=f"N{l}")
    return g.op("LayerNormalization", Z, gamma, beta, axis=-1, epsilon=NORM_EPS, hint=f"N{l}")


def _hidden(g, Z, activation, slope):
    """The tensor named `Z` through the hidden activation `activation`."""
    return _HIDDEN[activation](g, Z, slope)


def _leaky_relu(g, Z, slope):
    if g.dtype == np.float32:
        return g.op("LeakyRelu", Z, alpha=float(slope))
    return g.op("Where", g.op("GreaterOrEqual", Z, g.const(0)), Z, g.op("Mul", Z, g.const(slope)))


def _gelu(g, Z, slope):
    return g.op("Mul", Z, _Phi(g, Z) if g.dtype == np.float64 else _Phi_erf(g, Z), hint="gelu")


# every hidden activation of the registry, as ONNX nodes (checked when this module is imported)
_HIDDEN = implemented("ONNX export", "activation", tuple(ACTIVATIONS), {
    "identity": lambda g, Z, slope: Z,
    "leaky_relu": _leaky_relu,
    "relu": lambda g, Z, slope: g.op("Relu", Z),
    "tanh": lambda g, Z, slope: g.op("Tanh", Z),
    "sigmoid": lambda g, Z, slope: g.op("Sigmoid", Z),
    "gelu": _gelu,
    "silu": lambda g, Z, slope: g.op("Mul", Z, g.op("Sigmoid", Z), hint="silu"),
})


def _Phi_erf(g, Z):
    """Phi(z) = 0.5 * (1 + erf(z / sqrt 2)), through the Erf operator."""
    erf = g.op("Erf", g.op("Mul", Z, g.const(math.sqrt(0.5))))
    return g.op("Mul", g.op("Add", erf, g.const(1)), g.const(0.5))


def _Phi(g, Z):
    """Phi(z) without Erf (see the module's docstring): e = erfc(|z| / sqrt 2), then
    e / 2 for z < 0, 1 - e / 2 otherwise."""
    a = g.op("Mul", g.op("Abs", Z), g.const(math.sqrt(0.5)))
    k = g.const(_CHEBYSHEV_SCALE)
    y = g.op("Div", g.op("Sub", a, k), g.op("Add", a, k))
    y2 = g.op("Add", y, y)
    coefficients = _erfcx_chebyshev()
    b1, b2 = g.const(coefficients[-1]), g.const(0)     # Clenshaw: b_k = 2y b_{k+1} - b_{k+2} + c_k
    for c in coefficients[-2:0:-1]:
        b1, b2 = g.op("Add", g.op("Sub", g.op("Mul", y2, b1), b2), g.const(c)), b1
    erfcx = g.op("Add", g.op("Sub", g.op("Mul", y, b1), b2), g.const(coefficients[0]))
    half_e = g.op("Mul", g.op("Mul", g.op("Exp", g.op("Neg", g.op("Mul", a, a))), erfcx), g.const(0.5))
    return g.op("Where", g.op("Less", Z, g.const(0)), half_e, g.op("Sub", g.const(1), half_e))


@functools.cache
def _erfcx_chebyshev():
    """Chebyshev coefficients of erfcx(a) in y = (a - k) / (a + k), y in [-1, 1)."""
    from scipy.special import erfcx
    k = _CHEBYSHEV_SCALE
    return tuple(np.polynomial.chebyshev.chebinterpolate(lambda y: erfcx(k * (1 + y) / (1 - y)),
                                                         _CHEBYSHEV_DEGREE))


# ------------------------------------------------------------------ the outputs of each model


def _flat(g, value):
    return g.op("Reshape", value, g.const([-1], dtype=np.int64))


def _mlp_outputs(g, P, net):
    """The graph's outputs, (name, value, element type, shape) each."""
    k = net.layer_sizes[-1]
    outputs = [("probabilities", P, g.type, ["N", k])]
    int64 = g.onnx.TensorProto.INT64
    if net.output == "softmax":
        outputs.append(("label", g.op("ArgMax", P, axis=1, keepdims=0), int64, ["N"]))
    elif net.output == "sigmoid":
        labels = g.op("Cast", g.op("GreaterOrEqual", P, g.const(0.5)), to=int64)
        outputs.append(("label", _flat(g, labels) if k == 1 else labels, int64, ["N"] if k == 1 else ["N", k]))
    return outputs


def _regressor_outputs(g, P, net):
    k = net.layer_sizes[-1]
    return [("variable", _flat(g, P) if k == 1 else P, g.type, ["N"] if k == 1 else ["N", k])]


def _classifier_outputs(est, g, P, net):
    """predict's labels as LabelBinarizer.inverse_transform decodes them (threshold: p > 0.5)
    and predict_proba's probabilities."""
    int64 = g.onnx.TensorProto.INT64
    if est.out_activation_ == "softmax":
        labels, elem_type = _class_table(g, est.classes_)
        return [("label", g.op("Gather", labels, g.op("ArgMax", P, axis=1, keepdims=0), axis=0), elem_type, ["N"]),
                ("probabilities", P, g.type, ["N", est.n_outputs_])]
    if est.n_outputs_ > 1:                                         # multilabel: the indicator matrix
        return [("label", g.op("Cast", g.op("Greater", P, g.const(0.5)), to=int64), int64, ["N", est.n_outputs_]),
                ("probabilities", P, g.type, ["N", est.n_outputs_])]
    labels, elem_type = _class_table(g, est.classes_[[0, -1]])    # binary (or a single class)
    positive = g.op("Cast", g.op("Greater", _flat(g, P), g.const(0.5)), to=int64)
    return [("label", g.op("Gather", labels, positive, axis=0), elem_type, ["N"]),
            ("probabilities", g.op("Concat", g.op("Sub", g.const(1), P), P, axis=1), g.type, ["N", 2])]


def _class_table(g, classes):
    """(a constant holding `classes`, its ONNX element type): strings as STRING, numbers and
    booleans as themselves. TypeError for labels of another type."""
    classes = np.asarray(classes)
    if classes.dtype.kind == "O" and not all(isinstance(c, str) for c in classes):
        classes = np.asarray(classes.tolist())     # e.g. Python ints in an object array
    if classes.dtype.kind in "UO" and all(isinstance(c, str) for c in classes.tolist()):
        tensor = g.onnx.helper.make_tensor(g.name("classes"), g.onnx.TensorProto.STRING, [len(classes)],
                                           [c.encode("utf-8") for c in classes.tolist()])
        g.constants.append(tensor)
        return tensor.name, g.onnx.TensorProto.STRING
    if classes.dtype.kind not in "biuf":
        raise TypeError(f"fastmlp.to_onnx cannot export class labels of dtype {classes.dtype}: ONNX holds "
                        "strings, integers, floats and booleans")
    return g.const(classes, "classes", classes.dtype), g.onnx.helper.np_dtype_to_tensor_dtype(classes.dtype)
