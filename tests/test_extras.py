"""Every optional part, used without the package it needs, raises an ImportError that names
the extra to install. Each case runs in a child process where the package is made
unimportable (a ``None`` entry in ``sys.modules``), so the test needs nothing uninstalled."""

import subprocess
import sys
import textwrap

import pytest

CASES = {
    # name: (modules made unimportable, code, the text the ImportError must carry)
    "MLPClassifier": (["sklearn"], "from fastmlp import MLPClassifier", "pip install 'fastmlp[sklearn]'"),
    "MLPRegressor": (["sklearn"], "import fastmlp; fastmlp.MLPRegressor", "pip install 'fastmlp[sklearn]'"),
    "plot": (["matplotlib"], "import fastmlp; fastmlp.plot.loss_curve(fastmlp.MLP([2, 1]))",
             "pip install 'fastmlp[plot]'"),
    "to_onnx": (["onnx"], "import fastmlp; fastmlp.to_onnx(fastmlp.MLP([2, 1], backend='numpy'))",
                "pip install 'fastmlp[onnx]'"),
    "progress": (["tqdm", "tqdm.auto"],
                 "import numpy as np, fastmlp\n"
                 "fastmlp.MLP([2, 1], backend='numpy').fit(np.zeros((4, 2)), np.zeros(4), epochs=1, progress=True)",
                 "pip install 'fastmlp[progress]'"),
    "set_blas": (["fastmlp._core"], "import fastmlp; fastmlp.set_blas('scipy')", "pip install"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_missing_optional_package_names_its_extra(case):
    modules, code, hint = CASES[case]
    child = (f"import sys\nfor name in {modules!r}:\n    sys.modules[name] = None  # import name: ImportError\n"
             f"try:\n{textwrap.indent(code, '    ')}\nexcept ImportError as exc:\n    print('ImportError:', exc)\n"
             "else:\n    print('no ImportError')\n")
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", child], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ImportError:") and hint in done.stdout, done.stdout


def test_an_import_error_inside_the_estimators_is_not_disguised(monkeypatch):
    """Only scikit-learn's absence becomes the install hint: another ImportError passes as it is."""
    child = ("import sys; sys.modules['fastmlp._sklearn_train'] = None\n"
             "try:\n    from fastmlp import MLPClassifier\n"
             "except ImportError as exc:\n    print(exc)\n")
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=300)
    assert "fastmlp._sklearn_train" in done.stdout and "fastmlp[sklearn]" not in done.stdout, done.stdout
