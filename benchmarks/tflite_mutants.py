"""Damaged ``.tflite`` files for the fuzz tests and the campaign (no TensorFlow).

Two kinds: :data:`HAND_MADE`, one mutant per class of damage that LiteRT's
loader refuses (stride 0, negative dilation, padding 99, no inputs, no
operators, schema 99, NaN scales, weights with no data, a root table emptied
by one byte, a huge dimension...), built with the schema's object API; and
:func:`random_mutants`, byte-level damage (flips, truncations, splices, random
integers at random offsets) from a seeded generator.
"""

from __future__ import annotations

import math
import random
import struct
from collections.abc import Callable, Iterator

from ai_edge_litert import schema_py_generated as schema


def _edit(data: bytes, change: Callable[[schema.ModelT], None]) -> bytes:
    import flatbuffers

    model = schema.ModelT.InitFromPackedBuf(data)
    change(model)
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _ops(model: schema.ModelT, *names: str) -> list:
    codes = {
        getattr(schema.BuiltinOperator, n): n for n in names if hasattr(schema.BuiltinOperator, n)
    }
    return [
        op
        for op in model.subgraphs[0].operators
        if max(
            model.operatorCodes[op.opcodeIndex].builtinCode,
            model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode,
        )
        in codes
    ]


def _first_conv(model: schema.ModelT):
    found = _ops(model, "CONV_2D", "DEPTHWISE_CONV_2D")
    if not found:
        raise LookupError("the seed model has no convolution")
    return found[0]


def _weight(model: schema.ModelT):
    op = _ops(model, "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")[0]
    return model.subgraphs[0].tensors[op.inputs[1]]


def _set(attr: str, value) -> Callable[[schema.ModelT], None]:
    return lambda m: setattr(_first_conv(m).builtinOptions, attr, value)


def _nan_scale(m: schema.ModelT) -> None:
    quantization = _weight(m).quantization
    if quantization is None or quantization.scale is None:
        raise LookupError("the seed model's weights are not quantized")
    quantization.scale = [math.nan, *list(quantization.scale)[1:]]


def _no_weight_data(m: schema.ModelT) -> None:
    m.buffers[_weight(m).buffer].data = []


def _bias_zero_point(m: schema.ModelT) -> None:
    conv = _first_conv(m)
    quantization = m.subgraphs[0].tensors[conv.inputs[2]].quantization
    if quantization is None or quantization.zeroPoint is None:
        raise LookupError("the seed model's biases are not quantized")
    quantization.zeroPoint = [2] * len(quantization.zeroPoint)


def _huge_dimension(m: schema.ModelT) -> None:
    graph = m.subgraphs[0]
    tensor = graph.tensors[graph.inputs[0]]
    tensor.shape = [tensor.shape[0], 1 << 30, *list(tensor.shape)[2:]]


def _large_activation(m: schema.ModelT) -> None:
    """One activation of 64 MB: a valid file, far over a microcontroller's RAM."""
    graph = m.subgraphs[0]
    tensor = graph.tensors[graph.inputs[0]]
    tensor.shape = [1, 8192, 8192, 1]


def empty_root_table(data: bytes) -> bytes:
    """One byte changed: the root table's vtable says it has no fields (0 subgraphs)."""
    root = struct.unpack_from("<I", data, 0)[0]
    vtable = root - struct.unpack_from("<i", data, root)[0]
    out = bytearray(data)
    out[vtable] = 4  # the vtable's own size: 4 bytes of header, no field offsets
    out[vtable + 1] = 0
    return bytes(out)


def signature_key_past_the_end(data: bytes) -> bytes:
    """The signature key's string length set past the end of the file (the
    schema's accessors would slice it short without a word)."""
    model = schema.Model.GetRootAs(data, 0)
    if not model.SignatureDefsLength():
        raise LookupError("the seed model has no signature")
    tab = model.SignatureDefs(0)._tab
    field = tab.Offset(8)
    if not field:
        raise LookupError("the seed model's signature has no key")
    string = field + tab.Pos + struct.unpack_from("<I", data, field + tab.Pos)[0]
    out = bytearray(data)
    out[string : string + 4] = struct.pack("<I", 0x7FFFFFF0)
    return bytes(out)


HAND_MADE: dict[str, Callable[[bytes], bytes]] = {
    "stride 0": lambda d: _edit(d, _set("strideW", 0)),
    "negative dilation": lambda d: _edit(d, _set("dilationHFactor", -1)),
    "padding 99": lambda d: _edit(d, _set("padding", 99)),
    "fused activation 99": lambda d: _edit(d, _set("fusedActivationFunction", 99)),
    "no inputs": lambda d: _edit(d, lambda m: setattr(m.subgraphs[0], "inputs", [])),
    "no outputs": lambda d: _edit(d, lambda m: setattr(m.subgraphs[0], "outputs", [])),
    "no operators": lambda d: _edit(d, lambda m: setattr(m.subgraphs[0], "operators", [])),
    "no subgraphs": lambda d: _edit(d, lambda m: setattr(m, "subgraphs", [])),
    "schema 99": lambda d: _edit(d, lambda m: setattr(m, "version", 99)),
    "NaN weight scale": lambda d: _edit(d, _nan_scale),
    "weights with no data": lambda d: _edit(d, _no_weight_data),
    "bias zero point 2": lambda d: _edit(d, _bias_zero_point),
    "root table emptied": empty_root_table,
    "signature key past the end": signature_key_past_the_end,
    "huge dimension": lambda d: _edit(d, _huge_dimension),
    "conv options missing": lambda d: _edit(
        d, lambda m: setattr(_first_conv(m), "builtinOptionsType", 0)
    ),
    "opcode index 99": lambda d: _edit(d, lambda m: setattr(_first_conv(m), "opcodeIndex", 99)),
    "tensor index 999": lambda d: _edit(
        d, lambda m: setattr(_first_conv(m), "inputs", [999, *list(_first_conv(m).inputs)[1:]])
    ),
    "unknown builtin 250": lambda d: _edit(
        d, lambda m: setattr(m.operatorCodes[0], "builtinCode", 250)
    ),
}


def _flip(rng: random.Random, data: bytearray) -> None:
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def _random_int(rng: random.Random, data: bytearray) -> None:
    at = rng.randrange(max(len(data) - 4, 1))
    value = rng.choice([0, 1, -1, 0x7FFFFFFF, -0x80000000, 0xFFFF, rng.randrange(-(2**31), 2**31)])
    data[at : at + 4] = struct.pack("<i", value)[: len(data) - at]


def _truncate(rng: random.Random, data: bytearray) -> None:
    del data[rng.randrange(len(data)) :]


def _splice(rng: random.Random, data: bytearray) -> None:
    start, length = rng.randrange(len(data)), rng.randint(1, 64)
    chunk = data[start : start + length]
    at = rng.randrange(len(data))
    data[at : at + len(chunk)] = chunk


MUTATIONS = (_flip, _random_int, _truncate, _splice)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """``data`` with one to three random mutations (byte-level, seeded by ``rng``)."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if out:
            rng.choice(MUTATIONS)(rng, out)
    return bytes(out)


def random_mutants(
    seeds: dict[str, bytes], count: int, seed: int = 0
) -> Iterator[tuple[str, bytes]]:
    """``count`` named byte-level mutants of ``seeds`` (deterministic for a ``seed``)."""
    rng = random.Random(seed)
    names = sorted(seeds)
    for i in range(count):
        name = names[i % len(names)]
        yield f"{name} mutant {i}", mutate(seeds[name], rng)
