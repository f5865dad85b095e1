"""The compiled module's type stub (_core.pyi) matches what the module exports."""

import subprocess
import sys
from pathlib import Path

import pytest
from _support import backend_module


@pytest.mark.slow
def test_stub_matches_compiled_module():
    backend_module("cython")  # (skips on a pure-Python install)
    allowlist = Path(__file__).with_name("stubtest_allowlist.txt")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "fastmlp._core", "--allowlist", str(allowlist)],
        capture_output=True, text=True, cwd=Path(__file__).parent, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
