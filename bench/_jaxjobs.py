"""The pieces bench/jax_compare.py times beside fastmlp (issue 12).

- ``jax_trainer``: the whole training (every epoch, every batch) as one ``jax.jit`` function,
  a ``lax.scan`` over epochs of a ``lax.scan`` over batches (one scan over the epochs for a
  full batch) of plain SGD steps taken with ``jax.value_and_grad``; the math is fastmlp's:
  ``x @ W + b`` with W (n_in, n_out), Leaky ReLU with derivative 1 at 0, mean BCE with
  logits, and the epoch loss is the mean of the batch losses, each taken before its step.
- ``numba_xor``: the XOR job as one hand-written ``numba.njit`` loop of the same math
  (None when numba is not installed).
- ``NumpyFloor`` / ``ScipyFloor``: a training run's matrix products and nothing else,
  ``test_bench_medium.gemm_floor``'s definition (per batch the L forward products, then
  dW for every layer and dA for every layer but the first) for any layer sizes, on
  preallocated buffers; through ``np.matmul(out=)`` (NumPy's OpenBLAS) or through SciPy's
  f2py ``?gemm`` (SciPy's OpenBLAS, the build fastmlp's compiled backend calls);
  ``jax_gemm_floor``: the same products in a jitted scan (XLA's own dot kernels).

Importing this module turns on ``jax_enable_x64`` (the float64 jobs need it), so the
float32 jobs give every array an explicit dtype.
"""

import math
import time

import numpy as np

try:
    import jax
except ImportError:  # the script skips the JAX rows
    jax = None
else:
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax import lax

try:
    import numba
except ImportError:
    numba = None


# ---------------------------------------------------------------- JAX


def jax_params_from(params):
    """[W1, b1, W2, b2, ...] NumPy arrays as JAX arrays of the same dtypes."""
    return [jax.device_put(np.array(p)) for p in params]


def jax_forward(params, X, slope):
    """The network's output logits: Leaky ReLU hidden layers, identity output layer."""
    A = X
    n_layers = len(params) // 2
    for layer in range(n_layers):
        Z = A @ params[2 * layer] + params[2 * layer + 1]
        A = jnp.where(Z >= 0, Z, slope * Z) if layer < n_layers - 1 else Z
    return A


def jax_loss(params, X, Y, slope):
    """Mean BCE with logits, softplus(z) - z * y (its gradient is sigmoid(z) - y, also at
    z = 0, where the first XOR step has its output logits)."""
    Z = jax_forward(params, X, slope)
    return jnp.mean(jax.nn.softplus(Z) - Z * Y)


def jax_trainer(epochs, n_batches, lr, slope=0.01):
    """A jitted ``train(params, X, Y) -> (final params, per-epoch losses)``: `epochs` passes
    of plain SGD over X in `n_batches` consecutive, equal batches (no shuffling)."""
    value_and_grad = jax.value_and_grad(jax_loss)

    def step(params, batch):
        Xb, Yb = batch
        loss, grads = value_and_grad(params, Xb, Yb, slope)
        return [p - jnp.asarray(lr, p.dtype) * g for p, g in zip(params, grads)], loss

    def train(params, X, Y):
        n, d = X.shape
        if n_batches == 1:  # full batch: one step per epoch
            def epoch(params, _):
                return step(params, (X, Y))
        else:
            assert n % n_batches == 0, (n, n_batches)
            batches = (X.reshape(n_batches, n // n_batches, d), Y.reshape(n_batches, n // n_batches, -1))

            def epoch(params, _):
                params, losses = lax.scan(step, params, batches)
                return params, jnp.mean(losses)

        return lax.scan(epoch, params, None, length=epochs)

    return jax.jit(train)


def jax_gemm_floor(epochs, n_batches):
    """A jitted ``run(X, W) -> the last batch's products``: the GEMM floor's products (the
    L forward ones, dW for every layer, dA for every layer but the first) in JAX, scanned
    like ``jax_trainer``'s steps, with nothing else: a linear chain, Z_l = Z_(l-1) @ W_l,
    the output's Z as its own dZ, dA_(l-1) = dZ_l @ W_l.T as the next dZ, so that every
    product depends on the batch (XLA hoists products of loop-invariant operands out of
    the loop) and none is dead code."""

    def run(X, W):
        n, d = X.shape
        batches = X.reshape(n_batches, n // n_batches, d)

        def products(Xb):
            ins = [Xb]
            for Wl in W:
                ins.append(ins[-1] @ Wl)
            dZ, outs = ins[-1], list(ins[1:])
            for layer in reversed(range(len(W))):
                outs.append(ins[layer].T @ dZ)
                if layer > 0:
                    dZ = dZ @ W[layer].T
                    outs.append(dZ)
            return outs

        def epoch(last, _):
            return lax.scan(lambda _, Xb: (products(Xb), None), last, batches)[0], None

        first = jax.eval_shape(products, batches[0])
        init = [jnp.zeros(s.shape, s.dtype) for s in first]
        return lax.scan(epoch, init, None, length=epochs)[0]

    return jax.jit(run)


def block(tree):
    """Wait for every array of a JAX result (``jax.block_until_ready``)."""
    return jax.block_until_ready(tree)


# ---------------------------------------------------------------- numba


if numba is not None:

    @numba.njit(cache=False)
    def _numba_xor(X, Y, W1_0, b1_0, W2_0, b2_0, epochs, lr, slope):
        """2-h-1 network, full-batch SGD: the seed's steps, BCE with logits, Leaky ReLU with
        derivative 1 at 0. Returns the final W1, b1, W2, b2 and each epoch's loss (taken
        before its step). No fastmath: IEEE arithmetic, like fastmlp's build."""
        W1, b1, W2, b2 = W1_0.copy(), b1_0.copy(), W2_0.copy(), b2_0.copy()
        n, d = X.shape
        h = W1.shape[1]
        Z1 = np.empty((n, h))
        A1 = np.empty((n, h))
        G2 = np.empty(n)
        dW1 = np.empty((d, h))
        db1 = np.empty(h)
        dW2 = np.empty(h)
        losses = np.empty(epochs)
        inv_n = 1.0 / n
        for e in range(epochs):
            loss = 0.0
            db2 = 0.0
            # forward, loss and the output's gradient
            for i in range(n):
                z2 = b2[0]
                for j in range(h):
                    z = b1[j]
                    for p in range(d):
                        z += X[i, p] * W1[p, j]
                    Z1[i, j] = z
                    a = z if z >= 0 else slope * z
                    A1[i, j] = a
                    z2 += a * W2[j, 0]
                y = Y[i, 0]
                ez = math.exp(-abs(z2))
                loss += max(z2, 0.0) - z2 * y + math.log1p(ez)
                s = 1.0 / (1.0 + ez) if z2 >= 0 else ez / (1.0 + ez)
                G2[i] = (s - y) * inv_n
                db2 += G2[i]
            losses[e] = loss * inv_n
            # backward
            for j in range(h):
                gw = 0.0
                gb = 0.0
                for p in range(d):
                    dW1[p, j] = 0.0
                for i in range(n):
                    gw += A1[i, j] * G2[i]
                    dz = G2[i] * W2[j, 0]
                    if Z1[i, j] < 0:
                        dz *= slope
                    gb += dz
                    for p in range(d):
                        dW1[p, j] += X[i, p] * dz
                dW2[j] = gw
                db1[j] = gb
            # SGD step
            for j in range(h):
                W2[j, 0] -= lr * dW2[j]
                b1[j] -= lr * db1[j]
                for p in range(d):
                    W1[p, j] -= lr * dW1[p, j]
            b2[0] -= lr * db2
        return W1, b1, W2, b2, losses

    numba_xor = _numba_xor
else:
    numba_xor = None


# ---------------------------------------------------------------- GEMM floors


class NumpyFloor:
    """``test_bench_medium.gemm_floor`` for any layer sizes: per batch of consecutive rows,
    the L forward products and the backward dW (every layer) and dA (every layer but the
    first: no dX) products, with ``np.matmul(..., out=)`` on buffers allocated once and
    filled with N(0, 0.1^2); no activations, loss or update."""

    def __init__(self, X, sizes, batch, dtype, seed=3):
        rng = np.random.default_rng(seed)
        self.X, self.batch = X, batch
        fill = lambda *shape: (rng.standard_normal(shape) * 0.1).astype(dtype)
        L = len(sizes) - 1
        self.W = [fill(sizes[l], sizes[l + 1]) for l in range(L)]
        self.A = [fill(batch, sizes[l + 1]) for l in range(L - 1)]   # hidden activations
        self.dZ = [fill(batch, sizes[l + 1]) for l in range(L)]
        self.Z = [np.empty((batch, sizes[l + 1]), dtype) for l in range(L)]
        self.dW = [np.empty((sizes[l], sizes[l + 1]), dtype) for l in range(L)]
        self.dA = [np.empty((batch, sizes[l + 1]), dtype) for l in range(L - 1)]

    def products(self, Xb):
        """(out, a, b) for out = a @ b: one batch's products, in the bench's order."""
        L = len(self.W)
        ins = [Xb] + self.A
        calls = [(self.Z[l], ins[l], self.W[l]) for l in range(L)]
        for l in reversed(range(L)):
            calls.append((self.dW[l], ins[l].T, self.dZ[l]))
            if l > 0:
                calls.append((self.dA[l - 1], self.dZ[l], self.W[l].T))
        return calls

    def run(self, epochs):
        mm = np.matmul
        for _ in range(epochs):
            for start in range(0, len(self.X), self.batch):
                for out, a, b in self.products(self.X[start:start + self.batch]):
                    mm(a, b, out=out)

    def check(self):
        """The last batch's products are in the buffers (after ``run``)."""
        Xb = self.X[-self.batch:]
        rtol = 1e-4 if self.X.dtype == np.float32 else 1e-10
        for out, a, b in self.products(Xb):
            ref = a.astype(np.float64) @ b.astype(np.float64)
            np.testing.assert_allclose(out, ref, rtol=rtol, atol=rtol * max(1.0, np.abs(ref).max()))


class ScipyFloor(NumpyFloor):
    """The same products through SciPy's ``?gemm`` (f2py; fastmlp calls the same OpenBLAS
    build through ``scipy.linalg.cython_blas``, without f2py's per-call argument checks).
    Every call's arguments are prepared once, so a run is the calls alone."""

    def __init__(self, X, sizes, batch, dtype, seed=3):
        super().__init__(X, sizes, batch, dtype, seed)
        from scipy.linalg import blas

        self.gemm = blas.sgemm if np.dtype(dtype) == np.float32 else blas.dgemm
        self.calls = []
        for start in range(0, len(X), batch):
            for out, a, b in self.products(X[start:start + batch]):
                self.calls.append(self._args(out, a, b))
        for args, kwargs in self.calls[:len(self.calls) // (len(X) // batch)]:
            assert np.shares_memory(self.gemm(*args, **kwargs), kwargs["c"])  # written in place

    @staticmethod
    def _args(out, a, b):
        """C-ordered out = a @ b as Fortran-ordered out.T = b.T @ a.T: no copies."""
        def fortran(m):  # (view, trans) such that op(view) == m.T, view Fortran-contiguous
            return (m.T, 0) if m.flags.c_contiguous else (m, 1)

        (A_, ta), (B_, tb) = fortran(b), fortran(a)
        assert out.flags.c_contiguous and A_.flags.f_contiguous and B_.flags.f_contiguous
        return (1.0, A_, B_), {"beta": 0.0, "c": out.T, "trans_a": ta, "trans_b": tb, "overwrite_c": 1}

    def run(self, epochs):
        gemm, calls = self.gemm, self.calls
        for _ in range(epochs):
            for args, kwargs in calls:
                gemm(*args, **kwargs)


class MklFloor(NumpyFloor):
    """The same products through Intel MKL's ``?gemm`` (the library fastmlp's compiled backend
    calls when the mkl package is installed: fastmlp._blas), called through ctypes with every
    call's arguments prepared once (a foreign call costs ~1 us: under 2% of a medium epoch).
    ``available()`` is False where MKL is not installed."""

    @staticmethod
    def available():
        from fastmlp import _blas

        return not isinstance(_blas._load_mkl(), str)

    def __init__(self, X, sizes, batch, dtype, seed=3):
        import ctypes

        from fastmlp import _blas

        super().__init__(X, sizes, batch, dtype, seed)
        lib = _blas._load_mkl().lib
        single = np.dtype(dtype) == np.float32
        self.gemm = lib.sgemm_ if single else lib.dgemm_
        self.gemm.restype = None
        scalar = ctypes.c_float if single else ctypes.c_double
        self._keep = [scalar(1.0), scalar(0.0)]
        one, zero = (ctypes.byref(v) for v in self._keep)

        def operand(m):  # (address, leading dimension, trans) of m.T in column-major terms
            if m.flags.c_contiguous:
                return m.ctypes.data, m.shape[1], b"N"
            assert m.T.flags.c_contiguous
            return m.ctypes.data, m.shape[0], b"T"

        def integer(v):
            c = ctypes.c_int(v)
            self._keep.append(c)
            return ctypes.byref(c)

        self.calls = []
        for start in range(0, len(X), batch):
            for out, a, b in self.products(X[start:start + batch]):
                (pa, lda, ta), (pb, ldb, tb) = operand(a), operand(b)
                M, K = a.shape
                N = b.shape[1]
                assert out.flags.c_contiguous and out.shape == (M, N)
                self.calls.append((ctypes.c_char_p(tb), ctypes.c_char_p(ta), integer(N), integer(M),
                                   integer(K), one, ctypes.c_void_p(pb), integer(ldb),
                                   ctypes.c_void_p(pa), integer(lda), zero,
                                   ctypes.c_void_p(out.ctypes.data), integer(N)))

    def run(self, epochs):
        gemm, calls = self.gemm, self.calls
        for _ in range(epochs):
            for args in calls:
                gemm(*args)


# ---------------------------------------------------------------- comparing results


def max_rel_diff(params_a, params_b):
    """max over arrays of max|a - b| / max|b|: how far two parameter lists are apart."""
    worst = 0.0
    for a, b in zip(params_a, params_b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        worst = max(worst, float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300)))
    return worst


def fastmlp_params(net):
    """fastmlp's weights as [W1, b1, W2, b2, ...] copies."""
    out = []
    for W, b in zip(net.coefs_, net.intercepts_):
        out += [np.array(W), np.array(b)]
    return out


def after_pause(fn, pause):
    """Seconds one call of `fn` takes right after `pause` seconds of sleep."""
    time.sleep(pause)
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0
