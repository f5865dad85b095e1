"""``MLP``: the model, written once on top of whichever backend it was given."""

import copy
import json
import math
import numbers
import operator
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _backend
from ._common import (
    HIDDEN_ACTIVATIONS,
    OPTIMIZERS,
    OUTPUTS,
    as_input,
    check_sample_weight,
    float_dtype,
    optimizer_config,
    param_count,
    unflatten,
)

# output activation -> the loss it is paired with
LOSS_FOR_OUTPUT = {"sigmoid": "bce", "softmax": "cross_entropy", "identity": "mse"}
RELU_FAMILY = ("leaky_relu", "relu")
INITS = ("auto", "he", "glorot", "normal")
SCHEDULES = ("constant", "invscaling", "plateau")
PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.2, 2   # "plateau": lr / 5 after 2 epochs without progress


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


class _Run:
    """One training run: its parameters, optimizer (config and state), shuffling stream and
    history. A warm start continues the last run; restarts are several runs."""

    def __init__(self, params, optimizer, config, rng, history=None):
        self.params, self.optimizer, self.config, self.rng = params, optimizer, config, rng
        self.state = np.zeros((2, len(params)), dtype=params.dtype)
        self.history = copy.deepcopy(history) if history else {"loss": [], "val_loss": []}
        self.best = None

    def same_optimizer(self, optimizer, config):
        ignore = ("t", "l2")
        return optimizer == self.optimizer and all(config[k] == self.config[k] for k in config if k not in ignore)

    def copy(self):
        new = copy.copy(self)
        new.params, new.state = self.params.copy(), self.state.copy()
        new.config, new.history = dict(self.config), copy.deepcopy(self.history)
        new.rng = copy.deepcopy(self.rng)
        return new

    def score(self):
        """The monitored loss the restarts are ranked by (lower is better)."""
        if self.best is not None:
            return self.best
        losses = self.history["val_loss"] or self.history["loss"]
        return losses[-1] if losses else math.inf


class _Monitor:
    """Early stopping and the "plateau" schedule: tracks the best monitored loss."""

    def __init__(self, early_stopping, patience, tol, lr_schedule):
        self.early_stopping, self.patience, self.tol = early_stopping, patience, tol
        self.plateau = lr_schedule == "plateau"
        self.best, self.best_params = None, None
        self.waited = self.waited_lr = 0
        self.lr_factor = 1.0

    def update(self, loss, params):
        """Record one epoch's monitored loss; returns False when training should stop."""
        if self.best is None or loss < self.best - self.tol:
            self.best, self.waited, self.waited_lr = loss, 0, 0
            if self.early_stopping:
                self.best_params = params.copy()
            return True
        self.waited += 1
        self.waited_lr += 1
        if self.plateau and self.waited_lr >= PLATEAU_PATIENCE:
            self.lr_factor *= PLATEAU_FACTOR
            self.waited_lr = 0
        return not (self.early_stopping and self.waited >= self.patience)


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
        self._params = self._initial_params(np.random.default_rng(seed))
        self._run = None          # the optimizer state, shuffling stream and history of the last fit
        self.history_ = {"loss": [], "val_loss": []}
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

    def _initial_params(self, rng):
        flat = np.zeros(param_count(self.layer_sizes), dtype=self.dtype)
        for l, W in enumerate(unflatten(flat, self.layer_sizes)[0]):
            n_in, n_out = W.shape
            feeds_relu = l < len(self._hidden) and self._hidden[l] in RELU_FAMILY
            if self.init == "normal":
                scale = 0.1 if self.init_scale is None else self.init_scale
                W[...] = rng.standard_normal((n_in, n_out)) * scale
            elif self.init == "he" or (self.init == "auto" and feeds_relu):
                # Kaiming: the gain counts Leaky ReLU's slope (PyTorch's calculate_gain), not ReLU's
                leaky = l < len(self._hidden) and self._hidden[l] == "leaky_relu"
                std = math.sqrt(2.0 / ((1.0 + (self.negative_slope**2 if leaky else 0.0)) * n_in))
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

    def fit(
        self, X, y, epochs=200, lr=0.01, batch_size="auto", shuffle=True, warm_start=False,
        optimizer="sgd", momentum=0.0, nesterov=False, beta1=0.9, beta2=0.999, eps=1e-8,
        lr_schedule="constant", power_t=0.5, validation_data=None, validation_fraction=None,
        early_stopping=False, patience=10, tol=1e-4, n_restarts=1, sample_weight=None,
    ):
        """Train the network; returns self. Every check runs before any work, and a call that
        raises leaves the model as it was.

        epochs : passes over the data (iterations for "lbfgs").
        lr : step size ("rprop": the initial step of every weight).
        batch_size : "auto" (min(200, n)), an integer, or None for the full batch
            ("rprop" and "lbfgs" always use the full batch).
        shuffle : reshuffle the rows every epoch, from the model's seed, so fits repeat.
        warm_start : continue from the current weights, optimizer state and history.
        optimizer : "sgd" (with `momentum`, `nesterov`: PyTorch's SGD, no dampening),
            "adam" (`beta1`, `beta2`, `eps`: PyTorch's Adam, bias corrected), "rprop"
            (iRPROP-), "lbfgs" (SciPy's L-BFGS-B on the flat parameter vector).
        lr_schedule : "constant"; "invscaling" (lr / (epoch + 1) ** power_t); "plateau"
            (lr divided by 5 after 2 epochs without an improvement of `tol` in the monitored
            loss: the validation loss if there is one, else the training loss).
        validation_data : (X_val, y_val), or validation_fraction : a fraction of (X, y)
            held out (rows drawn from the seed); history_["val_loss"] gets its loss per epoch.
        early_stopping : stop after `patience` epochs without an improvement of `tol` in the
            monitored loss, and restore the weights of the best epoch.
        n_restarts : train this many initialisations (drawn from the seed) in parallel
            threads and keep the one with the lowest monitored loss.
        sample_weight : (n,) weights >= 0: every mean over samples (a batch's loss, the
            epoch's) becomes sum(w_i * loss_i) / sum(w_i).
        """
        X, Y = self._check_Xy(X, y)
        w = check_sample_weight(sample_weight, X.shape[0], self.dtype)
        epochs = _integer(epochs, "epochs", 0)
        _choice(optimizer, "optimizer", OPTIMIZERS + ("lbfgs",))
        config = optimizer_config("sgd" if optimizer == "lbfgs" else optimizer, _real(lr, "lr", positive=True),
                                  momentum, nesterov, beta1, beta2, eps)
        _choice(lr_schedule, "lr_schedule", SCHEDULES)
        power_t = _real(power_t, "power_t")
        if optimizer in ("rprop", "lbfgs") and lr_schedule != "constant":
            raise ValueError(f"lr_schedule={lr_schedule!r} does not apply to optimizer={optimizer!r}")
        for flag, name in ((shuffle, "shuffle"), (warm_start, "warm_start"), (early_stopping, "early_stopping")):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        patience = _integer(patience, "patience", 1)
        tol = _real(tol, "tol")
        n_restarts = _integer(n_restarts, "n_restarts", 1)
        if warm_start and n_restarts > 1:
            raise ValueError("warm_start continues one run; it cannot be combined with n_restarts > 1")
        X, Y, w, X_val, Y_val = self._validation_split(X, Y, w, validation_data, validation_fraction)
        n = X.shape[0]
        batch_size = self._batch_size(batch_size, n, optimizer)

        shuffle = shuffle and batch_size < n
        # shuffling of run i: streams[i]; initialisation of run i > 0: streams[k + i]
        streams = np.random.SeedSequence(self.seed).spawn(2 * n_restarts) if shuffle or n_restarts > 1 else None
        if warm_start and self._run is not None and self._run.same_optimizer(optimizer, config):
            run = self._run.copy()
        else:
            params = self._params.copy() if warm_start else self._initial_params(np.random.default_rng(self.seed))
            run = _Run(params, optimizer, config, np.random.default_rng(streams[0]) if shuffle else None,
                       warm_start and self._run is not None and self._run.history or None)
        if shuffle and run.rng is None:   # a warm start of a run that did not shuffle before
            run.rng = np.random.default_rng(streams[0])
        runs = [run] + [
            _Run(self._initial_params(np.random.default_rng(streams[n_restarts + i])), optimizer, config,
                 np.random.default_rng(streams[i]), None)
            for i in range(1, n_restarts)
        ]
        job = dict(X=X, Y=Y, w=w, X_val=X_val, Y_val=Y_val, epochs=epochs, batch_size=batch_size,
                   shuffle=shuffle, lr_schedule=lr_schedule, power_t=power_t,
                   early_stopping=early_stopping, patience=patience, tol=tol)
        if len(runs) == 1:
            try:
                self._train(run, **job)
            except KeyboardInterrupt:
                self._commit(run)   # stopped between steps: keep the steps and epochs done
                raise
        else:
            stop = threading.Event()  # Ctrl-C: every run ends after its current epoch
            with ThreadPoolExecutor(max_workers=min(len(runs), os.cpu_count() or 1)) as pool:
                futures = [pool.submit(self._train, r, **job, stop=stop) for r in runs]
                try:
                    for future in futures:
                        future.result()
                except KeyboardInterrupt:
                    stop.set()
                    raise
        self._commit(min(runs, key=lambda r: r.score()))
        return self

    def partial_fit(self, X, y, **options):
        """One epoch on (X, y), continuing the weights, optimizer state and history:
        ``fit(X, y, epochs=1, warm_start=True, **options)``."""
        for key in ("epochs", "warm_start", "n_restarts"):
            if key in options:
                raise TypeError(f"partial_fit takes no {key!r}: it is one warm-started epoch")
        return self.fit(X, y, epochs=1, warm_start=True, **options)

    def _batch_size(self, batch_size, n, optimizer):
        if batch_size is None:
            return n
        if isinstance(batch_size, str):
            _choice(batch_size, "batch_size", ("auto",))
            return n if optimizer in ("rprop", "lbfgs") else min(200, n)
        batch_size = min(_integer(batch_size, "batch_size", 1), n)
        if optimizer in ("rprop", "lbfgs") and batch_size < n:
            raise ValueError(f"optimizer={optimizer!r} works on the full batch; use batch_size=None")
        return batch_size

    def _validation_split(self, X, Y, w, validation_data, validation_fraction):
        """(X, Y, w, X_val, Y_val): the training rows (and their weights) and the held-out
        data, or None for both."""
        if validation_data is not None and validation_fraction is not None:
            raise ValueError("give validation_data or validation_fraction, not both")
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError("validation_data must be a pair (X_val, y_val)")
            X_val, Y_val = self._check_Xy(*validation_data)
            return X, Y, w, X_val, Y_val
        if validation_fraction is None:
            return X, Y, w, None, None
        fraction = _real(validation_fraction, "validation_fraction")
        n_val = int(round(fraction * X.shape[0]))
        if not 0 < fraction < 1 or not 1 <= n_val < X.shape[0]:
            raise ValueError(f"validation_fraction={fraction} leaves no validation or no training rows of {X.shape[0]}")
        order = np.random.default_rng(np.random.SeedSequence(self.seed).spawn(1)[0].spawn(1)[0]).permutation(X.shape[0])
        val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
        if w is not None and not w[train].sum() > 0:
            raise ValueError("sample_weight is 0 on every training row left after the validation split")
        return X[train], Y[train], None if w is None else w[train], X[val], Y[val]

    def _train(self, run, X, Y, w, X_val, Y_val, epochs, batch_size, shuffle, lr_schedule, power_t,
               early_stopping, patience, tol, stop=None):
        """Advance `run` by up to `epochs` epochs (iterations for L-BFGS); `stop`, a
        threading.Event, ends it after the current epoch when set."""
        net = (self.layer_sizes, self._hidden, self.negative_slope, self.output)
        monitor = _Monitor(early_stopping, patience, tol, lr_schedule)

        def watch(loss):
            """After an epoch with training loss `loss`: False when training should stop."""
            watched = loss
            if X_val is not None:
                watched = float(self._impl.loss_gradient(run.params, *net, X_val, Y_val, None, self.l2))
                run.history["val_loss"].append(watched)
            return monitor.update(watched, run.params) and not (stop is not None and stop.is_set())

        if run.optimizer == "lbfgs":
            self._lbfgs(run, net, X, Y, w, epochs, watch)
        else:
            base_lr, done_before = run.config["lr"], len(run.history["loss"])

            def set_lr(epochs_done):     # invscaling counts epochs over warm starts too
                if lr_schedule == "invscaling":
                    run.config["lr"] = base_lr / (epochs_done + 1) ** power_t
                elif lr_schedule == "plateau":
                    run.config["lr"] = base_lr * monitor.lr_factor

            def callback(epoch, loss):
                go_on = watch(float(loss))
                set_lr(done_before + epoch + 1)
                return go_on

            # only what needs a decision between epochs takes the GIL back after each one
            per_epoch = X_val is not None or early_stopping or lr_schedule != "constant" or stop is not None
            set_lr(done_before)
            losses = np.full(epochs, -np.inf)    # -inf: not run (a loss is never -inf)
            try:
                self._impl.train(run.params, *net, X, Y, epochs, batch_size, run.rng if shuffle else None,
                                 losses, run.config, run.state, self.l2, w, callback if per_epoch else None)
            finally:
                run.config["lr"] = base_lr
                run.history["loss"].extend(losses[losses != -np.inf].tolist())
        if early_stopping:
            if monitor.best_params is not None:
                run.params[...] = monitor.best_params
            run.best = monitor.best

    def _lbfgs(self, run, net, X, Y, w, epochs, watch):
        from scipy.optimize import minimize

        params, grad = run.params, np.empty_like(run.params)

        def loss_and_gradient(x):
            params[...] = x
            loss = self._impl.loss_gradient(params, *net, X, Y, grad, self.l2, w)
            return loss, grad.astype(np.float64)

        def callback(intermediate_result):
            params[...] = intermediate_result.x
            run.history["loss"].append(float(intermediate_result.fun))
            if not watch(float(intermediate_result.fun)):
                raise StopIteration

        if epochs:
            result = minimize(loss_and_gradient, params.astype(np.float64), jac=True, method="L-BFGS-B",
                              callback=callback, options={"maxiter": epochs})
            params[...] = result.x

    def _commit(self, run):
        self._params = run.params
        self._run = run
        self.history_ = {key: list(values) for key, values in run.history.items()}
        self.n_iter_ = len(self.history_["loss"])

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

    def loss(self, X, y, sample_weight=None):
        """Mean loss on (X, y) (weighted by sample_weight), with the L2 penalty when l2 > 0."""
        X, Y = self._check_Xy(X, y)
        w = check_sample_weight(sample_weight, X.shape[0], self.dtype)
        return float(self._impl.loss_gradient(*self._net(), X, Y, None, self.l2, w))

    def gradients(self, X, y, sample_weight=None):
        """Gradients of the mean loss, as (dcoefs, dintercepts) shaped like coefs_/intercepts_."""
        X, Y = self._check_Xy(X, y)
        w = check_sample_weight(sample_weight, X.shape[0], self.dtype)
        grad = np.empty_like(self._params)
        self._impl.loss_gradient(*self._net(), X, Y, grad, self.l2, w)
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
            history_val_loss=np.asarray(self.history_["val_loss"], dtype=np.float64),
        )

    def __repr__(self):
        return f"MLP({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())}, backend={self.backend!r})"


def load(path, backend="auto"):
    """Read a model written by ``MLP.save``."""
    with np.load(path, allow_pickle=False) as data:
        try:
            config = json.loads(str(data["config"]))
            params = data["params"]
            history = {"loss": data["history_loss"].tolist(), "val_loss": data["history_val_loss"].tolist()}
        except KeyError as exc:
            raise ValueError(f"{path!s} is not a fastmlp model file (missing {exc})") from None
    model = MLP(**config, backend=backend)
    if params.shape != model._params.shape or params.dtype != model.dtype:
        raise ValueError(f"{path!s}: parameters of shape {params.shape} and dtype {params.dtype} do not fit {model!r}")
    model._params = np.ascontiguousarray(params)
    model.history_ = history
    model.n_iter_ = len(history["loss"])
    return model
