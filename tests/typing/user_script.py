"""A user's script that must pass ``mypy --strict`` against the installed fastmlp
(tests/test_typing.py checks it, and what mypy infers for the calls marked below)."""

import numpy as np
import numpy.typing as npt

import fastmlp
from fastmlp import MLP, MLPClassifier, MLPRegressor


def stop_early(epoch: int, logs: dict[str, float]) -> bool:
    return logs["loss"] > 0.01


def xor(path: str) -> MLP:
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=float)
    y = np.array([0, 1, 1, 0])
    net = MLP([2, 4, 1], activation="leaky_relu", init="normal", seed=42)
    fitted = net.fit(X, y, epochs=100, lr=0.1, callback=lambda epoch, logs: logs["loss"] > 0.01)
    reveal_type(fitted)  # expect: MLP
    proba: npt.NDArray[np.floating] = fitted.predict_proba(X)
    labels: npt.NDArray[np.generic] = fitted.predict(X)
    loss: float = fitted.loss(X, y)
    sizes: tuple[int, ...] = fitted.layer_sizes
    dtype: np.dtype[np.generic] = fitted.dtype
    dcoefs, dintercepts = fitted.gradients(X, y)
    backends: tuple[str, ...] = fastmlp.available_backends()
    fitted.save(path)
    again = fastmlp.load(path)
    reveal_type(again)  # expect: MLP
    print(proba, labels, loss, sizes, dtype, dcoefs, dintercepts, backends)
    return again.partial_fit(X, y, lr=0.05)


def estimators() -> float:
    X = np.random.default_rng(0).standard_normal((60, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    clf = MLPClassifier(hidden_layer_sizes=(8,), max_iter=20, callback=stop_early).fit(X, y)
    reveal_type(clf)  # expect: MLPClassifier
    reg = MLPRegressor(hidden_layer_sizes=(8,), max_iter=20).fit(X, X[:, 0])
    reveal_type(reg)  # expect: MLPRegressor
    proba: npt.NDArray[np.floating] = clf.predict_proba(X)
    more: MLPClassifier = clf.partial_fit(X, y)
    graph = fastmlp.to_onnx(clf)
    reveal_type(graph)  # expect: ModelProto
    axes = fastmlp.plot.loss_curve(clf)
    reveal_type(axes)  # expect: Axes
    print(proba, more, reg.predict(X), graph.graph.name, axes.get_title())
    return float(clf.score(X, y)) + float(reg.score(X, X[:, 0]))


if __name__ == "__main__":
    xor("xor.npz")
    estimators()
