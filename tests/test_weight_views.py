"""``coefs_`` and ``intercepts_`` of ``MLP`` and of the estimators: views into the flat
parameters, and assigning to them (an item, a slice or the whole list) takes effect, as
in scikit-learn, once every value is checked (issue 21, item 6)."""

import copy
import pickle
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import fastmlp
from fastmlp import MLPClassifier, MLPRegressor


def models(backend, dtype):
    """A fitted MLP and both fitted estimators, layers 3-4-2 (the classifier: 3-4-3)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3)).astype(dtype)
    mlp = fastmlp.MLP([3, 4, 2], output="identity", seed=0, dtype=dtype, backend=backend)
    mlp.fit(X, rng.standard_normal((30, 2)), epochs=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=2, random_state=0, backend=backend)
        reg.fit(X, rng.standard_normal((30, 2)))
        clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=2, random_state=0, backend=backend)
        clf.fit(X, np.arange(30) % 3)
    return X, [mlp, reg, clf]


def predict(model, X):
    return model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)


def test_item_assignment_takes_effect(backend, dtype):
    X, all_models = models(backend, dtype)
    for model in all_models:
        params = model.params_ if isinstance(model, fastmlp.MLP) else model._mlp.params_
        W = np.arange(12, dtype=np.float64).reshape(3, 4) / 10
        model.coefs_[0] = W
        model.intercepts_[-1] = np.ones(model.intercepts_[-1].shape, dtype=np.float32)
        assert model.coefs_[0].dtype == dtype and np.shares_memory(model.coefs_[0], params)
        np.testing.assert_array_equal(model.coefs_[0], W.astype(dtype))
        np.testing.assert_array_equal(model.intercepts_[-1], 1)
        views = model.coefs_              # the list one holds keeps the model's views
        views[1] = np.zeros_like(views[1])
        assert np.shares_memory(views[1], params) and not model.coefs_[1].any()
        np.testing.assert_allclose(predict(model, X), predict(model, X[:1]).repeat(len(X), 0), rtol=1e-6)
        model.coefs_[0][:] = 0.5          # writing into a view still writes through
        assert (model.coefs_[0] == 0.5).all()


def test_whole_list_assignment_takes_effect(backend, dtype):
    X, all_models = models(backend, dtype)
    for model in all_models:
        model.coefs_ = [np.zeros(W.shape) for W in model.coefs_]
        model.intercepts_ = [np.full(b.shape, 2.0) for b in model.intercepts_]
        assert all(not W.any() for W in model.coefs_) and all((b == 2).all() for b in model.intercepts_)
        model.coefs_[0:1] = [np.ones(model.coefs_[0].shape)]
        assert (model.coefs_[0] == 1).all()


@pytest.mark.parametrize("assign, error, message", [
    (lambda m: m.coefs_.__setitem__(0, np.zeros((4, 3))), ValueError, r"coefs_\[0\] must have shape \(3, 4\), got \(4, 3\)"),
    (lambda m: m.coefs_.__setitem__(-1, 0.0), ValueError, r"coefs_\[1\] must have shape \(4, \d\), got \(\)"),
    (lambda m: m.intercepts_.__setitem__(0, [1.0, np.nan, 0, 0]), ValueError, r"intercepts_\[0\] holds NaN"),
    (lambda m: m.coefs_.__setitem__(0, np.full((3, 4), 1e300)), ValueError, None),   # float32: overflows
    (lambda m: m.coefs_.__setitem__(0, np.full((3, 4), "a")), TypeError, r"coefs_\[0\] must hold real numbers"),
    (lambda m: m.coefs_.__setitem__(5, np.zeros((3, 4))), IndexError, None),
    (lambda m: setattr(m, "coefs_", [np.ones((3, 4))]), ValueError, r"coefs_: 2 arrays expected"),
    (lambda m: setattr(m, "intercepts_", [np.ones(4), np.ones(7)]), ValueError, r"intercepts_\[1\] must have shape"),
    (lambda m: m.coefs_.append(np.ones((3, 4))), TypeError, "length and order cannot change"),
    (lambda m: m.coefs_.pop(), TypeError, "length and order cannot change"),
    (lambda m: m.coefs_.reverse(), TypeError, "length and order cannot change"),
    (lambda m: m.intercepts_.__delitem__(0), TypeError, "length and order cannot change"),
], ids=["shape", "scalar", "nan", "overflow", "text", "index", "list-length", "list-shape", "append", "pop",
        "reverse", "del"])
def test_bad_assignments_are_refused_and_change_nothing(assign, error, message, backend, dtype):
    _, all_models = models(backend, dtype)
    for model in all_models:
        before = [a.copy() for a in model.coefs_ + model.intercepts_]
        if message is None and error is ValueError and dtype == np.float64:
            continue      # (1e300 fits in float64)
        with pytest.raises(error, match=message):
            assign(model)
        for a, b in zip(model.coefs_ + model.intercepts_, before):
            np.testing.assert_array_equal(a, b)


def test_copies_are_plain_lists_detached_from_the_model(backend):
    _, all_models = models(backend, np.float64)
    for model in all_models:
        for copied in (copy.copy(model.coefs_), copy.deepcopy(model.coefs_), model.coefs_.copy(),
                       pickle.loads(pickle.dumps(model.coefs_))):
            assert type(copied) is list and len(copied) == 2
            np.testing.assert_array_equal(copied[0], model.coefs_[0])
        deep = copy.deepcopy(model.coefs_)
        deep[0][...] = 7.0
        assert not (model.coefs_[0] == 7.0).any()
        joined = model.coefs_ + model.intercepts_        # concatenation: a plain list of the views
        assert type(joined) is list and len(joined) == 4 and joined[0] is not None


def test_unfitted_estimator_has_no_weights_to_set():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MLPRegressor().coefs_ = [np.zeros((3, 4))]
