"""The exceptions fastmlp defines (exported from ``fastmlp``)."""


class DivergenceError(ValueError):
    """Training diverged: a loss became NaN or infinite. The model keeps the weights and
    history of the steps before it; a smaller ``lr`` or scaled inputs usually help."""


class ModelFileError(ValueError):
    """A file given to ``fastmlp.load`` is not a readable fastmlp model file."""
