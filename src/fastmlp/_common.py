"""What both backends share: the flat parameter layout and the checks at their entry points.

Every backend function that takes raw arrays runs these checks first, so a wrong shape,
dtype or memory layout becomes a ValueError/TypeError instead of an out-of-bounds read
in compiled code.
"""

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
HIDDEN_ACTIVATIONS = ("leaky_relu", "relu", "tanh", "sigmoid", "identity")
OUTPUTS = ("sigmoid", "softmax", "identity")


# ---------------------------------------------------------------- parameter layout


def layer_shapes(sizes):
    """[(n_in, n_out), ...] for consecutive layer widths."""
    return list(zip(sizes[:-1], sizes[1:]))


def param_count(sizes):
    """Length of the flat vector holding W_1, b_1, W_2, b_2, ... in that order."""
    return sum(n_in * n_out + n_out for n_in, n_out in layer_shapes(sizes))


def unflatten(flat, sizes):
    """(coefs, intercepts): lists of views into `flat`; W_l is (n_in, n_out), b_l is (n_out,)."""
    coefs, intercepts, offset = [], [], 0
    for n_in, n_out in layer_shapes(sizes):
        coefs.append(flat[offset : offset + n_in * n_out].reshape(n_in, n_out))
        offset += n_in * n_out
        intercepts.append(flat[offset : offset + n_out])
        offset += n_out
    return coefs, intercepts


# ---------------------------------------------------------------- argument checks


def float_dtype(dtype):
    """The numpy dtype for "float32"/"float64" (or their numpy types); ValueError otherwise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


def as_input(a, dtype, ndim, name):
    """`a` as a C-contiguous array of `dtype` (no copy when it already is one)."""
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    return np.ascontiguousarray(a, dtype=dtype)


def check_output(out, shape, name, dtype=None):
    """`out` must be a writeable C-contiguous float32/float64 array of `shape`; returns its dtype."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(out).__name__}")
    if out.dtype not in FLOAT_DTYPES or (dtype is not None and out.dtype != dtype):
        want = dtype if dtype is not None else "float32 or float64"
        raise TypeError(f"{name} must have dtype {want}, got {out.dtype}")
    if tuple(out.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {out.shape}")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError(f"{name} must be a writeable C-contiguous array")
    return out.dtype


def _shape2(a, name):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
    return a.shape


def dense_forward_args(A, W, b, Z):
    n, n_in = _shape2(A, "A")
    n_in_w, n_out = _shape2(W, "W")
    if n_in_w != n_in:
        raise ValueError(f"A has {n_in} columns but W has {n_in_w} rows")
    dt = check_output(Z, (n, n_out), "Z")
    return as_input(A, dt, 2, "A"), as_input(W, dt, 2, "W"), _vector(b, dt, n_out, "b"), Z


def dense_backward_args(A_prev, W, dZ, dW, db, dA_prev):
    n, n_in = _shape2(A_prev, "A_prev")
    n_in_w, n_out = _shape2(W, "W")
    if n_in_w != n_in:
        raise ValueError(f"A_prev has {n_in} columns but W has {n_in_w} rows")
    if _shape2(dZ, "dZ") != (n, n_out):
        raise ValueError(f"dZ must have shape {(n, n_out)}, got {np.shape(dZ)}")
    dt = check_output(dW, (n_in, n_out), "dW")
    check_output(db, (n_out,), "db", dt)
    if dA_prev is not None:
        check_output(dA_prev, (n, n_in), "dA_prev", dt)
    A_prev, W, dZ = (as_input(a, dt, 2, nm) for a, nm in ((A_prev, "A_prev"), (W, "W"), (dZ, "dZ")))
    return A_prev, W, dZ, dW, db, dA_prev


def elementwise_args(out, out_name, *inputs):
    """Inputs named (array, name), each of the shape of `out` (2-D), converted to its dtype."""
    first = inputs[0][0]
    shape = _shape2(first, inputs[0][1])
    dt = check_output(out, shape, out_name)
    converted = []
    for a, name in inputs:
        if np.shape(a) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {np.shape(a)}")
        converted.append(as_input(a, dt, 2, name))
    return converted


def _vector(b, dtype, n, name):
    b = as_input(b, dtype, 1, name)
    if b.shape != (n,):
        raise ValueError(f"{name} must have shape {(n,)}, got {b.shape}")
    return b


def check_activation(name):
    if name not in HIDDEN_ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {HIDDEN_ACTIVATIONS}")
    return name


def check_output_name(name):
    if name not in OUTPUTS:
        raise ValueError(f"unknown output {name!r}; choose from {OUTPUTS}")
    return name


def check_l2(l2):
    l2 = float(l2)
    if not (np.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be a finite number >= 0, got {l2!r}")
    return l2


def check_sample_weight(sample_weight, n, dtype):
    """None, or the weights as a C-contiguous (n,) array of dtype: finite, >= 0, sum > 0."""
    if sample_weight is None:
        return None
    w = as_input(sample_weight, dtype, 1, "sample_weight")
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
        raise ValueError("sample_weight must be finite and >= 0, with a positive sum")
    return w


def check_slope(negative_slope):
    slope = float(negative_slope)
    if not np.isfinite(slope):
        raise ValueError(f"negative_slope must be finite, got {negative_slope!r}")
    return slope


def network_args(params, sizes, hidden, output, X, Y=None):
    """Check a network description and its data; returns (sizes, hidden, X, Y) converted.

    params: 1-D writeable C-contiguous float array of length param_count(sizes) (its dtype
    is the network's); sizes: layer widths incl. input and output; hidden: one activation
    name per hidden layer; output: output/loss pair name.
    """
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer sizes must be at least two positive integers, got {sizes}")
    dt = check_output(params, (param_count(sizes),), "params")
    hidden = tuple(hidden)
    if len(hidden) != len(sizes) - 2:
        raise ValueError(f"need {len(sizes) - 2} hidden activations, got {len(hidden)}")
    for act in hidden:
        check_activation(act)
    if check_output_name(output) == "softmax" and sizes[-1] < 2:
        raise ValueError("a softmax output needs at least 2 units")
    X = as_input(X, dt, 2, "X")
    if X.shape[1] != sizes[0] or X.shape[0] < 1:
        raise ValueError(f"X must have shape (n >= 1, {sizes[0]}), got {X.shape}")
    if Y is not None:
        Y = as_input(Y, dt, 2, "Y")
        if Y.shape != (X.shape[0], sizes[-1]):
            raise ValueError(f"Y must have shape {(X.shape[0], sizes[-1])}, got {Y.shape}")
    return sizes, hidden, X, Y


OPTIMIZERS = ("sgd", "adam", "rprop")


def optimizer_config(name="sgd", lr=0.01, momentum=0.0, nesterov=False, beta1=0.9, beta2=0.999,
                     eps=1e-8, etaplus=1.2, etaminus=0.5, step_min=1e-6, step_max=50.0):
    """The optimizer description both backends' `train` take (a dict; "t" counts steps).

    For "rprop", `lr` is the initial step size of every weight (PyTorch's convention).
    """
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {OPTIMIZERS} (or 'lbfgs' in MLP.fit)")
    config = {"name": name, "t": 0, "l2": 0.0, "nesterov": bool(nesterov)}
    for key, value in dict(lr=lr, momentum=momentum, beta1=beta1, beta2=beta2, eps=eps, etaplus=etaplus,
                           etaminus=etaminus, step_min=step_min, step_max=step_max).items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{key} must be a real number, got {value!r}")
        value = float(value)
        if not np.isfinite(value):
            raise ValueError(f"{key} must be finite, got {value}")
        config[key] = value
    checks = [
        (config["lr"] > 0, "lr must be > 0"),
        (0 <= config["momentum"] < 1, "momentum must be in [0, 1)"),
        (not nesterov or config["momentum"] > 0, "nesterov needs momentum > 0"),
        (0 <= config["beta1"] < 1 and 0 <= config["beta2"] < 1, "beta1 and beta2 must be in [0, 1)"),
        (config["eps"] > 0, "eps must be > 0"),
        (0 < config["etaminus"] < 1 < config["etaplus"], "rprop needs 0 < etaminus < 1 < etaplus"),
        (0 < config["step_min"] <= config["step_max"], "rprop needs 0 < step_min <= step_max"),
    ]
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{message}; got {config}")
    return config


_OPTIMIZER_KEYS = optimizer_config().keys()


def train_args(epochs, batch_size, n, losses, optimizer, state, params, callback=None):
    epochs, batch_size = int(epochs), int(batch_size)
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    check_output(losses, (epochs,), "losses", np.dtype(np.float64))
    if not isinstance(optimizer, dict) or optimizer.keys() != _OPTIMIZER_KEYS or optimizer["name"] not in OPTIMIZERS:
        raise TypeError("optimizer must be a dict made by fastmlp._common.optimizer_config")
    check_output(state, (2, len(params)), "state", params.dtype)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
    if optimizer["name"] == "rprop" and batch_size < n:
        raise ValueError("rprop works on full batches: batch_size must cover all samples")
    return epochs, min(batch_size, n)
