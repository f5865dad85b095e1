"""The backends under hostile use: a diverging fit stops before its first non-finite step,
inference reads read-only and memory-mapped parameters, a misbehaving ``rng.shuffle`` and
aliased buffers are refused, and a fuzzer calls every function ``fastmlp._core`` exports
with hostile arguments in a child process (a crash fails the test instead of killing
pytest), comparing each refusal with the NumPy backend's.

Run this file as a script (``python tests/test_safety.py --fuzz SEED CALLS SECONDS LOG``) to
fuzz by hand; the log's last line names the call in flight if the child dies.
"""

import copy
import inspect
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp._registry import ACTIVATIONS, LOSSES, OPTIMIZERS, OUTPUTS
from fastmlp._spec import Network, Optimizer

from _support import BACKENDS, DTYPES, assert_close, backend_module

SENTINEL = -7.0           # losses[e] never written stays this
HUGE = {np.dtype(np.float32): 1e30, np.dtype(np.float64): 1e200}   # their squares overflow


def _data(n, sizes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    Y = rng.standard_normal((n, sizes[-1])).astype(dtype)
    return X, Y


def _params(net, dtype, seed=1):
    return (np.random.default_rng(seed).standard_normal(net.param_count()) * 0.3).astype(dtype)


def _train(backend, net, params, X, Y, optimizer, *, epochs, batch_size, callback=None, state=None, **kw):
    """train on copies-by-default; returns (params, state, losses, epochs the callback saw)."""
    params = params.copy()
    state = optimizer.new_state(params) if state is None else state
    losses, seen = np.full(epochs, SENTINEL), []

    def watch(epoch, loss):
        seen.append(epoch)
        return True if callback is None else callback(epoch, loss)

    with np.errstate(all="ignore"):
        count = backend_module(backend).train(net, params, X, Y, optimizer=optimizer, state=state, losses=losses,
                                              epochs=epochs, batch_size=batch_size, callback=watch, **kw)
    written = losses != SENTINEL      # (NaN for an epoch rolled back)
    assert count == written.sum() and written[:count].all(), f"train returned {count}; losses {losses}"
    return params, state, losses, seen


# =====================================================================================
# A. divergence: stop at the first non-finite batch loss, before its step, and roll back to
#    the start of that epoch (the end of the last one kept)
# =====================================================================================

OPTIMIZER_CASES = {"sgd": {}, "momentum": {"momentum": 0.9}, "adam": {"name": "adam"}}


@pytest.mark.parametrize("opt", OPTIMIZER_CASES.values(), ids=OPTIMIZER_CASES.keys())
def test_divergence_stops_before_the_step_of_the_first_non_finite_batch(dtype, opt):
    """Batch 3 of epoch 0 holds a row whose squared error overflows: both backends stop there,
    write a non-finite losses[0], undo the 3 steps before it (params, state and step count
    back to the start of epoch 0) and return."""
    net = Network((3, 6, 2), "leaky_relu", "identity")
    X, Y = _data(48, net.sizes, dtype)
    X[3 * 8 + 5] = HUGE[np.dtype(dtype)]
    p0, trained = _params(net, dtype), {}
    for backend in BACKENDS:
        optimizer = Optimizer(**{"lr": 0.05, **opt})
        params, state, losses, seen = _train(backend, net, p0, X, Y, optimizer, epochs=4, batch_size=8)
        assert optimizer.t == 0, backend
        assert not np.isfinite(losses[0]) and (losses[1:] == SENTINEL).all(), (backend, losses)
        assert seen == [], f"{backend}: the callback ran for a diverged epoch"
        np.testing.assert_array_equal(params, p0, err_msg=backend)
        assert not state.any(), backend
        trained[backend] = params
    assert_close(trained["cython"], trained["numpy"], dtype)


@pytest.mark.parametrize("opt", OPTIMIZER_CASES.values(), ids=OPTIMIZER_CASES.keys())
def test_divergence_in_a_later_epoch_keeps_the_losses_before_it(dtype, opt):
    """The callback plants an overflowing row (batch 2) after epoch 1: epochs 0 and 1 are
    recorded, epoch 2 stops after 2 steps with a non-finite loss, later entries untouched."""
    net = Network((4, 5, 1), "leaky_relu", "identity", l2=1e-3)
    trained = {}
    for backend in BACKENDS:
        X, Y = _data(40, net.sizes, dtype)      # 5 batches of 8
        p0 = _params(net, dtype)

        def plant(epoch, loss):
            if epoch == 1:
                X[2 * 8 + 3] = HUGE[np.dtype(dtype)]
            return True

        optimizer = Optimizer(**{"lr": 0.05, **opt})
        params, state, losses, seen = _train(backend, net, p0, X, Y, optimizer, epochs=6, batch_size=8,
                                             callback=plant)
        assert seen == [0, 1] and optimizer.t == 2 * 5, (backend, seen, optimizer.t)
        assert np.isfinite(losses[:2]).all() and not np.isfinite(losses[2]), (backend, losses)
        assert (losses[3:] == SENTINEL).all() and np.isfinite(params).all(), (backend, losses)
        # the same steps on clean data: the two epochs kept (epoch 2's steps are undone)
        X_clean, _ = _data(40, net.sizes, dtype)
        again = Optimizer(**{"lr": 0.05, **opt})
        p, s, _, _ = _train(backend, net, p0, X_clean, Y, again, epochs=2, batch_size=8)
        np.testing.assert_array_equal(params, p, err_msg=backend)
        np.testing.assert_array_equal(state, s, err_msg=backend)
        trained[backend] = params
    assert_close(trained["cython"], trained["numpy"], dtype)


def test_exploding_steps_stop_at_the_same_epoch_and_step_in_both_backends():
    """lr=1e6: the weights blow up step by step until a loss overflows (float64)."""
    net = Network((3, 8, 1), "tanh", "identity")
    X, Y = _data(64, net.sizes, np.float64)
    p0, runs = _params(net, np.float64), {}
    for backend in BACKENDS:
        optimizer = Optimizer(lr=1e6)
        params, _, losses, seen = _train(backend, net, p0, X, Y, optimizer, epochs=400, batch_size=8)
        stopped = int(np.argmax(~np.isfinite(losses)))
        assert not np.isfinite(losses[stopped]) and np.isfinite(losses[:stopped]).all(), backend
        assert (losses[stopped + 1:] == SENTINEL).all() and len(seen) == stopped, backend
        assert np.isfinite(params).all(), backend
        runs[backend] = (stopped, optimizer.t, params)
    assert runs["cython"][:2] == runs["numpy"][:2], {b: r[:2] for b, r in runs.items()}
    np.testing.assert_allclose(runs["cython"][2], runs["numpy"][2], rtol=1e-6)


# =====================================================================================
# B. inference from read-only and memory-mapped parameters
# =====================================================================================


def _inference(net, X, y, w):
    return (net.predict_proba(X), net.predict(X), net.loss(X, y, sample_weight=w),
            net.gradients(X, y, sample_weight=w))


def _assert_same(got, expected):
    proba, labels, loss, (dcoefs, dintercepts) = got
    np.testing.assert_array_equal(proba, expected[0])
    np.testing.assert_array_equal(labels, expected[1])
    assert loss == expected[2]
    for a, b in zip(dcoefs + dintercepts, expected[3][0] + expected[3][1]):
        np.testing.assert_array_equal(a, b)


def test_inference_reads_read_only_and_memory_mapped_params(backend, dtype, tmp_path):
    rng = np.random.default_rng(0)
    X, y, w = rng.standard_normal((300, 4)), rng.integers(0, 3, 300), rng.random(300) + 0.5
    net = fastmlp.MLP([4, 9, 3], output="softmax", l2=1e-3, seed=0, dtype=dtype, backend=backend)
    net.fit(X, y, epochs=3, lr=0.1)
    expected = _inference(net, X, y, w)
    net.params_.setflags(write=False)
    _assert_same(_inference(net, X, y, w), expected)

    path = tmp_path / "params.bin"
    net.params_.tofile(path)
    mapped = np.memmap(path, dtype=dtype, mode="r", shape=net.params_.shape)
    writeable = net.params_.copy()
    net._params = mapped          # the model's flat parameters (coefs_ etc. are views of them)
    assert not net.params_.flags.writeable
    _assert_same(_inference(net, X, y, w), expected)

    # the backend functions themselves, and train, which still needs writeable params
    mod, Xc = backend_module(backend), X.astype(dtype)
    Y = np.eye(3, dtype=dtype)[y]
    out, out_w = np.empty((300, 3), dtype), np.empty((300, 3), dtype)
    mod.predict_proba(net._net, mapped, Xc, out)
    mod.predict_proba(net._net, writeable, Xc, out_w)
    np.testing.assert_array_equal(out, out_w)
    grad, grad_w = np.empty_like(writeable), np.empty_like(writeable)
    assert mod.loss_gradient(net._net, mapped, Xc, Y, grad, w) == mod.loss_gradient(net._net, writeable, Xc, Y, grad_w, w)
    np.testing.assert_array_equal(grad, grad_w)
    with pytest.raises(ValueError, match="writeable"):
        mod.train(net._net, mapped, Xc, Y, optimizer=Optimizer(), state=np.zeros((1, len(mapped)), dtype),
                  losses=np.zeros(1), epochs=1, batch_size=10)


def test_read_only_params_must_still_fit(backend):
    """Read-only params get every other check: dtype, shape, contiguity."""
    mod, net = backend_module(backend), Network((2, 3, 1))
    X, out = np.zeros((4, 2)), np.empty((4, 1))
    good = np.zeros(net.param_count())
    for bad, error in [(good[:-1], ValueError), (good.astype(np.int64), TypeError),
                       (np.zeros(2 * net.param_count())[::2], ValueError), (list(good), TypeError)]:
        if isinstance(bad, np.ndarray):
            bad.setflags(write=False)
        with pytest.raises(error):
            mod.predict_proba(net, bad, X, out)


# =====================================================================================
# D. hostile shuffles and aliased buffers
# =====================================================================================


class _Shuffler:
    """An rng whose shuffle permutes, then does `misdeed` to the array (from epoch `after`)."""

    def __init__(self, misdeed, after=0):
        self.misdeed, self.after, self.calls, self.rng = misdeed, after, 0, np.random.default_rng(0)

    def shuffle(self, order):
        self.rng.shuffle(order)
        if self.calls >= self.after:
            self.misdeed(order)
        self.calls += 1


def _set(i, value):
    return lambda order: order.__setitem__(i, value)


def _raise(order):
    raise RuntimeError("shuffle failed")


MISDEEDS = {
    "index n": (lambda order: order.__setitem__(0, len(order)), IndexError),
    "index -1": (_set(-1, -1), IndexError),
    "index 2**62": (_set(3, 2**62), IndexError),
    "index -2**63": (_set(2, -(2**63)), IndexError),
    "grows": (lambda order: order.resize(len(order) + 7, refcheck=False), TypeError),
    "shrinks": (lambda order: order.resize(3, refcheck=False), TypeError),
    "reshapes": (lambda order: setattr(order, "shape", (2, len(order) // 2)), TypeError),
    "raises": (_raise, RuntimeError),
}


@pytest.mark.parametrize("misdeed", MISDEEDS, ids=MISDEEDS)
def test_a_misbehaving_shuffle_is_refused_in_both_backends(misdeed, dtype):
    """No row is gathered with a bad permutation: the same error in both backends, and the
    params are those after the last whole epoch."""
    do, error = MISDEEDS[misdeed]
    net = Network((3, 4, 1))
    X, Y = _data(20, net.sizes, dtype)
    p0, after = _params(net, dtype), {}
    for backend in BACKENDS:
        params = p0.copy()
        losses = np.full(3, SENTINEL)
        with pytest.raises(error) as raised:
            backend_module(backend).train(net, params, X, Y, optimizer=Optimizer(lr=0.1),
                                          state=np.zeros((1, len(p0)), dtype), losses=losses, epochs=3,
                                          batch_size=5, rng=_Shuffler(do, after=1))
        if error is IndexError:
            assert "rng.shuffle" in str(raised.value)
        assert np.isfinite(losses[0]) and (losses[1:] == SENTINEL).all(), (backend, losses)
        after[backend] = params
    clean = _Shuffler(lambda order: None)
    p1, _, _, _ = _train("numpy", net, p0, X, Y, Optimizer(lr=0.1), epochs=1, batch_size=5, rng=clean)
    assert_close(after["cython"], p1, dtype)
    assert_close(after["numpy"], p1, dtype)


def _overlapping(shape_a, shape_b, offset, dtype=np.float64):
    """Two C-contiguous arrays in one buffer, b starting `offset` elements into a."""
    buf = np.zeros(max(math.prod(shape_a), offset + math.prod(shape_b)) + 1, dtype)
    return buf[: math.prod(shape_a)].reshape(shape_a), buf[offset: offset + math.prod(shape_b)].reshape(shape_b)


def _aliased_calls():
    """{name: call(mod)} whose outputs share memory with an input or another output."""
    n, k, m = 4, 3, 5
    ones = np.ones
    sq = ones((n, n))
    A, Z = _overlapping((n, k), (n, m), 2)                 # Z starts inside A
    W, Z_in_W = _overlapping((n, n), (n, n), 1)           # square: Z (n, n) one element into W
    A_prev, dA_prev = _overlapping((n, k), (n, k), 1)
    dW, db = _overlapping((k, m), (m,), k * m - 1)          # db starts on dW's last element
    Zp, P = _overlapping((n, m), (n, m), m)                 # P one row below Z
    net = Network((k, 6, m))
    params, X = np.zeros(net.param_count()), np.zeros((n, k))
    X_, out_on_X = _overlapping((n, k), (n, m), 1)
    return {
        "dense_forward Z is A": lambda mod: mod.dense_forward(sq, ones((n, n)), ones(n), sq),
        "dense_forward Z overlaps A": lambda mod: mod.dense_forward(A, ones((k, m)), ones(m), Z),
        "dense_forward Z overlaps W": lambda mod: mod.dense_forward(ones((n, n)), W, ones(n), Z_in_W),
        "dense_backward dA_prev is dZ": lambda mod: mod.dense_backward(ones((n, n)), ones((n, n)), sq,
                                                                       np.empty((n, n)), np.empty(n), sq),
        "dense_backward dA_prev overlaps A_prev": lambda mod: mod.dense_backward(
            A_prev, ones((k, m)), ones((n, m)), np.empty((k, m)), np.empty(m), dA_prev),
        "dense_backward db overlaps dW": lambda mod: mod.dense_backward(ones((n, k)), ones((k, m)), ones((n, m)), dW, db),
        "dense_backward db inside input W": lambda mod: mod.dense_backward(ones((n, k)), dW, ones((n, m)),
                                                                           np.empty((k, m)), db),
        "activation A overlaps Z": lambda mod: mod.activation("tanh", Zp, P),
        "activation_backward dZ is Z": lambda mod: mod.activation_backward("tanh", sq, ones((n, n)), ones((n, n)), sq),
        "activation_backward dZ is A": lambda mod: mod.activation_backward("tanh", ones((n, n)), sq, ones((n, n)), sq),
        "leaky_relu_backward dZ is Z": lambda mod: mod.leaky_relu_backward(sq, ones((n, n)), sq),
        "output_activation P overlaps Z": lambda mod: mod.output_activation("softmax", Zp, P),
        "output_loss G overlaps Y": lambda mod: mod.output_loss("mse", ones((n, m)), Zp, P),
        "sigmoid_bce G overlaps Z": lambda mod: mod.sigmoid_bce(Zp, ones((n, m)), P),
        "predict_proba out overlaps X": lambda mod: mod.predict_proba(net, params, X_, out_on_X),
        "predict_proba out in params": lambda mod: mod.predict_proba(net, params, X, params[: n * m].reshape(n, m)),
        "loss_gradient grad is params": lambda mod: mod.loss_gradient(net, params, X, np.zeros((n, m)), params),
        "loss_gradient grad holds X": lambda mod: mod.loss_gradient(
            net, np.zeros_like(params), params[: n * k].reshape(n, k), np.zeros((n, m)), params),
    }


def _train_call(alias):
    """train with one of its outputs sharing memory with another array it is given."""
    net = Network((2, 3, 1))
    P, n = net.param_count(), 4
    arrays = {"params": np.zeros(P), "state": np.zeros((1, P)), "losses": np.zeros(2),
              "X": np.zeros((n, 2)), "Y": np.zeros((n, 1)), "sample_weight": np.ones(n)}
    out, other = alias
    size = arrays[other].size
    if arrays[out].size >= size:
        arrays[other] = arrays[out].reshape(-1)[:size].reshape(arrays[other].shape)
    else:
        arrays[out] = arrays[other].reshape(-1)[: arrays[out].size].reshape(arrays[out].shape)

    def call(mod):
        mod.train(net, arrays["params"], arrays["X"], arrays["Y"], optimizer=Optimizer(), state=arrays["state"],
                  losses=arrays["losses"], epochs=2, batch_size=2, sample_weight=arrays["sample_weight"])
    return call


# (sample weights are not in this list: the shared check hands the backends a scaled copy)
TRAIN_ALIASES = [("params", "state"), ("params", "losses"), ("state", "losses"), ("params", "X"),
                 ("params", "Y"), ("state", "X"), ("state", "Y"), ("losses", "X"), ("losses", "Y")]


@pytest.mark.parametrize("case", [*_aliased_calls(), *(f"train {a} in {b}" for a, b in TRAIN_ALIASES)])
def test_outputs_sharing_memory_with_inputs_are_refused(backend, case):
    if case.startswith("train "):
        out, other = case.split()[1::2]
        call = _train_call((out, other))
    else:
        call = _aliased_calls()[case]
    with pytest.raises(ValueError, match="shares memory"):
        call(backend_module(backend))


IN_PLACE = {
    "activation A is Z": (lambda mod, Z, Y: mod.activation("gelu", Z, Z), lambda mod, Z, Y: mod.activation("gelu", Z, np.empty_like(Z))),
    "softmax P is Z": (lambda mod, Z, Y: mod.output_activation("softmax", Z, Z),
                       lambda mod, Z, Y: mod.output_activation("softmax", Z, np.empty_like(Z))),
    "activation_backward dZ is dA": (
        lambda mod, Z, Y: mod.activation_backward("tanh", Y, np.tanh(Y), Z, Z),
        lambda mod, Z, Y: mod.activation_backward("tanh", Y, np.tanh(Y), Z, np.empty_like(Z))),
    "output_loss G is Z": (lambda mod, Z, Y: (mod.output_loss("cross_entropy", Z, Y, Z), Z)[1],
                           lambda mod, Z, Y: (mod.output_loss("cross_entropy", Z, Y, G := np.empty_like(Z)), G)[1]),
    "output_loss G is Y": (lambda mod, Z, Y: (mod.output_loss("bce", Z, Y, Y), Y)[1],
                           lambda mod, Z, Y: (mod.output_loss("bce", Z, Y, G := np.empty_like(Z)), G)[1]),
}


@pytest.mark.parametrize("case", IN_PLACE, ids=IN_PLACE)
def test_elementwise_kernels_still_work_exactly_in_place(backend, dtype, case):
    in_place, separate = IN_PLACE[case]
    mod, rng = backend_module(backend), np.random.default_rng(0)
    Z, Y = rng.standard_normal((5, 4)).astype(dtype), rng.random((5, 4)).astype(dtype)
    expected = separate(mod, Z.copy(), Y.copy())
    np.testing.assert_array_equal(in_place(mod, Z.copy(), Y.copy()), expected)


# =====================================================================================
# C2. a fit's loop runs unchecked only on what the fit checked
# =====================================================================================


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_unchecked_training_loop_refuses_any_caller_but_fit(backend):
    """`_train` (the loop behind `train`'s checks) runs only with the token that `train` and a
    model's fit hold; anything else is refused before a byte is touched."""
    from fastmlp import _training

    net = Network((2, 3, 1))
    params, state, losses = np.ones(net.param_count()), np.zeros((1, net.param_count())), np.full(2, -np.inf)
    X, Y = np.zeros((4, 5)), np.zeros((4, 1))          # X of the wrong width: never read
    for token in (None, object(), "CHECKED", _training):
        with pytest.raises(TypeError, match="call train"):
            backend_module(backend)._train(token, net, params, X, Y, None, Optimizer(), state, losses, 2, 4,
                                           None, None, None)
    assert (params == 1).all() and (state == 0).all() and (losses == -np.inf).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bad", ["X None", "Y list", "Y float32/64", "params read-only", "state 1-d",
                                 "losses float32", "X Fortran", "w wrong length", "batch 0"])
def test_the_compiled_loop_guards_its_arrays(dtype, bad):
    """Even with the token, the compiled loop reads its arrays through NumPy's C API only
    after checking their type, dtype, dimensions, layout, writeability and extents: a
    wrong one raises (TypeError or ValueError) instead of being read, and nothing is written."""
    from fastmlp import _core, _training

    net = Network((2, 3, 1))
    P, other = net.param_count(), np.float32 if dtype == np.float64 else np.float64
    args = dict(params=np.ones(P, dtype), X=np.zeros((4, 2), dtype), Y=np.zeros((4, 1), dtype), w=None,
                state=np.zeros((1, P), dtype), losses=np.full(2, -np.inf), batch=4)
    if bad == "X None":
        args["X"] = None
    elif bad == "Y list":
        args["Y"] = [[0.0]] * 4
    elif bad == "Y float32/64":
        args["Y"] = args["Y"].astype(other)
    elif bad == "params read-only":
        args["params"].flags.writeable = False
    elif bad == "state 1-d":
        args["state"] = np.zeros(2 * P, dtype)
    elif bad == "losses float32":
        args["losses"] = np.full(2, -np.inf, np.float32)
    elif bad == "X Fortran":
        args["X"] = np.asfortranarray(np.zeros((4, 2), dtype))
    elif bad == "w wrong length":
        args["w"] = np.ones(3, dtype)
    else:
        args["batch"] = 0
    a = args
    with pytest.raises((TypeError, ValueError)):
        _core._train(_training.CHECKED, net, a["params"], a["X"], a["Y"], a["w"], Optimizer(), a["state"],
                     a["losses"], 2, a["batch"], None, None, None, 1)
    assert (a["params"] == 1).all() and (a["state"] == 0).all() and (a["losses"] == -np.inf).all()


class _ReshapingLabels:
    """Labels whose conversion reshapes the caller's X in place, after the fit checked X."""

    def __init__(self, y, X):
        self.y, self.X = y, X

    def __array__(self, dtype=None, copy=None):
        self.X.shape = (self.X.size, 1)
        return np.asarray(self.y, dtype=dtype)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_trains_on_the_arrays_it_checked_whatever_the_caller_does_to_its_own(backend):
    """The model trains on views of its own of the arrays it checked (the backend's checks are
    skipped for them): a caller reshaping its X in place after the check changes nothing."""
    X, y = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]), np.array([0, 1, 1, 0])
    plain = fastmlp.MLP([2, 4, 1], seed=0, backend=backend).fit(X.copy(), y, epochs=20, lr=0.1)
    sneaky_X = X.copy()
    model = fastmlp.MLP([2, 4, 1], seed=0, backend=backend).fit(sneaky_X, _ReshapingLabels(y, sneaky_X),
                                                               epochs=20, lr=0.1)
    assert sneaky_X.shape == (8, 1)
    np.testing.assert_array_equal(model.params_, plain.params_)
    assert model.history_ == plain.history_


# =====================================================================================
# D. fuzzing every function fastmlp._core exports, in a child process
# =====================================================================================

FUZZ_SEED, FUZZ_CALLS, FUZZ_SECONDS = 20260128, 20000, 15.0


@pytest.mark.slow     # (a subprocess)
def test_fuzz_every_core_function_in_a_child_process(tmp_path):
    backend_module("cython")  # (skips on a pure-Python install)
    log = tmp_path / "calls.log"
    child = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--fuzz", str(FUZZ_SEED), str(FUZZ_CALLS),
         str(FUZZ_SECONDS), str(log)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent,
    )
    last = log.read_text().splitlines()[-1:] if log.exists() else []
    assert child.returncode == 0, (
        f"the fuzzing child {'died of signal ' + str(-child.returncode) if child.returncode < 0 else 'failed'}"
        f" during call {last} (rerun: python {__file__} --fuzz {FUZZ_SEED} {FUZZ_CALLS} {FUZZ_SECONDS} LOG)\n"
        f"{child.stderr[-4000:]}"
    )
    summary = json.loads(child.stdout.splitlines()[-1])
    assert summary["calls"] >= 2000, summary
    assert set(summary["called"]) == set(summary["functions"]), summary
    assert summary["refused"] > summary["calls"] // 4 and summary["ok"] > summary["calls"] // 10, summary
    assert not summary["mismatches"], "exception types differing between the backends:\n" + "\n".join(
        summary["mismatches"][:30])


# ------------------------------------------------------------------ the child's side


class _Context:
    """One fuzz case: a small network and valid arguments for every parameter name the
    backends use (deterministic from `case`), and hostile replacements for some of them."""

    def __init__(self, case):
        self.r, self.g = random.Random(case), np.random.default_rng(case)
        self.tampered = False       # a Network changed behind its back: see `_fuzz_main`
        r = self.r
        self.dtype = np.dtype(r.choice([np.float32, np.float64]))
        self.n, self.k, self.m = r.choice([1, 2, 3, 5, 8]), r.randint(1, 4), r.randint(1, 4)
        output = r.choice(OUTPUTS)
        out_width = max(2, self.m) if output == "softmax" else self.m
        sizes = (self.k, *(r.randint(1, 5) for _ in range(r.randint(0, 2))), out_width)
        self.net = Network(sizes, tuple(r.choice(list(ACTIVATIONS)) for _ in sizes[2:]), output,
                           negative_slope=r.uniform(0, 0.3), l2=r.choice([0.0, 1e-3]))
        self.epochs = r.choice([0, 1, 2, 3])
        name = r.choice(list(OPTIMIZERS))
        self.optimizer = Optimizer(name, lr=r.choice([0.01, 0.1, 1e3]), momentum=r.choice([0.0, 0.9]))
        self.batch_size = self.n if name == "rprop" else r.randint(1, self.n + 2)

    def array(self, *shape):
        return (self.g.standard_normal(shape) * 0.5).astype(self.dtype)

    def valid(self, name, params):
        """A valid value for parameter `name` of a function taking `params`."""
        n, k, m, net = self.n, self.k, self.m, self.net
        whole = "net" in params
        width = net.sizes[-1] if whole else m
        shapes = {
            "A": (n, k) if "W" in params else (n, m), "W": (k, m), "b": (m,), "Z": (n, m),
            "A_prev": (n, k), "dZ": (n, m), "dW": (k, m), "db": (m,), "dA_prev": (n, k), "dA": (n, m),
            "P": (n, m), "G": (n, m), "Y": (n, width), "X": (n, net.sizes[0]), "out": (n, width),
            "params": (net.param_count(),), "grad": (net.param_count(),), "state": (self.optimizer.n_state, net.param_count()),
        }
        if name in shapes:
            value = self.array(*shapes[name])
            return np.zeros_like(value) if name == "state" else value
        values = {
            "name": lambda: self.r.choice(list(ACTIVATIONS)), "output": lambda: self.r.choice(OUTPUTS),
            "loss": lambda: self.r.choice(list(LOSSES)), "negative_slope": lambda: self.r.uniform(0, 0.3),
            "net": lambda: net, "optimizer": lambda: copy.copy(self.optimizer),
            "losses": lambda: np.full(self.epochs, SENTINEL), "epochs": lambda: self.epochs,
            "batch_size": lambda: self.batch_size, "capacity": lambda: self.r.randint(1, 9),
            "gather": lambda: self.r.random() < 0.5,
            "rng": lambda: self.r.choice([None, np.random.default_rng(self.r.randrange(99))]),
            "sample_weight": lambda: self.r.choice([None, self.g.random(n) + 0.1]),
            "callback": lambda: self.r.choice([None, lambda epoch, loss: True]),
            "stop": lambda: self.r.choice([None, threading.Event()]),
        }
        return values[name]() if name in values else self.hostile(name, None, {})

    # ---------------------------------------------------------------- hostile values

    GENERIC = [None, 0, -1, 1, True, 2**31, 2**63, -(2**63), 2**64, 10**30, 1.5, math.nan, math.inf, -math.inf,
               "relu", "", b"x", [], [[1.0, 2.0]], (1, 2), {}, Ellipsis, np.float64("nan"), np.int64(3)]

    def hostile(self, name, value, others):
        r = self.r
        makers = [lambda: r.choice(self.GENERIC), lambda: object()]
        if isinstance(value, np.ndarray):
            makers += [lambda: self.bad_array(value, others)] * 6
        specific = {"net": self.bad_net, "optimizer": self.bad_optimizer, "rng": self.bad_rng,
                    "callback": self.bad_callback, "stop": self.bad_stop,
                    "epochs": self.bad_int, "batch_size": self.bad_int, "capacity": self.bad_int}
        if name in specific:
            makers += [lambda: specific[name](others)] * 6
        return r.choice(makers)()

    def bad_int(self, others):
        return self.r.choice([0, -1, -(2**62), 2**31, 2**62, 2**63 - 1, 2**63, 2**200, True, 2.0, "3",
                              np.int64(2), np.uint64(2**64 - 1), None])

    def bad_array(self, a, others):
        r = self.r
        kinds = [
            lambda: a.astype(r.choice([np.int64, np.bool_, np.complex128, np.float16, object, "U3"])),
            lambda: a.astype(np.float32 if a.dtype == np.float64 else np.float64),
            lambda: self.read_only(a), lambda: np.asfortranarray(a) if a.ndim == 2 else a[::-1],
            lambda: np.repeat(a, 2, axis=-1)[..., ::2] if a.size else a,
            lambda: np.broadcast_to(a.reshape(-1)[:1], a.shape) if a.size else a,
            lambda: np.zeros(tuple(max(0, s + r.choice([-1, 1, 5])) for s in a.shape), a.dtype),
            lambda: np.zeros((0,) * a.ndim, a.dtype), lambda: a.reshape(-1), lambda: a[None],
            lambda: a.T.copy(), lambda: np.full_like(a, r.choice([math.nan, math.inf, -math.inf, 1e38, 3e38])),
            lambda: a.tolist(), lambda: np.ma.masked_array(a), lambda: self.alias(a, others),
            lambda: self.alias(a, others), lambda: np.matrix(a) if a.ndim == 2 else a,
        ]
        return r.choice(kinds)()

    @staticmethod
    def read_only(a):
        a = a.copy()
        a.setflags(write=False)
        return a

    def alias(self, a, others):
        """`a`'s shape and dtype in the memory of another argument (possibly offset)."""
        pool = [o for o in others.values() if isinstance(o, np.ndarray) and o.dtype == a.dtype
                and o.flags.c_contiguous and o.size >= a.size]
        if not pool:
            return a
        other = np.asarray(self.r.choice(pool)).reshape(-1)     # (a matrix stays 2-D)
        offset = self.r.randint(0, other.size - a.size)
        return other[offset: offset + a.size].reshape(a.shape)

    def bad_net(self, others):
        r, net = self.r, self.net
        fields = {"sizes": [(), (3,), (net.sizes[0], 0, net.sizes[-1]), (net.sizes[0], -3, net.sizes[-1]),
                            ("a", 2), (net.sizes[0], 2**40, net.sizes[-1]), (net.sizes[0], 2**31, 1),
                            (2**62, 2**62, 2), (net.sizes[0], 2.5, net.sizes[-1]), [1, 2], None, 5],
                  "activations": [("bogus",) * (len(net.sizes) - 2), (), ("relu",) * 9, None, "tanh"],
                  "output": ["bogus", None, 3, "softmax", "identity"], "loss": ["bogus", None, "mse", "bce"],
                  "negative_slope": ["x", math.nan, None, 1e300], "l2": [-1.0, math.nan, "x", None, 1e300]}
        kind = r.randrange(4)
        self.tampered = kind < 2
        if kind == 0:               # a frozen Network with a field changed behind its back
            bad = copy.copy(net)
            field = r.choice(list(fields))
            object.__setattr__(bad, field, r.choice(fields[field]))
            return bad
        if kind == 1:               # a subclass whose methods lie
            lie = r.choice([0, 1, net.param_count() - 1, net.param_count() + 1, 10**6, -5])

            class Lying(Network):
                def param_count(self):
                    return lie

                def layer_shapes(self):
                    return [(2**40, 2**40)] if lie == 10**6 else super().layer_shapes()

            return Lying(net.sizes, net.activations, net.output, net.loss)
        if kind == 2:               # the right attributes on the wrong type
            class Duck:
                pass

            duck = Duck()
            duck.__dict__.update({f: getattr(net, f) for f in fields}, n_layers=net.n_layers)
            return duck
        return r.choice([None, "net", 3, object(), Network])

    def bad_optimizer(self, others):
        r, opt = self.r, copy.copy(self.optimizer)
        if r.random() < 0.7:
            field, values = r.choice([("name", ["bogus", None, 3]), ("lr", [-1.0, 0.0, math.nan, "x", 1e308]),
                                      ("t", [-5, 2**70, 1.5, None]), ("momentum", [1.5, 2.0, -0.5]),
                                      ("beta1", [1.0, math.nan]), ("eps", [0.0, -1.0]), ("nesterov", ["yes", 1]),
                                      ("step_min", [100.0]), ("etaplus", [0.5])])
            setattr(opt, field, r.choice(values))
            return opt
        flips = iter(range(10**6))

        class Fickle(Optimizer):
            @property
            def fused(self):              # a different answer every time it is asked
                return next(flips) % 2 == 0

            @property
            def full_batch(self):
                return False

        return Fickle(r.choice(list(OPTIMIZERS)), lr=0.1)

    def bad_rng(self, others):
        r = self.r
        misdeeds = [lambda o: o.__setitem__(0, len(o)), lambda o: o.__setitem__(-1, -1),
                    lambda o: o.__setitem__(0, 2**62), lambda o: o.resize(len(o) + 3, refcheck=False),
                    lambda o: o.resize(1, refcheck=False), lambda o: o.fill(len(o) - 1),
                    lambda o: setattr(o, "shape", (1, len(o))), _raise, lambda o: o[::-1].sort()]
        kind = r.randrange(3)
        if kind == 0:
            return _Shuffler(r.choice(misdeeds), after=r.randint(0, 2))
        if kind == 1:
            class NotCallable:
                shuffle = 3
            return NotCallable()
        return r.choice([np.random.default_rng(0), np.random.RandomState(0), random.Random(0), "rng"])

    def bad_callback(self, others):
        r = self.r
        opt = others.get("optimizer")
        params = others.get("params")
        X = others.get("X")

        def set_lr(epoch, loss):
            if isinstance(opt, Optimizer):
                opt.lr = r.choice([math.nan, -1.0, "x", 1e308, None])
            return True

        def poison(epoch, loss):
            for a in (params, X):
                if isinstance(a, np.ndarray) and a.flags.writeable and a.dtype.kind == "f":
                    a.reshape(-1)[:1] = r.choice([math.nan, math.inf, 1e30])
            return True

        def fails(epoch, loss):
            raise RuntimeError("callback failed")

        return r.choice([set_lr, poison, fails, lambda e, l: None, lambda e, l: np.ones(2),
                         lambda: True, 3, "callback"])

    def bad_stop(self, others):
        class Raises:
            def is_set(self):
                raise RuntimeError("is_set failed")

        class Ambiguous:
            def is_set(self):
                return np.ones(2)

        done = threading.Event()
        done.set()
        return self.r.choice([object(), Raises(), Ambiguous(), done, 3, "stop"])


def _parameters(func):
    try:
        return [p.name for p in inspect.signature(func).parameters.values()], inspect.signature(func)
    except (TypeError, ValueError):          # e.g. a cdef class: take __cinit__'s names from its doc
        return ["net", "capacity", "gather"], None


def _fuzz_args(func, case):
    """(args, kwargs, tampered) for `func`: valid values, then 1-3 of them replaced by hostile
    ones; `tampered` when the network is a Network whose fields or methods lie."""
    ctx = _Context(case)
    names, signature = _parameters(func)
    values = {name: ctx.valid(name, names) for name in names}
    for name in ctx.r.sample(names, min(len(names), ctx.r.choice([0, 1, 1, 2, 3]))):
        values[name] = ctx.hostile(name, values[name], values)
    if signature is None:
        return [values[name] for name in names], {}, ctx.tampered
    args, kwargs = [], {}
    for p in signature.parameters.values():
        if p.kind == p.KEYWORD_ONLY:
            kwargs[p.name] = values[p.name]
        else:
            args.append(values[p.name])
    return args, kwargs, ctx.tampered


def _outcome(func, case):
    """('ok' or the name of the exception the call raised, tampered); the arguments are
    rebuilt from `case` for every call."""
    args, kwargs, tampered = _fuzz_args(func, case)
    try:
        func(*args, **kwargs)
    except Exception as exc:          # noqa: BLE001 - any Python exception is a fine answer
        return type(exc), tampered
    return None, tampered


def _agree(a, b):
    """Two outcomes (None: returned; else the exception class) agree when both returned or
    one exception class derives from the other (NumPy's UFuncTypeError is a TypeError)."""
    return a is b or (a is not None and b is not None and (issubclass(a, b) or issubclass(b, a)))


def _name(outcome):
    return "ok" if outcome is None else outcome.__name__


def _fuzz_main(seed, n_calls, seconds, log_path):
    import faulthandler

    faulthandler.enable()
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
    core, ref = backend_module("cython"), backend_module("numpy")
    functions = sorted(name for name, obj in vars(core).items()
                       if callable(obj) and getattr(obj, "__module__", None) == core.__name__)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    r, start = random.Random(seed), time.monotonic()
    calls, counts, called, mismatches = 0, {"ok": 0, "refused": 0, "tampered_differ": 0}, set(), []
    while calls < n_calls and time.monotonic() - start < seconds:
        name, case = functions[calls % len(functions)], r.randrange(2**32)
        os.write(log, f"{name} case {case}\n".encode())
        got, tampered = _outcome(getattr(core, name), case)
        counts["ok" if got is None else "refused"] += 1
        called.add(name)
        if hasattr(ref, name):
            expected, _ = _outcome(getattr(ref, name), case)
            # A tampered Network is not compared: each backend reads only the fields and
            # methods it needs (the compiled plan all of them, checking its own numbers), so
            # which lie is noticed, and how, differs; neither backend may crash.
            if not _agree(expected, got) and tampered:
                counts["tampered_differ"] += 1
            elif not _agree(expected, got):
                mismatches.append(f"{name} case {case}: cython {_name(got)}, numpy {_name(expected)}")
        calls += 1
    os.close(log)
    print(json.dumps({"calls": calls, "seconds": round(time.monotonic() - start, 1), "functions": functions,
                      "called": sorted(called), **counts, "mismatches": mismatches}))


if __name__ == "__main__" and sys.argv[1:2] == ["--fuzz"]:
    _fuzz_main(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
