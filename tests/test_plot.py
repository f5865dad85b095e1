"""fastmlp.plot: the loss curve and the decision boundary, drawn with the Agg backend to PNG
files, for MLP and the scikit-learn estimators."""

import subprocess
import sys
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.contour import ContourSet

import fastmlp
from fastmlp import plot

from _support import XOR_X, XOR_Y


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def saved(ax, tmp_path, name="plot.png"):
    path = tmp_path / name
    ax.figure.savefig(path)
    assert path.stat().st_size > 1000 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return path


def xor_net(backend, epochs=300):
    net = fastmlp.MLP([2, 4, 1], activation="tanh", seed=1, backend=backend)
    return net.fit(XOR_X, XOR_Y, epochs=epochs, lr=0.5)


def contours(ax):
    return [c for c in ax.collections if isinstance(c, ContourSet)]


def scatter_points(ax):
    """Every point drawn by scatter, in drawing order."""
    offsets = [c.get_offsets() for c in ax.collections if not isinstance(c, ContourSet)]
    return np.concatenate(offsets) if offsets else np.empty((0, 2))


def same_rows(a, b):
    return sorted(map(tuple, np.asarray(a, dtype=float))) == sorted(map(tuple, np.asarray(b, dtype=float)))


# ================================================================== loss curve


def test_loss_curve_of_an_mlp_draws_the_training_and_validation_loss(backend, tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 3))
    y = (X[:, 0] > 0).astype(float)
    net = fastmlp.MLP([3, 6, 1], seed=0, backend=backend).fit(X, y, epochs=25, lr=0.1, validation_fraction=0.25)
    ax = plot.loss_curve(net)
    assert isinstance(ax, matplotlib.axes.Axes)
    lines = {line.get_label(): line for line in ax.lines}
    assert set(lines) == {"training loss", "validation loss"}
    np.testing.assert_array_equal(lines["training loss"].get_ydata(), net.history_["loss"])
    np.testing.assert_array_equal(lines["validation loss"].get_ydata(), net.history_["val_loss"])
    np.testing.assert_array_equal(lines["training loss"].get_xdata(), np.arange(1, 26))
    assert ax.get_xlabel() == "epoch" and ax.get_ylabel() == "loss"
    saved(ax, tmp_path)


def test_loss_curve_draws_on_the_given_axes_and_goes_logarithmic_over_two_decades():
    net = xor_net("numpy", epochs=2000)
    _, ax = plt.subplots()
    assert plot.loss_curve(net, ax=ax) is ax
    assert [line.get_label() for line in ax.lines] == ["training loss"]
    assert ax.get_yscale() == "log"       # XOR's loss falls from ~0.7 to < 0.007


def test_loss_curve_of_an_estimator_puts_the_validation_score_on_its_own_axis(backend, tmp_path):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 2))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    clf = fastmlp.MLPClassifier((8,), max_iter=20, early_stopping=True, n_iter_no_change=50, random_state=0,
                                learning_rate_init=0.01, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    ax = plot.loss_curve(clf)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), clf.loss_curve_)
    assert [line.get_label() for line in ax.lines] == ["training loss", "validation loss"]
    np.testing.assert_array_equal(ax.lines[1].get_ydata(), clf.validation_loss_curve_)
    twin = [other for other in ax.figure.axes if other is not ax and other.lines]
    assert len(twin) == 1 and twin[0].get_ylabel() == "validation accuracy"
    np.testing.assert_array_equal(twin[0].lines[0].get_ydata(), clf.validation_scores_)
    saved(ax, tmp_path)
    clf.set_params(scoring="balanced_accuracy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    ax = plot.loss_curve(clf)
    assert [other for other in ax.figure.axes if other is not ax][0].get_ylabel() == "validation balanced_accuracy"
    no_split = fastmlp.MLPClassifier((8,), max_iter=5, random_state=0, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        no_split.fit(X, y)
    ax = plot.loss_curve(no_split)
    assert [line.get_label() for line in ax.lines] == ["training loss"] and len(ax.figure.axes) == 1


def test_loss_curve_refuses_models_without_a_history():
    with pytest.raises(ValueError, match="no training history"):
        plot.loss_curve(fastmlp.MLP([2, 3, 1]))
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match="not fitted"):
        plot.loss_curve(fastmlp.MLPRegressor())
    lbfgs = fastmlp.MLPRegressor(hidden_layer_sizes=(3,), solver="lbfgs", max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lbfgs.fit(XOR_X, XOR_Y[:, 0])
    with pytest.raises(ValueError, match="loss_curve_"):
        plot.loss_curve(lbfgs)


# ================================================================== decision boundary


def test_decision_boundary_of_xor_shows_the_probability_and_the_four_points(backend, tmp_path):
    net = xor_net(backend)
    ax = plot.decision_boundary(net, XOR_X, XOR_Y)
    (contour,) = contours(ax)
    assert contour.levels[0] == 0.0 and contour.levels[-1] == 1.0       # P(1) from 0 to 1
    assert same_rows(scatter_points(ax), XOR_X)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["0", "1"]
    x0, x1 = ax.get_xlim()
    assert x0 < 0 and x1 > 1                          # the grid covers the points with a margin
    saved(ax, tmp_path)


def test_decision_boundary_of_a_classifier_with_text_labels(backend, tmp_path):
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(2)
    X = pd.DataFrame(rng.standard_normal((90, 2)), columns=["height", "weight"])
    y = np.array(["bird", "cat", "dog"])[(X["height"] > 0).astype(int) + (X["weight"] > 0.5).astype(int)]
    clf = fastmlp.MLPClassifier((8,), max_iter=30, random_state=0, learning_rate_init=0.02, backend=backend)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                # ConvergenceWarning after 30 epochs
        clf.fit(X, y)
    _, ax = plt.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # no "X does not have valid feature names"
        assert plot.decision_boundary(clf, X, y, ax=ax) is ax
    (contour,) = contours(ax)
    assert list(contour.levels) == [-0.5, 0.5, 1.5, 2.5]                 # one band per class
    assert same_rows(scatter_points(ax), X.to_numpy())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["bird", "cat", "dog"]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("height", "weight")
    saved(ax, tmp_path)


def test_decision_boundary_of_a_regressor(tmp_path):
    pytest.importorskip("sklearn")
    rng = np.random.default_rng(3)
    X = rng.uniform(-1, 1, (60, 2))
    y = X[:, 0] - 2 * X[:, 1]
    reg = fastmlp.MLPRegressor(hidden_layer_sizes=(8,), solver="lbfgs", max_iter=50, random_state=0).fit(X, y)
    ax = plot.decision_boundary(reg, X, y)
    (contour,) = contours(ax)
    assert contour.levels[0] <= min(y.min(), 0) and contour.levels[-1] >= y.max()
    assert same_rows(scatter_points(ax), X)
    saved(ax, tmp_path)


def test_decision_boundary_refuses_what_it_cannot_draw():
    net = xor_net("numpy", epochs=5)
    with pytest.raises(ValueError, match="2 feature columns"):
        plot.decision_boundary(fastmlp.MLP([3, 2, 1]), np.zeros((4, 3)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="4 rows but y has 3"):
        plot.decision_boundary(net, XOR_X, [0, 1, 1])
    with pytest.raises(ValueError, match="not one of the model's classes"):
        plot.decision_boundary(net, XOR_X, [0, 1, 2, 0])
    with pytest.raises(ValueError, match="one output"):
        plot.decision_boundary(fastmlp.MLP([2, 3, 2]), XOR_X, [0, 1, 1, 0])


# ================================================================== matplotlib is optional


@pytest.mark.slow     # (a subprocess)
def test_import_fastmlp_and_fastmlp_plot_do_not_import_matplotlib():
    code = ("import sys, fastmlp, fastmlp.plot; assert fastmlp.plot.loss_curve; "
            "assert 'matplotlib' not in sys.modules, 'matplotlib imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr


def test_plots_without_matplotlib_say_how_to_install_it(monkeypatch):
    net = xor_net("numpy", epochs=5)
    monkeypatch.setitem(sys.modules, "matplotlib", None)        # import matplotlib -> ImportError
    for draw in (lambda: plot.loss_curve(net), lambda: plot.decision_boundary(net, XOR_X, XOR_Y)):
        with pytest.raises(ImportError, match=r"pip install 'fastmlp\[plot\]'"):
            draw()
