"""Bad input raises a clear ValueError/TypeError before any work, and the model is unchanged."""

import copy

import numpy as np
import pytest

import fastmlp
from _support import XOR_X, XOR_Y

X, Y = XOR_X, XOR_Y.ravel()


def snapshot(net):
    return net.params_.copy(), copy.deepcopy(net.history_), net.n_iter_


@pytest.fixture
def trained(backend):
    return fastmlp.MLP([2, 4, 1], seed=0, backend=backend).fit(X, Y, epochs=3, lr=0.1)


BAD_FIT = [
    # (X, y, kwargs, error, message fragment)
    (X[:, :1], Y, {}, ValueError, "features"),
    (X.ravel(), Y, {}, ValueError, "2-D"),
    (X[None], Y, {}, ValueError, "2-D"),
    (np.empty((0, 2)), np.empty(0), {}, ValueError, "empty"),
    (X, Y[:3], {}, ValueError, "samples"),
    (X, np.ones((4, 2)), {}, ValueError, "shape"),
    (X, np.ones((4, 1, 1)), {}, ValueError, "shape"),
    (np.where(X == 1, np.nan, X), Y, {}, ValueError, "NaN"),
    (np.where(X == 1, np.inf, X), Y, {}, ValueError, "NaN or infinity"),
    (X, np.array([0, 1, np.nan, 0]), {}, ValueError, "NaN"),
    (X, np.array([0, 1, 2, 0]), {}, ValueError, r"\{0, 1\}"),
    (X, np.array([0, 0.5, 1, 0]), {}, ValueError, r"\{0, 1\}"),
    (X.astype(str), Y, {}, TypeError, "real numbers"),
    (X.astype(complex), Y, {}, TypeError, "real numbers"),
    (X.astype(object), Y, {}, TypeError, "real numbers"),
    (X, Y.astype(str), {}, TypeError, "real numbers"),
    ("abcd", Y, {}, TypeError, "string"),
    (X, Y, {"epochs": -1}, ValueError, "epochs"),
    (X, Y, {"epochs": 2.5}, TypeError, "epochs"),
    (X, Y, {"lr": 0}, ValueError, "lr"),
    (X, Y, {"lr": float("nan")}, ValueError, "lr"),
    (X, Y, {"lr": "fast"}, TypeError, "lr"),
    (X, Y, {"batch_size": 0}, ValueError, "batch_size"),
    (X, Y, {"batch_size": "big"}, ValueError, "batch_size"),
    (X, Y, {"shuffle": "yes"}, TypeError, "shuffle"),
    (X, Y, {"warm_start": 1}, TypeError, "warm_start"),
]


@pytest.mark.parametrize("Xb, yb, kwargs, error, match", BAD_FIT)
def test_bad_fit_raises_and_leaves_model(trained, Xb, yb, kwargs, error, match):
    before = snapshot(trained)
    with pytest.raises(error, match=match):
        trained.fit(Xb, yb, **kwargs)
    after = snapshot(trained)
    np.testing.assert_array_equal(after[0], before[0])
    assert after[1:] == before[1:]


@pytest.mark.parametrize("Xb, yb, kwargs, error, match", [c for c in BAD_FIT if not c[2]])
def test_bad_data_for_loss_and_gradients(trained, Xb, yb, kwargs, error, match):
    before = trained.params_.copy()
    with pytest.raises(error, match=match):
        trained.loss(Xb, yb)
    with pytest.raises(error, match=match):
        trained.gradients(Xb, yb)
    np.testing.assert_array_equal(trained.params_, before)


@pytest.mark.parametrize(
    "Xb, error",
    [(X[:, :1], ValueError), (np.empty((0, 2)), ValueError), (X.astype(str), TypeError), (np.full((1, 2), np.nan), ValueError)],
)
def test_bad_predict_input(trained, Xb, error):
    with pytest.raises(error):
        trained.predict_proba(Xb)
    with pytest.raises(error):
        trained.predict(Xb)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"layer_sizes": [2]}, ValueError, "at least"),
        ({"layer_sizes": [2, 0, 1]}, ValueError, ">= 1"),
        ({"layer_sizes": [2, 3.5, 1]}, TypeError, "integer"),
        ({"layer_sizes": [2, True, 1]}, TypeError, "integer"),
        ({"layer_sizes": "21"}, TypeError, "sequence"),
        ({"layer_sizes": 3}, TypeError, "sequence"),
        ({"activation": "swish"}, ValueError, "activation"),
        ({"activation": ["leaky_relu", "leaky_relu"]}, ValueError, "hidden layers"),
        ({"output": "softplus"}, ValueError, "output"),
        ({"loss": "mse"}, ValueError, "loss"),
        ({"negative_slope": float("inf")}, ValueError, "negative_slope"),
        ({"negative_slope": "0.1"}, TypeError, "negative_slope"),
        ({"init": "xavier"}, ValueError, "init"),
        ({"init_scale": 0.1}, ValueError, "init_scale"),
        ({"init": "normal", "init_scale": -1}, ValueError, "init_scale"),
        ({"seed": -1}, ValueError, "seed"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"dtype": "float16"}, ValueError, "dtype"),
        ({"dtype": "int64"}, ValueError, "dtype"),
        ({"backend": "fortran"}, ValueError, "backend"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    args = {"layer_sizes": [2, 4, 1], **kwargs}
    with pytest.raises(error, match=match):
        fastmlp.MLP(**args)


def test_backend_entry_points_check_their_arrays(backend):
    """Raw backend functions refuse buffers that would make compiled code read out of bounds."""
    from _support import backend_module, train
    from fastmlp._spec import Network, Optimizer

    mod = backend_module(backend)
    model = fastmlp.MLP([2, 4, 1], seed=0, backend=backend)
    net, params = model._net, model.params_
    with pytest.raises(ValueError, match="params"):
        mod.loss_gradient(net, params[:-1].copy(), X, XOR_Y)
    with pytest.raises(TypeError, match="Network"):
        mod.loss_gradient((2, 4, 1), params, X, XOR_Y)
    with pytest.raises(ValueError, match="features"):
        mod.predict_proba(net, params, X[:, :1], np.empty((4, 1)))
    with pytest.raises(ValueError, match="out must have shape"):
        mod.predict_proba(net, params, X, np.empty((3, 1)))
    with pytest.raises(ValueError, match="Y must have shape"):
        mod.loss_gradient(net, params, X, XOR_Y[:2])
    with pytest.raises(ValueError, match="losses"):
        train(backend, model, params.copy(), X, XOR_Y, epochs=5, batch_size=4, losses=np.empty(4))
    with pytest.raises(ValueError, match="batch_size"):
        train(backend, model, params.copy(), X, XOR_Y, epochs=5, batch_size=0)
    with pytest.raises(ValueError, match="state must have shape"):
        train(backend, model, params.copy(), X, XOR_Y, epochs=5, batch_size=4, state=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="full batches"):
        train(backend, model, params.copy(), X, XOR_Y, epochs=5, batch_size=2, optimizer=Optimizer("rprop"))
    with pytest.raises(TypeError, match="callback"):
        train(backend, model, params.copy(), X, XOR_Y, epochs=5, batch_size=4, callback="print")
    with pytest.raises(TypeError, match="rng"):
        train(backend, model, params.copy(), X, XOR_Y, epochs=5, batch_size=4, rng=42)
    with pytest.raises(TypeError, match="optimizer"):
        train(backend, model, params.copy(), X, XOR_Y, epochs=5, batch_size=4, optimizer={"name": "sgd"})
    changed = Optimizer()
    changed.lr = -1.0    # a description changed after it was made is checked again
    with pytest.raises(ValueError, match="lr"):
        train(backend, model, params.copy(), X, XOR_Y, epochs=5, batch_size=4, optimizer=changed)
    with pytest.raises(TypeError, match="positional"):   # beyond the data, by keyword only
        mod.train(net, params.copy(), X, XOR_Y, Optimizer(), np.zeros((1, 17)), np.empty(5), 5, 4)
    with pytest.raises(TypeError, match="grad must have dtype"):
        mod.loss_gradient(net, params.astype(np.float32), X, XOR_Y, np.empty(17))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"activations": ("swish",)}, ValueError, "activation"),
        ({"activations": ("relu", "relu")}, ValueError, "hidden layers"),
        ({"output": "softmax"}, ValueError, "at least 2 units"),
        ({"output": "softplus"}, ValueError, "output"),
        ({"loss": "mse"}, ValueError, "goes with loss"),
        ({"loss": "hinge"}, ValueError, "loss"),
        ({"negative_slope": "0.1"}, TypeError, "negative_slope"),
        ({"l2": -1.0}, ValueError, "l2"),
        ({"sizes": (2, 0, 1)}, ValueError, ">= 1"),
    ],
)
def test_network_description_checks_match_the_model(kwargs, error, match):
    """The backends' Network and the MLP constructor share one set of checks: the same bad
    value raises the same exception with the same message in both."""
    from fastmlp._spec import Network

    args = {"sizes": (2, 4, 1), "activations": ("relu",), "output": "sigmoid", **kwargs}
    with pytest.raises(error, match=match) as direct:
        Network(**args)
    model_args = {"layer_sizes": args.pop("sizes"), "activation": args.pop("activations"), **args}
    with pytest.raises(error) as via_model:
        fastmlp.MLP(**model_args)
    assert str(via_model.value) == str(direct.value)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"name": "adagrad"}, ValueError, "unknown optimizer 'adagrad'.*must be one of 'sgd', 'adam'"),
        ({"lr": 0}, ValueError, "lr must be > 0, got 0"),
        ({"lr": "fast"}, TypeError, "lr"),
        ({"momentum": 1.5}, ValueError, r"^momentum must be in \[0, 1\], got 1.5$"),
        ({"momentum": -0.1}, ValueError, r"^momentum must be in \[0, 1\], got -0.1$"),
        ({"momentum": 10**400}, ValueError, "momentum must be finite"),
        ({"nesterov": True}, ValueError, r"^nesterov needs momentum > 0, got momentum=0.0$"),
        ({"nesterov": "yes"}, TypeError, "nesterov"),
        ({"beta1": 1.0}, ValueError, r"^beta1 must be in \[0, 1\), got 1.0$"),
        ({"beta2": 2}, ValueError, r"^beta2 must be in \[0, 1\), got 2.0$"),
        ({"eps": 0}, ValueError, r"^eps must be > 0, got 0.0$"),
        ({"weight_decay": -0.1}, ValueError, r"^weight_decay must be >= 0, got -0.1$"),
        ({"weight_decay": float("nan")}, ValueError, "weight_decay"),
    ],
)
def test_optimizer_description_checks_match_fit(kwargs, error, match):
    """Optimizer and MLP.fit share one set of checks for the optimizer's settings; each
    message names the setting and its value, not the whole Optimizer."""
    from fastmlp._spec import Optimizer

    with pytest.raises(error, match=match) as direct:
        Optimizer(**kwargs)
    fit_args = {("optimizer" if k == "name" else k): v for k, v in kwargs.items()}
    with pytest.raises(error, match=match) as via_fit:
        fastmlp.MLP([2, 4, 1], seed=0).fit(X, Y, epochs=1, **fit_args)
    assert direct.type is error
    assert "Optimizer(" not in str(direct.value) + str(via_fit.value)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "rprop", "etaplus": 0.9}, r"^etaplus must be > 1 \(rprop's step growth\), got 0.9$"),
        ({"name": "rprop", "etaminus": 1.0}, r"^etaminus must be in \(0, 1\) \(rprop's step shrink\), got 1.0$"),
        ({"name": "rprop", "step_min": 0}, r"^step_min must be > 0, got 0.0$"),
        ({"name": "rprop", "step_min": 2.0, "step_max": 1.0}, r"^step_max must be >= step_min \(2.0\), got 1.0$"),
        ({"t": 2**63}, r"^t must be at most 2\*\*62"),
    ],
)
def test_rprop_and_step_count_messages_name_the_setting_and_value(kwargs, match):
    from fastmlp._spec import Optimizer

    with pytest.raises(ValueError, match=match):
        Optimizer(**kwargs)


@pytest.mark.parametrize("momentum", [0.0, 0.5, 1.0])
def test_momentum_takes_scikit_learns_range(backend, dtype, momentum):
    """momentum is in [0, 1] for MLP as for the estimators (scikit-learn's range): 1.0, a
    velocity that never decays, trains like any other value, in both backends."""
    rng = np.random.default_rng(0)
    data = rng.standard_normal((64, 3))
    target = (data[:, 0] > 0).astype(float)
    net = fastmlp.MLP([3, 5, 1], seed=0, dtype=dtype, backend=backend)
    net.fit(data, target, epochs=4, lr=0.01, batch_size=16, momentum=momentum, nesterov=momentum > 0)
    assert len(net.history_["loss"]) == 4 and np.isfinite(net.history_["loss"]).all()
    assert np.isfinite(net.params_).all()


def test_estimators_take_momentum_one():
    """scikit-learn's momentum range is [0, 1]; MLPClassifier(solver="sgd", momentum=1.0) fits."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(0)
    data = rng.standard_normal((60, 4))
    labels = rng.integers(0, 3, 60)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for nesterov in (True, False):
            clf = fastmlp.MLPClassifier((5,), solver="sgd", momentum=1.0, nesterovs_momentum=nesterov,
                                        learning_rate_init=1e-3, max_iter=3, random_state=0).fit(data, labels)
            assert clf.predict(data).shape == (60,) and np.isfinite(clf.loss_curve_).all()


def test_settings_are_read_only(backend):
    """Settings are fixed at construction, so training and saving cannot disagree."""
    net = fastmlp.MLP([2, 4, 1], seed=0, backend=backend)
    for name, value in [("activation", "tanh"), ("layer_sizes", (2, 1)), ("output", "identity"), ("l2", 1.0),
                        ("negative_slope", 0.5), ("seed", 3), ("dtype", np.float32), ("backend", "numpy")]:
        with pytest.raises(AttributeError):
            setattr(net, name, value)
    assert net.activation == "leaky_relu" and net.l2 == 0.0


def test_cython_backend_missing_is_an_error_not_a_fallback(monkeypatch):
    """backend="cython" where the module cannot import raises; "auto" warns and uses NumPy."""
    import sys
    import warnings

    from fastmlp import _backend

    monkeypatch.setitem(sys.modules, "fastmlp._core", None)  # makes `import fastmlp._core` fail
    monkeypatch.setattr(_backend, "_warned_fallback", False)
    monkeypatch.delenv("FASTMLP_BACKEND", raising=False)
    with pytest.raises(ImportError, match="'cython' backend is not available"):
        fastmlp.MLP([2, 1], backend="cython")
    assert fastmlp.available_backends() == ("numpy",)
    with pytest.warns(RuntimeWarning, match="NumPy backend"):
        assert fastmlp.MLP([2, 1]).backend == "numpy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fastmlp.MLP([2, 1]).backend == "numpy"  # warned once only


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_labels_check_agrees_with_numpy(dtype):
    """Targets hold only 0 and 1 exactly when NumPy says so: near misses (1 +- ulp, tiny
    and negative values, -0.0), in C order and transposed (the compiled loop takes only the
    former; the latter goes to NumPy)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from fastmlp._validation import _binary

    near = [0.0, -0.0, 1.0, float(np.nextafter(dtype(1), dtype(2))), float(np.nextafter(dtype(1), dtype(0))),
            float(np.finfo(dtype).smallest_subnormal), -1.0, 2.0]

    @settings(max_examples=150, deadline=None)
    @given(arrays(dtype, st.tuples(st.integers(0, 7), st.integers(1, 5)), elements=st.sampled_from(near)),
           st.booleans())
    def check(Y, transpose):
        Y = Y.T if transpose else Y
        assert _binary(Y) == bool(np.isin(Y, [0, 1]).all())

    check()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_agrees_with_the_elementwise_test(dtype):
    """The BLAS sum-of-squares shortcut (and the compiled loop for small 2-D arrays) answers
    exactly as np.isfinite(...).all(): for finite values whose squares overflow, a lone NaN
    or infinity anywhere, and odd layouts."""
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    from fastmlp._validation import all_finite

    @settings(max_examples=200, deadline=None)
    @given(arrays(dtype, st.tuples(st.integers(0, 9), st.integers(1, 9)),
                  elements=st.floats(width=32 if dtype == np.float32 else 64, allow_nan=True, allow_infinity=True)),
           st.booleans())
    def check(a, transpose):
        a = a.T if transpose else a
        assert all_finite(a) == bool(np.isfinite(a).all())

    check()
    huge = np.full((3, 5), np.finfo(dtype).max / 2, dtype)
    assert all_finite(huge)
    huge[2, 4] = -np.inf
    assert not all_finite(huge)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [8191, 8192, 8193, 3 * 8192 + 5])
def test_all_finite_across_its_one_thread_chunks(dtype, size):
    """Arrays up to ONE_THREAD_MAX elements go to ?dot in 8192-element chunks: a NaN or an
    infinity in any chunk (first, last, at a chunk's edge) is found, and huge finite values
    whose squares overflow are not mistaken for one."""
    from fastmlp._validation import ONE_THREAD_CHUNK, all_finite

    a = np.random.default_rng(size).standard_normal(size).astype(dtype)
    assert all_finite(a)
    for i in {0, min(ONE_THREAD_CHUNK - 1, size - 1), min(ONE_THREAD_CHUNK, size - 1), size - 1}:
        for bad in (np.nan, np.inf, -np.inf):
            b = a.copy()
            b[i] = bad
            assert not all_finite(b)
        b = a.copy()
        b[i] = np.finfo(dtype).max
        assert all_finite(b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("loss, output, n_out", [("bce", "sigmoid", 1), ("bce", "sigmoid", 2), ("mse", "identity", 1),
                                                 ("poisson", "exp", 1), ("cross_entropy", "softmax", 3)])
def test_reshaping_the_callers_arrays_changes_nothing_in_the_models(dtype, loss, output, n_out):
    model = fastmlp.MLP([3, 4, n_out], output=output, loss=loss, dtype=dtype, seed=0)
    X, y = np.zeros((4, 3), dtype), np.zeros(4 * n_out, dtype).reshape(4, n_out)
    if loss == "cross_entropy":
        y[:, 0] = 1
    Xc, Yc = model._check_Xy(X, y)
    X.shape, y.shape = (3, 4), (n_out, 4)
    assert Xc.shape == (4, 3) and Yc.shape == (4, n_out)


BEYOND_FLOAT32 = r"has values beyond float32's range \(\|{}\| up to 1e\+39; float32 holds at most 3\.403e\+38\)"


@pytest.mark.parametrize("sparse", [False, True])
def test_float32_model_says_finite_input_is_beyond_its_range(backend, sparse):
    """float64 X, y or sample weights that are finite but beyond float32's range: X and y
    are refused for what they are (not "NaN or infinity"), without NumPy's overflow warning,
    before any work; sample weights are scaled by their largest, so they train."""
    import warnings

    import scipy.sparse

    rng = np.random.default_rng(0)
    data = rng.standard_normal((20, 3))
    target = (data[:, 0] > 0).astype(float)
    big = data.copy()
    big[3, 1] = 1e39
    if sparse:
        big = scipy.sparse.csr_matrix(big)
    net = fastmlp.MLP([3, 4, 1], dtype="float32", seed=0, backend=backend)
    before = net.params_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for call in (lambda: net.fit(big, target, epochs=1), lambda: net.predict(big),
                     lambda: net.loss(big, target)):
            with pytest.raises(ValueError, match=BEYOND_FLOAT32.format("X") + ": scale X or use dtype='float64'"):
                call()
        regression = fastmlp.MLP([3, 4, 1], output="identity", dtype="float32", seed=0, backend=backend)
        with pytest.raises(ValueError, match=BEYOND_FLOAT32.format("y")):
            regression.fit(data, np.where(target > 0, 1e39, 0.0), epochs=1)
    np.testing.assert_array_equal(net.params_, before)
    with pytest.raises(ValueError, match="X contains NaN or infinity"):
        net.fit(np.where(data > 1, np.inf, data), target, epochs=1)
    net.fit(data, target, epochs=1, sample_weight=np.where(target > 0, 1e39, 1.0))
    assert np.isfinite(net.params_).all()


def test_float64_model_takes_what_float32_cannot_hold():
    data = np.full((4, 2), 1e39)
    assert np.isfinite(fastmlp.MLP([2, 3, 1], output="identity", seed=0).predict(data)).all()


@pytest.mark.parametrize("output", ["sigmoid", "identity"])
def test_integer_class_labels_without_softmax_get_a_hint(output):
    """A new user's first try: 1-D integer labels for 3 outputs that are not softmax."""
    labels = np.arange(100) % 3
    with pytest.raises(ValueError, match=r"y must have shape \(100, 3\) for 3 output\(s\), got \(100,\); "
                                         r"class labels 0\.\.2 in a 1-D y need output='softmax'"):
        fastmlp.MLP([8, 16, 3], output=output).fit(np.zeros((100, 8)), labels, epochs=1)
    fastmlp.MLP([8, 16, 3], output="softmax").fit(np.zeros((100, 8)), labels, epochs=1)


@pytest.mark.parametrize("power_t", [400, 400.0, 1e300])
def test_invscaling_with_a_huge_power_t_runs_its_rate_down_to_zero(backend, power_t):
    """lr / (epoch + 1) ** power_t once the power is beyond a float: the rate it tends to
    (0.0), not a bare OverflowError; MLP and the scikit-learn estimators alike."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from fastmlp._spec import inverse_scaling

    assert inverse_scaling(0.1, 0, power_t) == 0.1 and inverse_scaling(0.1, 9, power_t) == 0.0
    assert inverse_scaling(1e300, 10**9, 40) == pytest.approx(1e300 / 1e360, rel=1e-9)
    assert inverse_scaling(0.1, 9, 0.5) == 0.1 / 10**0.5
    net = fastmlp.MLP([2, 4, 1], seed=0, backend=backend)
    net.fit(X, Y, epochs=5, lr=0.1, lr_schedule="invscaling", power_t=power_t)
    assert len(net.history_["loss"]) == 5 and np.isfinite(net.params_).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = fastmlp.MLPClassifier((4,), solver="sgd", learning_rate="invscaling", power_t=power_t,
                                    max_iter=3, random_state=0, backend=backend).fit(X, Y)
    assert clf._learning_rate == 0.0


def test_power_t_must_be_at_least_zero():
    with pytest.raises(ValueError, match="power_t must be >= 0, got -1.0"):
        fastmlp.MLP([2, 1]).fit(X, Y, epochs=1, lr_schedule="invscaling", power_t=-1.0)
