"""The extension points, each named once: hidden activations, outputs, losses, optimizers
and their hyperparameters.

A new one is a row here plus its implementation in each backend (``_core_math.pxi`` and
``_reference.py``; a hidden activation also in ``_onnx.py``). Both backends check at import
that they implement exactly the names listed here (``implemented``), and the tests
parametrize over these lists and check that both backends, the tests' own formulas and the
documentation cover each name. Everything above the backends (``MLP``, the estimators'
parameter checks, the command line's choices, the type annotations) reads its names here.
"""

from dataclasses import dataclass
from typing import Literal

# Hidden activations -> the initialisation that ``init="auto"`` gives a layer feeding one:
# "he" (Kaiming normal) for the ReLU family, "glorot" (uniform) otherwise.
ACTIVATIONS = {
    "identity": "glorot",
    "leaky_relu": "he",
    "relu": "he",
    "tanh": "glorot",
    "sigmoid": "glorot",
    "gelu": "he",
    "silu": "he",
}
# ... the same names for type checkers (fastmlp._typing; tests/test_typing.py holds them equal)
Activation = Literal["identity", "leaky_relu", "relu", "tanh", "sigmoid", "gelu", "silu"]

# scikit-learn's names where they differ from ours (its estimators and the command line
# take scikit-learn's): every hidden activation above is offered there under this name.
SKLEARN_NAMES = {"sigmoid": "logistic"}


def sklearn_activations():
    """{scikit-learn's name: fastmlp's} for every hidden activation, in ACTIVATIONS' order."""
    return {SKLEARN_NAMES.get(name, name): name for name in ACTIVATIONS}


EstimatorActivation = Literal["identity", "leaky_relu", "relu", "tanh", "logistic", "gelu", "silu"]


# Output activations: what ``predict_proba`` returns from the logits of the last layer.
OUTPUTS = ("sigmoid", "softmax", "identity", "exp")

# Losses -> the output activation each is computed through, stably from the logits. The
# first loss listed for an output is the one a model pairs with it by default.
LOSSES = {
    "bce": "sigmoid",
    "cross_entropy": "softmax",
    "mse": "identity",
    "poisson": "exp",
    "huber": "identity",
    "mae": "identity",
    "quantile": "identity",
}

# scikit-learn's regression loss names (HistGradientBoostingRegressor's, where it has one) ->
# fastmlp's: ``MLPRegressor(loss=...)`` and ``fastmlp train --loss`` take these.
SKLEARN_REGRESSION_LOSSES = {
    "squared_error": "mse",
    "poisson": "poisson",
    "absolute_error": "mae",
    "huber": "huber",
    "quantile": "quantile",
}

# The layer ops a network is a sequence of (``fastmlp._spec.Network.ops``), each with a
# forward and a backward in both backends: a dense layer (weights and bias), a hidden
# activation, inverted dropout (training only), batch and layer normalization (between a
# dense layer and its activation). The output head (output activation and loss) closes
# the sequence.
LAYER_OPS = ("dense", "activation", "dropout", "batch_norm", "layer_norm")

# Optimizer hyperparameters besides `lr` (PyTorch's meanings and defaults), each declared
# once: its default and the interval it must lie in, checked by fastmlp._spec.Optimizer.


@dataclass(frozen=True)
class Hyperparameter:
    """A default (a bool for a switch, else a float) and the interval [low, high] a float
    must lie in (None: unbounded; `closed`: which ends belong to it, "both", "left", "right"
    or "neither"). `low` may name another hyperparameter (its value is the bound). A switch
    with `needs` may only be on when that hyperparameter is > 0. `note`: said with the rule."""

    default: float | bool
    low: float | str | None = None
    high: float | None = None
    closed: str = "both"
    needs: str | None = None
    note: str = ""


HYPERPARAMETERS = {
    "momentum": Hyperparameter(0.0, 0, 1),                     # scikit-learn's range
    "nesterov": Hyperparameter(False, needs="momentum"),
    "beta1": Hyperparameter(0.9, 0, 1, "left"),
    "beta2": Hyperparameter(0.999, 0, 1, "left"),
    "eps": Hyperparameter(1e-8, 0, None, "neither"),
    "weight_decay": Hyperparameter(0.01, 0, None, "left"),
    "etaplus": Hyperparameter(1.2, 1, None, "neither", note="rprop's step growth"),
    "etaminus": Hyperparameter(0.5, 0, 1, "neither", note="rprop's step shrink"),
    "step_min": Hyperparameter(1e-6, 0, None, "neither"),
    "step_max": Hyperparameter(50.0, "step_min", None, "left"),
}


# The losses that take a parameter -> (its name, its declaration): huber's threshold delta
# (PyTorch's HuberLoss, default 1.0) and the quantile of the pinball loss (scikit-learn's
# mean_pinball_loss alpha, default 0.5: the median). A model keeps the value in
# ``fastmlp._spec.Network.loss_parameter``; the backends' loss kernels read it there.
LOSS_PARAMETERS = {
    "huber": ("delta", Hyperparameter(1.0, 0, None, "neither", note="Huber's threshold")),
    "quantile": ("quantile", Hyperparameter(0.5, 0, 1, "neither", note="the pinball loss's target quantile")),
}


@dataclass(frozen=True)
class OptimizerKind:
    """What an optimizer reads besides `lr` (names in HYPERPARAMETERS), the vectors of state
    it keeps per parameter (the backends' `state` arrays have this many rows), and whether
    its steps need the gradient of the whole training set."""

    hyperparameters: tuple[str, ...]
    state: int
    full_batch: bool = False


# Optimizers run by the backends' training loop (their steps: ``_update_range`` in
# _core_math.pxi, ``_UPDATES`` in _reference.py).
OPTIMIZERS = {
    "sgd": OptimizerKind(("momentum", "nesterov"), state=1),                      # velocity
    "adam": OptimizerKind(("beta1", "beta2", "eps"), state=2),                    # moments m, v
    "adamw": OptimizerKind(("beta1", "beta2", "eps", "weight_decay"), state=2),   # moments m, v
    "rprop": OptimizerKind(("etaplus", "etaminus", "step_min", "step_max"), state=2,
                           full_batch=True),              # step sizes, the previous gradient
}

# Optimizers whose steps need the gradient of the whole training set.
FULL_BATCH = tuple(name for name, kind in OPTIMIZERS.items() if kind.full_batch)


def default_loss(output):
    """The loss a model pairs with `output` when none is given."""
    return next(loss for loss, out in LOSSES.items() if out == output)


def implemented(backend, kind, names, table):
    """`table` (a dict keyed by name) when its keys are exactly `names`; else ImportError
    saying which names `backend` is missing or has beyond the registry."""
    missing = [n for n in names if n not in table]
    extra = [n for n in table if n not in names]
    if missing or extra:
        raise ImportError(
            f"fastmlp's {backend} backend does not match the {kind} registry in fastmlp._registry: "
            f"missing {missing}, not registered {extra}"
        )
    return table
