"""How the scikit-learn estimators train: scikit-learn's objective and bookkeeping,
expressed through the model layer's one training loop.

scikit-learn minimises, per batch of n_b rows (or of total sample weight n_b),

    c * L + 0.5 * alpha * sum(W**2) / n_b

where L is fastmlp's loss (PyTorch's conventions). scikit-learn's gradient is that of
c * L + ..., with c the factor between the two: the number of outputs for log-loss with
logistic outputs (scikit-learn sums the per-output means, fastmlp averages them), half
the number of outputs for squared error (scikit-learn halves it and, in its gradient,
sums over outputs: its reported loss averages them, so there c_loss = 0.5 != c), 1 for
softmax. Dividing by c gives fastmlp's objective L + 0.5 * l2 * sum(W**2) with
l2 = alpha / (c * n_b); its gradient is scikit-learn's divided by c, so SGD takes
lr = c * learning_rate_init and Adam (invariant to the gradient's scale but for epsilon)
epsilon / c, which makes every step scikit-learn's. Losses are reported on
scikit-learn's scale.

Exact where every batch has the same n_b (n divisible by batch_size, or full batch:
L-BFGS, RPROP) and the rate is constant; a smaller last batch gets the l2 of a full one.
"""

import copy
import dataclasses
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils.fixes import _get_additional_lbfgs_options_dict   # iprint only where SciPy still takes it
from sklearn.utils.optimize import _check_optimize_result             # n_iter_ and scikit-learn's warning

from . import _registry, _training
from ._errors import DivergenceError
from ._spec import Optimizer, inverse_scaling
from ._validation import check_sample_weight

STOCHASTIC = tuple(_registry.OPTIMIZERS)     # the solvers besides "lbfgs"
MIN_ADAPTIVE_LR = 1e-6      # scikit-learn's "adaptive" stops below this rate
ADAPTIVE_FACTOR = 5.0       # ... and otherwise divides the rate by this
NON_FINITE = ("Solver produced non-finite parameter weights. The input data may contain large values and "
              "need to be preprocessed.")


def loss_scales(out_activation, n_outputs, loss=None):
    """(c, c_loss): scikit-learn's gradient, and its reported data loss, divided by fastmlp's
    (`loss`: fastmlp's name, None for the output's own). The losses scikit-learn's MLP does
    not have (huber, mae, quantile) are reported and trained as fastmlp's: (1, 1)."""
    if out_activation == "identity" and loss not in (None, "mse"):
        return 1.0, 1.0
    if out_activation == "identity":
        return 0.5 * n_outputs, 0.5
    if out_activation in ("logistic", "exp"):     # sums of per-output means; no 0.5 factor
        return float(n_outputs), float(n_outputs)
    return 1.0, 1.0


def report(est, net, params, loss):
    """scikit-learn's loss from fastmlp's (`loss` of `net`, with its l2 penalty at `params`):
    the data loss scaled by c_loss, the penalty by c. Exact but where c != c_loss
    (multi-output regression) with alpha > 0, where the penalty is taken at `params` (the
    epoch's end) rather than at each batch."""
    c, c_loss = est._loss_scale, est._loss_report
    if c == c_loss:
        return c * loss
    if not net.l2:          # (alpha=0, or adamw's decoupled decay): the data loss alone
        return c_loss * loss
    penalty = 0.5 * net.l2 * sum(float(np.dot(W.ravel(), W.ravel())) for W in net.unflatten(params)[0])
    return c_loss * (loss - penalty) + c * penalty


def objective(est, mlp, n_batch, weight_mean):
    """The Network trained on: `mlp`'s with scikit-learn's alpha as fastmlp's l2 for batches
    of `n_batch` rows of mean raw sample weight `weight_mean` (adamw: decoupled decay instead),
    and the estimator's dropout."""
    if est.solver == "adamw":
        return dataclasses.replace(mlp._net, l2=0.0, dropout=est.dropout)
    l2 = est.alpha / (est._loss_scale * n_batch * weight_mean)
    return dataclasses.replace(mlp._net, l2=float(l2), dropout=est.dropout)


def optimizer(est, lr):
    """The fastmlp Optimizer for `est`'s solver at scikit-learn rate `lr`."""
    c, name = est._loss_scale, est.solver
    if name == "sgd":
        return Optimizer("sgd", c * lr, momentum=est.momentum,
                         nesterov=bool(est.nesterovs_momentum and est.momentum > 0))
    if name == "rprop":
        return Optimizer("rprop", lr)
    return Optimizer(name, lr, beta1=est.beta_1, beta2=est.beta_2, eps=est.epsilon / c,
                     weight_decay=est.alpha if name == "adamw" else 0.01)


class Unchanged:
    """``with Unchanged(est):`` a fit or partial_fit that raises leaves the estimator `est` as
    it was: its attributes (added, rebound), the lists it appends to (loss_curve_,
    validation_scores_), the network's weights, the optimizer's state, step count and rate,
    and a RandomState given as random_state. DivergenceError is the exception: as
    scikit-learn's, the estimator keeps the iterations before the divergence."""

    def __init__(self, est):
        self.est, self.attributes = est, dict(vars(est))
        self.lists = {key: list(value) for key, value in self.attributes.items() if isinstance(value, list)}
        mlp, run = self.attributes.get("_mlp"), self.attributes.get("_run")
        self.params = None if mlp is None else mlp._params.copy()
        self.run = None if run is None else (dict(vars(run)), run.state.copy(), copy.copy(run.optimizer))
        random_state = est.random_state
        self.random_state = random_state.get_state() if isinstance(random_state, np.random.RandomState) else None

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if kind is None or issubclass(kind, DivergenceError):
            return False
        vars(self.est).clear()
        vars(self.est).update(self.attributes)
        for key, values in self.lists.items():
            self.attributes[key][:] = values
        if self.params is not None:
            self.attributes["_mlp"]._params[...] = self.params
        if self.run is not None:
            run, (attributes, state, optimizer) = self.attributes["_run"], self.run
            vars(run).clear()
            vars(run).update(attributes)
            run.state[...] = state
            vars(run.optimizer).update(vars(optimizer))
        if self.random_state is not None:
            self.est.random_state.set_state(self.random_state)
        return False


class SklearnOrder:
    """The rows of each epoch in scikit-learn's order from its RandomState: each epoch
    permutes the previous epoch's order (``sklearn.utils.shuffle`` on the index array)."""

    def __init__(self, random_state, n):
        self.random_state, self.order = random_state, np.arange(n)

    def shuffle(self, out):
        self.random_state.shuffle(out)          # out arrives as arange(n)
        out[...] = self.order[out]
        self.order = out.copy()


class SklearnRate:
    """The rate `_training.run_fit` reads (schedule "sklearn"): fastmlp's rate for
    scikit-learn's current one."""

    def __init__(self, est):
        self.est, self.factor = est, est._loss_scale if est.solver == "sgd" else 1.0
        self.base = self.rate(0)

    def rate(self, epochs_done):
        return self.factor * self.est._learning_rate


def batch_size(est, n):
    if est.solver == "rprop":
        return n
    if est.batch_size == "auto":
        return min(200, n)
    if est.batch_size > n:
        warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
    return int(np.clip(est.batch_size, 1, n))


def split(est, X, Y, w, random_state):
    """(X, Y, w) to train on and (X, y, w, Y) to score on, as scikit-learn splits them (y the
    labels or values, Y the network's targets)."""
    if not est.early_stopping:
        return (X, Y, w), None
    stratify = Y.astype(bool) if est._is_classifier and est.n_outputs_ == 1 else None
    arrays = (X, Y) if w is None else (X, Y, w)
    parts = train_test_split(*arrays, random_state=random_state, test_size=est.validation_fraction,
                             stratify=stratify)
    train, val = parts[0::2], parts[1::2]
    if val[0].shape[0] < 2:
        raise ValueError("The validation set is too small. Increase 'validation_fraction' or the size of "
                         "your dataset.")
    if w is None:
        train, val = (*train, None), (*val, None)
    return train, (val[0], est._decode(val[1]), val[2], val[1])


class Hook:
    """Our extras' per-epoch report (`_progress.EpochReport`: callback, progress bar) for
    one estimator fit, restart number `restart`: called with scikit-learn's epoch
    record, it returns False when the callback asked to stop."""

    def __init__(self, report, restart):
        self.report, self.restart = report, restart

    def __call__(self, est, loss, lr=None):
        scores = est.validation_scores_ if est.solver != "lbfgs" else None
        extra = {"val_score": float(scores[-1])} if scores else {}
        losses = getattr(est, "validation_loss_curve_", None) if scores else None
        return self.report(est.n_iter_ - 1, loss, losses[-1] if losses else None, lr, self.restart, **extra)


def fit_stochastic(est, X, Y, w, incremental, random_state, hook=None, stop=None):
    """scikit-learn's ``_fit_stochastic`` on the model layer: `_training.run_fit` (as
    ``MLP.fit``) with scikit-learn's rate and bookkeeping between epochs (`EpochWatch`). `stop`
    (a threading.Event, restarts): once set, the loop ends before its next batch."""
    if est.early_stopping and incremental:
        raise ValueError("partial_fit does not support early_stopping=True")
    mlp = est._mlp
    (X_train, Y_train, w_train), validation = split(est, X, Y, w, random_state)
    n = X_train.shape[0]
    size = batch_size(est, n)
    weight_mean = 1.0 if w_train is None else float(np.mean(w_train))
    net = objective(est, mlp, size, weight_mean)
    run = est._run if incremental and est._run is not None else None
    if run is None or run.optimizer.name != est.solver:
        est._learning_rate = est.learning_rate_init
        run = _training.Run(mlp._params, optimizer(est, est._learning_rate), None)
        if net.has_dropout:     # (drawn only then: without dropout, random_state's stream is scikit-learn's)
            run.dropout_key = int(random_state.randint(0, 2**63, dtype=np.int64))
        est._run = run
    run.params, run.history, run.diverged = mlp._params, {"loss": [], "val_loss": []}, None
    run.rng = SklearnOrder(random_state, n) if est.shuffle else None
    job = _training.FitJob(
        X=X_train, Y=Y_train, w=check_sample_weight(w_train, n, mlp.dtype), X_val=None, Y_val=None,
        optimizer=run.optimizer, epochs=1 if incremental else est.max_iter, batch_size=size,
        shuffle=est.shuffle, schedule="sklearn", power_t=est.power_t, early_stopping=False, patience=1,
        tol=est.tol, n_restarts=1, warm_start=incremental)
    watch = EpochWatch(est, n, validation, lambda loss: report(est, net, mlp._params, loss), hook)
    est.n_iter_ = 0
    try:
        _training.run_fit(mlp._impl, net, [run], job, stop=stop, watch=watch, rate=SklearnRate(est))
    except KeyboardInterrupt:
        warnings.warn("Training interrupted by user.")
    if est.early_stopping:
        mlp._params[...] = est._best_params     # finite: a diverged fit keeps its best epoch, as scikit-learn
    elif run.diverged is not None:
        raise DivergenceError(f"{NON_FINITE} (fastmlp: iteration {est.n_iter_ + 1} diverged; the model keeps "
                              "the weights of the iterations before it)")


class EpochWatch:
    """scikit-learn's end-of-epoch steps: loss_curve_, no-improvement count (training loss, or
    validation score with early stopping), best weights, the "invscaling" and "adaptive"
    rates, stopping, and ConvergenceWarning at max_iter. Called with fastmlp's epoch loss;
    returns False to stop. With early stopping, also our validation_loss_curve_: the
    held-out data loss on scikit-learn's scale (weighted by the held-out sample weights; no
    alpha penalty), and the score is `scoring`'s when given."""

    def __init__(self, est, n_train, validation, report, hook=None):
        self.est, self.n_train, self.validation, self.report, self.hook = est, n_train, validation, report, hook
        if validation is not None:
            X_val, _, w_val, Y_val = validation
            X_val, Y_val = est._mlp._check_Xy(X_val, Y_val)          # (checked once, read every epoch)
            self.held_out = X_val, Y_val, check_sample_weight(w_val, X_val.shape[0], est._mlp.dtype)
            self.score = est._validation_scorer()

    def validation_loss(self):
        mlp = self.est._mlp
        X_val, Y_val, w_val = self.held_out
        return self.est._loss_report * float(mlp._impl.loss_gradient(mlp._net, mlp._params, X_val, Y_val, None,
                                                                     w_val))

    def __call__(self, loss):
        est = self.est
        est.n_iter_ += 1
        est.loss_ = self.report(loss)
        est.t_ += self.n_train
        est.loss_curve_.append(est.loss_)
        if est.verbose:
            print("Iteration %d, loss = %.8f" % (est.n_iter_, est.loss_))
        self.update_no_improvement_count()
        if self.hook is not None and not self.hook(est, est.loss_, est._learning_rate):
            return False
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            est._learning_rate = inverse_scaling(est.learning_rate_init, est.t_, est.power_t)
        if est._no_improvement_count > est.n_iter_no_change:
            if not self.trigger_stopping():
                return False
            est._no_improvement_count = 0
        if est.n_iter_ == est.max_iter:
            warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the optimization "
                          "hasn't converged yet." % est.max_iter, ConvergenceWarning)
        return True

    def update_no_improvement_count(self):
        est = self.est
        if self.validation is not None:
            X_val, y_val, w_val, _ = self.validation
            if getattr(est, "validation_loss_curve_", None) is not None:
                est.validation_loss_curve_.append(self.validation_loss())
            score = self.score(X_val, y_val, w_val)
            est.validation_scores_.append(score)
            if est.verbose:
                print("Validation score: %f" % score)
            worse = score < est.best_validation_score_ + est.tol
            est._no_improvement_count = est._no_improvement_count + 1 if worse else 0
            if score > est.best_validation_score_:
                est.best_validation_score_ = score
                est._best_params = est._mlp._params.copy()
        else:
            worse = est.loss_curve_[-1] > est.best_loss_ - est.tol
            est._no_improvement_count = est._no_improvement_count + 1 if worse else 0
            est.best_loss_ = min(est.best_loss_, est.loss_curve_[-1])

    def trigger_stopping(self):
        """True to go on (the "adaptive" rate divided by 5), False to stop."""
        est = self.est
        what = "Validation score" if self.validation is not None else "Training loss"
        msg = f"{what} did not improve more than tol={est.tol:f} for {est.n_iter_no_change} consecutive epochs."
        if est.solver != "sgd" or est.learning_rate != "adaptive":
            if est.verbose:
                print(msg + " Stopping.")
            return False
        if est._learning_rate <= MIN_ADAPTIVE_LR:
            if est.verbose:
                print(msg + " Learning rate too small. Stopping.")
            return False
        est._learning_rate /= ADAPTIVE_FACTOR
        if est.verbose:
            print(msg + " Setting learning rate to %f" % est._learning_rate)
        return True


def fit_lbfgs(est, X, Y, w, hook=None, stop=None):
    """scikit-learn's L-BFGS fit through the model layer's L-BFGS (SciPy's L-BFGS-B on the
    flat parameters): full batch, so the alpha scaling is exact. SciPy gets scikit-learn's
    limits (maxiter=max_iter, maxfun=max_fun) and gradient tolerance (tol, divided by c as
    the gradient is), and its printing when verbose; n_iter_ and the ConvergenceWarning
    come from SciPy's result as scikit-learn reads them. `stop` (restarts): once set, the
    fit ends after the current iteration."""
    mlp = est._mlp
    weight_mean = 1.0 if w is None else float(np.mean(w))
    net = objective(est, mlp, X.shape[0], weight_mean)
    w = check_sample_weight(w, X.shape[0], mlp.dtype)
    run = _training.Run(mlp._params, "lbfgs", None)
    iprint = 1 if est.verbose is True or est.verbose >= 1 else -1
    options = {"maxfun": est.max_fun, "gtol": est.tol / est._loss_scale,
               **_get_additional_lbfgs_options_dict("iprint", iprint)}
    job = _training.FitJob(
        X=X, Y=Y, w=w, X_val=None, Y_val=None, optimizer="lbfgs", epochs=est.max_iter, batch_size=X.shape[0],
        shuffle=False, schedule="sklearn", power_t=0.5, early_stopping=False, patience=1, tol=est.tol,
        n_restarts=1, warm_start=False, lbfgs_options=options)
    stopped = []

    def watch(loss):
        if stop is not None and stop.is_set():
            return False
        if hook is None:
            return True
        est.n_iter_ = len(run.history["loss"])
        if not hook(est, report(est, net, mlp._params, loss)):
            stopped.append(est.n_iter_)
        return not stopped

    _training.run_fit(mlp._impl, net, [run], job, watch=watch)
    result = job.lbfgs_result
    # stopped by our callback: no ConvergenceWarning, the stop was asked for
    est.n_iter_ = stopped[0] if stopped else _check_optimize_result("lbfgs", result, est.max_iter)
    if run.diverged is not None:
        raise DivergenceError(NON_FINITE)
    est.loss_ = report(est, net, mlp._params, float(mlp._impl.loss_gradient(net, mlp._params, X, Y, None, w)))
