"""The frames of :mod:`edgeprune.runners.board_script` over the ssh process's pipes,
with deadlines, and the checks of what the board sends: a board's runner that
breaks the framing or sends impossible values (a NaN or negative time, a
payload that is not the output tensor) is refused here, before any figure is
kept.
"""

from __future__ import annotations

import json
import math
import os
import select
import subprocess
import threading
import time

from edgeprune.errors import DeviceError, clip
from edgeprune.runners import board_script as wire


class BoardSilent(DeviceError):
    """The board did not answer within the timeout."""


class BoardGone(DeviceError):
    """The SSH session ended (the board rebooted, the network dropped, the runner died)."""


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def hint(said: str) -> str:
    low = said.lower()
    if "host key verification failed" in low:
        return "; connect once with plain `ssh` to accept the board's host key"
    if "permission denied" in low:
        return (
            "; the runner logs in without a password: install a key on the board "
            "(ssh-copy-id) or name it in [validate] ssh_key"
        )
    if "could not resolve" in low or "connection refused" in low or "timed out" in low:
        return "; check the address, the port and that the board is on"
    return ""


class Link:
    """Frames of :mod:`board_script` over the ssh process's pipes, with deadlines."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.buffer = bytearray()
        self.stderr = bytearray()
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()
        os.set_blocking(proc.stdin.fileno(), False)

    def _read_stderr(self) -> None:
        for line in iter(self.proc.stderr.readline, b""):
            self.stderr += line
            del self.stderr[:-8192]

    def _gone(self, waiting_for: str) -> BoardGone:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        self._drain.join(timeout=1)
        said = last_line(self.stderr.decode(errors="replace"))
        status = f"exit status {code}" if code is not None else "no exit status"
        return BoardGone(
            f"the ssh session ended while waiting for the {waiting_for} "
            f"({status}{': ' + said if said else ''}){hint(said)}"
        )

    def send(self, header: dict, payload: bytes, timeout: float) -> None:
        text = json.dumps(header).encode()
        data = memoryview(wire.HEAD.pack(len(text)) + text + wire.BODY.pack(len(payload)) + payload)
        fd = self.proc.stdin.fileno()
        deadline = time.monotonic() + timeout
        while data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BoardSilent(f"the board took no input for {timeout:g} s")
            _, ready, _ = select.select([], [fd], [], left)
            if not ready:
                continue
            try:
                data = data[os.write(fd, data) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise self._gone("board to take input") from None

    def _fill(self, n: int, deadline: float, timeout: float, waiting_for: str) -> bytes:
        fd = self.proc.stdout.fileno()
        while len(self.buffer) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BoardSilent(f"no {waiting_for} within {timeout:g} s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self._gone(waiting_for)
            self.buffer += chunk
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def receive(
        self, timeout: float, waiting_for: str, max_payload: int | None = None
    ) -> tuple[dict, bytes]:
        """The next frame's header (a JSON object) and payload, within ``timeout``.

        Raises:
            BoardSilent: nothing whole within ``timeout``.
            BoardGone: the session ended.
            DeviceError: a frame that is not the board's runner's (not JSON, not
                an object, a header or payload larger than possible).
        """
        deadline = time.monotonic() + timeout
        (size,) = wire.HEAD.unpack(self._fill(wire.HEAD.size, deadline, timeout, waiting_for))
        if size > wire.MAX_HEADER:
            raise DeviceError(
                f"the board's runner sent a {size}-byte header: something on "
                f"the board writes to stdout (a login banner in .bashrc?)"
            )
        try:
            header = json.loads(self._fill(size, deadline, timeout, waiting_for))
        except ValueError:  # also a UnicodeDecodeError
            header = None
        if not isinstance(header, dict):
            raise DeviceError(
                "the board's runner sent a frame that is not a JSON object: "
                "something on the board writes to stdout"
            )
        (length,) = wire.BODY.unpack(self._fill(wire.BODY.size, deadline, timeout, waiting_for))
        if header.get("op") == "error":
            max_payload = None if max_payload is None else max(max_payload, 0)
        if max_payload is not None and length > max_payload:
            raise DeviceError(
                f"the board's runner declared a {length:,}-byte payload for "
                f"{waiting_for}, at most {max_payload:,} are possible: the stream is out of step"
            )
        return header, self._fill(length, deadline, timeout, waiting_for)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._drain.join(timeout=1)


def _fields(header: dict, what: str, fields: dict) -> None:
    for key, kinds in fields.items():
        value = header.get(key)
        if not isinstance(value, kinds) or isinstance(value, bool):
            raise DeviceError(
                f"the board's runner sent a {what} with {key} = {str(value)[:40]!r}; "
                f"copy this edgeprune's board_script.py (the board runs another version)"
            )


def check_hello(header: dict) -> dict:
    """``header`` if it is a hello with every field the runner reads, of its type.

    Raises:
        DeviceError: another message, or a field missing or of the wrong type.
    """
    if header.get("op") != "hello":
        raise DeviceError(f"the board's runner answered {str(header.get('op'))[:40]!r}, not hello")
    text = ("sha256", "runtime", "kernels", "python", "numpy", "board", "machine")
    # cores: os.cpu_count() on the board, None where it cannot tell
    fields = {**dict.fromkeys(text, str), "threads": int, "cores": (int, type(None))}
    _fields(header, "hello", {**fields, "warmup_ms": (int, float)})
    _fields(header, "hello", {"input": dict, "output": dict})
    for key in ("input", "output"):
        _fields(header[key], f"hello {key}", {"dtype": str, "shape": list})
    if not math.isfinite(header["warmup_ms"]) or header["warmup_ms"] < 0:
        raise DeviceError(
            f"the board's runner reported a warm-up of {header['warmup_ms']} ms; an invoke "
            f"takes a finite, positive time (the board's clock is broken)"
        )
    return header


def check_result(header: dict, payload: bytes, index: int, out_bytes: int) -> float:
    """The time in ms of the result frame ``header`` for sample ``index`` (0-based).

    Raises:
        DeviceError: an error frame, another message or sample, a time that is
            not a finite positive number, or a payload that is not the output
            tensor's ``out_bytes``.
    """
    if header.get("op") == "error":
        raise DeviceError(f"the board's runner: {clip(header.get('message'))}")
    if header.get("op") != "result" or header.get("index") != index:
        raise DeviceError(
            f"the board's runner answered {clip(header, 120)} for sample {index + 1}: out of step"
        )
    ms = header.get("ms")
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms) or ms <= 0:
        raise DeviceError(
            f"the board's runner reported {str(ms)[:40]} ms for sample {index + 1}; an invoke "
            f"takes a finite, positive time (the board's clock is broken)"
        )
    if len(payload) != out_bytes:
        raise DeviceError(
            f"the board's runner sent {len(payload)} bytes for sample {index + 1}, the "
            f"output tensor has {out_bytes}"
        )
    return float(ms)
