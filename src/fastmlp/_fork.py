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

fastmlp's fork handlers (these, and ``_blas``'s lock) are registered here with `at_fork`, and
run from the one set this module gives os.register_at_fork, which also sees to imports that
other threads have under way at the fork (see the end of this file).
"""

import ctypes
import logging  # noqa: F401  (imported first: its fork handler, which holds its lock, then runs after `_prepare`)
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


# ---------------------------------------------------------------- the fork handlers, in one place
#
# fastmlp's modules give their fork handlers to `at_fork`, not to os.register_at_fork: this
# module registers the one set that os.fork() runs (`_prepare`, `_parent`, `_child`), which
# runs theirs in a fixed order, runs an `after` only where its `before` ran for this fork,
# and keeps imports under way in other threads from hanging the child.
#
# Imports: fastmlp imports its model modules on first use, in whichever thread asks. A module
# lock held by another thread at the fork stays held in the child for good (that thread does
# not exist there), and the child's first use of that module waits for it forever. So
# `_prepare` first waits for the imports in flight, holding nothing, then runs the handlers
# and looks again: those are Python code, and the importing thread gets the GIL back in
# between (every few ms, or while a handler waits for the loops) and may begin its next
# import; then it undoes them (their parent `after`s), waits, and begins again. (Waiting
# while holding the handlers' locks could wait for good: the importing thread may need one.)
# Another library's fork handler that holds a lock may have run before `_prepare`, and an
# import may wait for that lock: the waits end at `IMPORT_WAIT`. What is still under way
# then, or begins after the last look, `_child` abandons in the child: it drops the module
# locks of the threads that do not exist there, and the modules they had half imported, so
# that the child's first use imports them afresh (a compiled module, which imports once per
# process, then raises ImportError instead of hanging).

import sys
import time

try:
    from importlib import _bootstrap          # its table of module locks (3.10-3.13: _module_locks)
except ImportError:                           # (another Python: imports are not looked at)
    _bootstrap = None

IMPORT_WAIT = 10.0  # s that a fork waits at most for other threads' imports
_POLL = 0.001       # s between looks

_handlers = []      # fastmlp's (before, after_in_parent, after_in_child), in the order registered
_ran = {}           # forking thread id -> the handlers whose `before` ran for its fork under way


def at_fork(*, before=None, after_in_parent=None, after_in_child=None):
    """Register fastmlp's own fork handlers (as os.register_at_fork takes them). At a fork the
    `before`s run in the order registered, then the `after`s in the reverse order, each only
    where its `before` ran for this fork (not for one registered meanwhile, nor after a
    `before` that raised); a handler without `before` counts as run."""
    given = {"before": before, "after_in_parent": after_in_parent, "after_in_child": after_in_child}
    for name, handler in given.items():
        if handler is not None and not callable(handler):
            raise TypeError(f"at_fork(): {name} must be callable, got {handler!r}")
    if all(handler is None for handler in given.values()):
        raise TypeError("at_fork() needs at least one of before, after_in_parent, after_in_child")
    _handlers.append((before, after_in_parent, after_in_child))


def _module_locks():
    """{module name: its import lock} of the locks that exist now (none outside CPython)."""
    table = getattr(_bootstrap, "_module_locks", None)
    if not isinstance(table, dict):
        return {}
    locks = {}
    for name, ref in list(table.items()):
        lock = ref() if callable(ref) else None
        if lock is not None:
            locks[name] = lock
    return locks


def _imports_of_others():
    """The modules that other threads import now (whose locks they hold)."""
    me = get_ident()
    return [name for name, lock in _module_locks().items()
            if getattr(lock, "owner", None) not in (None, me)]


def _wait_for_imports(deadline):
    """True once no other thread imports, False at `deadline` (time.monotonic())."""
    while _imports_of_others():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL)        # (without the GIL: the imports go on)
    return True


def _call(handlers, which, errors):
    """Call handler[which] of each of `handlers`; their exceptions go to `errors`."""
    ran = []
    for handler in handlers:
        try:
            if handler[which] is not None:
                handler[which]()
            ran.append(handler)
        except Exception as error:
            errors.append(error)
    return ran


def _prepare():
    """os.fork()'s `before`."""
    deadline, errors = time.monotonic() + IMPORT_WAIT, []
    while True:
        quiet = _wait_for_imports(deadline)
        ran = _call(list(_handlers), 0, errors)
        if not quiet or not _imports_of_others() or time.monotonic() >= deadline:
            break
        _call(reversed(ran), 1, errors)      # an import began meanwhile: undo, wait, again
    _ran[get_ident()] = ran
    if errors:
        raise errors[0]          # (os.fork() reports it and goes on, as with its own handlers)


def _parent():
    """os.fork()'s `after_in_parent`."""
    errors = []
    _call(reversed(_ran.pop(get_ident(), ())), 1, errors)
    if errors:
        raise errors[0]


def _drop_lost_imports():
    """(In a child.) The imports that other threads had under way at the fork are abandoned:
    their module locks dropped (the next import makes a new one) and their half-imported
    modules taken out of sys.modules (the next import runs them afresh)."""
    table = getattr(_bootstrap, "_module_locks", None)
    me = get_ident()
    for name, lock in _module_locks().items():
        if getattr(lock, "owner", None) in (None, me):
            continue
        module = sys.modules.get(name)
        if module is not None and getattr(getattr(module, "__spec__", None), "_initializing", False):
            del sys.modules[name]
        table.pop(name, None)


def _child():
    """os.fork()'s `after_in_child`."""
    ran = _ran.pop(get_ident(), ())
    _ran.clear()
    errors = []
    try:
        _drop_lost_imports()
    except Exception as error:
        errors.append(error)
    _call(reversed(ran), 2, errors)
    if errors:
        raise errors[0]


at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_prepare, after_in_parent=_parent, after_in_child=_child)
