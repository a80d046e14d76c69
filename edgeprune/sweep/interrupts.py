"""Ctrl-C in a sweep worker lands inside a trial, never between the storage's writes.

A terminal's Ctrl-C reaches the parent and every worker at once, and the parent
passes one more to a worker still alive 2 s later. Python raises
KeyboardInterrupt wherever the worker is. Inside the objective that is what we
want: the trial is failed and marked interrupted, and the rerun runs it again.
Between trials it is not. In optuna's ``ask`` the new trial is already RUNNING
and its objective never starts; in ``tell`` the write that fails it can be cut
short. Either way the trial stays RUNNING until a rerun recovers it, and the
interrupted sweep's sweep.json shows a trial that nothing runs.

:func:`deferred` installs a SIGINT handler for the worker loop. Within
:func:`armed` (the objective) a Ctrl-C raises KeyboardInterrupt as before;
elsewhere it is only noted. A noted Ctrl-C is raised by :func:`armed` as the
next objective starts, so the trial that ``ask`` just created fails as
interrupted, or by :func:`check`, which the loop calls between trials.
"""

from __future__ import annotations

import contextlib
import signal
import threading

_STATE = {"installed": False, "armed": False, "pending": False, "fired": False}


def _handler(signum, frame) -> None:
    if _STATE["armed"]:
        _STATE.update(armed=False, fired=True)  # the unwinding and writes after it finish
        raise KeyboardInterrupt
    _STATE["pending"] = True


@contextlib.contextmanager
def deferred():
    """The worker loop's SIGINT handling (see the module docstring). Installed only in
    the main thread, where Python allows a signal handler; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread() or _STATE["installed"]:
        yield
        return
    before = signal.signal(signal.SIGINT, _handler)
    _STATE.update(installed=True, armed=False, pending=False)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)
        _STATE.update(installed=False, armed=False, pending=False)


def check() -> None:
    """Raise the KeyboardInterrupt of a Ctrl-C noted since the last trial, if any."""
    if _STATE["pending"]:
        _STATE["pending"] = False
        raise KeyboardInterrupt


def mark_interrupted(trial, exc: BaseException) -> None:
    """If ``exc``, escaping ``trial``'s objective, is a Ctrl-C or came with one: mark the
    trial interrupted (the rerun runs it again) and raise KeyboardInterrupt. The same
    Ctrl-C ends the worker's TFLite Micro process, so a trial can fail on that (a
    crashed worker) before its own KeyboardInterrupt is raised. Else return."""
    if isinstance(exc, KeyboardInterrupt) or _STATE["pending"] or _STATE["fired"]:
        trial.set_user_attr("interrupted", True)
        trial.set_user_attr("error", "interrupted")
        raise KeyboardInterrupt from None


@contextlib.contextmanager
def armed():
    """The block (a trial's objective) is interrupted at once by Ctrl-C, and by one
    noted before it started."""
    if not _STATE["installed"]:
        yield
        return
    _STATE.update(armed=True, fired=False)
    try:
        check()
        yield
    finally:
        _STATE["armed"] = False
