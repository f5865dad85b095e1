"""Helpers shared by the test modules (importable because pytest's `pythonpath` has tests/)."""

import functools
import importlib
import os
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from _seed import X as XOR_X
from _seed import y as XOR_Y
from fastmlp._spec import Optimizer

__all__ = ["XOR_X", "XOR_Y"]  # the seed's XOR data (read-only arrays): the one copy

BACKENDS = ("cython", "numpy")
DTYPES = (np.float32, np.float64)
# relative tolerances by dtype for comparing the two backends (and finite differences)
RTOL = {np.dtype(np.float32): 1e-4, np.dtype(np.float64): 1e-9}
ATOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


@functools.cache
def pure_install_reason():
    """Why the compiled backend may be missing here, or None when its absence is an error.

    It may be missing on a pure-Python install: fastmlp installed from a py3-none-any wheel
    (built without a C compiler or with FASTMLP_PURE_PYTHON=1), or FASTMLP_PURE_PYTHON=1 set
    for the test run. Anywhere else (a platform wheel, a source tree) a missing ``_core``
    fails the tests that need it: a silent fallback must not pass the suite.
    """
    try:
        importlib.import_module("fastmlp._core")
        return None
    except ImportError as exc:
        missing = f"fastmlp._core cannot be imported ({exc})"
    if os.environ.get("FASTMLP_PURE_PYTHON", "") not in ("", "0"):
        return f"{missing} and FASTMLP_PURE_PYTHON is set: this test needs the compiled backend"
    import fastmlp

    try:
        dist = metadata.distribution("fastmlp")
    except metadata.PackageNotFoundError:
        return None
    init = next((f for f in dist.files or () if f.as_posix() == "fastmlp/__init__.py"), None)
    if init is None or Path(dist.locate_file(init)).resolve() != Path(fastmlp.__file__).resolve():
        return None                       # the imported fastmlp is not this installed distribution
    if "Root-Is-Purelib: true" not in (dist.read_text("WHEEL") or ""):
        return None
    return f"{missing}: fastmlp is a pure-Python install, and this test needs the compiled backend"


def backend_module(name):
    """A backend's module; on a pure-Python install, "cython" skips the calling test (or the
    module, when called at import) instead of failing it."""
    if name == "cython":
        reason = pure_install_reason()
        if reason is not None:
            pytest.skip(reason, allow_module_level=True)
    return importlib.import_module({"cython": "fastmlp._core", "numpy": "fastmlp._reference"}[name])


def assert_close(actual, desired, dtype, scale=1.0):
    dtype = np.dtype(dtype)
    np.testing.assert_allclose(actual, desired, rtol=RTOL[dtype] * scale, atol=ATOL[dtype] * scale)


def make_data(n, sizes, seed=0, dtype=np.float64):
    """Random inputs and {0, 1} labels for a network of the given layer sizes."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    Y = (rng.random((n, sizes[-1])) < 0.5).astype(dtype)
    return X, Y


def train(backend, model, params, X, Y, *, epochs, batch_size, optimizer=None, losses=None, state=None,
          **options):
    """A backend's ``train`` for `model`'s network, called by keyword: fresh optimizer state,
    a plain SGD optimizer and a loss buffer unless given. Returns the losses."""
    losses = np.full(epochs, np.nan) if losses is None else losses
    optimizer = Optimizer() if optimizer is None else optimizer
    backend_module(backend).train(
        model._net, params, X, Y, epochs=epochs, batch_size=batch_size, losses=losses, optimizer=optimizer,
        state=_state(optimizer, params) if state is None else state, **options)
    return losses


def _state(optimizer, params):
    """Zeros for `optimizer`'s state over `params` (a test may pass a non-Optimizer on purpose)."""
    rows = optimizer.n_state if hasattr(optimizer, "n_state") else 1
    return np.zeros((rows, len(params)), params.dtype)


def fd_gradient(f, x, eps=1e-5):
    """4th-order central differences of scalar f at x (x is modified and restored)."""
    g = np.empty_like(x)
    for i in range(x.size):
        orig = x.flat[i]
        vals = []
        for step in (2, 1, -1, -2):
            x.flat[i] = orig + step * eps
            vals.append(f())
        x.flat[i] = orig
        g.flat[i] = (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * eps)
    return g


def cli_in_process(*args, capsys):
    """(exit status, stdout, stderr) of ``fastmlp.__main__.main(args)`` in this process."""
    from fastmlp.__main__ import main

    try:
        status = main([str(arg) for arg in args])
    except SystemExit as exit:           # argparse's errors
        status = exit.code
    out, err = capsys.readouterr()
    return status, out, err


def cli_train_args(tmp_path, *extra):
    """``fastmlp train`` arguments on a small CSV table written into tmp_path (three numeric
    features a, b, c and a 0/1 target y, 80 rows), saving to tmp_path / "m.npz"."""
    import pandas as pd

    X, Y = make_data(80, [3, 1], seed=5)
    pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": Y[:, 0].astype(int)}).to_csv(
        tmp_path / "d.csv", index=False)
    return ["train", tmp_path / "d.csv", "--target", "y", "-o", tmp_path / "m.npz", "--epochs", "5",
            "--seed", "1", "--no-progress", "--hidden", "8", "6", *extra]


def rewrite_estimator_record(path, change):
    """Rewrite the JSON estimator record of the model file at `path` with change(record), as
    a hand edit would."""
    import json

    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    record = json.loads(str(arrays["estimator"]))
    change(record)
    arrays["estimator"] = np.array(json.dumps(record))
    np.savez(path, **arrays)


def onnx_session(proto):
    """An onnxruntime session (one thread, CPU) of the checked ONNX model `proto`."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(proto, full_check=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
