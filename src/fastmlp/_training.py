"""Training orchestration, written once over either backend.

`FitJob` is one ``fit`` call with every option checked and the data split, before any
work; `make_runs` sets up its runs (a warm start continues the last one; restarts get their
own initialisation and stream); `run_fit`, the one way into training for ``MLP.fit`` and
the scikit-learn estimators alike, trains them (restarts in threads) and hands the best to
the model. Each run owns its `Optimizer`, optimizer state, `Schedule` and
`Monitor`; the backends' ``train`` runs the epochs and calls back between them.
"""

import copy
import functools
import math
import numbers
import os
import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np

from ._errors import DivergenceError
from ._registry import FULL_BATCH, OPTIMIZERS
from ._blas import blas_threads, fit_running
from ._spec import BLAS_INT_MAX, CHECKED, Optimizer, check_norm_batches, inverse_scaling
from ._validation import all_finite, choice, flag, integer, real

FIT_OPTIMIZERS = (*OPTIMIZERS, "lbfgs")
SCHEDULES = ("constant", "invscaling", "plateau")     # fit(lr_schedule=)
# and, for `run_fit` only, "sklearn": the caller's rate and end-of-epoch steps (the estimators)
RUN_SCHEDULES = (*SCHEDULES, "sklearn")
THREADS = ("auto",)    # fit(threads=): see _blas.blas_threads
MONITORS = ("loss", "val_loss")   # fit(monitor=): these, or a callable score
MODES = ("min", "max")
PLATEAU_FACTOR, PLATEAU_PATIENCE = 0.2, 2   # "plateau": lr / 5 after 2 epochs without progress
# Epochs per backend call at first (then doubling): the loss buffer follows the epochs run,
# not the epochs asked for, when early stopping ends a fit of epochs=10**8.
FIRST_CHUNK = 1 << 16


def _copy_history(history):
    """New lists of a history's (immutable) floats."""
    return {key: list(values) for key, values in history.items()}


class Run:
    """One training run: parameters, optimizer (an `Optimizer`, or "lbfgs") and its state,
    shuffling stream, dropout key (its masks: see ``_spec``) and history."""

    def __init__(self, params, optimizer, rng, history=None, dropout_key=0):
        self.params, self.optimizer, self.rng, self.dropout_key = params, optimizer, rng, dropout_key
        # the optimizer's state: the rows its registry entry declares (L-BFGS keeps none here)
        self.state = (optimizer.new_state(params) if isinstance(optimizer, Optimizer)
                      else np.zeros((0, len(params)), dtype=params.dtype))
        self.history = _copy_history(history) if history else {"loss": [], "val_loss": []}
        self.history_start = None    # set by copy(share_history=True)
        self.owner = None            # id of the model that committed this run (make_runs)
        self.best = None
        self.last = None         # the last epoch's monitored value (lower is better), None before one
        self.diverged = None     # the epoch (counted over warm starts) whose loss was not finite

    def continues(self, optimizer):
        """Whether a warm start with `optimizer` continues this run's optimizer state."""
        if isinstance(optimizer, str) or isinstance(self.optimizer, str):
            return optimizer == self.optimizer
        return (optimizer.name == self.optimizer.name
                and optimizer.hyperparameters() == self.optimizer.hyperparameters())

    def copy(self, share_history=False):
        """A copy to train on. With `share_history` (a warm start) its history is this run's
        own lists, appended in place, so a fit costs its new epochs only, not the epochs the
        model trained before; `rewind` takes those lists back if the fit is not committed."""
        new = copy.copy(self)
        new.params, new.state = self.params.copy(), self.state.copy()
        new.optimizer, new.rng = copy.copy(self.optimizer), copy.deepcopy(self.rng)
        if share_history:
            new.history_start = {key: len(values) for key, values in self.history.items()}
        else:
            new.history = _copy_history(self.history)
        return new

    def rewind(self):
        """Shared history lists (`copy`) back to their length when this run began."""
        for key, length in (getattr(self, "history_start", None) or {}).items():
            del self.history[key][length:]

    def score(self):
        """The restarts' ranking key (lower is better): the best (early stopping) or last
        monitored value (a score to maximise negated), with diverged runs and non-finite
        values after every finite one."""
        value = self.best
        if value is None:
            value = getattr(self, "last", None)      # (None in a Run pickled before it had one)
        if value is None:
            losses = self.history["val_loss"] or self.history["loss"]
            value = losses[-1] if losses else math.inf
        return (self.diverged is not None, value if math.isfinite(value) else math.inf)


class Schedule:
    """Each epoch's learning rate from the base rate: "constant"; "invscaling",
    lr / (epochs + 1) ** power_t with epochs counted over warm starts; "plateau", lr times
    PLATEAU_FACTOR after every PLATEAU_PATIENCE epochs without an improvement."""

    def __init__(self, kind, lr, power_t):
        self.kind, self.base, self.power_t = kind, lr, power_t
        self.factor, self.waited = 1.0, 0

    def rate(self, epochs_done):
        if self.kind == "invscaling":
            return inverse_scaling(self.base, epochs_done, self.power_t)
        # the base rate itself while unchanged: the optimizer then skips checking it again
        return self.base if self.factor == 1.0 else self.base * self.factor

    def observe(self, improved):
        if self.kind != "plateau":
            return
        self.waited = 0 if improved else self.waited + 1
        if self.waited >= PLATEAU_PATIENCE:   # (never below 1e-30 of the base: lr stays > 0)
            self.factor, self.waited = max(self.factor * PLATEAU_FACTOR, 1e-30), 0


class Monitor:
    """The monitored value, lower is better (a score to maximise is negated): its best value,
    epochs since it improved by `tol`, and (for early stopping) the weights of the best
    epoch. With `skip_nan` (a callable's score), a NaN value is never an improvement."""

    def __init__(self, early_stopping, patience, tol, skip_nan=False):
        self.early_stopping, self.patience, self.tol, self.skip_nan = early_stopping, patience, tol, skip_nan
        self.best, self.best_params, self.waited = None, None, 0

    def update(self, loss, params):
        """Record one epoch's monitored value; True when it improved."""
        if self.skip_nan and loss != loss:
            self.waited += 1
            return False
        if self.best is None or loss < self.best - self.tol:
            self.best, self.waited = loss, 0
            if self.early_stopping:
                self.best_params = params.copy()
            return True
        self.waited += 1
        return False

    @property
    def exhausted(self):
        return self.early_stopping and self.waited >= self.patience


@dataclass
class FitJob:
    """One fit's checked options and data (X_val, Y_val None without validation)."""

    X: np.ndarray
    Y: np.ndarray
    w: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    optimizer: object          # an Optimizer, or "lbfgs"
    epochs: int
    batch_size: int
    shuffle: bool
    schedule: str
    power_t: float
    early_stopping: bool
    patience: int
    tol: float
    n_restarts: int
    warm_start: bool
    lbfgs_options: dict = None  # SciPy L-BFGS-B options besides maxiter (maxfun, gtol, ...); None: SciPy's
    report: object = None       # a _progress.EpochReport (callback, progress bar), or None
    lbfgs_result: object = None  # set by run_fit: SciPy's L-BFGS-B result of the best run (L-BFGS)
    # fit(monitor=): "loss", "val_loss" (the default with validation data) or a callable score, which
    # `score(params)` (set by the model: it knows how to read params as a model) evaluates; mode
    # "min" or "max", the direction in which the monitored value improves
    monitor: object = None
    mode: str = "min"
    score: object = None
    # X (dense), Y, w: arrays a model's fit checked, of its own (no caller can reshape them), and
    # the runs make_runs' (params, state, optimizer their own): trained without checking again
    checked: bool = False

    def __post_init__(self):
        choice(self.schedule, "schedule", RUN_SCHEDULES)

    @property
    def per_epoch_report(self):
        return self.report is not None and self.report.active


def fit_job(X, Y, w, check_data, seed, *, epochs, optimizer, batch_size, shuffle, warm_start, lr_schedule,
            power_t, validation_data, validation_fraction, early_stopping, patience, tol, n_restarts,
            threads="auto", checked=False, monitor=None, mode=None):
    """Check a fit's options (X, Y, w already checked; `optimizer` made by `fit_optimizer`)
    and split off its validation data. `checked`: X, Y, w are the model's own (see
    FitJob.checked). A callable `monitor` needs the job's `score` set before training (the
    model sets it)."""
    epochs = integer(epochs, "epochs", 0)
    if not (optimizer == "lbfgs" or isinstance(optimizer, Optimizer)):
        raise TypeError(f"optimizer must be a fastmlp._spec.Optimizer or 'lbfgs', got {optimizer!r}")
    name = optimizer if optimizer == "lbfgs" else optimizer.name
    choice(lr_schedule, "lr_schedule", SCHEDULES)
    if isinstance(threads, str) and threads == "shared":
        raise ValueError("threads='shared' was removed (its shared-batch threads lost to the BLAS's own "
                         "threads on a quiet machine); use threads='auto'")
    choice(threads, "threads", THREADS)
    power_t = real(power_t, "power_t", minimum=0)
    if name in ("rprop", "lbfgs") and lr_schedule != "constant":
        raise ValueError(f"lr_schedule={lr_schedule!r} does not apply to optimizer={name!r}")
    shuffle, warm_start = flag(shuffle, "shuffle"), flag(warm_start, "warm_start")
    early_stopping = flag(early_stopping, "early_stopping")
    patience, tol = integer(patience, "patience", 1), real(tol, "tol")
    n_restarts = integer(n_restarts, "n_restarts", 1)
    if warm_start and n_restarts > 1:
        raise ValueError("warm_start continues one run; it cannot be combined with n_restarts > 1")
    monitor, mode = check_monitor(monitor, mode, validation_data is not None or validation_fraction is not None)
    X, Y, w, X_val, Y_val = validation_split(X, Y, w, check_data, seed, validation_data, validation_fraction)
    batch_size = check_batch_size(batch_size, X.shape[0], name)
    return FitJob(X, Y, w, X_val, Y_val, optimizer, epochs, batch_size,
                  shuffle and batch_size < X.shape[0], lr_schedule, power_t, early_stopping, patience, tol,
                  n_restarts, warm_start, checked=checked and isinstance(X, np.ndarray), monitor=monitor,
                  mode=mode)


def check_monitor(monitor, mode, validation):
    """(monitor, mode) of fit(monitor=, mode=), checked: monitor "loss", "val_loss" or a
    callable (None: "val_loss" with `validation` data, else "loss"); mode "min" or "max"
    (None: "min" for a loss, "max" for a callable's score). "val_loss" and a callable need
    validation data; a loss is never maximised."""
    if monitor is None:
        monitor = "val_loss" if validation else "loss"
    elif callable(monitor):
        if not validation:
            raise ValueError("a callable monitor scores the validation data: give validation_data or "
                             "validation_fraction")
    elif not isinstance(monitor, str):
        raise TypeError(f"monitor must be 'loss', 'val_loss' or a callable (model, X_val, y_val) -> float, got "
                        f"{type(monitor).__name__}")
    else:
        choice(monitor, "monitor", MONITORS)
        if monitor == "val_loss" and not validation:
            raise ValueError("monitor='val_loss' needs validation data: give validation_data or "
                             "validation_fraction")
    if mode is None:
        return monitor, "max" if callable(monitor) else "min"
    choice(mode, "mode", MODES)
    if mode == "max" and not callable(monitor):
        raise ValueError(f"mode='max' does not fit monitor={monitor!r}: a loss improves as it falls")
    return monitor, mode


def monitored_value(value):
    """A callable monitor's return value as a float; TypeError for anything but a real number."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"the monitor must return a real number (higher or lower is better, see mode), got "
                        f"{value!r}")
    return float(value)


def fit_optimizer(name, lr, **hyperparameters):
    """The optimizer of one fit, from its options: a new, checked `Optimizer`, or "lbfgs"
    (whose options are checked all the same, as SGD's). The values of recent fits are
    checked once (an LRU cache that tells types apart: True from 1, 1 from 1.0);
    unhashable values are checked afresh, and refused."""
    choice(name, "optimizer", FIT_OPTIMIZERS)
    try:
        opt = _optimizer("sgd" if name == "lbfgs" else name, lr, **hyperparameters).__copy__()
    except TypeError:
        opt = _optimizer.__wrapped__("sgd" if name == "lbfgs" else name, lr, **hyperparameters)
    return "lbfgs" if name == "lbfgs" else opt


@functools.lru_cache(maxsize=32, typed=True)
def _optimizer(name, lr, **hyperparameters):
    return Optimizer(name, real(lr, "lr", positive=True), **hyperparameters)


def check_batch_size(batch_size, n, optimizer):
    """"auto" (min(200, n)), an integer (capped at n) or None (n); full-batch optimizers need n."""
    full_batch = optimizer == "lbfgs" or optimizer in FULL_BATCH
    if batch_size is None:
        return n
    if isinstance(batch_size, str):
        choice(batch_size, "batch_size", ("auto",))
        return n if full_batch else min(200, n)
    batch_size = min(integer(batch_size, "batch_size", 1), n)
    if full_batch and batch_size < n:
        raise ValueError(f"optimizer={optimizer!r} works on the full batch; use batch_size=None")
    return batch_size


def validation_split(X, Y, w, check_data, seed, validation_data, validation_fraction):
    """(X, Y, w, X_val, Y_val): the training rows (and their weights) and the held-out data,
    or None for both. A fraction's rows are drawn from the model's seed."""
    if validation_data is not None and validation_fraction is not None:
        raise ValueError("give validation_data or validation_fraction, not both")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise TypeError("validation_data must be a pair (X_val, y_val)")
        X_val, Y_val = check_data(*validation_data)
        return X, Y, w, X_val, Y_val
    if validation_fraction is None:
        return X, Y, w, None, None
    fraction = real(validation_fraction, "validation_fraction")
    n_val = int(round(fraction * X.shape[0]))
    if not 0 < fraction < 1 or not 1 <= n_val < X.shape[0]:
        raise ValueError(f"validation_fraction={fraction} leaves no validation or no training rows of {X.shape[0]}")
    stream = np.random.SeedSequence(seed).spawn(1)[0].spawn(1)[0]
    order = np.random.default_rng(stream).permutation(X.shape[0])
    val, train = np.sort(order[:n_val]), np.sort(order[n_val:])
    if w is not None and not w[train].sum() > 0:
        raise ValueError("sample_weight is 0 on every training row left after the validation split")
    return X[train], Y[train], None if w is None else w[train], X[val], Y[val]


def dropout_key(seed, restart):
    """The dropout key of run `restart` of a model seeded with `seed` (None: fresh entropy):
    SplitMix64 of (seed, restart), in [0, 2**64)."""
    if seed is None:
        return int.from_bytes(os.urandom(8), "little")
    key = 0
    for word in (DROPOUT_STREAM, seed, restart):
        key = (key + word + 0x9E3779B97F4A7C15) & _MASK64
        key = ((key ^ (key >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        key = ((key ^ (key >> 27)) * 0x94D049BB133111EB) & _MASK64
        key ^= key >> 31
    return key


DROPOUT_STREAM = 0xD50   # (a stream apart from the shuffling's and the initialisations')
_MASK64 = 2**64 - 1


def make_runs(job, previous, seed, initial_params, current_params, owner=None):
    """The runs of a fit. Run 0 continues `previous` on a warm start with the same optimizer,
    else starts from the current weights (warm start) or the seed's initialisation; restart
    i > 0 draws its initialisation and shuffling from streams of its own, and each run's
    dropout key from the seed and its number (`dropout_key`).
    ``initial_params(entropy)`` gives new weights drawn from ``np.random.default_rng(entropy)``.
    `owner`: the id of the model fitting; its runs carry it. A warm start continuing the
    model's own run appends to that run's history lists (the model's ``history_``) instead of
    copying them, so a fit costs its own epochs, however many the model trained before;
    `run_fit` takes the appended entries back if the fit fails uncommitted."""
    n = job.n_restarts
    # shuffling of run i: streams[i]; initialisation of run i > 0: streams[n + i]
    streams = np.random.SeedSequence(seed).spawn(2 * n) if job.shuffle or n > 1 else None
    if job.warm_start and previous is not None and previous.continues(job.optimizer):
        # the history lists are shared only with the run of the model that committed it
        # (`owner`, its id): a shallow copy of a model continues on lists of its own
        run = previous.copy(share_history=owner is not None and getattr(previous, "owner", None) == owner)
        if run.optimizer != "lbfgs":
            run.optimizer.check()   # (trained unchecked from here)
    else:
        params = current_params.copy() if job.warm_start else initial_params(seed)
        history = previous.history if job.warm_start and previous is not None else None
        # job.optimizer is this fit's own (fit_job's copy): run 0 takes it, restarts copies
        run = Run(params, job.optimizer if n == 1 else copy.copy(job.optimizer), None, history,
                  dropout_key(seed, 0))
    if job.shuffle and run.rng is None:
        run.rng = np.random.default_rng(streams[0])
    runs = [run] + [
        Run(initial_params(streams[n + i]), copy.copy(job.optimizer),
            np.random.default_rng(streams[i]), None, dropout_key(seed, i))
        for i in range(1, n)
    ]
    for each in runs:
        each.owner = owner
    return runs


def run_fit(impl, net, runs, job, commit=None, *, stop=None, watch=None, rate=None):
    """Train every run of `job` (several in threads: the compiled loop releases the GIL):
    the one entry into training, for ``MLP.fit`` and the scikit-learn estimators.

    With `commit` (``MLP.fit``): the best run is committed and returned; DivergenceError
    when it diverged (every run did). Ctrl-C or SystemExit in a single run commits it as
    far as it got. With restarts, any exception (Ctrl-C, a signal handler's, an error in
    one restart) stops every restart after its current step and is raised once all threads
    have ended; nothing is committed. Without `commit` (the estimators, which train on the
    model's weights in place and report divergence their own way) the best run is returned.

    job.schedule "sklearn" (the estimators): the caller brings the rate (`rate`, with
    ``rate(epochs_done)`` and ``base``; not for L-BFGS) and the end-of-epoch steps
    (`watch(loss)`, False to stop), in place of fastmlp's schedule and monitor; `stop`, a
    threading.Event, ends the run after its current step once set.
    """
    if (watch is not None) != (job.schedule == "sklearn") or (rate is not None and job.schedule != "sklearn"):
        raise ValueError('run_fit: watch and rate come with schedule="sklearn", and only with it')
    if job.optimizer == "lbfgs" and net.has_dropout:
        raise ValueError("dropout needs a stochastic optimizer (sgd, adam, adamw, rprop): L-BFGS minimises "
                         "the deterministic loss; use dropout=0 with it")
    if job.optimizer == "lbfgs" and net.has_batch_norm:
        raise ValueError("batch normalization needs a stochastic optimizer (sgd, adam, adamw, rprop): L-BFGS "
                         "minimises the deterministic loss, which reads the running statistics; use norm='layer' "
                         "or None with it")
    if job.optimizer != "lbfgs":
        check_norm_batches(net, len(job.Y), job.batch_size)
    results = [None] * len(runs)

    def train(i, stop):
        results[i] = train_run(impl, net, runs[i], job, stop, restart=i, watch=watch, rate=rate)

    if len(runs) == 1:
        try:
            train(0, stop)
        except (KeyboardInterrupt, SystemExit):
            if commit is not None:
                commit(runs[0])
            raise
        except BaseException:
            runs[0].rewind()      # not committed: a warm start's shared history as it was
            raise
    else:
        in_threads([functools.partial(train, i) for i in range(len(runs))])
    best = min(runs, key=Run.score)
    job.lbfgs_result = results[runs.index(best)]
    if commit is not None:
        commit(best)
        _check_diverged(best, len(runs))
    return best


def _check_diverged(best, n_runs):
    """DivergenceError if `best` (committed) diverged."""
    if best.diverged is not None:
        raise DivergenceError(
            f"training diverged at epoch {best.diverged}{' in every restart' if n_runs > 1 else ''}: "
            "the loss or the weights became NaN or infinite; the model keeps the weights and history "
            "of the epochs before it. Try a smaller lr or scaled inputs (e.g. standardised features)")


def in_threads(tasks):
    """Call each of `tasks`, a function of one threading.Event `stop`, in a pool of at most
    os.cpu_count() threads (the compiled loop releases the GIL). Any exception (Ctrl-C, a
    signal handler's, one task's) sets `stop`, which a task heeds by ending after its
    current step, cancels the tasks not started, and is raised once every thread has ended."""
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=min(len(tasks), os.cpu_count() or 1))
    try:
        futures = [pool.submit(task, stop) for task in tasks]
        pending = futures
        while pending:   # short waits: Ctrl-C, _thread.interrupt_main() and handlers get in between
            done, pending = wait(pending, timeout=0.05, return_when=FIRST_EXCEPTION)
            if any(future.exception() is not None for future in done):
                break
        for future in futures:
            if future.done() and future.exception() is not None:
                raise future.exception()
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)     # after `stop`, each task ends after its current step


def train_run(impl, net, run, job, stop=None, restart=0, watch=None, rate=None):
    """Advance `run` (restart number `restart`) by up to job.epochs epochs (iterations for
    L-BFGS); `stop`, a threading.Event, ends it after the current epoch when set. `watch`
    and `rate`: the caller's, for job.schedule "sklearn" (see `run_fit`). Returns SciPy's
    result for L-BFGS, else None."""
    lbfgs = isinstance(run.optimizer, str)      # "lbfgs", else an Optimizer
    if job.schedule == "sklearn":
        if lbfgs:
            return _lbfgs(impl, net, run, job, watch)
        return _epochs(impl, net, run, job, rate, watch, stop)
    scored = job.monitor is not None and not isinstance(job.monitor, str)     # a callable's score
    sign = -1.0 if job.mode == "max" else 1.0
    monitor = Monitor(job.early_stopping, job.patience, job.tol, skip_nan=scored)
    schedule = None if lbfgs else Schedule(job.schedule, run.optimizer.lr, job.power_t)
    epochs = [len(run.history["loss"])]    # the next epoch's number, counted over warm starts

    def watch(loss):
        """After an epoch with training loss `loss`: False when training should stop."""
        val_loss, extra = None, {}
        if job.X_val is not None:
            val_loss = float(impl.loss_gradient(net, run.params, job.X_val, job.Y_val))
            run.history["val_loss"].append(val_loss)
        if scored:
            value = extra["val_score"] = job.score(run.params)
        else:
            value = val_loss if job.monitor == "val_loss" or (job.monitor is None and val_loss is not None) else loss
        run.last = sign * value
        improved = monitor.update(run.last, run.params)
        go_on = job.report is None or job.report(epochs[0], loss, val_loss, None if lbfgs else run.optimizer.lr,
                                                 restart, **extra)
        epochs[0] += 1
        if schedule is not None:
            schedule.observe(improved)
        return go_on and not monitor.exhausted and not (stop is not None and stop.is_set())

    result = _lbfgs(impl, net, run, job, watch) if lbfgs else _epochs(impl, net, run, job, schedule, watch, stop)
    if job.early_stopping:
        if monitor.best_params is not None:
            run.params[...] = monitor.best_params
        run.best = monitor.best
    return result


def _epochs(impl, net, run, job, schedule, watch, stop):
    """The backend's training loop over job.epochs (in calls of growing length, so the loss
    buffer follows the epochs run), with `watch` and the schedule between epochs when they
    have something to decide. A non-finite epoch loss ends it and sets run.diverged."""
    opt, history = run.optimizer, run.history["loss"]
    state = {"go_on": True}

    def callback(epoch, loss):
        state["go_on"] = watch(float(loss))
        opt.lr = schedule.rate(len(history) + epoch + 1)
        return state["go_on"]

    per_epoch = job.X_val is not None or job.early_stopping or job.schedule != "constant" or job.per_epoch_report
    with blas_threads(impl, net.sizes, job.batch_size, single=job.Y.dtype.itemsize == 4):
        _chunks(impl, net, run, job, schedule, stop, callback if per_epoch else None, state)


def _chunks(impl, net, run, job, schedule, stop, callback, state):
    """`_epochs`' backend calls: FIRST_CHUNK epochs, then twice as many each call."""
    opt, history = run.optimizer, run.history["loss"]
    left, chunk = job.epochs, min(job.epochs, FIRST_CHUNK)
    trusted = job.checked and _trusted(impl, net, job.batch_size)
    while left > 0 and state["go_on"]:
        opt.lr = schedule.rate(len(history))
        losses = _loss_buffer(chunk)
        rng = run.rng if job.shuffle else None
        written = None
        try:   # (overflow is caught below, as divergence)
            if trusted:
                written = impl._train(CHECKED, net, run.params, job.X, job.Y, job.w, opt, run.state, losses, chunk,
                                      job.batch_size, rng, callback, stop, run.dropout_key)
            else:
                written = impl.train(net, run.params, job.X, job.Y, optimizer=opt, state=run.state, losses=losses,
                                     epochs=chunk, batch_size=job.batch_size, rng=rng, sample_weight=job.w,
                                     callback=callback, stop=stop, dropout_key=run.dropout_key)
        finally:
            opt.lr = schedule.base
            ran = _record(run, losses, written)
        if run.diverged is not None or ran < chunk:
            break
        left -= chunk
        chunk = min(left, 2 * chunk)


def _trusted(impl, net, batch_size):
    """Whether the backend's unchecked loop may train a model's checked dense data: it has
    one, and the extents fit BLAS's int (what ``_spec.train_args`` would check besides)."""
    return max(*net.sizes, batch_size) <= BLAS_INT_MAX and hasattr(impl, "_train")


def _loss_buffer(epochs):
    """The losses buffer of one backend call: -inf marks an epoch not run (a loss is never
    -inf), read only when the call raised (`_record`)."""
    losses = np.empty(epochs)
    losses.fill(-np.inf)
    return losses


def _record(run, losses, written):
    """Append to run's loss history what the backend's train wrote into `losses` (the
    first `written` entries; None when train raised: the entries before its -inf marks),
    up to the first non-finite loss, which sets run.diverged. Returns how many it ran."""
    if written is None:
        written = len(losses) - int(np.count_nonzero(losses == -np.inf))
    ran, history = losses[:written], run.history["loss"]
    if not all_finite(ran):
        first = int(np.argmin(np.isfinite(ran)))
        run.diverged = len(history) + first
        ran = ran[:first]
    history.extend(ran.tolist())
    return written


def _lbfgs(impl, net, run, job, watch):
    """SciPy's L-BFGS-B on the flat parameters, up to job.epochs iterations (with
    job.lbfgs_options); returns SciPy's result, None for epochs=0. A non-finite loss at the
    end sets run.diverged and keeps the last iterate L-BFGS accepted. Counted as a running
    fit of `impl` (``_blas.fit_running``)."""
    from scipy.optimize import minimize

    params, grad = run.params, np.empty_like(run.params)
    accepted = params.astype(np.float64)

    def loss_and_gradient(x):
        params[...] = x
        loss = impl.loss_gradient(net, params, job.X, job.Y, grad, job.w)
        return loss, grad.astype(np.float64)

    def callback(intermediate_result):
        accepted[...] = params[...] = intermediate_result.x
        run.history["loss"].append(float(intermediate_result.fun))
        if not watch(float(intermediate_result.fun)):
            raise StopIteration

    if job.epochs:
        with np.errstate(all="ignore"), fit_running(impl):
            result = minimize(loss_and_gradient, params.astype(np.float64), jac=True, method="L-BFGS-B",
                              callback=callback, options={"maxiter": job.epochs, **(job.lbfgs_options or {})})
        finite = np.isfinite(result.fun) and np.isfinite(result.x).all()
        params[...] = result.x if finite else accepted
        if not finite:
            run.diverged = len(run.history["loss"])
        return result
    return None
