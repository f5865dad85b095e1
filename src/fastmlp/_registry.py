"""The extension points, each named once: hidden activations, outputs, losses, optimizers.

A new one is a row here plus its implementation in each backend (``_core.pyx`` and
``_reference.py``). Both backends check at import that they implement exactly the names
listed here (``implemented``), and the tests parametrize over these lists and check that
both backends and the tests' own formulas cover each name.
"""

# Hidden activations -> the initialisation that ``init="auto"`` gives a layer feeding one:
# "he" (Kaiming normal) for the ReLU family, "glorot" (uniform) otherwise.
ACTIVATIONS = {
    "identity": "glorot",
    "leaky_relu": "he",
    "relu": "he",
    "tanh": "glorot",
    "sigmoid": "glorot",
    "gelu": "he",
}

# scikit-learn's names where they differ from ours (its estimators and the command line
# take scikit-learn's): every hidden activation above is offered there under this name.
SKLEARN_NAMES = {"sigmoid": "logistic"}


def sklearn_activations():
    """{scikit-learn's name: fastmlp's} for every hidden activation, in ACTIVATIONS' order."""
    return {SKLEARN_NAMES.get(name, name): name for name in ACTIVATIONS}


# Output activations: what ``predict_proba`` returns from the logits of the last layer.
OUTPUTS = ("sigmoid", "softmax", "identity", "exp")

# Losses -> the output activation each is computed through, stably from the logits. The
# first loss listed for an output is the one a model pairs with it by default.
LOSSES = {
    "bce": "sigmoid",
    "cross_entropy": "softmax",
    "mse": "identity",
    "poisson": "exp",
}

# The layer ops a network is a sequence of (``fastmlp._spec.Network.ops``), each with a
# forward and a backward in both backends: a dense layer (weights and bias), a hidden
# activation, inverted dropout (training only). The output head (output activation and
# loss) closes the sequence.
LAYER_OPS = ("dense", "activation", "dropout")

# Optimizers run by the backends' training loop -> the hyperparameters each reads besides
# `lr` (their defaults live on ``fastmlp._spec.Optimizer``).
OPTIMIZERS = {
    "sgd": ("momentum", "nesterov"),
    "adam": ("beta1", "beta2", "eps"),
    "adamw": ("beta1", "beta2", "eps", "weight_decay"),
    "rprop": ("etaplus", "etaminus", "step_min", "step_max"),
}

# Optimizers whose steps need the gradient of the whole training set.
FULL_BATCH = ("rprop",)


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
