"""The compiled backend's BLAS runs on one thread while a fit with small batch products
trains (fastmlp._blas), and the previous thread count comes back when the last such fit ends,
whatever happened: fits in several threads, a callback that raises, products too small for
BLAS, sparse input. Large products on SciPy's OpenBLAS: one-thread blocks shared with
fastmlp's own threads (_team.h), the same bits however many take part."""

import os
import threading

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits

import fastmlp
from fastmlp import _blas

from _support import backend_module


@pytest.fixture(autouse=True, params=["scipy", "mkl"])
def library(request):
    """Every test here on each BLAS library the compiled backend can call (fastmlp._blas;
    MKL where the mkl package is installed); the choice before comes back after."""
    if request.param == "mkl" and _blas.mkl_path() is None:
        pytest.skip("the mkl package is not installed (fastmlp[mkl])")
    before = fastmlp.get_blas()
    fastmlp.set_blas(request.param)
    yield request.param
    fastmlp.set_blas(before)


def blas_threads():
    """The thread counts of the BLAS library the compiled backend calls."""
    if fastmlp.get_blas() == "mkl":
        return [_blas.mkl_threads().get()]
    core = backend_module("cython")
    return [lib.get_num_threads() for lib in threadpool_info_of(core.BLAS_LIBRARY_DIR)]


def threadpool_info_of(directory):
    return [lib for lib in ThreadpoolController().lib_controllers
            if lib.internal_api == "openblas" and lib.filepath.startswith(directory)]


@pytest.fixture
def two_threads():
    core = backend_module("cython")
    if _blas.mkl_threads() is None and not _blas.libraries(core.BLAS_LIBRARY_DIR):
        pytest.skip("the compiled backend's BLAS is not an OpenBLAS with its own threads here")
    with threadpool_limits(2, user_api="blas"):
        assert set(blas_threads()) == {2}
        yield


def fit_seeing_threads(sizes, n, batch_size, backend="cython", fail_at=None):
    """Fit a network of `sizes`; the BLAS thread counts seen at each epoch's end."""
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, sizes[0])), rng.integers(0, 2, size=n).astype(float)
    seen = []

    def callback(epoch, logs):
        seen.append(blas_threads())
        if epoch == fail_at:
            raise RuntimeError("a callback that fails")

    model = fastmlp.MLP(sizes, backend=backend)
    model.fit(X, y, epochs=2, batch_size=batch_size, callback=callback)
    return seen


def test_small_products_run_on_one_thread(two_threads):
    # digits-sized: 200 x 64 x 100 = 1.28 M multiply-adds per product
    seen = fit_seeing_threads([64, 100, 1], 400, 200)
    assert seen == [[1] * len(blas_threads())] * 2
    assert set(blas_threads()) == {2}


@pytest.mark.parametrize("sizes, batch_size, backend", [
    ([2, 4, 1], 4, "cython"),           # no product reaches BLAS: nothing to set
    ([64, 100, 1], 200, "numpy"),       # NumPy's BLAS is not the compiled backend's
])
def test_other_fits_leave_the_setting_alone(two_threads, sizes, batch_size, backend):
    seen = fit_seeing_threads(sizes, 2 * batch_size, batch_size, backend)
    assert seen == [[2] * len(blas_threads())] * 2


def test_a_failed_fit_restores_the_setting(two_threads):
    with pytest.raises(RuntimeError, match="a callback that fails"):
        fit_seeing_threads([64, 100, 1], 400, 200, fail_at=0)
    assert set(blas_threads()) == {2}


def test_overlapping_runs_restore_when_the_last_one_ends(two_threads):
    core = backend_module("cython")
    first = _blas.blas_threads(core, [64, 100, 1], 200)
    second = _blas.blas_threads(core, [64, 100, 1], 200)
    with first:
        second.__enter__()
    assert set(blas_threads()) == {1}      # `second` still runs
    second.__exit__(None, None, None)
    assert set(blas_threads()) == {2}


def start_fits(sizes, rows, batch_size, epochs, make_callback):
    """Two compiled-backend fits of `sizes` on random data, each in a thread of its own with
    the callback ``make_callback(i)`` (i = 0, 1); returns the started threads."""
    def fit(i):
        rng = np.random.default_rng(i)
        X, y = rng.normal(size=(rows, sizes[0])), rng.integers(0, 2, size=rows).astype(float)
        fastmlp.MLP(sizes, backend="cython").fit(X, y, epochs=epochs, batch_size=batch_size,
                                                 callback=make_callback(i))

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    return threads


def test_fits_in_threads_share_the_setting(two_threads, library):
    barrier = threading.Barrier(3)
    seen = {}

    def make_callback(i):
        def callback(epoch, logs):
            seen.setdefault(i, []).append(blas_threads())
            if epoch == 0:
                barrier.wait(timeout=30)     # both fits and the main thread meet here
                barrier.wait(timeout=30)     # ... until the main thread has looked
        return callback

    threads = start_fits([64, 100, 1], 400, 200, 3, make_callback)
    barrier.wait(timeout=30)
    in_main = blas_threads()           # while both fits run
    barrier.wait(timeout=30)
    for t in threads:
        t.join()
    ones = [1] * len(in_main)
    assert seen[0] == seen[1] == [ones] * 3
    # OpenBLAS: one process-wide count; MKL: each fit's thread has its own
    assert set(in_main) == ({1} if library == "scipy" else {2})
    assert set(blas_threads()) == {2}


@pytest.mark.parametrize("single", [True, False])
def test_large_products_run_on_fastmlps_threads(two_threads, library, single):
    # 4 x 1000 x 1000 = 4 M multiply-adds: a large product. On SciPy's OpenBLAS (POSIX
    # threads): the BLAS on one thread, the products cut into _blas.TEAM blocks for
    # fastmlp's threads, float32 and float64 alike; MKL: the BLAS's own threads
    core = backend_module("cython")
    with _blas.blas_threads(core, [1000, 1000, 1], 4, single=single):
        inside = blas_threads()
        split = core._split_products(1, 0)
        core._split_products(*split)
    team = library == "scipy" and _blas.TEAM > 1 and core._team_available()
    assert set(inside) == ({1} if team else {2})
    assert split == ((_blas.TEAM, min(_blas.TEAM, 2) - 1) if team else (1, 0))
    assert set(blas_threads()) == {2} and core._split_products(1, 0) == (1, 0)
    seen = fit_seeing_threads([1000, 1000, 1], 8, 4)      # (a float64 fit)
    assert seen == [[1 if team else 2] * len(blas_threads())] * 2
    assert set(blas_threads()) == {2} and core._split_products(1, 0) == (1, 0)


def test_digits_sized_float64_products_run_on_fastmlps_threads(two_threads, library):
    # 200 x 64 x 100 = 1.28 M multiply-adds: OpenBLAS on one thread; in float64 the product is
    # cut into _blas.TEAM blocks for fastmlp's threads (SciPy's OpenBLAS), in float32 (twice as
    # fast) it stays whole below 2 * SPLIT_MIN_PRODUCT
    core = backend_module("cython")
    assert 200 * 64 * 100 >= core.SPLIT_MIN_PRODUCT > 200 * 64 * 100 / 2
    team = library == "scipy" and _blas.TEAM > 1 and core._team_available()
    for single, cut in ((False, team), (True, False)):
        with _blas.blas_threads(core, [64, 100, 1], 200, single=single):
            inside = blas_threads()
            split = core._split_products(1, 0)
            core._split_products(*split)
        assert set(inside) == {1}
        assert split == ((_blas.TEAM, min(_blas.TEAM, 2) - 1) if cut else (1, 0))
        assert set(blas_threads()) == {2} and core._split_products(1, 0) == (1, 0)


def test_the_shared_threads_option_is_refused_as_removed():
    with pytest.raises(ValueError, match="threads='shared' was removed"):
        fastmlp.MLP([3, 4, 1]).fit(np.zeros((4, 3)), np.zeros(4), threads="shared")


def test_a_bad_threads_option_is_refused():
    with pytest.raises(ValueError, match="threads"):
        fastmlp.MLP([3, 4, 1]).fit(np.zeros((4, 3)), np.zeros(4), threads="all")


def test_a_limit_of_one_thread_keeps_fits_on_one(two_threads):
    core = backend_module("cython")
    with threadpool_limits(1, user_api="blas"):
        with _blas.blas_threads(core, [64, 100, 1], 200):
            assert set(blas_threads()) == {1}
        assert set(blas_threads()) == {1}


def test_large_fits_in_threads_split_mkl_threads(two_threads, library):
    # MKL counts threads per thread: of two large fits at once, the second takes what the
    # first left (at least one) instead of a second team as large as the first. OpenBLAS
    # keeps one process-wide count, which large fits set to one while they train (their
    # products are blocks for fastmlp's threads), where POSIX threads exist
    barrier = threading.Barrier(2)
    seen = {}

    def make_callback(i):
        def callback(epoch, logs):
            if epoch == 0:
                barrier.wait(timeout=30)     # both fits are inside their runs
                seen[i] = blas_threads()[0]
                barrier.wait(timeout=30)
        return callback

    # 4 x 1000 x 1000 = 4 M multiply-adds per product: a large network
    for t in start_fits([1000, 1000, 1], 8, 4, 2, make_callback):
        t.join()
    if library == "mkl":
        most = _blas.mkl_threads().get_global()
        assert sorted(seen.values()) == ([1, most] if most > 1 else [1, 1])
    else:
        team = _blas.TEAM > 1 and backend_module("cython")._team_available()
        assert list(seen.values()) == ([1, 1] if team else [2, 2])
    assert set(blas_threads()) == {2}      # as the fixture set it
