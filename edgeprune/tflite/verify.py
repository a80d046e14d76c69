"""Semantic checks of a parsed ``.tflite`` that TFLite Micro does not make.

:mod:`.flatbuffer` keeps every offset and vector inside the file; what parses
can still be nonsense that LiteRT's loader refuses but TFLite Micro runs on
(or crashes on): stride 0, padding 99, a NaN scale, a buffer shorter than its
tensor, no operators at all. :func:`verify` walks what :func:`~.parse.inspect_model`
parsed and raises :class:`TFLiteInvalidError` naming the rule, the subgraph,
the operator (index and type) or the tensor (index and name), and the fix.
``inspect_model`` calls it, so ``inspect``, ``cost``, ``check`` and every stage
that reads a user's model refuse the same files with the same message.

What these checks do not prove: that the kernels accept the tensor types and
shapes (TFLite Micro's prepare step does), or that the model computes anything
sensible.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from typing import Any

from edgeprune.tflite.flatbuffer import _DTYPE_BITS, Flatbuffer, _enum_names, vector
from edgeprune.tflite.info import ModelInfo, OperatorInfo, TensorInfo, TFLiteInvalidError

#: The flatbuffer schema version every TFLite converter since 2018 writes.
SCHEMA_VERSION = 3
#: No tensor of a model for an edge device holds this much: a larger declared
#: size is a damaged shape, refused before any runtime allocates it.
MAX_TENSOR_BYTES = 1 << 31
FIX = "the file is damaged or was not written by the TFLite converter — re-convert the model"

# Ops whose options TFLite reads as strides, padding and filter sizes: without an
# options table of this type the runtime reads zeros (stride 0).
_REQUIRED_OPTIONS = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "L2_POOL_2D": "Pool2DOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions",
}
_AT_LEAST_ONE = ("stride", "dilation", "filter")
_INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}
_INT_RANGES |= {"int4": (-8, 7), "uint4": (0, 15), "int2": (-2, 1)}
# Symmetric by TFLite's quantization spec: int32/int64 biases (and int8 per-channel
# weights); kernels assume 0 and ignore what is stored. int16 is left out: the spec
# wants int16 activations symmetric too, but older converters wrote the int16 output
# of a logistic with zero point -32768 (TFLite Micro's keyword_scrambled model), and
# the kernels that read it (QUANTIZE, DEQUANTIZE) honour that zero point.
_SYMMETRIC = frozenset({"int32", "int64"})
# Inputs of Vela's "ethos-u" operator that are arena space, not data: 2 is the
# NPU's scratch in the TFLite Micro arena, 3 its fast scratch (TFLite Micro's
# kernels/ethos_u/ethosu.cc lays out the inputs so).
_ETHOS_U_SCRATCH_INPUTS = (2, 3)


def _tensor_label(t: TensorInfo) -> str:
    return f"tensor {t.index} ({t.name!r}) of subgraph {t.subgraph}"


def _op_label(op: OperatorInfo) -> str:
    return f"operator {op.index} ({op.opcode}) of subgraph {op.subgraph}"


def _declared_bytes(t: TensorInfo) -> int:
    return math.ceil(math.prod(max(d, 0) for d in t.shape) * _DTYPE_BITS.get(t.dtype, 0) / 8)


class _Verifier:
    def __init__(self, fb: Flatbuffer, info: ModelInfo) -> None:
        self.fb, self.info = fb, info

    def refuse(self, problem: str) -> TFLiteInvalidError:
        return TFLiteInvalidError(f"{self.fb.label}: {problem}; {FIX}")

    def run(self) -> None:
        info = self.info
        if info.version == 0 and info.subgraphs == 0:
            raise self.refuse("the root table is empty (no schema version, no subgraph)")
        if info.version != SCHEMA_VERSION:
            raise self.refuse(f"schema version {info.version}, not {SCHEMA_VERSION}")
        if info.subgraphs < 1:
            raise self.refuse("the model has no subgraph")
        if not info.inputs or not info.outputs:
            kind = "input" if not info.inputs else "output"
            raise self.refuse(f"subgraph 0 has no {kind} tensor")
        if not any(op.subgraph == 0 for op in info.operators):
            raise self.refuse("subgraph 0 has no operator")
        for t in info.tensors:
            self.tensor(t)
        for op in info.operators:
            self.operator(op)
        for s in range(info.subgraphs):
            self.data_flow(s)
        self.strings_and_signatures()

    def tensor(self, t: TensorInfo) -> None:
        if t.dtype.startswith("unknown_type_"):
            raise self.refuse(f"{_tensor_label(t)} has an unknown type ({t.dtype})")
        if any(d < 0 for d in t.shape):
            raise self.refuse(f"{_tensor_label(t)} has shape {list(t.shape)} (negative size)")
        if t.shape_signature is not None and (
            len(t.shape_signature) != len(t.shape) or any(d < -1 for d in t.shape_signature)
        ):
            raise self.refuse(
                f"{_tensor_label(t)} has shape signature {list(t.shape_signature)} "
                f"for shape {list(t.shape)}"
            )
        declared = _declared_bytes(t)
        if declared > MAX_TENSOR_BYTES:
            raise self.refuse(
                f"{_tensor_label(t)} declares shape {list(t.shape)}, {declared:,} bytes "
                f"(over the {MAX_TENSOR_BYTES:,} a tensor of a TFLite model can hold)"
            )
        if t.is_constant and not t.is_sparse and _DTYPE_BITS.get(t.dtype):
            one_per_byte = t.dtype in ("int4", "uint4", "int2") and t.nbytes == t.elements
            if t.nbytes != declared and not one_per_byte:
                raise self.refuse(
                    f"{_tensor_label(t)} of shape {list(t.shape)} ({t.dtype}) needs "
                    f"{declared:,} bytes but its buffer holds {t.nbytes:,}"
                )
        self.quantization(t)

    def quantization(self, t: TensorInfo) -> None:
        if not t.scales:
            return
        bad = next((s for s in t.scales if not (math.isfinite(s) and s > 0)), None)
        if bad is not None:
            raise self.refuse(f"{_tensor_label(t)} has quantization scale {bad} (must be > 0)")
        if t.zero_points and len(t.zero_points) != len(t.scales):
            raise self.refuse(
                f"{_tensor_label(t)} has {len(t.scales)} scales "
                f"but {len(t.zero_points)} zero points"
            )
        # A per-channel bias is one scale per element: older converters copied the
        # filter's quantized dimension (3) onto it (TFLite Micro's person_detect),
        # which no kernel reads, as the scales line up with the only dimension.
        one_per_element = len(t.shape) == 1 and t.shape[0] == len(t.scales)
        if (
            len(t.scales) > 1
            and not one_per_element
            and not (
                0 <= t.quantized_dimension < len(t.shape)
                and t.shape[t.quantized_dimension] == len(t.scales)
            )
        ):
            raise self.refuse(
                f"{_tensor_label(t)} has {len(t.scales)} scales along dimension "
                f"{t.quantized_dimension} of shape {list(t.shape)}"
            )
        symmetric = t.dtype in _SYMMETRIC or (t.dtype == "int8" and len(t.scales) > 1)
        bad = next((z for z in t.zero_points if z != 0), None) if symmetric else None
        if bad is not None:
            raise self.refuse(
                f"{_tensor_label(t)} ({t.dtype}, {len(t.scales)} scales) has zero point {bad}; "
                "TFLite's quantization spec fixes it at 0"
            )
        low, high = _INT_RANGES.get(t.dtype, (-(1 << 63), (1 << 63) - 1))
        bad = next((z for z in t.zero_points if not low <= z <= high), None)
        if bad is not None:
            raise self.refuse(f"{_tensor_label(t)} has zero point {bad}, out of {t.dtype} range")

    def operator(self, op: OperatorInfo) -> None:
        if op.opcode.startswith("UNKNOWN_BUILTIN_"):
            raise self.refuse(f"{_op_label(op)} has an unknown builtin code")
        if op.opcode == "CUSTOM:":
            raise self.refuse(f"{_op_label(op)} is a custom operator without a name")
        if not op.outputs:
            raise self.refuse(f"{_op_label(op)} has no output")
        kind = _enum_names("BuiltinOptions").get(self.raw_operator(op).BuiltinOptionsType())
        wanted = _REQUIRED_OPTIONS.get(op.opcode)
        if wanted is not None and kind != wanted:
            raise self.refuse(f"{_op_label(op)} has options {kind}, not {wanted}")
        for name, value in op.options:
            self.option(op, name, value)

    def option(self, op: OperatorInfo, name: str, value: Any) -> None:
        if name == "padding" and value not in _enum_names("Padding"):
            raise self.refuse(f"{_op_label(op)} has padding {value} (SAME or VALID)")
        if name == "fusedActivationFunction" and value not in _enum_names("ActivationFunctionType"):
            raise self.refuse(f"{_op_label(op)} has fused activation {value} (unknown)")
        if name.startswith(_AT_LEAST_ONE) and value < 1:
            raise self.refuse(f"{_op_label(op)} has {name} {value} (must be at least 1)")

    def raw_operator(self, op: OperatorInfo) -> Any:
        return self.fb.model.Subgraphs(op.subgraph).Operators(op.index)

    def data_flow(self, s: int) -> None:
        """Every tensor an operator reads holds data, is an input or variable of its
        subgraph, or was written by an earlier operator (else it is read uninitialized)."""
        graph = self.fb.model.Subgraphs(s)
        tensors = {t.index: t for t in self.info.tensors if t.subgraph == s}
        written = set(vector(self.fb, graph.InputsLength(), graph.Inputs, 4, "subgraph inputs"))
        outputs = vector(self.fb, graph.OutputsLength(), graph.Outputs, 4, "subgraph outputs")
        for t in (*written, *outputs):
            if t not in tensors:
                raise self.refuse(f"subgraph {s} input/output {t} is not one of its tensors")
        for op in (o for o in self.info.operators if o.subgraph == s):
            scratch = _ETHOS_U_SCRATCH_INPUTS if op.opcode == "CUSTOM:ethos-u" else ()
            reads = [t for i, t in enumerate(op.inputs) if i not in scratch]
            for t in _present(reads):
                tensor = tensors[t]
                if not (tensor.is_constant or tensor.is_variable or t in written):
                    raise self.refuse(
                        f"{_op_label(op)} reads {_tensor_label(tensor)}, which holds no data "
                        "and no earlier operator writes"
                    )
            written.update(_present(op.outputs))

    def string_fits(self, table: Any, slot: int, what: str) -> None:
        """The schema's string accessors slice silently: check the declared length."""
        tab, data = table._tab, self.fb.data
        field = tab.Offset(slot)
        if not field:
            return
        at = field + tab.Pos
        at += struct.unpack_from("<I", data, at)[0]
        length = struct.unpack_from("<I", data, at)[0]
        if at + 4 + length >= len(data):  # the bytes and their terminating zero
            raise self.refuse(f"{what} runs past the end of the file")

    def strings_and_signatures(self) -> None:
        """Names, metadata and signatures: fields the runtimes read (LiteRT's verifier
        checks them) even where edgeprune does not."""
        fb, model = self.fb, self.fb.model
        self.string_fits(model, 10, "the description")
        for j in range(fb.count(model.OperatorCodesLength(), 4, "operator codes vector")):
            self.string_fits(model.OperatorCodes(j), 6, f"the custom code of opcode {j}")
        for s in range(self.info.subgraphs):
            graph = model.Subgraphs(s)
            self.string_fits(graph, 12, f"the name of subgraph {s}")
            for t in range(fb.count(graph.TensorsLength(), 4, "tensors vector")):
                self.string_fits(graph.Tensors(t), 10, f"the name of tensor {t} of subgraph {s}")
        for j in range(fb.count(model.MetadataLength(), 4, "metadata vector")):
            entry = model.Metadata(j)
            self.string_fits(entry, 4, f"the name of metadata {j}")
            if entry.Buffer() >= fb.buffer_count():
                raise self.refuse(
                    f"metadata {j} refers to buffer {entry.Buffer()}, not in the file"
                )
        tensors = {
            s: sum(t.subgraph == s for t in self.info.tensors) for s in range(self.info.subgraphs)
        }
        for j in range(fb.count(model.SignatureDefsLength(), 4, "signature defs vector")):
            signature = model.SignatureDefs(j)
            self.string_fits(signature, 8, f"the key of signature {j}")
            graph = signature.SubgraphIndex()
            if graph not in tensors:
                raise self.refuse(f"signature {j} refers to subgraph {graph}, not in the model")
            for kind in ("Inputs", "Outputs"):
                count = getattr(signature, f"{kind}Length")()
                for k in range(fb.count(count, 4, f"signature {j} {kind.lower()}")):
                    entry = getattr(signature, kind)(k)
                    what = f"{kind.lower()[:-1]} {k} of signature {j}"
                    self.string_fits(entry, 4, f"the name of {what}")
                    if entry.TensorIndex() >= tensors[graph]:
                        raise self.refuse(
                            f"{what} refers to tensor {entry.TensorIndex()}, "
                            f"not in subgraph {graph}"
                        )


def _present(indices: Iterable[int]) -> list[int]:
    return [t for t in indices if t >= 0]


def verify(fb: Flatbuffer, info: ModelInfo) -> None:
    """Check ``info`` (parsed from ``fb``) against the rules of the format.

    Raises:
        TFLiteInvalidError: the first rule broken, naming where and the fix.
    """
    _Verifier(fb, info).run()
