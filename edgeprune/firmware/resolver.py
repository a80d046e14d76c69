"""Which TFLite Micro op resolver calls register a model's ops.

``RESOLVER_METHODS`` maps each builtin opcode, and ``CUSTOM_METHODS`` each custom
op TFLite Micro ships a kernel for, to the ``tflite::MicroMutableOpResolver``
method that registers it; the typed-kernel
table says which ops have an int8-only registration, and for which tensor
types. :func:`resolver_calls` plans one call per distinct op of a model, the
int8-only kernel where every instance of the op has its types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from edgeprune.errors import UnsupportedModelError
from edgeprune.tflite import ModelInfo, TensorInfo

RESOLVER_HEADER = "tensorflow/lite/micro/micro_mutable_op_resolver.h"

# Builtin opcode -> the tflite::MicroMutableOpResolver method that registers it.
# Derived (by reading, not copying) from tensorflow/lite/micro/micro_mutable_op_resolver.h
# of tensorflow/tflite-micro at commit 90b983c2b3f1480642e040bbd2ddb37b998f3424 (the
# file was last changed in e1a6329fe954f2916e36f4edfa8edf545143425a): every Add*() method
# that calls AddBuiltin(BuiltinOperator_X, ...). The custom ops that resolver registers
# itself are in CUSTOM_METHODS; any other custom op is refused, as the resolver cannot
# be sized or filled for it without knowing which kernel the firmware links.
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


# Custom op name (the flatbuffer's custom_code) -> the MicroMutableOpResolver method
# that registers TFLite Micro's own kernel for it (same file and commit as above:
# every Add*() method that calls AddCustom). The signal library's ops (TFLM's
# signal/micro/kernels, built into libtensorflow-microlite by default) are the
# audio front ends of micro_speech and dtln; "ethos-u" is the operator Arm's Vela
# leaves for an Ethos-U NPU, which links only in a build for that NPU.
CUSTOM_METHODS: dict[str, str] = {
    "CIRCULAR_BUFFER": "AddCircularBuffer",
    "SignalDelay": "AddDelay",
    "SignalEnergy": "AddEnergy",
    "SignalFftAutoScale": "AddFftAutoScale",
    "SignalFilterBank": "AddFilterBank",
    "SignalFilterBankLog": "AddFilterBankLog",
    "SignalFilterBankSpectralSubtraction": "AddFilterBankSpectralSubtraction",
    "SignalFilterBankSquareRoot": "AddFilterBankSquareRoot",
    "SignalFramer": "AddFramer",
    "SignalIrfft": "AddIrfft",
    "SignalOverlapAdd": "AddOverlapAdd",
    "SignalPCAN": "AddPCAN",
    "SignalRfft": "AddRfft",
    "SignalStacker": "AddStacker",
    "SignalWindow": "AddWindow",
    "TFLM_DECODE": "AddDecode",
    "TFLite_Detection_PostProcess": "AddDetectionPostprocess",
    "ethos-u": "AddEthosU",
}
#: The custom op Vela writes for the part of a model it compiled for an Ethos-U NPU.
ETHOS_U_OP = "CUSTOM:ethos-u"


def resolver_method(opcode: str) -> str | None:
    """The ``MicroMutableOpResolver`` method that registers ``opcode`` (a builtin
    name or ``"CUSTOM:<name>"``), or None when TFLite Micro's resolver has none."""
    if opcode.startswith("CUSTOM:"):
        return CUSTOM_METHODS.get(opcode[len("CUSTOM:") :])
    return RESOLVER_METHODS.get(opcode)


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
class ResolverCall:
    """One registration: ``opcode``'s resolver ``method``, with an int8-only ``kernel`` or None."""

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


def resolver_plan(info: ModelInfo) -> list[ResolverCall]:
    """The registrations of :func:`resolver_calls`, sorted by method name.

    Raises:
        UnsupportedModelError: as :func:`resolver_calls`.
    """
    refused = []
    for opcode in info.op_counts:
        if resolver_method(opcode) is not None:
            continue
        if opcode.startswith("CUSTOM:"):
            refused.append(f"custom op {opcode[len('CUSTOM:') :]!r}")
        else:
            refused.append(f"{opcode} (no MicroMutableOpResolver method)")
    if refused:
        raise UnsupportedModelError(
            "TFLite Micro cannot register every op of this model: "
            + ", ".join(refused)
            + "; replace those layers, or register your own kernels for them by hand"
            " (MicroMutableOpResolver::AddCustom) in firmware you write yourself"
        )
    tensors = {(t.subgraph, t.index): t for t in info.tensors}
    calls = []
    for opcode in info.op_counts:
        ops = [op for op in info.operators if op.opcode == opcode]
        kernel = next((k for k in _TYPED_KERNELS.get(opcode, ()) if _fits(k, ops, tensors)), None)
        calls.append(ResolverCall(opcode, resolver_method(opcode), kernel))
    return sorted(calls, key=lambda c: c.method)


def resolver_calls(info: ModelInfo) -> list[str]:
    """The ``MicroMutableOpResolver`` method calls that register every op of ``info``.

    One call per distinct opcode, sorted by method name, such as
    ``"AddConv2D(tflite::Register_CONV_2D_INT8())"``, ``"AddReshape()"`` or, for
    a custom op TFLite Micro ships (:data:`CUSTOM_METHODS`), ``"AddWindow()"``. An
    int8-only registration is passed when TFLM has one for the op and every
    instance of the op in the model has the types it needs (int8 activations
    and weights, int32 bias); otherwise the method's default (all types) kernel.

    Raises:
        UnsupportedModelError: the model uses a custom op TFLite Micro does not
            ship, or a builtin op its resolver has no method for; the message
            names them all.
    """
    return [call.text() for call in resolver_plan(info)]


def int8_only_registrations(info: ModelInfo) -> dict[str, bool]:
    """Each builtin op of ``info`` -> whether :func:`resolver_calls` registers its
    int8-only kernel rather than the all-types default.

    Raises:
        UnsupportedModelError: as :func:`resolver_calls`.
    """
    return {call.opcode: call.kernel is not None for call in resolver_plan(info)}


DECODE_OPCODE = "CUSTOM:TFLM_DECODE"


def decode_notes(info: ModelInfo) -> list[str]:
    """C++ lines (a blank line first) for the config header of a model with DECODE operators
    (weights compressed for TFLite Micro, :mod:`edgeprune.compress`): what the
    firmware build needs; ``[]`` for a model without. A TFLite Micro that predates
    DECODE fails at compile time on ``AddDecode()``; none needs a define (found at
    90b983c: docs/tflm-compression.md)."""
    count = info.op_counts.get(DECODE_OPCODE, 0)
    if not count:
        return []
    return [
        "",
        f"// Weights are compressed: {count} DECODE operators (TFLite Micro's",
        "// kernels/decode.cc) decode them into the arena at every invoke. The firmware",
        "// must be built with TFLite Micro's compression support: a TFLite Micro with",
        "// kernels/decode.cc and decode_state*.cc (in its default kernel sources since",
        "// DECODE was added; no USE_TFLM_COMPRESSION define is needed at 90b983c) and the",
        "// op resolver's AddDecode() (the ops header calls it: an older TFLite Micro fails",
        "// to compile there, not at run time).",
        "constexpr bool kWeightsCompressedForDecode = true;",
    ]
