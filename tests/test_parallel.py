"""The compiled training loop with each batch's rows shared among threads (`train`'s
`threads`, `_core._epoch_par`) takes the steps the one-thread loop takes: the same
parameters up to the order of floating-point sums, the same losses, the same early ends
(divergence with its roll-back, a stop event), for every activation, loss, optimizer and
option, and batches with fewer rows than threads. The NumPy backend takes `threads` and
checks it the same way."""

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _support import DTYPES, assert_close, backend_module
from fastmlp._spec import Network, Optimizer

core = backend_module("cython")


def data(n, sizes, dtype, seed=0, loss="bce"):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    if loss == "cross_entropy":
        Y = np.eye(sizes[-1], dtype=dtype)[rng.integers(0, sizes[-1], n)]
    elif loss in ("mse", "poisson"):
        Y = rng.random((n, sizes[-1])).astype(dtype)
    else:
        Y = (rng.random((n, sizes[-1])) < 0.5).astype(dtype)
    return X, Y


def fit(mod, net, params, X, Y, optimizer, epochs, batch_size, threads, **options):
    """(params, losses, state, steps) after `mod.train` from copies of the inputs."""
    p, state = params.copy(), np.zeros((2, len(params)), params.dtype)
    losses = np.full(epochs, -np.inf)
    opt = Optimizer(**optimizer)
    mod.train(net, p, X, Y, optimizer=opt, state=state, losses=losses, epochs=epochs,
              batch_size=batch_size, threads=threads, **options)
    return p, losses, state, opt.t


def initial(net, dtype, seed=1, scale=0.3):
    return (np.random.default_rng(seed).standard_normal(net.param_count()) * scale).astype(dtype)


OPTIMIZERS = [
    {"name": "sgd", "lr": 0.05},
    {"name": "sgd", "lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"name": "adam", "lr": 0.01},
    {"name": "adamw", "lr": 0.01, "weight_decay": 0.1},
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("threads", [2, 3])
def test_shared_batches_match_one_thread_and_numpy(dtype, optimizer, threads):
    # 300 x 40 x 64 products reach BLAS (and the weight gradients are split by rows of W);
    # batch 37 leaves a last batch of 4 rows
    net = Network((40, 64, 48, 1), ("leaky_relu", "tanh"), l2=0.01)
    X, Y = data(300, net.sizes, dtype)
    params = initial(net, dtype)
    one = fit(core, net, params, X, Y, optimizer, 3, 37, 1)
    shared = fit(core, net, params, X, Y, optimizer, 3, 37, threads)
    ref = fit(backend_module("numpy"), net, params, X, Y, optimizer, 3, 37, 1)
    for got, want in zip(shared[:3], one[:3]):
        assert_close(got, want, dtype)
    for got, want in zip(shared[:3], ref[:3]):
        assert_close(got, want, dtype)
    assert shared[3] == one[3] == ref[3] == 3 * 9
    assert not np.array_equal(shared[0], params)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("activation, output, loss", [
    ("relu", "softmax", "cross_entropy"),
    ("gelu", "identity", "mse"),
    ("sigmoid", "exp", "poisson"),
    ("identity", "sigmoid", "bce"),
])
def test_every_layer_kind_matches_one_thread(dtype, activation, output, loss):
    net = Network((30, 50, 4), activation, output=output, loss=loss)
    X, Y = data(200, net.sizes, dtype, loss=loss)
    params = initial(net, dtype, scale=0.1)
    one = fit(core, net, params, X, Y, {"name": "sgd", "lr": 0.02}, 2, 64, 1)
    shared = fit(core, net, params, X, Y, {"name": "sgd", "lr": 0.02}, 2, 64, 2)
    for got, want in zip(shared[:2], one[:2]):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_shuffled_weighted_batches_match_one_thread(dtype):
    net = Network((20, 70, 1), "leaky_relu")
    X, Y = data(150, net.sizes, dtype)
    w = np.random.default_rng(3).random(150)
    w[:40] = 0                                  # a batch may weigh nothing
    params = initial(net, dtype)
    runs = [fit(core, net, params, X, Y, {"name": "adam", "lr": 0.01}, 3, 40, threads,
                rng=np.random.default_rng(7), sample_weight=w) for threads in (1, 2)]
    for got, want in zip(runs[1][:3], runs[0][:3]):
        assert_close(got, want, dtype)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), batch=st.integers(1, 40), threads=st.integers(2, 8),
       hidden=st.lists(st.integers(1, 70), min_size=1, max_size=3),
       dtype=st.sampled_from(DTYPES))
def test_any_shape_and_thread_count_matches_one_thread(n, batch, threads, hidden, dtype):
    # batches of fewer rows than threads, layers narrower than the thread count
    net = Network((5, *hidden, 2), "leaky_relu")
    X, Y = data(n, net.sizes, dtype, seed=n)
    params = initial(net, dtype)
    runs = [fit(core, net, params, X, Y, {"name": "sgd", "lr": 0.1, "momentum": 0.5}, 2, batch, t)
            for t in (1, threads)]
    for got, want in zip(runs[1][:3], runs[0][:3]):
        assert_close(got, want, dtype)


@pytest.mark.parametrize("momentum", [0.0, 0.5], ids=["fused-sgd", "momentum"])
def test_divergence_rolls_back_as_one_thread_does(momentum):
    # lr 0.3 on this squared error diverges in the second epoch
    net = Network((10, 60, 1), "leaky_relu", output="identity", loss="mse")
    X, Y = data(120, net.sizes, np.float64, loss="mse")
    params = initial(net, np.float64)
    optimizer = {"name": "sgd", "lr": 0.3, "momentum": momentum}
    one = fit(core, net, params, X, Y, optimizer, 12, 30, 1)
    shared = fit(core, net, params, X, Y, optimizer, 12, 30, 2)
    assert not np.isfinite(one[1]).all() and one[3] > 0     # diverged after some steps
    np.testing.assert_array_equal(np.isfinite(shared[1]), np.isfinite(one[1]))
    np.testing.assert_array_equal(shared[1] == -np.inf, one[1] == -np.inf)
    assert np.isfinite(shared[0]).all()
    assert_close(shared[0], one[0], np.float64)
    assert_close(shared[2], one[2], np.float64)
    assert shared[3] == one[3]


def test_a_set_stop_event_ends_before_the_next_batch():
    net = Network((10, 60, 1), "leaky_relu")
    X, Y = data(400, net.sizes, np.float64)
    params = initial(net, np.float64)
    stop = threading.Event()
    stop.set()
    p, losses, _, steps = fit(core, net, params, X, Y, {"name": "sgd", "lr": 0.1}, 3, 10, 2, stop=stop)
    np.testing.assert_array_equal(p, params)
    assert steps == 0 and (losses == -np.inf).all()


@pytest.mark.parametrize("backend", ["cython", "numpy"])
@pytest.mark.parametrize("threads, error", [(0, ValueError), (9, ValueError), (2.0, TypeError),
                                            (True, TypeError), ("2", TypeError)])
def test_bad_thread_counts_are_refused_before_training(backend, threads, error):
    net = Network((3, 4, 1), "leaky_relu")
    X, Y = data(8, net.sizes, np.float64)
    params = initial(net, np.float64)
    p = params.copy()
    with pytest.raises(error, match="threads"):
        backend_module(backend).train(net, p, X, Y, optimizer=Optimizer(), state=np.zeros((2, len(p))),
                                      losses=np.zeros(1), epochs=1, batch_size=4, threads=threads)
    np.testing.assert_array_equal(p, params)


def test_sparse_input_trains_on_one_thread():
    sparse = pytest.importorskip("scipy.sparse")
    net = Network((30, 40, 1), "leaky_relu")
    X, Y = data(60, net.sizes, np.float64)
    X[np.abs(X) < 1] = 0
    params = initial(net, np.float64)
    dense = fit(core, net, params, X, Y, {"name": "sgd", "lr": 0.1}, 2, 16, 1)
    shared = fit(core, net, params, sparse.csr_matrix(X), Y, {"name": "sgd", "lr": 0.1}, 2, 16, 2)
    assert_close(shared[0], dense[0], np.float64)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("optimizer", OPTIMIZERS[::2], ids=["sgd", "adam"])
def test_results_do_not_depend_on_the_thread_count(dtype, optimizer):
    # the chunks are fixed by the batch and layer sizes, whichever thread takes them
    net = Network((40, 96, 64, 3), "leaky_relu", output="softmax", loss="cross_entropy", l2=0.001)
    X, Y = data(290, net.sizes, dtype, loss="cross_entropy")
    params = initial(net, dtype, scale=0.2)
    runs = [fit(core, net, params, X, Y, optimizer, 3, 100, threads, rng=np.random.default_rng(2))
            for threads in (2, 3, 5)]
    for other in runs[1:]:
        for got, want in zip(other[:3], runs[0][:3]):
            np.testing.assert_array_equal(got, want)
