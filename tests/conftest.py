"""Fixtures: every test that touches a backend runs on both, in both float dtypes.

The backend is chosen by passing ``backend=`` (never by patching module globals). The
"cython" parameter FAILS, not skips, when the compiled module is missing: a silent
fallback must not pass the suite. The one exception is a pure-Python install (a
py3-none-any wheel, or FASTMLP_PURE_PYTHON=1; see ``_support.pure_install_reason``),
where every test that runs the compiled backend skips, naming why.
"""

import os

import numpy as np
import pytest

import fastmlp

from _support import BACKENDS, DTYPES, backend_module, pure_install_reason


def pytest_report_header(config):
    return f"fastmlp {fastmlp.__version__} from {fastmlp.__file__}; backends: {fastmlp.available_backends()}"


def pytest_configure(config):
    """On a pure-Python install the suite runs on the NumPy backend by name, so that "auto"
    does not warn in every child process (the fallback warning has its own tests)."""
    if pure_install_reason() is not None:
        os.environ.setdefault("FASTMLP_BACKEND", "numpy")


def pytest_collection_modifyitems(config, items):
    """On a pure-Python install, skip every test parametrized with the "cython" backend."""
    reason = pure_install_reason()
    if reason is None:
        return
    for item in items:
        params = getattr(item, "callspec", None)
        if params is not None and ("cython" in params.id
                                   or any(isinstance(v, str) and v == "cython" for v in params.params.values())):
            item.add_marker(pytest.mark.skip(reason=reason))


def _needs_compiled(exc):
    """Whether an exception is the compiled backend missing (``fastmlp._core``)."""
    text = str(exc)
    return "_core" in text or "'cython' backend is not available" in text


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    try:
        return (yield)
    except ImportError as exc:          # a fixture that needs the compiled backend
        reason = pure_install_reason()
        if reason is not None and _needs_compiled(exc):
            pytest.skip(reason)
        raise


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """On a pure-Python install, a test that reaches for the compiled backend (``_core``,
    ``backend="cython"``, ``set_blas``) skips, naming why; anywhere else that fails."""
    try:
        return (yield)
    except ImportError as exc:
        reason = pure_install_reason()
        if reason is not None and _needs_compiled(exc):
            pytest.skip(reason)
        raise


@pytest.fixture(params=BACKENDS)
def backend(request):
    """A backend name; the test fails if that backend cannot be imported."""
    backend_module(request.param)
    return request.param


@pytest.fixture
def core():
    return backend_module("cython")


@pytest.fixture
def ref():
    return backend_module("numpy")


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)
