# Type stub for the compiled backend (fastmlp/_core.pyx); same API as fastmlp._reference.
import numpy as np
from numpy.typing import ArrayLike, NDArray

def dense_forward(A: ArrayLike, W: ArrayLike, b: ArrayLike, Z: NDArray[np.floating]) -> NDArray[np.floating]: ...
def dense_backward(
    A_prev: ArrayLike,
    W: ArrayLike,
    dZ: ArrayLike,
    dW: NDArray[np.floating],
    db: NDArray[np.floating],
    dA_prev: NDArray[np.floating] | None = None,
) -> None: ...
def leaky_relu(Z: ArrayLike, A: NDArray[np.floating], negative_slope: float = 0.01) -> NDArray[np.floating]: ...
def leaky_relu_backward(
    Z: ArrayLike, dA: ArrayLike, dZ: NDArray[np.floating], negative_slope: float = 0.01
) -> NDArray[np.floating]: ...
def sigmoid(Z: ArrayLike, A: NDArray[np.floating]) -> NDArray[np.floating]: ...
def sigmoid_bce(Z: ArrayLike, Y: ArrayLike, G: NDArray[np.floating]) -> float: ...
def predict_proba(
    params: NDArray[np.floating],
    sizes: tuple[int, ...],
    hidden: tuple[str, ...],
    negative_slope: float,
    output: str,
    X: ArrayLike,
    out: NDArray[np.floating],
) -> NDArray[np.floating]: ...
def loss_gradient(
    params: NDArray[np.floating],
    sizes: tuple[int, ...],
    hidden: tuple[str, ...],
    negative_slope: float,
    output: str,
    X: ArrayLike,
    Y: ArrayLike,
    grad: NDArray[np.floating] | None = None,
) -> float: ...
def train_sgd(
    params: NDArray[np.floating],
    sizes: tuple[int, ...],
    hidden: tuple[str, ...],
    negative_slope: float,
    output: str,
    X: ArrayLike,
    Y: ArrayLike,
    epochs: int,
    lr: float,
    batch_size: int,
    rng: np.random.Generator | None,
    losses: NDArray[np.float64],
) -> None: ...
