"""Batch and layer normalization (``norm=``): layer ops between a hidden layer's dense product
and its activation, held against PyTorch's BatchNorm1d and LayerNorm (the same weights and
batches, a few optimizer steps: losses, every parameter, the running statistics, the
gradients), against finite differences in inference mode, and the two backends against each
other; the model around them: settings checked, files, a batch of one row refused, ONNX.
"""

import json

import numpy as np
import pytest

import fastmlp
from fastmlp import _reference
from fastmlp._spec import Network, Optimizer

from _support import fd_gradient, make_data, onnx_session

torch = pytest.importorskip("torch")

# (sizes, activation, batch): a small network (the plain loops) and one wide enough for
# BLAS and the fused leaky-ReLU passes of the compiled backend
SHAPES = [([5, 7, 6, 3], "tanh", 10), ([20, 64, 48, 3], "leaky_relu", 32)]
NORMS = ["batch", "layer", ["batch", None], [None, "layer"], ["layer", "batch"]]
# what PyTorch (float32 or float64) and we may differ by, per dtype: float64's 1e-10 is the
# issue's bar; float32 rounds differently in each library
TOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-10}


def _model(sizes, activation, norm, backend, dtype, seed=1):
    """A model with random gammas and betas (not the 1 and 0 they start at)."""
    model = fastmlp.MLP(sizes, activation=activation, output="softmax", norm=norm, seed=seed, dtype=dtype,
                        backend=backend)
    rng = np.random.default_rng(seed)
    for views in model.norm_layers_:
        if views:
            views["gamma"][:] = rng.uniform(0.5, 1.5, views["gamma"].shape)
            views["beta"][:] = rng.normal(size=views["beta"].shape)
    return model


def _torch_twin(model):
    """PyTorch's Sequential with `model`'s weights: Linear, [BatchNorm1d | LayerNorm], act."""
    tdtype = torch.float64 if model.dtype == np.float64 else torch.float32
    act = {"tanh": torch.nn.Tanh, "leaky_relu": lambda: torch.nn.LeakyReLU(model.negative_slope)}
    layers = []
    for l, (W, b) in enumerate(zip(model.coefs_, model.intercepts_)):
        lin = torch.nn.Linear(*W.shape, dtype=tdtype)
        lin.weight.data, lin.bias.data = torch.tensor(W.T.copy()), torch.tensor(b.copy())
        layers.append(lin)
        if l < len(model.coefs_) - 1:
            kind, views = model.norm[l], model.norm_layers_[l]
            if kind is not None:
                norm = (torch.nn.BatchNorm1d if kind == "batch" else torch.nn.LayerNorm)(W.shape[1], dtype=tdtype)
                norm.weight.data, norm.bias.data = torch.tensor(views["gamma"].copy()), torch.tensor(views["beta"].copy())
                layers.append(norm)
            layers.append(act[model.activation]())
    return torch.nn.Sequential(*layers)


def _pairs(model, twin):
    """[(ours, PyTorch's tensor, name)] of every parameter and running statistic."""
    found, modules = [], iter(twin)
    for l in range(len(model.coefs_)):
        lin = next(modules)
        found += [(model.coefs_[l].T, lin.weight, f"W{l}"), (model.intercepts_[l], lin.bias, f"b{l}")]
        if l < len(model.coefs_) - 1:
            if model.norm[l] is not None:
                norm, views = next(modules), model.norm_layers_[l]
                found += [(views["gamma"], norm.weight, f"gamma{l}"), (views["beta"], norm.bias, f"beta{l}")]
                if model.norm[l] == "batch":
                    found += [(views["running_mean"], norm.running_mean, f"running_mean{l}"),
                              (views["running_var"], norm.running_var, f"running_var{l}")]
            next(modules)
    return found


def _data(sizes, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, sizes[0])) * 2 + 0.5).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    return X, y, np.eye(sizes[-1], dtype=dtype)[y]


def _max_diff(model, twin, skip=()):
    return max(float(np.abs(ours - theirs.detach().numpy()).max())
               for ours, theirs, name in _pairs(model, twin) if name not in skip)


@pytest.mark.parametrize("norm", NORMS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=["small", "wide"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_training_equals_pytorch(backend, dtype, norm, shape, optimizer):
    """Epochs of mini-batch steps: the losses, weights, biases, gammas, betas and running
    statistics equal PyTorch's after them (the same weights and batches)."""
    sizes, activation, batch = shape
    model = _model(sizes, activation, norm, backend, dtype)
    twin = _torch_twin(model)
    X, y, Y = _data(sizes, 4 * batch, dtype)
    opt = Optimizer(optimizer, 0.05)
    state, losses = opt.new_state(model.params_), np.zeros(3)
    model._impl.train(model._net, model.params_, X, Y, optimizer=opt, state=state, losses=losses, epochs=3,
                      batch_size=batch)
    topt = (torch.optim.SGD if optimizer == "sgd" else torch.optim.Adam)(twin.parameters(), lr=0.05)
    twin.train()
    theirs = []
    for _ in range(3):
        total = 0.0
        for start in range(0, len(X), batch):
            topt.zero_grad()
            loss = torch.nn.functional.cross_entropy(twin(torch.tensor(X[start : start + batch])),
                                                     torch.tensor(y[start : start + batch]))
            loss.backward()
            topt.step()
            total += loss.item() * batch
        theirs.append(total / len(X))
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(losses, theirs, rtol=tol, atol=tol)
    if optimizer == "adam":
        # Adam divides each gradient by its own size: where one is 0 up to rounding (the bias
        # before a batch norm, exactly; others nearly), its steps follow each library's
        # rounding (float32's ~1e-8 is eps's size). Compared in float64 only, less those
        # biases and the running means that carry them; in float32, the losses above.
        if dtype == np.float32:
            return
        skip = {f"{name}{l}" for l, kind in enumerate(model.norm) if kind == "batch"
                for name in ("b", "running_mean")}
        assert _max_diff(model, twin, skip) < 1e-8
        return
    assert _max_diff(model, twin) < tol * 10
    twin.eval()        # inference: the running statistics
    P = torch.softmax(twin(torch.tensor(X)), 1).detach().numpy()
    np.testing.assert_allclose(model.predict_proba(X), P, rtol=0, atol=tol)


@pytest.mark.parametrize("norm", NORMS, ids=str)
@pytest.mark.parametrize("shape", SHAPES, ids=["small", "wide"])
def test_training_gradient_equals_pytorch(backend, dtype, norm, shape):
    """One plain SGD step with lr 1 takes exactly the gradient in training mode (batch
    statistics): every parameter's change equals minus PyTorch's gradient, dL/dW_0 carrying
    the input gradient of every op above it."""
    sizes, activation, batch = shape
    model = _model(sizes, activation, norm, backend, dtype)
    twin = _torch_twin(model)
    X, y, Y = _data(sizes, batch, dtype, seed=2)
    before = model.params_.copy()
    opt = Optimizer("sgd", 1.0)
    model._impl.train(model._net, model.params_, X, Y, optimizer=opt, state=opt.new_state(before),
                      losses=np.zeros(1), epochs=1, batch_size=batch)
    step = model.params_ - before
    twin.train()
    torch.nn.functional.cross_entropy(twin(torch.tensor(X)), torch.tensor(y)).backward()
    ours = model._net
    tol = TOL[np.dtype(dtype)]
    model.params_[:] = step
    for mine, theirs, name in _pairs(model, twin):
        if name.startswith("running"):
            continue
        np.testing.assert_allclose(-mine, theirs.grad.numpy(), rtol=0, atol=tol * 10, err_msg=name)
    assert ours.trainable_count() == len(before) - 2 * sum(
        ours.sizes[l + 1] for l, kind in enumerate(ours.norm) if kind == "batch")


@pytest.mark.parametrize("norm", NORMS, ids=str)
def test_inference_gradient_equals_pytorch_and_finite_differences(backend, norm):
    """loss_gradient (inference: the running statistics, here after some training) equals
    PyTorch's eval-mode gradient, and finite differences; the running statistics get 0."""
    sizes, activation, batch = SHAPES[0]
    model = _model(sizes, activation, norm, backend, np.float64)
    X, y, Y = _data(sizes, 40, np.float64, seed=3)
    model.fit(X, Y, epochs=2, lr=0.05, batch_size=batch, optimizer="sgd")
    twin = _torch_twin(model)
    for mine, theirs, name in _pairs(model, twin):
        if name.startswith("running"):
            theirs.copy_(torch.tensor(mine))
    twin.eval()
    grad = np.full_like(model.params_, np.nan)
    loss = model._impl.loss_gradient(model._net, model.params_, X, Y, grad)
    tloss = torch.nn.functional.cross_entropy(twin(torch.tensor(X)), torch.tensor(y))
    tloss.backward()
    assert abs(loss - tloss.item()) < 1e-12
    trainable = model._net.trainable_count()
    assert (grad[trainable:] == 0).all()
    model.params_[:] = grad          # (the model's views now read the gradient)
    for mine, theirs, name in _pairs(model, twin):
        if not name.startswith("running"):
            np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=0, atol=1e-10, err_msg=name)
    model2 = _model(sizes, activation, norm, backend, np.float64)
    model2.fit(X, Y, epochs=2, lr=0.05, batch_size=batch, optimizer="sgd")
    p = model2.params_
    grad = np.empty_like(p)
    model2._impl.loss_gradient(model2._net, p, X, Y, grad)
    fd = fd_gradient(lambda: model2._impl.loss_gradient(model2._net, p, X, Y), p[:trainable])
    np.testing.assert_allclose(grad[:trainable], fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("norm", ["batch", "layer"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rprop"])
def test_backends_fit_alike(dtype, norm, optimizer):
    """Both backends train a normalized network alike with every optimizer (shuffled,
    weighted, L2), the running statistics included; the optimizers leave those alone."""
    sizes = [8, 32, 16, 2]
    X, Y = make_data(120, sizes, seed=4, dtype=dtype)
    w = np.random.default_rng(5).uniform(0.5, 2, 120)
    batch = 120 if optimizer == "rprop" else 24
    fits = []
    for backend in ("cython", "numpy"):
        model = fastmlp.MLP(sizes, norm=norm, l2=1e-3, seed=2, dtype=dtype, backend=backend)
        model.fit(X, Y, sample_weight=w, epochs=4, lr=0.01, batch_size=batch, optimizer=optimizer)
        fits.append(model)
    tol = 1e-4 if dtype == np.float32 else 1e-9
    keep = np.ones(len(fits[0].params_), bool)
    if norm == "batch" and (optimizer == "rprop" or (optimizer != "sgd" and dtype == np.float32)):
        # the biases before a batch norm have gradients of 0 up to rounding, which RPROP's
        # sign (and Adam's division, in float32) turns into steps that follow each backend's
        # rounding: left out, with the running means that carry them
        net = fits[0]._net
        for l, kind in enumerate(net.norm):
            keep[net._slices[l][2]] = False
            keep[net.norm_offsets(l)[1] : net.norm_offsets(l)[1] + sizes[l + 1]] = False
    np.testing.assert_allclose(fits[0].params_[keep], fits[1].params_[keep], rtol=tol, atol=tol)
    np.testing.assert_allclose(fits[0].history_["loss"], fits[1].history_["loss"], rtol=tol)
    if norm == "batch":      # the running statistics moved (the training pass), and stayed sane
        views = fits[0].norm_layers_[0]
        assert not np.allclose(views["running_mean"], 0) and (views["running_var"] > 0).all()


def test_l2_leaves_gamma_and_beta_alone(backend):
    """The L2 penalty covers the weights only: the same loss with or without a gamma."""
    sizes = [4, 6, 2]
    X, Y = make_data(20, sizes, seed=1)
    model = fastmlp.MLP(sizes, norm="layer", l2=0.5, seed=1, backend=backend)
    grad, grad_more = np.empty_like(model.params_), np.empty_like(model.params_)
    loss = model._impl.loss_gradient(model._net, model.params_, X, Y, grad)
    plain = fastmlp.MLP(sizes, norm="layer", seed=1, backend=backend)
    plain_loss = plain._impl.loss_gradient(plain._net, plain.params_, X, Y, grad_more)
    penalty = 0.25 * sum(float((W * W).sum()) for W in model.coefs_)
    assert loss == pytest.approx(plain_loss + penalty, rel=1e-12)
    gamma = model._net.norm_offsets(0)[0]
    np.testing.assert_array_equal(grad[gamma : gamma + 12], grad_more[gamma : gamma + 12])


def test_without_norm_the_layout_and_ops_are_unchanged():
    net = Network((3, 5, 4, 2))
    assert net.norm == (None, None) and net.trainable_count() == net.param_count() == 3 * 5 + 5 + 5 * 4 + 4 + 4 * 2 + 2
    assert [name for name, _, _ in net.ops(True)] == ["dense", "activation"] * 2 + ["dense"]
    normed = Network((3, 5, 4, 2), norm=["batch", "layer"])
    assert [name for name, _, _ in normed.ops(False)] == ["dense", "batch_norm", "activation", "dense",
                                                          "layer_norm", "activation", "dense"]
    assert normed.param_count() == net.param_count() + 2 * 5 + 2 * 4 + 2 * 5
    assert normed.unflatten(np.arange(normed.param_count()))[1][1][0] == 15 + 5 + 10 + 20


# ---------------------------------------------------------------- the model around it


@pytest.mark.parametrize("bad, error, text", [
    ("group", ValueError, "norm must be None, 'batch' or 'layer'"),
    (3, TypeError, "norm must be None"),
    (["batch"], ValueError, "norm lists 1 settings for 2 hidden layers"),
    (["batch", "instance"], ValueError, "'instance'"),
    ([None, 1.0], TypeError, "norm must be None"),
])
def test_bad_norm_settings_are_refused(bad, error, text):
    with pytest.raises(error, match=text):
        fastmlp.MLP([3, 4, 4, 1], norm=bad)


def test_norm_settings(backend):
    model = fastmlp.MLP([3, 4, 5, 1], norm="batch", backend=backend)
    assert model.norm == ("batch", "batch")
    assert model.get_config()["norm"] == "batch"
    views = model.norm_layers_
    assert [sorted(v) for v in views] == [["beta", "gamma", "running_mean", "running_var"]] * 2
    assert (views[1]["gamma"] == 1).all() and (views[1]["beta"] == 0).all()
    assert (views[1]["running_mean"] == 0).all() and (views[1]["running_var"] == 1).all()
    mixed = fastmlp.MLP([3, 4, 5, 1], norm=[None, "layer"], backend=backend)
    assert mixed.get_config()["norm"] == [None, "layer"] and mixed.norm_layers_[0] is None
    assert sorted(mixed.norm_layers_[1]) == ["beta", "gamma"]
    assert fastmlp.MLP([3, 4, 1], backend=backend).get_config()["norm"] is None


@pytest.mark.parametrize("n, batch_size", [(33, 16), (1, 200), (40, 1)])
def test_a_training_batch_of_one_row_is_refused(backend, n, batch_size):
    """As PyTorch's BatchNorm1d in training: a clear ValueError before any step, the model
    as it was (fit, and the backend's train)."""
    sizes = [3, 4, 1]
    X, Y = make_data(n, sizes)
    model = fastmlp.MLP(sizes, norm="batch", seed=0, backend=backend)
    before = model.params_.copy()
    with pytest.raises(ValueError, match="more than 1 row per training batch"):
        model.fit(X, Y, epochs=2, batch_size=batch_size, optimizer="adam")
    np.testing.assert_array_equal(model.params_, before)
    assert model.n_iter_ == 0
    opt = Optimizer("sgd", 0.1)
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        model._impl.train(model._net, model.params_, X, Y, optimizer=opt, state=opt.new_state(before),
                          losses=np.zeros(1), epochs=1, batch_size=batch_size)
    np.testing.assert_array_equal(model.params_, before)
    # layer norm takes single rows; batch norm predicts them (running statistics)
    fastmlp.MLP(sizes, norm="layer", seed=0, backend=backend).fit(X, Y, epochs=1, batch_size=batch_size)
    assert model.predict_proba(X[:1]).shape == (1, 1)


def test_lbfgs_refuses_batch_norm_and_takes_layer_norm(backend):
    X, Y = make_data(30, [3, 4, 1])
    model = fastmlp.MLP([3, 4, 1], norm="batch", backend=backend)
    with pytest.raises(ValueError, match="batch normalization needs a stochastic optimizer"):
        model.fit(X, Y, optimizer="lbfgs", epochs=3)
    fastmlp.MLP([3, 4, 1], norm="layer", seed=0, backend=backend).fit(X, Y, optimizer="lbfgs", epochs=3)


def test_save_and_load_keep_the_norms_and_running_statistics(backend, dtype, tmp_path):
    sizes = [5, 8, 6, 2]
    X, Y = make_data(64, sizes, dtype=dtype)
    model = fastmlp.MLP(sizes, norm=["batch", "layer"], seed=0, dtype=dtype, backend=backend)
    model.fit(X, Y, epochs=3, batch_size=16, optimizer="adam")
    path = tmp_path / "m.npz"
    model.save(path)
    again = fastmlp.load(path, backend=backend)
    assert again.norm == ("batch", "layer")
    np.testing.assert_array_equal(again.params_, model.params_)
    np.testing.assert_array_equal(again.norm_layers_[0]["running_var"], model.norm_layers_[0]["running_var"])
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    again.fit(X, Y, epochs=1, batch_size=16, optimizer="adam", warm_start=True)    # trains on


def test_files_without_a_norm_setting_load(tmp_path):
    """A file written before norm existed (its config has no "norm") loads as norm=None."""
    model = fastmlp.MLP([3, 4, 1], seed=0)
    path = tmp_path / "old.npz"
    model.save(path)
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    config = json.loads(members["config"].item())
    del config["norm"]
    members["config"] = np.array(json.dumps(config))
    np.savez(path, **members)
    loaded = fastmlp.load(path)
    assert loaded.norm == (None,)
    np.testing.assert_array_equal(loaded.params_, model.params_)


def test_reference_ops_take_the_compiled_ops_arguments():
    """(tests/test_structure.py checks all ops' signatures; here, that the norms are listed.)"""
    assert set(_reference._OPS) >= {"batch_norm", "layer_norm"}


@pytest.mark.parametrize("norm", NORMS, ids=str)
def test_onnx_export_runs_the_norms_in_onnxruntime(backend, dtype, norm):
    """BatchNormalization (the running statistics) and LayerNormalization (opset 17) in
    onnxruntime give predict_proba's probabilities."""
    pytest.importorskip("onnxruntime")
    sizes = [6, 16, 12, 3]
    X, y, Y = _data(sizes, 64, dtype, seed=6)
    model = fastmlp.MLP(sizes, activation="gelu", output="softmax", norm=norm, seed=0, dtype=dtype, backend=backend)
    model.fit(X, Y, epochs=3, batch_size=16, optimizer="adam", lr=0.01)
    proto = fastmlp.to_onnx(model)
    kinds = {node.op_type for node in proto.graph.node}
    assert ("BatchNormalization" in kinds) == ("batch" in model.norm)
    assert ("LayerNormalization" in kinds) == ("layer" in model.norm)
    session = onnx_session(proto)
    got = session.run(["probabilities"], {session.get_inputs()[0].name: X})[0]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, model.predict_proba(X), rtol=tol, atol=tol)


# ---------------------------------------------------------------- estimators and the command line


def test_estimators_take_norm(backend, tmp_path):
    pytest.importorskip("sklearn")
    import warnings

    from fastmlp._estimator_io import load_estimator, save_estimator
    X, y, _ = _data([4, 3], 64, np.float64, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # (convergence)
        est = fastmlp.MLPClassifier(hidden_layer_sizes=(8, 6), norm=["batch", "layer"], batch_size=16,
                                    random_state=0, max_iter=5, backend=backend).fit(X, y)
        assert est._mlp.norm == ("batch", "layer") and est.get_params()["norm"] == ["batch", "layer"]
        views = est._mlp.norm_layers_[0]
        assert not np.allclose(views["gamma"], 1) and not np.allclose(views["running_mean"], 0)
        reg = fastmlp.MLPRegressor(hidden_layer_sizes=(8,), norm="layer", random_state=0, max_iter=5,
                                   backend=backend).fit(X, X[:, 0])
        assert reg._mlp.norm == ("layer",)
        assert fastmlp.MLPClassifier(max_iter=2, backend=backend).fit(X, y)._mlp.norm == (None,)
        with pytest.raises(ValueError, match="more than 1 row per training batch"):
            fastmlp.MLPClassifier(norm="batch", batch_size=21, max_iter=2, backend=backend).fit(X, y)
        with pytest.raises(ValueError, match="batch normalization needs a stochastic optimizer"):
            fastmlp.MLPClassifier(norm="batch", solver="lbfgs", max_iter=2, backend=backend).fit(X, y)
        est.set_params(norm="layer", warm_start=True)
        with pytest.raises(ValueError, match="fit again without warm_start"):
            est.fit(X, y)
    with pytest.raises(ValueError, match="'norm' parameter"):
        fastmlp.MLPClassifier(norm="group").fit(X, y)
    est.set_params(norm=["batch", "layer"], warm_start=False)
    save_estimator(est, tmp_path / "e.npz")
    loaded = load_estimator(tmp_path / "e.npz")
    assert list(loaded.norm) == ["batch", "layer"]
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
    proto = fastmlp.to_onnx(est)
    session = onnx_session(proto)
    got = session.run(["probabilities"], {session.get_inputs()[0].name: X})[0]
    np.testing.assert_allclose(got, est.predict_proba(X), rtol=1e-12, atol=1e-12)


def test_the_command_line_trains_with_norm(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("pandas")
    from _support import cli_in_process, cli_train_args

    from fastmlp._estimator_io import load_estimator
    common = cli_train_args(tmp_path, "--batch-size", "16")
    status, _, _ = cli_in_process(*common, "--norm", "batch", capsys=capsys)
    assert status in (0, None)
    assert load_estimator(tmp_path / "m.npz")._mlp.norm == ("batch", "batch")
    status, _, _ = cli_in_process(*common, "--norm", "layer", "none", capsys=capsys)
    assert status in (0, None)
    assert load_estimator(tmp_path / "m.npz")._mlp.norm == ("layer", None)
    for bad, words in ((["--norm", "group"], "invalid choice"), (["--norm", "batch", "layer", "batch"], "one setting"),
                       (["--norm", "batch", "--solver", "lbfgs"], "stochastic --solver")):
        status, _, err = cli_in_process(*common, *bad, capsys=capsys)
        assert status not in (0, None) and words in err


def test_a_negative_running_variance_is_refused_on_load(tmp_path):
    model = fastmlp.MLP([3, 4, 1], norm="batch", seed=0)
    path = tmp_path / "m.npz"
    model.save(path)
    with np.load(path) as archive:
        members = {name: archive[name] for name in archive.files}
    _, mean = model._net.norm_offsets(0)
    members["params"][mean + 4] = -1.0          # the first running variance
    np.savez(path, **members)
    with pytest.raises(ValueError, match="negative running variance"):
        fastmlp.load(path)


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_sparse_input_and_dropout_with_norms(dtype, norm):
    """A CSR X trains as its dense twin, with dropout after the normalized activations; both
    backends alike (plain SGD: Adam would magnify the rounding-level gradient of the bias
    before a batch norm, see test_training_equals_pytorch)."""
    import scipy.sparse
    sizes = [12, 16, 8, 2]
    X, Y = make_data(64, sizes, seed=8, dtype=dtype)
    X[np.abs(X) < 0.8] = 0
    fits = {}
    for backend in ("cython", "numpy"):
        for kind, data in (("dense", X), ("csr", scipy.sparse.csr_matrix(X))):
            model = fastmlp.MLP(sizes, norm=norm, dropout=0.2, seed=1, dtype=dtype, backend=backend)
            fits[backend, kind] = model.fit(data, Y, epochs=3, batch_size=16, optimizer="sgd", lr=0.05).params_
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for key, params in fits.items():
        np.testing.assert_allclose(params, fits["numpy", "dense"], rtol=tol, atol=tol, err_msg=str(key))
