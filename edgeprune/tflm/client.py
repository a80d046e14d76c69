"""The client side of the TFLite Micro worker process (:mod:`edgeprune.tflm.worker`).

:class:`Worker` starts ``python -m edgeprune.tflm.worker MODEL_PATH`` on the
first request (adding ``--verified`` once a worker has run LiteRT's flatbuffer
verifier on these bytes), sends one JSON request a line and reads one JSON
answer a line, with a timeout. A worker that dies (TFLM aborts or segfaults on a damaged
model or a too-small arena) or hangs is reaped and becomes a failed
:class:`Reply`; the next request starts a fresh one. TFLM's own messages, which
it writes to stderr from C++, are collected per request and quoted in
:attr:`Reply.message`.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from edgeprune.errors import signal_name

logger = logging.getLogger(__name__)

REQUEST_TIMEOUT_S = 60.0
# Worker processes kept between models (keep_workers): (process, stderr path, stderr file).
_IDLE: list[tuple] = []
_KEEP: list[tempfile.TemporaryDirectory] = []  # holds the kept workers' folder once on
_MESSAGE_CHARS = 500
_RECORDED_TOTAL = re.compile(rb"\[RecordingMicroAllocator\] Arena allocation total (\d+) bytes")
_WORKER_MODULE = "edgeprune.tflm.worker"


def _crash_text(returncode: int) -> str:
    if returncode < 0:
        return f"TFLite Micro crashed ({signal_name(returncode)})"
    return f"the TFLite Micro worker exited with code {returncode}"


def _native_lines(stderr: str) -> list[str]:
    """TFLM's message lines, without allocator dumps and Python traceback frames."""
    lines = []
    for raw in stderr.splitlines():
        line = raw.strip()
        if (
            not line
            or raw[:1].isspace()
            or line.startswith("Traceback (")
            or line.startswith("[RecordingMicroAllocator]")
        ):
            continue
        lines.append(line)
    return lines


@dataclass(frozen=True)
class Reply:
    """One answer of the worker, or the failure that took its place (crash, timeout)."""

    ok: bool
    stage: str = ""
    error: str = ""
    stderr: bytes = b""
    returncode: int | None = None  # set when the worker died
    timed_out: bool = False
    seconds: float = 0.0
    details: dict = field(default_factory=dict)

    @property
    def recorded_bytes(self) -> int | None:
        totals = _RECORDED_TOTAL.findall(self.stderr)
        return int(totals[-1]) if totals else None

    @property
    def message(self) -> str:
        """One line: what went wrong, in TFLM's words where it said any."""
        text = "; ".join(_native_lines(self.stderr.decode("utf-8", "replace")))
        if self.timed_out:
            head = f"TFLite Micro did not answer within {self.seconds:.0f} s"
        elif self.returncode is not None:
            head = _crash_text(self.returncode)
        else:
            head = ""
            text = text or self.error
        line = f"{head}: {text}" if head and text else head or text or "unknown failure"
        return line if len(line) <= _MESSAGE_CHARS else line[: _MESSAGE_CHARS - 3] + "..."


def keep_workers() -> None:
    """From now on, keep one worker process after its model is done, for the next
    :class:`Worker` of this process, which sends it a ``take`` request instead of
    starting Python and tflite_micro again (about 0.2 s). A sweep's worker process
    checks a model every trial. The kept process ends when this one exits (its input
    closes), or at the next :func:`end_kept_workers`."""
    if not _KEEP:
        _KEEP.append(tempfile.TemporaryDirectory(prefix="edgeprune-micro-kept-"))
        atexit.register(end_kept_workers)


@contextlib.contextmanager
def kept_workers():
    """:func:`keep_workers` for the block, then :func:`end_kept_workers`: a sweep
    worker run in the caller's own process leaves no process or setting behind."""
    keep_workers()
    try:
        yield
    finally:
        end_kept_workers()


def end_kept_workers() -> None:
    """End the kept worker processes and stop keeping them."""
    while _IDLE:
        proc, _, stderr_file = _IDLE.pop()
        _end(proc, stderr_file, kill=False)
    while _KEEP:
        _KEEP.pop().cleanup()


def _end(proc: subprocess.Popen, stderr_file, kill: bool) -> int | None:
    """Close a worker process's input, let it end (or kill it), and reap it."""
    if not kill:
        try:
            proc.stdin.close()  # the worker ends at end of input
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
    if proc.poll() is None:
        proc.kill()
    try:
        returncode = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        returncode = proc.wait()
    for stream in (proc.stdin, proc.stdout):
        try:
            stream.close()
        except OSError:
            pass
    if stderr_file is not None:
        stderr_file.close()
    return returncode


class Worker:
    """One model's worker process, started on the first request and restarted after it dies."""

    def __init__(self, model: bytes):
        self._tmp = tempfile.TemporaryDirectory(prefix="edgeprune-micro-")
        self.directory = Path(self._tmp.name)
        self._model_path = self.directory / "model.tflite"
        self._model_path.write_bytes(bytes(model))
        self._proc: subprocess.Popen | None = None
        self._stderr_file = None
        self._stderr_path: Path | None = None
        self._stderr_offset = 0
        self._pending = b""
        self.starts = 0
        self._verified = False  # a worker answered: LiteRT's verifier passed these bytes
        self._keepable = False  # started with its stderr and folder outside self.directory

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _start(self) -> None:
        self.starts += 1
        while _IDLE:
            proc, *rest = _IDLE.pop()
            if proc.args[2] != _WORKER_MODULE:  # started as another worker program
                _end(proc, rest[1], kill=False)
            elif self._adopt(proc, *rest):
                return
        # A kept worker outlives this object: its stderr file and folder must too.
        home = Path(_KEEP[0].name) if _KEEP else self.directory
        self._keepable = bool(_KEEP)
        self._stderr_path = home / f"stderr-{os.getpid()}-{id(self)}-{self.starts}.txt"
        self._stderr_file = open(self._stderr_path, "wb")  # noqa: SIM115 - closed in _reap
        self._stderr_offset = 0
        self._pending = b""
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", _WORKER_MODULE, str(self._model_path)]
            + (["--verified"] if self._verified else []),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            cwd=home,
            env=env,
            bufsize=0,
        )
        logger.debug("started TFLite Micro worker %d", self._proc.pid)

    def _adopt(self, proc, stderr_path: Path, stderr_file) -> bool:
        """Take a kept worker process and have it load this model; False if it failed."""
        self._proc, self._stderr_path, self._stderr_file = proc, stderr_path, stderr_file
        self._stderr_offset, self._pending, self._keepable = stderr_path.stat().st_size, b"", True
        request = {"cmd": "take", "path": str(self._model_path), "verified": self._verified}
        reply = self.request(request)
        if reply.ok or reply.stage == "verify":  # refused bytes: as a fresh worker refuses them
            return True
        self._reap()  # a crash or timeout has reaped it already
        return False

    def _read_stderr(self) -> bytes:
        if self._stderr_path is None:
            return b""
        with open(self._stderr_path, "rb") as f:
            f.seek(self._stderr_offset)
            data = f.read()
        self._stderr_offset += len(data)
        return data

    def _read_line(self, deadline: float) -> bytes | None:
        """The next answer line; b"" when the worker closed stdout, None on timeout."""
        fd = self._proc.stdout.fileno()
        while b"\n" not in self._pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                return b""
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line

    def _reap(self, kill: bool = True) -> int | None:
        """Reap the worker process (killed first, if ``kill`` and still alive)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        stderr_file, self._stderr_file = self._stderr_file, None
        return _end(proc, stderr_file, kill)

    def request(self, request: dict, timeout_s: float | None = None) -> Reply:
        """Send one request and wait for its answer; a dead or hung worker is a failed reply."""
        if timeout_s is None:
            timeout_s = REQUEST_TIMEOUT_S
        if self._proc is None:
            self._start()
        start = time.monotonic()
        try:
            self._proc.stdin.write(json.dumps(request).encode() + b"\n")
            line = self._read_line(start + timeout_s)
        except (BrokenPipeError, ConnectionResetError):
            line = b""
        seconds = time.monotonic() - start
        if line:
            answer = json.loads(line)
            self._verified = self._verified or answer.get("stage") != "verify"
            return Reply(
                ok=bool(answer.get("ok")),
                stage=answer.get("stage", ""),
                error=answer.get("error", ""),
                stderr=self._read_stderr(),
                seconds=seconds,
                details=answer,
            )
        timed_out = line is None
        returncode = self._reap(kill=True)
        stderr = self._read_stderr()
        reply = Reply(
            ok=False,
            stage="timeout" if timed_out else "crash",
            stderr=stderr,
            returncode=None if timed_out else returncode,
            timed_out=timed_out,
            seconds=seconds,
        )
        logger.debug("TFLite Micro worker lost on %s: %s", request.get("cmd"), reply.message)
        return reply

    def close(self) -> None:
        proc = self._proc
        if proc is not None and self._keepable and _KEEP and not _IDLE and proc.poll() is None:
            _IDLE.append((proc, self._stderr_path, self._stderr_file))  # answered its last request
            self._proc = self._stderr_file = None
        elif proc is not None:
            self._proc = None
            _end(proc, self._stderr_file, kill=False)
            self._stderr_file = None
        self._tmp.cleanup()
