"""The robust regression losses (issue 23, item 3): "huber" (PyTorch's HuberLoss, `delta`),
"mae" (L1Loss) and "quantile" (scikit-learn's mean_pinball_loss, `quantile`) through the
identity output, in both backends and dtypes: values and gradients against the references,
finite differences away from the kinks, fits that agree across backends, bad parameters,
saved models, ONNX, MLPRegressor and the command line."""

import contextlib
import json
import warnings

import numpy as np
import pytest

import fastmlp
from _support import assert_close, backend_module, cli_in_process, fd_gradient, make_data, onnx_session
from fastmlp._registry import LOSS_PARAMETERS

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
from sklearn.metrics import mean_pinball_loss  # noqa: E402

from sklearn.exceptions import ConvergenceWarning  # noqa: E402

from fastmlp import MLPRegressor  # noqa: E402

# the references' tolerance: 1e-10 in float64 (the brief's), float32's own rounding otherwise
TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}
CASES = [("huber", None), ("huber", 0.3), ("huber", 4.0), ("mae", None),
         ("quantile", None), ("quantile", 0.1), ("quantile", 0.9)]


def reference(loss, parameter, Z, Y):
    """(mean loss, its gradient in Z) of the independent implementation, in float64."""
    z, y = torch.tensor(Z, dtype=torch.float64, requires_grad=True), torch.tensor(Y, dtype=torch.float64)
    if loss == "quantile":
        q = 0.5 if parameter is None else parameter
        value = mean_pinball_loss(Y.astype(np.float64), Z.astype(np.float64), alpha=q)
        r = Y.astype(np.float64) - Z.astype(np.float64)
        grad = np.where(r > 0, -q, np.where(r < 0, 1 - q, 0.0)) / Z.size   # (0 where r = 0: our choice)
        return value, grad
    module = torch.nn.HuberLoss(delta=1.0 if parameter is None else parameter) if loss == "huber" else torch.nn.L1Loss()
    out = module(z, y)
    out.backward()
    return out.item(), z.grad.numpy()


def logits_and_targets(dtype, seed=0, n=40, k=3):
    """Logits and targets with residuals on both sides of every kink, and exact ties (r = 0)."""
    rng = np.random.default_rng(seed)
    Z = (rng.standard_normal((n, k)) * 3).astype(dtype)
    Y = (rng.standard_normal((n, k)) * 2).astype(dtype)
    Y[:4] = Z[:4]                       # prediction equals target: the subgradient's choice
    return Z, Y


@pytest.mark.parametrize("loss, parameter", CASES)
def test_values_and_gradients_equal_the_references(backend, dtype, loss, parameter):
    mod = backend_module(backend)
    Z, Y = logits_and_targets(dtype)
    G = np.empty_like(Z)
    value = mod.output_loss(loss, Z, Y, G, parameter)
    ref_value, ref_grad = reference(loss, parameter, Z, Y)
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(value, ref_value, rtol=tol, atol=tol)
    np.testing.assert_allclose(G, ref_grad, rtol=tol, atol=tol / Z.size)
    assert G.dtype == dtype
    ties = G[:4]
    assert (ties == 0).all(), "the subgradient where prediction equals target is 0"


@pytest.mark.parametrize("loss, parameter", CASES)
def test_both_backends_give_the_same_kernels(dtype, loss, parameter):
    Z, Y = logits_and_targets(dtype, seed=3)
    got = []
    for name in ("cython", "numpy"):
        G = np.empty_like(Z)
        got.append((backend_module(name).output_loss(loss, Z, Y, G, parameter), G))
    assert_close(got[0][0], got[1][0], dtype)
    assert_close(got[0][1], got[1][1], dtype)


@pytest.mark.parametrize("loss, parameter", CASES)
def test_network_gradient_finite_differences_away_from_the_kinks(backend, loss, parameter):
    sizes = [4, 7, 2]
    X, _ = make_data(30, sizes, seed=1)
    options = {} if parameter is None else {LOSS_PARAMETERS[loss][0]: parameter}
    net = fastmlp.MLP(sizes, activation="tanh", output="identity", loss=loss, l2=0.1, seed=2, backend=backend,
                      **options)
    out = net.predict_proba(X)
    rng = np.random.default_rng(5)
    Y = out + rng.choice([-1, 1], out.shape) * rng.uniform(0.05, 3, out.shape)   # |r| >= 0.05
    delta = net.delta if loss == "huber" else None
    if delta is not None:                 # ... and |r| away from delta
        r = np.abs(out - Y)
        Y = np.where(np.abs(r - delta) < 0.05, Y + 0.1 * np.sign(Y - out), Y)
    dcoefs, dintercepts = net.gradients(X, Y)
    analytic = np.concatenate([a.ravel() for pair in zip(dcoefs, dintercepts) for a in pair])
    numeric = fd_gradient(lambda: net.loss(X, Y), net.params_)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("loss, parameter", CASES)
@pytest.mark.parametrize("shuffle", [False, True])
def test_fit_same_in_both_backends(dtype, loss, parameter, shuffle):
    sizes = [5, 70, 2]
    X, _ = make_data(90, sizes, dtype=dtype)
    Y = np.random.default_rng(1).standard_normal((90, 2)).astype(dtype)
    options = {} if parameter is None else {LOSS_PARAMETERS[loss][0]: parameter}
    c, r = [fastmlp.MLP(sizes, activation="tanh", output="identity", loss=loss, seed=1, dtype=dtype, backend=b,
                        **options).fit(X, Y, epochs=4, lr=0.05, batch_size=16, shuffle=shuffle)
            for b in ("cython", "numpy")]
    assert_close(c.params_, r.params_, dtype, scale=10)
    assert_close(c.history_["loss"], r.history_["loss"], dtype, scale=10)
    assert c.history_["loss"][-1] < c.history_["loss"][0]


def test_the_loss_with_sample_weight_is_the_weighted_mean(backend):
    X, _ = make_data(20, [3, 1], seed=4)
    y = np.random.default_rng(0).standard_normal(20)
    w = np.random.default_rng(1).uniform(0, 2, 20)
    for loss, options in (("huber", {"delta": 0.5}), ("mae", {}), ("quantile", {"quantile": 0.8})):
        net = fastmlp.MLP([3, 4, 1], output="identity", loss=loss, seed=0, backend=backend, **options)
        pred = net.predict(X)
        if loss == "quantile":
            expected = mean_pinball_loss(y, pred, alpha=0.8, sample_weight=w)
        else:
            r = np.abs(pred - y)
            per = np.where(r <= 0.5, 0.5 * r * r, 0.5 * (r - 0.25)) if loss == "huber" else r
            expected = np.average(per, weights=w)
        np.testing.assert_allclose(net.loss(X, y, sample_weight=w), expected, rtol=1e-12)


def test_the_default_loss_and_parameters():
    net = fastmlp.MLP([2, 3, 1], output="identity", loss="huber")
    assert (net.loss_name, net.delta, net.quantile, net._net.loss_parameter) == ("huber", 1.0, None, 1.0)
    net = fastmlp.MLP([2, 3, 1], output="identity", loss="quantile")
    assert (net.delta, net.quantile) == (None, 0.5)
    plain = fastmlp.MLP([2, 3, 1], output="identity")
    assert (plain.loss_name, plain.delta, plain.quantile, plain._net.loss_parameter) == ("mse", None, None, None)


@pytest.mark.parametrize("options, error, match", [
    ({"loss": "huber", "delta": 0}, ValueError, r"delta must be > 0 \(Huber's threshold\), got 0"),
    ({"loss": "huber", "delta": -1.0}, ValueError, "delta must be > 0"),
    ({"loss": "huber", "delta": float("nan")}, ValueError, "delta"),
    ({"loss": "huber", "delta": "big"}, TypeError, "delta"),
    ({"loss": "quantile", "quantile": 0}, ValueError, r"quantile must be in \(0, 1\)"),
    ({"loss": "quantile", "quantile": 1}, ValueError, r"quantile must be in \(0, 1\)"),
    ({"loss": "quantile", "quantile": 1.5}, ValueError, r"quantile must be in \(0, 1\)"),
    ({"loss": "mse", "delta": 1.0}, ValueError, "delta is a parameter of loss 'huber', not of loss 'mse'"),
    ({"delta": 1.0}, ValueError, "delta is a parameter of loss 'huber', not of loss 'mse'"),
    ({"loss": "huber", "quantile": 0.5}, ValueError, "quantile is a parameter of loss 'quantile', not of loss"),
    ({"loss": "mae", "delta": 2.0}, ValueError, "not of loss 'mae'"),
    ({"loss": "huber", "output": "sigmoid"}, ValueError, "output 'sigmoid' goes with loss 'bce', got loss='huber'"),
    ({"loss": "quantile", "output": "exp"}, ValueError, "goes with loss 'poisson'"),
])
def test_bad_loss_parameters_are_refused(options, error, match):
    options = {"output": "identity", **options}
    with pytest.raises(error, match=match):
        fastmlp.MLP([3, 4, 1], **options)


def test_the_kernels_check_the_parameter(backend):
    mod = backend_module(backend)
    Z = Y = np.zeros((2, 2))
    with pytest.raises(ValueError, match="loss 'mse' takes no parameter"):
        mod.output_loss("mse", Z, Y, np.empty_like(Z), 1.0)
    with pytest.raises(ValueError, match="delta must be > 0"):
        mod.output_loss("huber", Z, Y, np.empty_like(Z), 0.0)


# ---------------------------------------------------------------- files, ONNX


def test_saved_models_keep_the_loss_and_its_parameter(backend, tmp_path):
    X, _ = make_data(30, [3, 1])
    y = np.random.default_rng(0).standard_normal(30)
    for options in ({"loss": "huber", "delta": 0.25}, {"loss": "quantile", "quantile": 0.8}, {"loss": "mae"}):
        net = fastmlp.MLP([3, 5, 1], output="identity", seed=0, backend=backend, **options)
        net.fit(X, y, epochs=3, lr=0.05)
        net.save(tmp_path / "m.npz")
        back = fastmlp.load(tmp_path / "m.npz", backend=backend)
        assert (back.loss_name, back.delta, back.quantile) == (net.loss_name, net.delta, net.quantile)
        assert back.loss(X, y) == net.loss(X, y)
        back.partial_fit(X, y, lr=0.05)
        net.partial_fit(X, y, lr=0.05)
        np.testing.assert_array_equal(back.params_, net.params_)


def test_files_from_before_the_loss_parameters_load(tmp_path):
    net = fastmlp.MLP([3, 4, 1], output="identity", seed=0)
    net.save(tmp_path / "new.npz")
    config = json.loads(np.load(tmp_path / "new.npz")["config"].item())
    assert config["delta"] is None and config["quantile"] is None
    del config["delta"], config["quantile"]
    arrays = dict(np.load(tmp_path / "new.npz"))
    arrays["config"] = np.array(json.dumps(config))
    np.savez(tmp_path / "old.npz", **arrays)
    old = fastmlp.load(tmp_path / "old.npz")
    assert (old.loss_name, old.delta, old.quantile) == ("mse", None, None)
    np.testing.assert_array_equal(old.params_, net.params_)


@pytest.mark.parametrize("options", [{"loss": "huber", "delta": 0.5}, {"loss": "mae"},
                                     {"loss": "quantile", "quantile": 0.2}])
def test_onnx_export_of_a_robust_loss_model_equals_predict(backend, dtype, options):
    pytest.importorskip("onnxruntime")
    net = fastmlp.MLP([4, 6, 2], output="identity", seed=0, dtype=dtype, backend=backend, **options)
    X = np.random.default_rng(0).standard_normal((11, 4)).astype(dtype)
    got = onnx_session(fastmlp.to_onnx(net)).run(None, {"X": X})[0]
    np.testing.assert_allclose(got, net.predict_proba(X), rtol=TOL[np.dtype(dtype)] * 10, atol=1e-6)


# ---------------------------------------------------------------- MLPRegressor

ESTIMATOR_CASES = [("huber", {"delta": 0.5}, "huber"), ("huber", {}, "huber"), ("absolute_error", {}, "mae"),
                   ("quantile", {"quantile": 0.9}, "quantile"), ("quantile", {}, "quantile")]


def regression_data(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    y = X @ [1.0, 2.0, 0.0, -1.0] + rng.standard_normal(n) * 0.3
    y[:5] += 20                       # outliers
    return X, y


def estimator_loss(loss, options, y, pred):
    if loss == "quantile":
        return mean_pinball_loss(y, pred, alpha=options.get("quantile", 0.5))
    module = torch.nn.HuberLoss(delta=options.get("delta", 1.0)) if loss == "huber" else torch.nn.L1Loss()
    return module(torch.tensor(pred), torch.tensor(y)).item()


@pytest.mark.parametrize("loss, options, name", ESTIMATOR_CASES)
def test_regressor_lbfgs_loss_is_the_chosen_loss(backend, loss, options, name):
    X, y = regression_data()
    est = MLPRegressor(loss=loss, solver="lbfgs", hidden_layer_sizes=(8,), alpha=0.0, max_iter=60, random_state=0,
                       backend=backend, **options)
    with _no_check():
        est.fit(X, y)
    assert est._mlp.loss_name == name
    np.testing.assert_allclose(est.loss_, estimator_loss(loss, options, y, est.predict(X)), rtol=1e-10)
    assert est.score(X[5:], y[5:]) > 0.5         # (the robust fit on the rows without outliers)


@contextlib.contextmanager
def _no_check():
    """Convergence warnings of these short fits silenced."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize("loss, options, name", ESTIMATOR_CASES)
def test_regressor_stochastic_fit_reports_the_chosen_loss(backend, dtype, loss, options, name):
    X, y = regression_data()
    est = MLPRegressor(loss=loss, hidden_layer_sizes=(8,), alpha=0.0, max_iter=30, learning_rate_init=0.01,
                       batch_size=120, shuffle=False, random_state=0, backend=backend, **options)
    with _no_check():
        est.fit(X.astype(dtype), y.astype(dtype))
    assert est._mlp.loss_name == name and est._mlp.dtype == dtype
    assert est.loss_ == est.loss_curve_[-1] and len(est.loss_curve_) == 30
    assert est.loss_curve_[-1] < est.loss_curve_[0]
    # one full batch, no shuffling: epoch e's loss is the loss before its step, so after the
    # last step the mean loss is below the last recorded one and near it
    now = estimator_loss(loss, options, y, est.predict(X.astype(dtype)).astype(np.float64))
    assert now <= est.loss_curve_[-1] * (1 + 1e-6)


def test_regressor_default_loss_is_unchanged(backend):
    X, y = regression_data()
    fits = []
    for options in ({}, {"loss": "squared_error"}):
        est = MLPRegressor(hidden_layer_sizes=(8,), max_iter=5, random_state=0, backend=backend, **options)
        with _no_check():
            fits.append(est.fit(X, y))
    a, b = fits
    assert a._mlp.loss_name == "mse" and a._loss_scale == 0.5 and a._loss_report == 0.5
    np.testing.assert_array_equal(a._mlp.params_, b._mlp.params_)
    assert a.loss_curve_ == b.loss_curve_


@pytest.mark.parametrize("options, match", [
    ({"delta": 1.0}, "delta=1.0 is a parameter of loss='huber'; loss='squared_error' takes no delta"),
    ({"loss": "absolute_error", "quantile": 0.3}, "quantile=0.3 is a parameter of loss='quantile'"),
    ({"loss": "huber", "quantile": 0.3}, "loss='huber' takes no quantile"),
    ({"loss": "huber", "delta": 0.0}, "'delta' parameter of MLPRegressor must be"),
    ({"loss": "quantile", "quantile": 1.0}, "'quantile' parameter of MLPRegressor must be"),
    ({"loss": "pinball"}, "'loss' parameter of MLPRegressor must be"),
])
def test_regressor_bad_loss_parameters_raise_before_work(options, match):
    X, y = regression_data(20)
    est = MLPRegressor(hidden_layer_sizes=(3,), max_iter=2, **options)
    with pytest.raises(ValueError, match=match):
        est.fit(X, y)
    assert not hasattr(est, "_mlp") and not hasattr(est, "loss_")


def test_regressor_warm_start_with_another_loss_is_refused():
    X, y = regression_data(40)
    est = MLPRegressor(loss="huber", hidden_layer_sizes=(3,), max_iter=2, warm_start=True, random_state=0)
    with _no_check():
        est.fit(X, y)
    before = est._mlp.params_.copy()
    est.set_params(delta=2.0)
    with pytest.raises(ValueError, match="fit again without warm_start"):
        est.fit(X, y)
    np.testing.assert_array_equal(est._mlp.params_, before)
    est.set_params(loss="absolute_error", delta=None)
    with pytest.raises(ValueError, match="fit again without warm_start"):
        est.partial_fit(X, y)


def test_saved_regressors_keep_their_loss(tmp_path):
    from fastmlp._estimator_io import load_estimator, save_estimator

    X, y = regression_data(40)
    for options in ({"loss": "quantile", "quantile": 0.2}, {"loss": "huber", "delta": 3.0}, {}):
        est = MLPRegressor(hidden_layer_sizes=(3,), max_iter=3, random_state=0, **options)
        with _no_check():
            est.fit(X, y)
        save_estimator(est, tmp_path / "r.npz")
        back = load_estimator(tmp_path / "r.npz")
        assert back.get_params() == est.get_params()
        assert (back._loss_scale, back._loss_report) == (est._loss_scale, est._loss_report)
        np.testing.assert_array_equal(back.predict(X), est.predict(X))
        record = json.loads(np.load(tmp_path / "r.npz")["estimator"].item())
        # a parameter left None is not written: earlier versions read the file too
        assert ("delta" in record["params"]) == ("delta" in options)
        assert ("quantile" in record["params"]) == ("quantile" in options)


def test_regressor_onnx_export_with_huber_equals_predict():
    pytest.importorskip("onnxruntime")
    X, y = regression_data(40)
    est = MLPRegressor(loss="huber", hidden_layer_sizes=(5,), max_iter=3, random_state=0)
    with _no_check():
        est.fit(X, y)
    got = onnx_session(fastmlp.to_onnx(est)).run(None, {"X": X})
    np.testing.assert_allclose(np.ravel(got[0]), est.predict(X), rtol=1e-9, atol=1e-9)


@pytest.mark.slow
def test_check_estimator_passes_with_a_robust_loss():
    from sklearn.utils.estimator_checks import check_estimator

    for est in (MLPRegressor(loss="huber", delta=0.5), MLPRegressor(loss="quantile", quantile=0.7)):
        check_estimator(est)


# ---------------------------------------------------------------- the command line


def regression_csv(path, n=80):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(n), rng.standard_normal(n)
    lines = ["a,b,y,c"] + [f"{x:.6f},{z:.6f},{2 * x - z + 0.1 * e:.6f},{'yes' if x > z else 'no'}"
                           for x, z, e in zip(a, b, rng.standard_normal(n))]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_trains_with_loss_huber(tmp_path, capsys):
    from fastmlp._estimator_io import load_estimator

    data = regression_csv(tmp_path / "d.csv")
    status, out, err = cli_in_process("train", data, "--target", "y", "-o", tmp_path / "m.npz", "--loss", "huber",
                                      "--delta", "0.5", "--epochs", "5", "--seed", "0", "--no-progress",
                                      capsys=capsys)
    assert status == 0, err
    est = load_estimator(tmp_path / "m.npz")
    assert (est.loss, est.delta, est._mlp.loss_name, est._mlp.delta) == ("huber", 0.5, "huber", 0.5)
    status, out, err = cli_in_process("info", tmp_path / "m.npz", capsys=capsys)
    assert status == 0 and "loss:           huber (delta 0.5)" in out
    status, out, err = cli_in_process("train", data, "--target", "y", "-o", tmp_path / "q.npz", "--loss",
                                      "quantile", "--quantile", "0.9", "--epochs", "3", "--no-progress",
                                      capsys=capsys)
    assert status == 0, err
    assert load_estimator(tmp_path / "q.npz")._mlp.quantile == 0.9


@pytest.mark.parametrize("args, message", [
    (["--delta", "0.5"], "--delta is the parameter of --loss huber"),
    (["--loss", "absolute_error", "--quantile", "0.5"], "--quantile is the parameter of --loss quantile"),
    (["--loss", "huber", "--delta", "0"], "is not a positive number"),
    (["--loss", "quantile", "--quantile", "1"], "is not a fraction"),
    (["--loss", "pinball"], "invalid choice"),
    (["--loss", "huber", "--target", "c"], "--loss huber is a regression loss"),
])
def test_cli_bad_loss_options_end_in_one_line(tmp_path, capsys, args, message):
    data = regression_csv(tmp_path / "d.csv")
    target = [] if "--target" in args else ["--target", "y"]
    status, out, err = cli_in_process("train", data, *target, "-o", tmp_path / "m.npz", "--epochs", "2",
                                      "--no-progress", *args, capsys=capsys)
    assert status == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "m.npz").exists()
