"""Gradients of whole networks against central finite differences (4th-order stencil), in
both backends, over random shapes; float32 against float64. (The kernels' and each
option's network's: test_options.py.)"""

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fastmlp
from _support import backend_module, fd_gradient, make_data


@given(
    hidden=st.lists(st.integers(1, 6), min_size=0, max_size=3),
    n_in=st.integers(1, 5),
    n_out=st.integers(1, 3),
    n=st.integers(1, 9),
    seed=st.integers(0, 1000),
)
@settings(max_examples=25, deadline=None, derandomize=True)
def test_gradient_finite_differences_hypothesis(hidden, n_in, n_out, n, seed):
    sizes = [n_in, *hidden, n_out]
    X, Y = make_data(n, sizes, seed=seed)
    for backend in ("cython", "numpy"):
        net = fastmlp.MLP(sizes, seed=seed, backend=backend)
        for b in net.intercepts_:
            b[...] = np.random.default_rng(seed).uniform(-1, 1, b.shape)
        # a finite difference across a Leaky ReLU kink is no derivative: keep away from z = 0
        coefs, intercepts = net.coefs_, net.intercepts_
        A = X
        for W, b in zip(coefs[:-1], intercepts[:-1]):
            Z = A @ W + b
            assume(np.abs(Z).min() > 1e-3)
            A = np.where(Z >= 0, Z, net.negative_slope * Z)
        grad = np.empty_like(net.params_)
        backend_module(backend).loss_gradient(net._net, net.params_, X, Y, grad=grad)
        numeric = fd_gradient(lambda: net.loss(X, Y), net.params_)
        np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-9)


def test_float32_gradients_close_to_float64(backend):
    sizes = [5, 7, 2]
    X, Y = make_data(20, sizes)
    g = {}
    for dt in ("float32", "float64"):
        net = fastmlp.MLP(sizes, seed=0, dtype=dt, backend=backend)
        net._params[...] = fastmlp.MLP(sizes, seed=0, dtype="float64", backend=backend).params_.astype(np.float32)
        dcoefs, _ = net.gradients(X, Y)
        assert dcoefs[0].dtype == np.dtype(dt)
        g[dt] = dcoefs[0]
    np.testing.assert_allclose(g["float32"], g["float64"], rtol=1e-4, atol=1e-6)
