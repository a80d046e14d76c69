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


class FrameError(ValueError):
    """A frame that cannot be read (bad CRC, bad length)."""


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
        if len(payload) != IDENTITY_BODY.size:
            raise FrameError(
                f"IDENTITY payload of {len(payload)} bytes, expected {IDENTITY_BODY.size}"
            )
        return cls(*IDENTITY_BODY.unpack(payload))


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
