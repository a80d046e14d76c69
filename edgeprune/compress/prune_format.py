"""The "prune" encoding of TFLite Micro's DECODE operator, written and read in numpy.

TFLite Micro's Python compressor leaves pruning as a stub
(``compression/pruning.py`` raises), so the encoder is ours; its
specification is the C++ decoder, ``kernels/decode_state_prune.cc`` at
TFLite Micro 90b983c, which this module mirrors line for line in
:func:`decode` (our reference decoder, used by the tests; the firmware and
the tflite-micro interpreter use the C++ one).

Layout of one compressed tensor:

- encoded tensor (uint8): one bit per element of the flattened tensor, bit
  ``i`` in byte ``i >> 3`` at position ``7 - (i & 7)`` (most significant bit
  first); 1 means "a stored value", 0 means "the zero point".
- ancillary tensor (uint8): the 16-byte DECODE common metadata (byte 0 = 2,
  the prune decode type; byte 1 = 1, the DCM version; byte 4 = 1, the prune
  decoder's own version), then the stored values in element order, each in
  the tensor's own type.

The zero point is the tensor's own: 0 for unquantized tensors and for
symmetric (per-channel) int8 weights, the per-tensor zero point otherwise,
or, for int8 per-channel tensors with a non-zero zero point, each channel's
own (channels along axis 0 or the last axis only; the decoder refuses any
other axis). Elements are compared bit for bit, so ``-0.0`` is stored.
This module imports numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DCM_BYTES = 16
DECODE_TYPE_PRUNE = 2
DCM_VERSION = 1
PRUNE_VERSION = 1
_PRUNE_VERSION_OFFSET = 4

# Element types the C++ decoder copies (bool and float are copied as raw bytes).
SUPPORTED_DTYPES = frozenset(
    np.dtype(t) for t in ("bool", "int8", "int16", "int32", "int64", "float32")
)


class PruneFormatError(ValueError):
    """A tensor the prune decoder cannot represent, or damaged encoded data."""


@dataclass(frozen=True)
class ZeroPoints:
    """What "pruned" means for one tensor: its zero point(s) and channel axis.

    ``values`` has one entry (per tensor) or one per channel; ``axis`` is the
    quantized dimension (ignored with one value).
    """

    values: tuple[int, ...] = (0,)
    axis: int = 0

    def per_element(self, shape: tuple[int, ...]) -> np.ndarray | int:
        """The zero point of every element (flattened), or one int for all."""
        if len(self.values) == 1 or not any(self.values):
            return int(self.values[0])
        channels = len(self.values)
        count = int(np.prod(shape, dtype=np.int64))
        zps = np.asarray(self.values, dtype=np.int64)
        if self.axis == len(shape) - 1:
            return np.tile(zps, count // channels)
        return np.repeat(zps, count // channels)


def check_encodable(dtype: np.dtype, shape: tuple[int, ...], zero_points: ZeroPoints) -> str:
    """Why the prune decoder cannot decode such a tensor, or "" if it can.

    The rules are the C++ decoder's ``Setup``: per-channel quantization only
    along axis 0 or the last axis, non-zero zero points only for int8.
    """
    dtype = np.dtype(dtype)
    if dtype not in SUPPORTED_DTYPES:
        return f"the prune decoder has no {dtype} type"
    channels = len(zero_points.values)
    rank = len(shape)
    last = rank - 1
    if not (zero_points.axis == 0 or (zero_points.axis == last and channels > 1)):
        return (
            f"quantized along axis {zero_points.axis}; the prune decoder reads axis 0 "
            f"or the last axis only"
        )
    if any(zero_points.values) and dtype != np.int8:
        return f"non-zero zero points on a {dtype} tensor; the prune decoder needs them zero"
    count = int(np.prod(shape, dtype=np.int64))
    if channels > 1 and (rank == 0 or shape[zero_points.axis] != channels or count % channels):
        return f"{channels} zero points do not match the shape {tuple(shape)}"
    return ""


def _raw(values: np.ndarray) -> np.ndarray:
    """The elements as unsigned integers of their own width (bitwise comparison)."""
    flat = np.ascontiguousarray(values).reshape(-1)
    return flat.view(np.dtype(f"u{flat.dtype.itemsize}"))


def kept_mask(values: np.ndarray, zero_points: ZeroPoints = ZeroPoints()) -> np.ndarray:
    """Boolean mask (flattened) of the elements that differ from their zero point."""
    values = np.asarray(values)
    raw = _raw(values)
    zero = zero_points.per_element(values.shape)
    if isinstance(zero, int):
        zero_raw = _raw(np.asarray([zero], dtype=values.dtype))[0]
        return raw != zero_raw
    zero_raw = _raw(np.asarray(zero).astype(values.dtype))
    return raw != zero_raw


def encoded_bytes(count: int) -> int:
    """Bytes of the bit mask for ``count`` elements."""
    return (int(count) + 7) // 8


def compressed_bytes(count: int, kept: int, itemsize: int) -> int:
    """Bytes of the encoded and ancillary tensors' data together."""
    return encoded_bytes(count) + DCM_BYTES + int(kept) * int(itemsize)


def break_even_density(count: int, itemsize: int, overhead_bytes: int = 0) -> float:
    """The density (kept / count) below which the prune encoding is smaller.

    Solves ``ceil(count/8) + 16 + overhead + density*count*itemsize <
    count*itemsize``: a tensor of exactly this density gains nothing.
    ``overhead_bytes`` is what each compressed tensor adds to the flatbuffer
    beyond its data (the two new tensors, the DECODE operator, buffer
    alignment).
    """
    dense = count * itemsize
    spare = dense - encoded_bytes(count) - DCM_BYTES - overhead_bytes
    return max(0.0, spare / dense) if dense else 0.0


def encode(values: np.ndarray, zero_points: ZeroPoints = ZeroPoints()) -> tuple[bytes, bytes]:
    """Encode ``values`` for the prune decoder: ``(encoded, ancillary)`` bytes.

    Raises:
        PruneFormatError: the decoder cannot represent this tensor (the
            message says why, as :func:`check_encodable`).
    """
    values = np.asarray(values)
    why = check_encodable(values.dtype, values.shape, zero_points)
    if why:
        raise PruneFormatError(why)
    kept = kept_mask(values, zero_points)
    bits = np.packbits(kept, bitorder="big")  # element i: byte i>>3, bit 7-(i&7)
    header = bytearray(DCM_BYTES)
    header[0] = DECODE_TYPE_PRUNE
    header[1] = DCM_VERSION
    header[_PRUNE_VERSION_OFFSET] = PRUNE_VERSION
    stored = np.ascontiguousarray(values).reshape(-1)[kept]
    return bits.tobytes(), bytes(header) + stored.tobytes()


def decode(
    encoded: bytes,
    ancillary: bytes,
    dtype: np.dtype,
    shape: tuple[int, ...],
    zero_points: ZeroPoints = ZeroPoints(),
) -> np.ndarray:
    """Decode as TFLite Micro's ``DecodeStatePrune`` does (our reference decoder).

    Raises:
        PruneFormatError: the data is not a version-1 prune encoding of a
            tensor of this type and shape (wrong header, too few bits or values).
    """
    dtype = np.dtype(dtype)
    why = check_encodable(dtype, shape, zero_points)
    if why:
        raise PruneFormatError(why)
    header = ancillary[:DCM_BYTES]
    if len(header) < DCM_BYTES or header[0] != DECODE_TYPE_PRUNE or header[1] != DCM_VERSION:
        raise PruneFormatError("the ancillary data does not start with a prune DCM header")
    if header[_PRUNE_VERSION_OFFSET] != PRUNE_VERSION:
        raise PruneFormatError(f"unsupported prune version {header[_PRUNE_VERSION_OFFSET]}")
    count = int(np.prod(shape, dtype=np.int64))
    if len(encoded) < encoded_bytes(count):
        raise PruneFormatError(f"{len(encoded)} mask bytes for {count} elements")
    kept = np.unpackbits(np.frombuffer(encoded, np.uint8), bitorder="big")[:count].astype(bool)
    table = ancillary[DCM_BYTES:]
    need = int(kept.sum()) * dtype.itemsize
    if len(table) < need:
        raise PruneFormatError(f"{len(table)} value bytes, the mask needs {need}")
    out = np.empty(count, dtype)
    zero = zero_points.per_element(tuple(shape))
    out[:] = np.asarray(zero).astype(dtype) if not isinstance(zero, int) else dtype.type(zero)
    out[kept] = np.frombuffer(table[:need], dtype)
    return out.reshape(shape)
