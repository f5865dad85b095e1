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

from _support import backend_module, make_data

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
