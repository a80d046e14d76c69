"""The serial protocol the validation firmware speaks: framed messages over a UART.

Every message, in both directions, is one frame (integers little-endian)::

    0xE9 0x50   sync bytes ("edgeprune")
    u16         payload length (at most MAX_PAYLOAD)
    u8          message type
    ...         payload
    u32         CRC-32 (IEEE 802.3, zlib.crc32) of the length, type and payload

The host asks, the device answers each request with exactly one frame:

==========  =====  =====================================  ==============================
request     type   payload                                 answer
==========  =====  =====================================  ==============================
HELLO       0x01   (none)                                  IDENTITY: version u8, model
                                                           CRC-32 u32, model bytes u32,
                                                           arena bytes u32, input bytes
                                                           u32, output bytes u32, clock
                                                           Hz u32, max payload u16
SET_INPUT   0x02   offset u32, bytes                       ACK: status u8
INVOKE      0x03   (none)                                  INVOKED: status u8, cycles u64
GET_OUTPUT  0x04   offset u32, count u16                   OUTPUT: status u8, bytes
==========  =====  =====================================  ==============================

Answers have the request's type | 0x80. A device that cannot serve a request
answers ERROR (0x7F): code u8, then a UTF-8 message. A frame whose CRC does
not match is answered with ERROR code ERR_CRC and no action; every request is
idempotent, so the host resends it. The input and output tensors move in
chunks of at most ``max payload`` bytes, exactly as they lie in the tensor
(int8 for a full-integer model).

:func:`c_header` renders these constants for the firmware, so the C++ side
and this module cannot drift apart.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

VERSION = 1
SYNC = b"\xe9\x50"
MAX_PAYLOAD = 1024
MIN_PAYLOAD = 5  # the smallest max payload that carries a chunk: offset u32 and one byte
HEADER = struct.Struct("<HB")  # length, type
CRC = struct.Struct("<I")

HELLO, SET_INPUT, INVOKE, GET_OUTPUT = 0x01, 0x02, 0x03, 0x04
REPLY = 0x80
IDENTITY, ACK, INVOKED, OUTPUT = (
    HELLO | REPLY,
    SET_INPUT | REPLY,
    INVOKE | REPLY,
    GET_OUTPUT | REPLY,
)
ERROR = 0x7F

STATUS_OK = 0
ERR_CRC, ERR_LENGTH, ERR_TYPE, ERR_RANGE, ERR_INVOKE, ERR_MODEL = 1, 2, 3, 4, 5, 6
ERROR_NAMES = {
    ERR_CRC: "bad CRC",
    ERR_LENGTH: "bad length",
    ERR_TYPE: "unknown type",
    ERR_RANGE: "offset or count out of range",
    ERR_INVOKE: "invoke failed",
    ERR_MODEL: "model failed to load",
}

IDENTITY_BODY = struct.Struct("<BIIIIIIH")
INVOKED_BODY = struct.Struct("<BQ")
OFFSET = struct.Struct("<I")
OFFSET_COUNT = struct.Struct("<IH")

NAMES = {
    HELLO: "HELLO",
    SET_INPUT: "SET_INPUT",
    INVOKE: "INVOKE",
    GET_OUTPUT: "GET_OUTPUT",
    IDENTITY: "IDENTITY",
    ACK: "ACK",
    INVOKED: "INVOKED",
    OUTPUT: "OUTPUT",
    ERROR: "ERROR",
}


class ProtocolError(ValueError):
    """The device broke the protocol. Every decoder here raises this class (or
    a subclass) and nothing else, whatever bytes it is given."""


class FrameError(ProtocolError):
    """A frame that cannot be read (bad CRC, bad length): resending may help."""


class MessageError(ProtocolError):
    """A frame that arrived whole but says something impossible (a payload of the
    wrong length, a zero clock, a failure status): resending would not help."""


def encode(kind: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes is over the {MAX_PAYLOAD} maximum")
    body = HEADER.pack(len(payload), kind) + payload
    return SYNC + body + CRC.pack(zlib.crc32(body))


@dataclass(frozen=True)
class Frame:
    kind: int
    payload: bytes

    @property
    def name(self) -> str:
        return NAMES.get(self.kind, f"0x{self.kind:02x}")


class FrameReader:
    """Turns a byte stream into frames. Bytes before a sync are skipped; a frame
    with a bad CRC or length is reported (as :class:`FrameError`) and reading
    resumes after its sync bytes, so one corrupted frame costs one retry."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next(self) -> Frame | None:
        """The next whole frame, None if more bytes are needed.

        Raises:
            FrameError: the frame at the front is corrupt (it is dropped).
        """
        while True:
            start = self.buffer.find(SYNC)
            if start < 0:
                del self.buffer[: max(0, len(self.buffer) - 1)]  # keep a possible half sync
                return None
            del self.buffer[:start]
            if len(self.buffer) < 2 + HEADER.size:
                return None
            length, kind = HEADER.unpack_from(self.buffer, 2)
            if length > MAX_PAYLOAD:
                del self.buffer[:2]
                raise FrameError(f"frame length {length} is over {MAX_PAYLOAD}")
            end = 2 + HEADER.size + length + CRC.size
            if len(self.buffer) < end:
                return None
            body = bytes(self.buffer[2 : end - CRC.size])
            (crc,) = CRC.unpack_from(self.buffer, end - CRC.size)
            if zlib.crc32(body) != crc:
                del self.buffer[:2]
                raise FrameError(f"CRC mismatch on a {NAMES.get(kind, hex(kind))} frame")
            del self.buffer[:end]
            return Frame(kind, body[HEADER.size :])


@dataclass(frozen=True)
class Identity:
    version: int
    model_crc32: int
    model_bytes: int
    arena_bytes: int
    input_bytes: int
    output_bytes: int
    clock_hz: int
    max_payload: int

    def pack(self) -> bytes:
        return IDENTITY_BODY.pack(
            self.version,
            self.model_crc32,
            self.model_bytes,
            self.arena_bytes,
            self.input_bytes,
            self.output_bytes,
            self.clock_hz,
            self.max_payload,
        )

    @classmethod
    def unpack(cls, payload: bytes) -> Identity:
        """Decode an IDENTITY payload, refusing sizes no device can have.

        Raises:
            MessageError: a wrong payload length, a zero size or clock, or a
                ``max_payload`` too small to carry a chunk.
        """
        _length("IDENTITY", payload, IDENTITY_BODY.size)
        ident = cls(*IDENTITY_BODY.unpack(payload))
        for what, value in (
            ("model bytes", ident.model_bytes),
            ("arena bytes", ident.arena_bytes),
            ("input bytes", ident.input_bytes),
            ("output bytes", ident.output_bytes),
            ("clock Hz", ident.clock_hz),
        ):
            if value == 0:
                raise MessageError(f"IDENTITY reports {what} 0; no device has that")
        if ident.max_payload < MIN_PAYLOAD:
            raise MessageError(
                f"IDENTITY reports max payload {ident.max_payload} bytes, below the "
                f"{MIN_PAYLOAD} a chunk (offset and one byte) needs"
            )
        return ident


def _length(name: str, payload: bytes, size: int) -> None:
    if len(payload) != size:
        raise MessageError(f"{name} payload of {len(payload)} bytes, expected {size}")


def _status(name: str, status: int) -> None:
    if status != STATUS_OK:
        what = ERROR_NAMES.get(status, "unknown status")
        raise MessageError(f"{name} carries failure status {status} ({what})")


def decode_ack(payload: bytes) -> None:
    """Check an ACK payload (one status byte, OK).

    Raises:
        MessageError: another length, or a failure status.
    """
    _length("ACK", payload, 1)
    _status("ACK", payload[0])


def decode_invoked(payload: bytes) -> int:
    """The cycle count of an INVOKED payload.

    Zero cycles are accepted: a core without a cycle counter counts micros()
    times its clock, and a fast invoke can take less than one microsecond.

    Raises:
        MessageError: another length, or a failure status.
    """
    _length("INVOKED", payload, INVOKED_BODY.size)
    status, cycles = INVOKED_BODY.unpack(payload)
    _status("INVOKED", status)
    return cycles


def decode_output(payload: bytes, count: int) -> bytes:
    """The ``count`` output bytes of an OUTPUT payload (a status byte, then the bytes).

    Raises:
        MessageError: no status, a failure status, or not exactly ``count``
            bytes (a chunk that makes no progress would loop forever).
    """
    if not payload:
        raise MessageError("OUTPUT payload is empty; it needs a status byte")
    _status("OUTPUT", payload[0])
    if len(payload) - 1 != count:
        raise MessageError(f"OUTPUT carries {len(payload) - 1} bytes, {count} were asked for")
    return bytes(payload[1:])


def decode_error(payload: bytes) -> tuple[int, str]:
    """(code, message) of an ERROR payload; the message is decoded leniently and
    cut to one line, as it goes into one.

    Raises:
        MessageError: an empty payload (no code).
    """
    if not payload:
        raise MessageError("ERROR payload is empty; it needs an error code")
    text = bytes(payload[1:]).decode("utf-8", errors="replace")
    return payload[0], " ".join(text.split())[:200]


def model_crc32(model: bytes) -> int:
    return zlib.crc32(model)


def c_header() -> str:
    """The protocol constants as a C/C++ header (``edgeprune_protocol.h``)."""
    consts = [
        ("VERSION", VERSION),
        ("SYNC0", SYNC[0]),
        ("SYNC1", SYNC[1]),
        ("MAX_PAYLOAD", MAX_PAYLOAD),
        ("HELLO", HELLO),
        ("SET_INPUT", SET_INPUT),
        ("INVOKE", INVOKE),
        ("GET_OUTPUT", GET_OUTPUT),
        ("REPLY", REPLY),
        ("ERROR", ERROR),
        ("STATUS_OK", STATUS_OK),
        ("ERR_CRC", ERR_CRC),
        ("ERR_LENGTH", ERR_LENGTH),
        ("ERR_TYPE", ERR_TYPE),
        ("ERR_RANGE", ERR_RANGE),
        ("ERR_INVOKE", ERR_INVOKE),
        ("ERR_MODEL", ERR_MODEL),
        ("IDENTITY_BYTES", IDENTITY_BODY.size),
        ("INVOKED_BYTES", INVOKED_BODY.size),
    ]
    lines = [
        "// The edgeprune validation protocol (edgeprune/protocol.py): do not edit.",
        "// Frame: sync0 sync1, u16 length, u8 type, payload, u32 CRC-32 of",
        "// length, type and payload; integers little-endian.",
        "#ifndef EDGEPRUNE_PROTOCOL_H_",
        "#define EDGEPRUNE_PROTOCOL_H_",
        "",
    ]
    lines += [f"#define EP_{name} {value}" for name, value in consts]
    lines += ["", "#endif  // EDGEPRUNE_PROTOCOL_H_", ""]
    return "\n".join(lines)
