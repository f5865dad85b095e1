"""Shared pieces of the benchmark suite: the session header, fixtures, optional rivals.

Run with ``pytest bench/`` (the project's default ``pytest`` only collects ``tests/``).
The header says which fastmlp runs (installed, or the checkout's in-place build: see
``_common.py``), which BLAS each library runs and with how many threads, and warns when
``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` are set: they pin OpenBLAS to an older kernel
and make every BLAS-bound row slower, so benchmark with both unset.

The test modules run under ``--import-mode=importlib`` and so cannot import this file;
what they share comes in as fixtures (``make_data``, ``xor_data``, ``seed_script``,
``torch_threads``, ...).
"""

import os
import sys
import warnings

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _common
from _common import (  # noqa: E402
    cpu_busy_line,
    cpu_model,
    describe_pool,
    fastmlp_line,
    make_data,
    openblas_line,
    seed_script,
    xor_data,
)


def optional(name):
    """The module `name`, or None when it is not installed (its rows then skip)."""
    try:
        return __import__(name)
    except ImportError:
        return None


# ---------------------------------------------------------------- PyTorch rows


def torch_fit(torch, X, y, sizes, batch_size, epochs, lr):
    """nn.Sequential of Linear + LeakyReLU, BCEWithLogitsLoss, plain SGD over contiguous
    batches (no shuffle); returns the per-epoch mean training loss."""
    nn = torch.nn
    dtype = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}[X.dtype]
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out, dtype=dtype), nn.LeakyReLU(0.01)]
    model = nn.Sequential(*layers[:-1])
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.BCEWithLogitsLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    n = len(X)
    history = []
    for _ in range(epochs):
        total = 0.0
        for start in range(0, n, batch_size):
            xb, yb = Xt[start : start + batch_size], yt[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
        history.append(total / n)
    return history


# ---------------------------------------------------------------- header


def pytest_report_header(config):
    lines = [
        fastmlp_line(),
        f"cpu: {cpu_model()}; os.cpu_count()={os.cpu_count()}; numpy {np.__version__}",
    ]
    # load every library whose thread pools matter before asking threadpoolctl:
    # fastmlp._core calls BLAS through scipy.linalg.cython_blas (scipy's own OpenBLAS),
    # the GEMM-floor row through numpy's; torch brings its OpenMP runtime.
    for mod in ("fastmlp._core", "scipy.linalg", "sklearn", "torch"):
        try:
            m = __import__(mod, fromlist=["_"])
        except ImportError:
            lines.append(f"{mod}: not importable (torch and sklearn rows skip; fastmlp cython rows fail)")
            continue
        except Exception as exc:  # a broken install must not hide the header
            lines.append(f"{mod}: fails to import ({type(exc).__name__}: {exc})")
            continue
        if mod in ("sklearn", "torch"):
            extra = f", {m.get_num_threads()} threads by default" if mod == "torch" else ""
            lines.append(f"{mod} {m.__version__}{extra}")
    threadpoolctl = optional("threadpoolctl")
    if threadpoolctl is None:
        lines.append("threadpoolctl: not installed, cannot say which BLAS runs (pip install threadpoolctl)")
    else:
        lines += ["thread pool: " + describe_pool(pool) for pool in threadpoolctl.threadpool_info()]
        lines.append(
            f"who uses which: fastmlp cython's products -> {_fastmlp_blas()}; "
            "fastmlp numpy, scikit-learn and the GEMM floor -> numpy.libs' OpenBLAS; "
            "torch -> its own MKL/OpenMP, sized by torch.set_num_threads per row"
        )
    busy = cpu_busy_line()
    if busy is not None:
        lines.append(busy)
    lines.append(openblas_line("pytest bench/"))
    return lines


# ---------------------------------------------------------------- fixtures


@pytest.fixture(name="make_data", scope="session")
def _make_data_fixture():
    """The `make_data(n, n_features, seed=0, dtype=np.float64)` function."""
    return make_data


@pytest.fixture(name="xor_data", scope="session")
def _xor_data_fixture():
    """(X, y): the seed's XOR data, float64."""
    return xor_data()


@pytest.fixture(name="seed_script", scope="session")
def _seed_script_fixture():
    """The seed article's XOR script (tests/_seed.py): `seed_script()` runs it, returns a
    SeedRun(initial, final, a2, loss)."""
    return seed_script


@pytest.fixture
def torch_threads():
    """A function set(n) that sets torch's intra-op threads for this test only."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


@pytest.fixture(name="torch_fit", scope="session")
def _torch_fit_fixture():
    """The `torch_fit(torch, X, y, sizes, batch_size, epochs, lr)` training loop."""
    return torch_fit


@pytest.fixture
def sklearn_sgd():
    """A function (sizes, batch_size, epochs, lr) -> scikit-learn's MLPClassifier set up as
    the other rows train: ReLU (it has no Leaky ReLU), plain SGD steps (no momentum, no L2)
    over contiguous batches, every epoch run (no stopping rule). Its ConvergenceWarning
    (max_iter is the point of these rows) is silenced for the test."""
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    def make(sizes, batch_size, epochs, lr):
        return MLPClassifier(hidden_layer_sizes=tuple(sizes[1:-1]), activation="relu", solver="sgd",
                             batch_size=batch_size, max_iter=epochs, shuffle=False, momentum=0,
                             learning_rate_init=lr, alpha=0, tol=0, n_iter_no_change=10**9,
                             random_state=0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield make


def assert_finite_history(losses, epochs):
    losses = np.asarray(losses, dtype=float)
    assert losses.shape == (epochs,), losses.shape
    assert np.isfinite(losses).all(), losses


@pytest.fixture(name="assert_finite_history", scope="session")
def _assert_finite_history_fixture():
    """The `assert_finite_history(losses, epochs)` check."""
    return assert_finite_history


def _fastmlp_blas():
    """The library fastmlp's compiled products call (fastmlp._blas: MKL where installed)."""
    from fastmlp import _blas

    return _blas.describe()
