# Type stub for the compiled backend (src/fastmlp/_core.pyx); same API as fastmlp._reference.
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

_Floats = NDArray[np.floating[Any]]

def dense_forward(A: ArrayLike, W: ArrayLike, b: ArrayLike, Z: _Floats) -> _Floats: ...
def dense_backward(
    A_prev: ArrayLike, W: ArrayLike, dZ: ArrayLike, dW: _Floats, db: _Floats, dA_prev: _Floats | None = None
) -> None: ...
def activation(name: str, Z: ArrayLike, A: _Floats, negative_slope: float = 0.01) -> _Floats: ...
def activation_backward(
    name: str, Z: ArrayLike, A: ArrayLike, dA: ArrayLike, dZ: _Floats, negative_slope: float = 0.01
) -> _Floats: ...
def leaky_relu(Z: ArrayLike, A: _Floats, negative_slope: float = 0.01) -> _Floats: ...
def leaky_relu_backward(Z: ArrayLike, dA: ArrayLike, dZ: _Floats, negative_slope: float = 0.01) -> _Floats: ...
def sigmoid(Z: ArrayLike, A: _Floats) -> _Floats: ...
def output_activation(output: str, Z: ArrayLike, P: _Floats) -> _Floats: ...
def output_loss(output: str, Z: ArrayLike, Y: ArrayLike, G: _Floats) -> float: ...
def sigmoid_bce(Z: ArrayLike, Y: ArrayLike, G: _Floats) -> float: ...
def predict_proba(
    params: _Floats,
    sizes: tuple[int, ...],
    hidden: tuple[str, ...],
    negative_slope: float,
    output: str,
    X: ArrayLike,
    out: _Floats,
) -> _Floats: ...
def loss_gradient(
    params: _Floats,
    sizes: tuple[int, ...],
    hidden: tuple[str, ...],
    negative_slope: float,
    output: str,
    X: ArrayLike,
    Y: ArrayLike,
    grad: _Floats | None = None,
    l2: float = 0.0,
    sample_weight: ArrayLike | None = None,
) -> float: ...
def train(
    params: _Floats,
    sizes: tuple[int, ...],
    hidden: tuple[str, ...],
    negative_slope: float,
    output: str,
    X: ArrayLike,
    Y: ArrayLike,
    epochs: int,
    batch_size: int,
    rng: np.random.Generator | None,
    losses: NDArray[np.float64],
    optimizer: dict[str, Any],
    state: _Floats,
    l2: float = 0.0,
    sample_weight: ArrayLike | None = None,
    callback: Callable[[int, float], bool] | None = None,
) -> None: ...
