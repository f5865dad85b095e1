"""Fixtures: every test that touches a backend runs on both, in both float dtypes.

The backend is chosen by passing ``backend=`` (never by patching module globals). The
"cython" parameter FAILS, not skips, when the compiled module is missing: a silent
fallback must not pass the suite.
"""

import numpy as np
import pytest

import fastmlp

from _support import BACKENDS, DTYPES, backend_module


def pytest_report_header(config):
    return f"fastmlp {fastmlp.__version__} from {fastmlp.__file__}; backends: {fastmlp.available_backends()}"


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
