"""``MLPClassifier`` and ``MLPRegressor``: scikit-learn's estimators of the same names, as a
thin layer over ``fastmlp.MLP``.

Same parameters, defaults, fitted attributes and errors as scikit-learn's; parameters are
stored by ``__init__`` and validated by ``fit`` through scikit-learn's own constraint
machinery. The estimators translate labels, ``alpha`` and the losses' scales (see
``_sklearn_train``) and train through the model layer's one training loop.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import Any, Literal, TypeVar

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context, clone
from sklearn.metrics import accuracy_score, check_scoring, get_scorer_names, r2_score
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import _check_partial_fit_first_call, type_of_target, unique_labels
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import _progress, _registry, _sklearn_train, _training
from ._model import undrawn_mlp
from ._spec import NORMS, norm_settings
from ._typing import (ArrayLike, Backend, Callback, ClassWeight, EstimatorActivation, Floats, Input, Labels, Norms,
                      LearningRate, RegressorLoss, Scoring, Solver)
from ._validation import class_columns, class_sample_weight

_Estimator = TypeVar("_Estimator", bound="_BaseMLP")
_Method = TypeVar("_Method", bound=Callable[..., Any])


def _fitting(method: _Method) -> _Method:
    """scikit-learn's fit context (parameter validation first), keeping `method`'s type."""
    return _fit_context(prefer_skip_nested_validation=True)(method)  # type: ignore[no-any-return]


def _if_stochastic(method: _Method) -> _Method:
    """`method` only where the solver is stochastic (scikit-learn's available_if), keeping its type."""
    return available_if(_stochastic)(method)  # type: ignore[no-any-return]

# scikit-learn's hidden activation names -> fastmlp's
ACTIVATIONS = _registry.sklearn_activations()
OUTPUTS = {"logistic": ("sigmoid", "bce"), "softmax": ("softmax", "cross_entropy"),
           "identity": ("identity", "mse"), "exp": ("exp", "poisson")}
# sparse X: CSR and CSC as they are; other formats become CSR (the first layer reads CSR)
SPARSE = ["csr", "csc"]


def _stochastic(est):
    if est.solver not in _sklearn_train.STOCHASTIC:
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. {est.solver} is not "
                             "stochastic.")
    return True


def _weight_views(name, what):
    """A fitted attribute that reads the model's `name` (a ``WeightViews``: views into its
    parameters, whose item assignment copies in) and, when assigned a list of arrays, copies
    them into those views (the model's setter: every shape checked before any is written)."""

    def get(self):
        check_is_fitted(self)
        return getattr(self._mlp, name)

    def set(self, values):
        check_is_fitted(self)
        setattr(self._mlp, name, values)

    return property(get, set, doc=f"{what}: views into the model's parameters.")


class _BaseMLP(BaseEstimator):
    """What both estimators share: parameters, fitting, the forward pass."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [StrOptions(set(ACTIVATIONS))],
        "solver": [StrOptions({"lbfgs", *_sklearn_train.STOCHASTIC})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
        "negative_slope": [Interval(Real, None, None, closed="neither")],
        "n_restarts": [Interval(Integral, 1, None, closed="left")],
        "backend": [StrOptions({"auto", "cython", "numpy"})],
        "callback": [callable, None],
        "progress": ["boolean"],
        "scoring": [StrOptions(set(get_scorer_names())), callable, None],
        "dropout": [Interval(Real, 0, 1, closed="left"), "array-like"],
        "norm": [StrOptions(set(NORMS)), "array-like", None],
    }
    _is_classifier = False

    # ------------------------------------------------------------------ fitted weights

    def __sklearn_is_fitted__(self):
        return hasattr(self, "_mlp")

    coefs_ = _weight_views("coefs_", "Weight matrices, ``coefs_[i]`` of shape (n_in, n_out)")
    intercepts_ = _weight_views("intercepts_", "Bias vectors, ``intercepts_[i]`` of shape (n_out,)")

    # ------------------------------------------------------------------ fitting

    @_fitting
    def fit(self: _Estimator, X: Input, y: ArrayLike, sample_weight: ArrayLike | None = None) -> _Estimator:
        """Fit the network to X (n_samples, n_features) and y: class labels (classifier) or
        values (regressor), shape (n_samples,) or (n_samples, n_outputs). Returns self."""
        restarts = self.n_restarts > 1 and not (self.warm_start and hasattr(self, "_mlp"))
        epochs = self.max_iter * (self.n_restarts if restarts else 1)
        with _sklearn_train.Unchanged(self), self._reporting(epochs) as report:
            if restarts:
                return self._fit_restarts(X, y, sample_weight, report)
            return self._fit(X, y, sample_weight, False, report)

    def _reporting(self, epochs):
        """Our extras' per-epoch hook for a fit of up to `epochs` epochs: `callback`, `progress`."""
        return _progress.reporting(self.callback, self.progress, epochs, f"fastmlp {type(self).__name__}")

    def _fit(self, X, y, sample_weight, incremental, report, restart=0, stop=None):
        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        if np.any(np.array(hidden) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden)
        first_pass = not hasattr(self, "_mlp") or (not self.warm_start and not incremental)
        self._network_loss()        # (a loss parameter the loss does not read: refused before any work)
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        sample_weight = self._sample_weight(X, Y, sample_weight, incremental)
        random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(Y, [X.shape[1], *hidden, Y.shape[1]], X.dtype, random_state)
        elif self._mlp.layer_sizes != (X.shape[1], *hidden, Y.shape[1]):
            raise ValueError(f"the network {self._mlp.layer_sizes} does not fit layers {[X.shape[1], *hidden]} "
                             f"and {Y.shape[1]} outputs; fit again without warm_start")
        elif self._mlp.norm != norm_settings(self.norm, len(hidden)):
            raise ValueError(f"the network's norms {self._mlp.norm} are not norm={self.norm!r}; fit again "
                             "without warm_start")
        else:
            self._check_same_loss()
        Y = Y.astype(self._mlp.dtype)
        hook = _sklearn_train.Hook(report, restart) if report.active else None
        if self.solver == "lbfgs":
            _sklearn_train.fit_lbfgs(self, X, Y, sample_weight, hook, stop)
        else:
            _sklearn_train.fit_stochastic(self, X, Y, sample_weight, incremental, random_state, hook, stop)
        return self

    def _initialize(self, Y, layer_units, dtype, random_state):
        """A new network with scikit-learn's initial weights (Glorot uniform, biases too,
        drawn from `random_state` layer by layer) and the fitted attributes reset."""
        self.n_iter_, self.t_ = 0, 0
        self.n_outputs_, self.n_layers_ = Y.shape[1], len(layer_units)
        self.out_activation_ = self._out_activation()
        output, loss = OUTPUTS[self.out_activation_]
        chosen, parameters = self._network_loss()
        loss = chosen or loss
        self._loss_scale, self._loss_report = _sklearn_train.loss_scales(self.out_activation_, self.n_outputs_, loss)
        self._mlp = undrawn_mlp(layer_units, activation=ACTIVATIONS[self.activation], output=output, loss=loss,
                        negative_slope=self.negative_slope, seed=0, dtype=dtype, backend=self.backend,
                        dropout=self.dropout, norm=self.norm, **parameters)
        factor = 2.0 if self.activation == "logistic" else 6.0
        for W, b in zip(self._mlp.coefs_, self._mlp.intercepts_):
            bound = np.sqrt(factor / sum(W.shape))
            W[...] = random_state.uniform(-bound, bound, W.shape)
            b[...] = random_state.uniform(-bound, bound, b.shape)
        self._run, self._best_params = None, self._mlp.params_.copy()   # early stopping's best so far
        if self.solver in _sklearn_train.STOCHASTIC:
            self.loss_curve_, self._no_improvement_count = [], 0
            if self.early_stopping:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = [], -np.inf, None
            else:
                self.validation_scores_, self.best_validation_score_, self.best_loss_ = None, None, np.inf
            self.validation_loss_curve_ = [] if self.early_stopping else None     # our extra

    def _network_loss(self):
        """(fastmlp's loss name, {its parameter's name: value}) the estimator trains with; (None,
        {}): the output activation's own loss (the classifier's)."""
        return None, {}

    def _check_same_loss(self):
        """ValueError unless a warm start or partial_fit keeps the loss the network was made with."""
        loss, parameters = self._network_loss()
        if loss is not None and (self._mlp.loss_name != loss or any(
                value is not None and getattr(self._mlp, name) != value for name, value in parameters.items())):
            raise ValueError(f"the network was made for loss {self._mlp.loss_name!r} (parameter "
                             f"{self._mlp._net.loss_parameter}), the estimator has loss={self.loss!r} {parameters}: "
                             "fit again without warm_start")

    def _fit_restarts(self, X, y, sample_weight, report):
        """Our extra: n_restarts fits from random states drawn from random_state, in at most
        one thread per core (`_training.in_threads`, as MLP's restarts: Ctrl-C or an error
        stops every restart within a few batches). Keeps the best validation score with early
        stopping, else the lowest final loss (the earlier restart on a tie); a finished
        restart is kept only while it is the best, so memory follows the restarts running."""
        seeds = check_random_state(self.random_state).randint(np.iinfo(np.int32).max, size=self.n_restarts)
        template = clone(self).set_params(n_restarts=1, warm_start=False)
        by_score = self.early_stopping and self.solver != "lbfgs"
        best, lock = [], threading.Lock()

        def restart(i, stop):
            est = clone(template).set_params(random_state=int(seeds[i]))
            est._fit(X, y, sample_weight, False, report, i, stop)
            value = -est.best_validation_score_ if by_score else est.loss_
            rank = (value if np.isfinite(value) else np.inf, i)
            with lock:
                if not stop.is_set() and (not best or rank < best[0]):
                    best[:] = [rank, est]

        _training.in_threads([functools.partial(restart, i) for i in range(self.n_restarts)])
        params = self.get_params(deep=False)
        self.__dict__.update(best[1].__dict__)
        self.__dict__.update(params)
        return self

    def _partial_fit(self, X, y, sample_weight):
        """partial_fit's work, under the caller's `Unchanged` (the classifier's first call sets
        its classes before this)."""
        with self._reporting(self.max_iter if self.solver == "lbfgs" else 1) as report:
            return self._fit(X, y, sample_weight, True, report)

    # ------------------------------------------------------------------ prediction

    def _forward(self, X, check_input=True):
        """Output activations (n_samples, n_outputs) of the network for X."""
        check_is_fitted(self)
        if check_input and not self.__dict__.get("_checked_input"):
            X = validate_data(self, X, reset=False, accept_sparse=SPARSE)
        return self._mlp.predict_proba(X)

    def _sample_weight(self, X, Y, sample_weight, incremental):
        """The fit's sample weights (None without): `sample_weight` checked as scikit-learn does."""
        return None if sample_weight is None else _check_sample_weight(sample_weight, X)

    def _score_now(self, X, y, sample_weight):
        """The validation score of the current weights (accuracy or R^2); NaN for non-finite outputs."""
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        score = accuracy_score if self._is_classifier else r2_score
        return score(y, y_pred, sample_weight=sample_weight)

    def _validation_scorer(self):
        """``score(X_val, y_val, w_val)`` of the current weights for early stopping: `_score_now`
        (scoring None), else the `scoring` scorer's value (NaN where it fails on non-finite
        outputs). The scorer calls the estimator's methods on the validation rows, which fit
        has checked: they are not checked again (nor their feature names)."""
        if self.scoring is None:
            return self._score_now
        scorer = check_scoring(self, self.scoring)

        def score(X, y, sample_weight):
            self._checked_input = True
            try:
                return float(scorer(self, X, y, **({} if sample_weight is None else {"sample_weight": sample_weight})))
            except ValueError:
                if np.isfinite(self._mlp.predict_proba(X)).all():
                    raise
                return np.nan
            finally:
                del self._checked_input

        return score

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


def _mlp_params(hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
                learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose,
                warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction,
                beta_1, beta_2, epsilon, n_iter_no_change, max_fun, negative_slope, n_restarts,
                backend, callback, progress, scoring, dropout, norm):
    return dict(locals())


# MLPRegressor's losses: scikit-learn's names (HistGradientBoostingRegressor's) -> fastmlp's
REGRESSION_LOSSES = _registry.SKLEARN_REGRESSION_LOSSES


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier: scikit-learn's ``MLPClassifier`` (same parameters,
    defaults, attributes and methods) trained by fastmlp.

    Extras: fastmlp's other activations ("leaky_relu" with `negative_slope`, "gelu", ...: the
    user guide lists them); solver "adamw"
    (alpha is its decoupled weight decay) and "rprop" (full batch, learning_rate_init is
    its initial step); `n_restarts` fits from different random states, keeping the best;
    `backend` ("auto", "cython", "numpy"); `callback(epoch, logs)` after every epoch
    (iteration for lbfgs; logs: "loss" on scikit-learn's scale, "val_score" with early
    stopping, "lr", "elapsed", "restart"; returning False stops the fit after it);
    `progress` (a tqdm bar on stderr); `dropout`, inverted dropout after each hidden
    activation in training (one rate in [0, 1), or one per hidden layer; masks drawn from
    random_state; not with solver="lbfgs"); `norm`, None, "batch" or "layer" (or one per
    hidden layer): PyTorch's BatchNorm1d (not with solver="lbfgs") or LayerNorm between each
    hidden layer's product and its activation. float32 X trains in float32.
    """

    _is_classifier = True
    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "class_weight": [dict, list, StrOptions({"balanced"}), None],
    }

    def __init__(self, hidden_layer_sizes: int | Sequence[int] = (100,), activation: EstimatorActivation = "relu", *,
                 solver: Solver = "adam", alpha: float = 0.0001, batch_size: int | Literal["auto"] = "auto",
                 learning_rate: LearningRate = "constant", learning_rate_init: float = 0.001, power_t: float = 0.5,
                 max_iter: int = 200, shuffle: bool = True, random_state: int | np.random.RandomState | None = None,
                 tol: float = 1e-4, verbose: bool | int = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: float = 10,
                 max_fun: int = 15000, negative_slope: float = 0.01, n_restarts: int = 1, backend: Backend = "auto",
                 callback: Callback | None = None, progress: bool = False, scoring: Scoring | None = None,
                 class_weight: ClassWeight | None = None, dropout: float | Sequence[float] = 0.0,
                 norm: Norms = None) -> None:
        self.class_weight = class_weight
        vars(self).update(_mlp_params(
            hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, learning_rate_init,
            power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, momentum,
            nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon,
            n_iter_no_change, max_fun, negative_slope, n_restarts, backend, callback, progress, scoring,
            dropout, norm))

    def _out_activation(self):
        return "softmax" if self._label_binarizer.y_type_ == "multiclass" else "logistic"

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, dtype=(np.float64, np.float32), reset=reset,
                             accept_sparse=SPARSE)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._label_binarizer = LabelBinarizer().fit(y)
            self.classes_ = self._label_binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start:
                if set(classes) != set(self.classes_):
                    raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                                     f"previous call to fit. Previously got {self.classes_}, `y` has {classes}")
            elif len(np.setdiff1d(classes, self.classes_, assume_unique=True)):
                raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has {self.classes_}. "
                                 f"'y' has {classes}.")
        return X, self._label_binarizer.transform(y).astype(X.dtype)

    def _decode(self, Y):
        return self._label_binarizer.inverse_transform(Y)

    def _sample_weight(self, X, Y, sample_weight, incremental):
        """`sample_weight` times the rows' class weights (`class_weight`), as passing scikit-learn's
        ``compute_sample_weight(class_weight, y) * sample_weight`` would (classes_ name the labels;
        multilabel: a list of {0: w, 1: w} per output, or "balanced")."""
        if self.class_weight is None:
            return super()._sample_weight(X, Y, sample_weight, incremental)
        if incremental and isinstance(self.class_weight, str):
            raise ValueError("class_weight='balanced' is not supported for partial_fit, which sees one batch: "
                             "compute the weights over all the data (sklearn.utils.class_weight."
                             "compute_class_weight) and pass them as a dict")
        y_type = self._label_binarizer.y_type_
        output = "softmax" if y_type == "multiclass" else "sigmoid"
        columns = class_columns(Y, output, None if y_type.startswith("multilabel") else self.classes_)
        rows = class_sample_weight(self.class_weight, columns)
        if sample_weight is not None:
            rows = _check_sample_weight(sample_weight, X, dtype=np.float64) * rows
        return _check_sample_weight(rows, X)

    def predict(self, X: Input) -> Labels:
        """Class labels (n_samples,), or the indicator matrix for multilabel targets."""
        return self._predict(X)

    def _predict(self, X, check_input=True):
        out = self._forward(X, check_input)
        return self._label_binarizer.inverse_transform(out[:, 0] if self.n_outputs_ == 1 else out)

    @_if_stochastic
    @_fitting
    def partial_fit(self, X: Input, y: ArrayLike, sample_weight: ArrayLike | None = None,
                    classes: ArrayLike | None = None) -> MLPClassifier:
        """One epoch over (X, y); `classes` (all labels) is required on the first call."""
        with _sklearn_train.Unchanged(self):
            if _check_partial_fit_first_call(self, classes):
                self._label_binarizer = LabelBinarizer()
                if type_of_target(y).startswith("multilabel"):
                    self._label_binarizer.fit(y)
                else:
                    self._label_binarizer.fit(classes)
            return self._partial_fit(X, y, sample_weight)

    def predict_proba(self, X: Input) -> Floats:
        """Probabilities (n_samples, n_classes) in the order of classes_; (n, 2) for binary."""
        out = self._forward(X)
        if self.n_outputs_ == 1:
            return np.column_stack([1 - out[:, 0], out[:, 0]])
        return out

    def predict_log_proba(self, X: Input) -> Floats:
        """log(predict_proba(X))."""
        proba = self.predict_proba(X)
        return np.log(proba, out=proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor: scikit-learn's ``MLPRegressor`` (same parameters,
    defaults, attributes and methods) trained by fastmlp, including loss="poisson" (an
    exponential output and half the Poisson deviance). Extras as ``MLPClassifier``'s, and
    the robust losses under HistGradientBoostingRegressor's names: loss="absolute_error"
    (PyTorch's L1Loss), "huber" (PyTorch's HuberLoss, threshold `delta` > 0, default 1.0;
    `epsilon` is Adam's here, so not SGDRegressor's name) and "quantile" (scikit-learn's
    pinball loss, `quantile` in (0, 1), default 0.5). For these three, loss_ and loss_curve_
    are the mean loss over samples and outputs plus scikit-learn's ``0.5 * alpha *
    sum(W**2) / n_batch`` (no factor 1/2 on the data loss, as squared_error has); `delta`
    and `quantile` are refused with a loss that does not read them."""

    _parameter_constraints: dict = {
        **_BaseMLP._parameter_constraints,
        "loss": [StrOptions(set(REGRESSION_LOSSES))],
        "delta": [Interval(Real, 0, None, closed="neither"), None],
        "quantile": [Interval(Real, 0, 1, closed="neither"), None],
    }

    def __init__(self, loss: RegressorLoss = "squared_error", hidden_layer_sizes: int | Sequence[int] = (100,),
                 activation: EstimatorActivation = "relu", *, solver: Solver = "adam", alpha: float = 0.0001,
                 batch_size: int | Literal["auto"] = "auto", learning_rate: LearningRate = "constant", learning_rate_init: float = 0.001,
                 power_t: float = 0.5, max_iter: int = 200, shuffle: bool = True,
                 random_state: int | np.random.RandomState | None = None, tol: float = 1e-4,
                 verbose: bool | int = False, warm_start: bool = False, momentum: float = 0.9,
                 nesterovs_momentum: bool = True, early_stopping: bool = False, validation_fraction: float = 0.1,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8, n_iter_no_change: float = 10,
                 max_fun: int = 15000, negative_slope: float = 0.01, n_restarts: int = 1, backend: Backend = "auto",
                 callback: Callback | None = None, progress: bool = False, scoring: Scoring | None = None,
                 dropout: float | Sequence[float] = 0.0, delta: float | None = None,
                 quantile: float | None = None, norm: Norms = None) -> None:
        self.loss, self.delta, self.quantile = loss, delta, quantile
        vars(self).update(_mlp_params(
            hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, learning_rate_init,
            power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, momentum,
            nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon,
            n_iter_no_change, max_fun, negative_slope, n_restarts, backend, callback, progress, scoring,
            dropout, norm))

    def _out_activation(self):
        return "exp" if self.loss == "poisson" else "identity"

    def _network_loss(self):
        loss = REGRESSION_LOSSES[self.loss]
        own = _registry.LOSS_PARAMETERS.get(loss, (None,))[0]
        for name in ("delta", "quantile"):
            if getattr(self, name) is not None and name != own:
                users = [repr(key) for key, value in REGRESSION_LOSSES.items()
                         if _registry.LOSS_PARAMETERS.get(value, (None,))[0] == name]
                raise ValueError(f"{name}={getattr(self, name)!r} is a parameter of loss={' or '.join(users)}; "
                                 f"loss={self.loss!r} takes no {name} (leave it None)")
        return loss, ({} if own is None else {own: getattr(self, own)})

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=(np.float64, np.float32),
                             reset=reset, accept_sparse=SPARSE)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if self.loss == "poisson" and (y < 0).any():
            raise ValueError("loss='poisson' needs counts or rates y >= 0; y has negative values")
        return X, (y.reshape(-1, 1) if y.ndim == 1 else y).astype(X.dtype)

    def _decode(self, Y):
        return Y[:, 0] if Y.shape[1] == 1 else Y

    def predict(self, X: Input) -> Floats:
        """Predicted values, (n_samples,) for one output, else (n_samples, n_outputs)."""
        return self._predict(X)

    def _predict(self, X, check_input=True):
        out = self._forward(X, check_input)
        return out[:, 0] if out.shape[1] == 1 else out

    # always available, as scikit-learn's (its guard never calls its solver check): with
    # solver="lbfgs" each call is a whole L-BFGS fit that starts from the current weights
    @_fitting
    def partial_fit(self, X: Input, y: ArrayLike, sample_weight: ArrayLike | None = None) -> MLPRegressor:
        """One epoch over (X, y); solver="lbfgs": an L-BFGS fit from the current weights."""
        with _sklearn_train.Unchanged(self):
            return self._partial_fit(X, y, sample_weight)

