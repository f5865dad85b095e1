"""Shared pieces of the benchmark suite: the session header, data makers, optional rivals.

Run with ``pytest bench/`` (the project's default ``pytest`` only collects ``tests/``).
The header says which BLAS each library runs and with how many threads, and warns when
``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` are set: they pin OpenBLAS to an older kernel
and make every BLAS-bound row slower, so benchmark with both unset.

The test modules run under ``--import-mode=importlib`` and so cannot import this file;
what they share comes in as fixtures (``make_data``, ``torch_threads``, ...).

fastmlp is imported as installed (``pip install '.[bench]'``); when it is not installed,
from the checkout's in-place build. The header prints which one runs.
"""

import os
import sys
import warnings

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/: _machine
from _machine import cpu_busy, cpu_model  # noqa: E402

try:
    import fastmlp
except ImportError:
    # not installed: use the checkout's in-place build (`python setup.py build_ext --inplace`)
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sys.path.insert(0, os.path.join(_root, "src") if os.path.isdir(os.path.join(_root, "src", "fastmlp")) else _root)
    import fastmlp

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

XOR_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
XOR_Y = np.array([[0], [1], [1], [0]], dtype=float)


# ---------------------------------------------------------------- data


def make_data(n, n_features, seed=0, dtype=np.float64):
    """X (n, n_features) standard normal and y (n, 1) in {0, 1}, both C-contiguous `dtype`.

    The labels follow a random linear rule of X (with 10% of them flipped), so a network
    can learn something and the loss has a direction to go.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, n_features)).astype(dtype)
    w = rng.standard_normal(n_features)
    y = (X @ w > 0) ^ (rng.random(n) < 0.1)
    return np.ascontiguousarray(X), y.astype(dtype).reshape(-1, 1)


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
        f"fastmlp {fastmlp.__version__} from {os.path.dirname(fastmlp.__file__)}; "
        f"backends: {fastmlp.available_backends()}",
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
        for pool in threadpoolctl.threadpool_info():
            lines.append(
                "thread pool: {user_api}/{internal_api} {version} arch={arch} num_threads={num_threads} "
                "({lib})".format(
                    arch=pool.get("architecture", "-"),
                    lib=pool["filepath"].split("site-packages" + os.sep)[-1],
                    **{k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads")},
                )
            )
        lines.append(
            "who uses which: fastmlp cython -> scipy.libs' OpenBLAS (scipy.linalg.cython_blas); "
            "fastmlp numpy, scikit-learn and the GEMM floor -> numpy.libs' OpenBLAS; "
            "torch -> its own MKL/OpenMP, sized by torch.set_num_threads per row"
        )
    busy = cpu_busy()
    if busy is not None:
        line = f"cpu busy before the run: {busy:.0%} of all cores over 1 s"
        if busy > 0.1:
            line = ("WARNING: " + line + ": something else is running; multi-threaded BLAS rows "
                    "slow down badly when a core is taken, compare only runs on a quiet machine")
        lines.append(line)
    set_vars = {v: os.environ[v] for v in OPENBLAS_VARS if v in os.environ}
    if set_vars:
        lines.append(
            "WARNING: "
            + ", ".join(f"{k}={v}" for k, v in set_vars.items())
            + " is set: OpenBLAS runs a pinned (older, slower) kernel and these timings are not "
            "representative; rerun as `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE pytest bench/`"
        )
    else:
        lines.append("OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset (good: OpenBLAS picks its kernel)")
    return lines


# ---------------------------------------------------------------- fixtures


@pytest.fixture(name="make_data", scope="session")
def _make_data_fixture():
    """The `make_data(n, n_features, seed=0, dtype=np.float64)` function."""
    return make_data


@pytest.fixture(scope="session")
def xor_data():
    return XOR_X.copy(), XOR_Y.copy()


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
def no_convergence_warning():
    """Silence scikit-learn's ConvergenceWarning (max_iter is the point of these rows)."""
    exceptions = pytest.importorskip("sklearn.exceptions")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
        yield


def assert_finite_history(losses, epochs):
    losses = np.asarray(losses, dtype=float)
    assert losses.shape == (epochs,), losses.shape
    assert np.isfinite(losses).all(), losses


@pytest.fixture(name="assert_finite_history", scope="session")
def _assert_finite_history_fixture():
    """The `assert_finite_history(losses, epochs)` check."""
    return assert_finite_history
