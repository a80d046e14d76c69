"""Which constant tensors of an int8 ``.tflite`` to compress for TFLite Micro's DECODE, and how.

:func:`compress_model` reads the model without TensorFlow
(:mod:`edgeprune.tflite`), decides per tensor in numpy, encodes the ``prune``
tensors itself (:mod:`edgeprune.compress.prune_format`) and hands the plan to
the TFLite Micro worker process (:mod:`edgeprune.tflm.decode_worker`), which
encodes the ``lut`` tensors with TFLite Micro's own LUT compressor, inserts
the DECODE operators with TFLite Micro's ``decode_insert`` and aligns the
flatbuffer as its ``compress.py`` does.

A tensor is compressed only where that makes the model smaller: the
encoding's bytes plus what each DECODE costs the flatbuffer beyond its data
(:func:`decode_overhead_bytes`) must stay under the dense bytes. A tensor
gets one encoding: DECODE reads constant inputs only, so a pruned tensor's
values cannot be LUT-decoded in a second DECODE; with ``"both"`` the smaller
of the two is taken per tensor.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np

from edgeprune.compress import prune_format
from edgeprune.errors import BadInputError, EdgepruneError

logger = logging.getLogger(__name__)

METHODS = ("prune", "lut", "both")
MAX_LUT_BITS = 7  # TFLite Micro's LUT index field holds 1-7 bits
MAX_LUT_VALUES = 2**MAX_LUT_BITS
# Flatbuffer bytes one DECODE adds beyond the encoded and ancillary data, apart
# from the two new tensor names: the ancillary and decoded tensor tables, the
# operator, two buffer entries, 16-byte alignment of two buffers (measured on
# the digits CNN, 142 B on average over its three DECODEs: see
# docs/tflm-compression.md).
DECODE_BASE_OVERHEAD_BYTES = 144
_NAME_SUFFIX_BYTES = len("_ancillary") + len("_decoded") + 8  # two strings' length words


class CompressionError(BadInputError):
    """The model or the options cannot be compressed as asked; the message says why and the fix."""


class CompressionFailed(EdgepruneError, RuntimeError):
    """TFLite Micro's compression tools failed on a model that passed our checks."""


@dataclass(frozen=True)
class TensorCompression:
    """One constant tensor: what compression would make of it, and what was done.

    ``density`` is the fraction of elements that differ from the zero point
    (1 - sparsity); ``distinct_values`` the most distinct values in one
    channel (one table per channel when quantized per channel).
    ``dense_bytes`` is its data in the model as converted;
    ``prune_bytes`` / ``lut_bytes`` the encoded plus ancillary data of each
    encoding (None where the encoding cannot represent the tensor);
    ``overhead_bytes`` what one DECODE adds to the flatbuffer besides.
    ``method`` is ``"prune"``, ``"lut"`` or ``""`` (left dense) and ``reason``
    says why in one line.
    """

    name: str
    subgraph: int
    index: int
    shape: tuple[int, ...]
    dtype: str
    density: float
    distinct_values: int
    dense_bytes: int
    prune_bytes: int | None
    lut_bytes: int | None
    lut_bits: int | None
    overhead_bytes: int
    method: str
    reason: str

    @property
    def compressed_bytes(self) -> int:
        """Data bytes in the compressed model (dense bytes when left dense)."""
        if self.method == "prune":
            return self.prune_bytes or 0
        if self.method == "lut":
            return self.lut_bytes or 0
        return self.dense_bytes

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "subgraph": self.subgraph,
            "index": self.index,
            "shape": list(self.shape),
            "dtype": self.dtype,
            "density": round(self.density, 6),
            "distinct_values": self.distinct_values,
            "dense_bytes": self.dense_bytes,
            "prune_bytes": self.prune_bytes,
            "lut_bytes": self.lut_bytes,
            "lut_bits": self.lut_bits,
            "overhead_bytes": self.overhead_bytes,
            "method": self.method,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CompressedModel:
    """The result of :func:`compress_model`.

    ``model`` is the compressed ``.tflite`` (the input itself when nothing
    was compressed); ``dense_bytes`` / ``model_bytes`` the sizes of the input
    and of ``model``. ``tensors`` lists every constant tensor considered, in
    model order. ``note`` is one line when nothing was compressed (not an
    error), else "". ``decoders`` names the decoders ``model`` needs.
    """

    model: bytes
    method: str
    dense_bytes: int
    model_bytes: int
    tensors: tuple[TensorCompression, ...]
    note: str = ""

    @property
    def decoders(self) -> frozenset[str]:
        return frozenset(t.method for t in self.tensors if t.method)

    @property
    def ratio(self) -> float:
        """Dense model bytes over compressed model bytes."""
        return self.dense_bytes / self.model_bytes if self.model_bytes else 0.0

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "dense_bytes": self.dense_bytes,
            "model_bytes": self.model_bytes,
            "ratio": round(self.ratio, 4),
            "decoders": sorted(self.decoders),
            "note": self.note,
            "tensors": [t.to_dict() for t in self.tensors],
        }


def decode_overhead_bytes(name: str) -> int:
    """Flatbuffer bytes one DECODE of tensor ``name`` adds beyond its data (an estimate:
    the base was measured, the names are counted; see :data:`DECODE_BASE_OVERHEAD_BYTES`)."""
    return DECODE_BASE_OVERHEAD_BYTES + 2 * len(name.encode()) + _NAME_SUFFIX_BYTES


def _channels(values: np.ndarray, scales: tuple, axis: int) -> tuple[list[np.ndarray], int | None]:
    """The tensor's slices along its quantized axis (one slice when per-tensor)."""
    if len(scales) > 1 and values.ndim:
        return list(np.moveaxis(values, axis, 0)), axis
    return [values], None


def _lut_plan(values: np.ndarray, tensor) -> tuple[int, int | None, int | None, int | None, str]:
    """(distinct values, bits, LUT bytes, LUT axis, why not) for TFLite Micro's LUT format."""
    slices, axis = _channels(values, tensor.scales, tensor.quantized_dimension)
    distinct = max(len(np.unique(s)) for s in slices)
    if axis is not None and axis not in (0, values.ndim - 1):
        return distinct, None, None, None, f"quantized along axis {axis}; LUT reads 0 or the last"
    if distinct > MAX_LUT_VALUES:
        return (
            distinct,
            None,
            None,
            None,
            f"{distinct} distinct values > {MAX_LUT_VALUES} for LUT (cluster the weights first)",
        )
    bits = max(1, math.ceil(math.log2(distinct))) if distinct > 1 else 1
    packed = (values.size * bits + 7) // 8
    tables = len(slices) * distinct * values.dtype.itemsize
    return distinct, bits, packed + prune_format.DCM_BYTES + tables, axis, ""


def _not_worth(method: str, size: int, dense: int, overhead: int) -> str:
    if size >= dense:
        return f"{method} would take {size:,} B, not less than the {dense:,} B dense"
    return f"{method} saves {dense - size:,} B, less than a DECODE costs (~{overhead} B)"


def _decide(
    method: str, info, values: np.ndarray, max_decoded_bytes: int | None
) -> TensorCompression:
    zero_points = prune_format.ZeroPoints(
        tuple(info.zero_points) or (0,), info.quantized_dimension if info.scales else 0
    )
    dense = values.nbytes
    why_not_prune = prune_format.check_encodable(values.dtype, values.shape, zero_points)
    kept = int(prune_format.kept_mask(values, zero_points).sum()) if not why_not_prune else None
    density = kept / values.size if kept is not None and values.size else 1.0
    prune_bytes = (
        prune_format.compressed_bytes(values.size, kept, values.dtype.itemsize)
        if kept is not None
        else None
    )
    distinct, bits, lut_bytes, _, why_not_lut = _lut_plan(values, info)
    overhead = decode_overhead_bytes(info.name)
    options = []
    if method in ("prune", "both") and prune_bytes is not None:
        options.append(("prune", prune_bytes))
    if method in ("lut", "both") and lut_bytes is not None:
        options.append(("lut", lut_bytes))
    chosen, size = min(options, key=lambda o: o[1]) if options else ("", None)
    if chosen and max_decoded_bytes is not None and dense > max_decoded_bytes:
        chosen = ""
        reason = (
            f"decoding it needs {dense:,} B of arena, over the {max_decoded_bytes:,} B "
            f"allowed; left dense"
        )
    elif chosen and size + overhead < dense:
        reason = f"{chosen}: {dense:,} -> {size:,} B (+{overhead} B DECODE)"
        if chosen == "prune":
            reason += f", density {density:.3f}"
        else:
            reason += f", {distinct} values in {bits} bits"
    elif chosen:
        chosen = ""
        if dense <= overhead + prune_format.DCM_BYTES:
            reason = f"{dense:,} B: less than a DECODE costs (~{overhead} B); left dense"
        else:
            why = []
            if any(m == "prune" for m, _ in options):
                even = prune_format.break_even_density(values.size, values.dtype.itemsize, overhead)
                why.append(f"density {density:.3f} is above the prune break-even {even:.3f}")
            if lut_bytes is not None and any(m == "lut" for m, _ in options):
                lut = f"lut ({distinct} values, {bits}-bit indices)"
                why.append(_not_worth(lut, lut_bytes, dense, overhead))
            reason = "; ".join(why) + "; left dense"
    else:
        reason = "; ".join(
            w for m, w in (("prune", why_not_prune), ("lut", why_not_lut)) if method in (m, "both")
        )
    return TensorCompression(
        name=info.name,
        subgraph=info.subgraph,
        index=info.index,
        shape=tuple(values.shape),
        dtype=str(values.dtype),
        density=density,
        distinct_values=distinct,
        dense_bytes=dense,
        prune_bytes=prune_bytes,
        lut_bytes=lut_bytes,
        lut_bits=bits,
        overhead_bytes=overhead,
        method=chosen,
        reason=reason,
    )


def plan(
    model: bytes, method: str = "prune", *, max_decoded_bytes: int | None = None
) -> tuple[TensorCompression, ...]:
    """Decide, for each constant int8 tensor of ``model``, whether and how to compress it.

    A decoded tensor lives in the arena (or in alternate decompression
    memory) while the operator after its DECODE runs: ``max_decoded_bytes``
    keeps tensors larger than that dense. Pure numpy on the parsed model;
    nothing is written.

    Raises:
        CompressionError: ``method`` is not one of :data:`METHODS`, or
            ``max_decoded_bytes`` is negative.
        TFLiteFormatError: ``model`` is not a valid ``.tflite``.
    """
    from edgeprune.tflite import inspect_model, read_constant

    if method not in METHODS:
        raise CompressionError(
            f"unknown compression method {method!r}; use one of {', '.join(METHODS)}"
        )
    if max_decoded_bytes is not None and max_decoded_bytes < 0:
        raise CompressionError(
            f"max_decoded_bytes must be 0 or more, got {max_decoded_bytes}; leave it unset "
            f"for no limit"
        )
    info = inspect_model(bytes(model))
    decisions = []
    for tensor in info.tensors:
        if not tensor.is_constant or tensor.is_variable or tensor.dtype != "int8":
            continue
        if tensor.is_sparse:
            continue  # stored in TFLite's own sparse format, which TFLite Micro cannot read
        values = read_constant(bytes(model), tensor)
        decisions.append(_decide(method, tensor, values, max_decoded_bytes))
    return tuple(decisions)
