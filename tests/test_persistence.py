"""Model files and copies: atomic saves, load + continue = continue (bit for bit), pickling
and copying, and load's checks on hostile files (exception, message, peak memory)."""

import copy
import errno
import io
import json
import multiprocessing
import os
import pickle
import re
import subprocess
import sys
import tracemalloc
import warnings
import zipfile
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastmlp
from fastmlp import _backend, _persistence

from _support import assert_close, make_data, rewrite_estimator_record

SIZES = [3, 5, 1]

# ================================================================== helpers


def fitted(backend, dtype=np.float64, epochs=3, seed=0, **options):
    X, Y = make_data(40, SIZES, dtype=dtype)
    net = fastmlp.MLP(SIZES, seed=seed, dtype=dtype, backend=backend)
    return net.fit(X, Y, epochs=epochs, **{"batch_size": 8, **options}), X, Y


def members(path):
    """{name: bytes} of the archive at `path`, member names without ".npy"."""
    with zipfile.ZipFile(path) as archive:
        return {info.filename[:-4]: archive.read(info) for info in archive.infolist()}


def npy(array):
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=True)
    return buffer.getvalue()


def npy_header(shape, descr, data=b"", fortran=False):
    """A .npy member declaring `shape` of `descr` followed by `data` (which need not fit)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buffer.getvalue() + data


def write_zip(path, contents, compression=zipfile.ZIP_STORED):
    """An archive of {name: bytes or array}; names get ".npy"."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, value in contents.items():
            archive.writestr(name + ".npy", value if isinstance(value, bytes) else npy(value))
    return path


def json_member(value):
    return npy(np.array(json.dumps(value)))


def peak_bytes(function):
    """Peak traced memory (bytes) while `function` runs, and what it raised (or None)."""
    tracemalloc.start()
    try:
        function()
        raised = None
    except Exception as exc:   # noqa: BLE001 - handed to the caller to check
        raised = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak, raised


# ================================================================== 6. atomic save


class FailingFile:
    """A file that takes `limit` bytes, then fails as a full disk does."""

    def __init__(self, file, limit):
        self.file, self.limit, self.written = file, limit, 0

    def write(self, data):
        if self.written + len(data) > self.limit:
            self.file.write(bytes(data)[: self.limit - self.written])
            self.written = self.limit
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += len(data)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)


def _fail_midway(monkeypatch, exception=None):
    real, calls = _persistence._write_archive, []

    def write_some_then_fail(file, arrays):
        failing = FailingFile(file, 300)
        calls.append(failing)
        if exception is None:
            real(failing, arrays)
        failing.write(b"x" * 300)       # some bytes of the archive, then the interruption
        raise exception

    monkeypatch.setattr(_persistence, "_write_archive", write_some_then_fail)
    return calls


@pytest.mark.parametrize("failure", ["disk full", "interrupt", "fsync", "replace"])
@pytest.mark.parametrize("existing", [True, False], ids=["over_a_file", "new_file"])
def test_failed_save_keeps_the_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch, backend, failure,
                                                                     existing):
    path = tmp_path / "model.npz"
    old, X, _ = fitted(backend)
    if existing:
        old.save(path)
    before = path.read_bytes() if existing else None
    new, _, _ = fitted(backend, seed=1, epochs=5)
    calls = []
    if failure == "disk full":
        calls = _fail_midway(monkeypatch)
    elif failure == "interrupt":
        calls = _fail_midway(monkeypatch, KeyboardInterrupt())
    else:
        def fail(*args):
            raise OSError(errno.EIO, f"{failure} failed")
        monkeypatch.setattr(_persistence.os, failure if failure == "replace" else "fsync", fail)
    with pytest.raises(KeyboardInterrupt if failure == "interrupt" else OSError):
        new.save(path)
    monkeypatch.undo()
    assert all(f.written == 300 for f in calls), "the writer did not write part of the archive"
    assert sorted(os.listdir(tmp_path)) == (["model.npz"] if existing else [])
    if existing:
        assert path.read_bytes() == before
        assert_array_equal(fastmlp.load(path, backend=backend).params_, old.params_)
    new.save(path)                                  # and the next save works
    assert_array_equal(fastmlp.load(path, backend=backend).params_, new.params_)
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


@pytest.mark.parametrize("path, error, match", [
    ("", ValueError, r"cannot save a model to '': the path is empty"),
    ("{dir}/", ValueError, "the path names a directory, not a file"),
    ("{dir}/sub/", ValueError, "the path names a directory, not a file"),
    ("{dir}/.", ValueError, "the path names a directory, not a file"),
    ("{dir}/sub/..", ValueError, "the path names a directory, not a file"),
    ("{dir}/sub", IsADirectoryError, "cannot save a model over a directory"),
    ("{dir}/folder", IsADirectoryError, "cannot save a model over a directory"),    # folder.npz is one
])
def test_save_refuses_paths_without_a_file_name_before_writing(tmp_path, monkeypatch, path, error, match):
    """save("") wrote ./.npz and save("d/") wrote d/.npz; a path naming a directory (as
    given, or with ".npz" appended) is refused too. Nothing is written, in the directory
    given or the current one; the message names the path."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "folder.npz").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    net = fitted("numpy")[0]
    path = path.format(dir=tmp_path)
    with pytest.raises(error, match=match) as raised:
        net.save(path)
    assert path in str(raised.value)
    assert sorted(os.listdir(tmp_path)) == ["folder.npz", "sub"] and os.listdir(tmp_path / "sub") == []
    assert os.listdir(tmp_path / "folder.npz") == []


def test_estimator_files_are_refused_the_same_paths(tmp_path):
    from fastmlp import _estimator_io

    X, y = make_data(20, [3, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = fastmlp.MLPRegressor(hidden_layer_sizes=(3,), max_iter=2).fit(X, y.ravel())
    with pytest.raises(ValueError, match="names a directory, not a file"):
        _estimator_io.save_estimator(est, f"{tmp_path}{os.sep}")
    assert os.listdir(tmp_path) == []


# A save killed while writing its temporary file (here: once the archive is written, before
# the fsync and rename, so that the kill cannot come too early or too late).
KILLED_SAVE_CHILD = """
import sys, time
import fastmlp
from fastmlp import _persistence
write = _persistence._write_archive
def write_then_hang(file, arrays):
    write(file, arrays)
    file.flush()
    print("written", flush=True)
    time.sleep(600)
_persistence._write_archive = write_then_hang
fastmlp.MLP([300, 300, 1], seed=0).save(sys.argv[1])
"""


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=60)
    return child.pid


@pytest.mark.slow     # (a subprocess)
@pytest.mark.skipif(os.name != "posix", reason="process liveness by signal 0 is POSIX")
def test_a_save_removes_temporaries_of_killed_saves_but_not_of_live_ones(tmp_path):
    """A save killed by SIGKILL leaves its full-size temporary file; the next save to the
    same path removes it (its process is gone). Temporary files of a live process (another
    save still writing), of this process, of another machine, of another target and files
    that are not temporaries of this form are left alone."""
    path = tmp_path / "model.npz"
    child = subprocess.Popen([sys.executable, "-c", KILLED_SAVE_CHILD, str(path)], stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"written\n"
    finally:
        child.kill()
        child.wait(timeout=60)
    (killed,) = os.listdir(tmp_path)
    assert killed.startswith(f".model.npz.{child.pid}-") and killed.endswith(".tmp")
    assert (tmp_path / killed).stat().st_size > 300 * 300 * 8
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        target = os.path.realpath(path)
        kept = [_persistence.temporary_path(target, sleeper.pid),         # a live process's save
                _persistence.temporary_path(target),                      # this process's own
                _persistence.temporary_path(str(tmp_path / "other.npz"), _dead_pid()),   # another target
                f".model.npz.{_dead_pid()}-00000000.0123abcd.tmp",        # another machine's
                ".model.npz.0123abcd.tmp",                                # an older version's: owner unknown
                ".model.npz.notes"]
        dead = _persistence.temporary_path(target, _dead_pid())
        for name in kept + [dead]:
            (tmp_path / os.path.basename(name)).write_bytes(b"partial")
        net = fastmlp.MLP([2, 3, 1], seed=0)
        net.save(path)
        left = set(os.listdir(tmp_path))
        assert killed not in left and os.path.basename(dead) not in left
        assert left == {"model.npz", *map(os.path.basename, kept)}
        assert_array_equal(fastmlp.load(path).params_, net.params_)
    finally:
        sleeper.kill()
        sleeper.wait(timeout=60)


def test_save_keeps_the_mode_appends_npz_and_writes_through_symlinks(tmp_path):
    net, _, _ = fitted("numpy")
    umask = os.umask(0o022)
    os.umask(umask)
    net.save(tmp_path / "model")                    # np.savez's rule: ".npz" appended
    assert os.listdir(tmp_path) == ["model.npz"]
    assert (tmp_path / "model.npz").stat().st_mode & 0o777 == 0o666 & ~umask
    (tmp_path / "model.npz").chmod(0o640)
    net.save(tmp_path / "model.npz")
    assert (tmp_path / "model.npz").stat().st_mode & 0o777 == 0o640
    (tmp_path / "link.npz").symlink_to(tmp_path / "model.npz")
    net.fit(*make_data(40, SIZES), epochs=1)
    net.save(tmp_path / "link.npz")
    assert (tmp_path / "link.npz").is_symlink()
    assert_array_equal(fastmlp.load(tmp_path / "model.npz").params_, net.params_)


def test_save_refuses_non_finite_parameters_and_keeps_the_old_file(tmp_path, backend):
    path = tmp_path / "model.npz"
    net, _, _ = fitted(backend)
    net.save(path)
    before = path.read_bytes()
    net.params_[3] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        net.save(path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]


def test_save_and_load_with_open_files(backend, dtype):
    net, X, _ = fitted(backend, dtype, optimizer="adam")
    buffer = io.BytesIO()
    net.save(buffer)
    buffer.seek(0)
    back = fastmlp.load(buffer, backend=backend)
    assert_array_equal(back.predict_proba(X), net.predict_proba(X))
    assert_array_equal(back._run.state, net._run.state)


# ================================================================== 7, 8. continuing a copy


OPTIMIZERS = {   # fit options, the same for the first fit and the ones continuing it
    "sgd_momentum": {"optimizer": "sgd", "momentum": 0.9, "nesterov": True, "lr": 0.05, "batch_size": 8},
    "adam": {"optimizer": "adam", "lr": 0.01, "batch_size": 8},
    "adamw": {"optimizer": "adamw", "lr": 0.01, "weight_decay": 0.1, "batch_size": 8},
    "rprop": {"optimizer": "rprop", "lr": 0.01, "batch_size": None},
    "lbfgs": {"optimizer": "lbfgs", "batch_size": None},
}
SETUPS = [(name, shuffle) for name, opts in OPTIMIZERS.items()
          for shuffle in ((True, False) if opts["batch_size"] else (False,))]


def _via_file(net, tmp_path):
    net.save(tmp_path / "model.npz")
    return fastmlp.load(tmp_path / "model.npz", backend=net.backend)


COPIES = {
    "load": _via_file,
    "pickle": lambda net, _: pickle.loads(pickle.dumps(net)),
    "deepcopy": lambda net, _: copy.deepcopy(net),
    "copy": lambda net, _: copy.copy(net),
}


def _continue(model, X, Y, options):
    model.partial_fit(X, Y, **options)
    return model.fit(X, Y, epochs=2, warm_start=True, **options)


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize(("name", "shuffle"), SETUPS, ids=[f"{n}-{'shuffled' if s else 'ordered'}" for n, s in SETUPS])
def test_a_copy_continues_exactly_as_the_model(tmp_path, backend, dtype, name, shuffle, how):
    """load (or pickle, deepcopy, copy) then partial_fit and fit(warm_start=True) give the
    parameters and history of the original continued, bit for bit; training the copy
    leaves the original as it was."""
    options = {**OPTIMIZERS[name], "shuffle": shuffle}
    net, X, Y = fitted(backend, dtype, **options)
    twin = COPIES[how](net, tmp_path)
    assert twin is not net and twin.backend == net.backend and twin.get_config() == net.get_config()
    assert_array_equal(twin.predict_proba(X), net.predict_proba(X))
    before = net.params_.copy(), copy.deepcopy(net.history_)
    _continue(twin, X, Y, options)
    assert_array_equal(net.params_, before[0])
    assert net.history_ == before[1]
    _continue(net, X, Y, options)
    assert_array_equal(twin.params_, net.params_)
    assert twin.history_ == net.history_ and twin.n_iter_ == net.n_iter_ == len(net.history_["loss"])
    assert len(net.history_["loss"]) > 3
    assert not np.array_equal(net.params_, before[0])


def _edit_run(path, edit):
    """Rewrite the model file at `path` with its run record and state passed through `edit`."""
    contents = members(path)
    record = json.loads(str(np.load(io.BytesIO(contents["run"]))))
    state = np.load(io.BytesIO(contents["optimizer_state"]))
    record, state = edit(record, state)
    contents.update(run=json_member(record), optimizer_state=npy(state))
    write_zip(path, contents)


EDITS = {   # each piece the file keeps, changed: continuing must then differ
    "optimizer_state": ("adam", False, lambda record, state: (record, np.zeros_like(state))),
    "step_count": ("adam", False,
                   lambda record, state: ({**record, "optimizer": {**record["optimizer"], "t": 1}}, state)),
    "stream": ("sgd_momentum", True,
               lambda record, state: ({**record, "rng": np.random.default_rng(7).bit_generator.state}, state)),
}


@pytest.mark.parametrize("edit", EDITS)
def test_continuing_depends_on_each_saved_piece(tmp_path, backend, edit):
    """The check above can fail: a file missing any one piece does not continue exactly."""
    name, shuffle, change = EDITS[edit]
    options = {**OPTIMIZERS[name], "shuffle": shuffle}
    net, X, Y = fitted(backend, **options)
    path = tmp_path / "model.npz"
    net.save(path)
    _edit_run(path, change)
    twin = fastmlp.load(path, backend=backend)
    assert_array_equal(twin.params_, net.params_)
    _continue(twin, X, Y, options)
    _continue(net, X, Y, options)
    assert not np.array_equal(twin.params_, net.params_)


@pytest.mark.parametrize(("saved_on", "loaded_on"), [("cython", "numpy"), ("numpy", "cython")])
def test_files_and_pickles_move_between_backends(tmp_path, dtype, saved_on, loaded_on):
    options = {**OPTIMIZERS["adam"], "shuffle": True}
    net, X, Y = fitted(saved_on, dtype, **options)
    net.save(tmp_path / "model.npz")
    moved = fastmlp.load(tmp_path / "model.npz", backend=loaded_on)
    assert moved.backend == loaded_on
    assert_array_equal(moved.params_, net.params_)
    assert_close(moved.predict_proba(X), net.predict_proba(X), dtype)
    _continue(moved, X, Y, options)
    _continue(net, X, Y, options)
    assert_close(moved.params_, net.params_, dtype, scale=10)
    assert_close(moved.history_["loss"], net.history_["loss"], dtype, scale=10)


def test_an_old_format_file_loads_and_keeps_its_history(tmp_path, backend, dtype):
    """A file of config, params and history only (what save wrote before the run record):
    a warm start keeps its weights and history and starts a fresh optimizer."""
    net, X, Y = fitted(backend, dtype, optimizer="adam")
    path = tmp_path / "old.npz"
    np.savez(path, config=np.array(json.dumps(net.get_config())), params=net.params_,
             history_loss=np.asarray(net.history_["loss"]), history_val_loss=np.asarray(net.history_["val_loss"]))
    old = fastmlp.load(path, backend=backend)
    assert_array_equal(old.params_, net.params_)
    assert old.history_ == net.history_ and old.n_iter_ == 3
    old.save(tmp_path / "again.npz")                # still without a run record
    assert "run" not in members(tmp_path / "again.npz")
    old.partial_fit(X, Y, optimizer="adam", batch_size=8)
    assert old.history_["loss"][:3] == net.history_["loss"] and len(old.history_["loss"]) == 4
    fresh = fastmlp.MLP(SIZES, seed=0, dtype=dtype, backend=backend)       # the same first step
    fresh._params[...] = net.params_                 # from these weights with a new Adam
    fresh.partial_fit(X, Y, optimizer="adam", batch_size=8)
    assert_array_equal(old.params_, fresh.params_)
    unfitted = fastmlp.MLP(SIZES, seed=0, backend=backend)
    unfitted.save(tmp_path / "unfitted.npz")
    assert fastmlp.load(tmp_path / "unfitted.npz")._run is None


@pytest.mark.parametrize("bit_generator", ["MT19937", "Philox", "SFC64", "PCG64DXSM"])
def test_other_bit_generators_round_trip(tmp_path, bit_generator):
    net, X, Y = fitted("numpy", optimizer="adam")
    net._run.rng = np.random.Generator(getattr(np.random, bit_generator)(3))
    back = _via_file(net, tmp_path)
    assert type(back._run.rng.bit_generator).__name__ == bit_generator
    _continue(back, X, Y, OPTIMIZERS["adam"])
    _continue(net, X, Y, OPTIMIZERS["adam"])
    assert_array_equal(back.params_, net.params_)


def test_unpickling_without_the_compiled_backend_falls_back_to_numpy_with_a_warning(monkeypatch):
    net, X, Y = fitted("cython", optimizer="adam")
    data = pickle.dumps(net)
    numpy_data = pickle.dumps(fitted("numpy")[0])
    monkeypatch.delenv("FASTMLP_BACKEND", raising=False)
    monkeypatch.setitem(sys.modules, "fastmlp._core", None)
    monkeypatch.setattr(_backend, "_warned_fallback", False)
    with pytest.warns(RuntimeWarning, match="compiled backend is not available.*using the NumPy backend") as caught:
        back = pickle.loads(data)
    assert back.backend == "numpy" and back._impl is sys.modules["fastmlp._reference"]
    assert_close(back.predict_proba(X), net.predict_proba(X), np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")              # warned once, as backend="auto" is
        pickle.loads(data)
        assert pickle.loads(numpy_data).backend == "numpy"
    monkeypatch.setattr(_backend, "_warned_fallback", False)
    with pytest.warns(RuntimeWarning) as auto:
        assert fastmlp.MLP(SIZES, backend="auto").backend == "numpy"
    assert [str(w.message) for w in caught] == [str(w.message) for w in auto]
    with pytest.raises(ImportError):
        fastmlp.MLP(SIZES, backend="cython")        # asking for it is still an error
    _continue(back, X, Y, OPTIMIZERS["adam"])
    _continue(net, X, Y, OPTIMIZERS["adam"])
    assert_close(back.params_, net.params_, np.float64, scale=10)


@pytest.mark.slow     # (a subprocess)
def test_a_model_trains_in_another_process_exactly_as_here(backend):
    """Pickles cross process boundaries (multiprocessing, joblib): a warm-started fit run in
    a spawned process returns the model this process's fit gives."""
    options = {**OPTIMIZERS["adam"], "shuffle": True}
    net, X, Y = fitted(backend, **options)
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        remote = pool.submit(net.fit, X, Y, epochs=2, warm_start=True, **options).result()
    net.fit(X, Y, epochs=2, warm_start=True, **options)
    assert remote.backend == backend
    assert_array_equal(remote.params_, net.params_)
    assert remote.history_ == net.history_


# ================================================================== 14. hostile files


def _good(tmp_path, **fit_options):
    net, _, _ = fitted("numpy", optimizer="adam", **fit_options)
    net.save(tmp_path / "good.npz")
    return net, members(tmp_path / "good.npz")


def _replaced(**changes):
    """A builder: the good file's members with `changes` ({name: bytes/array/None})."""
    def build(tmp_path):
        contents = {**_good(tmp_path)[1], **changes}
        return write_zip(tmp_path / "bad.npz", {k: v for k, v in contents.items() if v is not None})
    return build


def _config(**changes):
    def build(tmp_path):
        net, contents = _good(tmp_path)
        config = {**net.get_config(), **changes}
        contents["config"] = json_member({k: v for k, v in config.items() if v is not ...})
        return write_zip(tmp_path / "bad.npz", contents)
    return build


def _write(data):
    def build(tmp_path):
        (tmp_path / "bad.npz").write_bytes(data)
        return tmp_path / "bad.npz"
    return build


def _npy_file(tmp_path):
    np.save(tmp_path / "bad.npy", np.arange(5.0))
    return tmp_path / "bad.npy"


def _truncated(tmp_path):
    _good(tmp_path)
    data = (tmp_path / "good.npz").read_bytes()
    return _write(data[: len(data) // 2])(tmp_path)


def _flipped_data(tmp_path):
    """One byte of the parameters changed: the CRC no longer matches."""
    _good(tmp_path)
    data = bytearray((tmp_path / "good.npz").read_bytes())
    at = data.index(b"params.npy") + 200
    data[at] ^= 0xFF
    return _write(bytes(data))(tmp_path)


def _directory(tmp_path):
    (tmp_path / "dir.npz").mkdir()
    return tmp_path / "dir.npz"


def _compressed(tmp_path):
    return write_zip(tmp_path / "bad.npz", _good(tmp_path)[1], compression=zipfile.ZIP_DEFLATED)


def _lying_central_directory(tmp_path):
    """params' sizes in the zip's central directory say 1 GB; the file holds ~2 KB."""
    path = write_zip(tmp_path / "bad.npz", _good(tmp_path)[1])
    data = bytearray(path.read_bytes())
    header = data.rfind(b"params.npy") - 46          # the central directory's entry for params
    assert data[header:header + 4] == b"PK\x01\x02"
    data[header + 20:header + 28] = (1 << 30).to_bytes(4, "little") * 2
    return _write(bytes(data))(tmp_path)


def _fortran_state(tmp_path):
    net, contents = _good(tmp_path)
    state = np.asfortranarray(net._run.state)
    contents["optimizer_state"] = npy_header(state.shape, "<f8", state.tobytes(order="F"), fortran=True)
    return write_zip(tmp_path / "bad.npz", contents)


GOOD_PARAMS = fitted("numpy")[0].params_            # 26 float64 parameters of SIZES
HOSTILE = {
    # name: (builder, message fragment)
    "npy file": (_npy_file, "a single .npy array"),
    "text file": (_write(b"layer_sizes = [3, 5, 1]\n"), "not a readable zip"),
    "empty file": (_write(b""), "the file is empty"),
    "truncated zip": (_truncated, "not a readable zip"),
    "corrupt data": (_flipped_data, "params' cannot be read: Bad CRC-32"),
    "directory": (_directory, "it is a directory"),
    "zip without the members": (lambda p: write_zip(p / "bad.npz", {"a": np.zeros(3)}), "no 'config' member"),
    "no params": (_replaced(params=None), "no 'params' member"),
    "no history": (_replaced(history_val_loss=None), "no 'history_val_loss' member"),
    "config not JSON": (_replaced(config=np.array("{layer_sizes: [3, 5, 1]")), "config is not valid JSON"),
    "config deeply nested": (_replaced(config=np.array("[" * 100_000)), "config is not valid JSON"),
    "config a list": (_replaced(config=json_member([3, 5, 1])), "config is a JSON list, not an object"),
    "config not text": (_replaced(config=np.arange(3.0)),
                        r"config is an array of shape \(3,\) and dtype float64, not a str"),
    "config object dtype": (_replaced(config=np.array({"layer_sizes": [3, 5, 1]}, dtype=object)),
                            "member 'config' has dtype object: fastmlp reads float and str arrays only, "
                            "never pickled objects"),
    "config missing a key": (_config(seed=...), r"config lacks \['seed'\]"),
    "config unknown key": (_config(colour="red"), r"has unknown \['colour'\]"),
    "config sizes a string": (_config(layer_sizes="3,5,1"), "config: layer_sizes must be a sequence"),
    "config float seed": (_config(seed=1.5), "config: seed must be an integer"),
    "config bool size": (_config(layer_sizes=[3, True, 1]), "config: each layer size must be an integer"),
    "config bad activation": (_config(activation=3), "config: "),   # Network's TypeError, as MLP(activation=3)
    "config int dtype": (_config(dtype="int32"), "config: dtype must be 'float32' or 'float64'"),
    "config NaN l2": (_config(l2=float("nan")), "config: l2 must be finite"),
    "params object dtype": (_replaced(params=np.array([1.0, None] * 13, dtype=object)),
                            "member 'params' has dtype object: .* never pickled objects"),
    "params str dtype": (_replaced(params=GOOD_PARAMS.astype(str)), "params has dtype <U"),
    "params float32": (_replaced(params=GOOD_PARAMS.astype(np.float32)), "params has dtype float32, expected float64"),
    "params too many": (_replaced(params=np.zeros(27)), r"params has shape \(27,\), expected \(26,\)"),
    "params 2-D": (_replaced(params=GOOD_PARAMS.reshape(2, 13)), r"params has shape \(2, 13\)"),
    "params NaN": (_replaced(params=np.where(np.arange(26) == 5, np.nan, GOOD_PARAMS)), "params contain NaN"),
    "params infinite": (_replaced(params=np.full(26, np.inf)), "params contain NaN or infinity"),
    "params header lies": (_replaced(params=npy_header((26,), "<f8", GOOD_PARAMS.tobytes()[:-8])),
                           r"declares \(26,\) float64 elements but it stores 200 bytes"),
    "params garbage header": (_replaced(params=b"\x93NUMPY\x01\x00\x10\x00not a dict at all\n"),
                              "'params' has no valid .npy header"),
    "params npy version 9": (_replaced(params=b"\x93NUMPY\x09\x00" + bytes(100)), "no valid .npy header"),
    "compressed": (_compressed, "member 'config' is compressed"),
    "lying central directory": (_lying_central_directory, "member 'params' declares 1073741824 bytes"),
    "history 2-D": (_replaced(history_loss=np.zeros((3, 1))), r"history_loss has shape \(3, 1\), expected \(n,\)"),
    "history object": (_replaced(history_loss=np.array([0.5, "x"], dtype=object)),
                       "member 'history_loss' has dtype object"),
    "history float32": (_replaced(history_loss=np.zeros(3, np.float32)), "history_loss has dtype float32"),
    "run not an object": (_replaced(run=json_member("adam")), "run is not a JSON object"),
    "run unknown optimizer": (
        _replaced(run=json_member({"optimizer": {"name": "nadam"}, "rng": None, "scalars": {}})),
        "run: unknown optimizer 'nadam'"),
    "run bad hyperparameter": (
        _replaced(run=json_member({"optimizer": {"name": "adam", "beta1": 2.0}, "rng": None, "scalars": {}})),
        r"run: beta1 must be in \[0, 1\), got 2.0"),
    "run unknown field": (
        _replaced(run=json_member({"optimizer": {"name": "adam", "gamma": 1}, "rng": None, "scalars": {}})),
        "run: unknown optimizer hyperparameter 'gamma'"),
    "run bad stream": (
        _replaced(run=json_member({"optimizer": "lbfgs", "rng": {"bit_generator": "os.system"}, "scalars": {}})),
        "run: the shuffling stream's bit generator must be one of"),
    "run bad stream state": (
        _replaced(run=json_member({"optimizer": "lbfgs", "scalars": {},
                                   "rng": {"bit_generator": "PCG64", "state": {"state": -1, "inc": "x"}}})),
        "run: "),
    "run unknown scalar": (
        _replaced(run=json_member({"optimizer": "lbfgs", "rng": None, "scalars": {"params": 1}})),
        "run: unexpected run scalar params=1"),
    "no optimizer state": (_replaced(optimizer_state=None), "no 'optimizer_state' member"),
    "optimizer state shape": (_replaced(optimizer_state=np.zeros((2, 25))),
                              r"optimizer_state has shape \(2, 25\), expected \(n, 26\)"),
    "optimizer state fortran": (_fortran_state, "'optimizer_state' is stored in Fortran order"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_load_refuses_a_file_that_is_not_a_model(tmp_path, case):
    build, fragment = HOSTILE[case]
    path = build(tmp_path)
    with pytest.raises(fastmlp.ModelFileError, match=fragment) as err:
        fastmlp.load(path)
    message = str(err.value)
    assert message.startswith(f"{path} is not a fastmlp model file: "), message
    assert "\n" not in message


def test_load_errors_that_are_not_about_the_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        fastmlp.load(tmp_path / "missing.npz")
    fitted("numpy")[0].save(tmp_path / "good.npz")
    with pytest.raises(ValueError, match="backend must be") as err:
        fastmlp.load(tmp_path / "good.npz", backend="fortran")
    assert not isinstance(err.value, fastmlp.ModelFileError)
    assert isinstance(fastmlp.ModelFileError("x"), ValueError)


HUGE = [1, 40_000_000, 1]      # 120,000,001 parameters: 960 MB of float64


def _huge_config(tmp_path):
    net, contents = _good(tmp_path)
    contents["config"] = json_member({**net.get_config(), "layer_sizes": HUGE})
    return write_zip(tmp_path / "huge.npz", contents)


def _inflated_params(tmp_path):
    net, contents = _good(tmp_path)
    contents["config"] = json_member({**net.get_config(), "layer_sizes": HUGE})
    contents["params"] = npy_header((120_000_001,), "<f8", bytes(64))
    return write_zip(tmp_path / "inflated.npz", contents)


def _history_bomb(tmp_path):
    """history_loss deflated: 128 MB of float64 zeros in a ~130 KB member."""
    contents = _good(tmp_path)[1]
    path = write_zip(tmp_path / "bomb.npz", {k: v for k, v in contents.items() if k != "history_loss"})
    n = 1 << 24
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("history_loss.npy", "w", force_zip64=True) as member:
            member.write(npy_header((n,), "<f8"))
            zeros = bytes(1 << 20)
            for _ in range(n * 8 // len(zeros)):
                member.write(zeros)
    assert path.stat().st_size < 400_000
    return path


MEMORY_CASES = {
    "huge config": (_huge_config, r"params has shape \(26,\), expected \(120000001,\)"),
    "inflated params": (_inflated_params, r"declares \(120000001,\) float64 elements but it stores 64 bytes"),
    "history bomb": (_history_bomb, "member 'history_loss' is compressed"),
}
PEAK_LIMIT = 20 * 2**20


@pytest.mark.parametrize("case", MEMORY_CASES)
def test_load_of_a_hostile_file_allocates_little(tmp_path, case):
    build, fragment = MEMORY_CASES[case]
    path = build(tmp_path)
    peak, raised = peak_bytes(lambda: fastmlp.load(path))
    assert isinstance(raised, fastmlp.ModelFileError), repr(raised)
    assert re.search(fragment, str(raised)), str(raised)
    print(f"\npeak memory of load({path.name}): {peak / 1024:.0f} KiB ({path.stat().st_size} byte file)")
    assert peak < PEAK_LIMIT, f"load allocated {peak / 2**20:.1f} MiB for a {path.stat().st_size} byte file"


def test_load_of_a_good_file_allocates_about_its_size(tmp_path):
    """The bound holds for real files too: a 200k-parameter Adam model (its file: params
    and two state arrays) loads in little more memory than the file's size."""
    X, Y = make_data(64, [100, 1000, 100])
    net = fastmlp.MLP([100, 1000, 100], seed=0, backend="numpy").fit(X, Y, epochs=1, optimizer="adam")
    net.save(tmp_path / "big.npz")
    size = (tmp_path / "big.npz").stat().st_size
    fastmlp.load(tmp_path / "big.npz")            # (first calls may import modules)
    peak, raised = peak_bytes(lambda: fastmlp.load(tmp_path / "big.npz"))
    assert raised is None
    assert peak < 1.1 * size + 2 * 2**20, (peak, size)


# ================================================================== estimator records (issue 21, item 13)


def _estimator_file(tmp_path, kind, scale=1.0, **params):
    """A saved fitted MLPClassifier ("binary", "multiclass") or MLPRegressor ("regressor"),
    on inputs (and targets) times `scale`."""
    pytest.importorskip("sklearn")
    from sklearn.exceptions import ConvergenceWarning

    from fastmlp._estimator_io import save_estimator

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3)) * scale
    Est = fastmlp.MLPRegressor if kind == "regressor" else fastmlp.MLPClassifier
    y = {"binary": np.where(X[:, 0] > 0, "yes", "no"), "multiclass": np.arange(60) % 3,
         "regressor": X.sum(axis=1) * scale}[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = Est(hidden_layer_sizes=(4,), max_iter=4, random_state=0, **params).fit(X, y)
    return save_estimator(est, tmp_path / "est"), X


_edit_record = rewrite_estimator_record


def _attributes(**values):
    return lambda record: record["attributes"].update(values)


def _classes(values):
    return lambda record: record["classes"].update(values=values)


def _relabel(name, classes="keep"):
    def change(record):
        record["class"] = name
        if classes != "keep":
            record["classes"] = classes
        if name == "MLPRegressor":
            record["params"]["loss"] = "squared_error"
        else:
            record["params"].pop("loss", None)
    return change


HAND_EDITS = {   # name: (kind, edit, the field the error must name)
    "duplicate classes": ("multiclass", _classes([0, 1, 1]), "classes"),
    "unsorted classes": ("multiclass", _classes([2, 0, 1]), "classes"),
    "unsorted text classes": ("binary", _classes(["yes", "no"]), "classes"),
    "negative n_iter_": ("multiclass", _attributes(n_iter_=-5), "n_iter_"),
    "negative t_": ("regressor", _attributes(t_=-1), "t_"),
    "no features": ("regressor", _attributes(n_features_in_=0), "n_features_in_"),
    "NaN loss_": ("multiclass", _attributes(loss_=float("nan")), "loss_"),
    "infinite loss_": ("regressor", _attributes(loss_=float("inf")), "loss_"),
    "NaN in loss_curve_": ("regressor", lambda r: r["attributes"]["loss_curve_"].__setitem__(0, float("nan")),
                           "loss_curve_"),
    "loss_ not the curve's last": ("regressor", lambda r: r["attributes"].update(loss_=r["attributes"]["loss_"] / 2),
                                   "loss_"),
    "NaN best_loss_": ("binary", _attributes(best_loss_=float("nan")), "best_loss_"),
    "NaN best_validation_score_": ("binary", _attributes(best_validation_score_=float("nan")),
                                   "best_validation_score_"),
    "scores for other epochs": ("binary", lambda r: r["attributes"]["validation_scores_"].append(0.5),
                                "validation_scores_"),
    "zero learning rate": ("regressor", _attributes(_learning_rate=0.0), "_learning_rate"),
    "classifier relabelled as regressor": ("binary", _relabel("MLPRegressor"), "class"),
    "classifier relabelled, classes dropped": ("binary", _relabel("MLPRegressor", None), "out_activation_"),
    "regressor relabelled as classifier": ("regressor", _relabel("MLPClassifier"), "class"),
    "binary output made softmax": ("binary", _attributes(out_activation_="softmax"), "out_activation_"),
}


@pytest.mark.parametrize("edit", HAND_EDITS)
def test_hand_edited_estimator_records_are_refused(tmp_path, edit):
    """Every field of an estimator record is checked on load: ModelFileError naming it."""
    from fastmlp._estimator_io import load_estimator

    kind, change, field = HAND_EDITS[edit]
    early = "validation_score" in field or "scores" in edit
    path, _ = _estimator_file(tmp_path, kind, early_stopping=early, validation_fraction=0.3)
    load_estimator(path)                          # the file as saved loads
    _edit_record(path, change)
    with pytest.raises(fastmlp.ModelFileError, match="is not a fastmlp model file") as error:
        load_estimator(path)
    assert re.search(rf"\b{re.escape(field)}\b", str(error.value)), str(error.value)


@pytest.mark.parametrize("kind", ["binary", "multiclass", "regressor"])
@pytest.mark.parametrize("params", [dict(solver="lbfgs"), dict(early_stopping=True, validation_fraction=0.3),
                                    dict(solver="sgd", learning_rate_init=10.0, early_stopping=True,
                                         validation_fraction=0.3)],
                         ids=["lbfgs", "early_stopping", "diverging"])
def test_real_estimator_records_load(tmp_path, kind, params, backend):
    """What real fits record passes the checks: no curves (L-BFGS), best_loss_ None (early
    stopping), validation scores of -inf or NaN from diverged epochs."""
    from fastmlp._estimator_io import load_estimator

    scale = 1e3 if "learning_rate_init" in params else 1.0
    path, X = _estimator_file(tmp_path, kind, scale, **params)
    loaded = load_estimator(path, backend=backend)
    assert loaded.predict(X).shape[0] == len(X)
