"""What a fit tells the outside between epochs: the user's callback and the progress bar.

Both see the same per-epoch record (`EpochReport.logs`): the epoch (counted over warm
starts, from 0), the restart it belongs to, the training loss, the validation loss when
there is validation data, the learning rate the epoch ran with (None for L-BFGS) and the
seconds since the fit started. Nothing here runs unless a callback or a bar was asked
for, so a plain fit keeps its epochs inside the compiled loop.
"""

import math
import sys
import threading
import time

from ._validation import flag


def check_callback(callback):
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable as callback(epoch, logs) or None, got {type(callback).__name__}")
    return callback


class EpochReport:
    """The per-epoch hook of one fit: calls the callback and advances the bar; `__call__`
    returns False when the callback asked to stop (it returned False, or anything falsy
    but None)."""

    def __init__(self, callback, bar):
        self.callback, self.bar = callback, bar
        self.started = time.perf_counter()

    @property
    def active(self):
        return self.callback is not None or self.bar is not None

    def __call__(self, epoch, loss, val_loss=None, lr=None, restart=0, **extra):
        logs = {"loss": float(loss), "lr": None if lr is None else float(lr),
                "elapsed": time.perf_counter() - self.started, "restart": restart}
        if val_loss is not None:
            logs["val_loss"] = float(val_loss)
        logs.update(extra)
        if self.bar is not None:
            self.bar.epoch(logs)
        if self.callback is None:
            return True
        answer = self.callback(epoch, logs)
        return answer is None or bool(answer)


class ProgressBar:
    """A tqdm bar on stderr over the epochs of every restart, showing the latest losses.
    Restarts update it from their threads (one lock)."""

    def __init__(self, total, description):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            raise ImportError("progress=True needs tqdm: pip install 'fastmlp[progress]'") from None
        self._bar = tqdm(total=total, desc=description, unit="epoch", file=sys.stderr, dynamic_ncols=True,
                         leave=True)
        self._lock = threading.Lock()
        self._pending, self._logs, self._shown_at = 0, None, time.monotonic()

    def epoch(self, logs):
        """Count the epoch; the bar is redrawn at most every EVERY seconds (a fit of many
        short epochs would otherwise spend its time formatting the bar)."""
        with self._lock:
            self._pending, self._logs = self._pending + 1, logs
            if time.monotonic() - self._shown_at >= self.EVERY:
                self._show()

    EVERY = 0.1

    def _show(self):
        shown = {key: f"{self._logs[key]:.4g}" for key in ("loss", "val_loss", "val_score")
                 if key in self._logs and math.isfinite(self._logs[key])}
        self._bar.set_postfix(shown, refresh=False)
        self._bar.update(self._pending)
        self._pending, self._shown_at = 0, time.monotonic()

    def close(self):
        with self._lock:
            if self._pending:
                self._show()
        self._bar.close()


class reporting:
    """``with reporting(...) as report``: the EpochReport of one fit, its bar (if `progress`)
    closed at the end, whatever happens. (A class: every fit enters it, and a generator's
    context manager costs more.)"""

    def __init__(self, callback, progress, total, description):
        callback = check_callback(callback)
        self.bar = ProgressBar(total, description) if flag(progress, "progress") else None
        self.report = EpochReport(callback, self.bar)

    def __enter__(self):
        return self.report

    def __exit__(self, *exc_info):
        if self.bar is not None:
            self.bar.close()
        return False
