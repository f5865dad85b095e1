"""``os.fork()`` while fits or predictions run in other threads.

OpenBLAS (and MKL's OpenMP) cannot be forked while one of its products is running: its
fork handlers then wait for its worker threads for good, in ``fork()`` itself or later in
the thread whose product it was (a plain SciPy ``dgemm`` in a thread hangs the same way).
The backends' loops run their products for a whole fit, so they make room for a fork
themselves: each loop marks the stretches in which it computes (``with computing:``, around
the compiled loop's GIL-free parts and the NumPy loop's epochs) and looks at `PENDING` at
every batch boundary (every block of rows of a prediction).

A fork from any thread first (``os.register_at_fork``'s `before`) sets `PENDING` and waits,
without the GIL, until no other thread computes: each loop stops at its next boundary
(`pause`) and a loop about to start waits as it enters `computing`. The fork then happens
with every loop at rest. In the parent the loops go on where they stopped, with the results they
would have had without the fork; in the child (one thread, the forking one) the
bookkeeping starts afresh, keeping that thread's own loops (a fork from a fit's callback,
which runs between the loop's stretches, waits for nothing of its own).

`PENDING` is a C int so that the compiled loop reads it per batch without the GIL (by its
address, taken at its import); the waits use a lock of this module only.
"""

import ctypes
import os
import threading
from threading import get_ident

PENDING = ctypes.c_int(0)     # 1 while a fork waits for the loops to reach a boundary
PENDING_ADDRESS = ctypes.addressof(PENDING)

_lock = threading.Lock()
_changed = threading.Condition(_lock)
_busy = {}                    # thread id -> its loops computing now (nested ones counted)
_forking = None               # the thread whose fork is under way, while one is


class _Computing:
    """``with computing:`` around a stretch of a loop's computing (the caller holds the GIL):
    on entry, first waits while another thread's fork is under way (as `pause` does: also
    when loops of this thread compute already, a loop started from a signal handler that
    another loop ran); on exit, the stretch ended (finished, failed, or back to Python code
    such as a callback).

    No lock unless a fork is under way: a thread writes only its own entry of `_busy`, one
    write each way, and counts itself before it looks at `_forking`, which `_before_fork`
    sets before it reads the counts; under the GIL one of the two sees the other."""

    def __enter__(self):
        me = get_ident()
        _busy[me] = _busy.get(me, 0) + 1
        if _forking is not None and _forking != me:
            try:
                pause()
            except BaseException:    # (Ctrl-C in the wait: the stretch does not begin)
                self.__exit__()
                raise

    def __exit__(self, *exc_info):
        me = get_ident()
        left = _busy.get(me, 0) - 1
        if left > 0:
            _busy[me] = left
        else:
            _busy.pop(me, None)
        if _forking is not None:
            with _lock:
                _changed.notify_all()
        return False


computing = _Computing()


def pause():
    """At a batch boundary while `PENDING` is set: this thread's loops are at rest until the
    fork is done (returns at once when the fork is this thread's own or already done). If
    the wait is interrupted (Ctrl-C), they are counted again and the exception raised: the
    loop then ends, and leaves `computing`."""
    me = get_ident()
    with _lock:
        held = _busy.pop(me, 0)
        try:
            if _forking is not None and _forking != me:
                _changed.notify_all()
                while _forking is not None and _forking != me:
                    _changed.wait()
        finally:
            if held:
                _busy[me] = held


def busy():
    """{thread id: its loops computing} now (a copy), for tests and diagnostics."""
    with _lock:
        return dict(_busy)


def _before_fork():
    """Wait for every other thread's loops to reach a boundary, and hold them there."""
    global _forking
    me = get_ident()
    with _lock:
        while _forking is not None:      # another thread's fork: the one after the other
            _changed.wait()
        _forking = me
        PENDING.value = 1
        while any(count for thread, count in dict(_busy).items() if thread != me):
            _changed.wait()      # (dict(): one step under the GIL, as the threads go on)


def _after_fork_in_parent():
    """Release the loops held for the fork."""
    global _forking
    with _lock:
        _forking = None
        PENDING.value = 0
        _changed.notify_all()


def _after_fork_in_child():
    """The child has one thread, the forking one: its own loops stay counted, the others'
    are gone; new locks (the old ones may have waiters that no longer exist)."""
    global _lock, _changed, _busy, _forking
    me = get_ident()
    mine = _busy.get(me, 0)
    _lock = threading.Lock()
    _changed = threading.Condition(_lock)
    _busy = {me: mine} if mine else {}
    _forking = None
    PENDING.value = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
