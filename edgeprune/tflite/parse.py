"""Parse a ``.tflite`` file into a :class:`ModelInfo`: tensors, operators, parameters, sparsity.

Reads the whole file into memory; imports neither TensorFlow nor the LiteRT
interpreter (see :mod:`edgeprune.tflite.flatbuffer`).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from edgeprune.tflite.flatbuffer import (
    MAX_MODEL_BYTES,
    NUMPY_DTYPES,
    PACKED_DTYPES,
    PARSE_ERRORS,
    Flatbuffer,
    decode,
    opcode_name,
    parse_operator,
    parse_tensor,
    read_source,
    stored_values,
    vector,
)
from edgeprune.tflite.info import (
    ModelInfo,
    OperatorInfo,
    TensorInfo,
    TFLiteFormatError,
    WeightStats,
    WeightTensorStats,
)
from edgeprune.tflite.verify import verify

if TYPE_CHECKING:
    import numpy as np

logger = logging.getLogger(__name__)

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


def _count_zeros(fb: Flatbuffer, tensor: TensorInfo, buffer_index: int) -> int:
    import numpy as np

    values = stored_values(fb, tensor, buffer_index)
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
    fb: Flatbuffer,
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
        if tensor.dtype not in NUMPY_DTYPES and tensor.dtype not in PACKED_DTYPES:
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


def _inspect(fb: Flatbuffer, path: str | None) -> ModelInfo:
    model = fb.model
    opcodes = [
        opcode_name(model.OperatorCodes(j))
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
            tensors[s, t], buffers[s, t] = parse_tensor(fb, graph.Tensors(t), s, t)
        n_ops = fb.count(graph.OperatorsLength(), 4, f"subgraph {s} operators vector")
        operators.extend(
            parse_operator(fb, graph.Operators(o), s, o, opcodes, n_tensors) for o in range(n_ops)
        )
        if s == 0:
            io = [
                vector(fb, graph.InputsLength(), graph.Inputs, 4, "subgraph inputs"),
                vector(fb, graph.OutputsLength(), graph.Outputs, 4, "subgraph outputs"),
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
        description=decode(model.Description()),
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


def inspect_model(
    source: str | os.PathLike[str] | bytes,
    *,
    max_bytes: int = MAX_MODEL_BYTES,
    label: str | None = None,
) -> ModelInfo:
    """Parse a ``.tflite`` file (a path, or its bytes) into a :class:`ModelInfo`,
        and verify it (:func:`edgeprune.tflite.verify.verify`).

        Reads the whole file into memory, a regular file of at most ``max_bytes``;
        imports neither TensorFlow nor the LiteRT interpreter. Buffer data stored
        after the flatbuffer (``offset``/``size``) is read relative to the start of
        the file. ``label`` names bytes in messages and is their ``path`` (bytes
    read from a file elsewhere; default ``<bytes>`` and no path).

        Raises:
            TFLiteFormatError: the data is empty, lacks the ``TFL3`` file
                identifier, or does not parse as a TFLite model;
                :class:`TFLiteInvalidError` when it parses but breaks a rule of
                the format (stride 0, a NaN scale, a buffer of the wrong size).
            ModelLoadError: the path is missing, not a regular file, too large
                or unreadable.
    """
    data, path, default_label = read_source(source, max_bytes)
    fb = Flatbuffer(data, label or default_label)
    try:
        info = _inspect(fb, path if label is None else label)
        verify(fb, info)
    except TFLiteFormatError:
        raise
    except (*PARSE_ERRORS, ValueError) as exc:
        raise fb.fail(f"truncated, or an offset points astray ({exc})") from exc
    return info


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
    data, _, label = read_source(source)
    fb = Flatbuffer(data, label)
    try:
        raw = fb.raw_tensor(tensor.subgraph, tensor.index)
        stored, buffer_index = parse_tensor(fb, raw, tensor.subgraph, tensor.index)
    except PARSE_ERRORS as exc:
        raise fb.fail(f"truncated, or an offset points astray ({exc})") from exc
    if stored.is_sparse:
        raise ValueError(f"{label}: tensor {stored.name!r} is stored sparse; densify it first")
    return stored_values(fb, stored, buffer_index).reshape(stored.shape)
