"""Helpers shared by the test modules (importable because pytest's `pythonpath` has tests/)."""

import importlib

import numpy as np

from _seed import X as XOR_X
from _seed import y as XOR_Y
from fastmlp._spec import Optimizer

__all__ = ["XOR_X", "XOR_Y"]  # the seed's XOR data (read-only arrays): the one copy

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
    backend_module(backend).train(
        model._net, params, X, Y, epochs=epochs, batch_size=batch_size, losses=losses,
        optimizer=Optimizer() if optimizer is None else optimizer,
        state=np.zeros((2, len(params)), params.dtype) if state is None else state, **options)
    return losses


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
