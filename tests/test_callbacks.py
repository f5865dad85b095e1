"""fit(..., callback=fn, progress=True): the per-epoch record, stopping, restarts, errors,
and the tqdm bar, for MLP and the scikit-learn estimators, on both backends."""

import copy
import sys
import warnings

import numpy as np
import pytest

from _support import BACKENDS, DTYPES, assert_close, backend_module
from fastmlp import MLP


def data(n=120, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)


class Recorder:
    def __init__(self, stop_after=None):
        self.calls, self.stop_after = [], stop_after

    def __call__(self, epoch, logs):
        self.calls.append((epoch, dict(logs)))
        if self.stop_after is not None and len(self.calls) >= self.stop_after:
            return False
        return None


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_callback_sees_every_epoch_as_history_records_it(backend, dtype):
    X, y = data()
    record = Recorder()
    net = MLP([4, 6, 1], seed=0, dtype=dtype, backend=backend)
    net.fit(X, y, epochs=12, lr=0.1, lr_schedule="invscaling", power_t=0.5, validation_fraction=0.25,
            callback=record)
    epochs = [epoch for epoch, _ in record.calls]
    assert epochs == list(range(12))
    logs = [entry for _, entry in record.calls]
    assert [entry["loss"] for entry in logs] == net.history_["loss"]
    assert [entry["val_loss"] for entry in logs] == net.history_["val_loss"]
    np.testing.assert_allclose([entry["lr"] for entry in logs], [0.1 / (e + 1) ** 0.5 for e in range(12)], rtol=1e-12)
    assert all(entry["restart"] == 0 for entry in logs)
    elapsed = [entry["elapsed"] for entry in logs]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_callback_logs_agree_across_backends(dtype):
    X, y = data()
    records = {}
    for backend in BACKENDS:
        records[backend] = Recorder()
        MLP([4, 5, 1], seed=3, dtype=dtype, backend=backend).fit(
            X, y, epochs=6, batch_size=16, optimizer="adam", callback=records[backend])
    losses = {backend: [logs["loss"] for _, logs in record.calls] for backend, record in records.items()}
    assert_close(losses["cython"], losses["numpy"], np.dtype(dtype), scale=10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_returning_false_stops_after_that_epoch(backend):
    X, y = data()
    record = Recorder(stop_after=4)
    net = MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=50, callback=record)
    assert len(record.calls) == 4 and net.n_iter_ == 4
    # the weights are those after epoch 4: the same as a 4-epoch fit
    plain = MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=4)
    np.testing.assert_array_equal(net.params_, plain.params_)


@pytest.mark.parametrize("backend", BACKENDS)
def test_epochs_count_over_warm_starts_and_lbfgs_iterations(backend):
    X, y = data()
    record = Recorder()
    net = MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=3)
    net.fit(X, y, epochs=2, warm_start=True, callback=record)
    assert [epoch for epoch, _ in record.calls] == [3, 4]
    record = Recorder()
    net = MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=5, optimizer="lbfgs", batch_size=None,
                                                       callback=record)
    assert [epoch for epoch, _ in record.calls] == list(range(net.n_iter_))
    assert [logs["loss"] for _, logs in record.calls] == net.history_["loss"]
    assert all(logs["lr"] is None for _, logs in record.calls)


@pytest.mark.parametrize("backend", BACKENDS)
def test_warm_starts_append_to_the_history_in_place(backend):
    """A warm start appends its epochs to the model's history_ lists (a fit costs its own
    epochs, not the model's whole history); a copy of the model continues on lists of its own,
    and a fit that fails takes its entries back."""
    X, y = data()
    net = MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=3)
    losses = net.history_["loss"]
    net.fit(X, y, epochs=2, warm_start=True)
    net.partial_fit(X, y)
    assert net.history_["loss"] is losses and len(losses) == net.n_iter_ == 6
    whole = MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=6)
    assert losses == whole.history_["loss"]
    twin = copy.copy(net)
    twin.fit(X, y, epochs=2, warm_start=True)
    assert len(losses) == 6 and twin.history_["loss"][:6] == losses and len(twin.history_["loss"]) == 8

    def fail(epoch, logs):
        if epoch == 9:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        twin.fit(X, y, epochs=5, warm_start=True, callback=fail)
    assert len(twin.history_["loss"]) == twin.n_iter_ == 8 and len(losses) == 6


@pytest.mark.parametrize("backend", BACKENDS)
def test_restarts_tell_the_callback_which_restart(backend):
    X, y = data()
    record = Recorder()
    MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=5, n_restarts=3, callback=record)
    by_restart = {}
    for epoch, logs in record.calls:
        by_restart.setdefault(logs["restart"], []).append(epoch)
    assert by_restart == {0: list(range(5)), 1: list(range(5)), 2: list(range(5))}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_callback_leaves_the_model_as_it_was(backend):
    X, y = data()
    net = MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=2)
    before, history = net.params_.copy(), {key: list(values) for key, values in net.history_.items()}

    def fail(epoch, logs):
        if epoch == 3:
            raise RuntimeError("callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        net.fit(X, y, epochs=10, warm_start=True, callback=fail)
    np.testing.assert_array_equal(net.params_, before)
    assert net.history_ == history
    with pytest.raises(TypeError, match="callback must be callable"):
        net.fit(X, y, callback="print")
    with pytest.raises(TypeError, match="progress"):
        net.fit(X, y, progress="yes")
    np.testing.assert_array_equal(net.params_, before)


@pytest.mark.parametrize("backend", BACKENDS)
def test_without_callback_the_backend_runs_its_epochs_uninterrupted(backend, monkeypatch):
    """No callback, no bar: the backend's training loop gets no per-epoch callback (the compiled
    loop runs every epoch without taking the GIL); with one, it is called back every epoch.
    (A fit enters the loop at `_train`, past `train`'s checks: the model checked its data.)"""
    impl = backend_module(backend)
    seen = []
    original = impl._train

    def spy(token, net, params, X, Y, w, optimizer, state, losses, epochs, batch_size, rng, callback, *rest):
        seen.append(callback)
        return original(token, net, params, X, Y, w, optimizer, state, losses, epochs, batch_size, rng, callback,
                        *rest)

    monkeypatch.setattr(impl, "_train", spy)
    X, y = data()
    MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=5)
    MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=5, callback=lambda epoch, logs: None)
    assert seen[0] is None and callable(seen[1])


@pytest.mark.parametrize("backend", BACKENDS)
def test_progress_bar_on_stderr(backend, capfd):
    pytest.importorskip("tqdm")
    X, y = data()
    MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=7, validation_fraction=0.2, progress=True)
    err = capfd.readouterr().err
    assert "7/7" in err and "loss=" in err and "val_loss=" in err
    MLP([4, 6, 1], seed=0, backend=backend).fit(X, y, epochs=7)
    assert capfd.readouterr().err == ""


def test_progress_without_tqdm_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    X, y = data()
    net = MLP([4, 6, 1], seed=0)
    before = net.params_.copy()
    with pytest.raises(ImportError, match=r"fastmlp\[progress\]"):
        net.fit(X, y, epochs=3, progress=True)
    np.testing.assert_array_equal(net.params_, before)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("solver", ["adam", "sgd", "lbfgs"])
def test_estimator_callback(backend, solver):
    pytest.importorskip("sklearn")
    from fastmlp import MLPClassifier

    X, y = data(200)
    labels = np.array(["no", "yes"])[y]
    record = Recorder()
    est = MLPClassifier((8,), solver=solver, max_iter=15, random_state=0, backend=backend, callback=record,
                        tol=0, early_stopping=solver != "lbfgs", n_iter_no_change=100)
    with pytest.warns(Warning):       # ConvergenceWarning at max_iter, as scikit-learn
        est.fit(X, labels)
    assert [epoch for epoch, _ in record.calls] == list(range(est.n_iter_))
    if solver != "lbfgs":
        assert [logs["loss"] for _, logs in record.calls] == est.loss_curve_
        assert [logs["val_score"] for _, logs in record.calls] == est.validation_scores_
    with warnings.catch_warnings():
        warnings.simplefilter("error")      # a stop the callback asked for is not a convergence failure
        stopped = MLPClassifier((8,), solver=solver, max_iter=15, random_state=0, backend=backend,
                                callback=Recorder(stop_after=3)).fit(X, labels)
    assert stopped.n_iter_ == 3
    plain = MLPClassifier((8,), solver=solver, max_iter=15, random_state=0, backend=backend, tol=0,
                          early_stopping=solver != "lbfgs", n_iter_no_change=100)
    with pytest.warns(Warning):
        plain.fit(X, labels)
    np.testing.assert_array_equal(plain.predict_proba(X), est.predict_proba(X))   # the hook changes nothing


@pytest.mark.parametrize("backend", BACKENDS)
def test_estimator_progress_and_restarts(backend, capfd):
    pytest.importorskip("sklearn")
    pytest.importorskip("tqdm")
    from sklearn.base import clone

    from fastmlp import MLPRegressor

    X, y = data(150)
    record = Recorder()
    est = MLPRegressor(hidden_layer_sizes=(6,), max_iter=5, random_state=0, backend=backend, n_restarts=2, progress=True,
                       callback=record)
    assert isinstance(clone(est).get_params()["callback"], Recorder)     # a copy, as every parameter
    with pytest.warns(Warning):
        est.fit(X, y.astype(float))
    assert sorted(logs["restart"] for _, logs in record.calls) == [0] * 5 + [1] * 5
    assert "10/10" in capfd.readouterr().err
