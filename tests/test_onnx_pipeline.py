"""Whole pipelines to ONNX (issue 25 item 7): ``fastmlp.to_onnx(pipeline, X=...)`` and
``skl2onnx.to_onnx`` after ``fastmlp.register_skl2onnx()``.

Every graph runs in onnxruntime on every row of the data the pipeline was fitted on (read
back from a CSV, with missing numbers and texts), and gives what the pipeline's predict and
predict_proba give: 1e-9 in float64, 1e-5 in float32, labels exactly. The export reads the
network's weights only; the main tests still run on both backends (the comparison is with
each backend's own predict)."""

import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pd = pytest.importorskip("pandas")
skl2onnx = pytest.importorskip("skl2onnx")
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._sklearn import ACTIVATIONS as SKLEARN_ACTIVATIONS
from _support import onnx_session

TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-9}
TASKS = ["binary", "multiclass", "multilabel", "regression", "regression2"]


session = onnx_session


def run(sess, feeds):
    return dict(zip((o.name for o in sess.get_outputs()), sess.run(None, feeds)))


def column_feeds(df):
    """onnxruntime's inputs for a DataFrame: one [N, 1] tensor per column, numbers as float
    (NaN for missing) or int64, text as strings ("" for missing)."""
    feeds = {}
    for name in df.columns:
        column = df[[name]]
        kind = column.dtypes.iloc[0].kind
        if kind == "f":
            feeds[name] = column.to_numpy(column.dtypes.iloc[0])
        elif kind in "iu":
            feeds[name] = column.to_numpy(np.int64)
        else:
            feeds[name] = column.fillna("").to_numpy(object).astype(str).astype(object)
    return feeds


def fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def assert_close(actual, expected, dtype, tol=None):
    """`actual` of `dtype`, within `tol` (by default the dtype's tolerance) of `expected`."""
    expected = np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == dtype
    tol = TOL[dtype] if tol is None else tol
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def assert_labels(actual, expected):
    expected = np.asarray(expected)
    assert actual.shape == expected.shape
    assert (actual == expected).all(), (actual, expected)


# ================================================================== the data: a CSV


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """A training CSV read back by pandas: a float column with missing numbers, an integer
    column, a float column, a text column with missing texts (read as NaN, then ""), and
    targets of every task."""
    rng = np.random.default_rng(7)
    n = 90
    x1 = np.round(rng.normal(size=n), 3)
    x1[rng.random(n) < 0.15] = np.nan
    df = pd.DataFrame({"x1": x1, "count": rng.integers(0, 20, n), "x2": np.round(rng.normal(3, 2, n), 3),
                       "colour": rng.choice(["red", "green", "blue", "vert", None], n)})
    score = np.nan_to_num(df.x1) + 0.1 * df["count"] - 0.3 * df.x2 + (df.colour == "red")
    targets = {"binary": np.where(score > 0, "yes", "no"),
               "multiclass": np.digitize(score, [-1, 0, 1]),
               "multilabel": np.stack([score > 0, df["count"] > 9, df.colour.isin(["red", "blue"])], 1).astype(int),
               "regression": score + 0.1 * rng.normal(size=n),
               "regression2": np.stack([score, np.abs(score)], 1)}
    path = tmp_path_factory.mktemp("csv") / "train.csv"
    df.to_csv(path, index=False)
    df = pd.read_csv(path)
    assert df.x1.isna().any() and df.colour.isna().any()
    df["colour"] = df.colour.fillna("")                     # a missing text cell is the empty string
    return df, targets


def preprocessing():
    numbers = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    return ColumnTransformer([("numbers", numbers, ["count", "x1", "x2"]),   # an integer column first
                              ("text", OneHotEncoder(handle_unknown="ignore"), ["colour"])])


def model(task, backend, **options):
    options = {"hidden_layer_sizes": (9, 7), "max_iter": 60, "random_state": 0, "backend": backend, **options}
    return MLPRegressor(**options) if task.startswith("regression") else MLPClassifier(**options)


def check_fastmlp_outputs(pipe, got, X, dtype):
    if isinstance(pipe[-1], MLPRegressor):
        assert set(got) == {"variable"}
        assert_close(got["variable"], pipe.predict(X), dtype)
    else:
        assert set(got) == {"label", "probabilities"}
        assert_close(got["probabilities"], pipe.predict_proba(X), dtype)
        assert_labels(got["label"], pipe.predict(X))


# ================================================================== fastmlp.to_onnx(pipeline)


@pytest.mark.parametrize("task", TASKS)
def test_dataframe_pipeline_is_one_graph_over_the_csv_columns(table, backend, task):
    df, targets = table
    pipe = fit(Pipeline([("prep", preprocessing()), ("mlp", model(task, backend))]), df, targets[task])
    proto = fastmlp.to_onnx(pipe, X=df)
    inputs = {v.name: (v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
              for v in proto.graph.input}
    T = onnx.TensorProto
    assert inputs == {"x1": (T.DOUBLE, ["N", 1]), "count": (T.INT64, ["N", 1]), "x2": (T.DOUBLE, ["N", 1]),
                      "colour": (T.STRING, ["N", 1])}
    assert proto.producer_name == "fastmlp"
    check_fastmlp_outputs(pipe, run(session(proto), column_feeds(df)), df, np.dtype(np.float64))


def test_dataframe_pipeline_rows_one_at_a_time_and_unseen_texts(table):
    """Any batch size, and a text the encoder never saw (all zeros, as handle_unknown says)."""
    df, targets = table
    pipe = fit(Pipeline([("prep", preprocessing()), ("mlp", model("multiclass", "numpy"))]), df,
               targets["multiclass"])
    sess = session(fastmlp.to_onnx(pipe, X=df.head(3)))
    new = df.head(5).assign(colour=["mauve", "", "red", "?", "blue"])
    for i in range(len(new)):
        check_fastmlp_outputs(pipe, run(sess, column_feeds(new.iloc[[i]])), new.iloc[[i]], np.dtype(np.float64))


def test_array_pipeline_in_each_dtype(backend, dtype):
    """Fitted on an array: one input "X" in the array's dtype (float32 networks too), with
    or without X=."""
    rng = np.random.default_rng(1)
    X = (rng.normal(size=(70, 5)) * [1, 10, 100, 0.1, 1]).astype(dtype)
    y = (X[:, 0] + X[:, 1] / 10 > 0).astype(int) + (X[:, 2] > 50)
    pipe = fit(Pipeline([("scale", StandardScaler()), ("mlp", model("multiclass", backend))]), X, y)
    assert pipe[-1]._mlp.dtype == dtype
    for proto in (fastmlp.to_onnx(pipe), fastmlp.to_onnx(pipe, X=X[:2])):
        (graph_input,) = proto.graph.input
        assert graph_input.name == "X"
        assert graph_input.type.tensor_type.elem_type == onnx.helper.np_dtype_to_tensor_dtype(dtype)
        check_fastmlp_outputs(pipe, run(session(proto), {"X": X}), X, dtype)


@pytest.mark.parametrize("activation", SKLEARN_ACTIVATIONS)
def test_every_activation_inside_a_pipeline(dtype, activation):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 4)).astype(dtype)
    y = X[:, :2] @ [1.0, -2.0]
    pipe = fit(Pipeline([("scale", StandardScaler()),
                         ("mlp", MLPRegressor(hidden_layer_sizes=(6,), activation=activation, negative_slope=0.2,
                                              max_iter=30, random_state=0))]), X, y)
    check_fastmlp_outputs(pipe, run(session(fastmlp.to_onnx(pipe)), {"X": X}), X, dtype)


def test_pipeline_of_the_network_alone(table):
    """No preprocessing steps ("passthrough" steps are none): the DataFrame's columns go to
    the network side by side."""
    df, targets = table
    numbers = df[["count", "x2"]]
    pipe = fit(Pipeline([("nothing", "passthrough"), ("mlp", model("binary", "numpy"))]), numbers, targets["binary"])
    proto = fastmlp.to_onnx(pipe, X=numbers)
    assert [v.name for v in proto.graph.input] == ["count", "x2"]
    check_fastmlp_outputs(pipe, run(session(proto), column_feeds(numbers)), numbers, np.dtype(np.float64))


def test_path_writes_the_pipeline(table, tmp_path):
    df, targets = table
    pipe = fit(Pipeline([("prep", preprocessing()), ("mlp", model("regression", "numpy"))]), df, targets["regression"])
    proto = fastmlp.to_onnx(pipe, tmp_path / "pipe.onnx", X=df)
    assert onnx.load(tmp_path / "pipe.onnx") == proto


def test_what_cannot_be_exported_raises_a_clear_error(table, monkeypatch):
    df, targets = table
    y = targets["binary"]
    with pytest.raises(TypeError, match="last step is a fastmlp MLPClassifier or MLPRegressor.*LogisticRegression"):
        fastmlp.to_onnx(fit(Pipeline([("prep", preprocessing()), ("lr", LogisticRegression())]), df, y), X=df)
    with pytest.raises(NotFittedError):
        fastmlp.to_onnx(Pipeline([("prep", preprocessing()), ("mlp", MLPClassifier())]), X=df)
    pipe = fit(Pipeline([("prep", preprocessing()), ("mlp", model("binary", "numpy"))]), df, y)
    with pytest.raises(TypeError, match="fitted on a DataFrame: pass X="):
        fastmlp.to_onnx(pipe)
    with pytest.raises(ValueError, match="not the ones the Pipeline was fitted on"):
        fastmlp.to_onnx(pipe, X=df[["x2", "x1", "count", "colour"]])
    with pytest.raises(ValueError, match="must be 2-D"):
        fastmlp.to_onnx(fit(Pipeline([("s", StandardScaler()), ("mlp", model("binary", "numpy"))]),
                            df[["x2"]].to_numpy(), y), X=np.zeros(3))
    on_array = fit(Pipeline([("s", "passthrough"), ("mlp", model("binary", "numpy"))]), df[["x2"]].to_numpy(), y)
    with pytest.raises(TypeError, match="'when' has dtype datetime64"):
        fastmlp.to_onnx(on_array, X=pd.DataFrame({"when": [pd.Timestamp("2020-01-01")]}))
    renamed = df.rename(columns={"x2": "label"})
    prep = ColumnTransformer([("numbers", StandardScaler(), ["label", "count"])])
    with pytest.raises(ValueError, match="rename the input column 'label'"):
        fastmlp.to_onnx(fit(Pipeline([("prep", prep), ("mlp", model("binary", "numpy"))]), renamed, y), X=renamed)
    monkeypatch.setitem(sys.modules, "skl2onnx", None)          # as if skl2onnx were not installed
    with pytest.raises(ImportError, match="pip install skl2onnx"):
        fastmlp.to_onnx(pipe, X=df)
    with pytest.raises(ImportError, match="pip install skl2onnx"):
        fastmlp.register_skl2onnx()


# ================================================================== skl2onnx.to_onnx after register_skl2onnx


@pytest.fixture(scope="module", autouse=True)
def registered():
    fastmlp.register_skl2onnx()
    fastmlp.register_skl2onnx()              # idempotent


def plain_preprocessing():
    """skl2onnx's own SimpleImputer converter has no float64 kernel in onnxruntime: without
    it; and the float column before the integer one (skl2onnx types a transformer's joined
    columns after the first)."""
    return ColumnTransformer([("numbers", StandardScaler(), ["x2", "count"]),
                              ("text", OneHotEncoder(handle_unknown="ignore"), ["colour"])])


@pytest.mark.parametrize("task", TASKS)
def test_skl2onnx_converts_a_pipeline_holding_fastmlp(table, backend, task):
    """float64 columns, zipmap off: skl2onnx's outputs, label and probabilities (or variable,
    [N, n_outputs]), to 1e-9; labels as skl2onnx types them (int64 for integers)."""
    df, targets = table
    X = df.drop(columns="x1")
    pipe = fit(Pipeline([("prep", plain_preprocessing()), ("mlp", model(task, backend))]), X, targets[task])
    options = {} if task.startswith("regression") else {id(pipe[-1]): {"zipmap": False}}
    got = run(session(skl2onnx.to_onnx(pipe, X[:1], options=options)), column_feeds(X))
    f64 = np.dtype(np.float64)
    if task.startswith("regression"):
        assert set(got) == {"variable"}
        assert_close(got["variable"], pipe.predict(X).reshape(len(X), -1), f64)
    else:
        assert set(got) == {"label", "probabilities"}
        assert_close(got["probabilities"], pipe.predict_proba(X), f64)
        assert_labels(got["label"], pipe.predict(X))
        assert got["label"].dtype == (object if task == "binary" else np.int64)


def test_skl2onnx_zipmap_on_float32(backend):
    """The default ZipMap output (float32 only): one {class: probability} per row."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = np.array(["a", "b", "c"])[np.argmax(X, axis=1)]
    pipe = fit(Pipeline([("scale", StandardScaler()), ("mlp", model("multiclass", backend))]), X, y)
    got = run(session(skl2onnx.to_onnx(pipe, X[:1])), {"X": X})
    assert set(got) == {"output_label", "output_probability"}
    assert_labels(got["output_label"], pipe.predict(X))
    probabilities = np.array([[row[c] for c in pipe.classes_] for row in got["output_probability"]], np.float32)
    assert_close(probabilities, pipe.predict_proba(X), np.dtype(np.float32))


def test_skl2onnx_zipmap_on_float64_is_a_clear_error():
    X = np.random.default_rng(4).normal(size=(30, 3))
    pipe = fit(Pipeline([("scale", StandardScaler()), ("mlp", model("binary", "numpy"))]), X, X[:, 0] > 0)
    with pytest.raises(ValueError, match="ZipMap holds float32 probabilities only.*'zipmap': False"):
        skl2onnx.to_onnx(pipe, X[:1])


@pytest.mark.parametrize("kind", ["-1/+1", "bool", "integral float", "str"])
def test_skl2onnx_label_types(dtype, kind):
    """Network in either dtype, input in the other: the probabilities come out in the
    input's type (skl2onnx's rule), the labels in skl2onnx's: int64 for integers, booleans and
    (integral) floats, strings as strings."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(45, 3))
    classes = {"-1/+1": np.array([-1, 1]), "bool": np.array([False, True]), "integral float": np.array([1.0, 3.0]),
               "str": np.array(["ham", "spam"])}[kind]
    y = classes[(X[:, 0] + X[:, 1] > 0).astype(int)]
    est = fit(model("binary", "numpy"), X.astype(dtype), y)
    other = np.dtype(np.float64 if dtype == np.float32 else np.float32)
    Xin = X.astype(other)                  # what the graph is fed; the network casts it to its dtype
    got = run(session(skl2onnx.to_onnx(est, Xin[:1], options={id(est): {"zipmap": False}})), {"X": Xin})
    assert_close(got["probabilities"], est.predict_proba(Xin.astype(dtype)), other, tol=TOL[np.dtype(np.float32)])
    expected = est.predict(Xin.astype(dtype))
    assert got["label"].dtype == (object if kind == "str" else np.int64)
    assert_labels(got["label"], expected if kind == "str" else expected.astype(got["label"].dtype))


def test_skl2onnx_nocl_and_output_class_labels():
    X = np.random.default_rng(6).normal(size=(40, 3)).astype(np.float32)
    y = np.array(["x", "y", "z"])[np.argmax(X, axis=1)]
    est = fit(model("multiclass", "numpy"), X, y)
    got = run(session(skl2onnx.to_onnx(est, X[:1], options={id(est): {"zipmap": False, "nocl": True}})), {"X": X})
    assert_labels(got["label"], np.searchsorted(est.classes_, est.predict(X)))
    got = run(session(skl2onnx.to_onnx(est, X[:1], options={id(est): {"zipmap": False, "output_class_labels": True}})),
              {"X": X})
    assert_labels(got["class_labels"], est.classes_)


def test_skl2onnx_zipmap_columns_one_output_per_class():
    X = np.random.default_rng(8).normal(size=(40, 3)).astype(np.float32)
    y = np.argmax(X, axis=1) + 1
    est = fit(model("multiclass", "numpy"), X, y)
    got = run(session(skl2onnx.to_onnx(est, X[:1], options={id(est): {"zipmap": "columns"}})), {"X": X})
    assert list(got) == ["output_label", "i1", "i2", "i3"]
    assert_labels(got["output_label"], est.predict(X))
    assert_close(np.stack([got[c] for c in ("i1", "i2", "i3")], axis=1), est.predict_proba(X), np.dtype(np.float32))
