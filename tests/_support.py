"""Helpers shared by the test modules (importable because pytest's `pythonpath` has tests/)."""

import importlib

import numpy as np

BACKENDS = ("cython", "numpy")
DTYPES = (np.float32, np.float64)
# relative tolerances by dtype for comparing the two backends (and finite differences)
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}
ATOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def backend_module(name):
    return importlib.import_module({"cython": "fastmlp._core", "numpy": "fastmlp._reference"}[name])


def assert_close(actual, desired, dtype, scale=1.0):
    dtype = np.dtype(dtype)
    np.testing.assert_allclose(actual, desired, rtol=RTOL[dtype] * scale, atol=ATOL[dtype] * scale)


XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=float)


def make_data(n, sizes, seed=0, dtype=np.float64):
    """Random inputs and {0, 1} labels for a network of the given layer sizes."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    Y = (rng.random((n, sizes[-1])) < 0.5).astype(dtype)
    return X, Y
