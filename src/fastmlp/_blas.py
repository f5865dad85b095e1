"""Which BLAS library the compiled backend's matrix products (``?gemm``) call.

- ``"scipy"``: SciPy's OpenBLAS, through ``scipy.linalg.cython_blas``; always there.
- ``"mkl"``: Intel's oneMKL, from the ``mkl`` package on PyPI (``pip install fastmlp[mkl]``,
  x86-64 Linux and Windows); faster than OpenBLAS on large products on Intel CPUs (the
  figures are in docs/performance.md and bench/RESULTS.md).
- ``"auto"`` (the default): MKL where that package is installed, else SciPy's.

``FASTMLP_BLAS`` in the environment sets the choice at import; ``fastmlp.set_blas`` changes
it later. Only the compiled backend's ``?gemm`` calls change, and the finite check of large
inputs (`squares`): other ``?dot`` calls and the NumPy backend (NumPy's own BLAS) stay as
they are. Results differ between the two
libraries by rounding only; a fit is reproducible for a fixed seed with the same library.

MKL is loaded once, by path, with its symbols kept local to it (``RTLD_LOCAL``), in its
reproducible mode (``MKL_CBWR=AUTO`` unless the environment sets another), and never
unloaded: its ``sgemm_``/``dgemm_`` addresses are handed to ``_core._use_gemm``. It is asked
for the LP64 interface (32-bit integers, which ``_core`` passes), which wins over
``MKL_INTERFACE_LAYER=ILP64`` in the environment; only where other code in the process
already made that libmkl_rt use ILP64 is MKL not used.
"""

import ctypes
import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:       # (the _typing module imports NumPy, which `fastmlp --help` does without)
    from ._typing import Blas, BlasName

NAMES = ("auto", "mkl", "scipy")
ENV = "FASTMLP_BLAS"
_MKL_INTERFACE_LP64 = 0
_MKL_CBWR_AUTO = 2

_lock = threading.Lock()
_current: "BlasName" = "scipy"      # the library the products call now
_mkl = None             # the loaded MKL (a _MKL), or the reason it could not be (a str)
_use_gemm = None        # _core._use_gemm, given by _core's import


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


def set_blas(name: "Blas" = "auto") -> "BlasName":
    """Choose the BLAS library for the compiled backend's matrix products: ``"mkl"`` (Intel
    oneMKL, from ``pip install fastmlp[mkl]``), ``"scipy"`` (SciPy's OpenBLAS) or ``"auto"``
    (MKL where it is installed, else SciPy's). Returns the library now in use.

    Fits started afterwards use it. Raises ValueError for another name, and RuntimeError
    (the choice left as it was) when ``"mkl"`` cannot be loaded or while fits of the
    compiled backend are training.
    """
    global _current
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"BLAS must be one of {', '.join(map(repr, NAMES))}, got {name!r}")
    if _use_gemm is None:
        try:
            from . import _core  # noqa: F401  (its import registers _use_gemm here)
        except ImportError as exc:
            from ._backend import HOW_TO_GET_COMPILED
            raise ImportError(f"set_blas({name!r}) chooses the BLAS of the compiled backend, fastmlp._core, "
                              f"which is not installed ({exc}). {HOW_TO_GET_COMPILED}") from exc
    from . import _threads

    with _lock:
        if _threads._active:
            raise RuntimeError(f"set_blas({name!r}): {_threads._active} fit(s) are training now; "
                               "choose the BLAS before starting fits")
        chosen: "BlasName" = "scipy"
        if name != "scipy":
            mkl = _load_mkl()
            if isinstance(mkl, _MKL):
                chosen = "mkl"
            elif name == "mkl":
                raise RuntimeError(f"set_blas('mkl'): {mkl}")
        if chosen == "mkl":
            _use_gemm(mkl.sgemm, mkl.dgemm)
        else:
            _use_gemm(0, 0)
        _current = chosen
    return chosen


def get_blas() -> "BlasName":
    """The BLAS library the compiled backend's matrix products call now: "mkl" or "scipy"
    (the compiled backend is imported first, which applies ``FASTMLP_BLAS``)."""
    if _use_gemm is None:
        try:
            from . import _core  # noqa: F401
        except ImportError:      # no compiled backend: its products call nothing
            pass
    return _current


def mkl_threads():
    """MKL's thread-count functions (an object with ``get()`` and ``set(n)``) when MKL is the
    library in use, else None: for fastmlp._threads."""
    return _mkl if _current == "mkl" else None


def squares(flat):
    """sum(flat * flat) through MKL's ?dot when MKL is the library in use (flat: a 1-d,
    contiguous float32/float64 array of at most 2**31 - 1 elements), else None.

    For the finite check on large inputs (_validation.all_finite): SciPy's OpenBLAS splits
    a long ?dot over its own threads, which then spin for a while beside MKL's and slow a
    fit that starts meanwhile; MKL's ?dot runs on the threads its products use."""
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


def choose_from_environment(use_gemm):
    """Apply ``FASTMLP_BLAS`` (default "auto"): the compiled backend's import calls this with
    its ``_use_gemm``. An unknown value raises ValueError, and "mkl" without MKL
    RuntimeError, naming the variable (the compiled backend then does not import)."""
    global _use_gemm
    _use_gemm = use_gemm
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in NAMES:
        raise ValueError(f"{ENV} must be one of {', '.join(NAMES)}, got {os.environ[ENV]!r}")
    try:
        return set_blas(value)
    except RuntimeError as error:
        raise RuntimeError(f"{ENV}=mkl: {error}") from None
