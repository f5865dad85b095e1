"""Optimizers, schedules, validation, early stopping, restarts, partial_fit: both backends,
compared with each other and with the update rules written out by hand."""

import numpy as np
import pytest

import fastmlp
from _support import assert_close, make_data, train
from fastmlp._spec import Optimizer

SIZES = [4, 24, 2]


def data(n=60, seed=0, dtype=np.float64):
    return make_data(n, SIZES, seed=seed, dtype=dtype)


def flat_gradient(net, X, Y):
    dcoefs, dintercepts = net.gradients(X, Y)
    return np.concatenate([a.ravel() for pair in zip(dcoefs, dintercepts) for a in pair])


OPTIMIZERS = [
    dict(optimizer="sgd", momentum=0.9),
    dict(optimizer="sgd", momentum=0.8, nesterov=True),
    dict(optimizer="adam", lr=0.01),
    dict(optimizer="adam", lr=0.003, beta1=0.5, beta2=0.9, eps=1e-6),
    dict(optimizer="adamw", lr=0.01),
    dict(optimizer="adamw", lr=0.003, beta1=0.5, beta2=0.9, eps=1e-6, weight_decay=0.3),
    dict(optimizer="rprop", batch_size=None),
]


@pytest.mark.parametrize("options", OPTIMIZERS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("l2", [0.0, 0.05])
def test_optimizers_same_in_both_backends(dtype, options, l2):
    X, Y = data(dtype=dtype)
    options = {"lr": 0.05, "batch_size": 16, **options}
    c, r = (fastmlp.MLP(SIZES, l2=l2, seed=3, dtype=dtype, backend=b).fit(X, Y, epochs=5, **options)
            for b in ("cython", "numpy"))
    assert c.params_.dtype == dtype
    assert_close(c.params_, r.params_, dtype, scale=100)
    assert_close(c.history_["loss"], r.history_["loss"], dtype, scale=100)


def by_hand(net, X, Y, steps, update):
    """Full-batch steps with `update(p, g, state, t)` applied to net.params_ in place."""
    state = {}
    for t in range(1, steps + 1):
        update(net.params_, flat_gradient(net, X, Y), state, t)
    return net.params_


def sgd_momentum(lr, mu, nesterov):
    def update(p, g, state, t):
        v = state["v"] = mu * state.get("v", 0) + g
        p -= lr * (g + mu * v if nesterov else v)
    return update


def adam(lr, b1, b2, eps):
    def update(p, g, state, t):
        m = state["m"] = b1 * state.get("m", 0) + (1 - b1) * g
        v = state["v"] = b2 * state.get("v", 0) + (1 - b2) * g * g
        p -= lr / (1 - b1**t) * m / (np.sqrt(v) / np.sqrt(1 - b2**t) + eps)
    return update


def adamw(lr, b1, b2, eps, wd):
    """Decoupled decay of the weights (not the biases), then Adam's step."""
    weights = np.concatenate([np.full(n_in * n_out, True) if part == 0 else np.full(n_out, False)
                              for n_in, n_out in zip(SIZES[:-1], SIZES[1:]) for part in (0, 1)])
    adam_step = adam(lr, b1, b2, eps)

    def update(p, g, state, t):
        p[weights] *= 1 - lr * wd
        adam_step(p, g, state, t)
    return update


def rprop(lr, up=1.2, down=0.5, lo=1e-6, hi=50):
    def update(p, g, state, t):
        step, prev = state.get("step", np.full_like(p, lr)), state.get("prev", np.zeros_like(p))
        sign = np.sign(g * prev)
        step = np.clip(np.where(sign > 0, step * up, np.where(sign < 0, step * down, step)), lo, hi)
        g = np.where(sign < 0, 0, g)
        p -= np.sign(g) * step
        state["step"], state["prev"] = step, g
    return update


# every optimizer's rule, written out from PyTorch's documentation: (fit options, update)
RULES = {
    "sgd": [(dict(optimizer="sgd", lr=0.1, momentum=0.9), sgd_momentum(0.1, 0.9, False)),
            (dict(optimizer="sgd", lr=0.1, momentum=0.9, nesterov=True), sgd_momentum(0.1, 0.9, True)),
            (dict(optimizer="sgd", lr=0.1), sgd_momentum(0.1, 0.0, False))],
    "adam": [(dict(optimizer="adam", lr=0.02, beta1=0.8, beta2=0.95, eps=1e-7), adam(0.02, 0.8, 0.95, 1e-7))],
    "adamw": [(dict(optimizer="adamw", lr=0.02), adamw(0.02, 0.9, 0.999, 1e-8, 0.01)),
              (dict(optimizer="adamw", lr=0.02, beta1=0.8, weight_decay=0.5), adamw(0.02, 0.8, 0.999, 1e-8, 0.5))],
    "rprop": [(dict(optimizer="rprop", lr=0.01), rprop(0.01))],
}


def test_every_registered_optimizer_has_a_rule_here():
    from fastmlp._registry import OPTIMIZERS as REGISTERED

    assert set(RULES) == set(REGISTERED), f"rules missing for {set(REGISTERED) - set(RULES)}, unknown {set(RULES) - set(REGISTERED)}"


@pytest.mark.parametrize(
    "options, update",
    [case for cases in RULES.values() for case in cases],
    ids=[f"{name}-{i}" for name, cases in RULES.items() for i in range(len(cases))],
)
def test_update_rules_match_pytorch_formulas(backend, options, update):
    """Each optimizer's full-batch steps equal the PyTorch update rule written out here."""
    X, Y = data(n=20)
    net = fastmlp.MLP(SIZES, l2=0.1, seed=1, backend=backend).fit(X, Y, epochs=6, batch_size=None, **options)
    expected = by_hand(fastmlp.MLP(SIZES, l2=0.1, seed=1, backend=backend), X, Y, 6, update)
    np.testing.assert_allclose(net.params_, expected, rtol=1e-10, atol=1e-13)


def test_lbfgs(backend, dtype):
    X, Y = data(dtype=dtype)
    net = fastmlp.MLP(SIZES, seed=0, dtype=dtype, backend=backend)
    start = net.loss(X, Y)
    net.fit(X, Y, epochs=50, optimizer="lbfgs")
    assert net.params_.dtype == dtype
    assert 0 < net.n_iter_ <= 50 and len(net.history_["loss"]) == net.n_iter_
    assert net.loss(X, Y) < 0.5 * start
    np.testing.assert_allclose(net.history_["loss"][-1], net.loss(X, Y), rtol=1e-5 if dtype == np.float32 else 1e-12)


def test_lbfgs_same_in_both_backends():
    X, Y = data()
    c, r = (fastmlp.MLP(SIZES, l2=0.01, seed=0, backend=b).fit(X, Y, epochs=15, optimizer="lbfgs")
            for b in ("cython", "numpy"))
    np.testing.assert_allclose(c.params_, r.params_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(c.history_["loss"], r.history_["loss"], rtol=1e-8)


def test_invscaling_schedule(backend):
    X, Y = data()
    net = fastmlp.MLP(SIZES, seed=2, backend=backend).fit(
        X, Y, epochs=3, lr=0.2, lr_schedule="invscaling", power_t=0.5, shuffle=False, batch_size=16)
    manual = fastmlp.MLP(SIZES, seed=2, backend=backend)
    for epoch in range(3):
        manual.fit(X, Y, epochs=1, lr=0.2 / (epoch + 1) ** 0.5, shuffle=False, batch_size=16, warm_start=True)
    np.testing.assert_allclose(net.params_, manual.params_, rtol=1e-12)
    assert net.history_["loss"] == manual.history_["loss"]


def test_plateau_schedule(backend):
    """With a tolerance no epoch can beat, lr falls by 5x after every 2 epochs."""
    X, Y = data()
    net = fastmlp.MLP(SIZES, seed=2, backend=backend).fit(
        X, Y, epochs=6, lr=0.2, lr_schedule="plateau", tol=1e9, shuffle=False, batch_size=16)
    manual = fastmlp.MLP(SIZES, seed=2, backend=backend)
    for lr in [0.2, 0.2, 0.2, 0.04, 0.04, 0.008]:
        manual.fit(X, Y, epochs=1, lr=lr, shuffle=False, batch_size=16, warm_start=True)
    np.testing.assert_allclose(net.params_, manual.params_, rtol=1e-12)


def test_validation_data_and_fraction(backend):
    X, Y = data(n=80)
    Xv, Yv = data(n=30, seed=9)
    net = fastmlp.MLP(SIZES, seed=0, backend=backend).fit(X, Y, epochs=7, lr=0.1, validation_data=(Xv, Yv))
    assert len(net.history_["val_loss"]) == len(net.history_["loss"]) == 7
    np.testing.assert_allclose(net.history_["val_loss"][-1], net.loss(Xv, Yv), rtol=1e-12)
    a = fastmlp.MLP(SIZES, seed=0, backend=backend).fit(X, Y, epochs=3, validation_fraction=0.25)
    b = fastmlp.MLP(SIZES, seed=0, backend=backend).fit(X, Y, epochs=3, validation_fraction=0.25)
    assert len(a.history_["val_loss"]) == 3 and a.history_ == b.history_
    np.testing.assert_array_equal(a.params_, b.params_)


def test_early_stopping_restores_best_weights(backend):
    rng = np.random.default_rng(0)
    X, Xv = rng.standard_normal((40, 4)), rng.standard_normal((40, 4))
    Y, Yv = (rng.random((40, 2)) < 0.5) * 1.0, (rng.random((40, 2)) < 0.5) * 1.0   # noise: overfits
    net = fastmlp.MLP([4, 64, 2], seed=0, backend=backend).fit(
        X, Y, epochs=500, lr=0.5, batch_size=8, validation_data=(Xv, Yv), early_stopping=True, patience=5, tol=0)
    val = net.history_["val_loss"]
    assert len(val) < 500
    assert np.argmin(val) == len(val) - 6            # stopped 5 epochs after the best
    np.testing.assert_allclose(net.loss(Xv, Yv), min(val), rtol=1e-12)


def test_restarts_keep_the_best(backend):
    X, Y = data()
    single = fastmlp.MLP(SIZES, seed=4, backend=backend).fit(X, Y, epochs=5, lr=0.05)
    best = fastmlp.MLP(SIZES, seed=4, backend=backend).fit(X, Y, epochs=5, lr=0.05, n_restarts=4)
    again = fastmlp.MLP(SIZES, seed=4, backend=backend).fit(X, Y, epochs=5, lr=0.05, n_restarts=4)
    np.testing.assert_array_equal(best.params_, again.params_)
    assert best.history_["loss"][-1] <= single.history_["loss"][-1]
    assert len(best.history_["loss"]) == 5


@pytest.mark.parametrize("options", [dict(), dict(optimizer="adam", lr=0.01), dict(optimizer="sgd", momentum=0.5)])
def test_partial_fit_continues(backend, options):
    X, Y = data()
    whole = fastmlp.MLP(SIZES, seed=6, backend=backend).fit(X, Y, epochs=3, batch_size=16, **options)
    parts = fastmlp.MLP(SIZES, seed=6, backend=backend)
    for _ in range(3):
        parts.partial_fit(X, Y, batch_size=16, **options)
    np.testing.assert_allclose(parts.params_, whole.params_, rtol=1e-12)
    np.testing.assert_allclose(parts.history_["loss"], whole.history_["loss"], rtol=1e-12)
    assert parts.n_iter_ == 3


def test_warm_start_appends_history(backend):
    X, Y = data()
    net = fastmlp.MLP(SIZES, seed=0, backend=backend).fit(X, Y, epochs=2)
    net.fit(X, Y, epochs=3, warm_start=True)
    assert net.n_iter_ == 5 and len(net.history_["loss"]) == 5
    net.fit(X, Y, epochs=1)
    assert net.n_iter_ == 1


@pytest.mark.parametrize(
    "options, error, match",
    [
        (dict(optimizer="adagrad"), ValueError, "optimizer"),
        (dict(momentum=1.5), ValueError, "momentum"),
        (dict(momentum=-0.1), ValueError, "momentum"),
        (dict(nesterov=True), ValueError, "nesterov"),
        (dict(optimizer="adam", beta1=1.0), ValueError, "beta"),
        (dict(optimizer="adam", eps=0), ValueError, "eps"),
        (dict(optimizer="rprop", batch_size=10), ValueError, "full batch"),
        (dict(optimizer="lbfgs", batch_size=10), ValueError, "full batch"),
        (dict(optimizer="rprop", lr_schedule="invscaling"), ValueError, "lr_schedule"),
        (dict(lr_schedule="cosine"), ValueError, "lr_schedule"),
        (dict(validation_fraction=0.2, validation_data=(np.zeros((2, 4)), np.zeros((2, 2)))), ValueError, "not both"),
        (dict(validation_fraction=1.0), ValueError, "validation_fraction"),
        (dict(validation_fraction=0.001), ValueError, "validation_fraction"),
        (dict(validation_data=(np.zeros((2, 3)), np.zeros((2, 2)))), ValueError, "features"),
        (dict(validation_data=np.zeros((2, 4))), TypeError, "pair"),
        (dict(patience=0), ValueError, "patience"),
        (dict(n_restarts=0), ValueError, "n_restarts"),
        (dict(n_restarts=2, warm_start=True), ValueError, "n_restarts"),
        (dict(early_stopping="yes"), TypeError, "early_stopping"),
        (dict(momentum="high"), TypeError, "momentum"),
    ],
)
def test_bad_training_options(backend, options, error, match):
    X, Y = data()
    net = fastmlp.MLP(SIZES, seed=0, backend=backend).fit(X, Y, epochs=1)
    before = (net.params_.copy(), dict(net.history_))
    with pytest.raises(error, match=match):
        net.fit(X, Y, epochs=2, **options)
    np.testing.assert_array_equal(net.params_, before[0])
    assert net.history_ == before[1]
    with pytest.raises(TypeError, match="epochs"):
        net.partial_fit(X, Y, epochs=3)


@pytest.mark.parametrize("output", ["sigmoid", "softmax", "identity"])
def test_sample_weight(backend, output):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 4))
    Y = {"sigmoid": (rng.random((30, 2)) < 0.5) * 1.0, "softmax": rng.integers(0, 2, 30),
         "identity": rng.standard_normal((30, 2))}[output]
    w = rng.integers(0, 4, 30).astype(float)
    net = fastmlp.MLP(SIZES, output=output, l2=0.1, seed=0, backend=backend)
    # integer weights = repeated rows
    rows = np.repeat(np.arange(30), w.astype(int))
    np.testing.assert_allclose(net.loss(X, Y, sample_weight=w), net.loss(X[rows], Y[rows]), rtol=1e-12)
    for a, b in zip(net.gradients(X, Y, sample_weight=w)[0], net.gradients(X[rows], Y[rows])[0]):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-14)
    # full batch: one weighted step equals one step on the repeated rows
    a = fastmlp.MLP(SIZES, output=output, seed=0, backend=backend).fit(X, Y, epochs=3, batch_size=None, sample_weight=w)
    b = fastmlp.MLP(SIZES, output=output, seed=0, backend=backend).fit(X[rows], Y[rows], epochs=3, batch_size=None)
    np.testing.assert_allclose(a.params_, b.params_, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(a.history_["loss"], b.history_["loss"], rtol=1e-10)


@pytest.mark.parametrize("shuffle", [False, True])
def test_sample_weight_same_in_both_backends(dtype, shuffle):
    X, Y = data(dtype=dtype)
    w = np.random.default_rng(1).random(len(X))
    w[:16] = 0     # a whole batch of weight 0 contributes nothing
    c, r = (fastmlp.MLP(SIZES, seed=3, dtype=dtype, backend=b).fit(
        X, Y, epochs=4, batch_size=16, shuffle=shuffle, sample_weight=w, optimizer="adam", lr=0.01)
        for b in ("cython", "numpy"))
    assert_close(c.params_, r.params_, dtype, scale=100)
    assert_close(c.history_["loss"], r.history_["loss"], dtype, scale=100)


def test_backend_callback_sets_lr_and_stops(backend):
    """train(callback=...) runs after every epoch, may set the next epoch's lr, and stops
    training by returning False; both backends call it the same way."""
    X, Y = data()
    Y = np.asarray(Y, dtype=float)
    results = {}
    for name in ("cython", "numpy"):
        net = fastmlp.MLP(SIZES, seed=0, backend=name)
        opt, seen = Optimizer(lr=0.1), []

        def callback(epoch, loss):
            seen.append((epoch, loss, opt.lr))
            opt.lr /= 2
            return epoch < 2

        losses = train(name, net, net.params_, X, Y, epochs=6, batch_size=16, optimizer=opt,
                       losses=np.full(6, -np.inf), callback=callback)
        assert [e for e, _, _ in seen] == [0, 1, 2] and [lr for _, _, lr in seen] == [0.1, 0.05, 0.025]
        assert np.isfinite(losses[:3]).all() and (losses[3:] == -np.inf).all()
        manual = fastmlp.MLP(SIZES, seed=0, backend=name)
        for lr in (0.1, 0.05, 0.025):
            manual.fit(X, Y, epochs=1, lr=lr, batch_size=16, shuffle=False, warm_start=True)
        np.testing.assert_allclose(net.params_, manual.params_, rtol=1e-12)
        results[name] = net.params_
    np.testing.assert_allclose(results["cython"], results["numpy"], rtol=1e-9, atol=1e-12)
