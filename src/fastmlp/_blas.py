"""The compiled backend's BLAS: which library its matrix products (``?gemm``) call, and how
many threads a training run uses (and its BLAS's thread count meanwhile). One module, one
lock: every fit of the compiled backend is counted here while it trains (`blas_threads`,
around its loop; `fit_running` around L-BFGS's calls), whether or not it changes a thread
setting, and `set_blas` raises RuntimeError while any is counted, so that no fit sees the
library change under it.

Layering: this module sits above the backends. It imports the compiled backend itself when
it needs it (`_compiled`) and tells it which ?gemm to call through ``_core._use_gemm``; the
backends never import it. ``fastmlp._backend`` asks it to apply ``FASTMLP_BLAS`` (`configure`)
when it first hands out the compiled backend.

Library choice
--------------

- ``"scipy"``: SciPy's OpenBLAS, through ``scipy.linalg.cython_blas``; always there.
- ``"mkl"``: Intel's oneMKL, from the ``mkl`` package on PyPI (``pip install fastmlp[mkl]``,
  x86-64 Linux and Windows); faster than OpenBLAS on large products on Intel CPUs (the
  figures are in docs/performance.md and bench/RESULTS.md).
- ``"auto"`` (the default): MKL where that package is installed, else SciPy's.

``FASTMLP_BLAS`` in the environment sets the choice when the compiled backend is first
used (``fastmlp._backend``, `get_blas`, `set_blas`); ``fastmlp.set_blas`` changes it later.
Only the compiled backend's ``?gemm`` calls change, and the finite check of a model's large
inputs (`squares`, which the model layer hands to ``_validation``): other ``?dot`` calls and
the NumPy backend (NumPy's own BLAS) stay as they are. Results differ between the two
libraries by rounding only; a fit is reproducible for a fixed seed with the same library.

MKL is loaded once, by path, with its symbols kept local to it (``RTLD_LOCAL``), in its
reproducible mode (``MKL_CBWR=AUTO`` unless the environment sets another), and never
unloaded: its ``sgemm_``/``dgemm_`` addresses are handed to ``_core._use_gemm``. It is asked
for the LP64 interface (32-bit integers, which ``_core`` passes), which wins over
``MKL_INTERFACE_LAYER=ILP64`` in the environment; only where other code in the process
already made that libmkl_rt use ILP64 is MKL not used.

Thread policy
-------------
How many threads a training run uses, and its BLAS's thread count meanwhile.

Small products (under `ONE_THREAD_BELOW` multiply-adds in a batch's largest): one thread.
OpenBLAS splits a product over its threads from a few hundred thousand multiply-adds on;
on a 200x64x100 batch product (digits) the second thread costs more than it saves: the
threads hand over work every few microseconds, and once another process holds a core the
second thread's share waits for it (bench/RESULTS.md, "Issue 9: estimators"). So while
such a run trains, the BLAS runs on one thread.

Larger products, where the BLAS is OpenBLAS with its own threads (SciPy's): the BLAS on
one thread too, and each large product of the run cut into `TEAM` blocks of its output
(the cores this process may use, at most 8), one-thread ?gemm calls that the fit's thread
and fastmlp's own worker threads share (``_team.h``; POSIX threads: elsewhere OpenBLAS
keeps its threads). OpenBLAS's own threads gave results that depend on their count (it
cuts the inner dimension differently with several threads), so a fit's bits changed with
a thread limit or a small fit running beside it (float32 and float64 alike); the blocks
depend on the shapes and `TEAM` alone, whoever runs them. And a worker whose core another
process holds is left out for a while (the thread runs every block), where OpenBLAS's
threads waited for each other a scheduler slice at a time. Where the user limited
OpenBLAS's threads (threadpoolctl), the run uses no more threads than that, with the same
blocks. (A loop that shared each batch's rows among threads of its own was 1.2-1.5x slower
than OpenBLAS's own threads on the medium job on a quiet machine, and was removed:
bench/RESULTS.md, "Shared-batch threads".)

The blocks serve products from `_core.SPLIT_MIN_PRODUCT` multiply-adds in float64, and
from twice that in float32 (its arithmetic is twice as fast), in every run that has one:
a digits fit (200x64x100 float64 products, a run where OpenBLAS's own threads lost) runs
10% faster with them than on one thread. What float64 gives for it: on a quiet 2-core AMD
EPYC (Zen 4, OpenBLAS 0.3.30) the medium float64 job's blocks ran 7-17% slower than
OpenBLAS's threads (each block packs the whole of the other operand, where OpenBLAS's
threads share their packed panels); beside a spinning process they took 2.1x their quiet
time, OpenBLAS's threads 3-4.7x; on that VM's ordinary noise the two were level on median,
the blocks from 1.39 to 1.67 s over six runs, OpenBLAS's threads from 1.30 to 2.14.

OpenBLAS built with its own threads ("pthreads", as in SciPy's wheels) keeps one thread
count for the whole process (its ``openblas_set_num_threads_local`` changed that same count
when tried here, OpenBLAS 0.3.30), so runs in several threads (restarts, a
GridSearchCV on the threading backend) share the setting: the first run to begin saves the
count and sets 1, and the last one to end puts the saved count back. The library's own ``openblas_set_num_threads`` is called directly: threadpoolctl's controller
lets only the first thread that used it change the count, and a fit may run in any thread.
Where the products run on Intel MKL, the same is done with MKL's
``MKL_Get_Max_Threads``/``MKL_Set_Num_Threads``. Where the BLAS is neither, nothing is
changed and runs use one thread.

Only the compiled backend takes part: it declares where its BLAS library lives
(`BLAS_LIBRARY_DIR`, SciPy's), the smallest product it sends to BLAS (`BLAS_MIN_PRODUCT`: a
network whose products are all smaller, XOR's, changes nothing). threadpoolctl finds the
library once (a few ms); each fit then costs two C calls.
"""

import ctypes
import operator
import os
import threading
from typing import TYPE_CHECKING

from . import _fork

if TYPE_CHECKING:       # (the _typing module imports NumPy, which `fastmlp --help` does without)
    from ._typing import Blas, BlasName

NAMES = ("auto", "mkl", "scipy")
ENV = "FASTMLP_BLAS"
_MKL_INTERFACE_LP64 = 0
_MKL_CBWR_AUTO = 2

ONE_THREAD_BELOW = 4_000_000   # multiply-adds in the largest per-batch product


def _team_size():
    """Blocks per large product: the cores this process may run on, at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:           # (not on macOS or Windows)
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


TEAM = _team_size()

_lock = threading.Lock()  # the one lock: the library choice, the fit count, the thread settings
_current: "BlasName" = "scipy"      # the library the products call now
_configured = False     # FASTMLP_BLAS applied (`configure`)
_mkl = None             # the loaded MKL (a _MKL), or the reason it could not be (a str)


class _MKL:
    """A loaded libmkl_rt: its ?gemm addresses and thread-count functions."""

    def __init__(self, path):
        if hasattr(os, "add_dll_directory"):   # Windows: MKL's own DLLs lie beside mkl_rt
            self._dlls = os.add_dll_directory(os.path.dirname(path))
        lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_LOCAL", 0) | getattr(os, "RTLD_NOW", 0))
        lib.MKL_Set_Interface_Layer.restype = ctypes.c_int
        lib.MKL_Set_Interface_Layer.argtypes = [ctypes.c_int]
        layer = lib.MKL_Set_Interface_Layer(_MKL_INTERFACE_LP64)
        if layer != _MKL_INTERFACE_LP64:
            raise OSError(f"other code in this process set MKL at {path} to its ILP64 "
                          "interface (64-bit integers); fastmlp passes 32-bit ones")
        # Conditional Numerical Reproducibility, branch AUTO: MKL's results then repeat from
        # run to run for a fixed thread count on this CPU, whatever the arrays' alignment
        # (without it they may not); no cost was measured on the medium job. A user's own
        # MKL_CBWR setting stands.
        self.cnr = None
        if "MKL_CBWR" not in os.environ:
            lib.MKL_CBWR_Set.restype, lib.MKL_CBWR_Set.argtypes = ctypes.c_int, [ctypes.c_int]
            if lib.MKL_CBWR_Set(_MKL_CBWR_AUTO) == 0:
                self.cnr = "AUTO"
        else:
            self.cnr = os.environ["MKL_CBWR"]
        self.path, self.lib = path, lib
        self.sgemm = ctypes.cast(lib.sgemm_, ctypes.c_void_p).value
        self.dgemm = ctypes.cast(lib.dgemm_, ctypes.c_void_p).value
        self.get = lib.MKL_Get_Max_Threads
        self.get.restype, self.get.argtypes = ctypes.c_int, []
        self.set = lib.MKL_Set_Num_Threads                  # the process's count
        self.set.restype, self.set.argtypes = None, [ctypes.c_int]
        self.set_local = lib.MKL_Set_Num_Threads_Local      # this thread's (0: none); the old one
        self.set_local.restype, self.set_local.argtypes = ctypes.c_int, [ctypes.c_int]
        # sum of squares of a contiguous array, on MKL's own threads (see `squares`)
        self.dots = {}
        for name, ctype, dtype in (("sdot_", ctypes.c_float, "float32"), ("ddot_", ctypes.c_double, "float64")):
            fn = getattr(lib, name)
            fn.restype = ctype
            fn.argtypes = [ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.POINTER(ctypes.c_int),
                           ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]
            self.dots[dtype] = fn
        buffer = ctypes.create_string_buffer(256)
        lib.MKL_Get_Version_String(buffer, len(buffer))
        self.version = buffer.value.decode(errors="replace")

    def get_global(self):
        """The process's thread count (MKL_Get_Max_Threads gives this thread's own count
        where one is set, as threadpoolctl's limits set one)."""
        local = self.set_local(0)
        try:
            return self.get()
        finally:
            self.set_local(local)


def mkl_path():
    """The path of the ``mkl`` package's runtime library (libmkl_rt), or None."""
    from importlib import metadata

    try:
        files = metadata.distribution("mkl").files or []
    except metadata.PackageNotFoundError:
        return None
    for file in files:
        name = file.name
        if name.startswith("libmkl_rt.so") or (name.startswith("mkl_rt") and name.endswith(".dll")) \
                or (name.startswith("libmkl_rt") and name.endswith(".dylib")):
            path = os.path.abspath(str(file.locate()))
            if os.path.exists(path):
                return path
    return None


def _load_mkl():
    """The loaded MKL, or a str saying why there is none (loaded or tried once)."""
    global _mkl
    if _mkl is None:
        path = mkl_path()
        if path is None:
            _mkl = "the mkl package is not installed (pip install fastmlp[mkl])"
        else:
            try:
                _mkl = _MKL(path)
            except (OSError, AttributeError) as error:
                _mkl = f"MKL could not be loaded: {error}"
    return _mkl


def _compiled():
    """The compiled backend, imported (ImportError where it is not built)."""
    from . import _core

    return _core


def configure(core=None):
    """Apply ``FASTMLP_BLAS`` (default "auto") once, before the compiled backend is first used
    (``fastmlp._backend`` calls this when it hands the backend out; `get_blas` and `set_blas`
    too). An unknown value raises ValueError, and "mkl" without MKL RuntimeError, naming the
    variable; the next call tries again."""
    if _configured:
        return
    core = _compiled() if core is None else core
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in NAMES:
        raise ValueError(f"{ENV} must be one of {', '.join(NAMES)}, got {os.environ[ENV]!r}")
    try:
        _choose(value, core, checked_env=True)
    except RuntimeError as error:
        raise RuntimeError(f"{ENV}=mkl: {error}") from None


def set_blas(name: "Blas" = "auto") -> "BlasName":
    """Choose the BLAS library for the compiled backend's matrix products: ``"mkl"`` (Intel
    oneMKL, from ``pip install fastmlp[mkl]``), ``"scipy"`` (SciPy's OpenBLAS) or ``"auto"``
    (MKL where it is installed, else SciPy's). Returns the library now in use.

    Fits started afterwards use it. Raises ValueError for another name, and RuntimeError
    (the choice left as it was) when ``"mkl"`` cannot be loaded or while any fit of the
    compiled backend is training (each is counted from its first epoch to its end, whether
    it changed a thread setting or not): the library never changes under a running fit.
    """
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"BLAS must be one of {', '.join(map(repr, NAMES))}, got {name!r}")
    try:
        core = _compiled()
    except ImportError as exc:
        from ._backend import HOW_TO_GET_COMPILED
        raise ImportError(f"set_blas({name!r}) chooses the BLAS of the compiled backend, fastmlp._core, "
                          f"which is not installed ({exc}). {HOW_TO_GET_COMPILED}") from exc
    configure(core)
    return _choose(name, core)


def _choose(name, core, checked_env=False):
    global _current, _configured
    with _lock:
        if _fits and not checked_env:
            raise RuntimeError(f"set_blas({name!r}): {_fits} fit(s) of the compiled backend are training "
                               "now; choose the BLAS before starting fits, or once they have ended")
        chosen: "BlasName" = "scipy"
        if name != "scipy":
            mkl = _load_mkl()
            if isinstance(mkl, _MKL):
                chosen = "mkl"
            elif name == "mkl":
                raise RuntimeError(f"set_blas('mkl'): {mkl}")
        if chosen == "mkl":
            core._use_gemm(mkl.sgemm, mkl.dgemm)
        else:
            core._use_gemm(0, 0)
        _current, _configured = chosen, True
    return chosen


def get_blas() -> "BlasName":
    """The BLAS library the compiled backend's matrix products call now: "mkl" or "scipy"
    (``FASTMLP_BLAS`` is applied first if it has not been)."""
    try:
        configure()
    except ImportError:      # no compiled backend: its products call nothing
        pass
    return _current


def mkl_threads():
    """MKL's thread-count functions (an object with ``get()`` and ``set(n)``) when MKL is the
    library in use, else None."""
    return _mkl if _current == "mkl" else None


def squares(flat):
    """sum(flat * flat) through MKL's ?dot when MKL is the library in use (flat: a 1-d,
    contiguous float32/float64 array of at most 2**31 - 1 elements), else None.

    For the finite check of a model's large inputs (the model layer passes it to
    ``_validation.check_X``'s `squares`): SciPy's OpenBLAS splits a long ?dot over its own
    threads, which then spin for a while beside MKL's and slow a fit that starts meanwhile;
    MKL's ?dot runs on the threads its products use."""
    if _current != "mkl":
        return None
    dot = _mkl.dots.get(flat.dtype.name)
    if dot is None:
        return None
    n, one = ctypes.c_int(flat.size), ctypes.c_int(1)
    address = flat.__array_interface__["data"][0]
    return float(dot(ctypes.byref(n), address, ctypes.byref(one), address, ctypes.byref(one)))


def describe():
    """One line on the library in use, for benchmarks and the command line."""
    if get_blas() == "mkl":
        return f"mkl ({_mkl.version}, {_mkl.path}; reproducibility mode MKL_CBWR={_mkl.cnr})"
    import scipy

    return f"scipy ({scipy.__version__}'s OpenBLAS)"


# ---------------------------------------------------------------- thread policy

_fits = 0          # every fit of the compiled backend training now (`_Counted` runs)
_openblas = 0      # those of them that set OpenBLAS to one thread
_busy = 0          # the BLAS threads they train on
_saved = []        # (library, its thread count before the first OpenBLAS-setting run began)
_runs = {}         # thread id -> the counted runs in that thread
_libraries = {}    # BLAS_LIBRARY_DIR -> [_OpenBLAS] of the BLAS found there


def largest_product(sizes, rows):
    """The multiply-adds of the largest dense product of a batch of `rows` rows."""
    return rows * max(map(operator.mul, sizes[:-1], sizes[1:]))


class _OpenBLAS:
    """An OpenBLAS library's own get/set thread count functions (with its symbol affixes)."""

    def __init__(self, controller):
        prefix, suffix = controller._find_affixes() or ("", "")
        self.get = getattr(controller.dynlib, f"{prefix}openblas_get_num_threads{suffix}")
        self.set = getattr(controller.dynlib, f"{prefix}openblas_set_num_threads{suffix}")
        self.get.restype, self.get.argtypes = ctypes.c_int, []
        self.set.restype, self.set.argtypes = None, [ctypes.c_int]


def libraries(directory):
    """The pthreads OpenBLAS libraries under `directory` (threadpoolctl looks once)."""
    if directory not in _libraries:
        from threadpoolctl import ThreadpoolController

        _libraries[directory] = [
            _OpenBLAS(lib) for lib in ThreadpoolController().lib_controllers
            if lib.internal_api == "openblas" and lib.filepath.startswith(directory)
            and getattr(lib, "threading_layer", None) == "pthreads" and hasattr(lib, "_find_affixes")]
    return _libraries[directory]


class _Counted:
    """A run counted in `_fits` while inside ``with``: a fit of the compiled backend (a backend
    with ``BLAS_LIBRARY_DIR``; other backends are not counted). `fit_running` as it is; the
    base of `blas_threads`, which also sets thread counts."""

    counted = sets_openblas = False
    mkl = None
    held = 0

    def __init__(self, impl):
        self.counted = getattr(impl, "BLAS_LIBRARY_DIR", None) is not None

    def __enter__(self):
        global _fits
        if self.counted:
            with _lock:
                self._enter_locked()
                _fits += 1
                _runs.setdefault(threading.get_ident(), []).append(self)
        return self

    def __exit__(self, *exc_info):
        global _fits
        if self.counted:
            with _lock:
                _fits -= 1
                _forget(self)
                self._exit_locked()
        return False

    def _enter_locked(self):
        pass

    def _exit_locked(self):
        pass


fit_running = _Counted     # ``with fit_running(impl):`` around a fit's backend calls (L-BFGS)


class blas_threads(_Counted):
    """Context manager for a run of a network of layer `sizes` on batches of `rows` rows on
    the backend `impl` (`single`: float32): counted (see `_Counted`); the BLAS on one thread
    while it trains when its products are small, and when they are large, which are then
    cut into blocks for fastmlp's threads (as are small runs' products from
    SPLIT_MIN_PRODUCT multiply-adds, float32's from twice that)."""

    def __init__(self, impl, sizes, rows, single=False):
        super().__init__(impl)
        directory = getattr(impl, "BLAS_LIBRARY_DIR", None)
        largest = largest_product(sizes, rows) if directory is not None else 0
        small = directory is not None and impl.BLAS_MIN_PRODUCT <= largest < ONE_THREAD_BELOW
        large = directory is not None and largest >= ONE_THREAD_BELOW
        self.mkl = mkl_threads() if small or large else None
        # a product the team cuts: SPLIT_MIN_PRODUCT multiply-adds in float64, twice that in float32
        cuts = directory is not None and largest * (4 if single else 8) >= 8 * impl.SPLIT_MIN_PRODUCT
        team = cuts and TEAM > 1 and impl._team_available()   # (see the docstring)
        self.libraries = libraries(directory) if (small or team) and self.mkl is None else []
        self.sets_openblas = bool(self.libraries)
        self.one = small      # the BLAS on one thread in this run
        self.split = TEAM if team and self.sets_openblas else 1     # blocks per large product
        self.impl = impl

    def _enter_locked(self):
        global _openblas, _busy, _saved
        if self.mkl is not None:
            self._enter_mkl()
        elif self.sets_openblas:
            if _openblas == 0:
                _saved = [(lib, lib.get()) for lib in self.libraries]
                for lib, threads in _saved:
                    if threads != 1:
                        lib.set(1)
            _openblas += 1
            self.held = 1
            _busy += 1
            if self.split > 1:       # workers: no more threads than the user allowed OpenBLAS
                allowed = min(self.split, max(threads for _, threads in _saved))
                self.impl._split_products(self.split, allowed - 1)

    def _exit_locked(self):
        global _openblas, _busy
        if self.mkl is not None:
            self._exit_mkl()
        elif self.sets_openblas:
            if self.split > 1:
                self.impl._split_products(1, 0)
            _openblas -= 1
            _busy -= self.held
            if _openblas == 0:
                for lib, threads in _saved:
                    if threads != 1:
                        lib.set(threads)

    # MKL keeps a count per thread (set by threadpoolctl's limits) over the process's, so a
    # run sets its own thread's count while its first run there lasts (runs nest per
    # thread): 1 for small products; for large products, MKL's threads less those that
    # runs already hold (at least one), so two large fits in two threads on two cores take
    # one each instead of two teams of two.

    def _enter_mkl(self):
        global _busy
        mkl = self.mkl
        available = mkl.get()          # this thread's count, a user's limit included
        own = 1 if self.one else max(1, available - _busy)
        self.held = own
        runs = getattr(_mkl_local, "runs", 0)
        if runs == 0:
            _mkl_local.saved = mkl.set_local(own)
        _mkl_local.runs = runs + 1
        _busy += self.held

    def _exit_mkl(self):
        global _busy
        mkl = self.mkl
        _busy -= self.held
        _mkl_local.runs -= 1
        if _mkl_local.runs == 0:
            mkl.set_local(_mkl_local.saved)


_mkl_local = threading.local()   # runs in this thread, and its MKL count before the first


def _forget(run):
    """(_lock held.) `run`, of this thread, has ended."""
    mine = _runs[threading.get_ident()]
    mine.remove(run)
    if not mine:
        del _runs[threading.get_ident()]


def _after_fork_in_child():
    """A forked child has one thread, the forking one: only its runs (a fork from a fit's
    callback) go on there. The others' counts are dropped, and the thread counts they had
    set are put back when none of this thread's runs still needs them (else the setting
    would stay at one thread in the child for good)."""
    global _lock, _fits, _openblas, _busy
    me = threading.get_ident()
    mine = _runs.get(me, [])
    others_set = any(run.sets_openblas for runs in _runs.values() for run in runs)
    _runs.clear()
    if mine:
        _runs[me] = mine
    _lock = threading.Lock()      # (held by `before` for the fork: a consistent state)
    if others_set and not any(run.sets_openblas for run in mine):
        for lib, threads in _saved:
            if threads != 1:
                lib.set(threads)
    _fits, _openblas = len(mine), sum(1 for run in mine if run.sets_openblas)
    _busy = sum(run.held for run in mine)


_fork.at_fork(before=lambda: _lock.acquire(), after_in_parent=lambda: _lock.release(),
              after_in_child=_after_fork_in_child)
