"""Scripted faulty boards, for the fault tests and ``benchmarks/campaign_devices.py``.

* Serial: :class:`SerialFault` rewrites the answers of the emulated board
  (:mod:`edgeprune.tflm.board`) in one of the ways :data:`SERIAL` lists, once
  ``N`` samples have completed (``KIND@N``). :func:`scripted_board` answers
  without TFLite Micro (zeros for outputs) and :func:`serve_in_thread` puts it
  behind a pseudo-terminal in this process, so a fault test needs no model run.
* SSH: ``python -m edgeprune.runners.faulty ssh|scp ARGS`` stand in for OpenSSH
  on PATH (:func:`install_fake_ssh`): they run the "remote" commands here. With
  ``EDGEPRUNE_SSH_FAULT=KIND@N`` in the environment the board's runner is
  replaced by :func:`ssh_board`, which misbehaves as :data:`SSH` lists.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import time
from dataclasses import dataclass

import numpy as np

from edgeprune import protocol as p

#: Serial faults: what the board does once N samples have completed.
SERIAL = {
    "disconnect": "closes the port at the next INVOKE (an unplugged board)",
    "silent": "stops answering at the next INVOKE",
    "identity-short": "IDENTITY payload one byte short",
    "identity-max-payload-0": "IDENTITY with max payload 0",
    "identity-max-payload-4": "IDENTITY with max payload 4 (no room for a chunk)",
    "identity-clock-0": "IDENTITY with clock 0 Hz",
    "identity-arena-0": "IDENTITY with arena 0 bytes",
    "identity-input-bytes": "IDENTITY with the input tensor one byte larger",
    "ack-fail": "ACK with a failure status",
    "ack-long": "ACK payload of two bytes",
    "invoked-short": "INVOKED payload truncated",
    "invoked-fail": "INVOKED with a failure status",
    "invoke-refused": "ERROR frame answering INVOKE",
    "error-empty": "ERROR frame with no payload answering INVOKE",
    "wrong-type": "ACK answering INVOKE",
    "garbage": "noise without a sync answering INVOKE",
    "output-status-only": "OUTPUT frame carrying only its status byte",
    "output-short": "OUTPUT one byte short",
    "output-fail": "OUTPUT with a failure status",
}

#: SSH faults: what the board's runner does once N results were sent.
SSH = {
    "disconnect": "exits (the session drops)",
    "silent": "stops answering",
    "nan-ms": "a result time of NaN",
    "inf-ms": "a result time of infinity",
    "negative-ms": "a result time of -5 ms",
    "zero-ms": "a result time of 0 ms",
    "string-ms": 'a result time of "fast"',
    "short-payload": "a result one byte short",
    "huge-payload": "a result declaring 2**60 payload bytes",
    "wrong-index": "a result for the wrong sample",
    "error": "an error frame",
    "not-json": "a header that is not JSON",
    "header-list": "a JSON header that is a list",
    "huge-header": "a header length over the limit",
    "hello-missing": "a hello without the model's SHA-256 (N ignored)",
    "hello-bad-tensor": "a hello whose input tensor is a number (N ignored)",
    "exit-at-start": "exits before hello with a message on stderr (N ignored)",
}


def parse_fault(text: str, kinds: dict) -> tuple[str, int]:
    kind, _, after = text.partition("@")
    if kind not in kinds or not after.isdigit():
        raise ValueError(f"fault {text!r}: write KIND@N with KIND one of {', '.join(kinds)}")
    return kind, int(after)


# ---------------------------------------------------------------- serial


@dataclass
class SerialFault:
    kind: str
    after: int  # samples completed before the fault strikes

    @classmethod
    def parse(cls, text: str) -> SerialFault:
        return cls(*parse_fault(text, SERIAL))

    def answer(self, frame: p.Frame, reply: bytes, invokes: int) -> bytes:
        """The answer to send instead of ``reply`` (``invokes``: samples done before)."""
        from edgeprune.tflm.board import Disconnect

        kind, body = self.kind, bytearray(_payload(reply))
        if frame.kind == p.HELLO and kind.startswith("identity-"):
            ident = p.IDENTITY_BODY.unpack(body)
            fields = list(ident)
            if kind == "identity-short":
                return p.encode(p.IDENTITY, bytes(body[:-1]))
            index, value = {
                "identity-max-payload-0": (7, 0),
                "identity-max-payload-4": (7, 4),
                "identity-clock-0": (6, 0),
                "identity-arena-0": (3, 0),
                "identity-input-bytes": (4, fields[4] + 1),
            }[kind]
            fields[index] = value
            return p.encode(p.IDENTITY, p.IDENTITY_BODY.pack(*fields))
        if frame.kind == p.SET_INPUT and invokes >= self.after:
            if kind == "ack-fail":
                return p.encode(p.ACK, bytes([p.ERR_RANGE]))
            if kind == "ack-long":
                return p.encode(p.ACK, bytes([p.STATUS_OK, 0]))
        if frame.kind == p.INVOKE and invokes >= self.after:
            if kind == "disconnect":
                raise Disconnect
            simple = {
                "silent": b"",
                "invoked-short": p.encode(p.INVOKED, bytes(body[:5])),
                "invoked-fail": p.encode(p.INVOKED, p.INVOKED_BODY.pack(p.ERR_INVOKE, 1000)),
                "invoke-refused": p.encode(p.ERROR, bytes([p.ERR_INVOKE]) + b"arena overflow"),
                "error-empty": p.encode(p.ERROR),
                "wrong-type": p.encode(p.ACK, bytes([p.STATUS_OK])),
                "garbage": bytes(range(7, 71)),
            }
            if kind in simple:
                return simple[kind]
        if frame.kind == p.GET_OUTPUT and invokes > self.after:
            if kind == "output-status-only":
                return p.encode(p.OUTPUT, bytes([p.STATUS_OK]))
            if kind == "output-short":
                return p.encode(p.OUTPUT, bytes(body[:-1]))
            if kind == "output-fail":
                return p.encode(p.OUTPUT, bytes([p.ERR_RANGE]) + bytes(body[1:]))
        return reply


def _payload(frame: bytes) -> bytes:
    return frame[2 + p.HEADER.size : -p.CRC.size]


class _ZeroInterpreter:
    """TFLite Micro's interface for one input and one output, answering zeros."""

    def __init__(self, model: bytes) -> None:
        from edgeprune.tflite import inspect_model

        info = inspect_model(model)
        self.details = [
            {"shape": np.array(t.shape), "dtype": np.dtype(t.dtype)}
            for t in (info.inputs[0], info.outputs[0])
        ]

    def get_input_details(self, index: int) -> dict:
        return self.details[0]

    def get_output_details(self, index: int) -> dict:
        return self.details[1]

    def set_input(self, x, index: int) -> None:
        time.sleep(0.0005)  # an invoke takes time: the cycle count is never zero

    def invoke(self) -> None:
        pass

    def get_output(self, index: int) -> np.ndarray:
        d = self.details[1]
        return np.zeros(tuple(d["shape"]), d["dtype"])


def scripted_board(model: bytes, clock_hz: int = 64_000_000):
    """The emulated board's protocol handling without TFLite Micro (outputs are zeros)."""
    from edgeprune.tflm.board import Board

    return Board(model, 4096, clock_hz, interpreter=_ZeroInterpreter(model))


def serve_in_thread(board, fault: SerialFault | None = None):
    """Serve ``board`` on a new pseudo-terminal from a thread; return (port, stop) where
    ``stop()`` ends the thread and closes the terminal."""
    import threading
    import tty

    from edgeprune.tflm.board import serve

    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    port = os.ttyname(slave)
    done = threading.Event()

    def loop() -> None:
        try:
            serve(master, board, fault=fault, stop=done.is_set)
        finally:
            os.close(master)  # a disconnect fault: the host sees the port fail

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join(timeout=2)
        os.close(slave)

    return port, stop


# ---------------------------------------------------------------- ssh


def install_fake_ssh(folder: str) -> str:
    """Write ``ssh``, ``scp`` and ``python3`` into ``folder`` that run everything on
    this machine with this Python; return ``folder`` (put it first on PATH)."""
    os.makedirs(folder, exist_ok=True)
    for name in ("ssh", "scp"):
        path = os.path.join(folder, name)
        with open(path, "w") as fh:
            fh.write(
                f'#!/bin/sh\nexec "{sys.executable}" -m edgeprune.runners.faulty {name} "$@"\n'
            )
        os.chmod(path, 0o755)
    python = os.path.join(folder, "python3")  # a script: a venv's python found by a
    with open(python, "w") as fh:  # symlink elsewhere would not find the venv
        fh.write(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    os.chmod(python, 0o755)
    return folder


def _positional(argv: list[str]) -> list[str]:
    """``argv`` without OpenSSH's options (those the runner passes take a value)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--":
            return out + argv[i + 1 :]
        if argv[i] in ("-o", "-F", "-i", "-p", "-P"):
            i += 2
            continue
        if argv[i].startswith("-"):
            i += 1
            continue
        out.append(argv[i])
        i += 1
    return out


def fake_ssh(argv: list[str]) -> int:
    remote = _positional(argv)[1]  # after the destination
    fault = os.environ.get("EDGEPRUNE_SSH_FAULT")
    if fault and "board_script.py" in remote:
        folder = remote.split("&&")[0].strip()[3:].strip().strip("'")
        model = remote.split("board_script.py", 1)[1].split()[0].strip("'")
        return ssh_board(os.path.join(folder, model), fault)
    os.execvp("sh", ["sh", "-c", remote])
    return 127  # pragma: no cover - exec does not return


def fake_scp(argv: list[str]) -> int:
    import shutil

    *sources, target = _positional(argv)
    folder = target.split(":/", 1)[1]
    for source in sources:
        shutil.copy(source, "/" + folder)
    return 0


def ssh_board(model_path: str, fault: str) -> int:
    """The board's runner speaking :mod:`board_script`'s frames on stdin and stdout,
    with zeros for outputs and the fault ``KIND@N`` (see :data:`SSH`)."""
    from edgeprune.runners import board_script as wire
    from edgeprune.tflite import inspect_model

    kind, after = parse_fault(fault, SSH)
    out, source = sys.stdout.buffer, sys.stdin.buffer
    with open(model_path, "rb") as fh:
        model = fh.read()
    if kind == "exit-at-start":
        said = "python3: can't open file 'board_script.py': [Errno 2] No such file or directory"
        print(said, file=sys.stderr)
        return 1
    info = inspect_model(model)
    inp, outp = info.inputs[0], info.outputs[0]

    def tensor(t):
        return {"shape": list(t.shape), "dtype": t.dtype, "scale": 1.0, "zero_point": 0}

    hello = {
        "op": "hello",
        "runtime": "scripted",
        "kernels": "none",
        "threads": 1,
        "python": "3",
        "numpy": np.__version__,
        "board": "a scripted faulty board",
        "machine": "none",
        "cores": 1,
        "sha256": hashlib.sha256(model).hexdigest(),
        "input": tensor(inp),
        "output": tensor(outp),
        "warmup_ms": 1.0,
    }
    if kind == "hello-missing":
        del hello["sha256"]
    if kind == "hello-bad-tensor":
        hello["input"] = 7
    wire.write_frame(out, hello)
    out_bytes = int(np.prod(outp.shape)) * np.dtype(outp.dtype).itemsize
    index = 0
    while True:
        header, _ = wire.read_frame(source)
        if header.get("op") != "batch":
            return 0
        for _ in range(int(header["n"])):
            if index < after:
                wire.write_frame(
                    out, {"op": "result", "index": index, "ms": 1.5}, b"\0" * out_bytes
                )
                index += 1
                continue
            _misbehave(kind, out, index, out_bytes)
            if kind == "disconnect":
                return 3
            while source.read(1 << 16):  # the host must see the fault, not the session's
                pass  # end: wait until it hangs up
            return 0


def _misbehave(kind: str, out, index: int, out_bytes: int) -> None:
    from edgeprune.runners import board_script as wire

    result = {"op": "result", "index": index, "ms": 1.5}
    payload = b"\0" * out_bytes
    if kind == "silent":
        pass
    elif kind in ("nan-ms", "inf-ms", "negative-ms", "zero-ms", "string-ms"):
        ms = {"nan-ms": float("nan"), "inf-ms": float("inf"), "negative-ms": -5.0}
        result["ms"] = ms.get(kind, 0.0 if kind == "zero-ms" else "fast")
        wire.write_frame(out, result, payload)
    elif kind == "short-payload":
        wire.write_frame(out, result, payload[:-1])
    elif kind == "huge-payload":
        text = json.dumps(result).encode()
        out.write(wire.HEAD.pack(len(text)) + text + wire.BODY.pack(1 << 60) + payload)
    elif kind == "wrong-index":
        wire.write_frame(out, {**result, "index": index + 1}, payload)
    elif kind == "error":
        wire.write_frame(out, {"op": "error", "message": "RuntimeError: invoke failed"})
    elif kind == "not-json":
        out.write(wire.HEAD.pack(5) + b"\xff{oops"[:5] + wire.BODY.pack(0))
    elif kind == "header-list":
        text = b"[1, 2]"
        out.write(wire.HEAD.pack(len(text)) + text + wire.BODY.pack(0))
    elif kind == "huge-header":
        out.write(struct.pack(">I", wire.MAX_HEADER + 1))
    out.flush()


def main(argv: list[str]) -> int:
    tool, rest = argv[0], argv[1:]
    if tool == "ssh":
        return fake_ssh(rest)
    if tool == "scp":
        return fake_scp(rest)
    raise SystemExit("usage: python -m edgeprune.runners.faulty ssh|scp ARGS")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
