"""Firmware artifacts for TensorFlow Lite Micro: the model as a C array, its op resolver, its sizes.

``write_firmware`` writes a ``firmware/`` folder with four files for one
``.tflite`` model:

- ``model_data.h`` / ``model_data.cc``: the model bytes as a 16-byte aligned
  ``const unsigned char`` array and its length (TFLM reads the flatbuffer in
  place, and its allocator expects the buffer aligned);
- ``model_ops.h``: a ``tflite::MicroMutableOpResolver`` sized to exactly the
  number of distinct builtin ops the model uses, and an inline function that
  registers them, choosing int8-only kernels where the model allows it;
- ``model_config.h``: the tensor arena size and, per input and output, the
  shape, element count, byte count and quantization parameters.

Output depends only on the model bytes, its file name and the arena size (no
timestamps, no absolute paths), so regenerating for the same model changes
nothing in a firmware repository. No TensorFlow import: the model is read with
:mod:`edgeprune.tflite`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass

from edgeprune.artifacts import ArtifactWriteError
from edgeprune.errors import BadInputError, UnsupportedModelError
from edgeprune.tflite import ModelInfo, TensorInfo, inspect_model

__all__ = [
    "FirmwareFiles",
    "MODEL_CONFIG_H",
    "MODEL_DATA_CC",
    "MODEL_DATA_H",
    "MODEL_OPS_H",
    "RESOLVER_METHODS",
    "c_identifier",
    "render",
    "resolver_calls",
    "write_firmware",
]

logger = logging.getLogger(__name__)

MODEL_DATA_H = "model_data.h"
MODEL_DATA_CC = "model_data.cc"
MODEL_OPS_H = "model_ops.h"
MODEL_CONFIG_H = "model_config.h"

_BYTES_PER_LINE = 12
_RESOLVER_HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"

# Builtin opcode -> the tflite::MicroMutableOpResolver method that registers it.
# Derived (by reading, not copying) from tensorflow/lite/micro/micro_mutable_op_resolver.h
# of tensorflow/tflite-micro at commit 90b983c2b3f1480642e040bbd2ddb37b998f3424 (the
# file was last changed in e1a6329fe954f2916e36f4edfa8edf545143425a): every Add*() method
# that calls AddBuiltin(BuiltinOperator_X, ...). The methods that register custom ops
# (AddCircularBuffer, AddDetectionPostprocess, AddEthosU, the signal-library ops, ...)
# are left out: a custom op is refused, as the resolver cannot be sized or filled for
# it without knowing which kernel the firmware links.
RESOLVER_METHODS: dict[str, str] = {
    "ABS": "AddAbs",
    "ADD": "AddAdd",
    "ADD_N": "AddAddN",
    "ARG_MAX": "AddArgMax",
    "ARG_MIN": "AddArgMin",
    "ASSIGN_VARIABLE": "AddAssignVariable",
    "AVERAGE_POOL_2D": "AddAveragePool2D",
    "BATCH_MATMUL": "AddBatchMatMul",
    "BATCH_TO_SPACE_ND": "AddBatchToSpaceNd",
    "BROADCAST_ARGS": "AddBroadcastArgs",
    "BROADCAST_TO": "AddBroadcastTo",
    "CALL_ONCE": "AddCallOnce",
    "CAST": "AddCast",
    "CEIL": "AddCeil",
    "CONCATENATION": "AddConcatenation",
    "CONV_2D": "AddConv2D",
    "COS": "AddCos",
    "CUMSUM": "AddCumSum",
    "DEPTHWISE_CONV_2D": "AddDepthwiseConv2D",
    "DEPTH_TO_SPACE": "AddDepthToSpace",
    "DEQUANTIZE": "AddDequantize",
    "DIV": "AddDiv",
    "DYNAMIC_UPDATE_SLICE": "AddDynamicUpdateSlice",
    "ELU": "AddElu",
    "EMBEDDING_LOOKUP": "AddEmbeddingLookup",
    "EQUAL": "AddEqual",
    "EXP": "AddExp",
    "EXPAND_DIMS": "AddExpandDims",
    "FILL": "AddFill",
    "FLOOR": "AddFloor",
    "FLOOR_DIV": "AddFloorDiv",
    "FLOOR_MOD": "AddFloorMod",
    "FULLY_CONNECTED": "AddFullyConnected",
    "GATHER": "AddGather",
    "GATHER_ND": "AddGatherNd",
    "GREATER": "AddGreater",
    "GREATER_EQUAL": "AddGreaterEqual",
    "HARD_SWISH": "AddHardSwish",
    "IF": "AddIf",
    "L2_NORMALIZATION": "AddL2Normalization",
    "L2_POOL_2D": "AddL2Pool2D",
    "LEAKY_RELU": "AddLeakyRelu",
    "LESS": "AddLess",
    "LESS_EQUAL": "AddLessEqual",
    "LOG": "AddLog",
    "LOGICAL_AND": "AddLogicalAnd",
    "LOGICAL_NOT": "AddLogicalNot",
    "LOGICAL_OR": "AddLogicalOr",
    "LOGISTIC": "AddLogistic",
    "LOG_SOFTMAX": "AddLogSoftmax",
    "MAXIMUM": "AddMaximum",
    "MAX_POOL_2D": "AddMaxPool2D",
    "MEAN": "AddMean",
    "MINIMUM": "AddMinimum",
    "MIRROR_PAD": "AddMirrorPad",
    "MUL": "AddMul",
    "NEG": "AddNeg",
    "NOT_EQUAL": "AddNotEqual",
    "PACK": "AddPack",
    "PAD": "AddPad",
    "PADV2": "AddPadV2",
    "PRELU": "AddPrelu",
    "QUANTIZE": "AddQuantize",
    "READ_VARIABLE": "AddReadVariable",
    "REDUCE_ALL": "AddReduceAll",
    "REDUCE_MAX": "AddReduceMax",
    "REDUCE_MIN": "AddReduceMin",
    "RELU": "AddRelu",
    "RELU6": "AddRelu6",
    "RESHAPE": "AddReshape",
    "RESIZE_BILINEAR": "AddResizeBilinear",
    "RESIZE_NEAREST_NEIGHBOR": "AddResizeNearestNeighbor",
    "REVERSE_V2": "AddReverseV2",
    "ROUND": "AddRound",
    "RSQRT": "AddRsqrt",
    "SELECT_V2": "AddSelectV2",
    "SHAPE": "AddShape",
    "SIN": "AddSin",
    "SLICE": "AddSlice",
    "SOFTMAX": "AddSoftmax",
    "SPACE_TO_BATCH_ND": "AddSpaceToBatchNd",
    "SPACE_TO_DEPTH": "AddSpaceToDepth",
    "SPLIT": "AddSplit",
    "SPLIT_V": "AddSplitV",
    "SQRT": "AddSqrt",
    "SQUARE": "AddSquare",
    "SQUARED_DIFFERENCE": "AddSquaredDifference",
    "SQUEEZE": "AddSqueeze",
    "STRIDED_SLICE": "AddStridedSlice",
    "SUB": "AddSub",
    "SUM": "AddSum",
    "SVDF": "AddSvdf",
    "TANH": "AddTanh",
    "TRANSPOSE": "AddTranspose",
    "TRANSPOSE_CONV": "AddTransposeConv",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "AddUnidirectionalSequenceLSTM",
    "UNPACK": "AddUnpack",
    "VAR_HANDLE": "AddVarHandle",
    "WHILE": "AddWhile",
    "ZEROS_LIKE": "AddZerosLike",
}


@dataclass(frozen=True)
class _TypedKernel:
    """A kernel registration that handles only some tensor types.

    ``inputs`` pairs an input position with the dtype it must have; positions
    not listed (shape and axis constants) are not checked, and an absent
    optional input (a bias) passes. Every output must be ``output``.
    """

    registration: str
    header: str
    inputs: tuple[tuple[int, str], ...]
    output: str = "int8"


def _int8(registration: str, header: str, *inputs: tuple[int, str]) -> _TypedKernel:
    return _TypedKernel(registration, f"tensorflow/lite/micro/kernels/{header}", inputs)


_I8, _I16, _I32 = "int8", "int16", "int32"

# Type-specific registrations declared in TFLM's kernels/*.h (same commit as
# above). With CMSIS-NN (and for some ops Xtensa or Hexagon) they link only the
# int8 kernel, which saves flash; on other targets the header defines them as
# the generic kernel, so using one is never wrong when the types match. The
# types required are those every optimized variant accepts (Xtensa's SVDF_INT8
# insists on int16 time weights and state, as the converter emits them).
# Left out: PAD_INT8 and TRANSPOSE_INT8 exist, but their headers (pad.h,
# transpose.h) are kernel-internal (pad.h defines tflite::OpData) and are not
# included by micro_mutable_op_resolver.h; UNIDIRECTIONAL_SEQUENCE_LSTM_INT8
# depends on internal cell-state types this module does not check.
_TYPED_KERNELS: dict[str, tuple[_TypedKernel, ...]] = {
    "CONV_2D": (_int8("Register_CONV_2D_INT8", "conv.h", (0, _I8), (1, _I8), (2, _I32)),),
    "DEPTHWISE_CONV_2D": (
        _int8("Register_DEPTHWISE_CONV_2D_INT8", "depthwise_conv.h", (0, _I8), (1, _I8), (2, _I32)),
    ),
    "FULLY_CONNECTED": (
        _int8("Register_FULLY_CONNECTED_INT8", "fully_connected.h", (0, _I8), (1, _I8), (2, _I32)),
    ),
    # TRANSPOSE_CONV takes (output_shape, filter, input, bias).
    "TRANSPOSE_CONV": (
        _int8("Register_TRANSPOSE_CONV_INT8", "transpose_conv.h", (1, _I8), (2, _I8), (3, _I32)),
    ),
    "AVERAGE_POOL_2D": (_int8("Register_AVERAGE_POOL_2D_INT8", "pooling.h", (0, _I8)),),
    "MAX_POOL_2D": (_int8("Register_MAX_POOL_2D_INT8", "pooling.h", (0, _I8)),),
    "SOFTMAX": (
        _int8("Register_SOFTMAX_INT8", "softmax.h", (0, _I8)),
        _TypedKernel(
            "Register_SOFTMAX_INT8_INT16",
            "tensorflow/lite/micro/kernels/softmax.h",
            ((0, _I8),),
            output=_I16,
        ),
    ),
    "ADD": (_int8("Register_ADD_INT8", "add.h", (0, _I8), (1, _I8)),),
    "MUL": (_int8("Register_MUL_INT8", "mul.h", (0, _I8), (1, _I8)),),
    "MAXIMUM": (_int8("Register_MAXIMUM_INT8", "maximum_minimum.h", (0, _I8), (1, _I8)),),
    "MINIMUM": (_int8("Register_MINIMUM_INT8", "maximum_minimum.h", (0, _I8), (1, _I8)),),
    "BATCH_MATMUL": (_int8("Register_BATCH_MATMUL_INT8", "batch_matmul.h", (0, _I8), (1, _I8)),),
    # SVDF takes (input, weights_feature, weights_time, bias, activation_state).
    "SVDF": (
        _int8("Register_SVDF_INT8", "svdf.h", (0, _I8), (1, _I8), (2, _I16), (3, _I32), (4, _I16)),
    ),
}


@dataclass(frozen=True)
class FirmwareFiles:
    """What :func:`write_firmware` wrote.

    ``files`` maps each file name to its path inside ``folder``;
    ``identifier`` is the C name of the model array; ``ops`` are the resolver
    method calls of ``model_ops.h`` in the order they are made, and
    ``op_count`` their number (the resolver's template argument).
    """

    folder: str
    files: dict[str, str]
    identifier: str
    op_count: int
    ops: tuple[str, ...]


@dataclass(frozen=True)
class _Names:
    array: str  # g_final_int8_model_data
    camel: str  # FinalInt8
    guard: str  # EDGEPRUNE_FINAL_INT8


def _stem(name: str) -> str:
    """The model's file name without folder and ``.tflite``, as ``[a-z0-9_]`` words."""
    base = os.path.basename(os.fspath(name).replace("\\", "/").rstrip("/"))
    if base.lower().endswith(".tflite"):
        base = base[: -len(".tflite")]
    # ASCII only: C identifiers allow no other letters portably. Runs of "_" are
    # collapsed and edges trimmed, because "__" anywhere, or "_" and a capital at
    # the start, is reserved to the C++ implementation.
    words = [w for w in re.split(r"[^A-Za-z0-9]+", base) if w]
    return "_".join(words)


def _names(name: str) -> _Names:
    stem = _stem(name)
    words = stem.split("_") if stem else ["model"]
    camel = ""
    for word in words:
        if camel and camel[-1].isdigit() and word[0].isdigit():
            camel += "_"  # keep v2_1 from reading as v21
        camel += word[0].upper() + word[1:]
    if camel[0].isdigit():
        camel = "Model" + camel
    array = f"g_{stem.lower()}_model_data" if stem else "g_model_data"
    guard = "EDGEPRUNE_" + (stem.upper() if stem else "MODEL")
    return _Names(array=array, camel=camel, guard=guard)


def c_identifier(name: str) -> str:
    """The C identifier of the model array for model file ``name``.

    ``"final_int8.tflite"`` becomes ``"g_final_int8_model_data"``. Folders and a
    ``.tflite`` suffix are dropped; every run of characters outside
    ``[A-Za-z0-9]`` becomes one ``_`` (so the result never holds the reserved
    ``__``); an empty stem gives ``"g_model_data"``. The ``g_`` prefix and
    ``_model_data`` suffix mean the result never starts with a digit and is
    never a C or C++ keyword, whatever the file is called. Pure; raises nothing.
    """
    return _names(name).array


# --- op resolver -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ResolverCall:
    opcode: str
    method: str
    kernel: _TypedKernel | None

    def text(self) -> str:
        arg = f"tflite::{self.kernel.registration}()" if self.kernel else ""
        return f"{self.method}({arg})"


def _fits(kernel: _TypedKernel, ops: Iterable, tensors: dict[tuple[int, int], TensorInfo]) -> bool:
    for op in ops:
        for position, dtype in kernel.inputs:
            if position >= len(op.inputs) or op.inputs[position] < 0:
                continue
            if tensors[op.subgraph, op.inputs[position]].dtype != dtype:
                return False
        if any(tensors[op.subgraph, t].dtype != kernel.output for t in op.outputs if t >= 0):
            return False
    return True


def _resolver_plan(info: ModelInfo) -> list[_ResolverCall]:
    refused = []
    for opcode in info.op_counts:
        if opcode.startswith("CUSTOM:"):
            refused.append(f"custom op {opcode[len('CUSTOM:') :]!r}")
        elif opcode not in RESOLVER_METHODS:
            refused.append(f"{opcode} (no MicroMutableOpResolver method)")
    if refused:
        raise UnsupportedModelError(
            "TFLite Micro cannot register every op of this model: "
            + ", ".join(refused)
            + "; replace those layers, or register custom kernels by hand (AddCustom)"
        )
    tensors = {(t.subgraph, t.index): t for t in info.tensors}
    calls = []
    for opcode in info.op_counts:
        ops = [op for op in info.operators if op.opcode == opcode]
        kernel = next((k for k in _TYPED_KERNELS.get(opcode, ()) if _fits(k, ops, tensors)), None)
        calls.append(_ResolverCall(opcode, RESOLVER_METHODS[opcode], kernel))
    return sorted(calls, key=lambda c: c.method)


def resolver_calls(info: ModelInfo) -> list[str]:
    """The ``MicroMutableOpResolver`` method calls that register every op of ``info``.

    One call per distinct builtin opcode, sorted by method name, such as
    ``"AddConv2D(tflite::Register_CONV_2D_INT8())"`` or ``"AddReshape()"``. An
    int8-only registration is passed when TFLM has one for the op and every
    instance of the op in the model has the types it needs (int8 activations
    and weights, int32 bias); otherwise the method's default (all types) kernel.

    Raises:
        UnsupportedModelError: the model uses a custom op, or a builtin op
            that TFLM's resolver has no method for; the message names them all.
    """
    return [call.text() for call in _resolver_plan(info)]


def int8_only_registrations(info: ModelInfo) -> dict[str, bool]:
    """Each builtin op of ``info`` -> whether :func:`resolver_calls` registers its
    int8-only kernel rather than the all-types default.

    Raises:
        UnsupportedModelError: as :func:`resolver_calls`.
    """
    return {call.opcode: call.kernel is not None for call in _resolver_plan(info)}


# --- rendering ---------------------------------------------------------------------------------

_HEX = [f"0x{b:02x}" for b in range(256)]


def _comment_text(text: str) -> str:
    # A backslash ending a // comment would splice the next source line into it.
    return "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in text)


def _float_literal(value: float, what: str) -> str:
    if not math.isfinite(value):
        raise UnsupportedModelError(f"{what} is {value}; a firmware constant must be finite")
    # 9 significant digits round-trip any float32.
    text = f"{value:.9g}"
    if not any(c in text for c in ".e"):
        text += ".0"
    return text + "f"


def _header(source: str, model: bytes, digest: str, what: str) -> list[str]:
    return [
        f"// {what}",
        f"// Generated by edgeprune from {_comment_text(source)}: do not edit.",
        f"// Model: {len(model)} bytes, SHA-256 {digest}",
    ]


def _model_data_h(n: _Names, head: list[str]) -> str:
    guard = f"{n.guard}_MODEL_DATA_H_"
    return "\n".join(
        [
            *head,
            "",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            "// The .tflite flatbuffer, aligned to 16 bytes: TFLM reads it in place.",
            f"extern const unsigned char {n.array}[];",
            f"extern const unsigned int {n.array}_len;",
            "",
            f"#endif  // {guard}",
            "",
        ]
    )


def _model_data_cc(model: bytes, n: _Names, head: list[str]) -> str:
    rows = [
        "    " + ", ".join(_HEX[b] for b in model[i : i + _BYTES_PER_LINE]) + ","
        for i in range(0, len(model), _BYTES_PER_LINE)
    ]
    return "\n".join(
        [
            *head,
            "",
            f'#include "{MODEL_DATA_H}"',
            "",
            f"alignas(16) const unsigned char {n.array}[] = {{",
            *rows,
            "};",
            "",
            f"const unsigned int {n.array}_len = {len(model)};",
            "",
        ]
    )


def _model_ops_h(calls: list[_ResolverCall], n: _Names, head: list[str]) -> str:
    guard = f"{n.guard}_MODEL_OPS_H_"
    count = f"k{n.camel}OpCount"
    resolver = f"{n.camel}OpResolver"
    register = f"Register{n.camel}Ops"
    headers = sorted({c.kernel.header for c in calls if c.kernel})
    body = [
        line
        for c in calls
        for line in (
            f"  if (resolver.{c.text()} != kTfLiteOk) {{",
            "    return kTfLiteError;",
            "  }",
        )
    ]
    typed = [c for c in calls if c.kernel]
    note = (
        [
            "// Ops whose every instance has int8 activations and weights get TFLM's",
            "// int8-only kernel registration: with optimized kernels (CMSIS-NN, some",
            "// Xtensa) that links only the int8 kernel and saves flash; elsewhere TFLM",
            "// maps it to the generic kernel.",
        ]
        if typed
        else []
    )
    return "\n".join(
        [
            *head,
            "",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            f'#include "{_RESOLVER_HEADER}"',
            *(f'#include "{h}"' for h in headers),
            "",
            "// The number of distinct builtin ops in the model: the resolver holds exactly",
            f"// these, so adding another op to it fails until {count} is raised.",
            f"constexpr int {count} = {len(calls)};",
            f"using {resolver} = tflite::MicroMutableOpResolver<{count}>;",
            "",
            *note,
            *(["//"] if note else []),
            "// Usage:",
            f"//   static {resolver} op_resolver;",
            f"//   if ({register}(op_resolver) != kTfLiteOk) {{ /* too small or added twice */ }}",
            "//   tflite::MicroInterpreter interpreter(",
            f"//       tflite::GetModel({n.array}), op_resolver, arena, k{n.camel}ArenaBytes);",
            f"inline TfLiteStatus {register}({resolver}& resolver) {{",
            *body,
            "  return kTfLiteOk;",
            "}",
            "",
            f"#endif  // {guard}",
            "",
        ]
    )


def _tensor_lines(kind: str, position: int, t: TensorInfo, camel: str) -> list[str]:
    prefix = f"k{camel}{kind}{position}"
    shape = ", ".join(str(d) for d in t.shape)
    lines = [
        f'// {kind} {position} "{_comment_text(t.name)}": {t.dtype}, shape ({shape})',
        f"constexpr int {prefix}Rank = {len(t.shape)};",
    ]
    if t.shape:
        lines.append(f"constexpr int {prefix}Dims[] = {{{shape}}};")
    lines += [
        f"constexpr int {prefix}Elements = {t.elements};",
        f"constexpr int {prefix}Bytes = {t.nbytes};",
    ]
    what = f"{kind.lower()} {position} ({t.name!r})"
    if not t.scales:
        lines.append("// Not quantized: no scale or zero point.")
    elif len(t.scales) == 1:
        zero_point = t.zero_points[0] if t.zero_points else 0
        lines += [
            "// real_value = scale * (quantized_value - zero_point)",
            f"constexpr float {prefix}Scale = {_float_literal(t.scales[0], what + ' scale')};",
            f"constexpr int {prefix}ZeroPoint = {zero_point};",
        ]
    else:
        scales = ", ".join(_float_literal(s, what + " scale") for s in t.scales)
        zero_points = ", ".join(str(z) for z in t.zero_points) or "0"
        lines += [
            f"// Quantized per channel along dimension {t.quantized_dimension}.",
            f"constexpr int {prefix}QuantizedDimension = {t.quantized_dimension};",
            f"constexpr float {prefix}Scales[] = {{{scales}}};",
            f"constexpr int {prefix}ZeroPoints[] = {{{zero_points}}};",
        ]
    return lines


def _model_config_h(info: ModelInfo, arena_bytes: int | None, n: _Names, head: list[str]) -> str:
    guard = f"{n.guard}_MODEL_CONFIG_H_"
    arena = f"k{n.camel}ArenaBytes"
    if arena_bytes is None:
        arena_lines = [
            f"// {arena}: the tensor arena was not measured for this model. Find the",
            "// smallest arena it runs in (edgeprune measures it when a TFLite Micro",
            "// runner is available) and define the constant yourself.",
        ]
    else:
        arena_lines = [
            "// Tensor arena size measured for this model; declare the arena as",
            f"//   alignas(16) static uint8_t tensor_arena[{arena}];",
            f"constexpr int {arena} = {arena_bytes};",
        ]
    lines = [
        *head,
        "",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        *arena_lines,
        "",
        f"constexpr int k{n.camel}InputCount = {len(info.inputs)};",
        f"constexpr int k{n.camel}OutputCount = {len(info.outputs)};",
    ]
    for kind, tensors in (("Input", info.inputs), ("Output", info.outputs)):
        for position, tensor in enumerate(tensors):
            lines += ["", *_tensor_lines(kind, position, tensor, n.camel)]
    lines += ["", f"#endif  // {guard}", ""]
    return "\n".join(lines)


def _check_arena(arena_bytes: int | None) -> None:
    if arena_bytes is None:
        return
    if isinstance(arena_bytes, bool) or not isinstance(arena_bytes, int) or arena_bytes <= 0:
        raise BadInputError(f"arena_bytes must be a positive integer or None, not {arena_bytes!r}")
    if arena_bytes > 2**31 - 1:
        raise BadInputError(f"arena_bytes {arena_bytes} does not fit a C int")


def render(model: bytes, name: str, arena_bytes: int | None) -> dict[str, str]:
    """Return the firmware files for ``model`` as ``{file name: text}``.

    ``name`` is the model's file name (``"final_int8.tflite"``; a folder part
    is ignored); it names the C identifiers (see :func:`c_identifier`) and
    appears in each file's header comment with the model's size and SHA-256.
    ``arena_bytes`` is the tensor arena size to write into ``model_config.h``,
    or None to leave it out with a comment saying it was not measured. Pure:
    the same arguments give the same text.

    Raises:
        TFLiteFormatError: ``model`` is not a valid ``.tflite`` flatbuffer.
        UnsupportedModelError: the model uses an op TFLite Micro's resolver
            cannot register (custom ops included), or a non-finite I/O scale.
        BadInputError: ``arena_bytes`` is not a positive int or None.
    """
    return _render(bytes(model), name, arena_bytes)[0]


def _render(
    model: bytes, name: str, arena_bytes: int | None
) -> tuple[dict[str, str], list[_ResolverCall]]:
    _check_arena(arena_bytes)
    info = inspect_model(model)
    calls = _resolver_plan(info)
    n = _names(name)
    digest = hashlib.sha256(model).hexdigest()
    source = os.path.basename(os.fspath(name).replace("\\", "/").rstrip("/")) or "<unnamed>"

    def head(what: str) -> list[str]:
        return _header(source, model, digest, what)

    data_head = head("Model flatbuffer for TensorFlow Lite Micro.")
    files = {
        MODEL_DATA_H: _model_data_h(n, data_head),
        MODEL_DATA_CC: _model_data_cc(model, n, data_head),
        MODEL_OPS_H: _model_ops_h(calls, n, head("Op resolver with exactly the model's ops.")),
        MODEL_CONFIG_H: _model_config_h(
            info, arena_bytes, n, head("Tensor arena size and input/output tensors.")
        ),
    }
    if arena_bytes is not None:
        files.update(_validation_files(files, n, head("Serial validation for edgeprune validate.")))
    return files, calls


PROTOCOL_H = "edgeprune_protocol.h"
HARNESS_H = "validation_harness.h"
HARNESS_CC = "validation_harness.cc"
SKETCH = "edgeprune_validate"


def _validation_files(files: dict[str, str], n: _Names, head: list[str]) -> dict[str, str]:
    """The serial validation harness (protocol header, C++ harness) and an Arduino
    sketch folder that holds everything it compiles (the Arduino IDE builds only
    its sketch folder): ``edgeprune validate --runner serial`` talks to it."""
    from importlib.resources import files as package_files

    from edgeprune import protocol

    src = package_files("edgeprune.firmware") / "firmware_src"
    top = "\n".join(head) + "\n"
    harness = {PROTOCOL_H: top + protocol.c_header(),
               HARNESS_H: top + (src / HARNESS_H).read_text(encoding="utf-8"),
               HARNESS_CC: top + (src / HARNESS_CC).read_text(encoding="utf-8")}
    sketch = {f"{SKETCH}/{name}": text for name, text in {**files, **harness}.items()}
    sketch[f"{SKETCH}/{SKETCH}.ino"] = _sketch(n, head)
    return {**harness, **sketch}


def _sketch(n: _Names, head: list[str]) -> str:
    arena = f"k{n.camel}ArenaBytes"
    return "\n".join([
        *head,
        "//",
        "// Flash this sketch, then on the host:",
        "//   edgeprune validate <run folder> --device /dev/ttyACM0   (the board's port)",
        "// It needs the TensorFlow Lite Micro library for Arduino (Arduino_TensorFlowLite",
        "// or Chirale_TensorFlowLite). The harness keeps two frame buffers of",
        "// EP_MAX_PAYLOAD + 9 bytes and uses about 1 KB of stack while answering.",
        "#include <Arduino.h>",
        "#include <TensorFlowLite.h>",
        "",
        f'#include "{MODEL_CONFIG_H}"',
        f'#include "{MODEL_DATA_H}"',
        f'#include "{MODEL_OPS_H}"',
        f'#include "{HARNESS_H}"',
        '#include "tensorflow/lite/micro/micro_interpreter.h"',
        "",
        "namespace {",
        "",
        f"alignas(16) uint8_t g_arena[{arena}];",
        f"{n.camel}OpResolver g_resolver;",
        "edgeprune::ValidationHarness* g_harness = nullptr;",
        "",
        "void WriteSerial(void*, const uint8_t* data, size_t size) { Serial.write(data, size); }",
        "",
        "// Cycles: the DWT cycle counter where the core has one, else micros() x clock.",
        "uint64_t Cycles(void*) {",
        "  static uint32_t last = 0;",
        "  static uint64_t high = 0;",
        "#if defined(DWT_CTRL_CYCCNTENA_Msk)",
        "  const uint32_t now = DWT->CYCCNT;",
        "  if (now < last) high += 1ull << 32;",
        "  last = now;",
        "  return high | now;",
        "#else",
        "  const uint32_t now = micros();",
        "  if (now < last) high += 1ull << 32;",
        "  last = now;",
        "  return (high | now) * (F_CPU / 1000000ull);",
        "#endif",
        "}",
        "",
        "void Halt(const char* why) {",
        "  for (;;) {",
        "    Serial.println(why);",
        "    delay(1000);",
        "  }",
        "}",
        "",
        "}  // namespace",
        "",
        "void setup() {",
        "  Serial.begin(115200);",
        "  while (!Serial) {",
        "  }",
        "#if defined(DWT_CTRL_CYCCNTENA_Msk)",
        "  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;",
        "  DWT->CYCCNT = 0;",
        "  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;",
        "#endif",
        f"  if (Register{n.camel}Ops(g_resolver) != kTfLiteOk) Halt(\"op resolver too small\");",
        "  static tflite::MicroInterpreter interpreter(",
        f"      tflite::GetModel({n.array}), g_resolver, g_arena, {arena});",
        "  if (interpreter.AllocateTensors() != kTfLiteOk) Halt(\"arena too small\");",
        "  static edgeprune::ValidationHarness harness(",
        f"      &interpreter, {n.array}, {n.array}_len, {arena}, F_CPU,",
        "      edgeprune::Transport{WriteSerial, Cycles, nullptr});",
        "  g_harness = &harness;",
        "}",
        "",
        "void loop() {",
        "  while (Serial.available() > 0) {",
        "    g_harness->Receive(static_cast<uint8_t>(Serial.read()));",
        "  }",
        "}",
        "",
    ])


# --- writing -----------------------------------------------------------------------------------


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # not possible on every platform; the rename is what matters
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _new_dir(parent: str, prefix: str) -> str:
    while True:
        path = os.path.join(parent, f"{prefix}{secrets.token_hex(4)}")
        try:
            os.mkdir(path)  # honours the umask, unlike tempfile.mkdtemp (0700)
            return path
        except FileExistsError:
            continue


def write_firmware(
    model: bytes, name: str, folder: str | os.PathLike[str], arena_bytes: int | None
) -> FirmwareFiles:
    """Write the firmware files of ``model`` into ``folder`` and return what was written.

    Everything is rendered first (see :func:`render`), then written into a
    hidden temporary folder beside ``folder``, which then replaces ``folder``
    (an existing ``folder`` is moved aside and deleted only once the new one
    is in place). A failure leaves the previous ``folder`` (or none) and no
    temporary folder behind. Creates missing parent folders.

    Raises:
        TFLiteFormatError, UnsupportedModelError, BadInputError: as
            :func:`render`; also BadInputError when ``folder`` is a file.
        ArtifactWriteError: the files could not be written or moved into place.
    """
    files, calls = _render(bytes(model), name, arena_bytes)
    ops = tuple(call.text() for call in calls)
    target = os.path.abspath(os.fspath(folder))
    if os.path.exists(target) and not os.path.isdir(target):
        raise BadInputError(
            f"firmware folder {os.fspath(folder)} is a file; remove it or choose another folder"
        )
    parent, base = os.path.split(target)
    tmp = old = None
    replaced = False
    try:
        os.makedirs(parent, exist_ok=True)
        tmp = _new_dir(parent, f".{base}.tmp-")
        for file_name, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(tmp, file_name)), exist_ok=True)
            _write_text(os.path.join(tmp, file_name), text)
        _fsync_dir(tmp)
        if os.path.isdir(target):
            # Directories cannot be renamed over one another: move the old one
            # aside, put the new one in place, and only then delete the old one.
            old = os.path.join(parent, f".{base}.old-{secrets.token_hex(4)}")
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except OSError:
                os.rename(old, target)
                old = None
                raise
        else:
            os.rename(tmp, target)
        tmp = None
        replaced = True
        _fsync_dir(parent)
    except OSError as exc:
        if old is not None and not replaced:
            logger.error("the previous firmware folder %s was kept as %s", target, old)
        raise ArtifactWriteError(
            f"cannot write firmware folder {os.fspath(folder)}: {exc.strerror or exc}"
        ) from exc
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and replaced:
            shutil.rmtree(old, ignore_errors=True)
    result = FirmwareFiles(
        folder=os.fspath(folder),
        files={f: os.path.join(os.fspath(folder), f) for f in files},
        identifier=c_identifier(name),
        op_count=len(ops),
        ops=ops,
    )
    logger.info(
        "wrote %s for %s (%d bytes, %d ops) to %s",
        ", ".join(files),
        name,
        len(model),
        len(ops),
        result.folder,
    )
    return result
