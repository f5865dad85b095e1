"""The BLAS library behind the compiled backend's products (fastmlp._blas): SciPy's OpenBLAS
or Intel MKL (the ``mkl`` extra). Fits and kernels on MKL agree with those on SciPy's
OpenBLAS and with the NumPy backend; the choice is checked, and kept when a call fails."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastmlp
from fastmlp import _blas, _validation

from _support import assert_close, backend_module, make_data

backend_module("cython")  # every test here is about the compiled backend: a pure-Python install skips them

LIBRARIES = ("scipy", "mkl")
HAVE_MKL = _blas.mkl_path() is not None
needs_mkl = pytest.mark.skipif(not HAVE_MKL, reason="the mkl package is not installed (fastmlp[mkl])")


@pytest.fixture(params=LIBRARIES)
def library(request):
    """Each BLAS library in turn for the compiled backend (MKL skipped where not installed);
    the choice in force before the test comes back after it."""
    if request.param == "mkl" and not HAVE_MKL:
        pytest.skip("the mkl package is not installed (fastmlp[mkl])")
    before = fastmlp.get_blas()
    assert fastmlp.set_blas(request.param) == request.param
    yield request.param
    fastmlp.set_blas(before)


def fit(sizes, X, y, dtype, backend="cython", **options):
    model = fastmlp.MLP(sizes, seed=5, dtype=dtype, backend=backend)
    return model.fit(X, y, epochs=3, batch_size=64, shuffle=True, lr=0.05, **options)


@pytest.mark.parametrize("options", [{}, {"momentum": 0.9, "nesterov": True}], ids=["sgd", "nesterov"])
def test_fits_agree_with_the_numpy_backend(library, dtype, options):
    # every product of a 64-row batch is above BLAS_MIN_WORK: they all go to the library
    # (plain SGD takes its step inside the weight-gradient products, momentum does not)
    sizes = [48, 96, 40, 1]
    X, Y = make_data(256, sizes, seed=1, dtype=dtype)
    compiled = fit(sizes, X, Y[:, 0], dtype, **options)
    reference = fit(sizes, X, Y[:, 0], dtype, backend="numpy", **options)
    assert_close(compiled.params_, reference.params_, dtype, scale=10)
    assert_close(compiled.history_["loss"], reference.history_["loss"], dtype, scale=10)


@needs_mkl
def test_mkl_and_openblas_fits_agree(dtype):
    sizes = [784, 128, 64, 1]     # the medium job's shape, smaller
    X, Y = make_data(512, sizes, seed=2, dtype=dtype)
    before = fastmlp.get_blas()
    try:
        fits = {}
        for name in LIBRARIES:
            fastmlp.set_blas(name)
            fits[name] = [fit(sizes, X, Y[:, 0], dtype)]
    finally:
        fastmlp.set_blas(before)
    assert_close(fits["mkl"][0].params_, fits["scipy"][0].params_, dtype, scale=10)
    assert_close(fits["mkl"][0].history_["loss"], fits["scipy"][0].history_["loss"], dtype, scale=10)


def test_a_fit_repeats_exactly_on_one_library(library, dtype):
    sizes = [64, 128, 1]
    X, Y = make_data(300, sizes, seed=3, dtype=dtype)
    first, second = (fit(sizes, X, Y[:, 0], dtype) for _ in range(2))
    np.testing.assert_array_equal(first.params_, second.params_)


@pytest.mark.parametrize("m, n, k", [(64, 96, 48), (128, 256, 784), (3, 200, 700)])
def test_dense_kernels_agree_with_numpy(library, dtype, m, n, k):
    core, ref = backend_module("cython"), backend_module("numpy")
    rng = np.random.default_rng(m + n + k)
    A, W = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    b, dZ = rng.standard_normal(n).astype(dtype), rng.standard_normal((m, n)).astype(dtype)
    out = {}
    for name, module in (("compiled", core), ("numpy", ref)):
        Z = np.empty((m, n), dtype)
        dW, db, dA = np.empty((k, n), dtype), np.empty(n, dtype), np.empty((m, k), dtype)
        module.dense_forward(A, W, b, Z)
        module.dense_backward(A, W, dZ, dW, db, dA)
        out[name] = (Z, dW, db, dA)
    scale = np.sqrt(k) * 10     # sums of k terms
    for got, want in zip(out["compiled"], out["numpy"]):
        assert_close(got, want, dtype, scale=scale)


def test_the_choice_is_checked_and_reported():
    before = fastmlp.get_blas()
    assert before in ("scipy", "mkl")
    assert before == ("mkl" if HAVE_MKL else "scipy") or os.environ.get(_blas.ENV)
    for bad in ("openblas", "MKL", None, 1):
        with pytest.raises(ValueError, match="BLAS must be one of"):
            fastmlp.set_blas(bad)
    assert fastmlp.get_blas() == before
    try:
        assert fastmlp.set_blas("scipy") == "scipy" == fastmlp.get_blas()
        assert "OpenBLAS" in _blas.describe()
        assert fastmlp.set_blas("auto") == ("mkl" if HAVE_MKL else "scipy")
    finally:
        fastmlp.set_blas(before)


def test_mkl_that_cannot_load_leaves_the_choice(monkeypatch):
    before = fastmlp.get_blas()
    monkeypatch.setattr(_blas, "_mkl", "the mkl package is not installed (a test's stand-in)")
    with pytest.raises(RuntimeError, match="set_blas\\('mkl'\\): the mkl package is not installed"):
        fastmlp.set_blas("mkl")
    assert fastmlp.get_blas() == before
    try:
        assert fastmlp.set_blas("auto") == "scipy"    # auto falls back without a word
    finally:
        monkeypatch.undo()
        fastmlp.set_blas(before)


def test_no_switch_while_a_fit_trains(library):
    X, Y = make_data(256, [64, 100, 1], seed=4)
    tried = []

    def callback(epoch, logs):
        with pytest.raises(RuntimeError, match="training now"):
            fastmlp.set_blas("scipy")
        tried.append(fastmlp.get_blas())

    # 64 x 100 x 200: a small product, so the run holds the BLAS's thread setting
    fastmlp.MLP([64, 100, 1], backend="cython").fit(X, Y[:, 0], epochs=2, batch_size=200, callback=callback)
    assert tried == [library, library]
    assert fastmlp.get_blas() == library


@pytest.mark.parametrize("optimizer", ["sgd", "lbfgs"])
def test_no_switch_during_a_large_fit(library, optimizer):
    """A fit whose products are large (512x256 on 256-row batches: the BLAS keeps its own
    threads, so the run sets no thread count) is counted all the same: set_blas from another
    thread while it trains raises, names the running fit, and leaves the library as it was;
    the fit ends with the result of a fit that nobody disturbed. (Before, set_blas switched
    the library under a large OpenBLAS fit.) L-BFGS's calls are counted too."""
    import threading

    sizes, other = [512, 256, 1], "mkl" if library == "scipy" else "scipy"
    X, Y = make_data(2048, sizes, seed=8)
    options = dict(epochs=3, optimizer=optimizer, batch_size=None if optimizer == "lbfgs" else 256, lr=0.01)
    running, tried, seen = threading.Event(), threading.Event(), []

    def callback(epoch, logs):
        if epoch == 0:                   # the fit is inside its loop (between two epochs)
            seen.append(_blas._fits)
            running.set()
            assert tried.wait(timeout=120), "the main thread never tried set_blas"

    result = {}
    disturbed = threading.Thread(target=lambda: result.setdefault("fit", fastmlp.MLP(sizes, seed=3).fit(
        X, Y[:, 0], callback=callback, **options)))
    disturbed.start()
    try:
        assert running.wait(timeout=120), "the fit never reached its first epoch's end"
        if other == "mkl" and not HAVE_MKL:
            other = "auto"
        with pytest.raises(RuntimeError, match=r"set_blas\(.*\): 1 fit\(s\) of the compiled backend are training now"):
            fastmlp.set_blas(other)
        assert fastmlp.get_blas() == library
    finally:
        tried.set()
        disturbed.join(timeout=300)
    assert not disturbed.is_alive() and "fit" in result
    assert seen == [1] and _blas._fits == 0
    alone = fastmlp.MLP(sizes, seed=3).fit(X, Y[:, 0], **options)
    np.testing.assert_array_equal(result["fit"].params_, alone.params_)
    assert fastmlp.set_blas(library) == library          # free to switch again once it ended


@pytest.mark.slow     # (a subprocess)
@pytest.mark.parametrize("value, expected", [("scipy", "scipy"), ("", "mkl" if HAVE_MKL else "scipy"),
                                             ("auto", "mkl" if HAVE_MKL else "scipy"),
                                             pytest.param("mkl", "mkl", marks=needs_mkl)])
def test_the_environment_variable_chooses_at_import(value, expected):
    env = dict(os.environ, FASTMLP_BLAS=value)
    out = subprocess.run([sys.executable, "-c", "import fastmlp; print(fastmlp.get_blas())"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [expected]


@pytest.mark.slow     # (a subprocess)
def test_a_bad_environment_variable_is_named():
    env = dict(os.environ, FASTMLP_BLAS="openblas")
    code = "import fastmlp; fastmlp.MLP([2, 2, 1], backend='cython')"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0
    assert "FASTMLP_BLAS must be one of auto, mkl, scipy, got 'openblas'" in out.stderr


@pytest.mark.parametrize("bad", [None, np.nan, np.inf, -np.inf])
def test_the_finite_check_on_large_inputs(library, dtype, bad):
    a = np.ones(_validation.ONE_THREAD_MAX + 3, dtype)     # past the one-thread chunks
    if bad is not None:
        a[-2] = bad
    assert _validation.all_finite(a) is (bad is None)
    squares = _blas.squares(a)
    if library == "mkl":
        assert squares == pytest.approx(a.size) if bad is None else not np.isfinite(squares)
    else:
        assert squares is None
    big = np.full(_validation.ONE_THREAD_MAX + 3, np.finfo(dtype).max / 4, dtype)   # squares overflow
    assert _validation.all_finite(big) is True


@needs_mkl
def test_mkl_fits_do_not_depend_on_alignment(dtype):
    # fastmlp loads MKL in its reproducible mode (MKL_CBWR=AUTO): the same fit from X at
    # different addresses (16-byte steps off a 64-byte boundary) gives the same bits
    sizes = [200, 96, 1]
    X, Y = make_data(256, sizes, seed=6, dtype=dtype)
    before = fastmlp.get_blas()
    fastmlp.set_blas("mkl")
    try:
        fits = []
        for offset in (0, 16, 48, dtype.itemsize):
            raw = np.empty(X.nbytes + 128, np.uint8)
            start = (-raw.ctypes.data) % 64 + offset
            moved = raw[start:start + X.nbytes].view(dtype).reshape(X.shape)
            moved[...] = X
            assert moved.ctypes.data % 64 == offset
            fits.append(fit(sizes, moved, Y[:, 0], dtype).params_)
    finally:
        fastmlp.set_blas(before)
    for params in fits[1:]:
        np.testing.assert_array_equal(params, fits[0])
    assert "MKL_CBWR=" in _blas.describe()


@pytest.mark.slow     # (a subprocess)
@needs_mkl
def test_mkl_keeps_32_bit_integers_under_an_ilp64_environment():
    # fastmlp passes 32-bit integers to ?gemm: it sets MKL's LP64 interface, which wins
    # over MKL_INTERFACE_LAYER=ILP64 (were it not, the products would read garbage sizes)
    code = (
        "import numpy as np, fastmlp\n"
        "assert fastmlp.get_blas() == 'mkl'\n"
        "rng = np.random.default_rng(0); X = rng.standard_normal((256, 100)); y = (X[:, 0] > 0) * 1.0\n"
        "fit = lambda: fastmlp.MLP([100, 64, 1], seed=1).fit(X, y, epochs=3, batch_size=64).params_.copy()\n"
        "on_mkl = fit(); fastmlp.set_blas('scipy'); on_openblas = fit()\n"
        "np.testing.assert_allclose(on_mkl, on_openblas, rtol=1e-9, atol=1e-12)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, MKL_INTERFACE_LAYER="ILP64", FASTMLP_BLAS="mkl")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok"]
