"""Types of the public API, for annotations (the checks themselves live in ``_validation``).

The option names are ``Literal`` types so that an IDE completes them and a type checker
flags a misspelt one (``optimizer="adma"``). They repeat, for the type checker, the names that
``_registry`` and the modules checking each option hold; tests/test_typing.py holds each
``Literal`` equal to its list. The hidden activations' live in ``_registry`` itself, beside
their table, so that a new activation is a change to that file alone.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, Literal, NoReturn, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._registry import Activation, EstimatorActivation

__all__ = ["Activation", "ArrayLike", "Backend", "Blas", "BlasName", "Callback", "DType", "EstimatorActivation",
           "Floats", "Init", "Input", "Labels", "LearningRate", "Loss", "Optimizer", "Output", "PathLike",
           "RegressorLoss", "Schedule", "Setting", "Solver", "Threads", "ClassWeight", "Monitor", "Scoring"]

# option names (each checked against its source list in tests/test_typing.py)
Output = Literal["sigmoid", "softmax", "identity", "exp"]                           # _registry.OUTPUTS
Loss = Literal["bce", "cross_entropy", "mse", "poisson", "huber", "mae", "quantile"]  # _registry.LOSSES
Optimizer = Literal["sgd", "adam", "adamw", "rprop", "lbfgs"]                       # _training.FIT_OPTIMIZERS
Init = Literal["auto", "he", "glorot", "normal"]                                    # _initializers.INITS
Schedule = Literal["constant", "invscaling", "plateau"]                             # _training.SCHEDULES
Norm = Literal["batch", "layer"]                                                    # _spec.NORMS
Norms = Norm | Sequence[Norm | None] | None                                         # one, or one per hidden layer
Backend = Literal["auto", "cython", "numpy"]                                        # _backend.BACKENDS + "auto"
Threads = Literal["auto"]                                                          # _training.THREADS
Blas = Literal["auto", "mkl", "scipy"]                                              # _blas.NAMES
BlasName = Literal["mkl", "scipy"]                                                  # what get_blas() returns
# float32 or float64, by name, scalar type or dtype (_validation.FLOAT_DTYPES)
DType = Literal["float32", "float64"] | type[np.float32] | type[np.float64] | np.dtype[np.float32] | np.dtype[np.float64]
# the estimators' options, with scikit-learn's names (fastmlp._sklearn's parameter constraints)
Solver = Literal["lbfgs", "sgd", "adam", "adamw", "rprop"]
LearningRate = Literal["constant", "invscaling", "adaptive"]
RegressorLoss = Literal["squared_error", "poisson", "absolute_error", "huber", "quantile"]

Floats = NDArray[np.floating[Any]]
Labels = NDArray[Any]
# X: an array-like, or a scipy.sparse matrix or array (SciPy ships no type information)
Input = Any
PathLike = str | os.PathLike[str]
# callback(epoch, logs) -> False to stop; anything else (None, True) goes on
Callback = Callable[[int, dict[str, Any]], object]
# class_weight: "balanced", {label: weight}, or one such dict per output (multilabel)
ClassWeight = Literal["balanced"] | Mapping[Any, float] | Sequence[Mapping[Any, float]]
# MLP.fit(monitor=): a loss by name (_training.MONITORS), or a score monitor(model, X_val, y_val)
Monitor = Literal["loss", "val_loss"] | Callable[[Any, Any, Any], float]
# the estimators' scoring: a scikit-learn scorer name, or a scorer callable(estimator, X, y)
Scoring = str | Callable[..., float]

T = TypeVar("T")


class Setting(Generic[T]):
    """A read-only attribute of a model, read from `source` on it ("_dtype", "_net.sizes"):
    settings are fixed at construction (make a new model to change one), so what `fit`
    trains and what `save` writes cannot disagree."""

    def __init__(self, source: str, doc: str) -> None:
        self._path = source.split(".")
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, model: None, owner: type | None = None) -> Setting[T]: ...

    @overload
    def __get__(self, model: object, owner: type | None = None) -> T: ...

    def __get__(self, model: object | None, owner: type | None = None) -> T | Setting[T]:
        if model is None:
            return self
        value: Any = model
        for part in self._path:
            value = getattr(value, part)
        return value  # type: ignore[no-any-return]

    def __set__(self, model: object, value: object) -> NoReturn:
        raise AttributeError(f"{self._name!r} is a setting, fixed when the model is made: make a new model "
                             "to change it")
