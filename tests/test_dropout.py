"""Dropout, the first layer op beyond dense and activation: masks from the run's key through a
counter-based generator both backends implement alike, inverted scaling in training only,
and everything around a model that carries it (repeats, warm starts, files, estimators,
ONNX, the command line). Every test that trains runs on both backends and both dtypes.
"""

import copy
import warnings

import numpy as np
import pytest

import fastmlp
from fastmlp import _reference, _spec, _training
from fastmlp._spec import Network, Optimizer

from _support import assert_close, cli_in_process, cli_train_args, fd_gradient, make_data, onnx_session

SIZES = [6, 16, 12, 2]
MASK64 = 2**64 - 1


def fitted(backend, dtype, dropout=0.3, epochs=5, seed=3, **options):
    X, Y = make_data(96, SIZES, seed=1, dtype=dtype)
    model = fastmlp.MLP(SIZES, activation="tanh", dropout=dropout, seed=seed, dtype=dtype, backend=backend)
    kwargs = {"epochs": epochs, "lr": 0.05, "batch_size": 32, "optimizer": "adam", **options}
    return model.fit(X, Y, **kwargs), X, Y


# ---------------------------------------------------------------- the generator


def _splitmix(x):
    """SplitMix64's finalizer on a Python int: the specification both backends implement."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


def test_the_masks_follow_the_specification_in_plain_integers():
    key, step, layer, rate = 2**64 - 5, 123456789, 1, 0.4
    golden = 0x9E3779B97F4A7C15
    stream = _splitmix((_splitmix((key + (step + 1) * golden) & MASK64) + (layer + 1) * golden) & MASK64)
    assert _reference._dropout_stream(key, step, layer) == stream
    threshold, scale = _spec.dropout_keep(rate)
    A = np.arange(1.0, 3 * 7 + 1).reshape(3, 7)
    M, out = np.empty_like(A), np.empty_like(A)
    _reference._dropout(A, M, out, stream, threshold, scale)
    for p in range(A.size):
        kept = (_splitmix((stream + (p + 1) * golden) & MASK64) >> 11) >= threshold
        assert M.flat[p] == (scale if kept else 0.0)
        assert out.flat[p] == A.flat[p] * M.flat[p]


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_the_keep_fraction_is_close_to_one_minus_the_rate(rate):
    A = np.ones((500, 400))
    M, out = np.empty_like(A), np.empty_like(A)
    threshold, scale = _spec.dropout_keep(rate)
    _reference._dropout(A, M, out, _reference._dropout_stream(7, 0, 0), threshold, scale)
    kept = np.count_nonzero(M) / M.size
    assert abs(kept - (1 - rate)) < 5 * np.sqrt(rate * (1 - rate) / M.size)
    np.testing.assert_array_equal(np.unique(M), [0.0, scale])
    assert abs(out.mean() - 1) < 0.02          # inverted dropout keeps the mean


def test_steps_and_layers_draw_different_masks():
    threshold, scale = _spec.dropout_keep(0.5)
    masks = []
    for step, layer in ((0, 0), (1, 0), (0, 1)):
        A = np.ones((8, 64))
        M, out = np.empty_like(A), np.empty_like(A)
        masks.append(_reference._dropout(A, M, out, _reference._dropout_stream(1, step, layer), threshold, scale))
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[0], masks[2])


# ---------------------------------------------------------------- the op list


def test_the_network_is_a_sequence_of_layer_ops():
    net = Network((4, 8, 8, 1), "relu", dropout=(0.5, 0.0))
    assert net.ops() == (("dense", 0, None), ("activation", 0, "relu"), ("dense", 1, None),
                         ("activation", 1, "relu"), ("dense", 2, None))
    assert net.ops(training=True) == (("dense", 0, None), ("activation", 0, "relu"), ("dropout", 0, 0.5),
                                      ("dense", 1, None), ("activation", 1, "relu"), ("dense", 2, None))
    assert Network((4, 8, 1)).ops(True) == Network((4, 8, 1)).ops()


@pytest.mark.parametrize("bad, kind, words", [
    (-0.1, ValueError, "in [0, 1)"), (1.0, ValueError, "in [0, 1)"), (1.5, ValueError, "in [0, 1)"),
    (float("nan"), ValueError, "finite"), (float("inf"), ValueError, "finite"),
    ([0.1], ValueError, "1 rates for 2 hidden layers"), ([0.1, 0.2, 0.3], ValueError, "3 rates"),
    ("0.5", TypeError, "real number"), (None, TypeError, "real number"), (True, TypeError, "real number"),
    ([0.1, "x"], TypeError, "real number"), ([0.1, 1.0], ValueError, "in [0, 1)"),
])
def test_bad_rates_raise_before_any_work(backend, bad, kind, words):
    with pytest.raises(kind, match=words.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        fastmlp.MLP([3, 4, 4, 1], dropout=bad, backend=backend)


def test_a_failed_fit_leaves_the_model_as_it_was(backend):
    model, X, Y = fitted(backend, np.float64, epochs=1)
    before, history = model.params_.copy(), copy.deepcopy(model.history_)
    with pytest.raises(ValueError, match="dropout needs a stochastic optimizer"):
        model.fit(X, Y, optimizer="lbfgs", epochs=2)
    np.testing.assert_array_equal(model.params_, before)
    assert model.history_ == history


def test_train_refuses_a_bad_dropout_key(backend):
    from _support import backend_module
    net = Network((3, 4, 1), dropout=0.5)
    params = np.zeros(net.param_count())
    X, Y = make_data(8, [3, 4, 1])
    for key, kind in ((-1, ValueError), (2**64, ValueError), (1.5, TypeError), ("1", TypeError)):
        with pytest.raises(kind, match="dropout_key"):
            backend_module(backend).train(net, params, X, Y, optimizer=Optimizer(), state=Optimizer().new_state(params),
                                          losses=np.zeros(1), epochs=1, batch_size=4, dropout_key=key)


# ---------------------------------------------------------------- fits


def test_both_backends_give_the_same_fit(dtype):
    numpy_model, X, Y = fitted("numpy", dtype)
    cython_model, _, _ = fitted("cython", dtype)
    scale = 1 if dtype == np.float64 else 50     # float32: 5 epochs of Adam amplify rounding
    assert_close(cython_model.params_, numpy_model.params_, dtype, scale)
    assert_close(cython_model.history_["loss"], numpy_model.history_["loss"], dtype, scale)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_fused_and_unfused_layers_mix_in_one_network(dtype, optimizer):
    """Dropout on the middle layer only: the compiled walker runs dense + activation fused
    where no dropout sits between them (with the bias step taken in the derivative's pass
    for 64-wide Leaky ReLU layers on AVX-512 CPUs) and op by op where one does."""
    sizes = [20, 64, 64, 64, 1]
    X, Y = make_data(256, sizes, seed=6, dtype=dtype)
    models = [fastmlp.MLP(sizes, dropout=(0.0, 0.3, 0.0), seed=1, dtype=dtype, backend=backend)
              .fit(X, Y, epochs=3, lr=0.02, batch_size=64, optimizer=optimizer) for backend in ("numpy", "cython")]
    assert_close(models[1].params_, models[0].params_, dtype, 1 if dtype == np.float64 else 20)


def test_one_sgd_step_on_both_backends_is_the_gradient_of_the_masked_network(backend):
    """Plain SGD (the step fused into the backward pass) on one full batch: (p0 - p1) / lr is
    the gradient of the loss of the network with step 0's masks, by finite differences."""
    net = Network((5, 7, 6, 1), "tanh", dropout=(0.4, 0.25))
    X, Y = make_data(12, [5, 7, 6, 1], seed=4)
    p0 = np.random.default_rng(0).standard_normal(net.param_count()) * 0.5
    key, lr = 99, 0.1
    p1 = p0.copy()
    from _support import train
    model = fastmlp.MLP(list(net.sizes), "tanh", dropout=(0.4, 0.25), backend=backend)
    train(backend, model, p1, X, Y, epochs=1, batch_size=12, optimizer=Optimizer(lr=lr), dropout_key=key)
    work, point = _reference._Work(net, True, key), p0.copy()

    def masked_loss():
        _reference._forward(net, point, X, work, 0)
        return _reference._output_loss(work.Z[-1], Y, None, None, 1.0, net.loss) / len(X)

    np.testing.assert_allclose((p0 - p1) / lr, fd_gradient(masked_loss, point), rtol=1e-6, atol=1e-8)
    assert not np.allclose(p1, _without_dropout_step(net, p0, X, Y, lr), atol=1e-6)   # the masks mattered


def _without_dropout_step(net, p0, X, Y, lr):
    grad = np.empty_like(p0)
    _reference.loss_gradient(net, p0, X, Y, grad)
    return p0 - lr * grad


def test_a_repeated_fit_is_bit_identical(backend, dtype):
    first, _, _ = fitted(backend, dtype, shuffle=True)
    second, _, _ = fitted(backend, dtype, shuffle=True)
    np.testing.assert_array_equal(first.params_, second.params_)
    assert first.history_ == second.history_
    other, _, _ = fitted(backend, dtype, seed=4)
    assert not np.array_equal(first.params_, other.params_)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_dropout_zero_is_no_dropout_bit_for_bit(backend, dtype, optimizer):
    plain = fastmlp.MLP(SIZES, activation="tanh", seed=3, dtype=dtype, backend=backend)
    X, Y = make_data(96, SIZES, seed=1, dtype=dtype)
    plain.fit(X, Y, epochs=4, lr=0.05, batch_size=32, optimizer=optimizer)
    for zero in (0.0, 0, [0.0, 0.0]):
        model, _, _ = fitted(backend, dtype, dropout=zero, epochs=4, optimizer=optimizer)
        np.testing.assert_array_equal(model.params_, plain.params_)
        assert model.history_ == plain.history_
    assert Network(tuple(SIZES), dropout=0.0).ops(True) == Network(tuple(SIZES)).ops(True)


def test_predict_loss_and_gradients_are_deterministic_and_ignore_dropout(backend, dtype):
    model, X, Y = fitted(backend, dtype)
    twin = fastmlp.MLP(SIZES, activation="tanh", seed=3, dtype=dtype, backend=backend)
    twin.params_[...] = model.params_
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(model.predict_proba(X), twin.predict_proba(X))
    assert model.loss(X, Y) == twin.loss(X, Y)
    for mine, theirs in zip(model.gradients(X, Y), twin.gradients(X, Y)):
        for a, b in zip(mine, theirs):
            np.testing.assert_array_equal(a, b)


def test_gradients_check_by_finite_differences_with_dropout_set(backend):
    model = fastmlp.MLP([4, 5, 3, 1], activation="tanh", dropout=0.5, seed=0, backend=backend)
    X, Y = make_data(10, [4, 5, 3, 1], seed=2)
    params = model.params_
    grad = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in zip(*model.gradients(X, Y))])
    np.testing.assert_allclose(grad, fd_gradient(lambda: model.loss(X, Y), params), rtol=1e-6, atol=1e-9)


def test_sparse_input_trains_with_dropout_as_dense(backend):
    scipy_sparse = pytest.importorskip("scipy.sparse")
    X, Y = make_data(64, SIZES, seed=1)
    X[np.abs(X) < 0.8] = 0
    dense = fastmlp.MLP(SIZES, dropout=0.3, seed=2, backend=backend).fit(X, Y, epochs=3, lr=0.05, batch_size=16)
    sparse = fastmlp.MLP(SIZES, dropout=0.3, seed=2, backend=backend).fit(
        scipy_sparse.csr_matrix(X), Y, epochs=3, lr=0.05, batch_size=16)
    np.testing.assert_allclose(sparse.params_, dense.params_, rtol=1e-10, atol=1e-12)


def test_restarts_draw_their_own_masks():
    assert len({_training.dropout_key(5, i) for i in range(4)}) == 4
    assert _training.dropout_key(5, 0) == _training.dropout_key(5, 0)


# ---------------------------------------------------------------- continuing


def test_partial_fit_continues_a_fit_exactly_and_so_does_a_loaded_model(backend, dtype, tmp_path):
    whole, X, Y = fitted(backend, dtype, epochs=4, shuffle=True)
    part, _, _ = fitted(backend, dtype, epochs=3, shuffle=True)
    part.save(tmp_path / "m.npz")
    loaded = fastmlp.load(tmp_path / "m.npz", backend=backend)
    assert loaded.dropout == part.dropout == (0.3, 0.3)
    options = {"lr": 0.05, "batch_size": 32, "optimizer": "adam", "shuffle": True}
    part.partial_fit(X, Y, **options)
    loaded.partial_fit(X, Y, **options)
    np.testing.assert_array_equal(part.params_, whole.params_)
    np.testing.assert_array_equal(loaded.params_, whole.params_)
    assert loaded.history_ == whole.history_


def test_per_layer_rates_are_saved_as_given(tmp_path):
    model = fastmlp.MLP(SIZES, dropout=[0.1, 0.0])
    assert model.get_config()["dropout"] == [0.1, 0.0]
    assert fastmlp.MLP(SIZES, dropout=0.2).get_config()["dropout"] == 0.2
    model.save(tmp_path / "m.npz")
    assert fastmlp.load(tmp_path / "m.npz").dropout == (0.1, 0.0)


def test_files_from_before_dropout_still_load(tmp_path):
    import json
    model = fastmlp.MLP(SIZES, seed=1)
    X, Y = make_data(40, SIZES)
    model.fit(X, Y, epochs=2)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    config = json.loads(str(arrays["config"]))
    del config["dropout"]
    run = json.loads(str(arrays["run"]))
    del run["scalars"]["dropout_key"]
    arrays["config"], arrays["run"] = np.array(json.dumps(config)), np.array(json.dumps(run))
    np.savez(tmp_path / "old.npz", **arrays)
    old = fastmlp.load(tmp_path / "old.npz")
    assert old.dropout == (0.0, 0.0)
    np.testing.assert_array_equal(old.predict_proba(X), model.predict_proba(X))
    model.partial_fit(X, Y)
    old.partial_fit(X, Y)
    np.testing.assert_array_equal(old.params_, model.params_)


def test_a_file_with_a_bad_dropout_key_is_refused(tmp_path):
    import json
    model, X, Y = fitted("numpy", np.float64, epochs=1)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    run = json.loads(str(arrays["run"]))
    run["scalars"]["dropout_key"] = -3
    arrays["run"] = np.array(json.dumps(run))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(fastmlp.ModelFileError, match="dropout_key"):
        fastmlp.load(tmp_path / "bad.npz")


# ---------------------------------------------------------------- around the model


def test_onnx_equals_predict_with_dropout(backend, dtype):
    pytest.importorskip("onnxruntime")
    model, X, _ = fitted(backend, dtype)
    session = onnx_session(fastmlp.to_onnx(model))
    names = [output.name for output in session.get_outputs()]
    got = dict(zip(names, session.run(None, {session.get_inputs()[0].name: X})))
    assert_close(got["probabilities"], model.predict_proba(X), dtype, 10)
    np.testing.assert_array_equal(got["label"], model.predict(X))


@pytest.mark.parametrize("Est", ["MLPClassifier", "MLPRegressor"])
def test_estimators_train_with_dropout(backend, dtype, Est):
    pytest.importorskip("sklearn")
    from sklearn.base import clone
    cls = getattr(fastmlp, Est)
    X, Y = make_data(120, [5, 1], seed=3, dtype=dtype)
    y = Y[:, 0] if Est == "MLPClassifier" else X[:, 0] - X[:, 1]
    est = cls(hidden_layer_sizes=(16, 8), dropout=0.2, random_state=0, max_iter=20, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y)
        again = clone(est).fit(X, y)
        est.partial_fit(X, y)
    assert est.get_params()["dropout"] == 0.2 and np.isfinite(est.loss_)
    np.testing.assert_array_equal(est.predict(X), est.predict(X))
    plain = cls(hidden_layer_sizes=(16, 8), random_state=0, max_iter=20, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain.fit(X, y)
    assert not np.array_equal(again.coefs_[0], plain.coefs_[0])
    zero = cls(hidden_layer_sizes=(16, 8), dropout=0.0, random_state=0, max_iter=20, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zero.fit(X, y)
    np.testing.assert_array_equal(zero.coefs_[0], plain.coefs_[0])


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), "x", [0.1], [0.1, 2.0]])
def test_estimators_refuse_bad_rates_before_fitting(bad):
    pytest.importorskip("sklearn")
    X, Y = make_data(30, [4, 1])
    est = fastmlp.MLPClassifier(hidden_layer_sizes=(5, 5), dropout=bad, max_iter=2)
    with pytest.raises(ValueError, match="dropout"):
        est.fit(X, Y[:, 0])
    assert not hasattr(est, "_mlp")


def test_estimators_refuse_dropout_with_lbfgs():
    pytest.importorskip("sklearn")
    X, Y = make_data(30, [4, 1])
    with pytest.raises(ValueError, match="stochastic optimizer"):
        fastmlp.MLPClassifier(hidden_layer_sizes=(5,), dropout=0.5, solver="lbfgs", max_iter=2).fit(X, Y[:, 0])


def test_saved_estimators_keep_their_dropout(tmp_path):
    pytest.importorskip("sklearn")
    X, Y = make_data(60, [4, 1])
    est = fastmlp.MLPClassifier(hidden_layer_sizes=(6, 5), dropout=[0.2, 0.1], random_state=0, max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, Y[:, 0])
    from fastmlp._estimator_io import load_estimator, save_estimator
    save_estimator(est, tmp_path / "e.npz")
    loaded = load_estimator(tmp_path / "e.npz")
    assert list(loaded.dropout) == [0.2, 0.1]
    np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))


def test_the_command_line_trains_with_dropout(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("pandas")
    common = cli_train_args(tmp_path)
    status, _, _ = cli_in_process(*common, "--dropout", "0.3", capsys=capsys)
    assert status in (0, None)
    from fastmlp._estimator_io import load_estimator
    assert load_estimator(tmp_path / "m.npz").dropout == 0.3
    status, _, _ = cli_in_process(*common, "--dropout", "0.3", "0.1", capsys=capsys)
    assert status in (0, None)
    for bad, words in ((["--dropout", "1.0"], "rate in [0, 1)"), (["--dropout", "0.1", "0.2", "0.3"], "one rate"),
                       (["--dropout", "0.5", "--solver", "lbfgs"], "stochastic --solver")):
        status, _, err = cli_in_process(*common, *bad, capsys=capsys)
        assert status not in (0, None) and words in err
