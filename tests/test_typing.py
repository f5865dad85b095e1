"""The public API is annotated: a typed user script passes ``mypy --strict`` against the
installed fastmlp, with ``fit`` seen returning the model (not ``Any``), and the script runs."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mypy")
pytest.importorskip("sklearn")
pytest.importorskip("onnx")
pytest.importorskip("matplotlib")

SCRIPT = Path(__file__).parent / "typing" / "user_script.py"


@pytest.mark.slow
def test_user_script_passes_mypy_strict(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", "--cache-dir", str(tmp_path / "cache"),
         "--hide-error-context", str(SCRIPT)],
        capture_output=True, text=True, cwd=tmp_path, timeout=600)
    output = result.stdout + result.stderr
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
