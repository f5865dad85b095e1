"""``MLP``: the model, written once on top of whichever backend it was given."""

import json
import math
import numbers
import operator

import numpy as np

from . import _backend
from ._common import HIDDEN_ACTIVATIONS, OUTPUTS, as_input, float_dtype, param_count, unflatten

# output activation -> the loss it is paired with
LOSS_FOR_OUTPUT = {"sigmoid": "bce", "softmax": "cross_entropy", "identity": "mse"}
RELU_FAMILY = ("leaky_relu", "relu")
INITS = ("auto", "he", "glorot", "normal")


def _integer(value, name, minimum):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _real(value, name, positive=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, got {value}")
    return value


def _choice(value, name, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(map(repr, choices))}")
    return value


def _all_finite(a):
    # a float64 sum first: no temporary array of the size of `a` unless something is wrong
    return math.isfinite(np.sum(a, dtype=np.float64)) or bool(np.isfinite(a).all())


class MLP:
    """A multi-layer perceptron: dense layers, a hidden activation, an output/loss pair.

    Parameters
    ----------
    layer_sizes : sequence of int
        Widths from input to output, e.g. ``[2, 4, 1]`` for the seed's XOR network.
    activation : str or sequence of str
        Hidden activation, one name for every hidden layer or one per hidden layer:
        ``"leaky_relu"``, ``"relu"``, ``"tanh"``, ``"sigmoid"``, ``"identity"``.
    output : str
        Output activation: ``"sigmoid"`` (binary or multi-label), ``"softmax"``
        (one of k classes), ``"identity"`` (regression).
    loss : str or None
        Loss paired with the output, inferred when None: ``"bce"`` for sigmoid,
        ``"cross_entropy"`` for softmax, ``"mse"`` for identity. BCE and MSE are means over
        samples and outputs, cross-entropy the mean over samples (PyTorch's conventions).
    negative_slope : float
        Slope of Leaky ReLU for negative inputs.
    l2 : float
        Adds ``0.5 * l2 * sum(W**2)`` over the weights (not the biases) to the mean loss.
    init : {"auto", "he", "glorot", "normal"}
        Weight initialisation, biases zero. ``"normal"`` draws each layer's W as
        ``default_rng(seed).standard_normal((n_in, n_out)) * init_scale``, layer by layer
        from one generator. ``"auto"``: He for a layer feeding ReLU or Leaky ReLU, Glorot
        uniform otherwise (and in the output layer).
    init_scale : float or None
        Standard deviation for ``init="normal"`` (default 0.1); only valid with it.
    seed : int or None
        Seeds the initialisation and the shuffling; None draws fresh entropy.
    dtype : "float32" or "float64"
        Dtype of the parameters and of all computation.
    backend : {"auto", "cython", "numpy"}
        See ``fastmlp.available_backends()``; "auto" honours ``FASTMLP_BACKEND``.
    """

    def __init__(
        self,
        layer_sizes,
        activation="leaky_relu",
        output="sigmoid",
        loss=None,
        negative_slope=0.01,
        l2=0.0,
        init="auto",
        init_scale=None,
        seed=None,
        dtype="float64",
        backend="auto",
    ):
        if isinstance(layer_sizes, (str, bytes)) or not hasattr(layer_sizes, "__len__"):
            raise TypeError(f"layer_sizes must be a sequence of integers, got {layer_sizes!r}")
        sizes = tuple(_integer(s, "each layer size", 1) for s in layer_sizes)
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output width, got {sizes}")
        n_hidden = len(sizes) - 2
        if isinstance(activation, str):
            hidden = (_choice(activation, "activation", HIDDEN_ACTIVATIONS),) * n_hidden
        else:
            hidden = tuple(_choice(a, "activation", HIDDEN_ACTIVATIONS) for a in activation)
            if len(hidden) != n_hidden:
                raise ValueError(f"activation lists {len(hidden)} names for {n_hidden} hidden layers")
        _choice(output, "output", OUTPUTS)
        if output == "softmax" and sizes[-1] < 2:
            raise ValueError(f"a softmax output needs at least 2 units, got {sizes[-1]} (use output='sigmoid' for 2 classes in 1 unit)")
        if loss is None:
            loss = LOSS_FOR_OUTPUT[output]
        if loss != LOSS_FOR_OUTPUT[output]:
            raise ValueError(f"output {output!r} goes with loss {LOSS_FOR_OUTPUT[output]!r}, got loss={loss!r}")
        _choice(init, "init", INITS)
        if init_scale is not None:
            if init != "normal":
                raise ValueError(f"init_scale applies to init='normal' only, not init={init!r}")
            init_scale = _real(init_scale, "init_scale", positive=True)
        if seed is not None:
            seed = _integer(seed, "seed", 0)

        self.layer_sizes = sizes
        self.activation = activation if isinstance(activation, str) else hidden
        self.output = output
        self.loss_name = loss
        self.negative_slope = _real(negative_slope, "negative_slope")
        self.l2 = _real(l2, "l2")
        if self.l2 < 0:
            raise ValueError(f"l2 must be >= 0, got {l2}")
        self.init = init
        self.init_scale = init_scale
        self.seed = seed
        self.dtype = float_dtype(dtype)
        self.backend, self._impl = _backend.resolve(backend)
        self._hidden = hidden
        self._params = self._initial_params()
        self.history_ = {"loss": []}
        self.n_iter_ = 0

    # ------------------------------------------------------------------ parameters

    @property
    def params_(self):
        """All weights and biases in one flat array (``coefs_``/``intercepts_`` are views)."""
        return self._params

    @property
    def coefs_(self):
        """Weight matrices, ``coefs_[l]`` of shape (n_in, n_out): views into ``params_``."""
        return unflatten(self._params, self.layer_sizes)[0]

    @property
    def intercepts_(self):
        """Bias vectors, ``intercepts_[l]`` of shape (n_out,): views into ``params_``."""
        return unflatten(self._params, self.layer_sizes)[1]

    def _initial_params(self):
        rng = np.random.default_rng(self.seed)
        flat = np.zeros(param_count(self.layer_sizes), dtype=self.dtype)
        for l, W in enumerate(unflatten(flat, self.layer_sizes)[0]):
            n_in, n_out = W.shape
            feeds_relu = l < len(self._hidden) and self._hidden[l] in RELU_FAMILY
            if self.init == "normal":
                scale = 0.1 if self.init_scale is None else self.init_scale
                W[...] = rng.standard_normal((n_in, n_out)) * scale
            elif self.init == "he" or (self.init == "auto" and feeds_relu):
                std = math.sqrt(2.0 / ((1.0 + self.negative_slope**2) * n_in))
                W[...] = rng.standard_normal((n_in, n_out)) * std
            else:  # Glorot uniform
                bound = math.sqrt(6.0 / (n_in + n_out))
                W[...] = rng.uniform(-bound, bound, (n_in, n_out))
        return flat

    # ------------------------------------------------------------------ data

    def _check_X(self, X):
        if isinstance(X, (str, bytes)):
            raise TypeError("X must be an array of numbers, got a string")
        X = np.asarray(X)
        if X.dtype.kind not in "biuf":
            raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
        if X.ndim != 2:
            hint = " (use X.reshape(-1, 1) for a single feature)" if X.ndim == 1 else ""
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}{hint}")
        if X.shape[0] == 0:
            raise ValueError("X is empty: it needs at least one sample")
        if X.shape[1] != self.layer_sizes[0]:
            raise ValueError(f"X has {X.shape[1]} features but the network takes {self.layer_sizes[0]}")
        X = as_input(X, self.dtype, 2, "X")
        if not _all_finite(X):
            raise ValueError("X contains NaN or infinity")
        return X

    def _check_y(self, y, n):
        y = np.asarray(y)
        if y.dtype.kind not in "biuf":
            raise TypeError(f"y must hold real numbers, got dtype {y.dtype}")
        k = self.layer_sizes[-1]
        if self.loss_name == "cross_entropy" and y.ndim == 1:
            return self._one_hot(y, n, k)
        if y.ndim == 1 and k == 1:
            y = y.reshape(-1, 1)
        if y.ndim != 2 or y.shape[1] != k:
            want = f"({n},) or ({n}, 1)" if k == 1 else f"({n}, {k})"
            raise ValueError(f"y must have shape {want} for {k} output(s), got {y.shape}")
        if y.shape[0] != n:
            raise ValueError(f"X has {n} samples but y has {y.shape[0]}")
        Y = as_input(y, self.dtype, 2, "y")
        if not _all_finite(Y):
            raise ValueError("y contains NaN or infinity")
        if self.loss_name == "bce" and not np.all((Y == 0) | (Y == 1)):
            raise ValueError("binary cross-entropy needs labels in {0, 1}; y has other values")
        if self.loss_name == "cross_entropy" and not (np.all((Y == 0) | (Y == 1)) and np.all(Y.sum(axis=1) == 1)):
            raise ValueError("cross-entropy needs one-hot rows in y (or integer labels 0..k-1 in a 1-D y)")
        return Y

    def _one_hot(self, labels, n, k):
        if labels.shape[0] != n:
            raise ValueError(f"X has {n} samples but y has {labels.shape[0]}")
        if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
            raise ValueError("class labels in y must be integers 0..k-1")
        if labels.min() < 0 or labels.max() >= k:
            raise ValueError(f"class labels in y must lie in 0..{k - 1} for {k} softmax outputs, got {labels.min()}..{labels.max()}")
        Y = np.zeros((n, k), dtype=self.dtype)
        Y[np.arange(n), labels.astype(np.intp)] = 1
        return Y

    def _check_Xy(self, X, y):
        X = self._check_X(X)
        return X, self._check_y(y, X.shape[0])

    def _net(self):
        return self._params, self.layer_sizes, self._hidden, self.negative_slope, self.output

    # ------------------------------------------------------------------ training

    def fit(self, X, y, epochs=200, lr=0.01, batch_size="auto", shuffle=True, warm_start=False):
        """Train by mini-batch gradient descent; returns self.

        epochs : passes over the data. lr : step size.
        batch_size : "auto" (min(200, n)), an integer, or None for the full batch.
        shuffle : reshuffle the rows every epoch (from the model's seed, so fits repeat).
        warm_start : continue from the current weights instead of re-initialising.
        """
        X, Y = self._check_Xy(X, y)
        n = X.shape[0]
        epochs = _integer(epochs, "epochs", 0)
        lr = _real(lr, "lr", positive=True)
        if batch_size is None:
            batch_size = n
        elif isinstance(batch_size, str):
            _choice(batch_size, "batch_size", ("auto",))
            batch_size = min(200, n)
        else:
            batch_size = min(_integer(batch_size, "batch_size", 1), n)
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        if not isinstance(warm_start, (bool, np.bool_)):
            raise TypeError(f"warm_start must be True or False, got {warm_start!r}")

        params = self._params.copy() if warm_start else self._initial_params()
        # one permutation stream per fit, derived from the seed (independent of the init)
        rng = np.random.default_rng(np.random.SeedSequence(self.seed).spawn(1)[0]) if shuffle and batch_size < n else None
        # -inf marks epochs not run (a loss is never -inf; a diverged one may be NaN or +inf)
        losses = np.full(epochs, -np.inf)
        try:
            self._impl.train_sgd(
                params, self.layer_sizes, self._hidden, self.negative_slope, self.output,
                X, Y, epochs, lr, batch_size, rng, losses, self.l2,
            )
        except KeyboardInterrupt:
            # stopped between steps: keep the weights and the epochs that completed
            not_run = np.flatnonzero(losses == -np.inf)
            self._commit(params, losses[: not_run[0] if len(not_run) else epochs])
            raise
        self._commit(params, losses)
        return self

    def _commit(self, params, losses):
        self._params = params
        self.history_ = {"loss": losses.tolist()}
        self.n_iter_ = len(losses)

    # ------------------------------------------------------------------ inference

    def predict_proba(self, X):
        """Output activations, shape (n_samples, n_outputs): probabilities for sigmoid and
        softmax, the predicted values for identity."""
        X = self._check_X(X)
        out = np.empty((X.shape[0], self.layer_sizes[-1]), dtype=self.dtype)
        return self._impl.predict_proba(*self._net(), X, out)

    def predict(self, X):
        """sigmoid: 0/1 labels, shape (n,) for one output, (n, k) for several;
        softmax: class indices, shape (n,); identity: the values, (n,) for one output."""
        out = self.predict_proba(X)
        if self.output == "softmax":
            return np.argmax(out, axis=1)
        if self.output == "sigmoid":
            out = (out >= 0.5).astype(np.int64)
        return out[:, 0] if out.shape[1] == 1 else out

    def loss(self, X, y):
        """Mean loss on (X, y), with the L2 penalty when l2 > 0."""
        X, Y = self._check_Xy(X, y)
        return float(self._impl.loss_gradient(*self._net(), X, Y, None, self.l2))

    def gradients(self, X, y):
        """Gradients of the mean loss, as (dcoefs, dintercepts) shaped like coefs_/intercepts_."""
        X, Y = self._check_Xy(X, y)
        grad = np.empty_like(self._params)
        self._impl.loss_gradient(*self._net(), X, Y, grad, self.l2)
        return unflatten(grad, self.layer_sizes)

    # ------------------------------------------------------------------ persistence

    def get_config(self):
        """The constructor arguments, as JSON-friendly values."""
        return {
            "layer_sizes": list(self.layer_sizes),
            "activation": self.activation if isinstance(self.activation, str) else list(self.activation),
            "output": self.output,
            "loss": self.loss_name,
            "negative_slope": self.negative_slope,
            "l2": self.l2,
            "init": self.init,
            "init_scale": self.init_scale,
            "seed": self.seed,
            "dtype": self.dtype.name,
        }

    def save(self, path):
        """Write the configuration, parameters and history to an ``.npz`` file."""
        np.savez(
            path,
            config=np.array(json.dumps(self.get_config())),
            params=self._params,
            history_loss=np.asarray(self.history_["loss"], dtype=np.float64),
        )

    def __repr__(self):
        return f"MLP({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())}, backend={self.backend!r})"


def load(path, backend="auto"):
    """Read a model written by ``MLP.save``."""
    with np.load(path, allow_pickle=False) as data:
        try:
            config = json.loads(str(data["config"]))
            params = data["params"]
            history = data["history_loss"]
        except KeyError as exc:
            raise ValueError(f"{path!s} is not a fastmlp model file (missing {exc})") from None
    model = MLP(**config, backend=backend)
    if params.shape != model._params.shape or params.dtype != model.dtype:
        raise ValueError(f"{path!s}: parameters of shape {params.shape} and dtype {params.dtype} do not fit {model!r}")
    model._params = np.ascontiguousarray(params)
    model.history_ = {"loss": history.tolist()}
    model.n_iter_ = len(history)
    return model
