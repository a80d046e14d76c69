"""What each operator of a ``.tflite`` model costs to run, from the file alone.

For every operator: its cost class (what kind of kernel runs it), the dtype it
computes in, its multiply-accumulates, the elements it touches, and the bytes
of weights and activations it reads and writes. These counts are exact
properties of the model; turning them into time is :mod:`edgeprune.estimates.latency`'s
job. Imports neither TensorFlow nor the LiteRT interpreter.

Counting rules (the unit tests check each against a hand count):

- CONV_2D: ``N*OH*OW*OC * KH*KW * IC/groups`` MACs (the filter is
  ``[OC, KH, KW, IC/groups]``); CONV_3D likewise with the depth.
- DEPTHWISE_CONV_2D: ``N*OH*OW*OC * KH*KW``.
- FULLY_CONNECTED: output elements x input features (the filter is
  ``[units, features]``).
- TRANSPOSE_CONV: every input element meets every filter tap of every output
  channel: ``N*IH*IW*IC * KH*KW*OC``.
- BATCH_MATMUL: output elements x the contracted dimension.
- Pooling: output elements x window (``elements``, no MACs).
- SVDF, LSTM and RNN ops (:data:`RECURRENT`, class ``recurrent``): steps x the
  elements of their constant weight matrices; elements: steps x the gate (or
  filter) outputs, half the rows of those matrices.
- Reductions (MEAN, SUM, ...): input elements. Data movement (RESHAPE,
  PAD, CONCATENATION, ...): the bytes written (:attr:`OpCost.work`). Every
  other op: output elements (TFLite Micro's signal kernels, ``CUSTOM:Signal*``:
  one pass over the larger of input and output, an FFT n x log2(n)); an op of
  class ``other`` is one whose work
  edgeprune cannot count, and estimates name it.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

from edgeprune.errors import InvalidModelError
from edgeprune.tflite import ModelInfo, OperatorInfo, TensorInfo, inspect_model

#: Cost classes, in the order tables list them.
CLASSES = (
    "conv_1x1",
    "conv",
    "depthwise",
    "fully_connected",
    "recurrent",
    "transpose_conv",
    "matmul",
    "pooling",
    "elementwise",
    "activation",
    "softmax",
    "reduce",
    "quantize",
    "data_movement",
    "other",
)
#: Classes whose work is counted in MACs; the others count elements.
MAC_CLASSES = frozenset(
    {"conv_1x1", "conv", "depthwise", "fully_connected", "recurrent", "transpose_conv", "matmul"}
)

_GROUPS = {
    "pooling": "AVERAGE_POOL_2D MAX_POOL_2D L2_POOL_2D",
    "elementwise": "ADD SUB MUL DIV SQUARED_DIFFERENCE MAXIMUM MINIMUM ADD_N FLOOR_DIV FLOOR_MOD "
    "POW EQUAL NOT_EQUAL LESS LESS_EQUAL GREATER GREATER_EQUAL SELECT SELECT_V2 LOGICAL_AND "
    "LOGICAL_OR BATCH_MATMUL_ADD RESIZE_BILINEAR",
    "activation": "RELU RELU6 RELU_N1_TO_1 RELU_0_TO_1 LOGISTIC TANH HARD_SWISH LEAKY_RELU PRELU "
    "ELU GELU EXP LOG SQRT RSQRT SQUARE ABS NEG SIN COS FLOOR CEIL ROUND LOGICAL_NOT SIGN",
    "softmax": "SOFTMAX LOG_SOFTMAX L2_NORMALIZATION",
    "reduce": "MEAN SUM REDUCE_MAX REDUCE_MIN REDUCE_PROD REDUCE_ANY REDUCE_ALL ARG_MAX ARG_MIN "
    "CUMSUM",
    "quantize": "QUANTIZE DEQUANTIZE CAST",
    # TFLite Micro copies these: RESHAPE, SQUEEZE and EXPAND_DIMS memcpy their input unless
    # the planner gave input and output the same buffer (reshape_common.cc), the others write
    # every output byte. Their work is the bytes they write, never 0.
    "data_movement": "RESHAPE SQUEEZE EXPAND_DIMS CONCATENATION PAD PADV2 MIRROR_PAD TRANSPOSE "
    "STRIDED_SLICE SLICE SPLIT SPLIT_V PACK UNPACK GATHER GATHER_ND TILE BROADCAST_TO "
    "RESIZE_NEAREST_NEIGHBOR DEPTH_TO_SPACE SPACE_TO_DEPTH BATCH_TO_SPACE_ND SPACE_TO_BATCH_ND "
    "FILL ZEROS_LIKE REVERSE_V2 SHAPE EMBEDDING_LOOKUP",
}
_CLASS_OF = {
    "DEPTHWISE_CONV_2D": "depthwise",
    "FULLY_CONNECTED": "fully_connected",
    "TRANSPOSE_CONV": "transpose_conv",
    "BATCH_MATMUL": "matmul",
    **{opcode: cls for cls, names in _GROUPS.items() for opcode in names.split()},
}
_REDUCE_INPUT = frozenset(_GROUPS["reduce"].split())
#: TFLite Micro's signal-processing kernels (custom ops it ships): one pass over the larger
#: of input and output, an FFT n x log2(n) of its input, a copy per byte written.
_SIGNAL = {
    **dict.fromkeys(
        "Window FftAutoScale Energy FilterBank FilterBankSquareRoot PCAN FilterBankLog "
        "FilterBankSpectralSubtraction OverlapAdd".split(),
        "elementwise",
    ),
    **dict.fromkeys("Rfft Irfft".split(), "fft"),
    **dict.fromkeys("Framing Stacker Delay".split(), "data_movement"),
}
#: Ops whose work is matrix-vector products with weight matrices held as constant inputs:
#: every step multiplies each weight matrix (rank >= 2) once (CMSIS-NN's vector x matrix
#: kernel), then computes each gate (or filter) output: class ``recurrent``.
RECURRENT = frozenset(
    "SVDF LSTM UNIDIRECTIONAL_SEQUENCE_LSTM BIDIRECTIONAL_SEQUENCE_LSTM RNN "
    "UNIDIRECTIONAL_SEQUENCE_RNN BIDIRECTIONAL_SEQUENCE_RNN".split()
)


@dataclass(frozen=True)
class OpCost:
    """The work of one operator.

    ``macs`` is zero outside the MAC classes; ``elements`` is the op's
    element work (window reads for pooling, input elements for reductions,
    output elements otherwise; output elements for MAC ops too).
    ``weight_bytes`` are the constant inputs (weights, biases, lookup
    tables), ``input_bytes`` the activations read and ``output_bytes`` those
    written. ``kernel`` describes the shape in words (``"3x3 s2 8->16"``).
    """

    index: int
    opcode: str
    layer: str
    op_class: str
    dtype: str
    weight_dtype: str
    macs: int
    elements: int
    weight_bytes: int
    input_bytes: int
    output_bytes: int
    kernel: str

    @property
    def work(self) -> int:
        """What throughput constants multiply: MACs for MAC classes, the bytes written for
        data movement (a copy costs per byte, whatever the dtype), elements for the rest."""
        if self.op_class in MAC_CLASSES:
            return self.macs
        return self.output_bytes if self.op_class == "data_movement" else self.elements

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ModelCost:
    """Every operator's cost, in execution order, and the totals."""

    path: str | None
    ops: tuple[OpCost, ...]

    @property
    def macs(self) -> int:
        return sum(o.macs for o in self.ops)

    @property
    def weight_bytes(self) -> int:
        return sum(o.weight_bytes for o in self.ops)

    def to_dict(self) -> dict:
        return {"path": self.path, "macs": self.macs, "ops": [o.to_dict() for o in self.ops]}

    @classmethod
    def from_dict(cls, data: dict) -> ModelCost:
        """Inverse of :meth:`to_dict` (how calibration sets ship op counts without the model)."""
        fields = OpCost.__dataclass_fields__
        ops = []
        for row in data["ops"]:
            missing = set(fields) - set(row)
            if missing:
                raise ValueError(f"operator entry lacks {', '.join(sorted(missing))}")
            ops.append(OpCost(**{k: row[k] for k in fields}))
        return cls(data.get("path"), tuple(ops))


def _dims(t: TensorInfo | None) -> tuple[int, ...]:
    return tuple(max(d, 1) for d in t.shape) if t is not None else ()


# (input index, rank) each counted op needs: what its counting rule reads. A file
# that parses and verifies may still break them (the kernels check shapes,
# the verifier does not), and the count must then refuse, not guess.
_NEEDS = {
    "CONV_2D": ((0, 4), (1, 4)),
    "CONV_3D": ((0, 5), (1, 5)),
    "DEPTHWISE_CONV_2D": ((1, 4),),
    "FULLY_CONNECTED": ((1, 2),),
    "TRANSPOSE_CONV": ((1, 4), (2, 4)),
    "BATCH_MATMUL": ((0, None),),
}


def _check_shapes(op: OperatorInfo, inputs: list[TensorInfo | None]) -> None:
    for index, rank in _NEEDS.get(op.opcode, ()):
        tensor = inputs[index] if index < len(inputs) else None
        if tensor is None:
            problem = f"has no input {index}"
        elif (rank is None and not tensor.shape) or (
            rank is not None and len(tensor.shape) != rank
        ):
            problem = f"has input {index} of shape {list(tensor.shape)}, not of rank {rank or '1+'}"
        else:
            continue
        raise InvalidModelError(
            f"operator {op.index} ({op.opcode}) of subgraph {op.subgraph} {problem}, so its "
            "cost cannot be counted; the file is damaged or was not written by the TFLite "
            "converter — re-convert the model"
        )


def _recurrent(inputs: list[TensorInfo | None]) -> tuple[int, int]:
    """(MACs, gate outputs): steps x the elements of every constant weight matrix, and
    steps x half their rows (each gate's input and recurrent matrices share its rows).

    Steps are the input's rows (batch, or time x batch for a sequence). SVDF's feature
    and time weights, an LSTM's eight gate matrices and projection, an RNN's two."""
    data = inputs[0] if inputs else None
    if data is None or not data.shape:
        return 0, 0
    steps = data.elements // max(data.shape[-1], 1)
    weights = [
        t for t in inputs[1:] if t and t.is_constant and not t.is_variable and len(t.shape) >= 2
    ]
    rows = sum(t.shape[0] for t in weights) // 2
    return steps * sum(t.elements for t in weights), steps * max(rows, 1)


def _count(
    op: OperatorInfo, inputs: list[TensorInfo | None], outputs: list[TensorInfo]
) -> tuple[str, int, int, str]:
    """(class, macs, elements, kernel description) for one operator."""
    _check_shapes(op, inputs)
    out = outputs[0] if outputs else None
    out_elems = out.elements if out is not None else 0
    opcode = op.opcode
    if opcode in ("CONV_2D", "CONV_3D"):
        filt = _dims(inputs[1])
        if opcode == "CONV_2D":
            oc, kh, kw, ic = filt
            taps, kernel = kh * kw, f"{kh}x{kw} s{op.option('strideH', 1)}"
            if op.option("dilationHFactor", 1) > 1 or op.option("dilationWFactor", 1) > 1:
                kernel += f" d{op.option('dilationHFactor', 1)}"
        else:
            kd, kh, kw, ic, oc = filt
            taps, kernel = kd * kh * kw, f"{kd}x{kh}x{kw}"
        in_c = _dims(inputs[0])[-1]
        groups = in_c // ic if ic and in_c % ic == 0 else 1
        kernel += f" {in_c}->{oc}" + (f" g{groups}" if groups > 1 else "")
        cls = "conv_1x1" if taps == 1 and opcode == "CONV_2D" else "conv"
        return cls, out_elems * taps * ic, out_elems, kernel
    if opcode == "DEPTHWISE_CONV_2D":
        _, kh, kw, oc = _dims(inputs[1])
        kernel = f"{kh}x{kw} s{op.option('strideH', 1)} x{op.option('depthMultiplier', 1)} {oc}"
        return "depthwise", out_elems * kh * kw, out_elems, kernel
    if opcode == "FULLY_CONNECTED":
        units, features = _dims(inputs[1])[-2:]
        return "fully_connected", out_elems * features, out_elems, f"{features}->{units}"
    if opcode == "TRANSPOSE_CONV":
        oc, kh, kw, ic = _dims(inputs[1])
        data = inputs[2]
        macs = (data.elements if data is not None else 0) * kh * kw * oc
        return "transpose_conv", macs, out_elems, f"{kh}x{kw} s{op.option('strideH', 1)} {ic}->{oc}"
    if opcode == "BATCH_MATMUL":
        lhs = _dims(inputs[0])
        k = lhs[-2] if op.option("adjX", False) else lhs[-1]
        return "matmul", out_elems * k, out_elems, f"k={k}"
    if opcode in RECURRENT:
        return "recurrent", *_recurrent(inputs), ""
    signal = (
        _SIGNAL.get(opcode.removeprefix("CUSTOM:Signal")) if opcode.startswith("CUSTOM:") else None
    )
    if signal is not None:
        n = max(inputs[0].elements if inputs and inputs[0] else 0, out_elems)
        if signal == "fft":
            return "elementwise", 0, n * max(n - 1, 1).bit_length(), "fft"
        return signal, 0, n, ""
    cls = _CLASS_OF.get(opcode, "other")
    if cls == "pooling":
        fh, fw = op.option("filterHeight", 1), op.option("filterWidth", 1)
        return cls, 0, out_elems * fh * fw, f"{fh}x{fw} s{op.option('strideH', 1)}"
    if opcode in _REDUCE_INPUT:
        data = inputs[0]
        return cls, 0, data.elements if data is not None else 0, ""
    return cls, 0, out_elems, ""


def op_cost(
    info: ModelInfo, op: OperatorInfo, tensors: dict[tuple[int, int], TensorInfo] | None = None
) -> OpCost:
    """The cost of one operator of ``info`` (``tensors``: ``info``'s tensors by
    (subgraph, index), when the caller has built that map already).

    Raises:
        InvalidModelError: a counted op lacks an input its rule reads, or has
            it in the wrong rank (a conv filter of rank 0).
    """
    if tensors is None:
        tensors = {(t.subgraph, t.index): t for t in info.tensors}
    inputs = [tensors[op.subgraph, i] if i >= 0 else None for i in op.inputs]
    outputs = [tensors[op.subgraph, i] for i in op.outputs if i >= 0]
    cls, macs, elements, kernel = _count(op, inputs, outputs)
    present = [t for t in inputs if t is not None]
    constants = [t for t in present if t.is_constant]
    activations = [t for t in present if not t.is_constant]
    weight = next((t for t in constants if t.elements > 1), None)
    return OpCost(
        index=op.index,
        opcode=op.opcode,
        layer=outputs[0].name if outputs else "",
        op_class=cls,
        dtype=activations[0].dtype if activations else (outputs[0].dtype if outputs else ""),
        weight_dtype=weight.dtype if weight is not None else "",
        macs=int(macs),
        elements=int(elements),
        weight_bytes=sum(t.nbytes for t in constants),
        input_bytes=sum(t.nbytes for t in activations),
        output_bytes=sum(t.nbytes for t in outputs),
        kernel=kernel,
    )


def model_cost(source: str | os.PathLike | bytes | ModelInfo) -> ModelCost:
    """Per-operator costs of subgraph 0 (the graph a TFLite Micro or LiteRT invoke runs).

    Ops of other subgraphs (WHILE/IF bodies) are not counted: how often they
    run depends on the data.

    Raises:
        InvalidModelError: as :func:`op_cost`, the message naming the file.
    """
    info = source if isinstance(source, ModelInfo) else inspect_model(source)
    tensors = {(t.subgraph, t.index): t for t in info.tensors}
    try:
        ops = tuple(op_cost(info, op, tensors) for op in info.operators if op.subgraph == 0)
    except InvalidModelError as exc:
        raise InvalidModelError(f"{info.path or '<bytes>'}: {exc}") from None
    return ModelCost(info.path, ops)


def uncounted_note(cost: ModelCost) -> str:
    """What an estimate says of the ops whose work edgeprune cannot count ("" when none)."""
    names = [f"{o.opcode} (op {o.index})" for o in cost.ops if o.op_class == "other"]
    if not names:
        return ""
    more = f" and {len(names) - 5} more" if len(names) > 5 else ""
    return (
        f"edgeprune cannot count the work of {', '.join(names[:5])}{more}: each is costed as "
        "an element-wise op over its output, a guess; time the model on the board"
    )


def format_count(n: float) -> str:
    """MACs or elements for a table: exact below 10,000, else ``12.35 M`` / ``412.0 k``."""
    if n < 10_000:
        return f"{n:,.0f}"
    if n < 1_000_000:
        return f"{n / 1e3:.1f} k"
    return f"{n / 1e6:.2f} M"
