"""An emulated validation board: the firmware's serial protocol on the tflite-micro
interpreter, behind a pseudo-terminal.

    python -m edgeprune.tflm.board MODEL.tflite [--arena BYTES] [--clock-hz HZ]
        [--corrupt-every K] [--silent-after N] [--model-crc CRC]

prints the pseudo-terminal's path on its first line, then answers frames on it
as the firmware does (``firmware/validation/``), until it is killed. The host
side (``runners.serial``) is tested against it byte for byte. Faults for those
tests: ``--corrupt-every K`` flips a byte in every K-th answer (the host sees
a CRC error and resends), ``--silent-after N`` stops answering after N
invokes, ``--model-crc`` reports another model's CRC, ``--fault KIND@N``
misbehaves as :data:`edgeprune.runners.faulty.SERIAL` lists (``disconnect@N``
closes the pseudo-terminal and exits after N samples, as an unplugged board).

The cycle count of an invoke is the host's wall time times ``--clock-hz``:
an emulator has no cycle counter.

The board loads TFLite Micro in its own process through
:func:`edgeprune.tflm.worker.load_interpreter` rather than asking a worker
process: it is already a process of its own, started and killed by its
caller, and a TFLM crash here ends it as a crash ends a real board (the host
sees a device that stopped answering). A worker behind it would add a second
process and a JSON round trip to every invoke and change nothing about safety.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tty

import numpy as np

from edgeprune import protocol as p
from edgeprune.tflm.worker import load_interpreter


class Board:
    """The firmware's request handling, on bytes in and bytes out."""

    def __init__(
        self,
        model: bytes,
        arena_bytes: int,
        clock_hz: int,
        model_crc: int | None = None,
        interpreter=None,
    ) -> None:
        # ``interpreter``: a stand-in with TFLM's interface (runners.faulty's scripted
        # board answers without running the model)
        self.interpreter = interpreter or load_interpreter(model, arena_bytes)
        inp = self.interpreter.get_input_details(0)
        out = self.interpreter.get_output_details(0)
        self.in_shape, self.in_dtype = tuple(inp["shape"]), np.dtype(inp["dtype"])
        self.out_shape = tuple(out["shape"])
        self.input = bytearray(int(np.prod(self.in_shape)) * self.in_dtype.itemsize)
        self.output = bytearray(int(np.prod(self.out_shape)) * np.dtype(out["dtype"]).itemsize)
        self.identity = p.Identity(
            p.VERSION,
            p.model_crc32(model) if model_crc is None else model_crc,
            len(model),
            arena_bytes,
            len(self.input),
            len(self.output),
            clock_hz,
            p.MAX_PAYLOAD,
        )
        self.clock_hz = clock_hz
        self.invokes = 0

    def handle(self, frame: p.Frame) -> bytes:
        """The encoded answer to one request frame."""
        kind, body = frame.kind, frame.payload
        if kind == p.HELLO:
            return p.encode(p.IDENTITY, self.identity.pack())
        if kind == p.SET_INPUT:
            if len(body) < p.OFFSET.size:
                return _error(p.ERR_LENGTH, "SET_INPUT needs an offset")
            (offset,) = p.OFFSET.unpack_from(body)
            data = body[p.OFFSET.size :]
            if offset + len(data) > len(self.input):
                return _error(p.ERR_RANGE, f"input has {len(self.input)} bytes")
            self.input[offset : offset + len(data)] = data
            return p.encode(p.ACK, bytes([p.STATUS_OK]))
        if kind == p.INVOKE:
            x = np.frombuffer(bytes(self.input), self.in_dtype).reshape(self.in_shape)
            began = time.perf_counter()
            try:
                self.interpreter.set_input(x, 0)
                self.interpreter.invoke()
            except Exception as exc:  # noqa: BLE001 - TFLM reports failures as RuntimeError
                return _error(p.ERR_INVOKE, str(exc)[:200])
            cycles = max(1, int((time.perf_counter() - began) * self.clock_hz))
            self.output[:] = np.ascontiguousarray(self.interpreter.get_output(0)).tobytes()
            self.invokes += 1
            return p.encode(p.INVOKED, p.INVOKED_BODY.pack(p.STATUS_OK, cycles))
        if kind == p.GET_OUTPUT:
            if len(body) != p.OFFSET_COUNT.size:
                return _error(p.ERR_LENGTH, "GET_OUTPUT needs an offset and a count")
            offset, count = p.OFFSET_COUNT.unpack(body)
            if offset + count > len(self.output) or count > p.MAX_PAYLOAD - 1:
                return _error(p.ERR_RANGE, f"output has {len(self.output)} bytes")
            return p.encode(
                p.OUTPUT, bytes([p.STATUS_OK]) + bytes(self.output[offset : offset + count])
            )
        return _error(p.ERR_TYPE, f"unknown message type 0x{kind:02x}")


def _error(code: int, message: str) -> bytes:
    return p.encode(p.ERROR, bytes([code]) + message.encode()[: p.MAX_PAYLOAD - 1])


class Disconnect(Exception):
    """Raised by a fault to end :func:`serve` as an unplugged board would."""


def serve(
    fd: int,
    board: Board,
    corrupt_every: int = 0,
    silent_after: int | None = None,
    fault=None,
    stop=None,
) -> None:
    """Answer the frames that arrive on ``fd`` until the process is killed, ``stop()``
    is true or ``fault`` disconnects (``fault.answer(frame, reply, invokes)`` may
    replace each encoded answer, see :mod:`edgeprune.runners.faulty`)."""
    import select

    reader = p.FrameReader()
    answers = 0
    while stop is None or not stop():
        if not select.select([fd], [], [], 0.05)[0]:
            continue
        try:
            data = os.read(fd, 4096)
        except OSError:  # the other side closed: wait for it to reopen
            time.sleep(0.01)
            continue
        if not data:
            time.sleep(0.01)
            continue
        reader.feed(data)
        while True:
            try:
                frame = reader.next()
            except p.FrameError:
                _send(fd, _error(p.ERR_CRC, "frame CRC mismatch; resend"))
                continue
            if frame is None:
                break
            if silent_after is not None and board.invokes >= silent_after:
                continue  # a board that stopped answering
            invokes = board.invokes
            reply = bytearray(board.handle(frame))
            if fault is not None:
                try:
                    reply = bytearray(fault.answer(frame, bytes(reply), invokes))
                except Disconnect:
                    return
            answers += 1
            if corrupt_every and reply and answers % corrupt_every == 0:
                reply[-1] ^= 0xFF  # the CRC no longer matches
            _send(fd, bytes(reply))


def _send(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except OSError:  # the host closed its side: the answer is lost, as on a wire
        pass


def main(argv: list[str] | None = None) -> int:
    """Start the emulated board (see the module docstring); runs until killed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument(
        "--arena", type=int, default=None, help="arena bytes (default: the smallest that works)"
    )
    ap.add_argument("--clock-hz", type=int, default=64_000_000)
    ap.add_argument("--corrupt-every", type=int, default=0)
    ap.add_argument("--silent-after", type=int, default=None)
    ap.add_argument("--model-crc", type=lambda s: int(s, 0), default=None)
    ap.add_argument(
        "--fault", default=None, help="KIND@N: misbehave after N samples (runners.faulty.SERIAL)"
    )
    args = ap.parse_args(argv)
    with open(args.model, "rb") as fh:
        model = fh.read()
    arena = args.arena
    if arena is None:
        from edgeprune.tflm import probe as micro

        arena = micro.find_arena(model).required_bytes()
    board = Board(model, arena, args.clock_hz, args.model_crc)
    master, slave = os.openpty()
    tty.setraw(slave)
    tty.setraw(master)
    print(os.ttyname(slave), flush=True)
    fault = None
    if args.fault:
        from edgeprune.runners.faulty import SerialFault

        fault = SerialFault.parse(args.fault)
    serve(master, board, args.corrupt_every, args.silent_after, fault)
    os.close(master)  # a fault disconnected: the host's port fails as when unplugged
    return 0


if __name__ == "__main__":
    sys.exit(main())
