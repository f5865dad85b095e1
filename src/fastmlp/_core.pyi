# Type stub for the compiled backend (src/fastmlp/_core.pyx); same API as fastmlp._reference.
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._spec import Network, Optimizer

_Floats = NDArray[np.floating[Any]]

BLAS_LIBRARY_DIR: str
BLAS_MIN_PRODUCT: int
SPLIT_MIN_PRODUCT: int

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
def output_loss(loss: str, Z: ArrayLike, Y: ArrayLike, G: _Floats, parameter: float | None = None) -> float: ...
def sigmoid_bce(Z: ArrayLike, Y: ArrayLike, G: _Floats) -> float: ...
def predict_proba(net: Network, params: _Floats, X: ArrayLike, out: _Floats) -> _Floats: ...
def loss_gradient(
    net: Network,
    params: _Floats,
    X: ArrayLike,
    Y: ArrayLike,
    grad: _Floats | None = None,
    sample_weight: ArrayLike | None = None,
) -> float: ...
def train(
    net: Network,
    params: _Floats,
    X: ArrayLike,
    Y: ArrayLike,
    *,
    optimizer: Optimizer,
    state: _Floats,
    losses: NDArray[np.float64],
    epochs: int,
    batch_size: int,
    rng: np.random.Generator | None = None,
    sample_weight: ArrayLike | None = None,
    callback: Callable[[int, float], bool] | None = None,
    stop: threading.Event | None = None,
    dropout_key: int = 0,
) -> int: ...
