"""scikit-learn's own estimator checks (``check_estimator``) on both estimators and both
backends, with and without dropout. No check is expected to fail without dropout:
`EXPECTED_FAILED` names any that would, with the reason, and is empty today (sparse input,
not supported yet, is declared through the estimators' tags, so the sparse checks expect
the error scikit-learn prescribes); `DROPOUT_FAILED`, the two that dropout fails by design.
"""

import pytest

pytest.importorskip("sklearn")

from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastmlp import MLPClassifier, MLPRegressor  # noqa: E402

from _support import BACKENDS  # noqa: E402

EXPECTED_FAILED = {}   # {check name: reason}
# With dropout, a row given weight 2 draws one mask per step where the same row repeated
# twice draws two: the fits differ by design (as they do in PyTorch).
DROPOUT_FAILED = {
    name: "dropout draws one mask per row: a repeated row and a row of weight 2 see different masks"
    for name in ("check_sample_weight_equivalence_on_dense_data", "check_sample_weight_equivalence_on_sparse_data")
}


@pytest.mark.slow
@parametrize_with_checks(
    [Est(backend=backend, **options) for backend in BACKENDS for Est in (MLPClassifier, MLPRegressor)
     for options in ({}, {"dropout": 0.2})],
    expected_failed_checks=lambda est: {**EXPECTED_FAILED, **(DROPOUT_FAILED if est.dropout else {})},
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
