"""What the command line reads and writes besides models: CSV files (through pandas), their
columns, and figures. Every problem is a `UsageError` with a one-line message."""

import os
import tempfile

import numpy as np

MAX_CLASSES = 20        # an integer target with at most this many values (and at most half
                        # as many as the rows) is taken for class labels by --task auto


class UsageError(Exception):
    """Bad input on the command line: the message is printed and the exit status is 2."""


def require(module, extra):
    """Import `module`, or a UsageError naming the extra that installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise UsageError(f"this command needs {module.split('.')[0]} ({exc}): "
                         f"pip install 'fastmlp[{extra}]'") from None


def existing_file(path, what="file"):
    """`path`, if it names a readable regular file."""
    if not os.path.exists(path):
        hint = f" (did you mean {path}.npz?)" if what == "model file" and os.path.isfile(path + ".npz") else ""
        raise UsageError(f"no such {what}: {path}{hint}")
    if os.path.isdir(path):
        raise UsageError(f"{path} is a directory, not a {what}")
    return path


def writable(path, what="output file"):
    """`path`, if a file can be written there: its directory exists and takes new files (a
    file is created and removed to find out), and `path` is no directory or special file.
    Checked before any long work."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"cannot write the {what} {path}: no such directory {directory}")
    if os.path.isdir(path):
        raise UsageError(f"cannot write the {what} {path}: it is a directory")
    if os.path.exists(path) and not os.path.isfile(path):
        raise UsageError(f"cannot write the {what} {path}: it is not a regular file")
    try:
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".fastmlp-probe-")
    except OSError as exc:
        raise UsageError(f"cannot write the {what} {path}: its directory {directory} takes no new files "
                         f"({exc.strerror or exc})") from None
    os.close(fd)
    os.remove(probe)
    return path


def model_file(path):
    """The file a model saved to `path` goes to (".npz" appended when missing, as save does)."""
    path = os.fsdecode(os.fspath(path))
    return path if path.endswith(".npz") else path + ".npz"


def write_beside(path, write):
    """Call write(name) to write a new temporary file beside `path` (same directory, same
    extension) and return its name: the caller moves it over `path` with `os.replace` once
    everything else has succeeded (`discard` otherwise). Nothing is left behind on failure."""
    directory, name = os.path.split(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=os.path.splitext(name)[1])
    os.close(fd)
    try:
        write(temporary)
    except BaseException:
        discard(temporary)
        raise
    return temporary


def discard(temporary):
    """Remove the temporary file `temporary` if it is there."""
    if temporary is not None:
        try:
            os.remove(temporary)
        except FileNotFoundError:
            pass


def line(index):
    """The file line of data row `index` (the header is line 1)."""
    return int(index) + 2


# ================================================================== CSV


SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab"}


def detect_separator(path):
    """The separator of the CSV file at `path`: whichever of comma, semicolon and tab its
    header line holds most often (comma when it holds none)."""
    with open(path, "rb") as file:
        header = file.readline(1 << 20).decode("utf-8", errors="replace")
    counts = {sep: header.count(sep) for sep in SEPARATORS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv(path, sep=None, decimal=".", decimal_given=True):
    """The CSV file at `path` (a header row, then data) as a DataFrame with rows. `sep`
    None: detected (`detect_separator`); `decimal`: the decimal mark of its numbers (when
    not `decimal_given` by the user and the same as the separator, ".")."""
    pd = require("pandas", "cli")
    existing_file(path, "CSV file")
    if sep is None:
        sep = detect_separator(path) if os.path.isfile(path) else ","
    if sep == decimal and not decimal_given:
        decimal = "."
    if sep == decimal:
        raise UsageError(f"the separator and the decimal mark are both {sep!r}: give --sep")
    try:
        frame = pd.read_csv(path, sep=sep, decimal=decimal)
    except pd.errors.EmptyDataError:
        raise UsageError(f"{path} is empty: expected a CSV file with a header row") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"{path} is not a readable CSV file: {exc}") from None
    if frame.empty:
        raise UsageError(f"{path} has a header but no data rows")
    frame.columns = [str(name) for name in frame.columns]
    return frame


def columns_of(frame, names, path, what="column"):
    """A UsageError naming the first of `names` that `frame` lacks."""
    for name in names:
        if name not in frame.columns:
            raise UsageError(f"{path} has no {what} {name!r}; its columns are: {listing(frame.columns)}")


def column(frame, name, path):
    """Column `name` of `frame`; the error lists the columns there are."""
    if name not in frame.columns:
        raise UsageError(f"{path} has no column {name!r}; its columns are: {listing(frame.columns)}")
    values = frame[name]
    missing = values.isna().to_numpy()
    if missing.any():
        raise UsageError(f"column {name!r} of {path} has {missing.sum()} empty value(s), the first on line "
                         f"{line(np.flatnonzero(missing)[0])}")
    return values


def numeric_features(frame, names, path, hint=""):
    """Columns `names` of `frame` as a float DataFrame (column names kept); the error names
    a column that is not numeric or has empty values, and the line (then `hint`)."""
    pd = require("pandas", "cli")
    for name in names:
        values = column(frame, name, path)
        if not pd.api.types.is_numeric_dtype(values):
            bad = np.flatnonzero(pd.to_numeric(values, errors="coerce").isna().to_numpy())
            first = bad[0] if bad.size else 0
            raise UsageError(f"column {name!r} of {path} is not numeric (line {line(first)}: "
                             f"{values.iloc[first]!r}); feature columns must hold numbers{hint}")
    return frame[list(names)].astype(np.float64)


def model_features(frame, path, feature_names, n_features, target):
    """The columns a model with `n_features` inputs reads from `frame`: its `feature_names`
    when it has them (in its order; other columns ignored), else every column but `target`."""
    if feature_names is not None:
        absent = [name for name in feature_names if name not in frame.columns]
        if absent:
            raise UsageError(f"{path} lacks the model's feature column(s) {listing(absent)}; "
                             f"its columns are: {listing(frame.columns)}")
        return numeric_features(frame, feature_names, path)
    names = [name for name in frame.columns if name != target]
    if len(names) != n_features:
        besides = f" besides the target {target!r}" if target in frame.columns else ""
        raise UsageError(f"the model takes {n_features} feature columns, {path} has {len(names)}{besides}: "
                         f"{listing(names)}")
    return numeric_features(frame, names, path)


def infer_task(target):
    """"classification" for a text, boolean or categorical target, one of only 0/1 values
    (integer, float or boolean), or an integer one with few values; else "regression"."""
    pd = require("pandas", "cli")
    if not pd.api.types.is_numeric_dtype(target) or pd.api.types.is_bool_dtype(target):
        return "classification"
    if is_binary(target):
        return "classification"
    if pd.api.types.is_integer_dtype(target):
        n_values, n_rows = target.nunique(), len(target)
        if n_values <= max(2, min(MAX_CLASSES, n_rows // 2)):
            return "classification"
    return "regression"


def is_binary(target):
    """True when the numeric column `target` holds only the values 0 and 1."""
    return bool(np.isin(target.to_numpy(), (0, 1)).all())


def class_labels(target, name, path):
    """`target`, if its values can be class labels: a float column of values that are not
    whole numbers cannot (it holds measurements, not classes)."""
    values = target.to_numpy()
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        raise UsageError(f"target column {name!r} of {path} holds decimal numbers ({some_values(target)}), "
                         "not class labels: use --task regression to predict it, or a column of labels")
    return target


def is_text(values):
    """True when the pandas column `values` holds text (strings or mixed objects)."""
    pd = require("pandas", "cli")
    return pd.api.types.is_string_dtype(values) or pd.api.types.is_object_dtype(values)


def some_values(values, limit=5):
    """A few distinct values of the pandas column `values`, and how many there are."""
    distinct = values.drop_duplicates()
    shown = ", ".join(str(value) for value in distinct.iloc[:limit])
    return shown + (f", ... ({len(distinct)} distinct values)" if len(distinct) > limit else "")


def listing(values, limit=12):
    """`values` as a short comma-separated list."""
    values = [str(value) for value in values]
    shown = ", ".join(values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


# ================================================================== figures


def figure():
    """A new matplotlib Figure and its Axes, without pyplot (no display needed)."""
    require("matplotlib", "plot")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    return fig, fig.subplots()


def plot_path(path):
    """`path`, if matplotlib is installed and can write an image there (checked before
    training, so a typo does not cost a fit)."""
    writable(path, "plot")
    require("matplotlib", "plot")
    from matplotlib.figure import Figure

    formats = Figure().canvas.get_supported_filetypes()
    extension = os.path.splitext(path)[1][1:].lower()
    if extension not in formats:
        raise UsageError(f"cannot write the plot {path}: give a file name ending in one of "
                         f"{listing(('.' + name for name in sorted(formats)), 20)}")
    return path


def save_figure(fig, path):
    fig.savefig(path, dpi=100)
