"""Nothing wrong, nothing lost, nothing hangs: restarts, divergence, sample weights, stops."""

import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc

import numpy as np
import pytest

import fastmlp
from _support import make_data

SIZES = [4, 12, 1]


def data(n=48, seed=0, dtype=np.float64):
    return make_data(n, SIZES, seed=seed, dtype=dtype)


# ---------------------------------------------------------------- restarts


RESTART_OPTIONS = [
    dict(optimizer="sgd", momentum=0.9, batch_size=8),
    dict(optimizer="adam", lr=0.01, batch_size=8, lr_schedule="plateau", validation_fraction=0.25),
    dict(optimizer="adamw", lr=0.01, batch_size=16, early_stopping=True, patience=2),
    dict(optimizer="rprop", batch_size=None),
]


@pytest.mark.parametrize("options", RESTART_OPTIONS, ids=lambda o: o["optimizer"])
def test_restarts_are_bit_identical_on_any_core_count(backend, options, monkeypatch):
    """Each restart owns its optimizer state, schedule and stream: the same seed gives the
    same model every time, whether the restarts run side by side or queue for one core."""
    X, Y = data()
    fit = dict(epochs=6, n_restarts=4, **{"lr": 0.05, **options})
    first = fastmlp.MLP(SIZES, seed=5, backend=backend).fit(X, Y, **fit)
    for cores in (1, 2, 3, 8) * 3:
        monkeypatch.setattr(os, "cpu_count", lambda: cores)
        again = fastmlp.MLP(SIZES, seed=5, backend=backend).fit(X, Y, **fit)
        np.testing.assert_array_equal(again.params_, first.params_)
        assert again.history_ == first.history_


def test_restart_equals_a_single_fit_of_its_own_stream(backend):
    """Restart i trains exactly what it would train alone: no state leaks between runs."""
    X, Y = data()
    runs = fastmlp.MLP(SIZES, seed=2, backend=backend)
    from fastmlp import _training

    job = _training.fit_job(X, Y, None, runs._check_Xy, 2, epochs=4, batch_size=8, shuffle=True,
                            warm_start=False, optimizer=_training.fit_optimizer("adam", 0.05),
                            lr_schedule="constant", power_t=0.5,
                            validation_data=None, validation_fraction=None, early_stopping=False,
                            patience=10, tol=1e-4, n_restarts=3)
    together = _training.make_runs(job, None, 2, runs._initial_params, runs.params_)
    alone = _training.make_runs(job, None, 2, runs._initial_params, runs.params_)
    _training.run_fit(runs._impl, runs._net, together, job, lambda run: run)
    for i, run in enumerate(alone):
        _training.train_run(runs._impl, runs._net, run, job)
        np.testing.assert_array_equal(run.params, together[i].params)
        assert run.optimizer.t == together[i].optimizer.t == 4 * 6


class DivergesInRun:
    """A backend stand-in: run `bad` (by the order train is first called per params buffer)
    reports the lowest losses of all for two epochs, then NaN; the others train for real."""

    def __init__(self, impl, bad):
        self.impl, self.bad, self.seen, self.lock = impl, bad, [], threading.Lock()
        self.loss_gradient, self.predict_proba = impl.loss_gradient, impl.predict_proba

    def train(self, net, params, X, Y, *, losses, **options):
        with self.lock:
            if not any(p is params for p in self.seen):
                self.seen.append(params)
            index = next(i for i, p in enumerate(self.seen) if p is params)
        self.impl.train(net, params, X, Y, losses=losses, **options)
        if index == self.bad:
            losses[:2], losses[2] = 1e-12, np.nan
            losses[3:] = -np.inf


def test_a_diverged_restart_never_wins(backend):
    X, Y = data()
    net = fastmlp.MLP(SIZES, seed=0, backend=backend)
    net._impl = DivergesInRun(net._impl, bad=0)   # run 0 would win on the training loss
    net.fit(X, Y, epochs=6, n_restarts=2, lr=0.05, batch_size=8)
    assert net._run.diverged is None and len(net.history_["loss"]) == 6
    assert np.isfinite(net.params_).all()


def test_every_restart_diverged_raises(backend):
    X, Y = data(n=40)
    Y = np.random.default_rng(0).standard_normal((40, 1)) * 1e3
    net = fastmlp.MLP(SIZES, output="identity", seed=0, backend=backend)
    with pytest.raises(fastmlp.DivergenceError, match="every restart"):
        net.fit(X * 1e3, Y, epochs=50, n_restarts=2, lr=1e3, batch_size=8)
    assert all(np.isfinite(net.history_["loss"]))


# ---------------------------------------------------------------- divergence


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "lbfgs"])
def test_divergence_raises_and_keeps_the_finite_part(backend, dtype, optimizer, tmp_path):
    X, Y = data(n=40, dtype=dtype)
    Y = (np.random.default_rng(0).standard_normal((40, 1)) * 1e3).astype(dtype)
    net = fastmlp.MLP(SIZES, output="identity", seed=0, dtype=dtype, backend=backend)
    lr = {"sgd": 1e3, "adam": 1e200, "lbfgs": 1.0}[optimizer]
    Xb = X * ((1e30 if dtype == np.float32 else 1e200) if optimizer == "lbfgs" else 1e3)
    with pytest.raises(fastmlp.DivergenceError, match=r"diverged at epoch \d+.*smaller lr") as err:
        net.fit(Xb, Y, epochs=200, lr=lr, optimizer=optimizer, batch_size=None if optimizer == "lbfgs" else 8)
    assert isinstance(err.value, ValueError)
    epoch = int(err.value.args[0].split("epoch ")[1].split(":")[0])
    assert len(net.history_["loss"]) == net.n_iter_ <= epoch
    assert all(np.isfinite(net.history_["loss"]))
    assert np.isfinite(net.params_).all()
    if optimizer != "lbfgs" and net.n_iter_:   # the weights are those after the last epoch kept
        again = fastmlp.MLP(SIZES, output="identity", seed=0, dtype=dtype, backend=backend)
        again.fit(Xb, Y, epochs=net.n_iter_, lr=lr, optimizer=optimizer, batch_size=8)
        np.testing.assert_array_equal(net.params_, again.params_)
        assert net.history_ == again.history_
    net.save(tmp_path / "diverged.npz")      # finite weights: the model can be kept


def test_divergence_stops_at_the_same_epoch_in_both_backends(dtype):
    X, Y = data(n=40, dtype=dtype)
    Y = (np.random.default_rng(0).standard_normal((40, 1)) * 1e3).astype(dtype)
    histories = []
    for backend in ("cython", "numpy"):
        net = fastmlp.MLP(SIZES, output="identity", seed=0, dtype=dtype, backend=backend)
        with pytest.raises(fastmlp.DivergenceError):
            net.fit(X * 1e3, Y, epochs=200, lr=1e3, batch_size=8, shuffle=False)
        histories.append(net.history_["loss"])
    assert len(histories[0]) == len(histories[1])


# ---------------------------------------------------------------- sample weights


@pytest.mark.parametrize("dtype, scales", [
    (np.float64, [1e-310, 1e-300, 3.0, 1e300, 1e307]),
    (np.float32, [1e-44, 1e-30, 3.0, 1e30, 3e38]),
])
def test_sample_weights_scaled_by_a_constant_give_the_same_model(backend, dtype, scales):
    X, Y = data(dtype=dtype)
    w = np.random.default_rng(1).uniform(0.1, 2.0, len(X))
    fit = dict(epochs=3, lr=0.1, batch_size=8)
    plain = fastmlp.MLP(SIZES, seed=0, dtype=dtype, backend=backend).fit(X, Y, **fit)
    weighted = fastmlp.MLP(SIZES, seed=0, dtype=dtype, backend=backend).fit(X, Y, sample_weight=w, **fit)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for c in scales:
        same = fastmlp.MLP(SIZES, seed=0, dtype=dtype, backend=backend).fit(
            X, Y, sample_weight=np.full(len(X), c, dtype=dtype), **fit)
        np.testing.assert_allclose(same.params_, plain.params_, rtol=rtol, atol=rtol * 1e-2)
        assert np.isfinite(same.params_).all()
        with np.errstate(over="ignore"):
            scaled = (w * c).astype(dtype)
        if np.allclose(scaled.astype(np.float64) / c, w, rtol=1e-6):   # c kept w's digits (not subnormal)
            again = fastmlp.MLP(SIZES, seed=0, dtype=dtype, backend=backend).fit(X, Y, sample_weight=scaled, **fit)
            np.testing.assert_allclose(again.params_, weighted.params_, rtol=100 * rtol, atol=rtol)


@pytest.mark.parametrize("w, match", [
    (np.zeros(48), "positive sum"), (-np.ones(48), ">= 0"), (np.full(48, np.nan), "finite"),
    (np.full(48, np.inf), "finite"), (np.r_[np.ones(47), -1e-300], ">= 0"), (np.ones(5), "shape"),
])
def test_bad_sample_weights_are_refused(backend, w, match):
    X, Y = data()
    net = fastmlp.MLP(SIZES, seed=0, backend=backend)
    before = net.params_.copy()
    with pytest.raises(ValueError, match=match):
        net.fit(X, Y, sample_weight=w)
    with pytest.raises(ValueError, match=match):
        net.loss(X, Y, sample_weight=w)
    np.testing.assert_array_equal(net.params_, before)


# ---------------------------------------------------------------- stops and memory


def test_memory_follows_the_epochs_run(backend):
    """epochs=10**8 stopped early after a few epochs allocates for those, not for 10**8."""
    X, Y = data()
    net = fastmlp.MLP(SIZES, seed=0, backend=backend)
    tracemalloc.start()
    try:
        net.fit(X, Y, epochs=10**8, early_stopping=True, patience=2, tol=1e9, batch_size=16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert net.n_iter_ == 3
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_long_fits_chunked_equal_one_call(backend, monkeypatch):
    """Epochs run in backend calls of growing length give the same model as one call."""
    from fastmlp import _training

    X, Y = data()
    fit = dict(epochs=37, lr=0.05, batch_size=8, optimizer="adam", lr_schedule="invscaling")
    whole = fastmlp.MLP(SIZES, seed=3, backend=backend).fit(X, Y, **fit)
    monkeypatch.setattr(_training, "FIRST_CHUNK", 4)   # calls of 4, 8, 16 and 9 epochs
    chunked = fastmlp.MLP(SIZES, seed=3, backend=backend).fit(X, Y, **fit)
    np.testing.assert_array_equal(chunked.params_, whole.params_)
    assert chunked.history_ == whole.history_


class FailsInRun:
    """A backend stand-in: the second run to start raises at once; the others train."""

    def __init__(self, impl):
        self.impl, self.calls, self.epochs_run, self.lock = impl, 0, [], threading.Lock()
        self.loss_gradient, self.predict_proba = impl.loss_gradient, impl.predict_proba

    def train(self, net, params, X, Y, *, callback=None, **options):
        with self.lock:
            self.calls += 1
            mine = self.calls
        if mine == 2:
            raise RuntimeError("restart 2 failed")
        count = [0]

        def counting(epoch, loss):
            count[0] += 1
            return callback(epoch, loss) if callback else True

        try:
            self.impl.train(net, params, X, Y, callback=counting, **options)
        finally:
            self.epochs_run.append(count[0])


def test_an_error_in_one_restart_stops_them_all(backend):
    X, Y = data()
    net = fastmlp.MLP(SIZES, seed=0, backend=backend)
    before = net.params_.copy()
    stand_in = net._impl = FailsInRun(net._impl)
    threads_before = threading.active_count()
    with pytest.raises(RuntimeError, match="restart 2 failed"):
        net.fit(X, Y, epochs=10**7, n_restarts=2, batch_size=16)
    assert threading.active_count() == threads_before       # no thread left running
    assert stand_in.epochs_run and max(stand_in.epochs_run) < 10**6
    np.testing.assert_array_equal(net.params_, before)       # nothing committed


ALARM_CHILD = """
import signal, sys, time
import numpy as np
import fastmlp

class Timeout(Exception):
    pass

def on_alarm(signum, frame):
    raise Timeout()

rng = np.random.default_rng(0)
X = rng.standard_normal((200, 8)); y = (X[:, 0] > 0).astype(float)
net = fastmlp.MLP([8, 16, 1], seed=0, backend=sys.argv[1])
signal.signal(signal.SIGALRM, on_alarm)
signal.setitimer(signal.ITIMER_REAL, 0.5)
start = time.perf_counter()
try:
    net.fit(X, y, epochs=10**7, n_restarts=2, batch_size=16)
except Timeout:
    print(f"stopped after {time.perf_counter() - start:.2f} s", flush=True)
"""


@pytest.mark.slow     # (a subprocess)
def test_a_signal_handlers_exception_stops_restarts(backend):
    """A SIGALRM handler that raises ends a fit with restarts at once, not after every epoch
    of every restart (in a subprocess: pytest itself is never signalled)."""
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(ALARM_CHILD), backend],
                           capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr
    seconds = float(child.stdout.split("after ")[1].split()[0])
    assert seconds < 30, child.stdout    # 10**7 epochs would take hours
