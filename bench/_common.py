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
  ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` pin OpenBLAS to an older kernel
  (``print_header`` prints all of it for a script).
- For the scripts that time fits side by side: ``blas_threads`` (a threadpoolctl limit, or
  none), ``interleaved`` (rounds of every variant in turn, so load that comes and goes hits
  them alike; ``timed_rounds`` also takes the thread's CPU time), ``OtherLoad`` (how much CPU other processes took meanwhile),
  ``scaled_split`` (scikit-learn's stratified 75/25 split, standardised on the training
  part) and ``paired_diff`` (mean and standard error of per-seed differences).

The scripts import it directly (``python bench/x.py`` puts bench/ first on sys.path);
conftest.py puts bench/ on sys.path itself and hands these to the test modules as fixtures.
"""

import contextlib
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


def print_header(command, extra=()):
    """The machine header of a script run as `command`: which fastmlp, library versions,
    CPU, every BLAS thread pool (fastmlp's compiled backend calls SciPy's OpenBLAS,
    NumPy and scikit-learn NumPy's), the OPENBLAS_* check and how busy the cores are."""
    import scipy
    import scipy.linalg  # loads SciPy's OpenBLAS, which fastmlp's compiled backend calls

    versions = [f"python {platform.python_version()}", f"numpy {np.__version__}", f"scipy {scipy.__version__}"]
    for name in ("sklearn", "joblib", "threadpoolctl"):
        try:
            versions.append(f"{name} {importlib.import_module(name).__version__}")
        except ImportError:
            versions.append(f"{name} not installed")
    print(fastmlp_line())
    print(", ".join(versions))
    print(f"cpu: {cpu_model()}; os.cpu_count()={os.cpu_count()}")
    try:
        importlib.import_module("fastmlp._core")  # so its BLAS shows up below
    except ImportError as exc:
        print(f"fastmlp._core not importable ({exc}): the cython rows will fail")
    try:
        import threadpoolctl
    except ImportError:
        print("threadpoolctl not installed: cannot say which BLAS runs (pip install threadpoolctl)")
    else:
        print("threadpoolctl.threadpool_info():")
        for pool in threadpoolctl.threadpool_info():
            print("  " + describe_pool(pool))
    try:
        from fastmlp import _blas
        print(f"fastmlp's compiled products call: {_blas.describe()} (FASTMLP_BLAS chooses)")
    except ImportError:
        pass
    for line in extra:
        print(line)
    print(openblas_line(command))
    busy = cpu_busy_line()
    if busy is not None:
        print(busy)


# ---------------------------------------------------------------- timing side by side


def blas_threads(n):
    """A context limiting every BLAS pool to `n` threads (threadpoolctl), or changing
    nothing when `n` is None (each library keeps its default)."""
    if n is None:
        return contextlib.nullcontext()
    import threadpoolctl

    return threadpoolctl.threadpool_limits(n)


def interleaved(variants, repeats, warmup=True):
    """{name: [seconds per round]}: `repeats` rounds, each calling every zero-argument
    callable of `variants` (a dict) once, in turn, so that load which comes and goes on a
    shared machine falls on all of them alike. With `warmup`, each runs once untimed first."""
    return timed_rounds(variants, repeats, warmup)[0]


def timed_rounds(variants, repeats, warmup=True):
    """``interleaved``'s rounds, timed on two clocks: (wall, cpu), each {name: [seconds per
    round]}, wall-clock time and the calling thread's CPU time (``time.thread_time``).

    With BLAS limited to one thread the whole call runs in this thread, and its CPU time
    leaves out the time the kernel gave the core to other processes. It does not leave out
    a virtual machine's steal time, nor other load's cache and memory traffic: on the
    shared 2-core VM of bench/RESULTS.md it tracked the wall clock within 1%, slow rounds
    included. With BLAS threads it misses their work: use the wall clock then.
    """
    if warmup:
        for fn in variants.values():
            fn()
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            c0, w0 = time.thread_time(), time.perf_counter()
            fn()
            w1, c1 = time.perf_counter(), time.thread_time()
            wall[name].append(w1 - w0)
            cpu[name].append(c1 - c0)
    return wall, cpu


class OtherLoad:
    """CPU time other processes took while a block ran, as a fraction of all cores' time:
    the machine's busy ticks (/proc/stat) minus this process's own CPU time (``fraction``,
    None where /proc/stat is missing)."""

    @staticmethod
    def _sample():
        """(all cores' time, their busy time, this process's CPU time), in seconds."""
        ticks = cpu_ticks()
        if ticks is None:
            return None
        hz = os.sysconf("SC_CLK_TCK")
        own = os.times()
        return ticks[0] / hz, (ticks[0] - ticks[1]) / hz, own.user + own.system

    def __enter__(self):
        self.start, self.fraction = self._sample(), None
        return self

    def __exit__(self, *exc):
        end = self._sample()
        if self.start is not None and end is not None:
            total = end[0] - self.start[0]
            others = (end[1] - self.start[1]) - (end[2] - self.start[2])
            self.fraction = max(others, 0.0) / max(total, 1e-9)
        return False

    def line(self, what="this table"):
        """A line saying how busy other processes kept the cores, a WARNING above 5%."""
        if self.fraction is None:
            return None
        line = f"    other processes used {self.fraction:.0%} of all cores while {what} ran"
        if self.fraction > 0.05:
            line = ("WARNING:" + line[len("   "):] + ": the timings are disturbed (two-thread BLAS "
                    "rows most of all), rerun on a quiet machine")
        return line


# ---------------------------------------------------------------- scikit-learn data


def scaled_split(X, y, seed, test_size=0.25, dtype=np.float64):
    """``train_test_split(stratify=y, random_state=seed)``, then a ``StandardScaler`` fit on
    the training part: (X_train, X_test, y_train, y_test), X C-contiguous `dtype`."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, random_state=seed,
                                                        stratify=y)
    scaler = StandardScaler().fit(X_train)
    X_train = np.ascontiguousarray(scaler.transform(X_train), dtype=dtype)
    X_test = np.ascontiguousarray(scaler.transform(X_test), dtype=dtype)
    return X_train, X_test, y_train, y_test


def paired_diff(values, reference):
    """(mean, standard error, n) of values[s] - reference[s] over the keys both dicts have;
    SE is NaN for fewer than two pairs."""
    keys = sorted(set(values) & set(reference))
    d = np.array([values[k] - reference[k] for k in keys], dtype=float)
    if len(d) == 0:
        return float("nan"), float("nan"), 0
    se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
    return float(d.mean()), se, len(d)
