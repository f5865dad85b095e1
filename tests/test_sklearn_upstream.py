"""scikit-learn's own tests of its MLP estimators, run against ours.

The installed scikit-learn ships ``sklearn/neural_network/tests/test_mlp.py``; this test
copies it to a temporary directory with its import of MLPClassifier/MLPRegressor swapped
for fastmlp's and runs it with pytest in a child process, on each backend (through
FASTMLP_BACKEND, which the estimators' backend="auto" honours). Nothing of scikit-learn's
is kept in this repository. The tests deselected below are each named with the reason.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")

from _support import BACKENDS  # noqa: E402

UPSTREAM = Path(sklearn.__file__).parent / "neural_network" / "tests" / "test_mlp.py"
IMPORT = re.compile(r"^from sklearn\.neural_network import MLPClassifier, MLPRegressor$", re.MULTILINE)

DESELECTED = {
    "test_fit": "hand-sets scikit-learn's private internals (_coef_grads, velocities) on an unfitted estimator",
    "test_gradient": "calls scikit-learn's private _backprop and _loss_grad_lbfgs",
    "test_learning_rate_warmstart": "reads scikit-learn's private _optimizer",
    "test_adaptive_learning_rate": "reads scikit-learn's private _optimizer",
}


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_sklearn_mlp_tests_pass_against_fastmlp(backend, tmp_path):
    if not UPSTREAM.is_file():
        pytest.skip(f"scikit-learn's tests are not installed ({UPSTREAM})")
    source, swaps = IMPORT.subn("from fastmlp import MLPClassifier, MLPRegressor", UPSTREAM.read_text())
    assert swaps == 1, f"scikit-learn's import of its MLP estimators not found in {UPSTREAM}"
    target = tmp_path / "test_mlp_against_fastmlp.py"
    target.write_text(source)
    # scikit-learn's own conftest gives its tests `global_random_seed` (42 unless its
    # SKLEARN_TESTS_GLOBAL_RANDOM_SEED says otherwise); the copy outside its tree needs it too
    (tmp_path / "conftest.py").write_text(
        "import pytest\n\n\n@pytest.fixture\ndef global_random_seed():\n    return 42\n")
    expression = " and ".join(f"not {name}" for name in DESELECTED)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", "-k", expression,
         str(target)],
        cwd=tmp_path, env={**os.environ, "FASTMLP_BACKEND": backend}, capture_output=True, text=True,
        timeout=900)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0 and " passed" in summary and "failed" not in summary, (
        result.stdout[-6000:] + result.stderr[-2000:])
