"""fastmlp.to_onnx: every exported graph passes onnx's full check, runs in onnxruntime on a
batch of any size, and gives what the model's predict_proba and predict give (1e-5 in
float32, 1e-9 in float64, labels exactly), for MLP and both estimators on both backends."""

import os
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")
from scipy.special import ndtr
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._registry import ACTIVATIONS, OUTPUTS
from fastmlp._sklearn import ACTIVATIONS as SKLEARN_ACTIVATIONS

TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-9}
BATCHES = (1, 29)              # no batch size is fixed at export: the graph takes any


def exported(model):
    """The ONNX model of `model`, checked by onnx, as an onnxruntime session."""
    proto = fastmlp.to_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(session, X):
    return dict(zip((o.name for o in session.get_outputs()), session.run(None, {"X": X})))


def assert_same(actual, expected, dtype=None):
    """Floats within the dtype's tolerance (and of that dtype), anything else exactly."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    if dtype is not None:
        assert actual.dtype == dtype
        np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype])
    else:
        assert actual.dtype.kind == expected.dtype.kind or {actual.dtype.kind, expected.dtype.kind} == {"O", "U"}
        assert (actual == expected).all(), (actual, expected)


def data(n, d, dtype, seed=0, scale=1.5):
    return (np.random.default_rng(seed).standard_normal((n, d)) * scale).astype(dtype)


# ================================================================== MLP


def random_mlp(sizes, backend, dtype, **options):
    """An MLP with weights and biases drawn large enough that every activation's negative
    and positive sides are reached."""
    net = fastmlp.MLP(sizes, init="normal", init_scale=0.5, seed=3, dtype=dtype, backend=backend, **options)
    rng = np.random.default_rng(4)
    for b in net.intercepts_:
        b[...] = rng.standard_normal(b.shape)
    return net


def check_mlp(net, dtype):
    session = exported(net)
    for n in BATCHES:
        X = data(n, net.layer_sizes[0], dtype, seed=n)
        got = run(session, X)
        assert_same(got["probabilities"], net.predict_proba(X), dtype)
        if net.output in ("sigmoid", "softmax"):
            assert_same(got["label"], net.predict(X))
        else:
            assert set(got) == {"probabilities"}


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_mlp_every_activation_and_output(backend, dtype, activation, output):
    check_mlp(random_mlp([5, 8, 7, 3], backend, dtype, activation=activation, output=output,
                         negative_slope=0.2), dtype)


@pytest.mark.parametrize("output", ["sigmoid", "identity", "exp"])
def test_mlp_one_output_and_per_layer_activations(backend, dtype, output):
    check_mlp(random_mlp([4, 6, 6, 5, 1], backend, dtype, activation=["gelu", "leaky_relu", "tanh"],
                         output=output, negative_slope=-0.3), dtype)


def test_leaky_relu_slopes_beyond_one(backend, dtype):
    check_mlp(random_mlp([3, 6, 2], backend, dtype, activation="leaky_relu", output="identity",
                         negative_slope=2.5), dtype)


def test_float64_gelu_is_exact_to_double_precision_over_its_whole_range():
    """float64 GELU has no Erf operator to use (onnxruntime has no float64 kernel): the series
    that replaces it matches z * Phi(z) to about 1e-14, from underflow to saturation."""
    net = fastmlp.MLP([1, 1, 1], activation="gelu", output="identity", dtype="float64")
    net.coefs_[0][...], net.coefs_[1][...], net.intercepts_[0][...], net.intercepts_[1][...] = 1, 1, 0, 0
    z = np.concatenate([np.linspace(-40, 40, 8001), [-1e300, -1e3, -1e-300, 0.0, 1e-300, 1e3, 1e300]])
    gelu = run(exported(net), z[:, None])["probabilities"][:, 0]
    np.testing.assert_allclose(gelu, z * ndtr(z), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(gelu, net.predict_proba(z[:, None])[:, 0], rtol=1e-13, atol=1e-14)


def test_sigmoid_ties_follow_each_models_rule(backend, dtype):
    """p == 0.5 exactly: MLP.predict says 1 (p >= 0.5), the classifier its first class
    (scikit-learn's LabelBinarizer: p > 0.5)."""
    X = data(7, 3, dtype)
    net = random_mlp([3, 4, 1], backend, dtype)
    clf = fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0, backend=backend), X,
              np.array(list("ababbab")))
    for model in (net, clf):
        W, b = model.coefs_[-1], model.intercepts_[-1]
        W[...], b[...] = 0, 0
    assert_same(run(exported(net), X)["label"], np.ones(7, np.int64))
    assert_same(run(exported(clf), X)["label"], np.array(["a"] * 7))


# ================================================================== estimators


def fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def check_estimator(est, X, y, dtype):
    fit(est, X, y)
    session = exported(est)
    for n in BATCHES:
        Xt = data(n, X.shape[1], dtype, seed=10 + n)
        got = run(session, Xt)
        if isinstance(est, MLPRegressor):
            assert set(got) == {"variable"}
            assert_same(got["variable"], est.predict(Xt), dtype)
        else:
            assert set(got) == {"label", "probabilities"}
            assert_same(got["probabilities"], est.predict_proba(Xt), dtype)
            assert_same(got["label"], est.predict(Xt))


def labels(kind, n):
    """Targets of each kind a classifier takes, n rows."""
    i = np.arange(n)
    return {
        "str binary": np.where(i % 3 == 0, "spam", "ham"),
        "str multiclass": np.array(["cat", "dog", "émeu", "owl"])[i % 4],
        "object str": np.array(["no", "yes", "maybe"], dtype=object)[i % 3],
        "-1/+1": np.where(i % 2 == 0, -1, 1),
        "1..k": i % 5 + 1,
        "bool": i % 3 == 1,
        "float": np.array([1.0, 2.0, 4.0])[i % 3],
        "multilabel": np.stack([i % 2, (i // 2) % 2, i % 3 == 0], axis=1).astype(int),
    }[kind]


LABEL_KINDS = ["str binary", "str multiclass", "object str", "-1/+1", "1..k", "bool", "float", "multilabel"]


@pytest.mark.parametrize("kind", LABEL_KINDS)
def test_classifier_labels_of_every_kind(backend, dtype, kind):
    activation = list(SKLEARN_ACTIVATIONS)[LABEL_KINDS.index(kind) % len(SKLEARN_ACTIVATIONS)]
    est = MLPClassifier(hidden_layer_sizes=(8, 6), activation=activation, max_iter=20, random_state=0,
                        backend=backend)
    check_estimator(est, data(60, 4, dtype), labels(kind, 60), dtype)


@pytest.mark.parametrize("activation", SKLEARN_ACTIVATIONS)
def test_classifier_every_activation(backend, dtype, activation):
    est = MLPClassifier(hidden_layer_sizes=(7,), activation=activation, negative_slope=0.1, max_iter=20,
                        random_state=1, backend=backend)
    check_estimator(est, data(60, 4, dtype), labels("1..k", 60), dtype)


@pytest.mark.parametrize("loss,n_outputs", [("squared_error", 1), ("squared_error", 3), ("poisson", 1),
                                            ("poisson", 2)])
def test_regressor(backend, dtype, loss, n_outputs):
    X = data(60, 4, dtype)
    y = np.abs(X[:, :n_outputs] + 0.5 * X[:, 1:n_outputs + 1])
    est = MLPRegressor(loss=loss, hidden_layer_sizes=(8,), activation="tanh", max_iter=30, random_state=0,
                       backend=backend)
    check_estimator(est, X, y[:, 0] if n_outputs == 1 else y, dtype)


def test_graph_declares_a_dynamic_batch_and_the_models_types():
    X = data(30, 3, np.float32)
    est = fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0), X, labels("str multiclass", 30))
    graph = fastmlp.to_onnx(est).graph
    shapes = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*graph.input, *graph.output]}
    assert shapes == {"X": ["N", 3], "label": ["N"], "probabilities": ["N", 4]}
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]}
    assert types == {"X": onnx.TensorProto.FLOAT, "label": onnx.TensorProto.STRING,
                     "probabilities": onnx.TensorProto.FLOAT}


# ================================================================== files and errors


def test_path_writes_the_model_atomically(tmp_path):
    net = random_mlp([3, 4, 2], "numpy", np.float64, output="softmax")
    target = tmp_path / "net.onnx"
    target.write_bytes(b"an older file")
    proto = fastmlp.to_onnx(net, path=target)
    assert onnx.load(target) == proto
    assert os.listdir(tmp_path) == ["net.onnx"]          # no temporary file left behind
    assert fastmlp.to_onnx(net, str(tmp_path / "again.onnx")) == proto


def test_what_cannot_be_exported_raises_a_clear_error(monkeypatch):
    from sklearn.neural_network import MLPClassifier as SklearnMLPClassifier
    for thing in ("model.npz", np.zeros(3), SklearnMLPClassifier()):
        with pytest.raises(TypeError, match="exports a fastmlp.MLP, MLPClassifier or MLPRegressor"):
            fastmlp.to_onnx(thing)
    for est in (MLPClassifier(), MLPRegressor()):
        with pytest.raises(NotFittedError):
            fastmlp.to_onnx(est)
    monkeypatch.setitem(sys.modules, "onnx", None)          # as if onnx were not installed
    with pytest.raises(ImportError, match=r"pip install 'fastmlp\[onnx\]'"):
        fastmlp.to_onnx(fastmlp.MLP([2, 2, 1]))
