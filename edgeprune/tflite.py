"""Read what a ``.tflite`` file holds without importing TensorFlow.

The file is parsed with the flatbuffer schema module that ``ai_edge_litert``
ships (``ai_edge_litert.schema_py_generated``); the interpreter is never
loaded. That module pulls in ``flatbuffers`` and numpy, so it is imported on
the first call, not when this module is imported: ``edgeprune --help`` stays
cheap.

``inspect_model`` returns a frozen :class:`ModelInfo` (tensors, operators,
parameter count, constant bytes, weight sparsity); ``format_model_info`` turns
it into the text that ``edgeprune inspect`` prints; ``read_constant`` returns
the stored values of one constant tensor as a numpy array.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "ModelInfo",
    "OperatorInfo",
    "TFLiteFormatError",
    "TensorInfo",
    "WeightStats",
    "WeightTensorStats",
    "format_model_info",
    "inspect_model",
    "read_constant",
]

logger = logging.getLogger(__name__)

_FILE_IDENTIFIER = b"TFL3"

# Ops whose input 1 is the filter (weights) and whose bias sits at the given
# index. TRANSPOSE_CONV and CONV_3D_TRANSPOSE take (output_shape, filter, input,
# bias), as their kernels' kFilterTensor = 1 and kBiasTensor = 3 say.
_FILTER_INPUT = 1
_BIAS_INPUT = {
    "CONV_2D": 2,
    "DEPTHWISE_CONV_2D": 2,
    "FULLY_CONNECTED": 2,
    "CONV_3D": 2,
    "TRANSPOSE_CONV": 3,
    "CONV_3D_TRANSPOSE": 3,
}
_WEIGHT_OPS = frozenset(_BIAS_INPUT)

# Ops that only change how a constant is stored (float16 -> float32, sparse ->
# dense): a filter computed by one of them is the constant behind it.
_STORAGE_OPS = frozenset({"DEQUANTIZE", "DENSIFY"})

# dtypes whose constants count as parameters wherever they are used; integer
# constants of other types count only as biases (shapes, axes and paddings are
# int32 constants too, and they are not parameters).
_PARAMETER_DTYPES = frozenset(
    {"float32", "float16", "bfloat16", "float64", "int8", "uint8", "int16", "int4", "uint4", "int2"}
)
_BIAS_DTYPES = frozenset({"int32", "int64"})

# Storage bits per element; 0 where the size is not fixed (strings, handles).
_DTYPE_BITS = {
    "float32": 32,
    "float16": 16,
    "int32": 32,
    "uint8": 8,
    "int64": 64,
    "string": 0,
    "bool": 8,
    "int16": 16,
    "complex64": 64,
    "int8": 8,
    "float64": 64,
    "complex128": 128,
    "uint64": 64,
    "resource": 0,
    "variant": 0,
    "uint32": 32,
    "uint16": 16,
    "int4": 4,
    "bfloat16": 16,
    "int2": 2,
    "uint4": 4,
    "float8_e4m3fn": 8,
    "float8_e5m2": 8,
}

# numpy dtypes for the stored bytes (TFLite is little-endian). Sub-byte types
# are unpacked to int8/uint8 by _unpack_bits.
_NUMPY_DTYPES = {
    "float32": "<f4",
    "float16": "<f2",
    "float64": "<f8",
    "int8": "i1",
    "uint8": "u1",
    "int16": "<i2",
    "uint16": "<u2",
    "int32": "<i4",
    "uint32": "<u4",
    "int64": "<i8",
    "uint64": "<u8",
    "bool": "?",
    "complex64": "<c8",
    "complex128": "<c16",
}
_PACKED_DTYPES = {"int4": (4, True), "uint4": (4, False), "int2": (2, True)}

# What the generated accessors raise when offsets in a corrupt file point astray.
_PARSE_ERRORS = (struct.error, IndexError, OverflowError, TypeError)


class TFLiteFormatError(ValueError):
    """The input is not a valid ``.tflite`` flatbuffer; the message names the file and why."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of one subgraph.

    ``dtype`` is the numpy-style name of the TFLite type (``"int8"``,
    ``"float32"``, ``"int4"``, ...). ``is_constant`` is true when the tensor has
    data in the file (weights, biases, shape constants). ``nbytes`` is the size
    of that data for a constant, else ``elements * itemsize`` with dynamic
    dimensions counted as 1. ``scales`` and ``zero_points`` are empty for an
    unquantized tensor; with more than one entry they run along
    ``quantized_dimension``.
    """

    index: int
    subgraph: int
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    dtype: str
    is_constant: bool
    nbytes: int
    scales: tuple[float, ...]
    zero_points: tuple[int, ...]
    quantized_dimension: int
    is_variable: bool
    is_sparse: bool = False

    @property
    def elements(self) -> int:
        """Element count of ``shape``, dynamic dimensions counted as 1."""
        return math.prod(d if d >= 0 else 1 for d in self.shape)


@dataclass(frozen=True)
class OperatorInfo:
    """One operator: ``opcode`` is the builtin name (``"CONV_2D"``) or ``"CUSTOM:<code>"``.

    ``inputs`` and ``outputs`` are tensor indices in the operator's subgraph;
    an absent optional input is -1. ``options`` holds the scalar fields of the
    builtin options table as ``(name, value)`` pairs, names as in the schema
    (``strideW``, ``filterHeight``, ``fusedActivationFunction``...); read them
    with :meth:`option`.
    """

    index: int
    subgraph: int
    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, name: str, default: Any = None) -> Any:
        """The builtin option ``name``, or ``default`` when the op has none by that name."""
        return next((v for k, v in self.options if k == name), default)


@dataclass(frozen=True)
class WeightTensorStats:
    """Zero count of one weight tensor (see :class:`WeightStats` for the definitions)."""

    subgraph: int
    index: int
    name: str
    dtype: str
    elements: int
    zero_elements: int

    @property
    def zero_fraction(self) -> float:
        """``zero_elements / elements``; 0.0 for an empty tensor."""
        return self.zero_elements / self.elements if self.elements else 0.0


@dataclass(frozen=True)
class WeightStats:
    """How many stored weights are zero.

    Weight tensors are the constant tensors that feed the filter input (input
    1) of CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, CONV_3D, TRANSPOSE_CONV
    and CONV_3D_TRANSPOSE, counted once per tensor. When the filter is computed
    by DEQUANTIZE or DENSIFY (float16 models store float16 constants that
    DEQUANTIZE widens), the constant behind that op is the weight tensor.
    Constants used by other ops are not weights.

    An element is zero when its stored value equals the tensor's zero point
    (per channel along ``quantized_dimension`` for per-channel quantization;
    0 when the tensor is not quantized), or equals 0.0 for float tensors. The
    elements a sparse tensor does not store are zeros. Weight tensors whose
    type cannot be decoded (bfloat16, float8) or whose data is in an external
    file are left out and logged. ``per_tensor`` lists the counted tensors in
    operator order.
    """

    tensors: int
    elements: int
    zero_elements: int
    per_tensor: tuple[WeightTensorStats, ...] = ()

    @property
    def zero_fraction(self) -> float:
        """``zero_elements / elements``; 0.0 when there are no weight elements."""
        return self.zero_elements / self.elements if self.elements else 0.0


@dataclass(frozen=True)
class ModelInfo:
    """What a ``.tflite`` file holds.

    ``inputs`` and ``outputs`` are those of subgraph 0; ``tensors`` and
    ``operators`` cover every subgraph, ordered by subgraph then index.
    ``op_counts`` maps each opcode to its count over all subgraphs, sorted by
    name.

    ``constant_bytes`` is the data size of the constant tensors, each buffer
    counted once. ``parameter_count`` is the total element count of the
    constant tensors of float, int8, uint8, int16 and sub-byte integer types,
    plus int32/int64 constants used as biases (input 2 of CONV_2D,
    DEPTHWISE_CONV_2D, FULLY_CONNECTED and CONV_3D, input 3 of TRANSPOSE_CONV
    and CONV_3D_TRANSPOSE), each buffer counted once; integer shape and axis
    constants are not parameters. ``has_offset_buffers`` is true when some
    buffer data lies after the flatbuffer (``offset``/``size``, the layout
    of models over 2 GB).
    """

    path: str | None
    file_bytes: int
    version: int
    description: str
    subgraphs: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    tensors: tuple[TensorInfo, ...]
    operators: tuple[OperatorInfo, ...]
    op_counts: dict[str, int]
    constant_bytes: int
    parameter_count: int
    weights: WeightStats
    has_offset_buffers: bool = False


@functools.cache
def _schema() -> ModuleType:
    # Imported on first use: it imports flatbuffers and numpy (~0.1 s).
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


@functools.cache
def _enum_names(enum_name: str) -> dict[int, str]:
    enum = getattr(_schema(), enum_name)
    return {v: k for k, v in vars(enum).items() if not k.startswith("_") and isinstance(v, int)}


def _dtype_name(code: int) -> str:
    name = _enum_names("TensorType").get(code)
    return name.lower() if name else f"unknown_type_{code}"


def _opcode_name(opcode: Any) -> str:
    # Codes above 127 live only in builtin_code; older files set only the
    # deprecated int8 field. TFLite's GetBuiltinCode takes the larger.
    code = max(opcode.DeprecatedBuiltinCode(), opcode.BuiltinCode())
    name = _enum_names("BuiltinOperator").get(code, f"UNKNOWN_BUILTIN_{code}")
    if name == "CUSTOM":
        custom = opcode.CustomCode()
        return "CUSTOM:" + (custom.decode("utf-8", "replace") if custom else "")
    return name


def _decode(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


class _Flatbuffer:
    """The parsed file: root table plus bounds-checked access to buffer data."""

    def __init__(self, data: bytes, label: str) -> None:
        self.data = data
        self.label = label
        if len(data) < 8:
            raise TFLiteFormatError(f"{label}: {len(data)} bytes, too short for a TFLite model")
        if data[4:8] != _FILE_IDENTIFIER:
            raise TFLiteFormatError(
                f"{label}: not a TFLite model: bytes 4:8 are {bytes(data[4:8])!r}, "
                f"not the file identifier {_FILE_IDENTIFIER!r}"
            )
        self.model = _schema().Model.GetRootAs(data, 0)

    def fail(self, problem: str) -> TFLiteFormatError:
        return TFLiteFormatError(f"{self.label}: damaged TFLite model: {problem}")

    def count(self, length: int, item_bytes: int, what: str) -> int:
        """A vector length, refused when it cannot fit in the file (garbage offsets)."""
        if length < 0 or length * item_bytes > len(self.data):
            raise self.fail(f"{what} claims {length} entries in a {len(self.data)}-byte file")
        return length

    def buffer_count(self) -> int:
        return self.count(self.model.BuffersLength(), 4, "buffers vector")

    def buffer_data(self, index: int) -> memoryview | None:
        """Bytes of buffer ``index``; None when it holds no data."""
        if index <= 0:
            return None  # buffer 0 is the empty sentinel every non-constant tensor points at
        if index >= self.buffer_count():
            raise self.fail(f"buffer index {index} out of range ({self.buffer_count()} buffers)")
        buffer = self.model.Buffers(index)
        if buffer is None:
            return None
        # offset > 1 marks data stored after the flatbuffer, relative to the
        # start of the file; the exporter writes offset 1 as "unset".
        offset, size = buffer.Offset(), buffer.Size()
        if offset > 1:
            if offset + size > len(self.data):
                raise self.fail(
                    f"buffer {index} data at offset {offset} + {size} bytes lies past the end "
                    f"of the {len(self.data)}-byte file"
                )
            return memoryview(self.data)[offset : offset + size] if size else None
        if not self.count(buffer.DataLength(), 1, f"buffer {index} data"):
            return None
        return memoryview(buffer.DataAsNumpy())

    def is_offset_buffer(self, index: int) -> bool:
        buffer = self.model.Buffers(index)
        return buffer is not None and buffer.Offset() > 1

    def external_bytes(self, external_id: int) -> int:
        """Length of an external buffer (data in a separate file of a buffer group)."""
        n = self.count(self.model.ExternalBuffersLength(), 4, "external buffers vector")
        for j in range(n):
            ext = self.model.ExternalBuffers(j)
            if ext is not None and ext.Id() == external_id:
                return ext.Length()
        raise self.fail(f"tensor refers to external buffer {external_id}, which is not declared")

    def subgraph(self, index: int) -> Any:
        n = self.count(self.model.SubgraphsLength(), 4, "subgraphs vector")
        if not 0 <= index < n:
            raise ValueError(f"{self.label}: no subgraph {index} (the model has {n})")
        return self.model.Subgraphs(index)

    def raw_tensor(self, subgraph: int, index: int) -> Any:
        graph = self.subgraph(subgraph)
        n = self.count(graph.TensorsLength(), 4, f"subgraph {subgraph} tensors vector")
        if not 0 <= index < n:
            raise ValueError(
                f"{self.label}: no tensor {index} in subgraph {subgraph} ({n} tensors)"
            )
        return graph.Tensors(index)


def _vector(
    fb: _Flatbuffer, length: int, get: Callable[[int], Any], item_bytes: int, what: str
) -> tuple[Any, ...]:
    return tuple(get(j) for j in range(fb.count(length, item_bytes, what)))


def _read_source(source: str | os.PathLike[str] | bytes) -> tuple[bytes, str | None, str]:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), None, "<bytes>"
    path = os.fspath(source)
    return Path(path).read_bytes(), path, path


def _parse_tensor(fb: _Flatbuffer, raw: Any, subgraph: int, index: int) -> tuple[TensorInfo, int]:
    """A TensorInfo and the buffer index holding its data (0 when none)."""
    shape = _vector(fb, raw.ShapeLength(), raw.Shape, 4, "tensor shape")
    signature = (
        None
        if raw.ShapeSignatureIsNone()
        else _vector(fb, raw.ShapeSignatureLength(), raw.ShapeSignature, 4, "shape signature")
    )
    dtype = _dtype_name(raw.Type())
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension = 0
    quant = raw.Quantization()
    if quant is not None:
        scales = _vector(fb, quant.ScaleLength(), quant.Scale, 4, "quantization scales")
        zero_points = _vector(fb, quant.ZeroPointLength(), quant.ZeroPoint, 8, "zero points")
        if scales:
            quantized_dimension = quant.QuantizedDimension()

    buffer_index = raw.Buffer()
    data = fb.buffer_data(buffer_index)
    external_id = raw.ExternalBuffer()
    if data is not None:
        is_constant, nbytes = True, len(data)
    elif external_id:
        is_constant, nbytes = True, fb.external_bytes(external_id)
        buffer_index = 0
    else:
        is_constant, buffer_index = False, 0
        elements = math.prod(d if d >= 0 else 1 for d in shape)
        nbytes = math.ceil(elements * _DTYPE_BITS.get(dtype, 0) / 8)
    info = TensorInfo(
        index=index,
        subgraph=subgraph,
        name=_decode(raw.Name()),
        shape=shape,
        shape_signature=signature,
        dtype=dtype,
        is_constant=is_constant,
        nbytes=nbytes,
        scales=scales,
        zero_points=zero_points,
        quantized_dimension=quantized_dimension,
        is_variable=bool(raw.IsVariable()),
        is_sparse=raw.Sparsity() is not None,
    )
    return info, buffer_index


def _parse_operator(
    fb: _Flatbuffer, raw: Any, subgraph: int, index: int, opcodes: list[str], tensor_count: int
) -> OperatorInfo:
    opcode_index = raw.OpcodeIndex()
    if opcode_index >= len(opcodes):
        raise fb.fail(
            f"operator {index} of subgraph {subgraph} uses opcode {opcode_index}, "
            f"but only {len(opcodes)} are declared"
        )
    inputs = _vector(fb, raw.InputsLength(), raw.Inputs, 4, "operator inputs")
    outputs = _vector(fb, raw.OutputsLength(), raw.Outputs, 4, "operator outputs")
    for t in inputs + outputs:
        if not -1 <= t < tensor_count:
            raise fb.fail(
                f"operator {index} of subgraph {subgraph} refers to tensor {t} "
                f"({tensor_count} tensors)"
            )
    return OperatorInfo(index, subgraph, opcodes[opcode_index], inputs, outputs,
                        _builtin_options(raw))


def _builtin_options(raw: Any) -> tuple[tuple[str, Any], ...]:
    """The scalar fields of an operator's builtin options table (empty when it has none)."""
    kind = _enum_names("BuiltinOptions").get(raw.BuiltinOptionsType())
    table = raw.BuiltinOptions()
    cls = getattr(_schema(), f"{kind}T", None) if kind and kind != "NONE" else None
    if table is None or cls is None:
        return ()
    fields = vars(cls.InitFromBuf(table.Bytes, table.Pos))
    return tuple((k, v) for k, v in fields.items() if isinstance(v, int | float | bool))


def _unpack_bits(packed: np.ndarray, bits: int, signed: bool, count: int) -> np.ndarray:
    """Sub-byte values packed least-significant bits first (LiteRT UnpackDenseLowBitIntoInt8)."""
    import numpy as np

    per_byte = 8 // bits
    mask = (1 << bits) - 1
    fields = [(packed >> (bits * k)) & mask for k in range(per_byte)]
    values = np.stack(fields, axis=1).reshape(-1)[:count].astype(np.int8)
    if signed:
        values = np.where(values >= 1 << (bits - 1), values - (1 << bits), values).astype(np.int8)
    return values if signed else values.astype(np.uint8)


def _stored_values(fb: _Flatbuffer, tensor: TensorInfo, buffer_index: int) -> np.ndarray:
    """The stored values as a flat array (for a sparse tensor, only the stored ones)."""
    import numpy as np

    data = fb.buffer_data(buffer_index)
    if data is None:
        raise ValueError(
            f"{fb.label}: tensor {tensor.index} ({tensor.name!r}) of subgraph {tensor.subgraph} "
            "has no data in this file"
        )
    raw = np.frombuffer(data, dtype=np.uint8)
    if tensor.dtype in _PACKED_DTYPES:
        bits, signed = _PACKED_DTYPES[tensor.dtype]
        count = tensor.elements if not tensor.is_sparse else raw.size * (8 // bits)
        if raw.size == count > 1:
            # Written one value per byte (files from before dense packing).
            return raw.view(np.int8).copy() if signed else raw.copy()
        if raw.size * (8 // bits) < count:
            raise fb.fail(f"tensor {tensor.name!r} holds {raw.size} bytes for {count} values")
        return _unpack_bits(raw, bits, signed, count)
    if tensor.dtype not in _NUMPY_DTYPES:
        raise ValueError(
            f"{fb.label}: tensor {tensor.name!r} has dtype {tensor.dtype}, which numpy cannot hold"
        )
    dtype = np.dtype(_NUMPY_DTYPES[tensor.dtype])
    if raw.size % dtype.itemsize:
        raise fb.fail(
            f"tensor {tensor.name!r} holds {raw.size} bytes, not a multiple of {tensor.dtype}"
        )
    values = np.frombuffer(data, dtype=dtype).copy()
    if not tensor.is_sparse and values.size != tensor.elements:
        raise fb.fail(f"tensor {tensor.name!r} of shape {tensor.shape} holds {values.size} values")
    return values


def _count_zeros(fb: _Flatbuffer, tensor: TensorInfo, buffer_index: int) -> int:
    import numpy as np

    values = _stored_values(fb, tensor, buffer_index)
    zero_points = tensor.zero_points
    if values.dtype.kind in "fc" or not zero_points or not any(zero_points):
        stored_zeros = int(np.count_nonzero(values == 0))
    elif len(set(zero_points)) == 1:
        stored_zeros = int(np.count_nonzero(values == zero_points[0]))
    else:
        axis = tensor.quantized_dimension
        if tensor.is_sparse or not (
            0 <= axis < len(tensor.shape) and tensor.shape[axis] == len(zero_points)
        ):
            raise fb.fail(
                f"tensor {tensor.name!r} has {len(zero_points)} zero points along dimension "
                f"{axis} of shape {tensor.shape}"
            )
        broadcast = [1] * len(tensor.shape)
        broadcast[axis] = len(zero_points)
        zp = np.asarray(zero_points, dtype=np.int64).reshape(broadcast)
        stored_zeros = int(np.count_nonzero(values.reshape(tensor.shape) == zp))
    # A sparse tensor stores only some blocks; the rest are zeros.
    return stored_zeros + (tensor.elements - values.size if tensor.is_sparse else 0)


def _weight_sources(
    operators: Sequence[OperatorInfo], tensors: dict[tuple[int, int], TensorInfo]
) -> tuple[list[tuple[int, int]], set[tuple[int, int]]]:
    """Keys (subgraph, index) of the weight tensors, and of the constants used as biases."""
    producer = {(op.subgraph, t): op for op in operators for t in op.outputs}
    weights: list[tuple[int, int]] = []
    biases: set[tuple[int, int]] = set()
    for op in operators:
        if op.opcode not in _WEIGHT_OPS:
            continue
        bias_at = _BIAS_INPUT[op.opcode]
        if len(op.inputs) > bias_at and op.inputs[bias_at] >= 0:
            biases.add((op.subgraph, op.inputs[bias_at]))
        if len(op.inputs) <= _FILTER_INPUT or op.inputs[_FILTER_INPUT] < 0:
            continue
        key = (op.subgraph, op.inputs[_FILTER_INPUT])
        # Follow DEQUANTIZE / DENSIFY back to the stored constant (a few hops at most).
        for _ in range(4):
            if tensors[key].is_constant:
                break
            source = producer.get(key)
            if source is None or source.opcode not in _STORAGE_OPS or not source.inputs:
                break
            if source.inputs[0] < 0:
                break
            key = (op.subgraph, source.inputs[0])
        if tensors[key].is_constant and key not in weights:
            weights.append(key)
    return weights, biases


def _weight_stats(
    fb: _Flatbuffer,
    keys: Sequence[tuple[int, int]],
    tensors: dict[tuple[int, int], TensorInfo],
    buffers: dict[tuple[int, int], int],
) -> WeightStats:
    per_tensor = []
    for key in keys:
        tensor = tensors[key]
        if not buffers[key]:
            logger.info(
                "%s: weight tensor %r is in an external file; not counted", fb.label, tensor.name
            )
            continue
        if tensor.dtype not in _NUMPY_DTYPES and tensor.dtype not in _PACKED_DTYPES:
            logger.info(
                "%s: weight tensor %r has dtype %s; not counted",
                fb.label,
                tensor.name,
                tensor.dtype,
            )
            continue
        per_tensor.append(
            WeightTensorStats(
                subgraph=tensor.subgraph,
                index=tensor.index,
                name=tensor.name,
                dtype=tensor.dtype,
                elements=tensor.elements,
                zero_elements=_count_zeros(fb, tensor, buffers[key]),
            )
        )
    return WeightStats(
        tensors=len(per_tensor),
        elements=sum(w.elements for w in per_tensor),
        zero_elements=sum(w.zero_elements for w in per_tensor),
        per_tensor=tuple(per_tensor),
    )


def _inspect(fb: _Flatbuffer, path: str | None) -> ModelInfo:
    model = fb.model
    opcodes = [
        _opcode_name(model.OperatorCodes(j))
        for j in range(fb.count(model.OperatorCodesLength(), 4, "operator codes vector"))
    ]
    subgraph_count = fb.count(model.SubgraphsLength(), 4, "subgraphs vector")
    tensors: dict[tuple[int, int], TensorInfo] = {}
    buffers: dict[tuple[int, int], int] = {}
    operators: list[OperatorInfo] = []
    io: list[tuple[int, ...]] = [(), ()]
    for s in range(subgraph_count):
        graph = model.Subgraphs(s)
        n_tensors = fb.count(graph.TensorsLength(), 4, f"subgraph {s} tensors vector")
        for t in range(n_tensors):
            tensors[s, t], buffers[s, t] = _parse_tensor(fb, graph.Tensors(t), s, t)
        n_ops = fb.count(graph.OperatorsLength(), 4, f"subgraph {s} operators vector")
        operators.extend(
            _parse_operator(fb, graph.Operators(o), s, o, opcodes, n_tensors) for o in range(n_ops)
        )
        if s == 0:
            io = [
                _vector(fb, graph.InputsLength(), graph.Inputs, 4, "subgraph inputs"),
                _vector(fb, graph.OutputsLength(), graph.Outputs, 4, "subgraph outputs"),
            ]
    for indices in io:
        if any((0, t) not in tensors for t in indices):
            raise fb.fail(f"subgraph 0 inputs/outputs {indices} refer to a missing tensor")

    weight_keys, bias_keys = _weight_sources(operators, tensors)
    # Tensors may share a buffer; the file stores (and a device flashes) it once.
    stored_bytes: dict[tuple[int, int] | int, int] = {}
    parameters: dict[tuple[int, int] | int, int] = {}
    for key, tensor in tensors.items():
        if not tensor.is_constant:
            continue
        storage = buffers[key] or key
        stored_bytes[storage] = tensor.nbytes
        if tensor.dtype in _PARAMETER_DTYPES or (tensor.dtype in _BIAS_DTYPES and key in bias_keys):
            parameters[storage] = tensor.elements

    return ModelInfo(
        path=path,
        file_bytes=len(fb.data),
        version=model.Version(),
        description=_decode(model.Description()),
        subgraphs=subgraph_count,
        inputs=tuple(tensors[0, t] for t in io[0]),
        outputs=tuple(tensors[0, t] for t in io[1]),
        tensors=tuple(tensors.values()),
        operators=tuple(operators),
        op_counts=dict(sorted(Counter(op.opcode for op in operators).items())),
        constant_bytes=sum(stored_bytes.values()),
        parameter_count=sum(parameters.values()),
        weights=_weight_stats(fb, weight_keys, tensors, buffers),
        has_offset_buffers=any(fb.is_offset_buffer(b) for b in range(1, fb.buffer_count())),
    )


def inspect_model(source: str | os.PathLike[str] | bytes) -> ModelInfo:
    """Parse a ``.tflite`` file (a path, or its bytes) into a :class:`ModelInfo`.

    Reads the whole file into memory; imports neither TensorFlow nor the
    LiteRT interpreter. Buffer data stored after the flatbuffer
    (``offset``/``size``) is read relative to the start of the file.

    Raises:
        TFLiteFormatError: the data is empty, lacks the ``TFL3`` file
            identifier, or does not parse as a TFLite model.
        OSError: the file cannot be read.
    """
    data, path, label = _read_source(source)
    fb = _Flatbuffer(data, label)
    try:
        return _inspect(fb, path)
    except TFLiteFormatError:
        raise
    except (*_PARSE_ERRORS, ValueError) as exc:
        raise fb.fail(f"truncated, or an offset points astray ({exc})") from exc


def read_constant(source: str | os.PathLike[str] | bytes, tensor: TensorInfo) -> np.ndarray:
    """Return the stored values of a constant tensor as a new numpy array of ``tensor.shape``.

    ``source`` is the file ``tensor`` came from (path or bytes). Values are
    returned as stored, not dequantized: int8 weights come back as int8,
    float16 as float16; int4/uint4/int2 are unpacked to one int8 (uint8) per
    value. Re-reads the file on each call.

    Raises:
        TFLiteFormatError: the file is not a valid TFLite model.
        ValueError: the tensor is not in the file, holds no data here
            (activations, external buffers), is stored sparse, or has a type
            numpy cannot hold (string, bfloat16, float8).
        OSError: the file cannot be read.
    """
    data, _, label = _read_source(source)
    fb = _Flatbuffer(data, label)
    try:
        raw = fb.raw_tensor(tensor.subgraph, tensor.index)
        stored, buffer_index = _parse_tensor(fb, raw, tensor.subgraph, tensor.index)
    except _PARSE_ERRORS as exc:
        raise fb.fail(f"truncated, or an offset points astray ({exc})") from exc
    if stored.is_sparse:
        raise ValueError(f"{label}: tensor {stored.name!r} is stored sparse; densify it first")
    return _stored_values(fb, stored, buffer_index).reshape(stored.shape)


# --- text report -------------------------------------------------------------------------------

_NAME_WIDTH = 40


def _short(name: str, width: int = _NAME_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 3] + "..."


def _size(nbytes: int) -> str:
    if nbytes < 1024:
        return f"{nbytes:,} B"
    exponent = min((nbytes.bit_length() - 1) // 10, 4)
    unit = ("KiB", "MiB", "GiB", "TiB")[exponent - 1]
    return f"{nbytes:,} B ({nbytes / 1024**exponent:.1f} {unit})"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _shape(tensor: TensorInfo) -> str:
    dims = tensor.shape_signature if tensor.shape_signature is not None else tensor.shape
    return "(" + ", ".join("?" if d < 0 else str(d) for d in dims) + ")"


def _quant(tensor: TensorInfo) -> tuple[str, str]:
    if not tensor.scales:
        return "-", "-"
    if len(tensor.scales) == 1:
        return f"{tensor.scales[0]:.6g}", str(tensor.zero_points[0] if tensor.zero_points else 0)
    per_channel = f"{len(tensor.scales)} ch, dim {tensor.quantized_dimension}"
    return per_channel, per_channel


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: str = "") -> list[str]:
    """Aligned text columns, indented two spaces; column k is right-aligned when
    ``right[k] == 'r'``."""
    from edgeprune.presentation.table import table

    aligned = table([list(headers), *map(list, rows)],
                    {k for k, c in enumerate(right) if c == "r"})
    return ["  " + line for line in aligned]


def _io_rows(tensors: Sequence[TensorInfo]) -> list[list[str]]:
    return [[str(t.index), _short(t.name), _shape(t), t.dtype, *_quant(t)] for t in tensors]


def format_model_info(info: ModelInfo) -> str:
    """Render ``info`` as the multi-line text ``edgeprune inspect`` prints (no trailing newline).

    Shapes show dynamic dimensions as ``?``; names longer than 40 characters
    are cut. Has no side effects and raises nothing.
    """
    weights = info.weights
    lines = [
        f"Model: {info.path or '<bytes>'}",
        f"  file size        {_size(info.file_bytes)}",
        f"  schema version   {info.version}",
    ]
    if info.description:
        lines.append(f"  description      {info.description}")
    lines += [
        f"  subgraphs        {info.subgraphs}",
        f"  operators        {len(info.operators)}",
        f"  tensors          {len(info.tensors)}",
        f"  parameters       {info.parameter_count:,}",
        f"  constant bytes   {_size(info.constant_bytes)}",
        f"  weights          {_plural(weights.tensors, 'tensor')}, {weights.elements:,} elements, "
        f"{weights.zero_elements:,} zero ({weights.zero_fraction:.1%})",
    ]
    if info.has_offset_buffers:
        lines.append("  buffers          some data stored after the flatbuffer (offset/size)")

    io_headers = ["index", "name", "shape", "dtype", "scale", "zero point"]
    for title, tensors in (("Inputs", info.inputs), ("Outputs", info.outputs)):
        lines += ["", f"{title} (subgraph 0)"]
        lines += _table(io_headers, _io_rows(tensors), "r") if tensors else ["  (none)"]

    lines += ["", "Operators"]
    if info.op_counts:
        lines += _table(["op", "count"], [[k, str(v)] for k, v in info.op_counts.items()], "lr")
    else:
        lines.append("  (none)")

    if weights.per_tensor:
        lines += ["", "Weight tensors"]
        rows = [
            [
                str(w.index),
                _short(w.name),
                w.dtype,
                f"{w.elements:,}",
                f"{w.zero_elements:,}",
                f"{w.zero_fraction:.1%}",
            ]
            for w in weights.per_tensor
        ]
        lines += _table(["index", "name", "dtype", "elements", "zeros", "zero %"], rows, "rlllrrr")

    multi = info.subgraphs > 1
    headers = (["sg"] if multi else []) + ["index", "name", "shape", "dtype", "bytes", "const"]
    rows = [
        ([str(t.subgraph)] if multi else [])
        + [
            str(t.index),
            _short(t.name),
            _shape(t),
            t.dtype,
            f"{t.nbytes:,}",
            "yes" if t.is_constant else "",
        ]
        for t in info.tensors
    ]
    lines += ["", "Tensors"]
    lines += _table(headers, rows, ("r" if multi else "") + "rlllr") if rows else ["  (none)"]
    return "\n".join(lines)
