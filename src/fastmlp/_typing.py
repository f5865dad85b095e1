"""Types of the public API, for annotations (the checks themselves live in ``_validation``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Generic, NoReturn, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["ArrayLike", "Callback", "Floats", "Input", "Labels", "PathLike", "Setting"]

Floats = NDArray[np.floating[Any]]
Labels = NDArray[Any]
# X: an array-like, or a scipy.sparse matrix or array (SciPy ships no type information)
Input = Any
PathLike = str | os.PathLike[str]
# callback(epoch, logs) -> False to stop; anything else (None, True) goes on
Callback = Callable[[int, dict[str, Any]], object]

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
