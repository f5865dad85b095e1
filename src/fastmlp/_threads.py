"""How many threads a training run uses, and its BLAS's thread count meanwhile.

Small products (under `ONE_THREAD_BELOW` multiply-adds in a batch's largest): one thread.
OpenBLAS splits a product over its threads from a few hundred thousand multiply-adds on;
on a 200x64x100 batch product (digits) the second thread costs more than it saves: the
threads hand over work every few microseconds, and once another process holds a core the
second thread's share waits for it (bench/RESULTS.md, "Issue 9: estimators"). So while
such a run trains, the BLAS runs on one thread.

Larger products keep the BLAS's own threads. (A loop that shared each batch's rows among
threads of its own, each on a one-thread BLAS, was 1.2-1.5x slower than OpenBLAS's own
threads on the medium job on a quiet machine, and was removed: bench/RESULTS.md,
"Shared-batch threads".)

OpenBLAS built with its own threads ("pthreads", as in SciPy's wheels) keeps one thread
count for the whole process (its ``openblas_set_num_threads_local`` changed that same count
when tried here, OpenBLAS 0.3.30), so runs in several threads (restarts, a
GridSearchCV on the threading backend) share the setting: the first run to begin saves the
count and sets 1, and the last one to end puts the saved count back. The
library's own ``openblas_set_num_threads`` is called directly: threadpoolctl's controller
lets only the first thread that used it change the count, and a fit may run in any thread.
Where the products run on Intel MKL (fastmlp._blas), the same is done with MKL's
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

from . import _blas

ONE_THREAD_BELOW = 4_000_000   # multiply-adds in the largest per-batch product

_lock = threading.Lock()
_active = 0        # runs inside `blas_threads` now
_busy = 0          # the BLAS threads they train on
_saved = []        # (library, its thread count before the first of them began)
_runs = {}         # thread id -> the runs inside `blas_threads` in that thread
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


class blas_threads:
    """Context manager for a run of a network of layer `sizes` on batches of `rows` rows
    on the backend `impl`: the BLAS on one thread while it trains when its products are
    small."""

    def __init__(self, impl, sizes, rows):
        directory = getattr(impl, "BLAS_LIBRARY_DIR", None)
        largest = largest_product(sizes, rows) if directory is not None else 0
        small = directory is not None and impl.BLAS_MIN_PRODUCT <= largest < ONE_THREAD_BELOW
        large = directory is not None and largest >= ONE_THREAD_BELOW
        self.mkl = _blas.mkl_threads() if small or large else None
        self.libraries = libraries(directory) if small and self.mkl is None else []
        self.one = small      # the BLAS on one thread in this run

    def __enter__(self):
        global _active, _busy, _saved
        if self.mkl is not None:
            self._enter_mkl()
        elif self.libraries:
            with _lock:
                if _active == 0:
                    _saved = [(lib, lib.get()) for lib in self.libraries]
                    for lib, threads in _saved:
                        if threads != 1:
                            lib.set(1)
                _active += 1
                self.held = 1
                _busy += 1
                _runs.setdefault(threading.get_ident(), []).append(self)
        return self

    def __exit__(self, *exc_info):
        global _active, _busy
        if self.mkl is not None:
            self._exit_mkl()
        elif self.libraries:
            with _lock:
                _active -= 1
                _busy -= self.held
                _forget(self)
                if _active == 0:
                    for lib, threads in _saved:
                        if threads != 1:
                            lib.set(threads)
        return False

    # MKL keeps a count per thread (set by threadpoolctl's limits) over the process's, so a
    # run sets its own thread's count while its first run there lasts (runs nest per
    # thread): 1 for small products; for large products, MKL's threads less those that
    # runs already hold (at least one), so two large fits in two threads on two cores take
    # one each instead of two teams of two.

    def _enter_mkl(self):
        global _active, _busy
        mkl = self.mkl
        with _lock:
            available = mkl.get()          # this thread's count, a user's limit included
            own = 1 if self.one else max(1, available - _busy)
            self.held = own
            runs = getattr(_mkl_local, "runs", 0)
            if runs == 0:
                _mkl_local.saved = mkl.set_local(own)
            _mkl_local.runs = runs + 1
            _active += 1
            _busy += self.held
            _runs.setdefault(threading.get_ident(), []).append(self)

    def _exit_mkl(self):
        global _active, _busy
        mkl = self.mkl
        with _lock:
            _active -= 1
            _busy -= self.held
            _forget(self)
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
    global _lock, _active, _busy
    me = threading.get_ident()
    mine = _runs.get(me, [])
    openblas_runs = [run.mkl is None for runs in _runs.values() for run in runs]
    _runs.clear()
    if mine:
        _runs[me] = mine
    _lock = threading.Lock()      # (held by `before` for the fork: a consistent state)
    if any(openblas_runs) and not any(run.mkl is None for run in mine):
        for lib, threads in _saved:
            if threads != 1:
                lib.set(threads)
    _active, _busy = len(mine), sum(run.held for run in mine)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=lambda: _lock.acquire(), after_in_parent=lambda: _lock.release(),
                        after_in_child=_after_fork_in_child)
