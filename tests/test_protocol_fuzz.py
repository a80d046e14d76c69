"""Fuzzing the serial protocol's decoder (hypothesis): arbitrary byte streams into the
frame reader, arbitrary payloads into every message decoder, and a whole serial run
against a board whose every answer may be mutated (bytes flipped, cut short, or
replaced by another message with a valid CRC). The only allowed outcomes are a
decoded message or the protocol's own error (a partial run, for the runner); never
another exception, never a hang: the reader consumes what it is given and the
runner's waits end at its deadline.

The quick suite runs ~200 examples per property; the slow one 5000.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from edgeprune import protocol as p

QUICK = settings(max_examples=200, deadline=None, derandomize=True, database=None)
LONG = settings(max_examples=5000, deadline=None, database=None)
SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]

IDENTITY_OK = p.Identity(p.VERSION, 0xDEADBEEF, 9000, 4096, 64, 10, 64_000_000, 1024).pack()
VALID_FRAMES = [
    p.encode(p.HELLO),
    p.encode(p.IDENTITY, IDENTITY_OK),
    p.encode(p.SET_INPUT, p.OFFSET.pack(0) + bytes(64)),
    p.encode(p.ACK, b"\0"),
    p.encode(p.INVOKED, p.INVOKED_BODY.pack(0, 12345)),
    p.encode(p.GET_OUTPUT, p.OFFSET_COUNT.pack(0, 10)),
    p.encode(p.OUTPUT, b"\0" + bytes(10)),
    p.encode(p.ERROR, bytes([p.ERR_INVOKE]) + b"failed"),
]


def read_all(chunks: list[bytes]) -> list:
    """Every outcome of reading ``chunks`` fed one after another: frames and errors."""
    reader = p.FrameReader()
    outcomes = []
    for chunk in chunks:
        reader.feed(chunk)
        # every call returns a frame, None, or drops at least two bytes: bounded
        for _ in range(len(reader.buffer) + 2):
            try:
                frame = reader.next()
            except p.FrameError as exc:
                outcomes.append(exc)
                continue
            if frame is None:
                break
            assert isinstance(frame, p.Frame) and len(frame.payload) <= p.MAX_PAYLOAD
            outcomes.append(frame)
        else:
            pytest.fail("the frame reader did not come to rest on the bytes it was given")
        assert len(reader.buffer) <= 2 + p.HEADER.size + p.MAX_PAYLOAD + p.CRC.size
    return outcomes


def _reader_property(chunks: list[bytes]) -> None:
    read_all(chunks)
    whole = read_all([b"".join(chunks)])
    # a stream of valid frames reads the same whatever the chunking
    if all(isinstance(o, p.Frame) for o in whole):
        assert [o for o in read_all(chunks) if isinstance(o, p.Frame)] == whole


@QUICK
@given(st.lists(st.binary(max_size=300), max_size=8))
@example([b"".join(VALID_FRAMES)])
@example([f[:k] for f in VALID_FRAMES for k in (3,)] + [VALID_FRAMES[4]])
@example([p.SYNC + p.HEADER.pack(p.MAX_PAYLOAD + 1, p.OUTPUT)])
@example([p.SYNC * 200])
def test_the_frame_reader_yields_frames_or_its_own_error(chunks):
    _reader_property(chunks)


@pytest.mark.slow
@LONG
@given(st.lists(st.binary(max_size=2000), max_size=12))
def test_the_frame_reader_yields_frames_or_its_own_error_long(chunks):
    _reader_property(chunks)


DECODERS = [
    ("IDENTITY", p.Identity.unpack),
    ("ACK", p.decode_ack),
    ("INVOKED", p.decode_invoked),
    ("OUTPUT", lambda payload: p.decode_output(payload, 10)),
    ("ERROR", p.decode_error),
]


def _decoders_property(payload: bytes) -> None:
    for _, decode in DECODERS:
        try:
            decode(payload)
        except p.ProtocolError as exc:
            assert str(exc) and "\n" not in str(exc)


@QUICK
@given(st.binary(max_size=64))
@example(IDENTITY_OK)
@example(IDENTITY_OK[:-1])
@example(p.Identity(p.VERSION, 1, 1, 1, 1, 1, 0, 1024).pack())  # clock 0
@example(p.Identity(p.VERSION, 1, 1, 1, 1, 1, 1, 4).pack())  # max payload 4
@example(b"\0")  # an OUTPUT of only its status
@example(p.INVOKED_BODY.pack(p.ERR_INVOKE, 5))  # a failed invoke
@example(b"")
def test_every_decoder_returns_a_message_or_its_own_error(payload):
    _decoders_property(payload)


@pytest.mark.slow
@LONG
@given(st.binary(max_size=1100))
def test_every_decoder_returns_a_message_or_its_own_error_long(payload):
    _decoders_property(payload)


# ------------------------------------------------------------------ a whole run


class MutatingLink:
    """A serial port whose board (the scripted one) answers every request, each answer
    possibly mutated as ``draw`` decides; then silence."""

    def __init__(self, board, draw) -> None:
        self.board, self.draw, self.pending = board, draw, bytearray()
        self.in_waiting = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass

    def reset_input_buffer(self) -> None:
        self.pending.clear()

    def write(self, data: bytes) -> None:
        reader = p.FrameReader()
        reader.feed(data)
        self.pending += mutate(self.board.handle(reader.next()), self.draw)

    def read(self, n: int) -> bytes:
        data = bytes(self.pending[:n])
        del self.pending[:n]
        self.in_waiting = len(self.pending)
        return data


KINDS = [p.IDENTITY, p.ACK, p.INVOKED, p.OUTPUT, p.ERROR, 0x00, 0xFF]


def mutate(answer: bytes, draw) -> bytes:
    how = draw(st.sampled_from(["keep"] * 4 + ["flip", "cut", "payload", "noise", "drop"]))
    if how == "flip":
        i = draw(st.integers(0, len(answer) - 1))
        return answer[:i] + bytes([answer[i] ^ draw(st.integers(1, 255))]) + answer[i + 1 :]
    if how == "cut":
        return answer[: draw(st.integers(0, len(answer) - 1))]
    if how == "payload":  # a well-formed frame saying something else: the CRC is valid
        return p.encode(draw(st.sampled_from(KINDS)), draw(st.binary(max_size=40)))
    if how == "noise":
        return draw(st.binary(max_size=40)) + answer
    if how == "drop":
        return b""
    return answer


@pytest.fixture(scope="module")
def serial_setup(int8_model, digits):
    from edgeprune.runners import faulty

    x = digits.x_test[:3].reshape(-1, 8, 8, 1).astype(np.float32)
    return int8_model, faulty.scripted_board(int8_model), x


def _run_property(serial_setup, data) -> None:
    from edgeprune.runners.serial import SerialRunner

    model, board, x = serial_setup
    runner = SerialRunner(model, "/dev/fuzz", timeout_s=0.002, retries=1)
    runner._open = lambda: MutatingLink(board, data.draw)
    got = runner.run(x)  # no exception: every fault is a partial run
    assert got.partial == bool(got.error) and got.completed <= len(x)
    assert got.partial or got.completed == len(x)
    assert len(got.times_ms) == got.completed and np.isfinite(got.times_ms).all()
    assert got.raw.shape == (got.completed, 10)


@settings(QUICK, suppress_health_check=SLOW_OK)
@given(st.data())
def test_a_serial_run_against_a_mutating_board_ends_or_is_partial(serial_setup, data):
    _run_property(serial_setup, data)


@pytest.mark.slow
@settings(LONG, suppress_health_check=SLOW_OK)
@given(st.data())
def test_a_serial_run_against_a_mutating_board_ends_or_is_partial_long(serial_setup, data):
    _run_property(serial_setup, data)


# ------------------------------------------------------------------ the ssh wire

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)
RESULT_KEYS = st.fixed_dictionaries(
    {},
    optional={
        "op": st.sampled_from(["result", "error", "hello"]) | JSON,
        "index": st.just(0) | JSON,
        "ms": st.floats() | JSON,
    },
)


def _ssh_checks_property(header: dict, payload: bytes) -> None:
    from edgeprune.errors import DeviceError
    from edgeprune.runners.ssh_link import check_hello, check_result

    try:
        ms = check_result(header, payload, 0, 10)
    except DeviceError as exc:
        assert "\n" not in str(exc)
    else:
        assert np.isfinite(ms) and ms > 0 and len(payload) == 10
    try:
        check_hello(header)
    except DeviceError:
        pass


@QUICK
@given(
    st.builds(lambda a, b: {**a, **b}, RESULT_KEYS, st.dictionaries(st.text(max_size=9), JSON)),
    st.binary(max_size=12),
)
@example({"op": "result", "index": 0, "ms": float("nan")}, bytes(10))
@example({"op": "result", "index": 0, "ms": -5.0}, bytes(10))
@example({"op": "result", "index": 0, "ms": True}, bytes(10))
@example({"op": "result", "index": 0, "ms": 1.5}, bytes(10))
@example({"op": "hello", "input": 7}, b"")
def test_the_ssh_checks_return_a_time_or_a_device_error(header, payload):
    _ssh_checks_property(header, payload)
