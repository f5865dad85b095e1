"""`python -m fastmlp xor`, the README's main job."""

import os
import subprocess
import sys

import pytest


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "fastmlp", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


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


def test_xor_command_default_backend_honours_env():
    result = run("xor", "--epochs", "10", env={"FASTMLP_BACKEND": "numpy"})
    assert result.returncode == 0, result.stderr
    assert "backend: numpy" in result.stdout


def test_xor_command_bad_arguments():
    assert run("xor", "--epochs", "-3").returncode == 2
    assert "epochs" in run("xor", "--epochs", "-3").stderr
    assert run("xor", "--backend", "fortran").returncode == 2
    assert run().returncode == 2
