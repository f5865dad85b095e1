"""Ctrl-C, signal handlers and train's `stop` event end training within a few batches, not
at the end of an epoch, with the parameters after a whole number of steps.

The signal tests run a fit in a child process (never signalling pytest itself): a
100-4096-1 network on 200,000 rows, whose one epoch takes several seconds on a 2-core
machine; the child reports the moment it caught the exception, how many steps it took,
and whether its parameters equal that many steps replayed from the start.
"""

import json
import os
import select
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import fastmlp._training
from fastmlp._spec import Network, Optimizer

from _support import BACKENDS, backend_module

ROWS, BATCH = 200_000, 200          # 1000 batches of a 100-4096-1 network: seconds per epoch
SIGNAL_AFTER = 1.0                  # s after the child starts fitting (its checks take ~0.1 s)
LATENCY_LIMIT = 1.0                 # s; the epoch takes several
WAIT_LIMIT = 5.0                    # s after the signal before a silent child is killed

CHILD = r"""
import _thread, json, signal, sys, threading, time
import numpy as np
import fastmlp

cfg = json.loads(sys.argv[1])
X = np.random.default_rng(0).standard_normal((cfg["rows"], 100), dtype=np.dtype(cfg["dtype"]).type)
y = (X[:, 0] > 0).astype(np.int64)
if cfg["sigterm_exits"]:
    def exit_on_term(signum, frame):
        raise SystemExit("terminated")
    signal.signal(signal.SIGTERM, exit_on_term)
fired = []
if cfg["interrupt_main_after"] is not None:
    def interrupt():
        fired.append(time.perf_counter())
        _thread.interrupt_main()
    threading.Timer(cfg["interrupt_main_after"], interrupt).start()

def fit(net, X, y):
    net.fit(X, y, epochs=1, lr=0.01, batch_size=cfg["batch"], shuffle=False, n_restarts=cfg["restarts"])

net = fastmlp.MLP([100, 4096, 1], seed=0, dtype=cfg["dtype"], backend=cfg["backend"])
print("started", flush=True)
start = time.perf_counter()
try:
    fit(net, X, y)
    print(json.dumps({"outcome": "finished", "seconds": time.perf_counter() - start}), flush=True)
    sys.exit(0)
except (KeyboardInterrupt, SystemExit) as exc:
    caught = time.perf_counter()
    print(json.dumps({"outcome": type(exc).__name__, "caught": caught,
                      "fired": fired[0] if fired else None, "seconds": caught - start}), flush=True)
report = {"finite": bool(np.isfinite(net.params_).all()), "history": len(net.history_["loss"])}
if cfg["restarts"] == 1:
    steps = net._run.optimizer.t              # steps taken (the run's optimizer counts them)
    report["steps"] = steps
    report["loss_finite"] = bool(np.isfinite(net.loss(X[:1000], y[:1000])))
    if 0 < steps:                             # replay: one epoch on the rows of those steps
        again = fastmlp.MLP([100, 4096, 1], seed=0, dtype=cfg["dtype"], backend=cfg["backend"])
        fit(again, X[: steps * cfg["batch"]], y[: steps * cfg["batch"]])
        report["replayed"] = bool(np.array_equal(again.params_, net.params_))
print(json.dumps(report), flush=True)
"""


def _readline(child, seconds):
    """The child's next stdout line (unbuffered pipe), or '' if none comes within `seconds`."""
    ready, _, _ = select.select([child.stdout], [], [], seconds)
    return child.stdout.readline().decode() if ready else ""


def _run_child(*, backend="cython", dtype="float64", send=None, restarts=1, interrupt_main_after=None):
    """Start the child, deliver `send` SIGNAL_AFTER s after it starts fitting (or let its
    timer call _thread.interrupt_main()), and return (caught line, report line, latency).
    A child that has not caught the exception WAIT_LIMIT s later is killed (latency inf)."""
    backend_module(backend)  # (the compiled backend's tests skip on a pure-Python install)
    cfg = {"rows": ROWS, "batch": BATCH, "dtype": dtype, "backend": backend, "restarts": restarts,
           "sigterm_exits": send == signal.SIGTERM, "interrupt_main_after": interrupt_main_after}
    child = subprocess.Popen([sys.executable, "-c", CHILD, json.dumps(cfg)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, bufsize=0)
    try:
        assert _readline(child, 120).strip() == "started", child.stderr.read().decode()
        sent = None
        if send is not None:
            time.sleep(SIGNAL_AFTER)
            sent = time.perf_counter()
            os.kill(child.pid, send)
        caught = json.loads(_readline(child, SIGNAL_AFTER + WAIT_LIMIT) or "{}")
        received = time.perf_counter()
        if not caught:
            return {"outcome": "no answer"}, {}, float("inf")
        report = json.loads(_readline(child, 120) or "{}")
        child.wait(timeout=120)
        assert child.returncode == 0, child.stderr.read().decode()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    if send is not None:
        latency = received - sent
    else:
        latency = caught["caught"] - caught["fired"] if caught.get("fired") else None
    return caught, report, latency


def _assert_stopped_mid_epoch(caught, report, latency, exception, whole_steps=True):
    assert caught["outcome"] == exception, caught
    steps = report["steps"]
    n_batches = ROWS // BATCH
    assert 0 < steps < n_batches, f"interrupted after {steps} of {n_batches} steps: not inside the epoch"
    epoch = caught["seconds"] * n_batches / steps          # what the whole epoch would take
    assert latency < min(LATENCY_LIMIT, epoch / 3), (
        f"{latency:.3f} s from the signal to {exception} (one epoch: ~{epoch:.1f} s)")
    assert report["finite"] and report["loss_finite"], report
    assert report["history"] == 0, "the partial epoch's loss was recorded"
    if whole_steps:
        assert report["replayed"], f"the params are not those after {steps} whole steps"


@pytest.mark.slow     # (a subprocess)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ctrl_c_stops_a_compiled_epoch_within_a_few_batches(dtype):
    caught, report, latency = _run_child(dtype=dtype, send=signal.SIGINT)
    _assert_stopped_mid_epoch(caught, report, latency, "KeyboardInterrupt")


@pytest.mark.slow     # (a subprocess)
def test_ctrl_c_stops_a_numpy_epoch_within_a_batch():
    """Python raises KeyboardInterrupt at the next bytecode, which may fall between two
    layers' updates of a step: the NumPy backend's params are finite but not always whole
    steps (the compiled backend's are)."""
    caught, report, latency = _run_child(backend="numpy", send=signal.SIGINT)
    _assert_stopped_mid_epoch(caught, report, latency, "KeyboardInterrupt", whole_steps=False)


@pytest.mark.slow     # (a subprocess)
def test_a_sigterm_handler_raising_systemexit_stops_the_epoch():
    caught, report, latency = _run_child(dtype="float32", send=signal.SIGTERM)
    _assert_stopped_mid_epoch(caught, report, latency, "SystemExit")


@pytest.mark.slow     # (a subprocess)
def test_ctrl_c_stops_restarts_running_in_threads():
    """The main thread waits for two restarts training in worker threads (where no signal
    is delivered); Ctrl-C there sets their `stop`, and each ends within a few batches."""
    caught, report, latency = _run_child(dtype="float32", send=signal.SIGINT, restarts=2)
    assert caught["outcome"] == "KeyboardInterrupt", caught
    assert latency < LATENCY_LIMIT, f"{latency:.3f} s from SIGINT to KeyboardInterrupt with restarts"
    assert report["finite"], report


@pytest.mark.slow     # (a subprocess)
def test_interrupt_main_stops_restarts_running_in_threads():
    """_thread.interrupt_main() from a timer thread (no real signal, so a main thread blocked
    on a lock does not wake for it) during fit(n_restarts=2)."""
    caught, report, latency = _run_child(dtype="float32", restarts=2, interrupt_main_after=SIGNAL_AFTER)
    assert latency < LATENCY_LIMIT, (
        f"{latency:.3f} s from _thread.interrupt_main() to KeyboardInterrupt with restarts: the main "
        "thread must wait for the restarts in a loop with a timeout (an untimed lock wait only wakes "
        "for a real signal), and fastmlp._training must pass `stop=` to train")
    assert caught["outcome"] == "KeyboardInterrupt" and report["finite"], (caught, report)


# =====================================================================================
# train's `stop` event, in process (both backends)
# =====================================================================================


def _long_job(dtype, rows=20_000):
    net = Network((100, 1024, 1))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((rows, 100)).astype(dtype)
    Y = (X[:, :1] > 0).astype(dtype)
    params = (rng.standard_normal(net.param_count()) * 0.05).astype(dtype)
    return net, X, Y, params


def _train(backend, net, params, X, Y, optimizer, epochs, **kw):
    losses = np.full(epochs, -7.0)
    count = backend_module(backend).train(net, params, X, Y, optimizer=optimizer,
                                          state=optimizer.new_state(params), losses=losses,
                                          epochs=epochs, batch_size=BATCH, **kw)
    assert (losses[:count] != -7.0).all() and (losses[count:] == -7.0).all(), (count, losses)  # returns: written
    return losses


class _StopAfter:
    """A `stop` whose is_set() turns True from its (k+1)-th question on."""

    def __init__(self, k):
        self.k, self.asked = k, 0

    def is_set(self):
        self.asked += 1
        return self.asked > self.k


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_event_ends_train_promptly(backend, dtype):
    """A threading.Event set 0.3 s into minutes of work: train returns within a few batches."""
    net, X, Y, p0 = _long_job(dtype)
    params, optimizer, stop = p0.copy(), Optimizer("adam", lr=1e-3), threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    start = time.perf_counter()
    losses = _train(backend, net, params, X, Y, optimizer, 50, stop=stop)
    took = time.perf_counter() - start
    timer.join()
    assert took < 0.3 + LATENCY_LIMIT, f"train returned {took:.2f} s after it started, 0.3 s after stop.set()"
    done = optimizer.t // (len(X) // BATCH)       # whole epochs
    assert np.isfinite(params).all()
    assert np.isfinite(losses[:done]).all() and (losses[done:] == -7.0).all(), (optimizer.t, losses[: done + 2])


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_mid_epoch_leaves_whole_steps(backend, dtype, optimizer):
    """Stopped inside epoch 1: epoch 0's loss is written, epoch 1's is not, and params and
    state equal the same number of steps taken on their own."""
    net, X, Y, p0 = _long_job(dtype, rows=2_000)       # 10 batches per epoch
    params, opt = p0.copy(), Optimizer(optimizer, lr=0.01)
    state = opt.new_state(params)
    losses = np.full(3, -7.0)
    backend_module(backend).train(net, params, X, Y, optimizer=opt, state=state, losses=losses, epochs=3,
                                  batch_size=BATCH, stop=_StopAfter(15))
    assert 10 < opt.t < 20, f"{opt.t} steps: the stop did not land inside epoch 1"
    assert np.isfinite(losses[0]) and (losses[1:] == -7.0).all(), losses
    again, replay = p0.copy(), Optimizer(optimizer, lr=0.01)
    state_again = replay.new_state(again)
    rows = (opt.t - 10) * BATCH
    for X_part, Y_part in ((X, Y), (X[:rows], Y[:rows])):
        backend_module(backend).train(net, again, X_part, Y_part, optimizer=replay, state=state_again,
                                      losses=np.empty(1), epochs=1, batch_size=BATCH)
    assert replay.t == opt.t
    np.testing.assert_array_equal(params, again)
    np.testing.assert_array_equal(state, state_again)


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_already_set_runs_nothing_and_stop_between_epochs(backend):
    net, X, Y, p0 = _long_job(np.float64, rows=400)
    params, optimizer, stop = p0.copy(), Optimizer(lr=0.01), threading.Event()
    stop.set()
    losses = _train(backend, net, params, X, Y, optimizer, 3, stop=stop)
    assert optimizer.t == 0 and (losses == -7.0).all() and np.array_equal(params, p0)

    stop.clear()
    seen = []

    def callback(epoch, loss):          # sets stop after epoch 1: epoch 2 never starts
        seen.append(epoch)
        if epoch == 1:
            stop.set()
        return True

    losses = _train(backend, net, params, X, Y, optimizer, 5, stop=stop, callback=callback)
    assert seen == [0, 1] and optimizer.t == 2 * 2, (seen, optimizer.t)
    assert np.isfinite(losses[:2]).all() and (losses[2:] == -7.0).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_stop_must_have_is_set(backend):
    net, X, Y, p0 = _long_job(np.float64, rows=10)
    with pytest.raises(TypeError, match="stop"):
        _train(backend, net, p0.copy(), X, Y, Optimizer(), 1, stop=object())
