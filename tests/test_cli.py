"""The command line: `python -m fastmlp xor` (the README's main job) and the CSV commands
(train, predict, evaluate, info) end to end in subprocesses on small CSV files, every bad
input ending with status 2 and a one-line message; and the estimator model files the
commands write (``fastmlp._estimator_io``), round-tripped in process."""

import io
import os
import re
import signal
import subprocess
import sys
import warnings
import zipfile

import numpy as np
import pytest

import fastmlp
from _support import cli_in_process, rewrite_estimator_record


def command(*args):
    return [sys.executable, "-m", "fastmlp", *map(str, args)]


def run(*args, env=None):
    return subprocess.run(command(*args), capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120, check=False)


def run_all(*arg_lists):
    """Run several commands at once (each one imports pandas/scikit-learn: seconds); their
    CompletedProcess results in order."""
    procs = [subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for args in arg_lists]
    results = []
    for proc, args in zip(procs, arg_lists):
        out, err = proc.communicate(timeout=180)
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return results


in_process = cli_in_process


def ok(result):
    assert result.returncode == 0, f"{result.args}: {result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


# ================================================================== xor


@pytest.mark.slow     # (a subprocess)
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_xor_command(backend):
    result = run("xor", "--backend", backend)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for inputs, label in [("[0 0]", 0), ("[0 1]", 1), ("[1 0]", 1), ("[1 1]", 0)]:
        line = next(line for line in out.splitlines() if line.strip().startswith(inputs))
        assert round(float(line.split("->")[1])) == label
    assert f"backend: {backend}" in out
    assert "final loss: 0.0041" in out  # the seed's network after 5000 epochs
    assert "training time:" in out


@pytest.mark.slow     # (a subprocess)
def test_xor_command_default_backend_honours_env():
    result = run("xor", "--epochs", "10", env={"FASTMLP_BACKEND": "numpy"})
    assert result.returncode == 0, result.stderr
    assert "backend: numpy" in result.stdout


@pytest.mark.slow     # (a subprocess)
def test_xor_command_bad_arguments():
    assert run("xor", "--epochs", "-3").returncode == 2
    assert "epochs" in run("xor", "--epochs", "-3").stderr
    assert run("xor", "--backend", "fortran").returncode == 2
    assert run().returncode == 2


@pytest.mark.slow     # (a subprocess)
def test_xor_plot_and_version(tmp_path):
    pytest.importorskip("matplotlib")
    image = tmp_path / "xor.png"
    plotted, version = run_all(("xor", "--epochs", "300", "--plot", image), ("--version",))
    assert f"decision boundary: {image}" in ok(plotted)
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert ok(version) == f"fastmlp {fastmlp.__version__}\n"


# ================================================================== CSV files and models


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Small CSV files and models: {name: path}."""
    pd = pytest.importorskip("pandas")
    pytest.importorskip("sklearn")
    from fastmlp._estimator_io import save_estimator

    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    pets = pd.DataFrame(rng.normal(size=(90, 2)).round(3), columns=["height", "weight"])
    pets["animal"] = np.array(["bird", "cat", "dog"])[(pets.height > 0).astype(int) + (pets.weight > 0.4)]
    houses = pd.DataFrame({"rooms": rng.integers(1, 7, 80), "area": rng.uniform(30, 200, 80).round(1)})
    houses["price"] = (houses.rooms * 10 + houses.area + rng.normal(0, 5, 80)).round(2) / 100
    paths = {name: d / f"{name}.csv" for name in ("pets", "houses", "colors", "other", "empty", "header",
                                                  "houses_text", "typo")}
    pets.to_csv(paths["pets"], index=False)
    houses.to_csv(paths["houses"], index=False)
    houses.assign(price=np.where(houses.price > 1, "high", "low")).to_csv(paths["houses_text"], index=False)
    pets.assign(color="red").to_csv(paths["colors"], index=False)
    pets.astype({"weight": object}).assign(weight=lambda f: f.weight.where(f.index != 4, "12kg")).to_csv(
        paths["typo"], index=False)
    pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 4.0]}).to_csv(paths["other"], index=False)
    paths["empty"].write_text("")
    paths["header"].write_text("height,weight,animal\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = fastmlp.MLPClassifier((4,), max_iter=5, random_state=0).fit(pets[["height", "weight"]], pets.animal)
        reg = fastmlp.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(houses[["rooms", "area"]],
                                                                                           houses.price)
    paths["pets_model"] = save_estimator(clf, d / "pets_model", {"target": "animal", "task": "classification"})
    paths["houses_model"] = save_estimator(reg, d / "houses_model", {"target": "price", "task": "regression"})
    paths["mlp"] = d / "mlp.npz"
    fastmlp.MLP([3, 4, 1], seed=0).save(paths["mlp"])
    paths["dir"] = d
    return paths


def read_csv(text):
    import pandas as pd

    return pd.read_csv(io.StringIO(text))


@pytest.fixture(scope="module")
def trained(files):
    """The `train` commands of the end-to-end tests, run at once: {name: (result, model path)}."""
    d = files["dir"]
    runs = {
        "cython": ("train", files["pets"], "--target", "animal", "--output", d / "pets_cython", "--hidden", 8,
                   "--epochs", 40, "--lr", 0.02, "--seed", 0, "--backend", "cython", "--plot", d / "loss.png"),
        "numpy": ("train", files["colors"], "--target", "animal", "--drop", "color", "--output", d / "pets_numpy",
                  "--hidden", 8, "--epochs", 40, "--lr", 0.02, "--seed", 0, "--backend", "numpy"),
        "regression": ("train", files["houses"], "--target", "price", "-o", d / "houses.npz", "--hidden", 6,
                       "--epochs", 30, "--solver", "lbfgs", "--seed", 1, "--backend", "numpy", "--progress"),
    }
    return dict(zip(runs, zip(run_all(*runs.values()), (d / "pets_cython", d / "pets_numpy", d / "houses.npz"))))


@pytest.mark.slow     # (a subprocess)
@pytest.mark.parametrize("backend", ["cython", "numpy"])
def test_classification_with_text_labels_end_to_end(files, trained, backend, tmp_path, capsys):
    from fastmlp._estimator_io import load_estimator

    result, model = trained[backend]
    out = ok(result)
    assert "90 rows, 2 features, 3 classes (bird, cat, dog)" in out       # numpy: --drop color
    assert f"MLPClassifier 2-8-3 (relu, softmax), solver adam, backend {backend}" in out
    assert "epochs run:  40 of 40" in out and "final loss:" in out and "time:" in out
    assert f"saved:       {model}.npz" in out
    assert backend == "numpy" or (files["dir"] / "loss.png").read_bytes()[:4] == b"\x89PNG"

    est = load_estimator(f"{model}.npz")
    X = read_csv(files["pets"].read_text())
    labels, proba = with_preprocessing(f"{model}.npz", X)
    if backend == "numpy":     # the rest does not depend on the backend that trained: in process
        status, out, err = in_process("predict", f"{model}.npz", files["pets"], capsys=capsys)
        assert status == 0 and err == "", err
        assert list(read_csv(out).columns) == ["animal"] and list(read_csv(out).animal) == list(labels)
        return
    proba_csv = tmp_path / "proba.csv"
    with_proba, evaluated, info = run_all(
        ("predict", f"{model}.npz", files["pets"], "--proba", "--output", proba_csv, "--backend", "numpy"),
        ("evaluate", f"{model}.npz", files["pets"], "--target", "animal"),
        ("info", f"{model}.npz"))
    assert ok(with_proba) == f"wrote 90 predictions to {proba_csv}\n"
    frame = read_csv(proba_csv.read_text())
    assert list(frame.columns) == ["animal", "proba_bird", "proba_cat", "proba_dog"]
    assert list(frame.animal) == list(labels)
    np.testing.assert_allclose(frame.iloc[:, 1:].to_numpy(), proba, rtol=1e-12, atol=1e-15)
    assert ok(evaluated).startswith(f"accuracy:          {np.mean(labels == X.animal):.3f}\n")
    info = ok(info)
    for line in ("model:          MLPClassifier", "layers:         2-8-3", "relu (hidden), softmax (output)",
                 "classes:        bird, cat, dog", "features:       height, weight", "target:         animal",
                 "dtype:          float64", "solver:         adam", "epochs trained: 40",
                 f"final loss:     {est.loss_:.4g}"):
        assert line in info, info


def with_preprocessing(path, frame):
    """(predictions, probabilities or None) of the model file at `path` for the CSV columns
    `frame`, through the preprocessing stored in the file."""
    from fastmlp import _cli_models

    model = _cli_models.load(path, None)
    X = model.inputs(frame, "data")
    return model.predict(X), model.predict_proba(X) if model.classifier else None


@pytest.mark.slow     # (a subprocess)
def test_regression_end_to_end(files, trained, capsys):
    from fastmlp._estimator_io import load_estimator

    result, model = trained["regression"]
    out = ok(result)
    assert "fastmlp MLPRegressor:" in result.stderr and "epoch" in result.stderr     # --progress: the bar
    assert "fastmlp MLPClassifier:" not in trained["cython"][0].stderr    # stderr is no terminal: no bar
    assert "80 rows, 2 features, regression target 'price'" in out
    assert "MLPRegressor 2-6-1 (relu, identity), solver lbfgs, backend numpy" in out
    est = load_estimator(model)
    X = read_csv(files["houses"].read_text())
    assert est.n_features_in_ == 2
    predicted, _ = with_preprocessing(model, X)
    r2 = 1 - np.sum((X.price - predicted) ** 2) / np.sum((X.price - X.price.mean()) ** 2)
    rmse = np.sqrt(np.mean((X.price - predicted) ** 2))
    mae = np.mean(np.abs(X.price - predicted))
    evaluated, info = run_all(("evaluate", model, files["houses"]), ("info", model))
    assert ok(evaluated) == (f"R²:                {r2:.3f}\nRMSE:              {rmse:.4g}\n"   # --target: the
                             f"MAE:               {mae:.4g}\n")                             # model's own
    status, out, err = in_process("predict", model, files["houses"], capsys=capsys)
    assert status == 0 and err == "", err
    np.testing.assert_allclose(read_csv(out).price, predicted, rtol=1e-14)
    assert "target:         price" in ok(info) and "classes" not in ok(info)


def test_auto_task_reads_integer_targets_with_few_values_as_classes():
    pd = pytest.importorskip("pandas")
    from fastmlp._cli_io import infer_task

    assert infer_task(pd.Series(["a", "b", "a"])) == "classification"
    assert infer_task(pd.Series([True, False, True])) == "classification"
    assert infer_task(pd.Series(np.arange(100) % 3)) == "classification"
    assert infer_task(pd.Series(np.arange(100) % 40)) == "regression"
    assert infer_task(pd.Series([0, 1, 2, 3])) == "regression"            # more values than half the rows
    assert infer_task(pd.Series([0.0, 1.0, 1.0, 0.0])) == "classification"    # only 0 and 1: labels
    assert infer_task(pd.Series([0, 1, 1, 0])) == "classification"
    assert infer_task(pd.Series([0.0, 1.0, 0.5, 0.0])) == "regression"    # other floats are values


@pytest.mark.slow     # (a subprocess)
def test_info_and_predict_read_a_plain_mlp_file(files, tmp_path):
    data = tmp_path / "three.csv"
    data.write_text("a,b,c\n0.1,0.2,0.3\n1,2,3\n")
    info, predicted = run_all(("info", files["mlp"]), ("predict", files["mlp"], data, "--proba"))
    info = ok(info)
    assert "model:          fastmlp.MLP" in info and "layers:         3-4-1" in info
    assert "epochs trained: 0" in info and "final loss:     n/a (not trained)" in info
    net = fastmlp.load(files["mlp"])
    X = np.array([[0.1, 0.2, 0.3], [1, 2, 3]])
    frame = read_csv(ok(predicted))
    assert list(frame.columns) == ["prediction", "proba_1"]
    np.testing.assert_array_equal(frame.prediction, net.predict(X))
    np.testing.assert_allclose(frame.proba_1, net.predict_proba(X)[:, 0], rtol=1e-14)


# ================================================================== bad input

# name: (arguments, with {file names} filled in; a part of the one-line message)
BAD_INPUT = {   # the list, run in subprocesses
    "missing data file": ("train {dir}/nope.csv --target animal -o {dir}/m", "no such CSV file: {dir}/nope.csv"),
    "missing model file": ("predict {dir}/nope.npz {pets}", "no such model file: {dir}/nope.npz"),
    "unknown column": ("train {pets} --target species -o {dir}/m",
                       "has no column 'species'; its columns are: height, weight, animal"),
    "csv as model (predict)": ("predict {pets} {pets}", "{pets} is not a fastmlp model file"),
    "csv as model (info)": ("info {houses}", "{houses} is not a fastmlp model file"),
    "negative width": ("train {pets} --target animal -o {dir}/m --hidden 8 -3",
                       "argument --hidden: '-3' is not a positive integer width"),
    "features do not match": (
        "predict {pets_model} {houses}",
        "lacks the model's feature column(s) height, weight; its columns are: rooms, area, price"),
    "feature count does not match": ("predict {mlp} {other}", "the model takes 3 feature columns, {other} has 2"),
}
MORE_BAD_INPUT = {   # the same checks in process (each subprocess costs seconds of imports)
    "unknown evaluate column": ("evaluate {pets_model} {pets} --target species", "has no column 'species'"),
    "zero epochs": ("train {pets} --target animal -o {dir}/m --epochs 0", "argument --epochs: '0' is not"),
    "a typo in a numeric column": ("train {typo} --target animal -o {dir}/m",
                                   "column 'weight' of {typo} holds numbers but line 6 holds '12kg': correct it, "
                                   "leave it empty, or --drop weight"),
    "drop unknown column": ("train {colors} --target animal --drop colour -o {dir}/m", "has no column 'colour'"),
    "text regression target": ("train {pets} --target animal -o {dir}/m --task regression",
                               "target column 'animal' is not numeric"),
    "empty csv": ("train {empty} --target animal -o {dir}/m", "{empty} is empty"),
    "header only": ("train {header} --target animal -o {dir}/m", "{header} has a header but no data rows"),
    "model as csv": ("predict {pets_model} {mlp}", "{mlp} is not a readable CSV file"),
    "directory as model": ("info {dir}", "{dir} is a directory, not a model file"),
    "output directory missing": ("train {pets} --target animal -o {dir}/no/m", "no such directory {dir}/no"),
    "plot format": ("train {pets} --target animal -o {dir}/m --plot {dir}/loss.txt", "cannot write the plot"),
    "proba of a regressor": ("predict {houses_model} {houses} --proba", "--proba is for classifiers"),
    "regressor on text": ("evaluate {houses_model} {colors} --target color", "lacks the model's feature column(s)"),
    "validation fraction alone": ("train {pets} --target animal -o {dir}/m --validation-fraction 0.2", "give both"),
    "bad batch size": ("train {pets} --target animal -o {dir}/m --batch-size big", "'auto' or a positive integer"),
    "unknown command": ("fit {pets}", "invalid choice: 'fit'"),
    "no model target": ("evaluate {mlp} {other}", "does not name its target column"),
    # issue 21, item 14
    "absurd width": ("train {pets} --target animal -o {dir}/m --hidden 1000000000000",
                     "a 2-1000000000000-3 network needs at least "),
    "float target as classes": ("train {houses} --target price -o {dir}/m --task classification",
                                "target column 'price' of {houses} holds decimal numbers ("),
    "regressor on a text target": ("evaluate {houses_model} {houses_text} --target price",
                                   "target column 'price' holds text (low, high), but the model predicts numbers"),
    "classifier on numbers": ("evaluate {pets_model} {pets} --target height",
                              "target column 'height' holds numbers ("),
    "plot directory missing": ("train {pets} --target animal -o {dir}/m --plot {dir}/no/loss.png",
                               "cannot write the plot {dir}/no/loss.png: no such directory {dir}/no"),
}


def check_bad_input(status, out, err, expected, names):
    assert status == 2, (out, err)
    assert "Traceback" not in err and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("fastmlp") and "error: " in err
    assert expected in err, err
    assert len(err) < 400, err                   # a few values at most, never a whole column
    assert not os.path.exists(os.path.join(names["dir"], "m.npz"))


@pytest.fixture(scope="module")
def names(files):
    return {key: str(value) for key, value in files.items()}


@pytest.fixture(scope="module")
def bad_runs(names):
    """Every BAD_INPUT command, run at once."""
    arg_lists = [args.format(**names).split() for args, _ in BAD_INPUT.values()]
    return dict(zip(BAD_INPUT, run_all(*arg_lists)))


@pytest.mark.slow     # (a subprocess)
@pytest.mark.parametrize("case", BAD_INPUT)
def test_bad_input_exits_2_with_one_line_naming_the_problem(bad_runs, names, case):
    result = bad_runs[case]
    check_bad_input(result.returncode, result.stdout, result.stderr, BAD_INPUT[case][1].format(**names), names)


@pytest.mark.parametrize("case", MORE_BAD_INPUT)
def test_more_bad_input_in_process(names, case, capsys):
    args, expected = MORE_BAD_INPUT[case]
    status, out, err = in_process(*args.format(**names).split(), capsys=capsys)
    check_bad_input(status, out, err, expected.format(**names), names)


def test_a_fit_out_of_memory_exits_2_with_one_line(names, monkeypatch, capsys):
    """Where the machine's memory is unknown (no size check), the allocation that fails is
    caught: one line, status 2, nothing written."""
    from fastmlp import _cli_models

    monkeypatch.setattr(_cli_models, "physical_memory", lambda: None)
    status, out, err = in_process("train", names["pets"], "--target", "animal", "-o", f"{names['dir']}/m",
                                  "--hidden", 10**14, capsys=capsys)   # far beyond any address space
    check_bad_input(status, out, err, "not enough memory to train a network with --hidden 100000000000000",
                    names)


def _previous_model(path):
    """A model file at `path` standing for the one a failed `train` must leave alone: its bytes."""
    fastmlp.MLP([2, 3, 1], seed=1).save(path)
    return path.read_bytes()


def _no_temporary_files(directory):
    assert not [name for name in os.listdir(directory) if name.startswith(".")], os.listdir(directory)


def test_a_plot_that_fails_after_training_writes_nothing(files, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from fastmlp import _cli_models

    def broken_plot(est, path):
        with open(path, "wb") as file:          # half an image, then the disk is full
            file.write(b"\x89PNG")
        raise OSError(28, "No space left on device")

    model, image = tmp_path / "m.npz", tmp_path / "loss.png"
    before = _previous_model(model)
    image.write_bytes(b"the previous loss curve")
    monkeypatch.setattr(_cli_models, "plot_loss", broken_plot)
    status, out, err = in_process("train", files["pets"], "--target", "animal", "-o", model, "--epochs", 3,
                                  "--plot", image, capsys=capsys)
    assert status == 2 and out == "" and "Traceback" not in err    # (after max_iter's ConvergenceWarning)
    assert err.endswith("\nfastmlp: error: [Errno 28] No space left on device\n"), err
    assert model.read_bytes() == before and image.read_bytes() == b"the previous loss curve"
    _no_temporary_files(tmp_path)


def test_train_writes_the_model_and_the_plot_and_nothing_else(files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    model, image = tmp_path / "m", tmp_path / "loss.svg"
    _previous_model(tmp_path / "m.npz")
    status, out, err = in_process("train", files["pets"], "--target", "animal", "-o", model, "--epochs", 3,
                                  "--seed", 0, "--plot", image, capsys=capsys)
    assert status == 0 and f"saved:       {model}.npz (loss curve: {image})" in out
    assert fastmlp.load(f"{model}.npz").layer_sizes == (2, 100, 3) and b"<svg" in image.read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["loss.svg", "m.npz"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc (unwritable even by root)")
def test_an_unwritable_plot_path_is_refused_before_training(files, tmp_path, capsys):
    model = tmp_path / "m.npz"
    before = _previous_model(model)
    status, out, err = in_process("train", files["pets"], "--target", "animal", "-o", model,
                                  "--plot", "/proc/fastmlp-loss.png", capsys=capsys)
    assert status == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("fastmlp: error: cannot write the plot /proc/fastmlp-loss.png: its directory /proc "
                          "takes no new files"), err
    assert model.read_bytes() == before


def test_predict_output_replaces_the_file_whole(files, tmp_path, monkeypatch, capsys):
    """predict --output writes beside the file and moves it over: a failed write leaves the
    earlier file as it was."""
    import pandas as pd

    output = tmp_path / "out.csv"
    output.write_text("earlier\n")

    def failing(self, path, **kwargs):
        with open(path, "w") as file:
            file.write("animal\nbird\n")
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(pd.DataFrame, "to_csv", failing)
        status, out, err = in_process("predict", files["pets_model"], files["pets"], "-o", output, capsys=capsys)
    assert status == 2 and err == "fastmlp: error: [Errno 28] No space left on device\n"
    assert output.read_text() == "earlier\n"
    _no_temporary_files(tmp_path)
    status, out, err = in_process("predict", files["pets_model"], files["pets"], "-o", output, capsys=capsys)
    assert status == 0 and out == f"wrote 90 predictions to {output}\n"
    assert len(read_csv(output.read_text())) == 90
    _no_temporary_files(tmp_path)


# ================================================================== Ctrl-C (subprocesses, SIGINT by os.kill)


@pytest.fixture(scope="module")
def slow_data(tmp_path_factory):
    """A CSV file on which `train --hidden 512 512` takes many seconds, and a model file that
    was there before: (data, model, its bytes)."""
    pd = pytest.importorskip("pandas")
    d = tmp_path_factory.mktemp("ctrl_c")
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(5000, 10)).round(4), columns=[f"x{i}" for i in range(10)])
    frame["y"] = np.sin(frame.sum(axis=1))
    data = d / "slow.csv"
    frame.to_csv(data, index=False)
    model = d / "model.npz"
    return data, model, _previous_model(model)


def _start(*args):
    """`python -m fastmlp args` with Ctrl-C's default handling (even if this process ignores it)."""
    if not hasattr(signal, "SIGINT") or os.name != "posix":
        pytest.skip("sends SIGINT to a child process")
    return subprocess.Popen(command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.mark.slow     # (a subprocess)
def test_ctrl_c_during_training_exits_130_and_keeps_the_previous_model(slow_data):
    """The estimator stops early on KeyboardInterrupt and keeps its epochs (as scikit-learn's
    do); train must still report the interruption, exit 130 and save nothing."""
    data, model, before = slow_data
    proc = _start("train", data, "--target", "y", "-o", model, "--hidden", 512, 512, "--epochs", 500,
                  "--progress")
    seen = b""
    # the bar past its first epoch: training is under way (the bar alone shows before the
    # data checks, where a Ctrl-C is no interrupted training)
    while not re.search(rb"fastmlp MLPRegressor:[^\r\n]*\| *[1-9]\d*/500", seen):
        chunk = os.read(proc.stderr.fileno(), 4096)
        assert chunk, (seen, proc.wait(timeout=120))
        seen += chunk
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    err = (seen + err).decode()
    # the bar's text, and the messages after it (a signal that lands before the estimator can
    # catch it leaves the bar without its last newline, the message on the same line)
    messages = [part[part.index("fastmlp: "):] for part in re.split(r"[\r\n]", err) if "fastmlp: " in part]
    assert proc.returncode == 130, err
    assert messages == [f"fastmlp: interrupted: nothing saved ({model} left as it was)"], err
    assert out == b"" and model.read_bytes() == before
    _no_temporary_files(model.parent)


@pytest.mark.slow     # (a subprocess)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs a named pipe")
def test_ctrl_c_anywhere_in_train_prints_one_line(slow_data, tmp_path):
    """Without a bar: the data comes through a named pipe, so the signal is sent once train
    has started reading (it lands while reading, importing or fitting)."""
    data, _, _ = slow_data
    pipe, model = tmp_path / "data.csv", tmp_path / "model"
    os.mkfifo(pipe)
    proc = _start("train", pipe, "--target", "y", "-o", model, "--hidden", 512, 512, "--epochs", 500)
    with open(pipe, "wb") as writer:     # opens once train opens the pipe to read it
        writer.write(data.read_bytes())
    os.kill(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.decode() == f"fastmlp: interrupted: nothing saved ({model}.npz not written)\n" and out == b""
    assert sorted(os.listdir(tmp_path)) == ["data.csv"]


# ================================================================== model files of the estimators


def _fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y)


@pytest.mark.parametrize("solver", ["adam", "lbfgs"])
@pytest.mark.parametrize("kind", ["classifier", "regressor"])
def test_estimator_files_round_trip_exactly(backend, kind, solver, tmp_path):
    pytest.importorskip("sklearn")
    from fastmlp._estimator_io import load_estimator, load_model, save_estimator

    rng = np.random.default_rng(4)
    X = rng.standard_normal((60, 3))
    if kind == "classifier":
        est = fastmlp.MLPClassifier((5, 4), solver=solver, max_iter=15, random_state=0, backend=backend)
        y = np.array(["no", "yes", "maybe"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1)]
    else:
        est = fastmlp.MLPRegressor(hidden_layer_sizes=(5,), solver=solver, max_iter=15, random_state=0,
                                   early_stopping=solver == "adam", backend=backend)
        y = X @ [1.0, 2.0, -1.0]
    _fit(est, X, y)
    path = save_estimator(est, tmp_path / "model", {"target": "y"})
    assert path == f"{tmp_path / 'model'}.npz"
    loaded = load_estimator(path)
    assert type(loaded) is type(est) and loaded.get_params() == est.get_params()
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    if kind == "classifier":
        np.testing.assert_array_equal(loaded.predict_proba(X), est.predict_proba(X))
        np.testing.assert_array_equal(loaded.classes_, est.classes_)
        assert loaded.classes_.dtype == est.classes_.dtype
    for name in ("n_iter_", "loss_", "loss_curve_", "validation_scores_", "best_loss_", "n_features_in_",
                 "n_outputs_", "n_layers_", "out_activation_", "t_"):
        assert getattr(loaded, name, None) == getattr(est, name, None), name
    assert load_model(path)[1] == {"target": "y"}
    assert fastmlp.load(path).layer_sizes == est._mlp.layer_sizes          # the bare network
    with zipfile.ZipFile(path) as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())
    with np.load(path, allow_pickle=False) as archive:                       # no pickled object
        assert {name: archive[name].dtype.kind for name in archive.files}["estimator"] == "U"


def test_estimator_files_keep_pandas_feature_names_and_integer_classes(tmp_path):
    pd = pytest.importorskip("pandas")
    from fastmlp._estimator_io import load_estimator, save_estimator

    X = pd.DataFrame({"u": [0.0, 1.0, 0.0, 1.0] * 5, "v": [0.0, 0.0, 1.0, 1.0] * 5})
    est = _fit(fastmlp.MLPClassifier((3,), max_iter=5, random_state=0), X, np.array([-1, 4, 4, -1] * 5))
    loaded = load_estimator(save_estimator(est, tmp_path / "m.npz"))
    assert list(loaded.feature_names_in_) == ["u", "v"] and loaded.classes_.tolist() == [-1, 4]
    np.testing.assert_array_equal(loaded.predict(X), est.predict(X))
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(X.rename(columns={"u": "w"}))


def test_estimator_files_hold_no_code(tmp_path):
    pytest.importorskip("sklearn")
    from fastmlp._estimator_io import load_estimator, save_estimator

    est = fastmlp.MLPClassifier((3,), max_iter=3, random_state=np.random.RandomState(0))
    if "callback" in est.get_params():
        est.set_params(callback=lambda *args: None)
    _fit(est, np.eye(4), [0, 1, 1, 0])
    loaded = load_estimator(save_estimator(est, tmp_path / "m"))
    assert loaded.random_state is None and loaded.get_params().get("callback") is None
    np.testing.assert_array_equal(loaded.predict_proba(np.eye(4)), est.predict_proba(np.eye(4)))


_rewrite_record = rewrite_estimator_record


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update({"class": "Pipeline"}), "unknown class"),
    (lambda r: r["params"].update({"solver": "magic"}), "solver"),
    (lambda r: r["params"].update({"hidden_layer_sizes": [7]}), "the network has layers"),
    (lambda r: r["classes"].update({"values": ["a", "b", "c", "d"]}), "outputs do not fit"),
    (lambda r: r["classes"].update({"dtype": "|V8"}), "not supported"),
    (lambda r: r["attributes"].update({"n_iter_": "many"}), "n_iter_"),
    (lambda r: r["attributes"].update({"__class__": 1}), "unknown"),
    (lambda r: r.update({"format": 99}), "format 99"),
    (lambda r: r.pop("metadata"), "keys"),
])
def test_estimator_files_with_bad_records_are_refused(tmp_path, change, message):
    pytest.importorskip("sklearn")
    from fastmlp._estimator_io import load_estimator, save_estimator

    est = _fit(fastmlp.MLPClassifier((3,), max_iter=3, random_state=0), np.eye(3), ["a", "b", "c"])
    path = save_estimator(est, tmp_path / "m")
    _rewrite_record(path, change)
    with pytest.raises(fastmlp.ModelFileError, match="is not a fastmlp model file") as error:
        load_estimator(path)
    assert message in str(error.value)


def test_estimator_io_refuses_plain_mlp_files_and_unfitted_estimators(tmp_path):
    pytest.importorskip("sklearn")
    from fastmlp._estimator_io import load_estimator, load_model, save_estimator

    fastmlp.MLP([2, 3, 1]).save(tmp_path / "net.npz")
    with pytest.raises(fastmlp.ModelFileError, match="MLP.save"):
        load_estimator(tmp_path / "net.npz")
    assert isinstance(load_model(tmp_path / "net.npz")[0], fastmlp.MLP)
    with pytest.raises(ValueError, match="not fitted"):
        save_estimator(fastmlp.MLPClassifier(), tmp_path / "m")
    with pytest.raises(FileNotFoundError):
        load_estimator(tmp_path / "absent.npz")


def test_the_options_offered_are_the_registrys():
    """--activation and --solver offer every hidden activation and optimizer of the registry
    (in scikit-learn's spelling, as the estimators take them), so a new one needs no edit here."""
    from fastmlp import _cli, _registry, _sklearn

    parser = _cli.Parser(prog="fastmlp")
    _cli.add_commands(parser.add_subparsers())
    train = parser.parse_args(["train", "d.csv", "--target", "y", "-o", "m.npz"])
    assert train.activation == "relu" and train.solver == "adam"
    assert {_sklearn.ACTIVATIONS[name] for name in _cli.ACTIVATIONS} == set(_registry.ACTIVATIONS)
    assert set(_cli.SOLVERS) == {*_registry.OPTIMIZERS, "lbfgs"}
    constraints = _sklearn.MLPClassifier._parameter_constraints
    assert constraints["activation"][0].options == set(_cli.ACTIVATIONS)
    assert constraints["solver"][0].options == set(_cli.SOLVERS)
