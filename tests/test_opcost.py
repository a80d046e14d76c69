"""Per-operator cost from the .tflite alone: MACs and elements against hand counts."""

from __future__ import annotations

import numpy as np
import pytest

from edgeprune.adapters.keras import keras, seed_everything
from edgeprune.estimates.opcost import MAC_CLASSES, ModelCost, format_count, model_cost

L = keras.layers


def _convert(model, int8: bool = False) -> bytes:
    """float32, or int8 (single-input models), through edgeprune's own converter."""
    from edgeprune.adapters.converter import to_tflite

    if not int8:
        return to_tflite(model, "float32")
    rng = np.random.default_rng(0)
    samples = rng.standard_normal((8, *model.inputs[0].shape[1:])).astype(np.float32)
    return to_tflite(model, "int8", samples)


def _cnn():
    seed_everything(0)
    inp = keras.Input((9, 9, 4))
    c1 = L.Conv2D(6, 3, strides=2, activation="relu", name="c3x3")(inp)  # 4x4x6
    pw = L.Conv2D(5, 1, name="pw")(c1)  # 4x4x5
    pw_b = L.Conv2D(5, 1, name="pw_b")(c1)
    add = L.Add(name="add")([pw, pw_b])
    mul = L.Multiply(name="mul")([add, pw_b])
    grp = L.Conv2D(4, 3, padding="same", groups=2, name="grouped")(c1)  # 4x4x4
    dw = L.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(c1)  # 4x4x12
    mp = L.MaxPooling2D(2, name="maxpool")(dw)  # 2x2x12
    ap = L.AveragePooling2D(2, name="avgpool")(mul)  # 2x2x5
    gp = L.MaxPooling2D(2, name="gpool")(grp)  # 2x2x4
    cat = L.Concatenate(name="concat")([mp, ap, gp])  # 2x2x21
    gap = L.GlobalAveragePooling2D(name="gap")(cat)  # 21
    out = L.Dense(7, activation="softmax", name="fc")(gap)
    return keras.Model(inp, out)


def _transpose_matmul_3d():
    import tensorflow as tf

    seed_everything(0)
    img = keras.Input((3, 3, 2))
    a = keras.Input((4, 5))
    b = keras.Input((5, 3))
    vol = keras.Input((3, 3, 3, 1))
    t = L.Conv2DTranspose(3, 3, strides=2, use_bias=False, name="tconv")(img)  # 7x7x3
    m = L.Lambda(lambda xy: tf.matmul(xy[0], xy[1]), name="matmul")([a, b])  # 4x3
    v = L.Conv3D(2, 2, use_bias=False, name="c3d")(vol)  # 2x2x2x2
    return keras.Model([img, a, b, vol], [t, m, v])


@pytest.fixture(scope="module")
def cnn_costs():
    model = _cnn()
    return model_cost(_convert(model)), model_cost(_convert(model, int8=True))


@pytest.fixture(scope="module")
def other_costs():
    return model_cost(_convert(_transpose_matmul_3d()))


def _only(cost: ModelCost, opcode: str, layer: str | None = None):
    # The converter names a grouped conv "Conv2D1": match on the kernel text too.
    found = [
        o
        for o in cost.ops
        if o.opcode == opcode
        and (layer is None or layer in o.layer or layer == o.kernel.split()[-1])
    ]
    assert len(found) == 1, [(o.opcode, o.layer) for o in cost.ops]
    return found[0]


HAND_COUNTS = [
    # opcode, layer, class, MACs, elements
    ("CONV_2D", "c3x3", "conv", 4 * 4 * 6 * 3 * 3 * 4, 4 * 4 * 6),
    ("CONV_2D", "pw_b", "conv_1x1", 4 * 4 * 5 * 6, 4 * 4 * 5),
    ("CONV_2D", "g2", "conv", 4 * 4 * 4 * 3 * 3 * 3, 4 * 4 * 4),  # 6 in / 2 groups
    ("DEPTHWISE_CONV_2D", "dw", "depthwise", 4 * 4 * 12 * 3 * 3, 4 * 4 * 12),
    ("FULLY_CONNECTED", "fc", "fully_connected", 21 * 7, 7),
    ("MAX_POOL_2D", "maxpool", "pooling", 0, 2 * 2 * 12 * 4),
    ("AVERAGE_POOL_2D", "avgpool", "pooling", 0, 2 * 2 * 5 * 4),
    ("ADD", "add", "elementwise", 0, 4 * 4 * 5),
    ("MUL", "mul", "elementwise", 0, 4 * 4 * 5),
    ("CONCATENATION", "concat", "data_movement", 0, 2 * 2 * 21),
    ("MEAN", "gap", "reduce", 0, 2 * 2 * 21),
    ("SOFTMAX", "fc", "softmax", 0, 7),
]


@pytest.mark.parametrize(
    "opcode,layer,cls,macs,elements", HAND_COUNTS, ids=[f"{r[0]}-{r[1]}" for r in HAND_COUNTS]
)
def test_float_and_int8_counts_equal_hand_counts(cnn_costs, opcode, layer, cls, macs, elements):
    for cost, dtype in zip(cnn_costs, ("float32", "int8"), strict=True):
        if opcode == "SOFTMAX":
            op = _only(cost, opcode)
        else:
            op = _only(cost, opcode, layer)
        assert (op.op_class, op.macs, op.elements, op.dtype) == (cls, macs, elements, dtype)


def test_the_pw_conv_is_fused_into_add_or_counted_once(cnn_costs):
    # "pw" feeds only ADD: it must be counted as its own 1x1 conv either way.
    float_cost, _ = cnn_costs
    pw = [o for o in float_cost.ops if o.opcode == "CONV_2D" and o.op_class == "conv_1x1"]
    assert sorted(o.macs for o in pw) == [480, 480]


def test_total_macs_is_the_sum_of_mac_ops(cnn_costs):
    expected = sum(m for op, _, cls, m, _ in HAND_COUNTS if cls in MAC_CLASSES) + 480
    assert cnn_costs[0].macs == cnn_costs[1].macs == expected


def test_bytes_follow_the_tensors(cnn_costs):
    float_cost, int8_cost = cnn_costs
    f = _only(float_cost, "CONV_2D", "c3x3")
    q = _only(int8_cost, "CONV_2D", "c3x3")
    # float: 6*3*3*4 weights + 6 biases, 4 bytes each; int8: 1-byte weights, int32 biases
    assert f.weight_bytes == (6 * 3 * 3 * 4 + 6) * 4
    assert q.weight_bytes == 6 * 3 * 3 * 4 + 6 * 4
    assert (f.input_bytes, f.output_bytes) == (9 * 9 * 4 * 4, 4 * 4 * 6 * 4)
    assert (q.input_bytes, q.output_bytes) == (9 * 9 * 4, 4 * 4 * 6)
    assert (f.weight_dtype, q.weight_dtype) == ("float32", "int8")
    assert f.kernel == "3x3 s2 4->6" and "x2" in _only(float_cost, "DEPTHWISE_CONV_2D").kernel


def test_transpose_conv_matmul_and_conv3d(other_costs):
    t = _only(other_costs, "TRANSPOSE_CONV")
    assert (t.op_class, t.macs) == ("transpose_conv", 3 * 3 * 2 * 3 * 3 * 3)
    m = _only(other_costs, "BATCH_MATMUL")
    assert (m.op_class, m.macs, m.elements) == ("matmul", 4 * 3 * 5, 4 * 3)
    v = _only(other_costs, "CONV_3D")
    assert (v.op_class, v.macs) == ("conv", 2 * 2 * 2 * 2 * 2 * 2 * 2 * 1)


def test_cost_round_trips_through_a_dict(cnn_costs):
    cost = cnn_costs[1]
    again = ModelCost.from_dict(cost.to_dict())
    assert again == cost
    broken = cost.to_dict()
    del broken["ops"][0]["macs"]
    with pytest.raises(ValueError, match="lacks macs"):
        ModelCost.from_dict(broken)


def test_format_count():
    assert [format_count(n) for n in (999, 12_345, 7_157_888)] == ["999", "12.3 k", "7.16 M"]


def _tensor(index, shape, constant=False, variable=False, dtype="int8"):
    from edgeprune.tflite.info import TensorInfo

    nbytes = (int(np.prod(shape)) if shape else 1) * np.dtype(dtype).itemsize
    return TensorInfo(
        index, 0, f"t{index}", tuple(shape), None, dtype, constant, nbytes, (), (), 0, variable
    )


def _cost_of(opcode, shapes, constant, variable=(), out_shape=(1,), dtype="int8"):
    """op_cost of one operator built by hand: inputs 0..n-1 with ``shapes``."""
    from edgeprune.estimates.opcost import op_cost
    from edgeprune.tflite.info import OperatorInfo

    tensors = {
        (0, i): _tensor(i, s, i in constant, i in variable, dtype) for i, s in enumerate(shapes)
    }
    out = len(shapes)
    tensors[0, out] = _tensor(out, out_shape, dtype=dtype)
    op = OperatorInfo(0, 0, opcode, tuple(range(len(shapes))), (out,))
    return op_cost(None, op, tensors)


def test_svdf_counts_its_feature_and_time_weights_not_its_state():
    # input [batch 2, 10 features]; weights_feature [12 filters, 10]; weights_time [12, 5
    # memory]; bias [4 units]; activation state [2, 60] (a variable, never a weight)
    cost = _cost_of(
        "SVDF", [(2, 10), (12, 10), (12, 5), (4,), (2, 60)], {1, 2, 3}, {4}, out_shape=(2, 4)
    )
    assert (cost.op_class, cost.macs) == ("recurrent", 2 * (12 * 10 + 12 * 5))
    assert cost.elements == 2 * 12  # batch x filters: (12 + 12 rows) / 2


def test_sequence_lstm_counts_eight_gate_matrices_per_step():
    # input [batch 1, 7 steps, 3]; 4 input weights [5 cells, 3], 4 recurrent [5, 5],
    # 4 biases [5], then output and cell state (variables)
    shapes = [(1, 7, 3)] + [(5, 3)] * 4 + [(5, 5)] * 4 + [(5,)] * 4 + [(1, 5), (1, 5)]
    cost = _cost_of(
        "UNIDIRECTIONAL_SEQUENCE_LSTM", shapes, set(range(1, 13)), {13, 14}, out_shape=(1, 7, 5)
    )
    assert (cost.op_class, cost.macs) == ("recurrent", 7 * (4 * 5 * 3 + 4 * 5 * 5))
    assert cost.elements == 7 * 4 * 5 and cost.work == cost.macs  # steps x gates x cells


def test_data_movement_work_is_the_bytes_written():
    q = _cost_of("RESHAPE", [(1, 4, 4, 6), (2,)], {1}, out_shape=(1, 96))
    f = _cost_of("PAD", [(1, 4, 4, 6), (4, 2)], {1}, out_shape=(1, 6, 6, 6), dtype="float32")
    assert (q.op_class, q.elements, q.work) == ("data_movement", 96, 96)
    assert (f.op_class, f.elements, f.work) == ("data_movement", 216, 216 * 4)


def test_an_unknown_op_is_class_other(cnn_costs):
    assert _cost_of("CUSTOM:MyOp", [(1, 400)], set(), out_shape=(1, 400)).op_class == "other"
    concat = _only(cnn_costs[0], "CONCATENATION")
    assert concat.work == concat.output_bytes == 2 * 2 * 21 * 4  # float32: bytes, not elements


@pytest.mark.slow  # an LSTM conversion: 5-17 s on the shared 2-core machine
def test_converted_keras_lstm_counts_its_gate_matrices_per_step():
    seed_everything(0)
    inp = keras.Input((7, 3), batch_size=1)
    lstm = model_cost(_convert(keras.Model(inp, L.LSTM(5, name="lstm")(inp))))
    op = _only(lstm, "UNIDIRECTIONAL_SEQUENCE_LSTM")
    # 7 steps x 4 gates x 5 cells x (3 inputs + 5 recurrent)
    assert (op.op_class, op.macs, op.elements) == ("recurrent", 7 * 4 * 5 * (3 + 5), 7 * 4 * 5)


def test_tflite_micro_signal_kernels_are_counted_not_other():
    window = _cost_of("CUSTOM:SignalWindow", [(1, 480), (480,)], {1}, out_shape=(1, 480))
    assert (window.op_class, window.elements) == ("elementwise", 480)
    fft = _cost_of("CUSTOM:SignalRfft", [(480,)], set(), out_shape=(514,))
    assert (fft.op_class, fft.elements) == ("elementwise", 514 * 10)  # n log2 n, n = 514
    frames = _cost_of("CUSTOM:SignalFraming", [(160,)], set(), out_shape=(3, 400), dtype="int16")
    assert (frames.op_class, frames.work) == ("data_movement", 3 * 400 * 2)
