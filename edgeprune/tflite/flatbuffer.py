"""Bounds-checked reading of the TFLite flatbuffer schema, without TensorFlow.

The schema module is the one ``ai_edge_litert`` ships
(``ai_edge_litert.schema_py_generated``); it pulls in ``flatbuffers`` and numpy,
so it is imported on first use. :class:`Flatbuffer` refuses vector lengths and
buffer offsets that cannot fit in the file, so a damaged file fails with a
:class:`TFLiteFormatError` naming the problem instead of reading garbage.
"""

from __future__ import annotations

import functools
import math
import os
import struct
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from edgeprune._files import FileTooLargeError, NotRegularFileError, read_regular
from edgeprune.errors import ModelLoadError
from edgeprune.tflite.info import OperatorInfo, TensorInfo, TFLiteFormatError

if TYPE_CHECKING:
    import numpy as np

_FILE_IDENTIFIER = b"TFL3"

#: Default cap on a ``.tflite`` read from a path: a microcontroller model is
#: under 2 MB, a Raspberry Pi one tens of MB; the cap keeps ``inspect`` of a
#: wrong file (a disk image, ``/dev/zero``) from holding gigabytes.
MAX_MODEL_BYTES = 64 * 2**20

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
NUMPY_DTYPES = {
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
PACKED_DTYPES = {"int4": (4, True), "uint4": (4, False), "int2": (2, True)}

# What the generated accessors raise when offsets in a corrupt file point astray.
PARSE_ERRORS = (struct.error, IndexError, OverflowError, TypeError)


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


def opcode_name(opcode: Any) -> str:
    """The builtin name of an OperatorCode (``"CONV_2D"``), or ``"CUSTOM:<code>"``."""
    # Codes above 127 live only in builtin_code; older files set only the
    # deprecated int8 field. TFLite's GetBuiltinCode takes the larger.
    code = max(opcode.DeprecatedBuiltinCode(), opcode.BuiltinCode())
    name = _enum_names("BuiltinOperator").get(code, f"UNKNOWN_BUILTIN_{code}")
    if name == "CUSTOM":
        custom = opcode.CustomCode()
        return "CUSTOM:" + (custom.decode("utf-8", "replace") if custom else "")
    return name


def decode(raw: bytes | None) -> str:
    """A schema string as text (``""`` when absent)."""
    return raw.decode("utf-8", "replace") if raw else ""


class Flatbuffer:
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


def vector(
    fb: Flatbuffer, length: int, get: Callable[[int], Any], item_bytes: int, what: str
) -> tuple[Any, ...]:
    """A schema vector as a tuple, its length checked against the file size."""
    return tuple(get(j) for j in range(fb.count(length, item_bytes, what)))


def read_model_file(path: str, max_bytes: int = MAX_MODEL_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes`` of them.

    The size is taken from the opened file (no race with a swapped path) and
    at most ``max_bytes + 1`` bytes are read, so a device (``/dev/zero``), a
    FIFO or a file that grows is never read without end.

    Raises:
        ModelLoadError: the path is missing, a folder, not a regular file,
            larger than ``max_bytes``, or unreadable.
    """
    try:
        return read_regular(path, max_bytes)
    except FileNotFoundError:
        raise ModelLoadError(f"{path} does not exist; check the path") from None
    except IsADirectoryError:
        raise ModelLoadError(f"{path} is a folder; pass a .tflite file") from None
    except NotRegularFileError:
        raise ModelLoadError(f"model {path} is not a regular file; pass a .tflite file") from None
    except FileTooLargeError as exc:
        raise ModelLoadError(_too_large(path, exc.size, max_bytes)) from None
    except OSError as exc:
        raise ModelLoadError(f"{path} cannot be read ({exc.strerror})") from None


def _too_large(path: str, size: int, max_bytes: int) -> str:
    return (
        f"model {path} is {size / 2**20:,.1f} MiB, over the {max_bytes / 2**20:,.0f} MiB limit "
        "for a .tflite; raise the limit with --max-model-mb if the file is right"
    )


def read_source(
    source: str | os.PathLike[str] | bytes, max_bytes: int = MAX_MODEL_BYTES
) -> tuple[bytes, str | None, str]:
    """``(data, path or None, label for messages)`` of a path (read with
    :func:`read_model_file`) or of bytes."""
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source), None, "<bytes>"
    path = os.fspath(source)
    return read_model_file(path, max_bytes), path, path


def parse_tensor(fb: Flatbuffer, raw: Any, subgraph: int, index: int) -> tuple[TensorInfo, int]:
    """A TensorInfo and the buffer index holding its data (0 when none)."""
    shape = vector(fb, raw.ShapeLength(), raw.Shape, 4, "tensor shape")
    signature = (
        None
        if raw.ShapeSignatureIsNone()
        else vector(fb, raw.ShapeSignatureLength(), raw.ShapeSignature, 4, "shape signature")
    )
    dtype = _dtype_name(raw.Type())
    scales: tuple[float, ...] = ()
    zero_points: tuple[int, ...] = ()
    quantized_dimension = 0
    quant = raw.Quantization()
    if quant is not None:
        scales = vector(fb, quant.ScaleLength(), quant.Scale, 4, "quantization scales")
        zero_points = vector(fb, quant.ZeroPointLength(), quant.ZeroPoint, 8, "zero points")
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
        name=decode(raw.Name()),
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


def parse_operator(
    fb: Flatbuffer, raw: Any, subgraph: int, index: int, opcodes: list[str], tensor_count: int
) -> OperatorInfo:
    """An OperatorInfo, its opcode and tensor indices checked."""
    opcode_index = raw.OpcodeIndex()
    if opcode_index >= len(opcodes):
        raise fb.fail(
            f"operator {index} of subgraph {subgraph} uses opcode {opcode_index}, "
            f"but only {len(opcodes)} are declared"
        )
    inputs = vector(fb, raw.InputsLength(), raw.Inputs, 4, "operator inputs")
    outputs = vector(fb, raw.OutputsLength(), raw.Outputs, 4, "operator outputs")
    for t in inputs + outputs:
        if not -1 <= t < tensor_count:
            raise fb.fail(
                f"operator {index} of subgraph {subgraph} refers to tensor {t} "
                f"({tensor_count} tensors)"
            )
    return OperatorInfo(
        index, subgraph, opcodes[opcode_index], inputs, outputs, _builtin_options(raw)
    )


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


def stored_values(fb: Flatbuffer, tensor: TensorInfo, buffer_index: int) -> np.ndarray:
    """The stored values as a flat array (for a sparse tensor, only the stored ones)."""
    import numpy as np

    data = fb.buffer_data(buffer_index)
    if data is None:
        raise ValueError(
            f"{fb.label}: tensor {tensor.index} ({tensor.name!r}) of subgraph {tensor.subgraph} "
            "has no data in this file"
        )
    raw = np.frombuffer(data, dtype=np.uint8)
    if tensor.dtype in PACKED_DTYPES:
        bits, signed = PACKED_DTYPES[tensor.dtype]
        count = tensor.elements if not tensor.is_sparse else raw.size * (8 // bits)
        if raw.size == count > 1:
            # Written one value per byte (files from before dense packing).
            return raw.view(np.int8).copy() if signed else raw.copy()
        if raw.size * (8 // bits) < count:
            raise fb.fail(f"tensor {tensor.name!r} holds {raw.size} bytes for {count} values")
        return _unpack_bits(raw, bits, signed, count)
    if tensor.dtype not in NUMPY_DTYPES:
        raise ValueError(
            f"{fb.label}: tensor {tensor.name!r} has dtype {tensor.dtype}, which numpy cannot hold"
        )
    dtype = np.dtype(NUMPY_DTYPES[tensor.dtype])
    if raw.size % dtype.itemsize:
        raise fb.fail(
            f"tensor {tensor.name!r} holds {raw.size} bytes, not a multiple of {tensor.dtype}"
        )
    values = np.frombuffer(data, dtype=dtype).copy()
    if not tensor.is_sparse and values.size != tensor.elements:
        raise fb.fail(f"tensor {tensor.name!r} of shape {tensor.shape} holds {values.size} values")
    return values
