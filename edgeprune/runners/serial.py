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


class DeviceGone(DeviceError):
    """The serial port failed: the board was unplugged, reset or its process died."""


def _decode_error(kind: int, payload: bytes) -> tuple[int, str]:
    try:
        return p.decode_error(payload)
    except p.ProtocolError as exc:
        raise DeviceError(
            f"the device answered {p.NAMES[kind]} with a broken frame: {exc}"
        ) from None


def _decoded(decode, *args):
    """``decode(*args)``, the protocol's refusal of an answer raised as a DeviceError."""
    try:
        return decode(*args)
    except p.ProtocolError as exc:
        raise DeviceError(str(exc)) from None


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
        """Send one request, return the payload of its answer of type ``expect``.

        Every attempt waits at most ``timeout_s``, so a request ends within
        ``(retries + 1) * timeout_s`` whatever the device sends.

        Raises:
            DeviceSilent: no valid answer after every retry.
            DeviceGone: the port failed (the board was unplugged or reset).
            DeviceError: the device refused the request (an ERROR frame).
        """
        import termios

        import serial

        try:
            return self._request(link, kind, payload, expect)
        except serial.SerialTimeoutException:
            raise DeviceSilent(
                f"{p.NAMES[kind]}: the device took no input within {self.timeout_s:g} s"
            ) from None
        except (serial.SerialException, OSError, termios.error) as exc:
            raise DeviceGone(
                f"{p.NAMES[kind]}: the serial port {self.port} failed ({exc}); the board "
                f"was unplugged or reset"
            ) from None

    def _request(self, link, kind: int, payload: bytes, expect: int) -> bytes:
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
                    reader.feed(data + link.read(min(link.in_waiting, 4096)))
                try:
                    answer = reader.next()
                except p.FrameError as exc:
                    last = f"corrupted answer ({exc})"
                    break
                if answer is None:
                    continue
                if answer.kind == p.ERROR:
                    code, text = _decode_error(kind, answer.payload)
                    if code == p.ERR_CRC:
                        last = "the device saw a corrupted request"
                        break
                    raise DeviceError(
                        f"the device refused {p.NAMES[kind]}: "
                        f"{p.ERROR_NAMES.get(code, f'error code {code}')} ({text})"
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
        ident = _decoded(p.Identity.unpack, self.request(link, p.HELLO, b"", p.IDENTITY))
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
        """Run every sample of ``x`` on the device. A fault (a device that stops
        answering, refuses a request, breaks the protocol or disconnects) ends the
        run with the samples completed so far, marked partial; none completed is a
        partial result too.

        Raises:
            BadInputError: the port cannot be opened.
        """
        from edgeprune.runners import RunOutput, sample_progress

        out_dtype = np.dtype(self.out.dtype)
        raws, times, error = [], [], ""
        ident, step = None, "HELLO, before sample 1"
        with self._open() as link:
            try:
                ident = self.identify(link)
                with sample_progress("the serial device", len(x)) as bar:
                    for i in range(len(x)):
                        step = f"SET_INPUT of sample {i + 1}"
                        self._set_input(link, x[i : i + 1], ident)
                        step = f"INVOKE of sample {i + 1}"
                        cycles = _decoded(
                            p.decode_invoked, self.request(link, p.INVOKE, b"", p.INVOKED)
                        )
                        step = f"GET_OUTPUT of sample {i + 1}"
                        got = self._get_output(link, ident)
                        raws.append(np.frombuffer(got, out_dtype).reshape(1, *self.out.shape[1:]))
                        times.append(cycles / ident.clock_hz * 1000.0)
                        bar.advance()
            except DeviceError as exc:
                what = (
                    "stopped answering" if isinstance(exc, (DeviceSilent, DeviceGone)) else "failed"
                )
                error = f"the device {what} at {step} of {len(x)} ({len(raws)} completed): {exc}"
            except KeyboardInterrupt:
                error = f"interrupted at {step} of {len(x)} ({len(raws)} completed)"
        raw = np.concatenate(raws) if raws else np.zeros((0, *self.out.shape[1:]), out_dtype)
        where = f"serial device {self.port} at {self.baud} baud"
        timing = "the device's cycle count of each invoke / its clock"
        if ident is not None:
            where += (
                f": model CRC-32 0x{ident.model_crc32:08x}, arena {ident.arena_bytes:,} B, "
                f"clock {ident.clock_hz / 1e6:g} MHz"
            )
            timing = (
                f"the device's cycle count of each invoke / its {ident.clock_hz / 1e6:g} MHz clock"
            )
        if self.retried:
            where += f"; {self.retried} request(s) resent after corrupted frames"
        return RunOutput(
            self._dequantize(raw),
            raw,
            np.asarray(times, dtype=np.float64),
            timing,
            where,
            bool(error),
            error,
            ident.clock_hz if ident is not None else None,
        )

    def _set_input(self, link, x: np.ndarray, ident: p.Identity) -> None:
        data = self._quantize(x)
        chunk = min(ident.max_payload, p.MAX_PAYLOAD) - p.OFFSET.size
        for off in range(0, len(data), chunk):
            ack = self.request(
                link, p.SET_INPUT, p.OFFSET.pack(off) + data[off : off + chunk], p.ACK
            )
            _decoded(p.decode_ack, ack)

    def _get_output(self, link, ident: p.Identity) -> bytes:
        out_bytes = ident.output_bytes  # identify() checked it is the model's
        chunk = min(ident.max_payload, p.MAX_PAYLOAD) - p.OFFSET.size
        got = bytearray()
        while len(got) < out_bytes:
            n = min(chunk, out_bytes - len(got))
            reply = self.request(link, p.GET_OUTPUT, p.OFFSET_COUNT.pack(len(got), n), p.OUTPUT)
            got += _decoded(p.decode_output, reply, n)  # exactly n bytes: always progress
        return bytes(got)
