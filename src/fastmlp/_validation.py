"""Every argument check, written once.

The model layer and both backends call these same functions, so a bad value raises the
same exception with the same message wherever it is passed in. Each check returns the
value converted (a float, an int, a C-contiguous array of the right dtype).
"""

import contextlib
import math
import numbers
import operator

import numpy as np
import scipy.linalg.blas
import scipy.sparse

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
FLOAT32_MAX = float(np.finfo(np.float32).max)


# ---------------------------------------------------------------- scalars


def integer(value, name, minimum=None):
    """`value` as an int (bools and floats refused); ValueError below `minimum`."""
    if type(value) is not int:   # (the common case skips these checks)
        if isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def real(value, name, minimum=None, positive=False, bound=None):
    """`value` as a finite float; ValueError when not > 0 (positive), below `minimum`, or
    beyond +-`bound` in magnitude."""
    if type(value) is not float and (isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    try:
        value = float(value)
    except OverflowError:      # an int beyond float64's range
        raise ValueError(f"{name} must be finite, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if bound is not None and abs(value) > bound:
        span = "float32's range" if bound == FLOAT32_MAX else "the range"
        raise ValueError(f"{name} must be in [-{bound:.8g}, {bound:.8g}] ({span}), got {value!r}")
    return value


def flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(value, name, choices):
    """`value` when it is one of the names `choices`; else ValueError naming them all."""
    if not isinstance(value, str) or value not in choices:
        hint = " (give its name, a string)" if callable(value) else ""
        raise ValueError(f"unknown {name} {value!r}{hint}: {name} must be one of {', '.join(map(repr, choices))}")
    return value


def float_dtype(dtype):
    """The numpy dtype for "float32"/"float64" (or their numpy types); ValueError otherwise."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return dt


# ---------------------------------------------------------------- arrays


def as_input(a, dtype, ndim, name):
    """`a` as a C-contiguous array of `dtype` (no copy when it already is one)."""
    if isinstance(a, (str, bytes)):
        raise TypeError(f"{name} must be an array of numbers, got a string")
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    with _narrowing(a.dtype, dtype):
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


def all_finite(a, squares=None):
    """No NaN or infinity in `a`. First a sum of squares through BLAS ?dot in a's own dtype
    (a streaming pass at memory speed, with no temporary array): it is finite exactly when
    every element is, unless the squares overflow, and only then (or for another dtype)
    does the exact elementwise test run. `squares(flat)`, where given, computes that sum
    for large arrays instead (None: it cannot): the caller's BLAS (the model layer passes
    ``_blas.squares``, MKL's ?dot when MKL runs the products); this module knows no BLAS
    library but SciPy's."""
    flat = a.reshape(-1)
    dot = _DOTS.get(flat.dtype) if flat.flags.c_contiguous else None
    if dot is None:
        return math.isfinite(np.sum(flat, dtype=np.float64)) or bool(np.isfinite(flat).all())
    if 0 < flat.size <= ONE_THREAD_CHUNK:   # (one call, without the loop's slices)
        return math.isfinite(dot(flat, flat)) or bool(np.isfinite(flat).all())
    if flat.size > ONE_THREAD_MAX and flat.size <= DOT_CHUNK:
        total = None if squares is None else squares(flat)
        if total is not None:
            return math.isfinite(total) or bool(np.isfinite(flat).all())
    step = DOT_CHUNK if flat.size > ONE_THREAD_MAX else ONE_THREAD_CHUNK
    for start in range(0, flat.size, step):
        chunk = flat[start:start + step]
        if not math.isfinite(dot(chunk, chunk)) and not np.isfinite(chunk).all():
            return False
    return True


DOT_CHUNK = 1 << 30          # elements per ?dot call: BLAS counts them in a 32-bit int
# Arrays up to ONE_THREAD_MAX elements go to ?dot in chunks of ONE_THREAD_CHUNK, which
# OpenBLAS runs on the calling thread (it splits a ?dot over threads above 10000
# elements). A split call wakes its thread pool, whose threads then spin for a while, and
# a small fit that follows shares the cores with them (bench/RESULTS.md has the figures).
ONE_THREAD_CHUNK = 8192
ONE_THREAD_MAX = 1 << 20
_DOTS = {np.dtype(np.float32): scipy.linalg.blas.sdot, np.dtype(np.float64): scipy.linalg.blas.ddot}


def check_X(X, n_features, dtype, finite=False, squares=None):
    """X as a C-contiguous (n >= 1, n_features) array of dtype; with `finite`, no NaN/inf
    (`squares`: see `all_finite`). A scipy.sparse X (matrix or array) becomes CSR of dtype
    instead (`check_csr`)."""
    if isinstance(X, (str, bytes)):
        raise TypeError("X must be an array of numbers, got a string")
    sparse = scipy.sparse.issparse(X)
    X = X if sparse else np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"X must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        hint = " (use X.reshape(-1, 1) for a single feature)" if X.ndim == 1 else ""
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}{hint}")
    if X.shape[0] == 0:
        raise ValueError("X is empty: it needs at least one sample")
    if X.shape[1] != n_features:
        raise ValueError(f"X has {X.shape[1]} features but the network takes {n_features}")
    given = X
    with _narrowing(X.dtype, dtype):
        X = check_csr(X, dtype) if sparse else np.ascontiguousarray(X, dtype=dtype)
    if finite and not all_finite(X.data if sparse else X, squares):
        raise ValueError(not_finite_message("X", given.data if sparse else given, dtype))
    return X


def _narrowing(source, dtype):
    """A context for casting an array of dtype `source` to `dtype`: to a narrower float
    (float32 from float64), NumPy's overflow warning is ignored (the finiteness checks that
    follow say what overflowed)."""
    if source.itemsize > np.dtype(dtype).itemsize:
        return np.errstate(over="ignore")
    return contextlib.nullcontext()


def not_finite_message(name, given, dtype):
    """What to say when `given` (the caller's array) holds NaN or infinity once converted to
    `dtype`: that, or that its values are finite but beyond `dtype`'s range."""
    given, dtype = np.asarray(given), np.dtype(dtype)
    with np.errstate(all="ignore"):
        if given.dtype.kind == "f" and given.dtype.itemsize > dtype.itemsize and all_finite(given):
            largest = np.format_float_scientific(np.max(np.abs(given)), precision=3, trim="-")
            advice = " or use dtype='float64'" if dtype == np.float32 else ""
            return (f"{name} has values beyond {dtype}'s range (|{name}| up to {largest}; {dtype} holds at most "
                    f"{np.finfo(dtype).max:.4g}): scale {name}{advice}")
    return f"{name} contains NaN or infinity"


def check_csr(X, dtype):
    """A 2-D scipy.sparse X as CSR with values of dtype (CSC and the other formats are
    converted; the rows are never made dense), its structure checked, since the backends
    index the weights by its column indices: ValueError if indptr does not start at 0, or
    decreases, or runs past the indices, or if a column index lies outside the columns."""
    X = X.tocsr()
    if X.dtype != dtype:
        X = X.astype(dtype)
    indptr, indices, n_rows, n_cols = X.indptr, X.indices, *X.shape
    if (indptr.ndim != 1 or indptr.shape[0] != n_rows + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0)
            or indptr[-1] > min(indices.shape[0], X.data.shape[0])):
        raise ValueError("X is not a valid CSR matrix: its indptr does not delimit its indices and data")
    used = indices[: indptr[-1]]
    if used.size and (used.min() < 0 or used.max() >= n_cols):
        raise ValueError(f"X is not a valid CSR matrix: a column index lies outside 0..{n_cols - 1}")
    return X


def memory_of(X):
    """What a dense or sparse X holds in memory, for `disjoint`: the array, or the values."""
    return X.data if scipy.sparse.issparse(X) else X


def check_Y(Y, n, n_outputs, dtype, finite=False, name="Y"):
    """Y as a C-contiguous (n, n_outputs) array of dtype; with `finite`, no NaN/inf."""
    given = Y
    Y = as_input(Y, dtype, 2, name)
    if Y.shape != (n, n_outputs):
        raise ValueError(f"{name} must have shape {(n, n_outputs)}, got {Y.shape}")
    if finite and not all_finite(Y):
        raise ValueError(not_finite_message(name, given, dtype))
    return Y


def check_sample_weight(sample_weight, n, dtype, class_weights=None):
    """None, or the weights as a C-contiguous (n,) array of dtype, divided by their largest
    value: every mean they weigh is sum(w_i x_i) / sum(w_i), so this changes no result, and
    weights scaled by any constant give the same model, however tiny (subnormal) or huge
    they are. Refused unless finite and >= 0 with at least one positive weight.
    `class_weights` (float64 (n,), from `class_sample_weight`) multiply the given weights
    (float64) first: the result is that of passing their product as `sample_weight`."""
    if sample_weight is None and class_weights is None:
        return None
    w = None if sample_weight is None else raw_sample_weight(sample_weight, n)
    if class_weights is not None:
        w = class_weights if w is None else w * class_weights
    top = w.max()
    if not top > 0:
        if class_weights is None:
            raise ValueError("sample_weight needs a positive sum: all its weights are 0")
        raise ValueError("class_weight (times sample_weight) gives every row the weight 0: at least one row "
                         "needs a positive weight")
    return np.ascontiguousarray(w / top, dtype=dtype)


def raw_sample_weight(sample_weight, n):
    """`sample_weight` as a float64 (n,) array, checked finite and >= 0 (not yet scaled)."""
    w = as_input(sample_weight, np.float64, 1, "sample_weight")
    if w.shape != (n,):
        raise ValueError(f"sample_weight must have shape ({n},), got {w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("sample_weight must be finite (it contains NaN or infinity)")
    if (w < 0).any():
        raise ValueError("sample_weight must be >= 0 (it has negative weights)")
    return w


# ---------------------------------------------------------------- class weights


def class_columns(Y, output, classes=None):
    """[(class index of each row, class labels)] per output of the checked 0/1 targets `Y`
    (n, k) of a classification head, for `class_sample_weight`: "softmax", one column (the
    index of each one-hot row, labels `classes` or 0..k-1); "sigmoid" with one output, one
    column (labels `classes` or [0, 1]); "sigmoid" with k > 1 outputs (multilabel), one
    column per output, labels [0, 1] each. ValueError for any other output."""
    if output == "softmax":
        return [(np.argmax(Y, axis=1), list(range(Y.shape[1])) if classes is None else list(classes))]
    if output != "sigmoid":
        raise ValueError(f"class_weight is for classification (output 'sigmoid' or 'softmax'); this network's "
                         f"output is {output!r} (regression): weigh rows with sample_weight instead")
    if Y.shape[1] == 1:
        return [(Y[:, 0].astype(np.intp), [0, 1] if classes is None else list(classes))]
    return [(Y[:, j].astype(np.intp), [0, 1]) for j in range(Y.shape[1])]


def class_sample_weight(class_weight, columns):
    """Each row's weight (float64 (n,)) from `class_weight` for the classes of `columns` (see
    `class_columns`): "balanced", scikit-learn's n_samples / (n_classes * count of the class),
    n_classes counting the classes present; a dict {label: weight} (labels not in it weigh
    1); with several columns (multilabel) "balanced" or a list of such dicts, one per
    column, whose weights multiply (scikit-learn's ``compute_sample_weight``). Labels that
    are not classes, and weights that are not finite numbers >= 0, are refused."""
    k = len(columns)
    if isinstance(class_weight, str):
        choice(class_weight, "class_weight", ("balanced",))
        weights = [_balanced(index) for index, _ in columns]
    elif k > 1:
        if not isinstance(class_weight, (list, tuple)) or not all(isinstance(d, dict) for d in class_weight):
            raise ValueError(f"class_weight for {k} outputs (multilabel) must be 'balanced' or a list of {k} dicts, "
                             f"one per output, each {{0: weight, 1: weight}}; got {_short(class_weight)}")
        if len(class_weight) != k:
            raise ValueError(f"class_weight has {len(class_weight)} dicts for {k} outputs: give one per output")
        weights = [_from_dict(d, index, labels, f"class_weight[{j}]")
                   for j, (d, (index, labels)) in enumerate(zip(class_weight, columns))]
    elif isinstance(class_weight, dict):
        weights = [_from_dict(class_weight, *columns[0], "class_weight")]
    else:
        raise TypeError(f"class_weight must be None, 'balanced' or a dict {{label: weight}}, got "
                        f"{_short(class_weight)}")
    return np.prod(weights, axis=0, dtype=np.float64)


def _balanced(index):
    counts = np.bincount(index).astype(np.float64)
    present = int(np.count_nonzero(counts))
    with np.errstate(divide="ignore"):           # (absent classes: no row reads them)
        per_class = index.shape[0] / (present * counts)
    return per_class[index]


def _from_dict(class_weight, index, labels, name):
    position = {}
    for i, label in enumerate(labels):
        position.setdefault(label, i)
    unknown = [key for key in class_weight if _lookup(position, key) is None]
    if unknown:
        plain = [label.item() if isinstance(label, np.generic) else label for label in labels]
        raise ValueError(f"{name} names {_short(unknown)}, not among the classes {_short(plain)}")
    per_class = np.ones(len(labels), dtype=np.float64)
    for key, value in class_weight.items():
        per_class[_lookup(position, key)] = real(value, f"{name}[{key!r}]", minimum=0)
    return per_class[index]


def _lookup(position, key):
    try:
        return position.get(key)
    except TypeError:            # an unhashable key
        return None


def _short(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------- parameters read, not written


def check_params(params, n):
    """`params` must be a C-contiguous float32/float64 array of shape (n,); read-only is fine
    (inference only reads them: memory-mapped or shared weights). Returns its dtype."""
    if not isinstance(params, np.ndarray):
        raise TypeError(f"params must be a numpy array, got {type(params).__name__}")
    if params.dtype not in FLOAT_DTYPES:
        raise TypeError(f"params must have dtype float32 or float64, got {params.dtype}")
    if params.shape != (n,):
        raise ValueError(f"params must have shape {(n,)}, got {params.shape}")
    if not params.flags.c_contiguous:
        raise ValueError("params must be a C-contiguous array")
    return params.dtype


# ---------------------------------------------------------------- kernel arguments


def plain_arrays(*arrays):
    """TypeError unless each (array, name), an output or parameters, is a plain numpy array
    or a np.memmap: a subclass's own arithmetic (masked arrays, matrices) would change what
    the NumPy backend computes, while the compiled one reads and writes the memory only."""
    for out, name in arrays:
        if out is not None and type(out) is not np.ndarray and not isinstance(out, np.memmap):
            raise TypeError(f"{name} must be a plain numpy array (or a np.memmap), got {type(out).__name__}")


def disjoint(outputs, inputs=(), in_place=()):
    """ValueError when an output (array, name) shares memory with another output or an input
    (None entries are skipped): compiled loops would read what they already overwrote. An
    input named in `in_place` may instead be exactly the output (same memory, elementwise
    update in place). Every array here is C-contiguous, where np.may_share_memory's bounds
    test is exact; two distinct arrays that each own their data cannot overlap (the common
    case, answered without it)."""
    arrays = [(a, name, a.flags.owndata) for a, name in outputs if a is not None]
    n_outputs = len(arrays)
    arrays += [(a, name, a.flags.owndata) for a, name in inputs if a is not None]
    for i in range(n_outputs):
        out, out_name, owns = arrays[i]
        for other, name, other_owns in arrays[i + 1:]:
            if (owns and other_owns and other is not out) or not np.may_share_memory(out, other):
                continue
            if name in in_place and _same_memory(out, other):
                continue
            raise ValueError(f"{out_name} shares memory with {name}: an output must not overlap "
                             "an input or another output")


def _same_memory(a, b):
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.dtype == b.dtype)


def _shape2(a, name):
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {a.shape}")
    return a.shape


def _vector(b, dtype, n, name):
    b = as_input(b, dtype, 1, name)
    if b.shape != (n,):
        raise ValueError(f"{name} must have shape {(n,)}, got {b.shape}")
    return b


def dense_forward_args(A, W, b, Z):
    n, n_in = _shape2(A, "A")
    n_in_w, n_out = _shape2(W, "W")
    if n_in_w != n_in:
        raise ValueError(f"A has {n_in} columns but W has {n_in_w} rows")
    dt = check_output(Z, (n, n_out), "Z")
    plain_arrays((Z, "Z"))
    A, W, b = as_input(A, dt, 2, "A"), as_input(W, dt, 2, "W"), _vector(b, dt, n_out, "b")
    disjoint([(Z, "Z")], [(A, "A"), (W, "W"), (b, "b")])
    return A, W, b, Z


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
    plain_arrays((dW, "dW"), (db, "db"), (dA_prev, "dA_prev"))
    A_prev, W, dZ = (as_input(a, dt, 2, nm) for a, nm in ((A_prev, "A_prev"), (W, "W"), (dZ, "dZ")))
    disjoint([(dW, "dW"), (db, "db"), (dA_prev, "dA_prev")], [(A_prev, "A_prev"), (W, "W"), (dZ, "dZ")])
    return A_prev, W, dZ, dW, db, dA_prev


def elementwise_args(out, out_name, *inputs, in_place=()):
    """Inputs named (array, name), each of the shape of `out` (2-D), converted to its dtype.
    `out` may be exactly (not partly) an input named in `in_place`: updated in place."""
    first = inputs[0][0]
    shape = _shape2(first, inputs[0][1])
    dt = check_output(out, shape, out_name)
    plain_arrays((out, out_name))
    converted = []
    for a, name in inputs:
        if np.shape(a) != shape:
            raise ValueError(f"{name} must have shape {shape}, got {np.shape(a)}")
        converted.append(as_input(a, dt, 2, name))
    disjoint([(out, out_name)], list(zip(converted, (name for _, name in inputs))), in_place)
    return converted


# ---------------------------------------------------------------- targets for a loss


def _binary(Y):
    """Whether the checked (finite) target array Y holds only 0 and 1."""
    # y (y - 1) is exactly 0 where y is 0 or 1 and nowhere else: y - 1 is 0 only for y = 1,
    # and the product does not underflow (for |y| < 2**-53, y - 1 rounds to -1: it is -y)
    return not np.count_nonzero(Y * (Y - 1))


def check_targets(y, n, loss, n_outputs, dtype):
    """y as the (n, n_outputs) target array `loss` is computed against, checked.

    "bce": labels in {0, 1}, shaped (n,) for one output or (n, n_outputs);
    "cross_entropy": integer labels 0..k-1 shaped (n,), or one-hot rows (n, k);
    other losses: any finite values shaped (n,) for one output or (n, n_outputs).
    """
    y = np.asarray(y)
    if y.dtype.kind not in "biuf":
        raise TypeError(f"y must hold real numbers, got dtype {y.dtype}")
    if loss == "cross_entropy" and y.ndim == 1:
        return _one_hot(y, n, n_outputs, dtype)
    if y.ndim == 1 and n_outputs == 1:
        y = y.reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_outputs:
        want = f"({n},) or ({n}, 1)" if n_outputs == 1 else f"({n}, {n_outputs})"
        hint = ""
        if y.ndim == 1 and n_outputs > 1:
            hint = (f"; class labels 0..{n_outputs - 1} in a 1-D y need output='softmax', or give y one "
                    "column per output (one-hot rows for classes)")
        raise ValueError(f"y must have shape {want} for {n_outputs} output(s), got {y.shape}{hint}")
    if y.shape[0] != n:
        raise ValueError(f"X has {n} samples but y has {y.shape[0]}")
    Y = check_Y(y, n, n_outputs, dtype, finite=True, name="y")
    binary = loss in ("bce", "cross_entropy") and _binary(Y)
    if loss == "bce" and not binary:
        raise ValueError("binary cross-entropy needs labels in {0, 1}; y has other values")
    if loss == "poisson" and (Y < 0).any():
        raise ValueError("the Poisson loss needs counts or rates >= 0 in y; y has negative values")
    if loss == "cross_entropy" and not (binary and np.all(Y.sum(axis=1) == 1)):
        raise ValueError("cross-entropy needs one-hot rows in y (or integer labels 0..k-1 in a 1-D y)")
    return Y


def _one_hot(labels, n, k, dtype):
    if labels.shape[0] != n:
        raise ValueError(f"X has {n} samples but y has {labels.shape[0]}")
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels) & (labels == np.round(labels))):
        raise ValueError("class labels in y must be integers 0..k-1")
    if labels.min() < 0 or labels.max() >= k:
        raise ValueError(f"class labels in y must lie in 0..{k - 1} for {k} softmax outputs, "
                         f"got {labels.min()}..{labels.max()}")
    Y = np.zeros((n, k), dtype=dtype)
    Y[np.arange(n), labels.astype(np.intp)] = 1
    return Y
