"""The one place that picks a backend.

``backend="numpy"`` is ``fastmlp._reference``; ``backend="cython"`` is the compiled
``fastmlp._core`` and is an error when that module is not built; ``backend="auto"`` takes
the ``FASTMLP_BACKEND`` environment variable when it is set, else the compiled backend
when it imports, else NumPy with a warning (given once).

The compiled backend is handed out configured: ``fastmlp._blas`` applies ``FASTMLP_BLAS``
to it the first time (a bad value raises here, naming the variable).
"""

import importlib
import os
import warnings

from . import _blas

BACKENDS = ("cython", "numpy")
_MODULES = {"cython": "fastmlp._core", "numpy": "fastmlp._reference"}
_warned_fallback = False
HOW_TO_GET_COMPILED = ("For the compiled backend install a binary wheel (`pip install --force-reinstall "
                       "fastmlp`), or build from source with a working C compiler and FASTMLP_PURE_PYTHON "
                       "unset (`pip install --force-reinstall --no-binary fastmlp fastmlp`).")


def _import(name):
    module = importlib.import_module(_MODULES[name])
    if name == "cython":
        _blas.configure(module)
    return module


def available_backends() -> tuple[str, ...]:
    """Names of the backends that can run here, fastest first, e.g. ("cython", "numpy")."""
    found = []
    for name in BACKENDS:
        try:
            _import(name)
        except ImportError:
            continue
        found.append(name)
    return tuple(found)


def resolve(backend="auto", fallback=False):
    """(name, module) for a backend name: "auto", "cython" or "numpy".

    With `fallback` (an unpickled model's backend), "cython" where it cannot import gives
    the NumPy backend and the warning that "auto" gives, as "auto" would.
    """
    global _warned_fallback
    if backend == "auto":
        backend = os.environ.get("FASTMLP_BACKEND", "").strip().lower() or "auto"
        if backend not in BACKENDS + ("auto",):
            raise ValueError(
                f"FASTMLP_BACKEND must be 'cython', 'numpy' or 'auto', got {os.environ['FASTMLP_BACKEND']!r}"
            )
    if backend == "auto" or (fallback and backend == "cython"):
        try:
            return "cython", _import("cython")
        except ImportError as exc:
            if not _warned_fallback:
                warnings.warn(f"fastmlp's compiled backend is not available ({exc}); using the NumPy backend, "
                              f"which gives the same results more slowly. {HOW_TO_GET_COMPILED}",
                              RuntimeWarning, stacklevel=3)
                _warned_fallback = True
            return "numpy", _import("numpy")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto', 'cython' or 'numpy', got {backend!r}")
    try:
        return backend, _import(backend)
    except ImportError as exc:
        raise ImportError(
            f"fastmlp's {backend!r} backend is not available: {exc}. "
            f"{HOW_TO_GET_COMPILED}"
        ) from exc
