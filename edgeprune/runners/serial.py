"""Run a model on a microcontroller flashed with the validation firmware, over a UART.

The device speaks :mod:`edgeprune.protocol`. The runner asks for the device's
identity first and refuses a device whose model CRC or tensor sizes are not
this model's. Then, per sample: the input tensor (quantized here, as the
firmware's tensor holds it) in chunks, INVOKE (the device reports the cycles
it counted), the output tensor in chunks. Every request waits at most
``timeout_s``; a corrupted frame either way is resent, up to ``retries``
times. A device that stops answering ends the run with the samples done so
far, marked partial, and the error names the request and the sample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from edgeprune import protocol as p
from edgeprune.errors import BadInputError, DeviceError
from edgeprune.runners.host import dequantize, quantize, tensor_detail


class DeviceSilent(DeviceError):
    """No valid answer within the timeout, after every retry."""


def parse_address(address: str) -> tuple[str, int]:
    """``/dev/ttyACM0`` or ``/dev/ttyACM0@921600`` -> (port, baud; default 115200)."""
    port, _, baud = address.partition("@")
    if not port:
        raise BadInputError(
            f"serial device '{address}' names no port; write it like "
            f"/dev/ttyACM0 or /dev/ttyACM0@115200"
        )
    try:
        return port, int(baud) if baud else 115200
    except ValueError:
        raise BadInputError(
            f"serial device '{address}': baud rate '{baud}' is not a number; "
            f"write it like /dev/ttyACM0@115200"
        ) from None


@dataclass
class SerialRunner:
    model: bytes
    address: str
    timeout_s: float = 10.0
    retries: int = 3

    name = "serial"

    def __post_init__(self) -> None:
        from edgeprune.tflite import inspect_model

        self.port, self.baud = parse_address(self.address)
        info = inspect_model(self.model)
        self.inp, self.out = info.inputs[0], info.outputs[0]
        self.retried = 0  # resends after corrupted frames, over the run

    # ------------------------------------------------------------ transport

    def _open(self):
        try:
            import serial
        except ImportError:  # pragma: no cover - a declared dependency
            raise BadInputError("the serial runner needs pyserial; pip install pyserial") from None
        try:
            return serial.Serial(self.port, self.baud, timeout=0.05, write_timeout=self.timeout_s)
        except (serial.SerialException, OSError) as exc:
            raise BadInputError(
                f"cannot open serial device {self.port} ({exc}); check the "
                f"port and that nothing else holds it"
            ) from None

    def request(self, link, kind: int, payload: bytes, expect: int) -> bytes:
        """Send one request, return the payload of its answer of type ``expect``."""
        frame = p.encode(kind, payload)
        last = "no answer"
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
            link.reset_input_buffer()
            link.write(frame)
            reader = p.FrameReader()
            deadline = time.monotonic() + self.timeout_s
            while time.monotonic() < deadline:
                data = link.read(1)  # waits up to the port's 50 ms read timeout
                if data:
                    reader.feed(data + link.read(link.in_waiting))
                try:
                    answer = reader.next()
                except p.FrameError as exc:
                    last = f"corrupted answer ({exc})"
                    break
                if answer is None:
                    continue
                if answer.kind == p.ERROR:
                    code = answer.payload[0] if answer.payload else 0
                    text = answer.payload[1:].decode(errors="replace")
                    if code == p.ERR_CRC:
                        last = "the device saw a corrupted request"
                        break
                    raise DeviceError(
                        f"the device refused {p.NAMES[kind]}: "
                        f"{p.ERROR_NAMES.get(code, code)} ({text})"
                    )
                if answer.kind != expect:
                    last = f"answered {answer.name} to {p.NAMES[kind]}"
                    break
                return answer.payload
            else:
                last = f"no answer within {self.timeout_s:g} s"
        raise DeviceSilent(f"{p.NAMES[kind]}: {last}, after {self.retries + 1} attempts")

    # ------------------------------------------------------------ protocol

    def identify(self, link) -> p.Identity:
        ident = p.Identity.unpack(self.request(link, p.HELLO, b"", p.IDENTITY))
        want = p.model_crc32(self.model)
        if ident.version != p.VERSION:
            raise DeviceError(
                f"the device speaks protocol version {ident.version}, this "
                f"edgeprune {p.VERSION}; flash the firmware of this run"
            )
        if ident.model_crc32 != want or ident.model_bytes != len(self.model):
            raise DeviceError(
                f"the device at {self.port} runs another model (CRC-32 0x{ident.model_crc32:08x}"
                f", {ident.model_bytes:,} bytes), not this run's (0x{want:08x}, "
                f"{len(self.model):,} bytes); flash the firmware/ folder of this run"
            )
        in_bytes = int(np.prod(self.inp.shape)) * np.dtype(self.inp.dtype).itemsize
        out_bytes = int(np.prod(self.out.shape)) * np.dtype(self.out.dtype).itemsize
        if (ident.input_bytes, ident.output_bytes) != (in_bytes, out_bytes):
            raise DeviceError(
                f"the device's tensors hold {ident.input_bytes} and "
                f"{ident.output_bytes} bytes, the model's {in_bytes} and "
                f"{out_bytes}; flash the firmware/ folder of this run"
            )
        return ident

    def _quantize(self, x: np.ndarray) -> bytes:
        return quantize(x, tensor_detail(self.inp)).tobytes()

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        return dequantize(raw, tensor_detail(self.out))

    def run(self, x: np.ndarray):
        from edgeprune.runners import RunOutput

        out_dtype = np.dtype(self.out.dtype)
        out_bytes = int(np.prod(self.out.shape)) * out_dtype.itemsize
        raws, times, error = [], [], ""
        step = ""
        with self._open() as link:
            ident = self.identify(link)
            chunk = min(ident.max_payload, p.MAX_PAYLOAD) - p.OFFSET.size
            try:
                for i in range(len(x)):
                    data = self._quantize(x[i : i + 1])
                    step = f"SET_INPUT of sample {i + 1}"
                    for off in range(0, len(data), chunk):
                        self.request(
                            link, p.SET_INPUT, p.OFFSET.pack(off) + data[off : off + chunk], p.ACK
                        )
                    step = f"INVOKE of sample {i + 1}"
                    status, cycles = p.INVOKED_BODY.unpack(
                        self.request(link, p.INVOKE, b"", p.INVOKED)
                    )
                    step = f"GET_OUTPUT of sample {i + 1}"
                    got = bytearray()
                    while len(got) < out_bytes:
                        n = min(chunk, out_bytes - len(got))
                        reply = self.request(
                            link, p.GET_OUTPUT, p.OFFSET_COUNT.pack(len(got), n), p.OUTPUT
                        )
                        got += reply[1:]
                    raws.append(
                        np.frombuffer(bytes(got), out_dtype).reshape(1, *self.out.shape[1:])
                    )
                    times.append(cycles / ident.clock_hz * 1000.0)
            except DeviceSilent as exc:
                error = (
                    f"the device stopped answering at {step} of {len(x)} "
                    f"({len(raws)} completed): {exc}"
                )
            except KeyboardInterrupt:
                error = f"interrupted at {step} of {len(x)} ({len(raws)} completed)"
        raw = np.concatenate(raws) if raws else np.zeros((0, *self.out.shape[1:]), out_dtype)
        where = (
            f"serial device {self.port} at {self.baud} baud: model CRC-32 "
            f"0x{ident.model_crc32:08x}, arena {ident.arena_bytes:,} B, clock "
            f"{ident.clock_hz / 1e6:g} MHz"
            + (f"; {self.retried} request(s) resent after corrupted frames" if self.retried else "")
        )
        return RunOutput(
            self._dequantize(raw),
            raw,
            np.asarray(times),
            f"the device's cycle count of each invoke / its {ident.clock_hz / 1e6:g} MHz clock",
            where,
            bool(error),
            error,
            ident.clock_hz,
        )
