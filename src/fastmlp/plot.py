"""Plots of a model: its loss per epoch and, for two input features, what it predicts over
the plane. ``pip install 'fastmlp[plot]'`` (matplotlib), imported only when a plot is drawn.

Both functions take a ``fastmlp.MLP`` or a fitted ``MLPClassifier``/``MLPRegressor``, draw
on `ax` (a new figure's axes when None) and return the matplotlib ``Axes``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:                      # matplotlib is optional: only type checkers import it here
    from matplotlib.axes import Axes

    from ._model import MLP
    from ._sklearn import MLPClassifier, MLPRegressor

    Model = MLP | MLPClassifier | MLPRegressor

_GRID = 200            # points per side of the decision boundary's grid
_MARGIN = 0.15         # the grid extends the data's range by this fraction on each side


def _matplotlib():
    """The matplotlib module, or an ImportError that says how to install it."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(f"fastmlp.plot needs matplotlib ({exc}): pip install 'fastmlp[plot]'") from None
    return matplotlib


def _axes(ax):
    """`ax`, or the axes of a new pyplot figure (pyplot is imported only then)."""
    if ax is not None:
        return ax
    _matplotlib()
    import matplotlib.pyplot as plt

    return plt.subplots()[1]


# ================================================================== loss curve


def _curves(model):
    """(training losses, validation losses or None, validation scores or None, their label)."""
    if hasattr(model, "history_"):                                     # MLP
        history = model.history_
        return history["loss"], history["val_loss"] or None, None, None
    if not hasattr(model, "_mlp"):
        raise ValueError(f"this {type(model).__name__} is not fitted yet: fit it before plotting")
    if not hasattr(model, "loss_curve_"):
        raise ValueError(f"{type(model).__name__}(solver={model.solver!r}) records no loss per epoch "
                         "(loss_curve_); only the stochastic solvers do")
    return (model.loss_curve_, getattr(model, "validation_loss_curve_", None) or None,
            model.validation_scores_ or None, f"validation {_score_name(model)}")


def _score_name(model):
    """What an estimator's validation_scores_ hold: its `scoring`, else accuracy or R²."""
    scoring = getattr(model, "scoring", None)
    if isinstance(scoring, str):
        return scoring
    if scoring is not None:
        return "score"
    return "accuracy" if hasattr(model, "classes_") else "R²"


def loss_curve(model: Model, ax: Axes | None = None) -> Axes:
    """The training loss per epoch and, when the fit held data out, the validation loss
    (``history_["val_loss"]`` of an ``MLP``, an estimator's ``validation_loss_curve_``) on
    the same axis, and an estimator's validation score (``validation_scores_``) on a second
    y axis at the right. The loss axis is logarithmic when the loss falls by more than a
    factor of 100."""
    _matplotlib()
    loss, val_loss, scores, label = _curves(model)
    if not len(loss) and not val_loss and not scores:
        raise ValueError("the model has no training history: fit it before plotting its loss")
    ax = _axes(ax)
    lines, top = [], ax
    if len(loss):
        lines += ax.plot(np.arange(1, len(loss) + 1), loss, label="training loss")
    if val_loss:
        lines += ax.plot(np.arange(1, len(val_loss) + 1), val_loss, color="C1", label="validation loss")
    finite = np.asarray([*loss, *(val_loss or ())], dtype=float)
    finite = finite[np.isfinite(finite)]
    if finite.size and finite.min() > 0 and finite.max() > 100 * finite.min():
        ax.set_yscale("log")
    if scores:                           # a score, not a loss: its own scale
        top = twin = ax.twinx()
        lines += twin.plot(np.arange(1, len(scores) + 1), scores, color="C2", label=label)
        twin.set_ylabel(label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    top.legend(lines, [line.get_label() for line in lines], loc="best")   # above every line
    return ax


# ================================================================== decision boundary


def _surface(model, X):
    """(values on the rows of X, classes or None, colour-bar label) for `model`: P(positive
    class) for a binary classifier (classes: both), the predicted class's index for several
    classes, the prediction for a regressor (classes None)."""
    if hasattr(model, "classes_"):                                       # MLPClassifier
        proba = model.predict_proba(X)
        if len(model.classes_) == 2 and proba.shape[1] == 2:
            return proba[:, 1], model.classes_, f"P({model.classes_[1]})"
        if model._label_binarizer.y_type_ != "multiclass":
            raise ValueError("decision_boundary draws one output; this classifier is multilabel")
        return proba.argmax(axis=1), model.classes_, "predicted class"
    if hasattr(model, "n_outputs_"):                                     # MLPRegressor
        values = np.asarray(model.predict(X))
        if values.ndim != 1:
            raise ValueError("decision_boundary draws one output; this regressor has several")
        return values, None, "prediction"
    out = model.predict_proba(X)                                          # MLP
    if model.output == "softmax":
        return out.argmax(axis=1), np.arange(out.shape[1]), "predicted class"
    if out.shape[1] != 1:
        raise ValueError(f"decision_boundary draws one output; this network has {out.shape[1]}")
    if model.output == "sigmoid":
        return out[:, 0], np.array([0, 1]), "P(1)"
    return out[:, 0], None, "prediction"


def _grid(model, X):
    """The mesh (xx, yy) over the data's range and its points in the form `model` takes
    (a DataFrame with the training column names when the model has them)."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = _MARGIN * np.where(hi > lo, hi - lo, 1.0)
    xx, yy = np.meshgrid(np.linspace(lo[0] - pad[0], hi[0] + pad[0], _GRID),
                         np.linspace(lo[1] - pad[1], hi[1] + pad[1], _GRID))
    points = np.column_stack([xx.ravel(), yy.ravel()])
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        import pandas as pd

        points = pd.DataFrame(points, columns=list(names))
    return xx, yy, points


def _class_index(y, classes):
    """Each label's position in `classes`; ValueError for a label that is not one of them."""
    unknown = ~np.isin(y, classes)
    if unknown.any():
        raise ValueError(f"y holds {y[unknown][0]!r}, not one of the model's classes {list(classes)}")
    return np.searchsorted(classes, y)


def _colours(values, classes, label, y):
    """(colour map, norm, contour levels, colour value of each class or None)."""
    from matplotlib.colors import Normalize

    if classes is None:                                    # a regressor: one scale for both
        both = np.concatenate([values, np.asarray(y, dtype=float)])
        lo, hi = both.min(), both.max()
        hi = hi if hi > lo else lo + 1.0
        return "viridis", Normalize(lo, hi), np.linspace(lo, hi, 21), None
    if label.startswith("P("):                             # binary: probability 0 -> 1
        return "RdBu_r", Normalize(0, 1), np.linspace(0, 1, 11), np.array([0.0, 1.0])
    return "tab10", Normalize(0, 9), np.arange(len(classes) + 1) - 0.5, np.arange(len(classes))


def decision_boundary(model: Model, X: Any, y: Any, ax: Axes | None = None) -> Axes:
    """What `model` predicts over the plane of its two input features, as a filled contour
    (the probability of the positive class for a binary classifier, the predicted class for
    several, the value for a regressor), with the samples (X, y) on top, coloured alike."""
    mpl = _matplotlib()
    X = np.asarray(X, dtype=float)
    y = np.asarray(y)
    y = y.reshape(len(y), -1)[:, 0] if y.ndim > 1 else y
    if X.ndim != 2 or X.shape[1] != 2:
        raise ValueError(f"decision_boundary needs X with 2 feature columns, got shape {X.shape}")
    if len(y) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    xx, yy, points = _grid(model, X)
    values, classes, label = _surface(model, points)
    cmap, norm, levels, class_colours = _colours(values, classes, label, y)
    ax = _axes(ax)
    contour = ax.contourf(xx, yy, values.reshape(xx.shape), levels=levels, cmap=cmap, norm=norm, alpha=0.8)
    colorbar = ax.figure.colorbar(contour, ax=ax, label=label)
    if class_colours is not None and label == "predicted class":
        colorbar.set_ticks(np.arange(len(classes)), labels=[str(name) for name in classes])
    if classes is None:
        ax.scatter(X[:, 0], X[:, 1], c=y.astype(float), cmap=cmap, norm=norm, edgecolors="k")
    else:
        index, colour_map = _class_index(y, classes), mpl.colormaps[cmap]
        for k, name in enumerate(classes):
            ax.scatter(X[index == k, 0], X[index == k, 1], color=colour_map(norm(class_colours[k])),
                       edgecolors="k", label=str(name))
        ax.legend(title="class", loc="best")
    names = getattr(model, "feature_names_in_", None)
    names = list(names) if names is not None else ["feature 0", "feature 1"]
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    return ax
