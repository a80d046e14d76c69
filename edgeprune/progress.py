"""Progress of long work: a bar on a terminal, plain log lines elsewhere, nothing with ``-q``.

Long loops (training epochs, structured rounds, fit candidates, the arena
search, validation samples, sweep trials) wrap themselves in :func:`task` and
call ``advance`` once per step. What that shows depends on the mode the
command line chose with :func:`configure`:

``bar``  a rich progress bar on stderr, removed when the task ends. Log records
         of the ``edgeprune`` logger (and the root logger) that go to the same
         stream are printed above the bars while they are live, so the lines
         that stay on the screen read as they would without a bar.
``log``  the default, and what a library caller gets: an INFO line on the
         ``edgeprune.progress`` logger at most every ``log_every_s`` seconds
         (a step that comes later than that is always logged), and a last
         line when a task that ran that long ends with steps unlogged. Work
         that ends sooner logs nothing: it needed no progress report.
``off``  nothing (``-q``).

Nested tasks share one display. A process forked while a bar is live (a
worker) falls back to log lines: two processes drawing on one terminal
garble it. rich is imported only when a bar is drawn.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator

log = logging.getLogger(__name__)

MODES = ("bar", "log", "off")
LOG_EVERY_S = 5.0  # plain lines at most this often, by default
FAST_STEPS_S = 2.0  # the least interval of loops with many quick steps, even with -v


class _Settings:
    mode = "log"
    stream = None  # where bars are drawn; None: sys.stderr when the first bar starts
    log_every_s = LOG_EVERY_S
    clock = staticmethod(time.monotonic)  # tests replace it: no timed assertions


_settings = _Settings()
_lock = threading.RLock()
_bars: _Bars | None = None


def mode_for(stream, quiet: bool = False) -> str:
    """The mode for a command whose progress goes to ``stream``: ``off`` when
    quiet, ``bar`` on a terminal that can redraw a line, else ``log``."""
    if quiet:
        return "off"
    try:
        terminal = bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed stream
        terminal = False
    return "bar" if terminal and os.environ.get("TERM") != "dumb" else "log"


def configure(mode: str, *, stream=None, log_every_s: float | None = None) -> None:
    """Choose how :func:`task` shows progress in this process (see the module's text).

    ``stream`` is where bars are drawn (default: ``sys.stderr`` when a bar
    starts); ``log_every_s`` the least time between two plain lines of one
    task (0: a line per step), unchanged when None.

    Raises:
        ValueError: an unknown mode or a negative ``log_every_s``.
    """
    if mode not in MODES:
        raise ValueError(f"progress mode {mode!r} is unknown; choose from {', '.join(MODES)}")
    if log_every_s is not None and log_every_s < 0:
        raise ValueError(f"log_every_s = {log_every_s} must be >= 0")
    with _lock:
        _settings.mode, _settings.stream = mode, stream
        if log_every_s is not None:
            _settings.log_every_s = log_every_s


def current_mode() -> str:
    return _settings.mode


class Task:
    """One long loop's progress: ``advance`` after each step, ``update`` to change
    the status text alone (shown on the bar, and in the next plain line)."""

    def __init__(
        self, description: str, total: int | None, unit: str, plain: bool, log_every_s: float
    ) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.completed, self.status = 0, ""
        self._plain = plain  # False: the caller logs each step itself; no plain lines
        self._every_s = log_every_s  # this loop's own least interval (fast steps)
        self._mode = "off"
        self._row = None  # the rich task id in bar mode
        self._started = self._last_line = _settings.clock()
        self._logged = 0  # the count the last plain line showed

    def advance(self, n: int = 1, status: str | None = None) -> None:
        """Count ``n`` more steps done; ``status`` replaces the status text."""
        self.completed += n
        if status is not None:
            self.status = status
        if self._mode == "bar":
            _bars.progress.update(self._row, advance=n, status=self.status)
        elif self._mode == "log" and self._plain:
            now = _settings.clock()
            if now - self._last_line >= self._interval():
                self._line(now)

    def update(self, status: str) -> None:
        """Replace the status text without counting a step."""
        self.status = status
        if self._mode == "bar":
            _bars.progress.update(self._row, status=status)

    def text(self) -> str:
        """The plain line: ``description: unit 3/10, status``."""
        count = f"{self.completed}/{self.total}" if self.total is not None else f"{self.completed}"
        unit = f"{self.unit} " if self.unit else ""
        return f"{self.description}: {unit}{count}" + (f", {self.status}" if self.status else "")

    def _interval(self) -> float:
        return max(_settings.log_every_s, self._every_s)

    def _line(self, now: float) -> None:
        log.info("%s", self.text())
        self._last_line, self._logged = now, self.completed

    def _open(self) -> None:
        global _bars
        mode = _settings.mode
        with _lock:
            if mode == "bar" and _bars is not None and _bars.pid != os.getpid():
                mode = "log"  # a forked child: the parent owns the terminal
            elif mode == "bar" and _bars is None:
                try:
                    _bars = _Bars(_settings.stream or sys.stderr)
                except OSError:  # a terminal that cannot be drawn on: plain lines
                    mode = "log"
            if mode == "bar":
                _bars.users += 1
                self._row = _bars.progress.add_task(
                    self.description, total=self.total, unit=self.unit, status=""
                )
                _bars.refresh()  # every task is seen, however short
        self._mode = mode

    def _close(self, failed: bool) -> None:
        global _bars
        if self._mode == "bar":
            with _lock:
                _bars.refresh()  # its last count, once
                _bars.progress.remove_task(self._row)
                _bars.users -= 1
                if _bars.users == 0:
                    try:
                        _bars.stop()
                    finally:
                        _bars = None
        elif self._mode == "log" and self._plain and not failed:
            now = _settings.clock()
            ran_long = now - self._started >= self._interval()
            if ran_long and self.completed != self._logged:
                self._line(now)
        self._mode = "off"


@contextlib.contextmanager
def task(
    description: str,
    total: int | None = None,
    unit: str = "",
    *,
    plain: bool = True,
    log_every_s: float = 0.0,
) -> Iterator[Task]:
    """Show the progress of one long loop while the ``with`` block runs.

    ``total`` is the number of steps when known; ``unit`` names a step
    (``"epoch"``). ``plain=False`` for loops whose caller already logs a
    line per step: they show a bar on a terminal and nothing more in log
    mode. ``log_every_s`` keeps the plain lines of a loop with fast steps
    (samples, tries) at least that far apart even when the configured
    interval is shorter (``-v``: a line per step). Nesting is allowed.
    Raises nothing of its own.
    """
    t = Task(description, total, unit, plain, log_every_s)
    t._open()
    failed = True
    try:
        yield t
        failed = False
    finally:
        t._close(failed)


class _AboveBars:
    """A text stream for logging handlers while bars are live: each whole line is
    printed above the bars by their console."""

    def __init__(self, console) -> None:
        self.console, self.pending = console, ""

    def write(self, text: str) -> int:
        from rich.text import Text

        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            self.console.print(Text(line), soft_wrap=True)
        return len(text)

    def flush(self) -> None:
        pass


class _Bars:
    """The one rich display of this process; the handlers it redirected."""

    def __init__(self, stream) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(file=stream, force_terminal=True, highlight=False)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=True,
            redirect_stdout=False,  # stdout carries results, perhaps to a file
        )
        self.progress.start()
        self.users, self.pid = 0, os.getpid()
        self.swapped: list[tuple[logging.StreamHandler, object]] = []
        self.proxy = proxy = _AboveBars(console)
        for logger in {logging.getLogger(), logging.getLogger("edgeprune")}:
            for handler in logger.handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is stream:
                    self.swapped.append((handler, handler.setStream(proxy)))

    def refresh(self) -> None:
        with contextlib.suppress(OSError):  # a terminal gone: the work goes on
            self.progress.refresh()

    def stop(self) -> None:
        try:
            with contextlib.suppress(OSError):
                self.progress.stop()
        finally:
            for handler, stream in self.swapped:
                handler.setStream(stream)
        if self.proxy.pending:  # a record without its newline: written as it came
            with contextlib.suppress(OSError):
                self.progress.console.file.write(self.proxy.pending)
