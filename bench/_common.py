"""What the benchmark suite (conftest.py) and the scripts in bench/ share.

- ``fastmlp``: imported as installed (``pip install '.[bench]'``), else from the checkout's
  in-place build under src/ (``python setup.py build_ext --inplace``); ``fastmlp_line()``
  says which one runs.
- The data: ``make_data`` (tabular: a learnable linear rule) and ``xor_data`` (XOR's four
  cases, from the seed script).
- ``seed_script``: from tests/_seed.py, the seed article's XOR script, the one copy the
  tests and the benchmarks share (loaded by path: tests/ is not a package, nor on sys.path
  for the scripts).
- What the headers say about the machine: CPU model, load, BLAS thread pools, and whether
  ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` pin OpenBLAS to an older kernel.

The scripts import it directly (``python bench/x.py`` puts bench/ first on sys.path);
conftest.py puts bench/ on sys.path itself and hands these to the test modules as fixtures.
"""

import importlib.util
import os
import platform
import sys
import time

import numpy as np

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)

try:
    import fastmlp
except ImportError:
    # not installed: use the checkout's in-place build
    sys.path.insert(0, os.path.join(ROOT, "src"))
    import fastmlp

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_seed = _load(os.path.join(ROOT, "tests", "_seed.py"), "_seed")
seed_script = _seed.seed_script


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


def xor_data():
    """The seed's XOR data (4, 2) and labels (4, 1), float64: fresh, writable copies."""
    return _seed.X.copy(), _seed.y.copy()


# ---------------------------------------------------------------- the machine


def fastmlp_line():
    """Which fastmlp runs: version, where it was imported from, its backends."""
    return (f"fastmlp {fastmlp.__version__} from {os.path.dirname(fastmlp.__file__)}; "
            f"backends: {fastmlp.available_backends()}")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_ticks():
    """(all, idle + iowait) CPU ticks since boot, summed over the cores, from /proc/stat;
    None elsewhere."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
        return sum(ticks), ticks[3] + ticks[4]
    except (OSError, ValueError, IndexError):
        return None


def cpu_busy(seconds=1.0):
    """Fraction of all cores busy (any process) over `seconds`; None without /proc/stat."""
    start = cpu_ticks()
    if start is None:
        return None
    time.sleep(seconds)
    end = cpu_ticks()
    if end is None:
        return None
    return 1 - (end[1] - start[1]) / max(end[0] - start[0], 1)


def cpu_busy_line():
    """How busy the cores were over the last second, with a WARNING above 10%; None
    where /proc/stat is missing."""
    busy = cpu_busy()
    if busy is None:
        return None
    line = f"cpu busy before the run: {busy:.0%} of all cores over 1 s"
    if busy > 0.1:
        line = ("WARNING: " + line + ": something else is running; BLAS-bound rows slow down badly "
                "when a core is taken, compare only runs on a quiet machine")
    return line


def describe_pool(pool):
    """One threadpoolctl.threadpool_info() entry: library, version, kernel, threads, file."""
    return "{user_api}/{internal_api} {version} arch={arch} num_threads={num_threads} ({lib})".format(
        arch=pool.get("architecture", "-"),
        lib=pool["filepath"].split("site-packages" + os.sep)[-1],
        **{k: pool.get(k) for k in ("user_api", "internal_api", "version", "num_threads")},
    )


def openblas_line(command):
    """A WARNING when OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are set (OpenBLAS then runs a
    pinned, older and slower kernel), saying to rerun `command` without them."""
    set_vars = {v: os.environ[v] for v in OPENBLAS_VARS if v in os.environ}
    if not set_vars:
        return "OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are unset (good: OpenBLAS picks its kernel)"
    return ("WARNING: " + ", ".join(f"{k}={v}" for k, v in set_vars.items())
            + " is set: OpenBLAS runs a pinned (older, slower) kernel and these timings are not "
            f"representative; rerun as `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE {command}`")
