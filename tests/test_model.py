"""MLP end to end: the seed reproduced, fits compared across backends, the public API."""

import threading

import numpy as np
import pytest

import fastmlp
from _support import XOR_X, XOR_Y, assert_close, backend_module, make_data, train
from _seed import seed_script
from fastmlp._spec import Optimizer


def xor_net(backend, dtype="float64"):
    return fastmlp.MLP([2, 4, 1], activation="leaky_relu", output="sigmoid", loss="bce", init="normal",
                       init_scale=0.1, seed=42, dtype=dtype, backend=backend)


# ---------------------------------------------------------------- the seed


def test_seed_reproduced(backend):
    initial, final, _, _ = seed_script()
    net = xor_net(backend)
    start = [net.coefs_[0], net.intercepts_[0], net.coefs_[1], net.intercepts_[1]]
    for ours, theirs in zip(start, initial):
        np.testing.assert_array_equal(ours, theirs)
    assert net.fit(XOR_X, XOR_Y, epochs=5000, lr=0.1) is net
    end = [net.coefs_[0], net.intercepts_[0], net.coefs_[1], net.intercepts_[1]]
    for ours, theirs in zip(end, final):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-9)
    # (the script's a2 is from the forward pass before its last update; redo it at the end)
    W1, b1, W2, b2 = final
    z1 = XOR_X @ W1 + b1
    expected = 1 / (1 + np.exp(-(np.where(z1 >= 0, z1, 0.01 * z1) @ W2 + b2)))
    np.testing.assert_allclose(net.predict_proba(XOR_X), expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(net.predict(XOR_X), [0, 1, 1, 0])
    assert len(net.history_["loss"]) == net.n_iter_ == 5000
    assert net.history_["loss"][-1] < net.history_["loss"][0]


def test_seed_in_float32(backend):
    net = xor_net(backend, "float32").fit(XOR_X, XOR_Y, epochs=5000, lr=0.1)
    final = seed_script().final
    assert net.params_.dtype == np.float32
    np.testing.assert_allclose(net.coefs_[0], final[0], rtol=1e-3, atol=1e-3)
    np.testing.assert_array_equal(net.predict(XOR_X), [0, 1, 1, 0])


# ---------------------------------------------------------------- backends agree


# (uneven and shuffled batches, several outputs, BLAS-sized layers, every activation and
# output: test_options.py's test_fit_same_in_both_backends; here the shapes it has not)
@pytest.mark.parametrize(
    "sizes, n, batch_size, shuffle",
    [
        ([2, 4, 1], 4, None, False),
        ([40, 70, 50, 1], 300, 300, False),   # full batch through BLAS-sized layers
        ([6, 2], 50, 10, True),           # no hidden layer: logistic regression
    ],
)
def test_full_batch_and_no_hidden_layer_fits_same_in_both_backends(dtype, sizes, n, batch_size, shuffle):
    X, Y = make_data(n, sizes, seed=n, dtype=dtype)
    nets = {}
    for backend in ("cython", "numpy"):
        net = fastmlp.MLP(sizes, seed=7, dtype=dtype, backend=backend)
        nets[backend] = net.fit(X, Y, epochs=6, lr=0.05, batch_size=batch_size, shuffle=shuffle)
    c, r = nets["cython"], nets["numpy"]
    assert c.params_.dtype == r.params_.dtype == dtype
    assert_close(c.params_, r.params_, dtype, scale=10)
    assert_close(c.history_["loss"], r.history_["loss"], dtype, scale=10)
    assert_close(c.predict_proba(X), r.predict_proba(X), dtype, scale=10)
    assert_close(c.loss(X, Y), r.loss(X, Y), dtype, scale=10)
    for gc, gr in zip(c.gradients(X, Y), r.gradients(X, Y)):
        for a, b in zip(gc, gr):
            assert_close(a, b, dtype, scale=100)


def test_large_data_chunked_forward_matches(dtype):
    """More rows than the compiled backend's chunk (2048) for predict and gradients."""
    sizes = [10, 12, 2]
    X, Y = make_data(5000, sizes, dtype=dtype)
    c = fastmlp.MLP(sizes, seed=1, dtype=dtype, backend="cython")
    r = fastmlp.MLP(sizes, seed=1, dtype=dtype, backend="numpy")
    assert_close(c.predict_proba(X), r.predict_proba(X), dtype)
    assert_close(c.loss(X, Y), r.loss(X, Y), dtype)
    assert_close(c.gradients(X, Y)[0][0], r.gradients(X, Y)[0][0], dtype, scale=10)


def test_history_is_mean_of_batch_losses(backend):
    """history_["loss"][e] is the sample-weighted mean of the batch losses of epoch e."""
    sizes = [3, 5, 1]
    X, Y = make_data(10, sizes)
    net = fastmlp.MLP(sizes, seed=0, backend=backend)
    start = net.params_.copy()
    net.fit(X, Y, epochs=1, lr=0.1, batch_size=4, shuffle=False, warm_start=True)
    probe = fastmlp.MLP(sizes, seed=0, backend=backend)
    probe.params_[...] = start
    total = 0.0
    for rows in (slice(0, 4), slice(4, 8), slice(8, 10)):
        total += probe.loss(X[rows], Y[rows]) * len(X[rows])
        grads = probe.gradients(X[rows], Y[rows])
        flat = np.concatenate([a.ravel() for pair in zip(*grads) for a in pair])
        probe.params_[...] -= 0.1 * flat
    np.testing.assert_allclose(net.history_["loss"][0], total / 10, rtol=1e-12)
    np.testing.assert_allclose(net.params_, probe.params_, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- API behaviour


def test_fit_is_reproducible_and_seeded(backend):
    X, Y = make_data(64, [4, 8, 1])
    a = fastmlp.MLP([4, 8, 1], seed=5, backend=backend).fit(X, Y, epochs=3, batch_size=8)
    b = fastmlp.MLP([4, 8, 1], seed=5, backend=backend).fit(X, Y, epochs=3, batch_size=8)
    c = fastmlp.MLP([4, 8, 1], seed=6, backend=backend).fit(X, Y, epochs=3, batch_size=8)
    np.testing.assert_array_equal(a.params_, b.params_)
    assert not np.allclose(a.params_, c.params_)
    again = a.fit(X, Y, epochs=3, batch_size=8)  # a second fit starts over
    np.testing.assert_array_equal(again.params_, b.params_)


def test_shuffle_changes_the_path(backend):
    X, Y = make_data(64, [4, 8, 1])
    a = fastmlp.MLP([4, 8, 1], seed=5, backend=backend).fit(X, Y, epochs=2, batch_size=8, shuffle=True)
    b = fastmlp.MLP([4, 8, 1], seed=5, backend=backend).fit(X, Y, epochs=2, batch_size=8, shuffle=False)
    assert not np.allclose(a.params_, b.params_)


def test_warm_start_continues(backend):
    X, Y = make_data(32, [3, 4, 1])
    once = fastmlp.MLP([3, 4, 1], seed=2, backend=backend).fit(X, Y, epochs=4, batch_size=None)
    twice = fastmlp.MLP([3, 4, 1], seed=2, backend=backend).fit(X, Y, epochs=2, batch_size=None)
    twice.fit(X, Y, epochs=2, batch_size=None, warm_start=True)
    np.testing.assert_allclose(twice.params_, once.params_, rtol=1e-12)


def test_coefs_are_views_into_params(backend):
    net = fastmlp.MLP([3, 4, 2], seed=0, backend=backend)
    assert all(np.shares_memory(W, net.params_) for W in net.coefs_)
    assert all(np.shares_memory(b, net.params_) for b in net.intercepts_)
    assert [W.shape for W in net.coefs_] == [(3, 4), (4, 2)]
    assert [b.shape for b in net.intercepts_] == [(4,), (2,)]
    net.coefs_[0][0, 0] = 123.0
    assert net.params_[0] == 123.0


def test_predict_shapes_and_dtypes(backend, dtype):
    X, Y = make_data(9, [3, 4, 2], dtype=dtype)
    net = fastmlp.MLP([3, 4, 2], seed=0, dtype=dtype, backend=backend)
    proba = net.predict_proba(X)
    assert proba.shape == (9, 2) and proba.dtype == dtype
    assert net.predict(X).shape == (9, 2)
    single = fastmlp.MLP([3, 1], seed=0, dtype=dtype, backend=backend)
    assert single.predict(X).shape == (9,)
    assert set(np.unique(single.predict(X))) <= {0, 1}
    dcoefs, dintercepts = net.gradients(X, Y)
    assert [g.dtype for g in dcoefs + dintercepts] == [dtype] * 4
    assert isinstance(net.loss(X, Y), float)


def test_y_shapes_accepted(backend):
    net = fastmlp.MLP([2, 3, 1], seed=0, backend=backend)
    flat = net.loss(XOR_X, XOR_Y.ravel())
    assert net.loss(XOR_X, XOR_Y) == flat
    assert net.loss(XOR_X.astype(int), XOR_Y.astype(bool)) == flat
    assert net.loss(np.asfortranarray(XOR_X), XOR_Y) == flat


def test_default_init(backend):
    net = fastmlp.MLP([50, 40, 30], seed=0, backend=backend)
    W1, W2 = net.coefs_
    assert abs(W1.std() - np.sqrt(2 / (1.0001 * 50))) < 0.02  # He for Leaky ReLU
    bound = np.sqrt(6 / 70)
    assert np.abs(W2).max() <= bound and W2.std() > bound / 2  # Glorot uniform at the output
    assert all((b == 0).all() for b in net.intercepts_)


def test_save_and_load(tmp_path, backend, dtype):
    X, Y = make_data(20, [3, 5, 1], dtype=dtype)
    net = fastmlp.MLP([3, 5, 1], seed=0, dtype=dtype, negative_slope=0.2, backend=backend).fit(X, Y, epochs=3)
    path = tmp_path / "model.npz"
    net.save(path)
    back = fastmlp.load(path, backend=backend)
    assert back.get_config() == net.get_config()
    np.testing.assert_array_equal(back.params_, net.params_)
    np.testing.assert_array_equal(back.predict_proba(X), net.predict_proba(X))
    assert back.history_ == net.history_
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a fastmlp model"):
        fastmlp.load(tmp_path / "other.npz")


def test_available_backends_and_env(monkeypatch):
    backend_module("cython")  # (skips on a pure-Python install)
    assert fastmlp.available_backends() == ("cython", "numpy")
    monkeypatch.setenv("FASTMLP_BACKEND", "numpy")
    assert fastmlp.MLP([2, 1]).backend == "numpy"
    assert fastmlp.MLP([2, 1], backend="cython").backend == "cython"
    monkeypatch.setenv("FASTMLP_BACKEND", "cython")
    assert fastmlp.MLP([2, 1]).backend == "cython"
    monkeypatch.setenv("FASTMLP_BACKEND", "fortran")
    with pytest.raises(ValueError, match="FASTMLP_BACKEND"):
        fastmlp.MLP([2, 1])
    monkeypatch.delenv("FASTMLP_BACKEND")
    assert fastmlp.MLP([2, 1]).backend == "cython"


def test_repr_names_the_model(backend):
    text = repr(fastmlp.MLP([2, 4, 1], seed=1, backend=backend))
    assert "layer_sizes=[2, 4, 1]" in text and f"backend='{backend}'" in text


# ---------------------------------------------------------------- interruption and threads


class InterruptAfter:
    """A Generator stand-in whose shuffle raises KeyboardInterrupt on call number `calls`."""

    def __init__(self, calls):
        self.calls, self.rng = calls, np.random.default_rng(0)

    def shuffle(self, a):
        self.calls -= 1
        if self.calls == 0:
            raise KeyboardInterrupt
        self.rng.shuffle(a)


def test_interrupt_stops_between_epochs(backend):
    """Ctrl-C arrives between epochs: the weights are those after the last whole epoch."""
    net = fastmlp.MLP([3, 4, 1], seed=0, backend=backend)
    X, Y = make_data(12, [3, 4, 1])
    interrupted, losses = net.params_.copy(), np.full(5, np.nan)
    with pytest.raises(KeyboardInterrupt):
        train(backend, net, interrupted, X, Y, epochs=5, batch_size=4, rng=InterruptAfter(3), losses=losses,
              optimizer=Optimizer(lr=0.1))
    two, losses2 = net.params_.copy(), np.full(2, np.nan)
    train(backend, net, two, X, Y, epochs=2, batch_size=4, rng=InterruptAfter(99), losses=losses2,
          optimizer=Optimizer(lr=0.1))
    np.testing.assert_array_equal(interrupted, two)
    np.testing.assert_array_equal(losses[:2], losses2)
    assert np.isnan(losses[2:]).all()


def test_fits_in_threads_match_sequential_fits(backend):
    X, Y = make_data(400, [20, 32, 1])
    expected = [fastmlp.MLP([20, 32, 1], seed=s, backend=backend).fit(X, Y, epochs=5, batch_size=16).params_
                for s in (1, 2)]
    nets = [fastmlp.MLP([20, 32, 1], seed=s, backend=backend) for s in (1, 2)]
    threads = [threading.Thread(target=n.fit, args=(X, Y), kwargs=dict(epochs=5, batch_size=16)) for n in nets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for net, params in zip(nets, expected):
        np.testing.assert_array_equal(net.params_, params)


def test_fit_interrupted_keeps_whole_epochs(backend):
    """MLP.fit stopped by Ctrl-C keeps the weights and history of the epochs that finished,
    up to the first one whose loss is NaN (a diverged fit), and Ctrl-C still propagates."""
    X, Y = make_data(16, [3, 4, 1])
    net = fastmlp.MLP([3, 4, 1], seed=0, backend=backend)
    real_train = net._impl.train

    def train_then_interrupt(net, params, X, Y, *, losses, epochs, **options):
        real_train(net, params, X, Y, losses=losses[:2], epochs=2, **options)
        losses[1] = np.nan  # pretend the second finished epoch diverged
        raise KeyboardInterrupt

    class Impl:
        train = staticmethod(train_then_interrupt)

    net._impl = Impl  # a stand-in backend object for this one model, not a module global
    with pytest.raises(KeyboardInterrupt):
        net.fit(X, Y, epochs=5, batch_size=4, shuffle=False)
    assert net.n_iter_ == 1 and len(net.history_["loss"]) == 1 and np.isfinite(net.history_["loss"][0])
