"""Issue 23's options that live above the backends: class weights (``MLP.fit(class_weight=)``,
``MLPClassifier(class_weight=)``), stopping on a chosen metric (``MLP.fit(monitor=, mode=)``,
the estimators' ``scoring``) and the estimators' ``validation_loss_curve_``.

Class weights are defined as a multiplication of the sample weights, so each test holds a
fit with `class_weight` equal, bit for bit, to the same fit given the product as
`sample_weight` (scikit-learn's ``compute_sample_weight`` gives the reference weights).
"""

import math
import pickle
import warnings

import numpy as np
import pytest

import fastmlp
from _support import cli_in_process, rewrite_estimator_record

sklearn = pytest.importorskip("sklearn")

from sklearn.metrics import accuracy_score, balanced_accuracy_score  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.utils import check_random_state  # noqa: E402
from sklearn.utils._param_validation import InvalidParameterError  # noqa: E402
from sklearn.utils.class_weight import compute_sample_weight  # noqa: E402

from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402


def data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    binary = (X[:, 0] > 0.8).astype(np.int64)                   # ~20% ones: imbalanced
    classes = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0.9)  # 0, 1, 2; 2 is rare
    multilabel = np.column_stack([binary, X[:, 1] > 0.5, X[:, 2] < -0.7]).astype(np.int64)
    return X, binary, classes, multilabel


def same_model(a, b):
    np.testing.assert_array_equal(a.params_, b.params_)
    assert a.history_ == b.history_


def fit(X, y, sizes, output="sigmoid", backend="numpy", dtype=np.float64, **options):
    net = fastmlp.MLP(sizes, output=output, seed=3, dtype=dtype, backend=backend)
    options = {"epochs": 6, "lr": 0.05, "optimizer": "adam", "batch_size": 32, **options}
    return net.fit(X, y, **options)


# ================================================================== MLP: class_weight


CASES = {
    "binary balanced": ("binary", "balanced"),
    "binary dict": ("binary", {0: 0.5, 1: 4.0}),
    "softmax balanced": ("classes", "balanced"),
    "softmax dict, a class left at 1": ("classes", {0: 2.0, 2: 7.5}),
    "multilabel balanced": ("multilabel", "balanced"),
    "multilabel dicts": ("multilabel", [{0: 1.0, 1: 3.0}, {1: 0.25}, {0: 2.0, 1: 5.0}]),
}


def target(kind):
    X, binary, classes, multilabel = data()
    return X, {"binary": (binary, [4, 6, 1], "sigmoid"), "classes": (classes, [4, 6, 3], "softmax"),
               "multilabel": (multilabel, [4, 6, 3], "sigmoid")}[kind]


@pytest.mark.parametrize("case", CASES)
def test_mlp_class_weight_is_the_equivalent_sample_weight_bit_for_bit(case, backend, dtype):
    kind, class_weight = CASES[case]
    X, (y, sizes, output) = target(kind)
    weighted = fit(X, y, sizes, output, backend, dtype, class_weight=class_weight)
    reference = fit(X, y, sizes, output, backend, dtype, sample_weight=compute_sample_weight(class_weight, y))
    same_model(weighted, reference)


@pytest.mark.parametrize("extra", [{"validation_fraction": 0.25, "early_stopping": True, "patience": 2},
                                   {"optimizer": "lbfgs", "batch_size": None}, {"n_restarts": 2}],
                         ids=["validation split", "lbfgs", "restarts"])
def test_mlp_class_weight_multiplies_sample_weight_before_anything_else(backend, dtype, extra):
    X, (y, sizes, output) = target("classes")
    sample_weight = np.random.default_rng(1).uniform(0.1, 3.0, len(y))
    weighted = fit(X, y, sizes, output, backend, dtype, class_weight="balanced", sample_weight=sample_weight,
                   **extra)
    reference = fit(X, y, sizes, output, backend, dtype,
                    sample_weight=sample_weight * compute_sample_weight("balanced", y), **extra)
    same_model(weighted, reference)


def test_mlp_class_weight_reads_one_hot_rows_as_their_classes(backend):
    X, (y, sizes, output) = target("classes")
    one_hot = np.eye(3)[y]
    same_model(fit(X, one_hot, sizes, output, backend, class_weight={1: 3.0}),
               fit(X, y, sizes, output, backend, class_weight={1: 3.0}))


def test_mlp_without_the_new_options_trains_as_before(backend, dtype):
    X, (y, sizes, output) = target("classes")
    plain = fit(X, y, sizes, output, backend, dtype, validation_fraction=0.2, early_stopping=True, patience=2)
    spelled = fit(X, y, sizes, output, backend, dtype, validation_fraction=0.2, early_stopping=True, patience=2,
                  class_weight=None, monitor=None, mode=None)
    same_model(plain, spelled)


BAD_CLASS_WEIGHTS = {
    "unknown label": ("classes", {5: 1.0}, ValueError, r"class_weight names \[5\], not among the classes \[0, 1, 2\]"),
    "text label": ("binary", {"1": 2.0}, ValueError, r"names \['1'\]"),
    "negative": ("binary", {0: -1.0}, ValueError, r"class_weight\[0\] must be >= 0"),
    "NaN": ("classes", {2: float("nan")}, ValueError, r"class_weight\[2\] must be finite"),
    "infinite": ("classes", {2: math.inf}, ValueError, r"class_weight\[2\] must be finite"),
    "not a number": ("binary", {1: "2"}, TypeError, r"class_weight\[1\] must be a real number"),
    "unknown name": ("binary", "balance", ValueError, r"unknown class_weight 'balance'"),
    "not a dict": ("binary", [1.0, 2.0], TypeError, r"class_weight must be None, 'balanced' or a dict"),
    "one dict for multilabel": ("multilabel", {0: 1.0, 1: 2.0}, ValueError, r"list of 3 dicts, one per output"),
    "too few dicts": ("multilabel", [{1: 2.0}], ValueError, r"1 dicts for 3 outputs"),
    "every weight 0": ("binary", {0: 0.0, 1: 0.0}, ValueError, r"gives every row the weight 0"),
}


@pytest.mark.parametrize("case", BAD_CLASS_WEIGHTS)
def test_mlp_bad_class_weight_is_refused_before_any_work(case):
    kind, class_weight, error, message = BAD_CLASS_WEIGHTS[case]
    X, (y, sizes, output) = target(kind)
    net = fastmlp.MLP(sizes, output=output, seed=0)
    before = net.params_.copy()
    with pytest.raises(error, match=message):
        net.fit(X, y, epochs=3, class_weight=class_weight)
    np.testing.assert_array_equal(net.params_, before)
    assert net.history_ == {"loss": [], "val_loss": []}


def test_mlp_class_weight_on_a_regression_head_is_refused():
    X = np.random.default_rng(0).standard_normal((20, 3))
    for output in ("identity", "exp"):
        net = fastmlp.MLP([3, 4, 1], output=output, seed=0)
        with pytest.raises(ValueError, match=f"class_weight is for classification.*output is '{output}'"):
            net.fit(X, np.abs(X[:, 0]), epochs=2, class_weight={0: 1.0})


def test_mlp_partial_fit_takes_a_class_weight_dict_but_not_balanced(backend):
    X, (y, sizes, output) = target("binary")
    net = fastmlp.MLP(sizes, seed=0, backend=backend)
    with pytest.raises(ValueError, match="'balanced' is not available in partial_fit"):
        net.partial_fit(X, y, class_weight="balanced")
    reference = fastmlp.MLP(sizes, seed=0, backend=backend)
    for _ in range(2):
        net.partial_fit(X, y, class_weight={1: 3.0}, lr=0.1)
        reference.partial_fit(X, y, sample_weight=compute_sample_weight({1: 3.0}, y), lr=0.1)
    same_model(net, reference)


# ================================================================== MLP: monitor


def accuracy(model, X_val, y_val):
    return accuracy_score(y_val, model.predict(X_val))


def test_mlp_callable_monitor_stops_on_its_score_and_keeps_the_best_epoch(backend, dtype):
    X, (y, sizes, output) = target("classes")
    X_val, y_val = X[:40], y[:40]
    scores = []
    net = fastmlp.MLP([4, 16, 3], output="softmax", seed=0, dtype=dtype, backend=backend)
    net.fit(X[40:], y[40:], epochs=300, lr=0.05, optimizer="adam", validation_data=(X_val, y_val),
            early_stopping=True, patience=4, monitor=accuracy, tol=0.0,
            callback=lambda epoch, logs: scores.append(logs["val_score"]))
    assert len(scores) == net.n_iter_ < 300                       # stopped by the monitor
    best = int(np.argmax(scores))
    assert len(scores) == best + 1 + 4                             # patience epochs after the best
    assert accuracy(net, X_val, y_val) == max(scores)              # the best epoch's weights
    assert len(net.history_["val_loss"]) == net.n_iter_          # the validation loss is still recorded


def test_mlp_callable_monitor_sees_a_model_view_and_predict_shaped_labels(backend):
    X, (y, sizes, output) = target("multilabel")
    seen = []

    def monitor(model, X_val, y_val):
        seen.append((model.predict(X_val).shape, y_val.shape, y_val.dtype, X_val.dtype))
        return float(np.mean(model.predict(X_val) == y_val))

    net = fastmlp.MLP(sizes, seed=0, dtype="float32", backend=backend)
    net.fit(X, y, epochs=3, validation_fraction=0.25, monitor=monitor)
    assert seen == [((40, 3), (40, 3), np.dtype(np.int64), np.dtype(np.float32))] * 3


def test_mlp_monitor_min_mode_and_lbfgs(backend):
    X, (y, sizes, output) = target("binary")
    error_rate = []

    def monitor(model, X_val, y_val):
        error_rate.append(1 - accuracy(model, X_val, y_val))
        return error_rate[-1]

    net = fastmlp.MLP(sizes, seed=0, backend=backend)
    net.fit(X, y, epochs=60, optimizer="lbfgs", validation_fraction=0.25, early_stopping=True, patience=3,
            tol=0.0, monitor=monitor, mode="min")
    assert len(error_rate) == net.n_iter_


def test_mlp_monitor_loss_with_validation_watches_the_training_loss(backend, dtype):
    X, (y, sizes, output) = target("binary")
    options = dict(epochs=200, early_stopping=True, patience=3, tol=1e-2, lr=0.5, optimizer="sgd")
    on_loss = fit(X, y, sizes, output, backend, dtype, validation_data=(X[:30], y[:30]), monitor="loss", **options)
    plain = fit(X, y, sizes, output, backend, dtype, **options)
    np.testing.assert_array_equal(on_loss.params_, plain.params_)
    assert on_loss.history_["loss"] == plain.history_["loss"] and len(on_loss.history_["val_loss"]) == on_loss.n_iter_
    on_val = fit(X, y, sizes, output, backend, dtype, validation_fraction=0.2, monitor="val_loss", **options)
    default = fit(X, y, sizes, output, backend, dtype, validation_fraction=0.2, **options)
    same_model(on_val, default)


def test_mlp_restarts_keep_the_best_monitored_score(backend):
    X, (y, sizes, output) = target("classes")
    last = {}

    def callback(epoch, logs):
        last[logs["restart"]] = logs["val_score"]

    net = fastmlp.MLP([4, 3, 3], output="softmax", seed=5, backend=backend)
    net.fit(X, y, epochs=4, lr=0.05, validation_fraction=0.3, n_restarts=4, monitor=accuracy, callback=callback)
    assert len(last) == 4
    _, X_val, _, y_val = validation_rows(X, y, 5, 0.3)
    assert accuracy(net, X_val, y_val) == max(last.values())


def validation_rows(X, y, seed, fraction):
    """The rows fit(validation_fraction=) holds out (drawn from the seed as _training does)."""
    stream = np.random.SeedSequence(seed).spawn(1)[0].spawn(1)[0]
    order = np.random.default_rng(stream).permutation(len(X))
    n_val = int(round(fraction * len(X)))
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    return X[train], X[val], y[train], y[val]


BAD_MONITORS = {
    "val_loss without validation": (dict(monitor="val_loss"), ValueError, "needs validation data"),
    "callable without validation": (dict(monitor=accuracy), ValueError, "scores the validation data"),
    "unknown name": (dict(monitor="val_acc", validation_fraction=0.2), ValueError, "unknown monitor 'val_acc'"),
    "not callable": (dict(monitor=3), TypeError, "monitor must be 'loss', 'val_loss' or a callable"),
    "max of a loss": (dict(mode="max"), ValueError, "a loss improves as it falls"),
    "unknown mode": (dict(monitor=accuracy, mode="up", validation_fraction=0.2), ValueError, "unknown mode 'up'"),
    "returns text": (dict(monitor=lambda m, X, y: "0.5", validation_fraction=0.2), TypeError,
                     "must return a real number"),
    "raises": (dict(monitor=lambda m, X, y: 1 / 0, validation_fraction=0.2), ZeroDivisionError, "division by zero"),
}


@pytest.mark.parametrize("case", BAD_MONITORS)
def test_mlp_bad_monitor_is_refused_and_leaves_the_model_as_it_was(case, backend):
    options, error, message = BAD_MONITORS[case]
    X, (y, sizes, output) = target("binary")
    net = fastmlp.MLP(sizes, seed=0, backend=backend).fit(X, y, epochs=2)
    before, history = net.params_.copy(), {k: list(v) for k, v in net.history_.items()}
    with pytest.raises(error, match=message):
        net.fit(X, y, epochs=3, **options)
    np.testing.assert_array_equal(net.params_, before)
    assert net.history_ == history


# ================================================================== estimators: class_weight


def estimator_target(kind):
    X, binary, classes, multilabel = data()
    names = np.array(["ant", "bee", "cat"])
    return X, {"binary": binary, "text classes": names[classes], "classes": classes, "multilabel": multilabel}[kind]


ESTIMATOR_CASES = {
    "binary balanced": ("binary", "balanced"),
    "text classes dict": ("text classes", {"ant": 0.5, "cat": 6.0}),
    "classes balanced": ("classes", "balanced"),
    "multilabel dicts": ("multilabel", [{0: 1.0, 1: 3.0}, {1: 0.25}, {0: 2.0, 1: 5.0}]),
    "multilabel balanced": ("multilabel", "balanced"),
}


def classifier(backend, **params):
    params = {"hidden_layer_sizes": (6,), "max_iter": 8, "random_state": 0, "backend": backend, **params}
    return MLPClassifier(**params)


def quiet_fit(est, X, y, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, **fit_params)


@pytest.mark.parametrize("case", ESTIMATOR_CASES)
@pytest.mark.parametrize("early_stopping", [False, True], ids=["", "early stopping"])
def test_classifier_class_weight_is_the_equivalent_sample_weight_bit_for_bit(case, early_stopping, backend, dtype):
    kind, class_weight = ESTIMATOR_CASES[case]
    X, y = estimator_target(kind)
    X = X.astype(dtype)
    sample_weight = np.random.default_rng(2).uniform(0.5, 2.0, len(y))
    weighted = quiet_fit(classifier(backend, class_weight=class_weight, early_stopping=early_stopping), X, y,
                         sample_weight=sample_weight)
    reference = quiet_fit(classifier(backend, early_stopping=early_stopping), X, y,
                          sample_weight=sample_weight * compute_sample_weight(class_weight, y))
    np.testing.assert_array_equal(weighted._mlp.params_, reference._mlp.params_)
    assert weighted.loss_curve_ == reference.loss_curve_
    assert weighted.validation_scores_ == reference.validation_scores_
    assert weighted.validation_loss_curve_ == reference.validation_loss_curve_


def test_classifier_class_weight_with_lbfgs_and_partial_fit(backend):
    X, y = estimator_target("text classes")
    weights = compute_sample_weight({"bee": 3.0}, y)
    weighted = quiet_fit(classifier(backend, solver="lbfgs", class_weight={"bee": 3.0}), X, y)
    reference = quiet_fit(classifier(backend, solver="lbfgs"), X, y, sample_weight=weights)
    np.testing.assert_array_equal(weighted._mlp.params_, reference._mlp.params_)
    a, b = classifier(backend, class_weight={"bee": 3.0}), classifier(backend)
    for _ in range(2):
        a.partial_fit(X, y, classes=["ant", "bee", "cat"])
        b.partial_fit(X, y, classes=["ant", "bee", "cat"], sample_weight=weights)
    np.testing.assert_array_equal(a._mlp.params_, b._mlp.params_)
    with pytest.raises(ValueError, match="'balanced' is not supported for partial_fit"):
        classifier(backend, class_weight="balanced").partial_fit(X, y, classes=["ant", "bee", "cat"])


BAD_ESTIMATOR_WEIGHTS = {
    "unknown label": ("text classes", {"dog": 1.0}, ValueError, r"class_weight names \['dog'\], not among the "
                                                                r"classes \['ant', 'bee', 'cat'\]"),
    "negative": ("classes", {1: -2.0}, ValueError, r"class_weight\[1\] must be >= 0"),
    "NaN": ("binary", {1: float("nan")}, ValueError, r"class_weight\[1\] must be finite"),
    "one dict for multilabel": ("multilabel", {1: 2.0}, ValueError, "list of 3 dicts"),
    "not a dict": ("binary", 2.0, InvalidParameterError, "class_weight"),
}


@pytest.mark.parametrize("case", BAD_ESTIMATOR_WEIGHTS)
def test_classifier_bad_class_weight_is_refused_and_leaves_it_as_it_was(case):
    kind, class_weight, error, message = BAD_ESTIMATOR_WEIGHTS[case]
    X, y = estimator_target(kind)
    est = quiet_fit(classifier("numpy"), X, y)
    before = est._mlp.params_.copy()
    est.set_params(class_weight=class_weight)
    with pytest.raises(error, match=message):
        est.fit(X, y)
    np.testing.assert_array_equal(est._mlp.params_, before)


def test_regressor_takes_no_class_weight():
    assert "class_weight" not in MLPRegressor().get_params()
    with pytest.raises(TypeError):
        MLPRegressor(class_weight="balanced")


# ================================================================== estimators: scoring


@pytest.mark.parametrize("Est, name", [(MLPClassifier, "accuracy"), (MLPRegressor, "r2")])
def test_scoring_named_as_the_default_gives_the_default_fit(Est, name, backend, dtype):
    X, y = estimator_target("classes")
    y = y if Est is MLPClassifier else X[:, 0] - X[:, 1] ** 2
    X = X.astype(dtype)
    params = dict(hidden_layer_sizes=(6,), max_iter=30, random_state=0, early_stopping=True, n_iter_no_change=3,
                  backend=backend, learning_rate_init=0.01)
    named = quiet_fit(Est(scoring=name, **params), X, y)
    default = quiet_fit(Est(**params), X, y)
    np.testing.assert_array_equal(named._mlp.params_, default._mlp.params_)
    assert named.validation_scores_ == default.validation_scores_ and named.n_iter_ == default.n_iter_


def test_scoring_drives_early_stopping(backend):
    X, y = estimator_target("classes")
    seen = []

    def scorer(est, X_val, y_val, sample_weight=None):
        seen.append(len(y_val))
        return balanced_accuracy_score(y_val, est.predict(X_val), sample_weight=sample_weight)

    est = quiet_fit(classifier(backend, early_stopping=True, max_iter=200, n_iter_no_change=3, scoring=scorer,
                               learning_rate_init=0.01), X, y)
    assert len(seen) == est.n_iter_ == len(est.validation_scores_) < 200
    assert seen[0] == 16                                   # validation_fraction=0.1 of 160 rows
    assert est.best_validation_score_ == max(est.validation_scores_)
    named = quiet_fit(classifier(backend, early_stopping=True, max_iter=200, n_iter_no_change=3,
                                 scoring="balanced_accuracy", learning_rate_init=0.01), X, y)
    assert named.validation_scores_ == est.validation_scores_


def test_scoring_reads_dataframes_without_feature_name_warnings():
    pd = pytest.importorskip("pandas")
    X, y = estimator_target("text classes")
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*feature names")
        est = quiet_fit(classifier("numpy", early_stopping=True, scoring="neg_log_loss"), frame, y)
    assert all(score <= 0 for score in est.validation_scores_)
    assert "_checked_input" not in vars(est)


def test_unknown_scoring_is_refused_by_parameter_validation():
    X, y = estimator_target("binary")
    with pytest.raises(InvalidParameterError, match="'scoring' parameter"):
        classifier("numpy", scoring="accuracy_typo").fit(X, y)


# ================================================================== validation_loss_curve_


def test_validation_loss_curve_is_the_held_out_loss_on_scikit_learns_scale(backend, dtype):
    X, _ = estimator_target("classes")
    y = X[:, 0] - X[:, 1] ** 2
    X = X.astype(dtype)
    est = quiet_fit(MLPRegressor(hidden_layer_sizes=(5,), max_iter=1, random_state=0, early_stopping=True,
                                 backend=backend), X, y)
    assert len(est.validation_loss_curve_) == len(est.validation_scores_) == len(est.loss_curve_) == 1
    # the held-out rows: scikit-learn's split from the RandomState after the initial weights
    random_state = check_random_state(0)
    for shape in [(4, 5), (5,), (5, 1), (1,)]:
        random_state.uniform(-1, 1, shape)
    _, X_val, _, y_val = train_test_split(X, y, random_state=random_state, test_size=0.1)
    expected = 0.5 * np.mean((est.predict(X_val) - y_val) ** 2)          # scikit-learn's squared loss
    np.testing.assert_allclose(est.validation_loss_curve_[0], expected, rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_validation_loss_curve_exists_only_with_a_validation_split():
    X, y = estimator_target("binary")
    assert quiet_fit(classifier("numpy"), X, y).validation_loss_curve_ is None
    assert not hasattr(quiet_fit(classifier("numpy", solver="lbfgs"), X, y), "validation_loss_curve_")
    logs = []
    est = quiet_fit(classifier("numpy", early_stopping=True, callback=lambda epoch, l: logs.append(l)), X, y)
    assert [entry["val_loss"] for entry in logs] == est.validation_loss_curve_
    assert [entry["val_score"] for entry in logs] == est.validation_scores_


# ================================================================== files and pickles


def test_saved_estimators_and_pickles_carry_the_new_settings_and_curves(tmp_path):
    from fastmlp._estimator_io import load_estimator, save_estimator

    X, y = estimator_target("classes")
    cases = [({0: 2.0, np.int64(2): 0.5}, "balanced_accuracy"), ("balanced", None),
             ([{0: 1.0, 1: 2.0}, {1: 0.5}, {0: 3.0}], "f1_samples")]
    for i, (class_weight, scoring) in enumerate(cases):
        target_y = data()[3] if isinstance(class_weight, list) else y
        est = quiet_fit(classifier("numpy", class_weight=class_weight, scoring=scoring, early_stopping=True),
                        X, target_y)
        loaded = load_estimator(save_estimator(est, tmp_path / f"m{i}"))
        assert loaded.get_params() == est.get_params()
        assert loaded.validation_loss_curve_ == est.validation_loss_curve_
        quiet_fit(loaded, X, target_y)                  # the settings still fit
        copy = pickle.loads(pickle.dumps(est))
        assert copy.validation_loss_curve_ == est.validation_loss_curve_ and copy.class_weight == est.class_weight


def test_a_callable_scoring_is_not_written_and_old_files_still_load(tmp_path):
    from fastmlp._estimator_io import load_estimator, save_estimator

    X, y = estimator_target("binary")
    est = quiet_fit(classifier("numpy", early_stopping=True, scoring=lambda e, X, y: 0.0), X, y)
    path = save_estimator(est, tmp_path / "m")
    assert load_estimator(path).scoring is None

    def old(record):            # as fastmlp wrote it before issue 23
        del record["attributes"]["validation_loss_curve_"]
        assert "class_weight" not in record["params"] and "scoring" not in record["params"]

    rewrite_estimator_record(path, old)
    loaded = load_estimator(path)
    assert loaded.validation_loss_curve_ is None and loaded.validation_scores_ == est.validation_scores_


@pytest.mark.parametrize("edit, field", [
    (lambda r: r["params"].update(class_weight={"0": 2.0}), "class_weight"),
    (lambda r: r["params"].update(class_weight=[3]), "class_weight"),
    (lambda r: r["attributes"]["validation_loss_curve_"].append(0.5), "validation_loss_curve_"),
], ids=["class_weight a plain dict", "class_weight a list of numbers", "losses for other epochs"])
def test_hand_edited_new_fields_are_refused(tmp_path, edit, field):
    from fastmlp._estimator_io import load_estimator, save_estimator

    X, y = estimator_target("binary")
    path = save_estimator(quiet_fit(classifier("numpy", early_stopping=True, class_weight={1: 2.0}), X, y),
                          tmp_path / "m")
    rewrite_estimator_record(path, edit)
    with pytest.raises(fastmlp.ModelFileError, match=field):
        load_estimator(path)


# ================================================================== command line


@pytest.fixture
def table(tmp_path):
    pd = pytest.importorskip("pandas")
    X, binary, classes, _ = data(200)
    path = tmp_path / "rare.csv"
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "kind": np.where(binary == 1, "rare", "common"),
                  "value": X[:, 2]}).to_csv(path, index=False)
    return path


def test_cli_trains_with_class_weight_and_scoring(table, tmp_path, capsys):
    from fastmlp._estimator_io import load_estimator

    status, out, err = cli_in_process("train", table, "--target", "kind", "--drop", "value", "-o", tmp_path / "m",
                                      "--class-weight", "balanced", "--early-stopping", "--scoring",
                                      "balanced_accuracy", "--seed", 0, "--epochs", 30, "--no-progress",
                                      capsys=capsys)
    assert status == 0, err
    assert "validation:  best balanced_accuracy" in out
    est = load_estimator(tmp_path / "m.npz")
    assert est.class_weight == "balanced" and est.scoring == "balanced_accuracy"
    status, out, err = cli_in_process("info", tmp_path / "m.npz", capsys=capsys)
    assert "class weight:   balanced" in out and "scoring:        balanced_accuracy" in out


@pytest.mark.parametrize("args, message", [
    (["--target", "kind", "--scoring", "f1"], "--scoring sets the score --early-stopping watches: give both"),
    (["--target", "kind", "--early-stopping", "--scoring", "acuracy"],
     "--scoring 'acuracy' is not a scikit-learn scorer name .*did you mean accuracy"),
    (["--target", "value", "--drop", "kind", "--class-weight", "balanced"],
     "--class-weight weighs classes: the target is a regression target"),
    (["--target", "kind", "--class-weight", "equal"], "invalid choice: 'equal'"),
], ids=["scoring without early stopping", "unknown scorer", "class weight for regression", "unknown class weight"])
def test_cli_refuses_bad_class_weight_and_scoring_with_one_line(table, tmp_path, capsys, args, message):
    import re

    status, out, err = cli_in_process("train", table, "-o", tmp_path / "m", *args, capsys=capsys)
    assert status == 2 and re.search(message, err), err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "m.npz").exists()
