"""The public API is annotated: a typed user script passes ``mypy --strict`` against the
installed fastmlp, with ``fit`` seen returning the model (not ``Any``), and the script runs;
every option name is a ``Literal`` equal to the list the library checks it against, so a
misspelt one (``optimizer="adma"``) is a type error; ``dir(fastmlp)`` shows the public names."""

import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

import fastmlp
from fastmlp import _backend, _blas, _initializers, _registry, _training, _typing, _validation

SCRIPT = Path(__file__).parent / "typing" / "user_script.py"


def literal_names(alias):
    """The strings of a Literal type, or of the Literals in a union."""
    names = []
    for arg in typing.get_args(alias) or (alias,):
        names += [a for a in typing.get_args(arg) if isinstance(a, str)] if typing.get_origin(arg) is typing.Literal \
            else [arg] if isinstance(arg, str) else []
    return names


@pytest.mark.parametrize("alias, names", [
    (_typing.Activation, _registry.ACTIVATIONS),
    (_typing.Output, _registry.OUTPUTS),
    (_typing.Loss, _registry.LOSSES),
    (_typing.Optimizer, _training.FIT_OPTIMIZERS),
    (_typing.Init, _initializers.INITS),
    (_typing.Schedule, _training.SCHEDULES),
    (_typing.Backend, ("auto", *_backend.BACKENDS)),
    (_typing.Threads, _training.THREADS),
    (_typing.Monitor, _training.MONITORS),
    (_typing.Blas, _blas.NAMES),
    (_typing.BlasName, tuple(n for n in _blas.NAMES if n != "auto")),
    (_typing.DType, tuple(d.name for d in _validation.FLOAT_DTYPES)),
], ids=lambda v: getattr(v, "__name__", None) if not isinstance(v, (tuple, dict)) else "names")
def test_each_literal_lists_exactly_the_names_the_library_accepts(alias, names):
    assert sorted(literal_names(alias)) == sorted(names)


def test_the_estimators_literals_match_their_parameter_constraints():
    pytest.importorskip("sklearn")
    from fastmlp import _sklearn

    constraints = fastmlp.MLPRegressor._parameter_constraints
    for alias, key in [(_typing.EstimatorActivation, "activation"), (_typing.Solver, "solver"),
                       (_typing.LearningRate, "learning_rate"), (_typing.RegressorLoss, "loss")]:
        options = next(c for c in constraints[key] if hasattr(c, "options")).options
        assert sorted(literal_names(alias)) == sorted(options), key
    assert sorted(literal_names(_typing.EstimatorActivation)) == sorted(_sklearn.ACTIVATIONS)


def test_the_public_names_are_all_and_dir():
    assert set(fastmlp.__all__) <= set(dir(fastmlp))
    assert [n for n in dir(fastmlp) if n.startswith("_") and n != "__version__"] == []
    assert set(dir(fastmlp)) == {*fastmlp.__all__, "plot"}
    for name in fastmlp.__all__:
        if name in ("MLPClassifier", "MLPRegressor", "to_onnx"):
            continue  # their optional packages are tested in test_extras.py
        assert getattr(fastmlp, name) is not None


@pytest.mark.slow
def test_the_version_is_written_in_one_place():
    """pyproject.toml reads the version from fastmlp.__version__ (and writes none itself)."""
    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.is_file():
        pytest.skip("pyproject.toml is not beside the tests")
    text = pyproject.read_text()
    assert re.search(r"^version\s*=\s*[\"']", text, re.MULTILINE) is None    # no version written here
    assert 'version = { attr = "fastmlp.__version__" }' in text
    from importlib import metadata
    try:
        installed = metadata.version("fastmlp")
    except metadata.PackageNotFoundError:
        return
    assert installed == fastmlp.__version__ or "site-packages" not in fastmlp.__file__


def mypy(tmp_path, script):
    """Run ``mypy --strict`` on `script` against the fastmlp that the tests import (its source
    directory on MYPYPATH unless it is an installed package); returns (exit code, output)."""
    pytest.importorskip("mypy")
    env = dict(os.environ)
    parent = Path(fastmlp.__file__).resolve().parents[1]
    if parent.name not in ("site-packages", "dist-packages"):
        env["MYPYPATH"] = str(parent)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
         "--follow-imports=silent", "--hide-error-context", str(script)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600, env=env)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.slow
def test_a_misspelt_option_is_a_type_error(tmp_path):
    script = tmp_path / "typo.py"
    script.write_text("import fastmlp\n"
                      "net = fastmlp.MLP([2, 4, 1], activation='leaky_relu', backend='numpy')\n"
                      "net.fit([[0.0, 1.0]], [1.0], optimizer='adma')\n"
                      "fastmlp.MLP([2, 1], activation='relu', output='softmax', init='he', dtype='float32')\n"
                      "fastmlp.set_blas('openblas')\n"
                      "fastmlp.MLP([2, 1], output='sigmod')\n")
    code, output = mypy(tmp_path, script)
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert code != 0
    assert [line.split(":")[1] for line in errors] == ["3", "5", "6"], output
    assert "'adma'" in errors[0] and "'openblas'" in errors[1] and "'sigmod'" in errors[2], output


@pytest.mark.slow
def test_user_script_passes_mypy_strict(tmp_path):
    for module in ("sklearn", "onnx", "matplotlib"):
        pytest.importorskip(module)
    code, output = mypy(tmp_path, SCRIPT)
    result = type("Result", (), {"returncode": code})
    errors = [line for line in output.splitlines() if ": error:" in line]
    assert result.returncode == 0 and not errors, output
    revealed = re.findall(r":(\d+): note: Revealed type is \"([^\"]+)\"", output)
    lines = SCRIPT.read_text().splitlines()
    assert len(revealed) == sum("# expect:" in line for line in lines) == 6, output
    for number, found in revealed:
        expected = lines[int(number) - 1].split("# expect:")[1].strip()
        assert found.rsplit(".", 1)[-1] == expected, f"line {number}: mypy sees {found}, not {expected}"


@pytest.mark.slow
def test_user_script_runs(tmp_path):
    source = SCRIPT.read_text().replace("reveal_type(", "print(")
    script = tmp_path / "user_script.py"
    script.write_text(source)
    result = subprocess.run([sys.executable, "-W", "ignore", str(script)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "xor.npz").exists()
