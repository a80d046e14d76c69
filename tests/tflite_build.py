"""Hand-built ``.tflite`` flatbuffers for tests: layouts the converter does not produce here."""

from __future__ import annotations

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

OP = schema.BuiltinOperator
TYPE = schema.TensorType


def tensor(name, shape, dtype, buffer=0, scales=(), zero_points=(), axis=0):
    """A ``TensorT``; ``buffer`` 0 is the empty sentinel (an activation)."""
    t = schema.TensorT()
    t.name, t.shape, t.type, t.buffer = name, list(shape), dtype, buffer
    if scales:
        t.quantization = schema.QuantizationParametersT()
        t.quantization.scale = list(scales)
        t.quantization.zeroPoint = list(zero_points)
        t.quantization.quantizedDimension = axis
    return t


def flatbuffer(tensors, ops, buffers, offsets=None, graph_inputs=(0,), graph_outputs=None) -> bytes:
    """A one-subgraph model; ``ops`` are (builtin, custom_code, inputs, outputs) with an
    optional fifth item, the custom options bytes (a flexbuffer for TFLite Micro's own
    custom kernels).

    ``buffers`` hold each buffer's bytes (buffer 0, the empty sentinel, is
    added). With ``offsets``, buffer i's data is stored at ``offsets[i]`` after
    the flatbuffer instead of inside it. The graph's output is the last tensor
    unless ``graph_outputs`` says otherwise.
    """
    model = schema.ModelT()
    model.version, model.description = 3, "hand-built"
    model.operatorCodes, model.buffers = [], [schema.BufferT()]
    for data in buffers:
        buffer = schema.BufferT()
        if offsets is None:
            buffer.data = list(data)
        else:
            buffer.offset, buffer.size = offsets[len(model.buffers)], len(data)
        model.buffers.append(buffer)
    graph = schema.SubGraphT()
    graph.tensors, graph.operators = tensors, []
    for builtin, custom, inputs, outputs, *options in ops:
        code = schema.OperatorCodeT()
        # Codes over 127 do not fit the deprecated int8 field, which then holds
        # PLACEHOLDER_FOR_GREATER_OP_CODES (127), as the converter writes it.
        code.builtinCode, code.deprecatedBuiltinCode = builtin, min(builtin, 127)
        code.customCode, code.version = custom, 1
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = len(model.operatorCodes), inputs, outputs
        if options:
            op.customOptions = list(options[0])
        model.operatorCodes.append(code)
        graph.operators.append(op)
    graph.inputs = list(graph_inputs)
    graph.outputs = list(graph_outputs) if graph_outputs is not None else [len(tensors) - 1]
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def signal_window_model(samples: int = 16, shift: int = 12) -> bytes:
    """int16 samples through TFLite Micro's ``SignalWindow`` custom op (what
    ``MicroMutableOpResolver::AddWindow`` registers), as in the micro_speech audio
    preprocessor: inputs (samples, int16 weights), options a flexbuffer map."""
    from flatbuffers import flexbuffers

    weights = (np.hanning(samples) * 4096).astype("<i2")
    return flatbuffer(
        tensors=[
            tensor("samples", [samples], TYPE.INT16),
            tensor("window_weights", [samples], TYPE.INT16, 1),
            tensor("windowed", [samples], TYPE.INT16),
        ],
        ops=[(OP.CUSTOM, b"SignalWindow", [0, 1], [2], bytes(flexbuffers.Dumps({"shift": shift})))],
        buffers=[weights.tobytes()],
    )


def ethos_u_model(custom: bytes = b"ethos-u") -> bytes:
    """The layout Arm's Vela writes for a model it compiled whole for an Ethos-U NPU:
    one ``ethos-u`` custom op reading (command stream, weights, scratch, fast
    scratch, input); the two scratch tensors hold no data (arena space)."""
    return flatbuffer(
        tensors=[
            tensor("out", [1, 2], TYPE.INT8, 0, [1 / 256], [-128]),
            tensor("_split_1_command_stream", [8], TYPE.UINT8, 1),
            tensor("_split_1_flash", [16], TYPE.UINT8, 2),
            tensor("_split_1_scratch", [64], TYPE.UINT8),
            tensor("_split_1_scratch_fast", [64], TYPE.UINT8),
            tensor("input", [1, 4, 4, 1], TYPE.INT8, 0, [1 / 128], [0]),
        ],
        ops=[(OP.CUSTOM, custom, [1, 2, 3, 4, 5], [0], b"\x01")],
        buffers=[bytes(8), bytes(range(16))],
        graph_inputs=(5,),
        graph_outputs=(0,),
    )
