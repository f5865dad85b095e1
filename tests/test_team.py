"""fastmlp's own threads for the large products of a fit (_team.h, fastmlp._blas): on
SciPy's OpenBLAS with its own threads, each large product (from _core.SPLIT_MIN_PRODUCT
multiply-adds in float64, twice that in float32) is cut into _blas.TEAM blocks,
one-thread ?gemm calls that the fit's thread and fastmlp's workers share. A fit's bits do not depend on
who ran the blocks; the user's limit on the BLAS's threads holds; a forked child starts
its own workers."""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import fastmlp
from fastmlp import _blas

from _support import backend_module


@pytest.fixture
def scipy_blas():
    """SciPy's OpenBLAS with its own threads, on a machine of 2 or more cores (else skipped)."""
    core = backend_module("cython")
    if _blas.TEAM < 2 or not core._team_available() or not _blas.libraries(core.BLAS_LIBRARY_DIR):
        pytest.skip("fastmlp's threads serve SciPy's OpenBLAS with its own threads, on 2 or more cores")
    before = fastmlp.get_blas()
    fastmlp.set_blas("scipy")
    yield
    fastmlp.set_blas(before)


def small_fit():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(400, 64)), rng.integers(0, 2, size=400).astype(float)
    fastmlp.MLP([64, 100, 1], backend="cython").fit(X, y, epochs=1, batch_size=200)


def test_a_limit_on_the_blas_threads_holds_for_fastmlps_threads(scipy_blas):
    core = backend_module("cython")
    with threadpool_limits(1, user_api="blas"):
        with _blas.blas_threads(core, [1000, 1000, 1], 4, single=True):
            split = core._split_products(1, 0)
            core._split_products(*split)
    assert split == (_blas.TEAM, 0)       # the same blocks, run by the fit's thread alone


LARGE = ([784, 192, 1], 256, 64)      # 64 x 784 x 192 = 9.6 M multiply-adds: large products
MID = ([64, 100, 1], 400, 200)        # 200 x 64 x 100 = 1.28 M (digits): cut in float64, not float32


def large_fit(dtype, backend="cython", epochs=3, shape=LARGE):
    sizes, rows, batch_size = shape
    rng = np.random.default_rng(3)
    X = rng.standard_normal((rows, sizes[0])).astype(dtype)
    y = (X[:, 0] + X[:, 1] > 0).astype(dtype)
    return fastmlp.MLP(sizes, seed=2, dtype=dtype, backend=backend).fit(
        X, y, epochs=epochs, batch_size=batch_size, optimizer="adam", lr=0.01)


def splits_seen(dtype, shape):
    """The blocks per large product that the fit's thread had set, seen from a callback."""
    core, seen = backend_module("cython"), set()

    def callback(epoch, logs):
        blocks, workers = core._split_products(1, 0)
        core._split_products(blocks, workers)
        seen.add(blocks)

    sizes, rows, batch_size = shape
    X = np.random.default_rng(0).standard_normal((rows, sizes[0])).astype(dtype)
    fastmlp.MLP(sizes, dtype=dtype, backend="cython").fit(X, X[:, 0] > 0, epochs=2, batch_size=batch_size,
                                                          callback=callback)
    return seen


@pytest.mark.parametrize("dtype, shape, atol", [("float32", LARGE, 2e-3), ("float64", LARGE, 1e-9),
                                               ("float64", MID, 1e-10)])
def test_large_fits_give_the_same_bits_however_many_threads_run(scipy_blas, dtype, shape, atol):
    """The blocks of a large product are the same calls whoever runs them: a fit's bits do not
    depend on the worker threads taking part, being left out (as when found slow), the user's
    limit, or a small fit that trains in another thread at the same time (which sets OpenBLAS
    to one thread: with OpenBLAS's own threads that changed a large fit's bits)."""
    core = backend_module("cython")
    reference = large_fit(dtype, shape=shape).params_
    with threadpool_limits(1, user_api="blas"):
        alone = large_fit(dtype, shape=shape).params_
    core._team_late(True)
    try:
        left_out = large_fit(dtype, shape=shape).params_     # after each product: the next ones alone
    finally:
        core._team_late(False)
    assert splits_seen(dtype, shape) == {_blas.TEAM}     # (the products are cut)
    stop, beside = threading.Event(), threading.Thread(
        target=lambda: [small_fit() for _ in iter(stop.is_set, True)])
    beside.start()
    try:
        with_small = large_fit(dtype, shape=shape).params_
    finally:
        stop.set()
        beside.join()
    for params in (alone, left_out, with_small):
        np.testing.assert_array_equal(params, reference)
    numpy_fit = large_fit(dtype, backend="numpy", shape=shape).params_
    np.testing.assert_allclose(reference, numpy_fit, rtol=0, atol=atol)



def test_large_fits_in_two_threads_give_each_its_own_bits(scipy_blas):
    """Two large float32 fits at once: one holds the workers, the other runs its blocks alone;
    each gives the bits it gives alone."""
    alone = large_fit("float32").params_
    results = [None, None]

    def fit(i):
        results[i] = large_fit("float32").params_

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for params in results:
        np.testing.assert_array_equal(params, alone)


FORKED = r"""
import json, os, sys, time
import numpy as np
sys.path.insert(0, sys.argv[1])
import test_team
first = test_team.large_fit("float32").params_      # the parent's workers started
pid = os.fork()
if pid == 0:
    same = np.array_equal(test_team.large_fit("float32").params_, first)
    os._exit(0 if same else 3)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        break
    time.sleep(0.01)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    status = None
again = np.array_equal(test_team.large_fit("float32").params_, first)
print(json.dumps({"child": None if status is None else os.waitstatus_to_exitcode(status), "again": again}))
"""


@pytest.mark.slow     # (a subprocess)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX only")
def test_a_forked_child_runs_large_fits_on_workers_of_its_own(scipy_blas):
    env = {**os.environ, "FASTMLP_BLAS": "scipy"}
    child = subprocess.run([sys.executable, "-c", FORKED, os.path.dirname(__file__)], capture_output=True,
                           text=True, timeout=120, env=env)
    assert child.returncode == 0, child.stderr[-4000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report == {"child": 0, "again": True}, f"the forked child's exit code (3: other bits, None: hung): {report}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(dtype=st.sampled_from(["float32", "float64"]), m=st.sampled_from([17, 33, 100, 200, 257]),
       k=st.sampled_from([64, 300, 784]), n=st.sampled_from([9, 64, 100, 333]))
def test_products_cut_into_blocks_are_the_products(scipy_blas, dtype, m, k, n):
    """A layer's forward product, weight gradient and carried-back gradient, cut into blocks
    (the fit's thread set to `_blas.TEAM` blocks and a worker), against NumPy in float64:
    shapes around the blocks' unrolling (16 rows, 8 columns), cut along either side. (The
    fixture only selects SciPy's OpenBLAS, the same for every example.)"""
    core = backend_module("cython")
    assume(m * n * k * np.dtype(dtype).itemsize >= 8 * core.SPLIT_MIN_PRODUCT)
    rng = np.random.default_rng(m * n + k)
    A, W, b, dZ = (rng.standard_normal(s).astype(dtype) for s in [(m, k), (k, n), n, (m, n)])
    Z, dW, db, dA = (np.empty(s, dtype) for s in [(m, n), (k, n), n, (m, k)])
    before = core._split_products(_blas.TEAM, 1)
    try:
        core.dense_forward(A, W, b, Z)
        core.dense_backward(A, W, dZ, dW, db, dA)
    finally:
        core._split_products(*before)
    A64, W64, dZ64 = (x.astype(np.float64) for x in (A, W, dZ))
    tol = {"float32": 2e-4, "float64": 1e-11}[dtype] * np.sqrt(max(m, k))
    for got, want in ((Z, A64 @ W64 + b), (dW, A64.T @ dZ64), (dA, dZ64 @ W64.T)):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)
