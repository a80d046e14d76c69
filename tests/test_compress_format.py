"""The prune encoding of TFLite Micro's DECODE operator (edgeprune.compress.prune_format):
its byte layout against the C++ decoder's rules, and encode -> decode round trips.

No TensorFlow and no TFLite Micro here: the round trips use our reference decoder,
which mirrors kernels/decode_state_prune.cc; tests/test_compress.py runs the real
decoder on real models.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeprune.compress import prune_format as pf


def test_mask_is_most_significant_bit_first_and_values_follow_the_header():
    values = np.array([0, 5, 0, 0, 0, 0, 0, 0, 7, 0], np.int8)
    encoded, ancillary = pf.encode(values)
    # element i: byte i >> 3, bit 7 - (i & 7), as DecodeStatePrune reads it
    assert encoded == bytes([0b0100_0000, 0b1000_0000])
    assert ancillary[0] == 2  # DCM decode type: prune
    assert ancillary[1] == 1  # DCM version
    assert ancillary[4] == 1  # the prune decoder's own version (kDcmVersionOffset = 4)
    assert ancillary[2:4] == b"\0\0" and ancillary[5:16] == bytes(11)
    assert ancillary[16:] == bytes([5, 7])


def test_per_tensor_zero_point_is_what_pruned_means():
    values = np.array([-3, -3, 4, -3], np.int8)
    encoded, ancillary = pf.encode(values, pf.ZeroPoints((-3,)))
    assert encoded == bytes([0b0010_0000])
    assert ancillary[16:] == bytes([4])
    assert np.array_equal(
        pf.decode(encoded, ancillary, np.int8, (4,), pf.ZeroPoints((-3,))), values
    )


def test_negative_zero_is_stored_because_elements_compare_bit_for_bit():
    values = np.array([0.0, -0.0, 1.5], np.float32)
    encoded, ancillary = pf.encode(values)
    assert encoded == bytes([0b0110_0000])
    decoded = pf.decode(encoded, ancillary, np.float32, (3,))
    assert np.array_equal(decoded.view(np.uint32), values.view(np.uint32))


@pytest.mark.parametrize(
    ("dtype", "shape", "zero_points", "why"),
    [
        ("int8", (4, 3, 3, 2), pf.ZeroPoints((0, 0, 0), axis=1), "axis 1"),
        ("int16", (4,), pf.ZeroPoints((2,)), "non-zero zero points on a int16"),
        ("uint8", (4,), pf.ZeroPoints(), "no uint8 type"),
        ("int8", (4, 3), pf.ZeroPoints((1, 2, 3, 4, 5)), "5 zero points"),
    ],
)
def test_tensors_the_decoder_refuses_are_named_with_the_reason(dtype, shape, zero_points, why):
    assert why in pf.check_encodable(np.dtype(dtype), shape, zero_points)
    with pytest.raises(pf.PruneFormatError, match=why):
        pf.encode(np.zeros(shape, dtype), zero_points)


def test_decode_refuses_damaged_data():
    encoded, ancillary = pf.encode(np.array([0, 1, 2, 0, 3], np.int8))
    with pytest.raises(pf.PruneFormatError, match="prune DCM header"):
        pf.decode(encoded, b"\0" + ancillary[1:], np.int8, (5,))
    bad_version = ancillary[:4] + b"\x02" + ancillary[5:]
    with pytest.raises(pf.PruneFormatError, match="unsupported prune version 2"):
        pf.decode(encoded, bad_version, np.int8, (5,))
    with pytest.raises(pf.PruneFormatError, match="mask bytes for 9 elements"):
        pf.decode(encoded, ancillary, np.int8, (9,))
    with pytest.raises(pf.PruneFormatError, match="value bytes, the mask needs 3"):
        pf.decode(encoded, ancillary[:-1], np.int8, (5,))


def test_break_even_density_is_where_the_encoding_stops_paying():
    count, overhead = 4096, 200
    even = pf.break_even_density(count, 1, overhead)
    below, above = int(even * count) - 1, int(even * count) + 1
    assert pf.compressed_bytes(count, below, 1) + overhead < count
    assert pf.compressed_bytes(count, above, 1) + overhead > count
    # int8: the mask alone costs 1/8 of the dense bytes
    assert 0.8 < even < 0.875
    assert pf.break_even_density(100, 1, 200) == 0.0  # too small to ever pay


@st.composite
def sparse_tensors(draw):
    dtype = np.dtype(draw(st.sampled_from(["int8", "int16", "int32", "int64", "float32"])))
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    count = int(np.prod(shape))
    density = draw(st.floats(0.0, 1.0))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        values = rng.normal(size=count).astype(dtype)
    else:
        info = np.iinfo(dtype)
        values = rng.integers(max(info.min, -(2**20)), min(info.max, 2**20), count, dtype=dtype)
    zero_points = pf.ZeroPoints()
    if dtype == np.int8 and len(shape) > 1 and draw(st.booleans()):
        axis = draw(st.sampled_from([0, len(shape) - 1]))
        channels = shape[axis]
        if channels > 1:
            zps = tuple(
                draw(st.lists(st.integers(-128, 127), min_size=channels, max_size=channels))
            )
            zero_points = pf.ZeroPoints(zps, axis)
    values = values.reshape(shape)
    pruned = rng.random(shape) >= density
    zero = zero_points.per_element(shape)
    zero = np.asarray(zero).reshape(shape) if not isinstance(zero, int) else zero
    values = np.where(pruned, np.asarray(zero).astype(dtype), values).astype(dtype)
    return values, zero_points


@settings(max_examples=300, deadline=None)
@given(sparse_tensors())
def test_encode_then_reference_decode_gives_back_the_tensor(case):
    values, zero_points = case
    encoded, ancillary = pf.encode(values, zero_points)
    kept = int(pf.kept_mask(values, zero_points).sum())
    assert len(encoded) + len(ancillary) == pf.compressed_bytes(
        values.size, kept, values.dtype.itemsize
    )
    decoded = pf.decode(encoded, ancillary, values.dtype, values.shape, zero_points)
    assert decoded.dtype == values.dtype
    assert np.array_equal(decoded.view(np.uint8), values.view(np.uint8))


@pytest.fixture(scope="module")
def tflm_worker():
    from edgeprune.tflm.client import Worker

    with Worker(b"") as worker:  # the decoder probe needs no model of its own
        yield worker


@st.composite
def int8_pruned_tensors(draw):
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=4)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.integers(-128, 128, shape, dtype=np.int8)
    axis = draw(st.sampled_from([0, len(shape) - 1]))
    per_channel = shape[axis] > 1 and draw(st.booleans())
    count = shape[axis] if per_channel else 1
    zps = tuple(draw(st.lists(st.integers(-128, 127), min_size=count, max_size=count)))
    zero_points = pf.ZeroPoints(zps, axis if per_channel else 0)
    zero = zero_points.per_element(shape)
    zero = np.asarray(zero).reshape(shape) if not isinstance(zero, int) else zero
    pruned = rng.random(shape) >= draw(st.floats(0.0, 1.0))
    return np.where(pruned, np.asarray(zero).astype(np.int8), values), zero_points


@settings(max_examples=40, deadline=None)
@given(int8_pruned_tensors())
def test_tflite_micro_decodes_our_encoding_exactly(tflm_worker, tmp_path_factory, case):
    """The real C++ decoder (the installed interpreter, in the worker), per-tensor and
    per-channel zero points on axis 0 and the last axis."""
    values, zero_points = case
    path = tmp_path_factory.mktemp("values") / "values.npy"
    np.save(path, values)
    request = {"cmd": "decoder", "decoder": "prune", "values": str(path)}
    if any(zero_points.values):
        request.update(zero_points=list(zero_points.values), axis=zero_points.axis)
    reply = tflm_worker.request(request)
    assert reply.ok, reply.message
    assert reply.details["decodes"]
