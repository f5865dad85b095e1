"""Model files, and the backend of a pickled model.

A model file is an uncompressed ``.npz`` archive (a ZIP_STORED zip of ``.npy`` members, as
``np.savez`` writes it), with no pickled object in it:

=================  =========================================================================
config             0-d str: the constructor arguments as JSON (``MLP.get_config()``)
params             (n_params,) array of the model's dtype: the flat weights and biases
history_loss       (n_epochs,) float64: ``history_["loss"]``
history_val_loss   (n,) float64: ``history_["val_loss"]``
run                0-d str, JSON (fitted models): the last fit's optimizer (its name,
                   hyperparameters and step count ``t``, or "lbfgs"), the state of its
                   shuffling stream's bit generator (or null) and the run's other scalars
optimizer_state    (n_state, n_params) array of the model's dtype, with ``run``: the optimizer's
                   buffers (momentum, Adam's moments, RPROP's steps), as many rows as its
                   registry entry declares (none for L-BFGS)
=================  =========================================================================

Files from before ``run`` existed still load; a warm start then keeps their weights and
history and starts its optimizer afresh. Files from before the state's rows followed the
optimizer hold 2 rows for every optimizer; they load too, keeping the rows it uses. Parameters must be finite: `save` will not write
NaN or infinity and `load` refuses a file holding them (there is nothing to predict with or
resume from); the history may hold any float.

`load` trusts nothing it has not checked. It reads each member's ``.npy`` header first
and refuses a compressed or encrypted member (a deflated member can inflate to gigabytes)
and one whose header does not account for exactly its stored bytes; the config must give
exactly the parameter count the params header declares before any array is read. So
nothing is read that is larger than the file, and the arrays allocated (params, optimizer
state) are bounded by that parameter count.
"""

import errno
import hashlib
import inspect
import json
import math
import os
import re
import secrets
import socket
import stat
import zipfile

import numpy as np

from . import _backend
from ._errors import ModelFileError
from ._spec import Optimizer, check_dropout_key
from ._training import Run

SUFFIX = ".npz"
_NPY_MAGIC = b"\x93NUMPY"
_CHUNK = 1 << 18                  # bytes per read of an array's data
_RUN_ARRAYS = ("params", "optimizer", "rng", "history", "state")   # Run attributes not kept as scalars
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
# A run restored from a file with no optimizer record: `Run.continues` is False for every
# optimizer, so a warm start keeps its weights and history and starts a fresh optimizer.
NO_OPTIMIZER = "unknown (file without optimizer state)"


# ================================================================== save


def save(model, path, extra=None):
    """Write `model` to `path` (".npz" appended when missing; see `save_path` for the paths
    refused) atomically: into a temporary file beside it, flushed to disk, then renamed over
    `path`. A save that fails leaves whatever was at `path` untouched and no temporary file
    behind; one killed outright (SIGKILL) leaves its temporary file, which the next save to
    `path` removes. `extra`: more members,
    {name: JSON-friendly value} (written as JSON; ``Archive.json`` reads one back). Returns
    the path written (None for an open file)."""
    target = None if hasattr(path, "write") else save_path(path)
    arrays = _arrays(model)
    for name, value in (extra or {}).items():
        if name in arrays:
            raise ValueError(f"{name!r} is a member every model file has; choose another name")
        arrays[name] = np.array(json.dumps(value))
    if target is None:                       # an open file: written in place, not atomically
        _write_archive(path, arrays)
        return None
    _atomic_write(os.path.realpath(target), lambda file: _write_archive(file, arrays))
    return target


def save_path(path):
    """The file a save to `path` writes: `path` with ".npz" appended when missing (np.savez's
    rule, kept from earlier versions), checked before anything is written. ValueError for a
    path with no file name in it ("", "models/", "."), which would otherwise write a hidden
    ".npz"; IsADirectoryError when `path`, or the file it names, is a directory."""
    given = os.fsdecode(os.fspath(path))
    if os.path.basename(given) in ("", os.curdir, os.pardir):
        what = "is empty" if not given else "names a directory, not a file"
        raise ValueError(f"cannot save a model to {given!r}: the path {what} (give a file name, "
                         f"e.g. {os.path.join(given, 'model' + SUFFIX)!r})")
    target = given if given.endswith(SUFFIX) else given + SUFFIX
    for candidate in dict.fromkeys((given, target)):
        if os.path.isdir(candidate):
            raise IsADirectoryError(errno.EISDIR, "cannot save a model over a directory (give a file name, "
                                    f"e.g. {os.path.join(candidate, 'model' + SUFFIX)!r})", candidate)
    return target


def config(model):
    """`model`'s constructor arguments, as JSON-friendly values (``MLP.get_config``)."""
    net = model._net
    return {
        "layer_sizes": list(net.sizes),
        "activation": model._activation if isinstance(model._activation, str) else list(model._activation),
        "output": net.output,
        "loss": net.loss,
        "negative_slope": net.negative_slope,
        "l2": net.l2,
        "init": model._init,
        "init_scale": model._init_scale,
        "seed": model._seed,
        "dtype": model._dtype.name,
        # one rate for all hidden layers as one number (0.0 for a model without dropout)
        "dropout": net.dropout[0] if len(set(net.dropout)) == 1 else list(net.dropout) or 0.0,
        # the loss's parameter under its own name (None for the losses without one)
        "delta": model.delta,
        "quantile": model.quantile,
        # one setting for all hidden layers as one value (None for a model without norm)
        "norm": net.norm[0] if len(set(net.norm)) == 1 else list(net.norm) or None,
    }


# Settings added after files were first written -> the value an older file means by leaving
# them out.
_LATER_SETTINGS = {"dropout": 0.0, "delta": None, "quantile": None, "norm": None}


def _arrays(model):
    """The members of `model`'s file; ValueError if its parameters are not finite."""
    params = model.params_
    if not np.isfinite(params).all():
        raise ValueError("the model's parameters contain NaN or infinity; fastmlp.load refuses such "
                         "files, so save will not write one")
    arrays = {
        "config": np.array(json.dumps(model.get_config())),
        "params": params,
        "history_loss": np.asarray(model.history_["loss"], dtype=np.float64),
        "history_val_loss": np.asarray(model.history_["val_loss"], dtype=np.float64),
    }
    run = model._run
    if run is not None and run.optimizer != NO_OPTIMIZER:
        arrays["run"] = np.array(json.dumps(_run_record(run), default=_jsonable))
        arrays["optimizer_state"] = run.state
    return arrays


def _run_record(run):
    opt = run.optimizer
    return {
        "optimizer": opt if isinstance(opt, str) else opt.record(),
        "rng": None if run.rng is None else run.rng.bit_generator.state,
        "scalars": {k: v for k, v in vars(run).items() if k not in _RUN_ARRAYS},
    }


def _jsonable(value):
    """JSON for what a bit generator's state holds besides ints and dicts (arrays, numpy ints)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to a model file")


def _write_archive(file, arrays):
    np.savez(file, **arrays)


def _atomic_write(target, write):
    """Call write(file) on a new temporary file in `target`'s directory, fsync it and
    rename it to `target` (keeping the mode of a file already there). Temporary files that
    earlier saves to `target` left behind when their process was killed are removed first."""
    directory, name = os.path.split(target)
    _remove_stale_temporaries(directory, name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = temporary_path(target)
        try:
            fd = os.open(temporary, flags, 0o666)    # the umask applies, as for any new file
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        except FileNotFoundError:
            pass
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise
    _fsync_directory(directory)


# A save's temporary file, beside its target: ".<target's name>.<pid>-<host>.<random>.tmp",
# where <host> is a hash of the machine's name (directories may be shared between machines,
# whose pids are unrelated). A later save to the same target on the same machine removes the
# files whose process is gone (SIGKILL, power loss), never those of a live process.
_TEMPORARY = re.compile(r"\.(?P<pid>[0-9]{1,10})-(?P<host>[0-9a-f]{8})\.[0-9a-f]{8}\.tmp")


def _host():
    return hashlib.sha256(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:8]


def temporary_path(target, pid=None):
    """A new temporary file name for a save to `target`, owned by process `pid` (this one)."""
    directory, name = os.path.split(target)
    pid = os.getpid() if pid is None else pid
    return os.path.join(directory, f".{name}.{pid}-{_host()}.{secrets.token_hex(4)}.tmp")


def _remove_stale_temporaries(directory, name):
    """Remove the temporary files of saves to `name` in `directory` whose process, on this
    machine, no longer exists. A pid that is alive (or that this process may not signal:
    another user's) keeps its file; anything unexpected keeps it too. POSIX only: elsewhere
    a signal is no liveness test."""
    if os.name != "posix":
        return
    prefix, host, own = f".{name}", _host(), os.getpid()
    try:
        with os.scandir(directory or os.curdir) as entries:
            stale = []
            for entry in entries:
                if not entry.name.startswith(prefix):
                    continue
                match = _TEMPORARY.fullmatch(entry.name, len(prefix))
                if match and match["host"] == host and int(match["pid"]) != own and entry.is_file(follow_symlinks=False):
                    stale.append((entry.path, int(match["pid"])))
    except OSError:
        return
    for path, pid in stale:
        if not _process_gone(pid):
            continue
        try:
            os.unlink(path)
        except OSError:          # removed meanwhile by another save, or not ours to remove
            pass


def _process_gone(pid):
    """Whether no process `pid` exists (signal 0 tests for one without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):   # PermissionError: alive, another user's
        return False
    return False


def _fsync_directory(directory):
    """Make the rename durable too (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ================================================================== load


def load(cls, path, backend="auto"):
    """A `cls` (``MLP``) rebuilt from a file written by `save`, every part checked first."""
    name, _ = _backend.resolve(backend)          # a bad `backend` is not a file problem
    with Archive(path) as archive:
        model = _configured(cls, archive, name)
        n_params = model._net.param_count()
        archive.expect("params", (n_params,), model.dtype)
        for key in ("history_loss", "history_val_loss"):
            archive.expect(key, (None,), np.dtype(np.float64))
        record = _run_json(archive) if "run" in archive else None
        if record is not None:    # (its rows are checked against the optimizer's below)
            archive.expect("optimizer_state", (None, n_params), model.dtype)
        params = archive.read("params")
        if not np.isfinite(params).all():
            archive.fail("params contain NaN or infinity")
        if any(views is not None and "running_var" in views and (views["running_var"] < 0).any()
               for views in model._net.norm_layers(params)):
            archive.fail("params hold a negative running variance (batch norm)")
        history = {"loss": archive.read("history_loss").tolist(),
                   "val_loss": archive.read("history_val_loss").tolist()}
        if record is not None:
            run = _restored_run(archive, record, params, history)
        else:
            run = Run(params, NO_OPTIMIZER, None, history) if history["loss"] or history["val_loss"] else None
    model._set_state(params, history, run)
    return model


def _configured(cls, archive, backend):
    """A `cls` set up from the file's config (checked as the constructor checks its
    arguments), with no parameters allocated yet."""
    config = archive.json("config")
    keys = [p for p in inspect.signature(cls._configure).parameters if p not in ("self", "backend")]
    if not isinstance(config, dict):
        archive.fail(f"config is a JSON {type(config).__name__}, not an object")
    config = {**{key: value for key, value in _LATER_SETTINGS.items() if key not in config}, **config}
    if set(config) != set(keys):
        archive.fail(f"config lacks {sorted(set(keys) - set(config))} or has unknown "
                     f"{sorted(set(config) - set(keys))}")
    model = cls.__new__(cls)
    try:
        model._configure(**config, backend=backend)
    except (TypeError, ValueError) as exc:
        archive.fail(f"config: {exc}")
    return model


def _run_json(archive):
    record = archive.json("run")
    if not isinstance(record, dict) or set(record) != {"optimizer", "rng", "scalars"}:
        archive.fail("run is not a JSON object with 'optimizer', 'rng' and 'scalars'")
    return record


def _restored_run(archive, record, params, history):
    """The last fit's `Run`: its optimizer, shuffling stream, scalars and state."""
    try:
        optimizer = record["optimizer"]
        if optimizer != "lbfgs":
            if not isinstance(optimizer, dict):
                raise TypeError(f"optimizer must be 'lbfgs' or an object, got {optimizer!r}")
            optimizer = Optimizer(**optimizer)
        run = Run(params, optimizer, _generator(record["rng"]), history)
        scalars = record["scalars"]
        if not isinstance(scalars, dict):
            raise TypeError(f"scalars must be an object, got {scalars!r}")
        for key, value in scalars.items():
            if key not in vars(run) or key in _RUN_ARRAYS or not isinstance(value, (int, float, type(None))):
                raise ValueError(f"unexpected run scalar {key}={value!r}")
            setattr(run, key, check_dropout_key(value) if key == "dropout_key" else value)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        archive.fail(f"run: {exc}")
    _read_state(archive, run)
    return run


LEGACY_STATE_ROWS = 2   # what files held for every optimizer before its registry entry set the rows


def _read_state(archive, run):
    """run.state from the file's optimizer_state: the rows the optimizer keeps, or a file
    from before the rows followed the optimizer (2 rows), of which it keeps the first."""
    rows, kept = archive.expect("optimizer_state", (None, run.state.shape[1]), run.state.dtype)[0], len(run.state)
    if rows == kept:
        archive.read("optimizer_state", out=run.state)     # in place: no second state array
    elif rows == LEGACY_STATE_ROWS and kept < rows:
        run.state[...] = archive.read("optimizer_state")[:kept]
    else:
        name = run.optimizer if isinstance(run.optimizer, str) else run.optimizer.name
        archive.fail(f"optimizer_state has {rows} rows; the optimizer {name!r} keeps {kept}")


def _generator(state):
    """A numpy Generator on a bit generator of the recorded type, in the recorded state."""
    if state is None:
        return None
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        raise ValueError(f"the shuffling stream's bit generator must be one of {_BIT_GENERATORS}")
    bit_generator = getattr(np.random, state["bit_generator"])(0)
    bit_generator.state = state
    return np.random.Generator(bit_generator)


class Archive:
    """A model file opened for checking: each member's ``.npy`` header is read and checked
    (`expect`) before its data (`read`), and every problem is a ModelFileError naming the
    file. A missing path stays FileNotFoundError."""

    def __init__(self, path):
        self.path, self.headers = path, {}
        try:
            self.file = path if hasattr(path, "read") else open(path, "rb")   # noqa: SIM115
        except IsADirectoryError:
            self.fail("it is a directory")
        try:
            self.zip = self._open_zip()
        except BaseException:
            self.close()
            raise

    def _open_zip(self):
        if hasattr(self.path, "read"):
            self.size = self.file.seek(0, os.SEEK_END)
            self.file.seek(0)
        else:
            status = os.fstat(self.file.fileno())
            if not stat.S_ISREG(status.st_mode):
                self.fail("not a regular file")
            self.size = status.st_size
        start = self.file.read(len(_NPY_MAGIC))
        self.file.seek(0)
        if not start:
            self.fail("the file is empty")
        if start == _NPY_MAGIC:
            self.fail("a single .npy array, not an .npz archive")
        try:
            return zipfile.ZipFile(self.file)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
            self.fail(f"not a readable zip (.npz) archive: {exc}")

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        if not hasattr(self.path, "read"):
            self.file.close()

    def __contains__(self, key):
        return self._info(key) is not None

    def _info(self, key):
        try:
            return self.zip.getinfo(key + ".npy")
        except KeyError:
            return None

    def fail(self, problem):
        name = getattr(self.path, "name", self.path) if hasattr(self.path, "read") else self.path
        problem = " ".join(str(problem).split())     # one line
        raise ModelFileError(f"{os.fsdecode(name) if isinstance(name, bytes) else name} is not a fastmlp "
                             f"model file: {problem}")

    def expect(self, key, shape, dtype):
        """Check member `key`'s header: `shape` (None: any length) and exactly `dtype`."""
        found, found_dtype, _, _ = self._header(key)
        fits = len(found) == len(shape) and all(w is None or w == f for w, f in zip(shape, found))
        if not fits:
            want = "(" + ", ".join("n" if w is None else str(w) for w in shape) + ("," if len(shape) == 1 else "") + ")"
            self.fail(f"{key} has shape {found}, expected {want}")
        if found_dtype != dtype:
            self.fail(f"{key} has dtype {found_dtype}, expected {dtype}")
        return found

    def _header(self, key):
        """(shape, dtype, zip info, data offset) of member `key`, checked: an uncompressed,
        unencrypted member within the file, in C order, whose header accounts for exactly its
        stored size. Cached."""
        if key in self.headers:
            return self.headers[key]
        info = self._info(key)
        if info is None:
            self.fail(f"it has no {key!r} member")
        if info.compress_type != zipfile.ZIP_STORED:
            self.fail(f"member {key!r} is compressed (method {info.compress_type}); fastmlp writes "
                      "and reads uncompressed members only")
        if info.flag_bits & 0x1:
            self.fail(f"member {key!r} is encrypted")
        if info.file_size != info.compress_size or info.header_offset + info.file_size > self.size:
            self.fail(f"member {key!r} declares {info.file_size} bytes, more than the file holds")
        try:
            with self.zip.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version not in ((1, 0), (2, 0)):
                    raise ValueError(f"unsupported .npy format version {version}")
                header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
                shape, fortran, dtype = header[version](member)
                offset = member.tell()
        except (EOFError, zipfile.BadZipFile) as exc:
            self.fail(f"member {key!r} cannot be read: {exc}")
        except (ValueError, TypeError, SyntaxError, RecursionError) as exc:
            self.fail(f"member {key!r} has no valid .npy header: {exc}")
        if fortran:
            self.fail(f"member {key!r} is stored in Fortran order")
        if dtype.kind not in "fU":
            self.fail(f"member {key!r} has dtype {dtype}: fastmlp reads float and str arrays only"
                      + (", never pickled objects" if dtype.hasobject else ""))
        if any(n < 0 for n in shape) or offset + math.prod(shape) * dtype.itemsize != info.file_size:
            self.fail(f"member {key!r}: its header declares {shape} {dtype} elements but it stores "
                      f"{info.file_size - offset} bytes of data")
        self.headers[key] = (shape, dtype, info, offset)
        return self.headers[key]

    def read(self, key, out=None):
        """Member `key`'s array (its header checked first), read in chunks into `out` (a
        C-contiguous array of the header's shape and dtype) or a new array: nothing larger
        than the member is allocated."""
        shape, dtype, info, offset = self._header(key)
        if out is None:
            out = np.empty(shape, dtype)
        assert out.shape == shape and out.dtype == dtype and out.flags.c_contiguous
        view = memoryview(out.reshape(-1).view(np.uint8))
        try:
            with self.zip.open(info) as member:
                member.seek(offset)
                done = 0
                while done < len(view):
                    got = member.readinto(view[done:done + _CHUNK])
                    if not got:
                        raise EOFError(f"the data ends after {done} of {len(view)} bytes")
                    done += got
        except (EOFError, zipfile.BadZipFile, ValueError) as exc:
            self.fail(f"member {key!r} cannot be read: {exc}")
        return out

    def json(self, key):
        """The JSON value in the 0-d str member `key`."""
        shape, dtype = self._header(key)[:2]
        if shape != () or dtype.kind != "U":
            self.fail(f"{key} is an array of shape {shape} and dtype {dtype}, not a str")
        try:
            return json.loads(str(self.read(key)))
        except (ValueError, RecursionError) as exc:
            self.fail(f"{key} is not valid JSON: {exc}")


# ================================================================== pickling


def restore_backend(name):
    """(name, module) for an unpickled model's backend `name`. A model pickled with the
    compiled backend falls back to NumPy where that is not importable, with the warning
    (given once) of ``backend="auto"``."""
    return _backend.resolve(name, fallback=True)

