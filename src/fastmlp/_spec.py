"""What both backends take besides the data: a network description (`Network`), an
optimizer description (`Optimizer`), the flat parameter layout, and the checks run at
every backend entry point (so a wrong shape, dtype or layout raises before compiled code
touches a pointer).
"""

import math
import numbers
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter

import numpy as np

from ._registry import (ACTIVATIONS, HYPERPARAMETERS, LAYER_OPS, LOSS_PARAMETERS, LOSSES, OPTIMIZERS, OUTPUTS,
                        default_loss)
from ._validation import (
    FLOAT32_MAX,
    check_output,
    check_params,
    check_sample_weight,
    check_X,
    check_Y,
    choice,
    disjoint,
    flag,
    integer,
    memory_of,
    plain_arrays,
    real,
)

# ---------------------------------------------------------------- the network


@dataclass(frozen=True)
class Network:
    """An architecture and its objective; the parameters live apart, in one flat array.

    sizes: widths from input to output.  activations: one name per hidden layer (a single
    name is repeated for all).  output: the output activation.  loss: computed through the
    output, from the logits (None: the output's default).  negative_slope: Leaky ReLU's.
    l2: the penalty 0.5 * l2 * sum(W**2) over the weights (not the biases). dropout: one
    rate in [0, 1) per hidden layer (a single rate is repeated for all): inverted dropout
    after the layer's activation, in training only. loss_parameter: the parameter of a loss
    that has one (``_registry.LOSS_PARAMETERS``: huber's delta, quantile's quantile; None:
    its declared default), None for every other loss. norm: None, "batch" or "layer" per hidden
    layer (a single setting is repeated for all; see `norm_settings`): batch normalization
    (PyTorch's BatchNorm1d) or layer normalization (LayerNorm) between the layer's dense
    product and its activation, with a trainable scale (gamma) and shift (beta).

    The flat parameter vector holds, layer by layer, W_l, b_l and, for a normalized layer,
    gamma_l and beta_l (the trainable part, `trainable_count()` long); after it, the running
    mean and (unbiased) running variance of each batch-normalized layer, in layer order:
    state the training forward pass updates (momentum NORM_MOMENTUM), which inference reads,
    and which no gradient or optimizer step touches (their gradient entries are 0).
    """

    sizes: tuple
    activations: tuple = "leaky_relu"
    output: str = "sigmoid"
    loss: str = None
    negative_slope: float = 0.01
    l2: float = 0.0
    dropout: tuple = 0.0
    loss_parameter: float = None
    norm: tuple = None

    def __post_init__(self):
        sizes = self.sizes
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"layer_sizes must be a sequence of integers, got {sizes!r}")
        sizes = tuple(integer(s, "each layer size", 1) for s in sizes)
        if len(sizes) < 2:
            raise ValueError(f"layer_sizes needs at least an input and an output width, got {sizes}")
        acts = self.activations
        if isinstance(acts, str) or not isinstance(acts, Iterable):   # one name (else refused)
            acts = (choice(acts, "activation", tuple(ACTIVATIONS)),) * (len(sizes) - 2)
        acts = tuple(choice(act, "activation", tuple(ACTIVATIONS)) for act in acts)
        if len(acts) != len(sizes) - 2:
            raise ValueError(f"activation lists {len(acts)} names for {len(sizes) - 2} hidden layers")
        choice(self.output, "output", OUTPUTS)
        if self.output == "softmax" and sizes[-1] < 2:
            raise ValueError(f"a softmax output needs at least 2 units, got {sizes[-1]} "
                             "(use output='sigmoid' for 2 classes in 1 unit)")
        loss = default_loss(self.output) if self.loss is None else choice(self.loss, "loss", tuple(LOSSES))
        if LOSSES[loss] != self.output:
            pairs = [name for name, out in LOSSES.items() if out == self.output]
            raise ValueError(f"output {self.output!r} goes with loss {' or '.join(map(repr, pairs))}, got loss={loss!r}")
        rates = dropout_rates(self.dropout, len(sizes) - 2)
        norms = norm_settings(self.norm, len(sizes) - 2)
        object.__setattr__(self, "loss_parameter", loss_parameter(loss, self.loss_parameter))
        for name, value in (("sizes", sizes), ("activations", acts), ("loss", loss), ("dropout", rates),
                            ("norm", norms),
                            ("negative_slope", real(self.negative_slope, "negative_slope", bound=FLOAT32_MAX)),
                            ("l2", real(self.l2, "l2", minimum=0))):
            object.__setattr__(self, name, value)

    def ops(self, training=False):
        """The network as its sequence of layer ops, input to logits: (name, layer, setting)
        with name in ``_registry.LAYER_OPS``. ("dense", l, None): Z_l = A W_l + b_l;
        ("batch_norm", l, training) or ("layer_norm", l, training) between a normalized hidden
        layer's dense op and its activation; ("activation", l, name) after each hidden dense
        layer; ("dropout", l, rate) after that activation where the layer's rate is > 0 and
        `training` (in inference dropout is the identity: no op). The output head (activation
        and loss) follows the last op."""
        return self._ops[bool(training)]

    @cached_property
    def _ops(self):
        found = {False: [], True: []}
        for training, ops in found.items():
            for l in range(self.n_layers):
                ops.append(("dense", l, None))
                if l < self.n_layers - 1:
                    if self.norm[l] is not None:
                        ops.append((f"{self.norm[l]}_norm", l, training))
                    ops.append(("activation", l, self.activations[l]))
                    if training and self.dropout[l] > 0:
                        ops.append(("dropout", l, self.dropout[l]))
            assert {name for name, _, _ in ops} <= set(LAYER_OPS)
        return {key: tuple(ops) for key, ops in found.items()}

    @property
    def has_dropout(self):
        """Whether training draws dropout masks (some hidden layer's rate is > 0)."""
        return any(rate > 0 for rate in self.dropout)

    @property
    def has_batch_norm(self):
        """Whether some hidden layer has batch normalization (training needs batches of 2 rows
        at least, and running statistics)."""
        return "batch" in self.norm

    @property
    def n_layers(self):
        """Dense layers (weight matrices): len(sizes) - 1."""
        return len(self.sizes) - 1

    def layer_shapes(self):
        """[(n_in, n_out), ...] of the weight matrices."""
        return list(zip(self.sizes[:-1], self.sizes[1:]))

    def param_count(self):
        """Length of the flat vector holding W_1, b_1, W_2, b_2, ... in that order (with the
        normalized layers' gamma and beta after their b, and the running statistics last)."""
        return self._counts[2]

    def trainable_count(self):
        """The trainable part of the flat vector (its start): all but the running statistics."""
        return self._counts[1]

    def weight_count(self):
        """The weights' share of it (the biases left out): multiply-adds per row and pass."""
        return self._counts[0]

    @cached_property
    def _counts(self):
        weights = sum(n_in * n_out for n_in, n_out in self.layer_shapes())
        normed = [self.sizes[l + 1] for l, kind in enumerate(self.norm) if kind is not None]
        batch = [self.sizes[l + 1] for l, kind in enumerate(self.norm) if kind == "batch"]
        trainable = weights + sum(self.sizes[1:]) + 2 * sum(normed)
        return weights, trainable, trainable + 2 * sum(batch)

    @cached_property
    def _slices(self):
        """[(slice of W_l, its shape, slice of b_l), ...] in the flat vector."""
        return [(w, shape, b) for w, shape, b, _ in self._layout[0]]

    @cached_property
    def _layout(self):
        """([(W_l, shape, b_l, gamma_l or None), ...], {l: running mean_l}) as offsets: each
        layer's W_l, b_l (and gamma_l, beta_l = gamma_l + n_out) in turn; the running means
        and variances (mean_l, var_l = mean_l + n_out) of the batch-normalized layers after
        the trainable part."""
        layers, offset = [], 0
        for l, (n_in, n_out) in enumerate(self.layer_shapes()):
            b = offset + n_in * n_out
            normed = l < len(self.norm) and self.norm[l] is not None
            layers.append((slice(offset, b), (n_in, n_out), slice(b, b + n_out), b + n_out if normed else None))
            offset = b + n_out + (2 * n_out if normed else 0)
        running = {}
        for l, kind in enumerate(self.norm):
            if kind == "batch":
                running[l] = offset
                offset += 2 * self.sizes[l + 1]
        return layers, running

    def norm_offsets(self, l):
        """(gamma_l, running mean_l) offsets in the flat vector of hidden layer l (None for
        what it has not: a layer without norm has neither, layer norm no running mean);
        beta_l follows gamma_l, the running variance the mean, each size[l + 1] long."""
        return self._layout[0][l][3], self._layout[1].get(l)

    def norm_layers(self, flat):
        """One entry per hidden layer: None, or {"gamma", "beta"} (and "running_mean",
        "running_var" under batch norm) as views into `flat`."""
        found = []
        for l, kind in enumerate(self.norm):
            gamma, mean = self.norm_offsets(l)
            n = self.sizes[l + 1]
            if kind is None:
                found.append(None)
                continue
            views = {"gamma": flat[gamma : gamma + n], "beta": flat[gamma + n : gamma + 2 * n]}
            if mean is not None:
                views.update(running_mean=flat[mean : mean + n], running_var=flat[mean + n : mean + 2 * n])
            found.append(views)
        return found

    def initial_norms(self, flat):
        """Set every gamma and running variance to 1, every beta and running mean to 0."""
        for views in self.norm_layers(flat):
            for key, view in (views or {}).items():
                view[...] = 1 if key in ("gamma", "running_var") else 0

    def layers(self, flat):
        """[(W_l, b_l), ...]: views into `flat`; W_l is (n_in, n_out), b_l (n_out,)."""
        return [(flat[w].reshape(shape), flat[b]) for w, shape, b in self._slices]

    def unflatten(self, flat):
        """(coefs, intercepts): the lists of W_l and of b_l, views into `flat`."""
        layers = self.layers(flat)
        return [W for W, _ in layers], [b for _, b in layers]


def loss_parameter(loss, value):
    """The parameter of `loss` (a registered name) checked: `value` (None: the declared
    default) as a float in its interval, or None for a loss that takes none, which must then
    be given none. TypeError for what is not a real number, ValueError otherwise."""
    if loss not in LOSS_PARAMETERS:
        if value is not None:
            raise ValueError(f"loss {loss!r} takes no parameter, got {value!r} (the losses with one: "
                             f"{', '.join(f'{l!r} ({name})' for l, (name, _) in LOSS_PARAMETERS.items())})")
        return None
    name, declared = LOSS_PARAMETERS[loss]
    if value is None:
        return float(declared.default)
    value = real(value, name)
    check_interval(name, value, declared)
    return value


def loss_parameter_given(loss, given):
    """The value for `loss` among `given` ({parameter name: value or None}, the model's
    keywords ``delta=``, ``quantile=``): None where the loss's own is not given. ValueError for
    a value given (not None) to a loss that does not read it."""
    own = LOSS_PARAMETERS[loss][0] if loss in LOSS_PARAMETERS else None
    for name, value in given.items():
        if value is not None and name != own:
            readers = [repr(l) for l, (n, _) in LOSS_PARAMETERS.items() if n == name]
            raise ValueError(f"{name} is a parameter of loss {' or '.join(readers) or '(none)'}, not of loss "
                             f"{loss!r}; leave it out (None) or choose that loss")
    return given.get(own) if own is not None else None


def dropout_rates(rates, hidden):
    """`rates` (one real, or one per hidden layer) as a tuple of `hidden` floats in [0, 1):
    TypeError for what is not a real number (or a sequence of them), ValueError for a rate
    outside [0, 1), NaN or infinite, or a list of the wrong length."""
    if isinstance(rates, (str, bytes)) or (not isinstance(rates, Iterable) and not _is_real(rates)):
        raise TypeError(f"dropout must be a real number in [0, 1) or a sequence of them (one per hidden "
                        f"layer), got {rates!r}")
    one = not isinstance(rates, Iterable)
    rates = (rates,) if one else tuple(rates)
    if not one and len(rates) != hidden:
        raise ValueError(f"dropout lists {len(rates)} rates for {hidden} hidden layers")
    checked = tuple(real(rate, "dropout") for rate in rates)
    for rate in checked:
        if not 0 <= rate < 1:
            raise ValueError(f"dropout must be in [0, 1) (the probability of dropping a unit), got {rate!r}")
    return checked * hidden if one else checked


NORMS = ("batch", "layer")
NORM_EPS = 1e-5          # PyTorch's BatchNorm1d and LayerNorm
NORM_MOMENTUM = 0.1      # BatchNorm1d's: running = (1 - momentum) running + momentum batch


def norm_settings(norm, hidden):
    """`norm` (None, "batch", "layer", or a sequence of those, one per hidden layer) as a
    tuple of `hidden` settings: TypeError for another type, ValueError for another name or a
    list of the wrong length."""
    def one(kind):
        if kind is not None and not isinstance(kind, str):
            raise TypeError(f"norm must be None, 'batch' or 'layer', or a sequence of those (one per hidden "
                            f"layer), got {kind!r}")
        if kind is not None and kind not in NORMS:
            raise ValueError(f"norm must be None, 'batch' or 'layer' (or one of those per hidden layer), got {kind!r}")
        return kind
    if norm is None or isinstance(norm, str):
        return (one(norm),) * hidden
    if not isinstance(norm, Iterable):
        one(norm)
    norms = tuple(one(kind) for kind in norm)
    if len(norms) != hidden:
        raise ValueError(f"norm lists {len(norms)} settings for {hidden} hidden layers")
    return norms


def check_norm_batches(net, n, batch_size):
    """ValueError when training `net` (with batch norm) on n rows in batches of batch_size
    would take a batch of one row (as PyTorch's BatchNorm1d in training refuses)."""
    if net.has_batch_norm and n > 0 and (min(batch_size, n) == 1 or n % batch_size == 1):
        raise ValueError(f"batch normalization needs more than 1 row per training batch (Expected more than 1 "
                         f"value per channel when training): {n} rows in batches of {min(batch_size, n)} leave a "
                         "batch of 1 row; change batch_size")


def _is_real(value):
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, numbers.Real)


# Dropout's masks: a counter-based generator both backends implement with the same 64-bit
# arithmetic (``_dropout_stream``, ``_dropout``), so that they draw the same masks and every
# fit repeats bit for bit. The unit at position p (row r * width + unit j) of a batch's
# activations in hidden layer l, at training step t of a run whose key is `key`, is kept
# when the top 53 bits of mix(stream + (p + 1) * GOLDEN) are >= the rate's threshold, where
# stream = mix(mix(key + (t + 1) * GOLDEN) + (l + 1) * GOLDEN) and mix is SplitMix64's
# finalizer; kept units are scaled by 1 / (1 - rate).
DROPOUT_KEY_MAX = 2**64 - 1


def dropout_keep(rate):
    """(threshold, scale) of a dropout rate in [0, 1): a unit is dropped when the top 53 bits
    of its hash, as an integer, are below threshold = ceil(rate * 2**53) (the uniform
    (bits * 2**-53) < rate, exactly); kept units are multiplied by scale = 1 / (1 - rate)."""
    return math.ceil(rate * 2.0**53), 1.0 / (1.0 - rate)


def check_dropout_key(key):
    """A run's dropout key checked: an int in [0, 2**64)."""
    key = integer(key, "dropout_key", 0)
    if key > DROPOUT_KEY_MAX:
        raise ValueError(f"dropout_key must be < 2**64, got {key}")
    return key


# ---------------------------------------------------------------- the optimizer


class Optimizer:
    """An optimizer's name, `lr`, hyperparameters and step count: the one object a fit
    builds from its options and hands to either backend.

    Its hyperparameters are ``fastmlp._registry.HYPERPARAMETERS`` (PyTorch's meanings and
    defaults; each optimizer reads those its ``OPTIMIZERS`` entry lists), attributes of the
    same names; `n_state` is the rows of the `state` array the backends keep for it. The
    training loop advances `t` (steps taken: Adam's bias correction, RPROP's first step)
    and reads `lr` again after each epoch's callback, so a schedule can change it. For
    "rprop", `lr` is the initial step size of every weight.
    """

    __hash__ = None

    def __init__(self, name="sgd", lr=0.01, *, t=0, **hyperparameters):
        unknown = [key for key in hyperparameters if key not in HYPERPARAMETERS]
        if unknown:
            raise TypeError(f"unknown optimizer hyperparameter {unknown[0]!r}; the hyperparameters are "
                            f"{', '.join(map(repr, HYPERPARAMETERS))}")
        self.name, self.lr = name, lr
        for key, declared in HYPERPARAMETERS.items():
            setattr(self, key, hyperparameters.get(key, declared.default))
        self.t = t
        self._check()

    def _check(self):
        choice(self.name, "optimizer", tuple(OPTIMIZERS))
        self.t = integer(self.t, "t", 0)
        self.lr = real(self.lr, "lr")
        for key, declared in HYPERPARAMETERS.items():   # types first, then the rules
            value = getattr(self, key)
            setattr(self, key, flag(value, key) if isinstance(declared.default, bool) else real(value, key))
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        for key, declared in HYPERPARAMETERS.items():
            if not isinstance(declared.default, bool):
                check_interval(key, getattr(self, key), declared, lambda name: getattr(self, name))
        if self.t > 2**62:
            raise ValueError(f"t must be at most 2**62 (steps taken: a C long when compiled), got {self.t!r}")
        for key, declared in HYPERPARAMETERS.items():
            if declared.needs and getattr(self, key) and not getattr(self, declared.needs) > 0:
                raise ValueError(f"{key} needs {declared.needs} > 0, got {declared.needs}={getattr(self, declared.needs)!r}")
        # what passed: the field values themselves (immutable: str, bool, int, float)
        self._checked = self.values()

    def check(self):
        """Check the fields again unless each still holds the very object that last passed
        (the training loop's entry calls this: a fit hands it the Optimizer it just checked)."""
        checked = self.__dict__.get("_checked")
        if checked is None or any(a is not b for a, b in zip(self.values(), checked)):
            self._check()

    def values(self):
        """(name, lr, each hyperparameter in the registry's order, t)."""
        return _FIELD_VALUES(self)

    def record(self):
        """{field: value} of every field: ``Optimizer(**record)`` makes it again."""
        return dict(zip(FIELDS, self.values()))

    def new_state(self, params):
        """Zeros for its state: (n_state, len(params)) of the parameters' dtype."""
        return np.zeros((self.n_state, len(params)), dtype=params.dtype)

    def __copy__(self):
        new = object.__new__(Optimizer)
        new.__dict__.update(self.__dict__)
        return new

    def __eq__(self, other):
        if not isinstance(other, Optimizer):
            return NotImplemented
        return self.values() == other.values()

    def __repr__(self):
        return f"Optimizer({', '.join(f'{key}={value!r}' for key, value in self.record().items())})"

    @property
    def n_state(self):
        """Vectors of optimizer state per parameter (the registry's count)."""
        return OPTIMIZERS[self.name].state

    @property
    def fused(self):
        """Plain SGD: the backends apply its step inside the gradient GEMMs (W = (1 - lr*l2) W
        - lr dL/dW), with no gradient buffer. The one place this rule is decided."""
        return self.name == "sgd" and self.momentum == 0

    @property
    def full_batch(self):
        return OPTIMIZERS[self.name].full_batch

    def hyperparameters(self):
        """{name: value} of `lr` and what this optimizer reads."""
        return {"lr": self.lr, **{key: getattr(self, key) for key in OPTIMIZERS[self.name].hyperparameters}}


FIELDS = ("name", "lr", *HYPERPARAMETERS, "t")
_FIELD_VALUES = attrgetter(*FIELDS)


def check_interval(key, value, declared, other=None):
    """ValueError unless `value` of hyperparameter `key` lies in its declared interval (the
    message states the rule and the value); other(name): the value of the hyperparameter a
    bound names."""
    low, high, closed = declared.low, declared.high, declared.closed
    bound = f"{low} ({other(low)!r})" if isinstance(low, str) else low
    if isinstance(low, str):
        low = other(low)
    left, right = closed in ("both", "left"), closed in ("both", "right")
    ok = ((low is None or (value >= low if left else value > low))
          and (high is None or (value <= high if right else value < high)))
    if not ok:
        if high is None:
            rule = f"{'>=' if left else '>'} {bound}"
        elif low is None:
            rule = f"{'<=' if right else '<'} {high}"
        else:
            rule = f"in {'[' if left else '('}{bound}, {high}{']' if right else ')'}"
        note = f" ({declared.note})" if declared.note else ""
        raise ValueError(f"{key} must be {rule}{note}, got {value!r}")


# ---------------------------------------------------------------- backend entry checks
# Compiled code trusts what these return: shapes, dtypes, C-contiguity, and outputs that
# share no memory with an input or another output.

BLAS_INT_MAX = 2**31 - 1      # BLAS takes its extents as C ints
# The backends' `_train` trains unchecked when given this: their own `train` after its
# checks, and ``_training`` for the runs of a model's fit, which checked them
# (FitJob.checked). Nothing else passes it.
CHECKED = object()


_NO_TARGETS = object()


def network_args(net, params, X, Y=_NO_TARGETS, writeable=False):
    """Check a network, its flat parameters (read-only allowed unless `writeable`) and its
    data; returns (X, Y) converted to the parameters' dtype (Y None when not given)."""
    if not isinstance(net, Network):
        raise TypeError(f"net must be a fastmlp._spec.Network, got {type(net).__name__}")
    if max(net.sizes) > BLAS_INT_MAX:
        raise ValueError(f"layer sizes must be at most {BLAS_INT_MAX} (BLAS's int), got {net.sizes}")
    n_params = net.param_count()
    dt = check_output(params, (n_params,), "params") if writeable else check_params(params, n_params)
    plain_arrays((params, "params"))
    X = check_X(X, net.sizes[0], dt)
    Y = None if Y is _NO_TARGETS else check_Y(Y, X.shape[0], net.sizes[-1], dt)
    return X, Y


def predict_args(net, params, X, out):
    """Check what ``predict_proba`` takes; returns X converted."""
    X, _ = network_args(net, params, X)
    check_output(out, (X.shape[0], net.sizes[-1]), "out", params.dtype)
    plain_arrays((out, "out"))
    disjoint([(out, "out")], [(params, "params"), (memory_of(X), "X")])
    return X


def loss_gradient_args(net, params, X, Y, grad, sample_weight):
    """Check what ``loss_gradient`` takes; returns (X, Y, w) converted (w None if unweighted)."""
    X, Y = network_args(net, params, X, Y)
    w = check_sample_weight(sample_weight, X.shape[0], params.dtype)
    if grad is not None:
        check_output(grad, params.shape, "grad", params.dtype)
        plain_arrays((grad, "grad"))
        disjoint([(grad, "grad")], [(params, "params"), (memory_of(X), "X"), (Y, "Y"), (w, "sample_weight")])
    return X, Y, w


def train_args(net, params, X, Y, optimizer, state, losses, epochs, batch_size, rng, sample_weight,
               callback, stop):
    """Check everything `train` takes; returns (X, Y, w, epochs, batch_size) converted."""
    X, Y = network_args(net, params, X, Y, writeable=True)
    n = X.shape[0]
    epochs, batch_size = integer(epochs, "epochs", 0), integer(batch_size, "batch_size", 1)
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a fastmlp._spec.Optimizer, got {type(optimizer).__name__}")
    optimizer.check()   # its fields may have been changed since it was made
    check_output(losses, (epochs,), "losses", np.dtype(np.float64))
    check_output(state, (optimizer.n_state, len(params)), "state", params.dtype)
    if rng is not None and not callable(getattr(rng, "shuffle", None)):
        raise TypeError(f"rng must be a numpy Generator (or have its shuffle) or None, got {type(rng).__name__}")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        raise TypeError(f"stop must be a threading.Event (or have its is_set) or None, got {type(stop).__name__}")
    if optimizer.full_batch and batch_size < n:
        raise ValueError(f"{optimizer.name} works on full batches: batch_size must cover all samples")
    if min(batch_size, n) > BLAS_INT_MAX:
        raise ValueError(f"batch_size must be at most {BLAS_INT_MAX} (BLAS's int), got {batch_size}")
    check_norm_batches(net, n, batch_size)
    w = check_sample_weight(sample_weight, n, params.dtype)
    plain_arrays((state, "state"), (losses, "losses"))
    disjoint([(params, "params"), (state, "state"), (losses, "losses")],
             [(memory_of(X), "X"), (Y, "Y"), (w, "sample_weight")])
    return X, Y, w, epochs, min(batch_size, n)


def next_lr(optimizer):
    """``optimizer.lr`` after a callback, which may set the next epoch's rate, checked again:
    a finite real >= 0 (a decaying schedule may underflow to 0)."""
    return real(optimizer.lr, "lr (as the callback left it)", minimum=0)


def inverse_scaling(lr, steps, power_t):
    """The "invscaling" rate lr / (steps + 1) ** power_t (lr > 0, steps and power_t >= 0),
    never an OverflowError: when the power is beyond a float (power_t=400 after a few
    steps), the same quotient through logarithms, which underflows to 0.0 at worst."""
    try:
        return lr / (steps + 1) ** power_t
    except OverflowError:
        return math.exp(math.log(lr) - power_t * math.log(steps + 1))


def shuffled(rng, n, check_bounds=True):
    """A new permutation of range(n) from ``rng.shuffle(np.arange(n))``, checked before any
    row is gathered with it: still an intp array (n,) (TypeError), and with `check_bounds`,
    indices in 0..n-1 (else `out_of_range` raises). The compiled backend checks the bounds in
    its own copy loop and calls `out_of_range` for the error."""
    order = np.arange(n, dtype=np.intp)
    rng.shuffle(order)
    if type(order) is not np.ndarray or order.dtype != np.intp or order.shape != (n,) or not order.flags.c_contiguous:
        raise TypeError(f"rng.shuffle must permute its array in place; it left {order.dtype} of shape {order.shape}")
    if check_bounds and n and not (0 <= order.min() and order.max() < n):
        out_of_range(order, n)
    return order


def out_of_range(order, n):
    bad = order[(order < 0) | (order >= n)]
    raise IndexError(f"rng.shuffle wrote row indices outside 0..{n - 1} (e.g. {bad[0] if bad.size else '?'}); "
                     "it must only permute the array it is given")


def warn_overflow(count, n, dtype, result, stacklevel):
    """The RuntimeWarning of both backends' overflow guard (``_core._overflow_rows``,
    ``_reference._overflow_rows``): `count` of the `n` rows a predict_proba or loss_gradient
    call took are out of the dtype's range inside the network; `result` says what became of
    them. `stacklevel` as warnings.warn's, counted from here (a compiled function has no
    frame of its own)."""
    dtype = np.dtype(dtype)
    warnings.warn(f"overflow: {count} of {n} rows reach values inside the network at which a layer's sums "
                  f"could exceed the {dtype.name} range (half its largest number, "
                  f"{float(np.finfo(dtype).max) / 2:.3g}, in some order of summation); {result}",
                  RuntimeWarning, stacklevel=stacklevel)
