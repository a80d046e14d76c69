"""What a ``.tflite`` file holds, as frozen types: tensors, operators, weight statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edgeprune.errors import InvalidModelError


class TFLiteFormatError(InvalidModelError):
    """The input is not a valid ``.tflite`` flatbuffer; the message names the file and why.

    An :class:`~edgeprune.errors.InvalidModelError`, hence a ``ValueError``
    and a bad input (exit 1) wherever it escapes."""


class TFLiteInvalidError(TFLiteFormatError):
    """The flatbuffer parses but breaks a rule of the format that TFLite Micro does not
    check (stride 0, a NaN scale, a buffer of the wrong size); the message ends with the fix."""


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
