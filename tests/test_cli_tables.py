"""The command line on real tables (issue 25): the preprocessing `train` learns and stores in
the model file (``fastmlp._preprocess``), messy CSV files, several targets, predict --keep
and --proba, evaluate's scores, train --test-size and --cv, and a quick --help."""

import io
import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import fastmlp
from _support import cli_in_process

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")


main = cli_in_process


def ok(status, out, err):
    assert status == 0, err
    assert "Traceback" not in err
    return out


def read_csv(text):
    return pd.read_csv(io.StringIO(text))


def messy_frame(n=120, seed=0):
    """A table as users have them: an ID, a date, a text category, missing values."""
    rng = np.random.default_rng(seed)
    income, usage = rng.normal(50, 10, n), rng.normal(0, 1, n)
    plan = rng.choice(["basic", "pro", "team"], n)
    signup = pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    score = income / 10 + 2 * usage + (plan == "pro") * 3 + rng.normal(0, 0.3, n)
    frame = pd.DataFrame({"customer_id": np.arange(1000, 1000 + n), "signup": signup.strftime("%Y-%m-%d"),
                          "plan": plan, "income": income.round(2), "usage": usage.round(3),
                          "score": score.round(3), "churned": (score > np.median(score)).astype(int)})
    frame.loc[[i for i in (3, 17, 40) if i < n], "income"] = np.nan
    frame.loc[[i for i in (5, 60) if i < n], "plan"] = np.nan
    frame.loc[[i for i in (8,) if i < n], "signup"] = np.nan
    return frame


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    """The messy table written as Europeans do (';' between columns, a decimal comma)."""
    d = tmp_path_factory.mktemp("messy")
    path = d / "messy.csv"
    messy_frame().to_csv(path, sep=";", decimal=",", index=False)
    return path


def check_one_line_error(status, out, err, expected, untouched=()):
    assert status == 2, (out, err)
    assert out == "" and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("fastmlp: error: ") and expected in err, err
    for path in untouched:
        assert not os.path.exists(path)


# ================================================================== the messy table, end to end


def test_a_messy_table_trains_in_one_run_and_predicts_with_its_preprocessing(messy, tmp_path, capsys):
    model = tmp_path / "churn.npz"
    out = ok(*main("train", messy, "--target", "churned", "-o", model, "--decimal", ",", "--seed", 0,
                   "--epochs", 50, capsys=capsys))
    assert "120 rows, 5 features, 2 classes (0, 1)" in out
    # 4 date parts + income, usage, score + one-hot plan (basic, pro, team) = 10 inputs
    assert "MLPClassifier 10-100-1" in out
    err = capsys.readouterr().err
    status, out, err = main("info", model, capsys=capsys)
    for line in ("  signup:       date (%Y-%m-%d) -> year, month, day, weekday; each number, median-imputed and "
                 "standardized",
                 "  plan:         text -> one-hot, 3 categories (basic, pro, team), most frequent imputed",
                 "  income:       number, median-imputed and standardized",
                 "  customer_id:  left out (looks like an ID)", "target:         churned"):
        assert line in out, out

    # predict: --keep the ID, one probability column per class; new rows with an unseen
    # plan, a missing income and a missing date are predicted too
    new = messy_frame(6, seed=1).drop(columns="churned")
    new.loc[0, "plan"], new.loc[1, "income"], new.loc[2, "signup"] = "enterprise", np.nan, np.nan
    new_path = tmp_path / "new.csv"
    new.to_csv(new_path, sep=";", decimal=",", index=False)       # --decimal: the model's, by default
    out = ok(*main("predict", model, new_path, "--keep", "customer_id", "--proba", capsys=capsys))
    frame = read_csv(out)
    assert list(frame.columns) == ["customer_id", "churned", "proba_0", "proba_1"]
    assert list(frame.customer_id) == list(new.customer_id)
    np.testing.assert_allclose(frame.proba_0 + frame.proba_1, 1, rtol=1e-12)
    assert set(frame.churned) <= {0, 1}

    # the file's preprocessing gives the network exactly what the in-memory one did
    from fastmlp import _cli_models, _preprocess

    loaded = _cli_models.load(str(model), None)
    record = json.loads(json.dumps(loaded.preprocessing.record))
    raw = pd.read_csv(new_path, sep=";", decimal=",")
    np.testing.assert_array_equal(_preprocess.Preprocessing(record).transform(raw), loaded.inputs(raw, "new"))
    unseen = loaded.inputs(raw, "new")[0, -3:]            # the one-hot columns of plan
    np.testing.assert_array_equal(unseen, [0, 0, 0])       # an unseen category: ignored


def test_a_decimal_comma_without_decimal_is_one_line_with_the_fix(messy, tmp_path, capsys):
    status, out, err = main("train", messy, "--target", "churned", "-o", tmp_path / "m", capsys=capsys)
    check_one_line_error(status, out, err, "column 'income' of", [tmp_path / "m.npz"])
    assert "holds numbers with a decimal comma ('51,26'): give --decimal ," in err


def test_drop_does_not_look_at_the_dropped_values(tmp_path, capsys):
    frame = messy_frame().drop(columns=["signup"])
    path = tmp_path / "plan.csv"
    frame.to_csv(path, index=False)
    out = ok(*main("train", path, "--target", "churned", "-o", tmp_path / "m", "--drop", "plan", "--no-impute",
                   "--drop", "income", "--epochs", 5, capsys=capsys))
    assert "2 features" in out                       # usage, score (customer_id: an ID)


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_the_separator_is_detected(sep, tmp_path, capsys):
    path = tmp_path / "d.csv"
    frame = messy_frame(40).drop(columns=["signup", "plan"]).dropna()
    frame.to_csv(path, sep=sep, index=False)
    out = ok(*main("train", path, "--target", "churned", "-o", tmp_path / "m", "--epochs", 3, capsys=capsys))
    assert "3 features, 2 classes" in out
    ok(*main("train", path, "--target", "churned", "-o", tmp_path / "m", "--epochs", 3, "--sep", sep,
             capsys=capsys))


def test_id_like_columns_are_left_out_unless_included(tmp_path, capsys):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"row": np.arange(50), "code": [f"c{i:03d}" for i in range(50)],
                          "x": rng.normal(size=50), "y": rng.normal(size=50)})
    frame["order_id"] = rng.permutation(50) * 7 + 100       # unique, not consecutive: named as an ID
    frame["z"] = rng.permutation(50) * 7 + 100              # the same values, another name: a feature
    path = tmp_path / "ids.csv"
    frame.to_csv(path, index=False)
    status, out, err = main("train", path, "--target", "y", "-o", tmp_path / "m", "--epochs", 2, capsys=capsys)
    assert "4 feature" not in out and "2 features" in ok(status, out, err)        # x and z
    for name in ("row", "code", "order_id"):
        assert f"fastmlp: notice: column {name!r} looks like an ID" in err and f"--include {name}" in err
    out = ok(*main("train", path, "--target", "y", "-o", tmp_path / "m", "--epochs", 2, "--include", "row",
                   capsys=capsys))
    assert "3 features" in out


def test_dates_with_times_get_their_hours(tmp_path, capsys):
    from fastmlp import _cli_models

    rng = np.random.default_rng(0)
    when = pd.Timestamp("2024-05-01") + pd.to_timedelta(rng.integers(0, 10**6, 40), unit="min")
    frame = pd.DataFrame({"when": when.strftime("%Y-%m-%d %H:%M"), "y": rng.normal(size=40)})
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    ok(*main("train", path, "--target", "y", "-o", tmp_path / "m", "--epochs", 2, capsys=capsys))
    model = _cli_models.load(str(tmp_path / "m.npz"), None)
    assert model.preprocessing.feature_names == ["when_year", "when_month", "when_day", "when_weekday",
                                                 "when_hour", "when_minute", "when_second"]
    frame.loc[0, "when"] = "31/12/2024"            # one date in another format
    frame.to_csv(path, index=False)
    status, out, err = main("train", path, "--target", "y", "-o", tmp_path / "m2", capsys=capsys)
    check_one_line_error(status, out, err, "column 'when' of", [tmp_path / "m2.npz"])
    assert "holds dates in no single format" in err and "--drop when" in err


def test_no_impute_refuses_missing_values_at_train_and_predict(messy, tmp_path, capsys):
    status, out, err = main("train", messy, "--target", "churned", "-o", tmp_path / "m", "--decimal", ",",
                            "--no-impute", capsys=capsys)
    check_one_line_error(status, out, err, "has 1 empty value(s), the first on line 10 (--no-impute refuses",
                         [tmp_path / "m.npz"])
    frame = messy_frame().drop(columns=["signup", "plan"]).dropna()
    path = tmp_path / "clean.csv"
    frame.to_csv(path, index=False)
    ok(*main("train", path, "--target", "churned", "-o", tmp_path / "m", "--no-impute", "--epochs", 3,
             capsys=capsys))
    frame.loc[frame.index[2], "usage"] = np.nan
    frame.to_csv(path, index=False)
    status, out, err = main("predict", tmp_path / "m.npz", path, capsys=capsys)
    check_one_line_error(status, out, err, "column 'usage' of")
    assert "(the model fills in none)" in err


# ================================================================== --no-scale --no-impute: the old behaviour


@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_no_scale_no_impute_trains_as_a_direct_estimator_fit(backend, kind, tmp_path, capsys):
    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(3, 2, size=(80, 3)).round(3), columns=["a", "b", "c"])
    if kind == "classifier":
        frame["y"] = np.where(frame.a + frame.b > 6, "yes", "no")
        est = fastmlp.MLPClassifier(hidden_layer_sizes=(7,), max_iter=20, random_state=0, backend=backend)
    else:
        frame["y"] = (frame.a * 10 - frame.c).round(3)
        est = fastmlp.MLPRegressor(hidden_layer_sizes=(7,), max_iter=20, random_state=0, backend=backend)
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    ok(*main("train", path, "--target", "y", "-o", tmp_path / "m", "--hidden", 7, "--epochs", 20, "--seed", 0,
             "--backend", backend, "--no-scale", "--no-impute", capsys=capsys))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(frame[["a", "b", "c"]], frame.y)
    out = ok(*main("predict", tmp_path / "m.npz", path, "--backend", backend, capsys=capsys))
    expected = est.predict(frame[["a", "b", "c"]])
    if kind == "classifier":
        assert list(read_csv(out).y) == list(expected)
    else:
        np.testing.assert_allclose(read_csv(out).y, expected, rtol=1e-12)
    from fastmlp._estimator_io import load_estimator

    loaded = load_estimator(tmp_path / "m.npz")
    np.testing.assert_array_equal(loaded.coefs_[0], est.coefs_[0])
    assert loaded.loss_curve_ == est.loss_curve_


# ================================================================== scores improve with the defaults


def test_wine_with_defaults_reaches_095(tmp_path, capsys):
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(load_wine(as_frame=True).frame, test_size=0.25, random_state=0)
    train.to_csv(tmp_path / "train.csv", index=False)
    test.to_csv(tmp_path / "test.csv", index=False)
    ok(*main("train", tmp_path / "train.csv", "--target", "target", "-o", tmp_path / "wine", "--seed", 0,
             capsys=capsys))
    result = json.loads(ok(*main("evaluate", tmp_path / "wine.npz", tmp_path / "test.csv", "--json",
                                 capsys=capsys)))
    assert result["accuracy"] >= 0.95, result


# ================================================================== several targets; 0/1 labels


def test_several_regression_targets_end_to_end(tmp_path, capsys):
    from sklearn.datasets import load_linnerud

    frame = load_linnerud(as_frame=True).frame
    path = tmp_path / "linnerud.csv"
    frame.to_csv(path, index=False)
    out = ok(*main("train", path, "--target", "Weight", "Waist", "Pulse", "-o", tmp_path / "m", "--seed", 0,
                   "--epochs", 50, capsys=capsys))
    assert "20 rows, 3 features, 3 regression targets (Weight, Waist, Pulse)" in out
    assert "MLPRegressor 3-100-3" in out
    predicted = read_csv(ok(*main("predict", tmp_path / "m.npz", path, capsys=capsys)))
    assert list(predicted.columns) == ["Weight", "Waist", "Pulse"]
    assert 100 < predicted.Weight.mean() < 250           # mapped back from the standardized targets
    result = json.loads(ok(*main("evaluate", tmp_path / "m.npz", path, "--json", capsys=capsys)))
    from sklearn.metrics import mean_absolute_error, r2_score

    Y = frame[["Weight", "Waist", "Pulse"]].to_numpy()
    assert result["r2"] == pytest.approx(r2_score(Y, predicted.to_numpy()), rel=1e-9)
    assert result["per_target"]["Pulse"]["mae"] == pytest.approx(
        mean_absolute_error(Y[:, 2], predicted.Pulse), rel=1e-9)
    out = ok(*main("evaluate", tmp_path / "m.npz", path, capsys=capsys))
    assert "Waist:\n  R²:" in out


def test_multilabel_targets_end_to_end(tmp_path, capsys):
    rng = np.random.default_rng(2)
    frame = pd.DataFrame(rng.normal(size=(100, 3)), columns=["a", "b", "c"])
    frame["first"] = (frame.a > 0).astype(float)             # 0.0/1.0 floats: labels
    frame["second"] = frame.b + frame.c > 0                  # booleans
    path = tmp_path / "ml.csv"
    frame.to_csv(path, index=False)
    out = ok(*main("train", path, "--target", "first", "second", "-o", tmp_path / "m", "--seed", 0,
                   capsys=capsys))
    assert "2 multilabel targets (first, second)" in out and "MLPClassifier 3-100-2" in out
    predicted = read_csv(ok(*main("predict", tmp_path / "m.npz", path, "--proba", capsys=capsys)))
    assert list(predicted.columns) == ["first", "second", "proba_first", "proba_second"]
    assert set(predicted["first"]) <= {0, 1}
    result = json.loads(ok(*main("evaluate", tmp_path / "m.npz", path, "--json", capsys=capsys)))
    assert result["task"] == "multilabel classification" and result["accuracy"] > 0.8


def test_a_float_column_of_zeros_and_ones_is_classified(tmp_path, capsys):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"x": rng.normal(size=60)})
    frame["label"] = (frame.x > 0).astype(float)
    path = tmp_path / "f.csv"
    frame.to_csv(path, index=False)
    out = ok(*main("train", path, "--target", "label", "-o", tmp_path / "m", "--epochs", 5, capsys=capsys))
    assert "2 classes (0, 1)" in out and "MLPClassifier" in out


# ================================================================== evaluate; --test-size; --cv


def test_evaluate_reports_every_classification_score(tmp_path, capsys):
    from sklearn import metrics
    from sklearn.datasets import load_iris

    from fastmlp import _cli_models

    frame = load_iris(as_frame=True).frame.assign(target=lambda f: np.array(["setosa", "versicolor",
                                                                             "virginica"])[f.target])
    path = tmp_path / "iris.csv"
    frame.to_csv(path, index=False)
    ok(*main("train", path, "--target", "target", "-o", tmp_path / "m", "--seed", 0, "--epochs", 30,
             capsys=capsys))
    model = _cli_models.load(str(tmp_path / "m.npz"), None)
    X = model.inputs(frame, "iris")
    labels, proba, y = model.predict(X), model.predict_proba(X), frame.target.to_numpy()
    result = json.loads(ok(*main("evaluate", tmp_path / "m.npz", path, "--json", capsys=capsys)))
    assert result["accuracy"] == pytest.approx(metrics.accuracy_score(y, labels))
    assert result["balanced_accuracy"] == pytest.approx(metrics.balanced_accuracy_score(y, labels))
    assert result["f1_macro"] == pytest.approx(metrics.f1_score(y, labels, average="macro"))
    assert result["roc_auc"] == pytest.approx(metrics.roc_auc_score(y, proba, multi_class="ovr"))
    assert result["log_loss"] == pytest.approx(metrics.log_loss(y, proba))
    assert result["confusion_matrix"]["labels"] == ["setosa", "versicolor", "virginica"]
    assert result["confusion_matrix"]["matrix"] == metrics.confusion_matrix(y, labels).tolist()
    out = ok(*main("evaluate", tmp_path / "m.npz", path, capsys=capsys))
    for name in ("accuracy:", "balanced accuracy:", "macro F1:", "ROC AUC:", "log loss:",
                 "confusion matrix (rows: true, columns: predicted):"):
        assert name in out
    assert out.splitlines()[-1].split()[0] == "virginica"


def test_train_with_test_size_and_cv_reports_scores(tmp_path, capsys):
    from sklearn.datasets import load_breast_cancer

    path = tmp_path / "bc.csv"
    load_breast_cancer(as_frame=True).frame.to_csv(path, index=False)
    out = ok(*main("train", path, "--target", "target", "-o", tmp_path / "m", "--seed", 0, "--epochs", 20,
                   "--test-size", 0.25, "--cv", 3, capsys=capsys))
    assert "426 rows, 30 features" in out                   # trained on the other 75%
    assert "cross-validation (3 folds):\n  accuracy:" in out
    assert "held out (143 rows, --test-size 0.25):\n  accuracy:" in out
    held_out = float(out.split("held out")[1].split("accuracy:")[1].split()[0])
    assert held_out > 0.9


# ================================================================== bad input


BAD = {
    "mixed tasks": (("--target", "churned", "score"), "the --target columns are not all of one task"),
    "several text targets": (("--target", "churned", "plan", "--drop", "signup", "--task", "classification"),
                             "column 'plan' is both"),
    "target dropped": (("--target", "churned", "--drop", "churned"), "both a --target and a --drop column"),
    "too many folds": (("--target", "churned", "--cv", 500), "--cv 500: more folds than the 120 rows"),
    "separator is decimal": (("--target", "churned", "--sep", ",", "--decimal", ","),
                             "the separator and the decimal mark are both ','"),
    "unknown include": (("--target", "churned", "--include", "nope"), "has no column 'nope'"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_train_input_is_one_line_and_exit_2(case, tmp_path, capsys):
    frame = messy_frame()
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False)
    args, expected = BAD[case]
    if case == "several text targets":
        frame.assign(plan=frame.plan.fillna("basic")).to_csv(path, index=False)
        args, expected = ("--target", "churned", "plan", "--task", "classification"), \
            "several --target columns are classified as 0/1 labels each (multilabel); column 'plan' holds"
    model = tmp_path / "m.npz"
    model.write_bytes(b"the previous model")
    status, out, err = main("train", path, "-o", model, *args, capsys=capsys)
    check_one_line_error(status, out, err, expected)
    assert model.read_bytes() == b"the previous model"


def test_bad_predict_input_is_one_line_and_exit_2(messy, tmp_path, capsys):
    model = tmp_path / "m.npz"
    ok(*main("train", messy, "--target", "churned", "-o", model, "--decimal", ",", "--epochs", 3, capsys=capsys))
    status, out, err = main("predict", model, messy, "--keep", "churned", capsys=capsys)
    check_one_line_error(status, out, err, "--keep churned: the output has a prediction column of that name")
    status, out, err = main("predict", model, messy, "--keep", "nope", capsys=capsys)
    check_one_line_error(status, out, err, "has no column 'nope'")
    frame = pd.read_csv(messy, sep=";", decimal=",").drop(columns="plan")
    frame.to_csv(tmp_path / "noplan.csv", index=False)
    status, out, err = main("predict", model, tmp_path / "noplan.csv", capsys=capsys)
    check_one_line_error(status, out, err, "lacks the model's feature column(s) plan")


# ================================================================== a quick start


@pytest.mark.slow     # (subprocesses)
def test_the_command_line_parser_imports_nothing_heavy():
    code = ("import sys, fastmlp.__main__ as m; m.parser().format_help(); "
            "print(sorted({name.split('.')[0] for name in sys.modules} & {'numpy', 'scipy', 'pandas', 'sklearn'}),"
            " 'fastmlp._core' in sys.modules, 'fastmlp._model' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["[]", "False", "False"], result.stdout
    for flags in (["--help"], ["--version"], ["train", "--help"]):
        result = subprocess.run([sys.executable, "-m", "fastmlp", *flags], capture_output=True, text=True,
                                timeout=120, check=False)
        assert result.returncode == 0 and result.stderr == "", result.stderr
    assert "--no-scale" in result.stdout and "standardized" in result.stdout
