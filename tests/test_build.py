"""setup.py builds the compiled backend where a C compiler works, and a pure-Python package
(one warning, no extension) where none does or FASTMLP_PURE_PYTHON=1 asks for it; an error in
the extension's own code with a working compiler still fails the build.

Each build is of a one-function stand-in for ``_core.pyx`` in a scratch copy of setup.py, so
it takes seconds. Needs Cython and setuptools (build requirements, not test ones): skipped
where they or setup.py are absent (an installed wheel's tests).
"""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "setup.py"
WARNING = "WARNING: fastmlp is being built WITHOUT its compiled backend"

pytestmark = pytest.mark.skipif(not SETUP.is_file(), reason="setup.py is not beside the tests (an installed wheel)")


def build(tmp_path, pyx, **env):
    """Run ``setup.py build_ext --inplace`` on a package whose _core.pyx is `pyx`; returns the
    completed process and the compiled module's path (None when none was built)."""
    pytest.importorskip("Cython")
    pytest.importorskip("setuptools")
    package = tmp_path / "src" / "fastmlp"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "_core.pyx").write_text(pyx)
    shutil.copy(SETUP, tmp_path / "setup.py")
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "fastmlp"\nversion = "0"\n\n[tool.setuptools]\n'
                                             'packages = ["fastmlp"]\npackage-dir = { "" = "src" }\n')
    environ = {k: v for k, v in os.environ.items() if k not in ("CC", "CXX", "FASTMLP_PURE_PYTHON")}
    environ.update(env)
    done = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=600)
    built = package / ("_core" + sysconfig.get_config_var("EXT_SUFFIX"))
    return done, built if built.exists() else None


def needs_compiler():
    cc = os.environ.get("CC", "cc").split()[0]
    if os.name != "nt" and shutil.which(cc) is None:
        pytest.skip(f"no C compiler ({cc}) on this machine")


GOOD = "def answer():\n    return 42\n"
BROKEN = 'cdef extern from *:\n    """\n    #error fastmlp_deliberate_compile_error\n    """\n' + GOOD


def test_a_working_compiler_builds_the_extension(tmp_path):
    needs_compiler()
    done, built = build(tmp_path, GOOD)
    assert done.returncode == 0, done.stderr
    assert built is not None and WARNING not in done.stderr


def test_an_error_in_the_extension_fails_the_build_with_a_working_compiler(tmp_path):
    needs_compiler()
    done, built = build(tmp_path, BROKEN)
    assert done.returncode != 0
    assert "fastmlp_deliberate_compile_error" in done.stdout + done.stderr
    assert built is None and WARNING not in done.stderr


@pytest.mark.skipif(os.name == "nt", reason="CC does not choose the compiler on Windows")
def test_no_working_compiler_builds_pure_python_with_one_warning(tmp_path):
    done, built = build(tmp_path, BROKEN, CC="/bin/false", CXX="/bin/false")
    assert done.returncode == 0, done.stderr
    assert built is None
    assert done.stderr.count(WARNING) == 1 and "no working C compiler" in done.stderr
    assert "pip install fastmlp" in done.stderr


def test_fastmlp_pure_python_forces_the_pure_build(tmp_path):
    done, built = build(tmp_path, GOOD, FASTMLP_PURE_PYTHON="1")
    assert done.returncode == 0, done.stderr
    assert built is None
    assert done.stderr.count(WARNING) == 1 and "FASTMLP_PURE_PYTHON is set" in done.stderr
