"""fastmlp: fast multi-layer perceptrons on the CPU.

A compiled (Cython) backend runs the whole training loop without the GIL; a pure-NumPy
backend with the same functions is the readable math, the fallback and the test oracle.
"""

from ._backend import available_backends
from ._errors import DivergenceError, ModelFileError
from ._model import MLP, load

__version__ = "0.1.0"
__all__ = ["MLP", "DivergenceError", "ModelFileError", "available_backends", "load", "__version__"]
