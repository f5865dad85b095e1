"""``MLP``: the model, written once on top of whichever backend it was given.

The jobs around it live in their own modules: argument checks in ``_validation`` and
``_spec`` (shared with the backends), initialisation in ``_initializers``, training
orchestration in ``_training``, files in ``_persistence``.
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
from collections.abc import Sequence
from typing import Any, Literal, NoReturn, TypeVar, overload

import numpy as np

from . import _backend, _blas, _persistence, _progress, _training
from ._initializers import check_init, initial_params
from ._registry import LOSS_PARAMETERS
from ._spec import Network, loss_parameter_given
from ._typing import (Activation, ArrayLike, Backend, Callback, ClassWeight, DType, Floats, Init, Input, Labels, Loss,
                      Monitor, Norm, Norms, Optimizer, Output, PathLike, Schedule, Setting, Threads)
from ._validation import (check_sample_weight, check_targets, check_X, class_columns, class_sample_weight,
                          float_dtype, integer)

_Model = TypeVar("_Model", bound="MLP")


class _Weights:
    """``MLP.coefs_`` (part 0 of the parameters) or ``intercepts_`` (part 1): a `WeightViews`
    of the model's flat parameters. Assigning a list (``coefs_ = [W_0, ...]``) copies it into
    the views, each value checked first, as ``coefs_[l] = W`` does."""

    def __init__(self, part: int, doc: str) -> None:
        self._part, self.__doc__ = part, doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, model: None, owner: type | None = None) -> _Weights: ...

    @overload
    def __get__(self, model: MLP, owner: type | None = None) -> list[Floats]: ...

    def __get__(self, model: MLP | None, owner: type | None = None) -> list[Floats] | _Weights:
        if model is None:
            return self
        return WeightViews(model._net.unflatten(model._params)[self._part], self._name)

    def __set__(self, model: MLP, values: Sequence[ArrayLike]) -> None:
        self.__get__(model)[:] = values


class _NormViews:
    """``MLP.norm_layers_``: one entry per hidden layer, None without norm, else views into
    ``params_``: ``"gamma"`` and ``"beta"`` (trained), and under batch norm
    ``"running_mean"`` and ``"running_var"`` (state the training pass updates with momentum
    0.1, read by ``predict``, ``loss`` and ONNX; ``params_`` holds them after the trainable
    parameters, and their gradient entries are 0)."""

    def __get__(self, model: MLP | None, owner: type | None = None) -> Any:
        if model is None:
            return self
        return model._net.norm_layers(model._params)


class _LossParameter:
    """A read-only setting of a model: its loss's parameter where that is called as this
    attribute is (``delta`` for huber, ``quantile`` for quantile), else None."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, model: Any, owner: type | None = None) -> Any:
        if model is None:
            return self
        net = model._net
        return net.loss_parameter if LOSS_PARAMETERS.get(net.loss, (None,))[0] == self._name else None

    def __set__(self, model: object, value: object) -> NoReturn:
        raise AttributeError(f"{self._name!r} is a setting, fixed when the model is made: make a new model "
                             "to change it")


class _LossSettings:
    """MLP's read-only settings `delta` and `quantile` (None where its loss reads neither)."""

    delta: _LossParameter = _LossParameter("Huber's threshold (loss=\"huber\"), else None.")
    quantile: _LossParameter = _LossParameter("The pinball loss's quantile in (0, 1) (loss=\"quantile\"), else None.")


class MLP(_LossSettings):
    """A multi-layer perceptron: dense layers, a hidden activation, an output/loss pair. The
    settings are read-only attributes of the same names (``loss_name`` for `loss`).

    Parameters
    ----------
    layer_sizes : sequence of int
        Widths from input to output, e.g. ``[2, 4, 1]`` for the seed's XOR network.
    activation : str or sequence of str
        Hidden activation, one name for every hidden layer or one per hidden layer: any
        of the user guide's list (``"leaky_relu"``, ``"relu"``, ``"gelu"``, ...).
    output : str
        Output activation: ``"sigmoid"`` (binary or multi-label), ``"softmax"``
        (one of k classes), ``"identity"`` (regression), ``"exp"`` (counts, rates).
    loss : str or None
        Loss paired with the output (None: ``"bce"``, ``"cross_entropy"``, ``"mse"``,
        ``"poisson"`` for sigmoid, softmax, identity, exp): PyTorch's means over samples.
        Identity also: ``"huber"`` (HuberLoss, `delta` > 0, default 1), ``"mae"`` (L1Loss), ``"quantile"`` (pinball).
    negative_slope : float
        Slope of Leaky ReLU for negative inputs.
    l2 : float
        Adds ``0.5 * l2 * sum(W**2)`` over the weights (not the biases) to the mean loss.
    dropout : float or sequence of float
        Inverted dropout rate(s) in [0, 1) after the hidden activations, in training only.
    norm : None, "batch", "layer" or a sequence of those (one per hidden layer)
        PyTorch's ``BatchNorm1d`` or ``LayerNorm`` before the activation (``norm_layers_``).
    init : {"auto", "he", "glorot", "normal"}
        Weight initialisation, biases zero. ``"normal"``: each W is ``standard_normal((n_in,
        n_out)) * init_scale`` from one ``default_rng(seed)``, layer by layer. ``"auto"``: the
        registry's choice per activation (He for the ReLU family, Glorot uniform otherwise).
    init_scale : float or None
        Standard deviation for ``init="normal"`` (default 0.1); only valid with it.
    seed : int or None
        Seeds the initialisation and the shuffling; None draws fresh entropy.
    dtype : "float32" or "float64"
        Dtype of the parameters and of all computation.
    backend : {"auto", "cython", "numpy"}
        See ``fastmlp.available_backends()``; "auto" honours ``FASTMLP_BACKEND``.
    """

    history_: dict[str, list[float]]
    n_iter_: int

    def __init__(self, layer_sizes: Sequence[int], activation: Activation | Sequence[Activation] = "leaky_relu",
                 output: Output = "sigmoid", loss: Loss | None = None, negative_slope: float = 0.01, l2: float = 0.0,
                 init: Init = "auto", init_scale: float | None = None, seed: int | None = None, dtype: DType = "float64",
                 backend: Backend = "auto", dropout: float | Sequence[float] = 0.0, delta: float | None = None,
                 quantile: float | None = None, norm: Norms = None) -> None:
        self._configure(layer_sizes, activation, output, loss, negative_slope, l2, init, init_scale, seed, dtype,
                        backend, dropout, delta=delta, quantile=quantile, norm=norm)
        self._set_state(self._initial_params(self._seed), {"loss": [], "val_loss": []})

    def _configure(self, layer_sizes, activation, output, loss, negative_slope, l2, init, init_scale,
                   seed, dtype, backend, dropout=0.0, delta=None, quantile=None, norm=None):
        """Check and keep the settings, allocating nothing (``load`` checks a file's config with it)."""
        self._net = _network(layer_sizes, activation, output, loss, negative_slope, l2, dropout, delta, quantile, norm)
        self._init, self._init_scale = check_init(init, init_scale)
        self._seed = None if seed is None else integer(seed, "seed", 0)
        self._dtype = float_dtype(dtype)
        self._backend, self._impl = _backend.resolve(backend)
        self._activation = activation if isinstance(activation, str) else self._net.activations

    activation: Setting[Activation | tuple[Activation, ...]] = Setting("_activation",
                                                                       "The hidden activation(s), as given.")
    init: Setting[Init] = Setting("_init", "The weight initialisation.")
    init_scale: Setting[float | None] = Setting("_init_scale", 'Standard deviation of init="normal", or None.')
    seed: Setting[int | None] = Setting("_seed", "The seed of the initialisation, shuffling, splits and restarts.")
    dtype: Setting[np.dtype[Any]] = Setting("_dtype", "The numpy dtype of the parameters and all computation.")
    backend: Setting[Literal["cython", "numpy"]] = Setting("_backend", '"cython" or "numpy".')
    layer_sizes: Setting[tuple[int, ...]] = Setting("_net.sizes", "Widths from input to output.")
    output: Setting[Output] = Setting("_net.output", "The output activation.")
    loss_name: Setting[Loss] = Setting("_net.loss", "The loss paired with the output.")
    negative_slope: Setting[float] = Setting("_net.negative_slope", "Leaky ReLU's slope.")
    l2: Setting[float] = Setting("_net.l2", "The L2 penalty on the weights.")
    dropout: Setting[tuple[float, ...]] = Setting("_net.dropout", "The dropout rate of each hidden layer.")
    norm: Setting[tuple[Norm | None, ...]] = Setting("_net.norm", "Each hidden layer's normalization, or None.")

    # ------------------------------------------------------------------ parameters

    @property
    def params_(self) -> Floats:
        """All weights and biases in one flat array (``coefs_``/``intercepts_`` are views)."""
        return self._params

    coefs_ = _Weights(0, "Weight matrices, ``coefs_[l]`` of shape (n_in, n_out): views into ``params_``.")
    intercepts_ = _Weights(1, "Bias vectors, ``intercepts_[l]`` of shape (n_out,): views into ``params_``.")
    norm_layers_ = _NormViews()

    def _initial_params(self, entropy):
        """Parameters from ``default_rng(entropy)``; the seed's are drawn once (~20 us), then copied."""
        if entropy is None or entropy is not self._seed:
            return initial_params(self._net, self._init, self._init_scale, np.random.default_rng(entropy), self._dtype)
        if self.__dict__.get("_seeded_params") is None:      # (settings never change)
            self._seeded_params = self._initial_params(np.random.SeedSequence(entropy))
        return self._seeded_params.copy()

    def _set_state(self, params, history, run=None):
        self._params, self.history_, self.n_iter_ = params, history, len(history["loss"])
        self._run = run       # the last fit's optimizer and its state, shuffling stream, history

    def _commit(self, run):
        self._set_state(run.params, run.history, run)    # (warm starts append: make_runs)
        return run

    # ------------------------------------------------------------------ data

    def _check_X(self, X):
        return _own(check_X(X, self._net.sizes[0], self._dtype, finite=True, squares=_blas.squares))

    def _check_Xy(self, X, y):
        return _checked_xy(self, X, y)

    # ------------------------------------------------------------------ training

    def fit(self: _Model, X: Input, y: ArrayLike, epochs: int = 200, lr: float = 0.01,
            batch_size: int | str | None = "auto", shuffle: bool = True, warm_start: bool = False,
            optimizer: Optimizer = "sgd", momentum: float = 0.0, nesterov: bool = False, beta1: float = 0.9,
            beta2: float = 0.999, eps: float = 1e-8, lr_schedule: Schedule = "constant", power_t: float = 0.5,
            validation_data: tuple[Input, ArrayLike] | None = None, validation_fraction: float | None = None,
            early_stopping: bool = False, patience: int = 10, tol: float = 1e-4, n_restarts: int = 1,
            sample_weight: ArrayLike | None = None, weight_decay: float = 0.01, callback: Callback | None = None,
            progress: bool = False, threads: Threads = "auto", class_weight: ClassWeight | None = None,
            monitor: Monitor | None = None, mode: Literal["min", "max"] | None = None) -> _Model:
        """Train the network; returns self. Every check runs before any work, and a call that
        raises leaves the model as it was (the user guide's fit table has the details).

        Parameters
        ----------
        X : array-like or scipy.sparse matrix, shape (n, n_features)
            CSR is read as it is (other sparse formats become CSR), never made dense.
        y : array-like, shape (n,) or (n, n_outputs)
            Targets that fit the loss: {0, 1}, class indices or one-hot rows, values, counts.
        epochs, lr : int, float
            Passes over the data (L-BFGS: iterations) and the step size (RPROP: the first).
        batch_size : int, "auto" or None
            ``"auto"`` is ``min(200, n)``; None (and always RPROP, L-BFGS): the full batch.
        shuffle, warm_start : bool
            Reshuffle every epoch from the seed; continue from the weights, state and history.
        optimizer : {"sgd", "adam", "adamw", "rprop", "lbfgs"}
            PyTorch's SGD (`momentum`, `nesterov`), Adam (`beta1`, `beta2`, `eps`) and AdamW
            (and `weight_decay`, on the weights only); iRPROP-; SciPy's L-BFGS-B.
        lr_schedule, power_t : {"constant", "invscaling", "plateau"}, float
            ``lr / (epoch + 1) ** power_t``, or lr / 5 after 2 epochs without progress.
        validation_data, validation_fraction : (X_val, y_val) or float, optional
            Held-out data, or a fraction of (X, y) drawn from the seed: ``history_["val_loss"]``.
        early_stopping, patience, tol : bool, int, float
            Stop after `patience` epochs without an improvement of `tol` in the monitored value
            (`monitor`), keeping the best epoch's weights.
        n_restarts : int
            Initialisations trained in parallel threads; the best monitored value wins.
        sample_weight : array-like, shape (n,), optional
            Weights >= 0: every mean over samples becomes ``sum(w_i * loss_i) / sum(w_i)``.
        class_weight : "balanced", {label: weight} or one dict per output: multiplies sample_weight by class
        monitor, mode : "loss", "val_loss" or callable (model, X_val, y_val) -> float; "min"/"max"
            What early stopping, "plateau" and restarts watch (default: val_loss, else loss).
        callback : callable, optional
            ``callback(epoch, logs)`` after every epoch (logs: loss, val_loss, lr, elapsed, restart); False stops.
        progress : bool: a tqdm progress bar on stderr (the ``progress`` extra)
        threads : {"auto"}: the BLAS's own threads for large products, one for small ones ("shared" was removed)

        Returns
        -------
        MLP
            The model itself.
        """
        # the optimizer's options as one object (fastmlp._registry declares its hyperparameters)
        opt = _training.fit_optimizer(optimizer, lr, momentum=momentum, nesterov=nesterov, beta1=beta1,
                                      beta2=beta2, eps=eps, weight_decay=weight_decay)
        X, Y, w = _checked_data(self, X, y, sample_weight, class_weight)
        job = _training.fit_job(
            X, Y, w, self._check_Xy, self._seed, epochs=epochs, optimizer=opt, batch_size=batch_size,
            shuffle=shuffle, warm_start=warm_start, lr_schedule=lr_schedule, power_t=power_t,
            validation_data=validation_data,
            validation_fraction=validation_fraction, early_stopping=early_stopping,
            patience=patience, tol=tol, n_restarts=n_restarts, threads=threads, checked=True,
            monitor=monitor, mode=mode)
        job.score = _scorer(self, job)
        with _progress.reporting(callback, progress, job.epochs * job.n_restarts, "fastmlp fit") as report:
            job.report = report if report.active else None
            runs = _training.make_runs(job, self._run, self._seed, self._initial_params, self._params, id(self))
            _training.run_fit(self._impl, self._net, runs, job, self._commit)
        return self

    def partial_fit(self: _Model, X: Input, y: ArrayLike, **options: Any) -> _Model:
        """One epoch on (X, y), continuing the weights, optimizer state and history:
        ``fit(X, y, epochs=1, warm_start=True, **options)``."""
        _one_epoch_options(options)
        return self.fit(X, y, epochs=1, warm_start=True, **options)

    # ------------------------------------------------------------------ inference

    def predict_proba(self, X: Input) -> Floats:
        """Output activations, shape (n_samples, n_outputs): probabilities for sigmoid and
        softmax, the predicted values for identity."""
        X = self._check_X(X)
        out = np.empty((X.shape[0], self._net.sizes[-1]), dtype=self._dtype)
        return self._impl.predict_proba(self._net, self._params, X, out)

    def predict(self, X: Input) -> Labels:
        """sigmoid: 0/1 labels, shape (n,) for one output, (n, k) for several;
        softmax: class indices, shape (n,); identity: the values, (n,) for one output."""
        out = self.predict_proba(X)
        return _labels(self.output, out >= 0.5 if self.output == "sigmoid" else out)

    def loss(self, X: Input, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
        """Mean loss on (X, y) (weighted by sample_weight), with the L2 penalty when l2 > 0."""
        X, Y, w = _checked_data(self, X, y, sample_weight)
        return float(self._impl.loss_gradient(self._net, self._params, X, Y, None, w))

    def gradients(self, X: Input, y: ArrayLike, sample_weight: ArrayLike | None = None) -> tuple[list[Floats], list[Floats]]:
        """Gradients of the mean loss, as (dcoefs, dintercepts) shaped like coefs_/intercepts_."""
        X, Y, w = _checked_data(self, X, y, sample_weight)
        grad = np.empty_like(self._params)
        self._impl.loss_gradient(self._net, self._params, X, Y, grad, w)
        return self._net.unflatten(grad)

    # ------------------------------------------------------------------ persistence

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, as JSON-friendly values."""
        return _persistence.config(self)

    def save(self, path: PathLike) -> None:
        """Write the model to an uncompressed ``.npz`` file (".npz" is appended to a path
        without it): the constructor arguments, the parameters, the history and, once
        fitted, the last fit's optimizer (name, hyperparameters, step count), its state
        arrays and the state of the shuffling stream, so that ``load`` then ``partial_fit``
        or ``fit(warm_start=True)`` continues exactly as this model would. No pickle.

        The save is atomic: it writes a temporary file beside `path`, flushes it to disk and
        renames it over `path`; if it fails (disk full, Ctrl-C), the file at `path` is as it
        was and the temporary file is removed. ValueError if the parameters hold NaN or
        infinity (``load`` refuses such files); OSError from the file system.
        """
        _persistence.save(self, path)

    def __getstate__(self):
        """Pickles and copies name the backend (a module cannot be pickled)."""
        state = self.__dict__.copy()
        del state["_impl"]
        return state

    def __setstate__(self, state):
        """The backend is looked up again by name; where the compiled one is missing, the
        NumPy backend is used, with the warning of ``backend="auto"``."""
        self.__dict__.update(state)
        self._backend, self._impl = _persistence.restore_backend(self._backend)

    def __repr__(self) -> str:
        return f"MLP({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())}, backend={self._backend!r})"


class WeightViews(list):
    """``coefs_`` or ``intercepts_``: a list of views into a model's flat parameters, one per
    layer. Assigning an item (``coefs_[0] = W``) or a slice copies the values into the views,
    once each value has the view's shape and is all finite real numbers (else ValueError or
    TypeError, and nothing is written). The length and order are the network's, so the
    methods that would change them raise TypeError. A copy (copy, deepcopy, pickle) is a
    plain list, detached from the model."""

    __slots__ = ("name",)

    def __init__(self, views, name):
        super().__init__(views)
        self.name = name

    def __setitem__(self, index, value):
        if isinstance(index, slice):
            positions = range(*index.indices(len(self)))
            values = list(value)
            if len(values) != len(positions):
                raise ValueError(f"{self.name}: {len(positions)} arrays expected (one per layer), got "
                                 f"{len(values)}")
        else:
            list.__getitem__(self, index)           # (IndexError or TypeError, as a list's)
            positions, values = [operator.index(index) % len(self)], [value]
        views = [list.__getitem__(self, i) for i in positions]
        checked = [_weights_like(view, given, f"{self.name}[{i}]") for i, view, given in zip(positions, views, values)]
        for view, given in zip(views, checked):
            view[...] = given

    def __delitem__(self, index):
        self._fixed()

    def _fixed(self, *args):
        raise TypeError(f"{self.name} has one array per layer of the network: its length and order cannot "
                        f"change; assign {self.name}[i] = array to set a layer's values")

    append = extend = insert = pop = remove = clear = sort = reverse = __iadd__ = __imul__ = _fixed

    def __reduce_ex__(self, protocol):
        return list, (list(self),)

    def copy(self):
        return list(self)


def _weights_like(view, value, name):
    """`value` as an array of `view`'s dtype, checked to have its shape and to be finite."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {array.dtype}")
    if array.shape != view.shape:
        raise ValueError(f"{name} must have shape {view.shape}, got {array.shape}")
    with np.errstate(over="ignore"):
        array = array.astype(view.dtype, copy=False)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinity (or values too large for {view.dtype})")
    return array


def _network(sizes, activation, output, loss, negative_slope, l2, dropout, delta, quantile, norm=None):
    """The checked ``Network`` of MLP's settings, with its loss's parameter from `delta` or `quantile`."""
    net = Network(sizes, activation, output, loss, negative_slope, l2, dropout, norm=norm)
    parameter = loss_parameter_given(net.loss, {"delta": delta, "quantile": quantile})
    return net if parameter is None else dataclasses.replace(net, loss_parameter=parameter)


def _one_epoch_options(options):
    """partial_fit's `options` (fit's): not those that set the epochs, nor class_weight="balanced"."""
    for key in ("epochs", "warm_start", "n_restarts"):
        if key in options:
            raise TypeError(f"partial_fit takes no {key!r}: it is one warm-started epoch")
    if isinstance(options.get("class_weight"), str) and options["class_weight"] == "balanced":
        raise ValueError("class_weight='balanced' is not available in partial_fit, which sees one batch: "
                         "compute the weights over all the data once and pass them as a dict")


def _checked_xy(model, X, y):
    """``MLP._check_Xy``: X and y as the model's own checked arrays (X, Y)."""
    X = model._check_X(X)
    return X, _own(check_targets(y, X.shape[0], model._net.loss, model._net.sizes[-1], model._dtype))


def _checked_data(model, X, y, sample_weight, class_weight=None):
    """(X, Y, w): the model's checked data and sample weights (None without), times the
    class weights of `class_weight` (see ``MLP.fit``)."""
    X, Y = model._check_Xy(X, y)
    rows = None
    if class_weight is not None:
        rows = class_sample_weight(class_weight, class_columns(Y, model._net.output))
    return X, Y, check_sample_weight(sample_weight, X.shape[0], model._dtype, rows)


def _labels(output, Y):
    """Checked targets `Y` (n, k) in the form ``MLP.predict`` returns: class indices
    (softmax), 0/1 labels (sigmoid) or values, (n,) for one output."""
    if output == "softmax":
        return np.argmax(Y, axis=1)
    if output == "sigmoid":
        Y = Y.astype(np.int64)
    return Y[:, 0] if Y.shape[1] == 1 else Y


def _scorer(model, job):
    """For a callable job.monitor, ``score(params)``: ``monitor(view, X_val, y_val)`` for a view
    of `model` whose parameters are `params` (a run's, while it trains), as a float; else None."""
    monitor, X_val = job.monitor, job.X_val
    if monitor is None or isinstance(monitor, str):
        return None
    y_val = _labels(model._net.output, job.Y_val)

    def score(params):
        view = MLP.__new__(MLP)
        view.__dict__.update(model.__dict__)
        view._params = params
        return _training.monitored_value(monitor(view, X_val, y_val))

    return score


def _own(a):
    """A checked dense array as a view of the model's own, whose shape and dtype no caller can
    change afterwards: `fit` trains on what it checked without checking it again."""
    return a.view() if isinstance(a, np.ndarray) else a


def load(path: PathLike, backend: Backend = "auto") -> MLP:
    """Read a model written by ``MLP.save`` (or an older fastmlp), on `backend`.

    Restores the settings, parameters and history and, when the file has them, the last
    fit's optimizer, its state and the shuffling stream, so training continues bit for bit.
    Everything is checked before use and memory is bounded by the file's size and parameter
    count. Errors: FileNotFoundError (or another OSError) when `path` cannot be opened;
    ``fastmlp.ModelFileError`` (a ValueError) naming the path and the problem for anything
    that is not a valid model file: a directory, an empty, text, ``.npy`` or corrupt file, a
    zip without the members, a compressed member, a member whose header and size disagree,
    an invalid config, parameters that do not fit it, that hold NaN or infinity, or are
    not of its dtype, an invalid optimizer or stream record. ValueError for a bad `backend`.
    """
    return _persistence.load(MLP, path, backend)


def undrawn_mlp(*args: Any, **kwargs: Any) -> MLP:
    """Like ``MLP(*args, **kwargs)``, but with all-zero parameters instead of a random draw:
    for a caller that sets its own initial weights (the estimators), which needs no draw."""
    bound = inspect.signature(MLP.__init__).bind(None, *args, **kwargs)
    bound.apply_defaults()
    model = MLP.__new__(MLP)
    model._configure(*list(bound.arguments.values())[1:])
    model._set_state(np.zeros(model._net.param_count(), model._dtype), {"loss": [], "val_loss": []})
    model._net.initial_norms(model._params)     # (gamma and running variances 1)
    return model
