"""One source for every option: the registry's optimizer declarations (hyperparameters,
defaults, rules, state vectors) drive `_spec.Optimizer`, ``MLP.fit``, both backends and
model files; its activations reach every layer above the backends at once (`silu`, added
as the proof); and the documentation lists every registered name."""

import inspect
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp import _registry, _training
from fastmlp._errors import ModelFileError
from fastmlp._registry import ACTIVATIONS, HYPERPARAMETERS, OPTIMIZERS, OUTPUTS, LOSSES
from fastmlp._spec import Network, Optimizer

from _support import backend_module, cli_in_process, fd_gradient, make_data, onnx_session

ROOT = Path(__file__).resolve().parents[1]
FIT_OPTIONS = {"sgd": dict(momentum=0.9, nesterov=True), "adam": {}, "adamw": dict(weight_decay=0.1),
               "rprop": dict(batch_size=None)}


# ------------------------------------------------------------------ optimizer declarations


@pytest.mark.parametrize("name", tuple(OPTIMIZERS))
def test_optimizer_state_has_the_declared_rows(name):
    opt = Optimizer(name)
    assert opt.n_state == OPTIMIZERS[name].state >= 1
    params = np.zeros(7, np.float32)
    state = opt.new_state(params)
    assert state.shape == (OPTIMIZERS[name].state, 7) and state.dtype == np.float32 and not state.any()


def test_declared_state_counts():
    """sgd keeps its velocity; adam and adamw their two moments; rprop its step sizes and the
    previous gradient."""
    assert {name: kind.state for name, kind in OPTIMIZERS.items()} == {"sgd": 1, "adam": 2, "adamw": 2, "rprop": 2}


def test_fit_defaults_are_the_registry_defaults():
    """The hyperparameters MLP.fit takes default to the declared values (RPROP's keep
    theirs: fit does not expose them), and an Optimizer made without one holds its default."""
    fit = inspect.signature(fastmlp.MLP.fit).parameters
    taken = [key for key in HYPERPARAMETERS if key in fit]
    assert {"momentum", "nesterov", "beta1", "beta2", "eps", "weight_decay"} <= set(taken)
    for key in taken:
        default = HYPERPARAMETERS[key].default
        assert fit[key].default == default and type(fit[key].default) is type(default), key
    for key, declared in HYPERPARAMETERS.items():
        assert getattr(Optimizer(), key) == declared.default


def test_every_optimizer_reads_declared_hyperparameters():
    for name, kind in OPTIMIZERS.items():
        assert set(kind.hyperparameters) <= set(HYPERPARAMETERS), name
        assert set(Optimizer(name).hyperparameters()) == {"lr", *kind.hyperparameters}


def test_unknown_hyperparameter_is_refused_by_name():
    with pytest.raises(TypeError, match="unknown optimizer hyperparameter 'gamma'"):
        Optimizer("adam", gamma=0.5)


def test_record_makes_the_optimizer_again():
    opt = Optimizer("rprop", 0.2, etaplus=1.5, t=3)
    again = Optimizer(**opt.record())
    assert again == opt and again is not opt and again.t == 3
    assert opt != Optimizer("rprop", 0.2, etaplus=1.5)
    assert "etaplus=1.5" in repr(opt)


@pytest.mark.parametrize("name", (*OPTIMIZERS, "lbfgs"))
def test_fit_builds_one_optimizer_object_and_sizes_its_state(backend, name):
    X, Y = make_data(40, (3, 5, 1))
    net = fastmlp.MLP([3, 5, 1], seed=0, backend=backend)
    net.fit(X, Y[:, 0], epochs=3, optimizer=name, lr=0.01, **FIT_OPTIONS.get(name, {}))
    run = net._run
    rows = 0 if name == "lbfgs" else OPTIMIZERS[name].state
    assert run.state.shape == (rows, net._net.param_count())
    if name != "lbfgs":
        assert isinstance(run.optimizer, Optimizer) and run.optimizer.name == name


def test_fit_job_takes_the_optimizer_object():
    X, Y = make_data(20, (3, 4, 1))
    net = fastmlp.MLP([3, 4, 1], seed=0)
    opt = _training.fit_optimizer("adam", 0.05, beta1=0.8)
    job = _training.fit_job(X, Y, None, net._check_Xy, 0, epochs=2, optimizer=opt, batch_size=8, shuffle=False,
                            warm_start=False, lr_schedule="constant", power_t=0.5, validation_data=None,
                            validation_fraction=None, early_stopping=False, patience=10, tol=1e-4, n_restarts=1)
    assert job.optimizer is opt and opt.beta1 == 0.8
    with pytest.raises(TypeError, match="Optimizer or 'lbfgs'"):
        _training.fit_job(X, Y, None, net._check_Xy, 0, epochs=2, optimizer="adam", batch_size=8, shuffle=False,
                          warm_start=False, lr_schedule="constant", power_t=0.5, validation_data=None,
                          validation_fraction=None, early_stopping=False, patience=10, tol=1e-4, n_restarts=1)


@pytest.mark.parametrize("name", tuple(OPTIMIZERS))
def test_backends_refuse_state_of_other_rows(backend, name):
    net = Network((2, 3, 1))
    X, Y = make_data(4, net.sizes)
    opt = Optimizer(name)
    params = np.zeros(net.param_count())
    for rows in {0, 3, OPTIMIZERS[name].state + 1}:
        with pytest.raises(ValueError, match="state must have shape"):
            backend_module(backend).train(net, params, X, Y, optimizer=opt, state=np.zeros((rows, len(params))),
                                          losses=np.empty(1), epochs=1, batch_size=4)


# ------------------------------------------------------------------ model files


def _rewrite(path, **members):
    """The model file at `path` with some members replaced (np.savez: stored, uncompressed)."""
    with np.load(path) as archive:
        contents = {key: archive[key] for key in archive.files}
    contents.update(members)
    buffer = io.BytesIO()
    np.savez(buffer, **contents)
    path.write_bytes(buffer.getvalue())


@pytest.mark.parametrize("name", tuple(OPTIMIZERS))
def test_saved_state_has_the_declared_rows_and_continues_bit_for_bit(tmp_path, backend, name):
    X, Y = make_data(30, (3, 6, 1))
    options = dict(optimizer=name, lr=0.01, **FIT_OPTIONS[name])
    net = fastmlp.MLP([3, 6, 1], seed=1, backend=backend).fit(X, Y[:, 0], epochs=3, **options)
    net.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz") as archive:
        assert archive["optimizer_state"].shape == (OPTIMIZERS[name].state, net._net.param_count())
    back = fastmlp.load(tmp_path / "m.npz", backend=backend)
    net.partial_fit(X, Y[:, 0], **options)
    back.partial_fit(X, Y[:, 0], **options)
    np.testing.assert_array_equal(back.params_, net.params_)


@pytest.mark.parametrize("name", ("sgd", "lbfgs"))
def test_files_from_before_with_two_state_rows_still_load(tmp_path, name):
    """Files written before the rows followed the optimizer hold (2, n_params) for every
    optimizer: they load, keep the rows the optimizer uses, and continue bit for bit."""
    X, Y = make_data(30, (3, 6, 1))
    options = dict(optimizer=name, lr=0.01, **FIT_OPTIONS.get(name, {}))
    net = fastmlp.MLP([3, 6, 1], seed=1).fit(X, Y[:, 0], epochs=3, **options)
    net.save(tmp_path / "m.npz")
    state = net._run.state
    legacy = np.zeros((2, state.shape[1]), state.dtype)
    legacy[: len(state)] = state
    _rewrite(tmp_path / "m.npz", optimizer_state=legacy)
    back = fastmlp.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back._run.state, state)
    if name == "sgd":
        net.partial_fit(X, Y[:, 0], **options)
        back.partial_fit(X, Y[:, 0], **options)
        np.testing.assert_array_equal(back.params_, net.params_)


def test_a_file_whose_state_rows_fit_no_optimizer_is_refused(tmp_path):
    X, Y = make_data(30, (3, 6, 1))
    net = fastmlp.MLP([3, 6, 1], seed=1).fit(X, Y[:, 0], epochs=2, optimizer="adam")
    net.save(tmp_path / "m.npz")
    _rewrite(tmp_path / "m.npz", optimizer_state=np.zeros((3, net._net.param_count())))
    with pytest.raises(ModelFileError, match=r"optimizer_state has 3 rows; the optimizer 'adam' keeps 2"):
        fastmlp.load(tmp_path / "m.npz")


# ------------------------------------------------------------------ silu: one new activation everywhere

SILU_Z = [-1e4, -800.0, -80.0, -30.0, -5.0, -1.0, -1e-3, -0.0, 0.0, 1e-3, 0.5, 2.5, 30.0, 80.0, 800.0, 1e4, np.nan]


def _torch_silu(z):
    """(silu(z), silu'(z)) from PyTorch's own nn.SiLU and autograd, in z's dtype."""
    torch = pytest.importorskip("torch")
    t = torch.tensor(z, requires_grad=True)
    a = torch.nn.SiLU()(t)
    a.sum().backward()
    return a.detach().numpy(), t.grad.numpy()


def _silu_formula(z):
    """z * sigmoid(z) and s + z s (1 - s) in float64 through scipy's expit."""
    from scipy.special import expit

    s = expit(z.astype(np.float64))
    return z * s, s + z * s * (1 - s)


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_silu_kernels_match_pytorch(backend, dtype):
    mod = backend_module(backend)
    Z = np.array([SILU_Z] * 20, dtype)           # 340 elements: past the vector loops' tails
    A, dZ = np.empty_like(Z), np.empty_like(Z)
    mod.activation("silu", Z, A)
    mod.activation_backward("silu", Z, A, np.ones_like(Z), dZ)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    value, derivative = _torch_silu(Z)
    np.testing.assert_allclose(A, value, rtol=rtol, atol=0)
    np.testing.assert_allclose(dZ, derivative, rtol=rtol, atol=np.finfo(dtype).tiny)
    assert np.isfinite(A[:, :-1]).all() and np.isfinite(dZ[:, :-1]).all()   # no overflow at large |z|
    assert np.isnan(A[:, -1]).all() and np.isnan(dZ[:, -1]).all()          # NaN propagates
    exact, exact_grad = _silu_formula(Z)
    np.testing.assert_allclose(A, exact, rtol=4 * np.finfo(dtype).eps)
    np.testing.assert_allclose(dZ, exact_grad, rtol=8 * np.finfo(dtype).eps, atol=np.finfo(dtype).tiny)


def test_silu_network_predicts_and_differentiates(backend, dtype):
    """A silu network's output is the formula on its weights, and its gradients are the
    finite differences of its loss."""
    X, Y = make_data(50, (4, 7, 2))
    X, Y = X.astype(dtype), Y.astype(dtype)
    net = fastmlp.MLP([4, 7, 2], activation="silu", output="identity", seed=3, backend=backend, dtype=dtype)
    (W1, W2), (b1, b2) = net.coefs_, net.intercepts_
    Z1 = X.astype(np.float64) @ W1 + b1
    expected = _silu_formula(Z1)[0] @ W2 + b2
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(net.predict(X), expected, rtol=rtol, atol=rtol)
    big = fastmlp.MLP([4, 7, 2], activation="silu", output="identity", seed=3, backend=backend, dtype="float64")
    dW, db = big.gradients(X.astype(np.float64), Y.astype(np.float64))
    analytic = np.concatenate([a.ravel() for pair in zip(dW, db) for a in pair])
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    numeric = fd_gradient(lambda: big.loss(X64, Y64), big._params)     # (restores each weight)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_silu_fits_the_same_in_both_backends(dtype):
    X, Y = make_data(120, (5, 16, 1))
    fits = [fastmlp.MLP([5, 16, 8, 1], activation="silu", seed=0, backend=b, dtype=dtype)
            .fit(X, Y[:, 0], epochs=15, optimizer="adam", lr=0.01) for b in ("cython", "numpy")]
    rtol = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(fits[0].params_, fits[1].params_, rtol=rtol, atol=rtol)
    assert fits[0].history_["loss"][-1] < fits[0].history_["loss"][0]


def test_silu_initialises_as_the_relu_family():
    silu, relu = (fastmlp.MLP([30, 20, 1], activation=a, seed=0) for a in ("silu", "relu"))
    np.testing.assert_array_equal(silu.coefs_[0], relu.coefs_[0])


@pytest.mark.parametrize("estimator", ["MLPClassifier", "MLPRegressor"])
def test_silu_in_the_estimators(backend, estimator):
    pytest.importorskip("sklearn")
    from fastmlp import MLPClassifier, MLPRegressor

    X, Y = make_data(80, (3, 6, 1))
    cls = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}[estimator]
    est = cls(hidden_layer_sizes=(6,), activation="silu", max_iter=30, random_state=0, backend=backend)
    y = Y[:, 0] if estimator == "MLPClassifier" else X @ np.array([1.0, -2.0, 0.5])
    est.fit(X, y)
    assert est._mlp.activation == "silu" and est.predict(X).shape == (80,)
    assert est.get_params()["activation"] == "silu"


def test_silu_on_the_command_line(tmp_path, capsys):
    pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 2)).round(3)
    data = tmp_path / "d.csv"
    data.write_text("a,b,label\n" + "".join(f"{a},{b},{'yes' if a * b > 0 else 'no'}\n" for a, b in X))
    status, out, err = cli_in_process("train", data, "--target", "label", "-o", tmp_path / "m", "--hidden", 5,
                                      "--activation", "silu", "--epochs", 5, "--seed", 0, capsys=capsys)
    assert status == 0, err
    from fastmlp._estimator_io import load_estimator

    assert load_estimator(tmp_path / "m.npz").activation == "silu"
    status, out, err = cli_in_process("predict", tmp_path / "m.npz", data, capsys=capsys)
    assert status == 0 and out.count("\n") >= 60, err


def test_silu_in_onnx_export(dtype):
    pytest.importorskip("onnxruntime")
    from fastmlp import to_onnx

    X, _ = make_data(64, (3, 6, 1))
    X = (X * 6).astype(dtype)                         # reach well into both tails
    net = fastmlp.MLP([3, 6, 5, 2], activation="silu", output="softmax", seed=1, dtype=dtype)
    proto = to_onnx(net)
    ops = [node.op_type for node in proto.graph.node]
    assert ops.count("Sigmoid") == 2 and ops.count("Mul") >= 2
    got = onnx_session(proto).run(None, {proto.graph.input[0].name: X})
    probabilities = dict(zip([o.name for o in proto.graph.output], got))["probabilities"]
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(probabilities, net.predict_proba(X), rtol=rtol, atol=rtol)


# ------------------------------------------------------------------ the documentation's lists


def _table_row(page, argument):
    """The row of `page`'s argument table whose first cell starts with `argument`."""
    rows = [line for line in (ROOT / page).read_text().splitlines() if line.startswith(f"| `{argument}")]
    assert len(rows) == 1, f"{page} has {len(rows)} table rows for {argument!r}"
    return rows[0]


def _quoted(text):
    return set(re.findall(r'"([a-z_0-9]+)"', text))


def test_the_model_guide_lists_every_activation_and_optimizer():
    """docs/guide/mlp.md's argument tables name every registered hidden activation, output,
    loss and optimizer (a new one is documented where users look for it)."""
    assert set(ACTIVATIONS) <= _quoted(_table_row("docs/guide/mlp.md", "activation")), \
        f"docs/guide/mlp.md's activation row lacks {set(ACTIVATIONS) - _quoted(_table_row('docs/guide/mlp.md', 'activation'))}"
    heads = _quoted(_table_row("docs/guide/mlp.md", "output"))
    assert set(OUTPUTS) | set(LOSSES) <= heads, f"missing {(set(OUTPUTS) | set(LOSSES)) - heads}"
    optimizers = _quoted(_table_row("docs/guide/mlp.md", "optimizer"))
    assert set(_training.FIT_OPTIMIZERS) <= optimizers, f"missing {set(_training.FIT_OPTIMIZERS) - optimizers}"


def test_the_estimator_guide_lists_every_activation_and_solver():
    text = (ROOT / "docs/guide/estimators.md").read_text()
    paragraph = next(p for p in text.split("\n\n") if p.startswith("Beyond scikit-learn's options"))
    names = _quoted(paragraph)
    wanted = set(_registry.sklearn_activations()) | set(_training.FIT_OPTIMIZERS)
    assert wanted <= names, f"docs/guide/estimators.md does not name {wanted - names}"
