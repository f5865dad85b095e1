"""fastmlp: fast multi-layer perceptrons on the CPU.

A compiled (Cython) backend runs the whole training loop without the GIL; a pure-NumPy
backend with the same functions is the readable math, the fallback and the test oracle.
"""

from typing import TYPE_CHECKING, Any

from ._backend import available_backends
from ._blas import get_blas, set_blas
from ._errors import DivergenceError, ModelFileError
from . import _fork    # (light: fastmlp's os.fork() handlers, all run from there; see its end)

__version__ = "0.1.0"   # the one place the version is written (pyproject.toml reads it from here)
__all__ = ["MLP", "MLPClassifier", "MLPRegressor", "DivergenceError", "ModelFileError",
           "available_backends", "get_blas", "load", "register_skl2onnx", "set_blas", "to_onnx", "__version__"]

_SKLEARN_ESTIMATORS = ("MLPClassifier", "MLPRegressor")

if TYPE_CHECKING:      # what the lazy attributes below are, for type checkers
    from ._model import MLP, load
    from . import plot
    from ._onnx import to_onnx
    from ._onnx_pipeline import register_skl2onnx
    from ._sklearn import MLPClassifier, MLPRegressor


def __getattr__(name: str) -> Any:
    """The scikit-learn estimators, ``fastmlp.plot`` and ``to_onnx``, imported on first use:
    scikit-learn, matplotlib and onnx are optional dependencies (``pip install
    fastmlp[sklearn]``, ``[plot]``, ``[onnx]``)."""
    if name in ("MLP", "load"):           # (NumPy and SciPy: not needed by `fastmlp --help`)
        from . import _model
        return getattr(_model, name)
    if name in _SKLEARN_ESTIMATORS:
        try:
            from . import _sklearn
        except ImportError as exc:
            if (exc.name or "").partition(".")[0] != "sklearn":
                raise
            raise ImportError(f"fastmlp.{name} needs scikit-learn>=1.6 ({exc}): "
                              "pip install 'fastmlp[sklearn]'", name=exc.name) from exc
        return getattr(_sklearn, name)
    if name == "plot":
        import importlib
        return importlib.import_module(".plot", __name__)
    if name == "to_onnx":                 # onnx is an optional dependency too: [onnx]
        from ._onnx import to_onnx
        return to_onnx
    if name == "register_skl2onnx":       # fastmlp's estimators in skl2onnx pipelines: [onnx] + skl2onnx
        from ._onnx_pipeline import register_skl2onnx
        return register_skl2onnx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public names only (the private modules stay reachable, but out of sight)."""
    return sorted({*__all__, "plot"})
