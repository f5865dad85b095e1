"""``fastmlp export MODEL.npz MODEL.onnx`` (issue 25 item 7): a model file and the
preprocessing ``fastmlp train`` stored in it as one ONNX graph over the CSV's raw columns.

The graph is checked in onnxruntime on every row of the training CSV against the
predictions the command line makes: through a preprocessing object of
``fastmlp._preprocess``'s layout built here, and, where ``fastmlp._preprocess`` exists,
through a model file ``fastmlp train`` wrote. The export reads the network's weights only;
the tests run on both backends."""

import warnings
from types import SimpleNamespace

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pd = pytest.importorskip("pandas")
pytest.importorskip("skl2onnx")
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import ConvergenceWarning
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor
from fastmlp._onnx_model_file import export_model_file, preprocessing_to_onnx
from _support import onnx_session

TOL = 1e-9


session = onnx_session


def run(proto, feeds):
    sess = session(proto)
    return dict(zip((o.name for o in sess.get_outputs()), sess.run(None, feeds)))


def csv_feeds(frame, text):
    """What a user feeds the graph for the CSV rows `frame`: numbers as float64 [N, 1] (NaN
    for missing), the `text` columns as strings [N, 1] ("" for missing)."""
    return {name: (frame[[name]].fillna("").astype(str).to_numpy(object) if name in text
                   else frame[[name]].to_numpy(np.float64)) for name in frame.columns}


def fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


@pytest.fixture(scope="module")
def csv(tmp_path_factory):
    rng = np.random.default_rng(11)
    n = 80
    frame = pd.DataFrame({"age": np.where(rng.random(n) < 0.1, np.nan, rng.integers(18, 80, n).astype(float)),
                          "city": rng.choice(["Oslo", "Lima", "Pune", None], n),
                          "income": np.round(rng.lognormal(3, 0.5, n), 2),
                          "plan": rng.choice(["a", "b"], n)})
    score = (frame.age.fillna(40) - 40) / 10 + (frame.city == "Oslo") - np.log(frame.income) + 3
    frame["buys"] = np.where(score > 0, "yes", "no")
    frame["spend"] = 10 * score + rng.normal(size=n)
    frame["spend2"] = -3 * score
    path = tmp_path_factory.mktemp("csv") / "train.csv"
    frame.to_csv(path, index=False)
    return path, pd.read_csv(path)


# ================================================================== _preprocess's layout, built here


def layout(frame, columns, text, impute=True, scale=True):
    """A fitted stand-in for ``_preprocess.Preprocessing``: the same ColumnTransformer on the
    same DataFrame (numbers float64 with NaN, text object with NaN)."""
    numeric = [c for c in columns if c not in text]
    number_steps = ([("impute", SimpleImputer(strategy="median"))] if impute else []) + \
        ([("scale", StandardScaler())] if scale else [])
    text_steps = ([("impute", SimpleImputer(strategy="most_frequent"))] if impute else []) + \
        [("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]
    transformer = ColumnTransformer([("numeric", Pipeline(number_steps) if number_steps else "passthrough", numeric),
                                     ("categorical", Pipeline(text_steps), text)],
                                    remainder="drop", verbose_feature_names_out=False)
    transformer.fit(inputs(frame, columns, text))
    record = {"columns": columns, "dates": [], "numeric": {"columns": numeric}, "categorical": {"columns": text}}
    return SimpleNamespace(record=record, column_transformer=transformer, target_scaler=None)


def inputs(frame, columns, text):
    out = pd.DataFrame({c: frame[c].astype(object) if c in text else frame[c].astype(np.float64) for c in columns})
    for c in text:
        out[c] = [np.nan if pd.isna(v) else str(v) for v in out[c]]
        out[c] = out[c].astype(object)
    return out


COLUMNS, TEXT = ["age", "city", "income", "plan"], ["city", "plan"]


@pytest.mark.parametrize("impute", [True, False])
def test_classifier_behind_the_stored_preprocessing(csv, backend, impute):
    _, frame = csv
    rows = frame if impute else frame.dropna(subset=["age", "city"])
    prep = layout(rows, COLUMNS, TEXT, impute=impute)
    X = prep.column_transformer.transform(inputs(rows, COLUMNS, TEXT))
    est = fit(MLPClassifier(hidden_layer_sizes=(8,), max_iter=40, random_state=0, backend=backend), X, rows.buys)
    proto = preprocessing_to_onnx(est, prep)
    assert [(v.name, v.type.tensor_type.elem_type) for v in proto.graph.input] == [
        ("age", onnx.TensorProto.DOUBLE), ("city", onnx.TensorProto.STRING), ("income", onnx.TensorProto.DOUBLE),
        ("plan", onnx.TensorProto.STRING)]
    got = run(proto, csv_feeds(rows[COLUMNS], TEXT))
    assert (got["label"] == est.predict(X)).all()
    np.testing.assert_allclose(got["probabilities"], est.predict_proba(X), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("targets", [["spend"], ["spend", "spend2"]])
def test_regressor_maps_the_standardized_target_back(csv, backend, targets):
    _, frame = csv
    prep = layout(frame, COLUMNS, TEXT)
    y = frame[targets].to_numpy(np.float64)
    prep.target_scaler = StandardScaler().fit(y)
    X = prep.column_transformer.transform(inputs(frame, COLUMNS, TEXT))
    scaled = prep.target_scaler.transform(y)
    est = fit(MLPRegressor(hidden_layer_sizes=(8,), max_iter=40, random_state=0, backend=backend), X,
              scaled[:, 0] if len(targets) == 1 else scaled)
    expected = prep.target_scaler.inverse_transform(est.predict(X).reshape(len(X), -1))
    got = run(preprocessing_to_onnx(est, prep), csv_feeds(frame[COLUMNS], TEXT))["variable"]
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected[:, 0] if len(targets) == 1 else expected, rtol=TOL, atol=TOL)


def test_numbers_as_they_are_and_missing_texts_unknown(csv):
    """--no-scale --no-impute: the numeric columns pass through; a "" text is all zeros."""
    _, frame = csv
    rows = frame.dropna(subset=["age", "city"])
    prep = layout(rows, COLUMNS, TEXT, impute=False, scale=False)
    X = prep.column_transformer.transform(inputs(rows, COLUMNS, TEXT))
    est = fit(MLPClassifier(hidden_layer_sizes=(5,), max_iter=20, random_state=0), X, rows.buys)
    probe = rows[COLUMNS].head(4).assign(city=["", "Oslo", "", "Lima"])
    expected = est.predict_proba(prep.column_transformer.transform(inputs(probe, COLUMNS, TEXT)))
    got = run(preprocessing_to_onnx(est, prep), csv_feeds(probe, TEXT))
    np.testing.assert_allclose(got["probabilities"], expected, rtol=TOL, atol=TOL)


def test_date_columns_are_refused(csv):
    _, frame = csv
    prep = layout(frame, COLUMNS, TEXT)
    prep.record["dates"] = [{"column": "joined", "format": "%Y-%m-%d", "parts": ["year"]}]
    est = fit(MLPClassifier(hidden_layer_sizes=(3,), max_iter=5, random_state=0),
              prep.column_transformer.transform(inputs(frame, COLUMNS, TEXT)), frame.buys)
    with pytest.raises(ValueError, match="date column.*'joined'.*--drop"):
        preprocessing_to_onnx(est, prep)


# ================================================================== model files


def test_model_files_without_preprocessing(csv, tmp_path):
    """MLP.save files and estimators saved with feature names (no preprocessing record)."""
    from fastmlp._estimator_io import save_estimator
    _, frame = csv
    net = fastmlp.MLP([2, 4, 3], output="softmax", seed=0)
    net.save(tmp_path / "net.npz")
    X = frame[["income", "spend"]].to_numpy()
    proto = export_model_file(tmp_path / "net.npz", tmp_path / "net.onnx")
    assert onnx.load(tmp_path / "net.onnx") == proto
    np.testing.assert_allclose(run(proto, {"X": X})["probabilities"], net.predict_proba(X), rtol=TOL, atol=TOL)
    est = fit(MLPRegressor(hidden_layer_sizes=(4,), max_iter=10, random_state=0), frame[["income", "spend"]],
              frame.spend2)
    save_estimator(est, tmp_path / "est.npz")
    got = run(export_model_file(tmp_path / "est.npz"), csv_feeds(frame[["income", "spend"]], []))
    np.testing.assert_allclose(got["variable"], est.predict(frame[["income", "spend"]]), rtol=TOL, atol=TOL)
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(fastmlp.ModelFileError):
        export_model_file(tmp_path / "junk.npz")


@pytest.mark.parametrize("target", [["buys"], ["spend"], ["spend", "spend2"]])
def test_a_file_fastmlp_train_wrote(csv, tmp_path, backend, target):
    """End to end, where the command line stores its preprocessing (``fastmlp._preprocess``)."""
    pytest.importorskip("fastmlp._preprocess")
    from fastmlp import _cli_models
    from fastmlp.__main__ import main
    path, frame = csv
    features = frame.drop(columns=["buys", "spend", "spend2"])
    data = tmp_path / "data.csv"
    frame[[*features.columns, *target]].to_csv(data, index=False)
    model = tmp_path / "model.npz"
    assert main(["train", str(data), "--target", *target, "-o", str(model), "--hidden", "8", "--epochs", "30",
                 "--seed", "0", "--backend", backend, "--no-progress"]) == 0
    cli = _cli_models.load(str(model), None)
    X = cli.inputs(features, str(data))
    assert main(["export", str(model), str(tmp_path / "model.onnx")]) == 0       # the command line's export
    proto = onnx.load(tmp_path / "model.onnx")
    assert proto == export_model_file(model)
    got = run(proto, csv_feeds(features, ["city", "plan"]))
    if target == ["buys"]:
        assert (got["label"] == cli.predict(X)).all()
        np.testing.assert_allclose(got["probabilities"], cli.predict_proba(X), rtol=TOL, atol=TOL)
    else:
        np.testing.assert_allclose(got["variable"], cli.predict(X), rtol=TOL, atol=TOL)


def test_the_export_command_refuses_bad_paths_in_one_line(csv, tmp_path, capsys):
    """`fastmlp export` on a missing model or into a missing directory: one line, exit 2, no file."""
    pytest.importorskip("fastmlp._preprocess")
    from fastmlp.__main__ import main
    assert main(["export", str(tmp_path / "none.npz"), str(tmp_path / "m.onnx")]) == 2
    assert main(["export", str(tmp_path / "none.npz"), str(tmp_path / "no" / "m.onnx")]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2 and all(line.startswith("fastmlp: error: ") for line in lines)
    assert not (tmp_path / "m.onnx").exists()
