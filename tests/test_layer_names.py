"""Operator tables name the Keras layer, not TensorFlow's fused tensor name (issue 15).

The names below are real converter output (tf_keras 2.21 + the TFLite converter)
of the repo's built-in models, of small Conv1D, Sequential, unrolled-LSTM and
MobileNetV2-like models, and of the MLPerf Tiny reference models whose op counts
ship in targets/calibration/.
"""

from __future__ import annotations

import glob
import json
import os

import pytest

from edgeprune.estimates.latency import estimate, load_cost_model
from edgeprune.estimates.opcost import ModelCost, OpCost
from edgeprune.presentation.check import format_top_ops
from edgeprune.tflite.names import keras_layer, layer_label

REAL_NAMES = [
    # digits_cnn (the default model)
    ("digits_cnn/conv1/Relu;digits_cnn/conv1/Conv2D", "conv1"),
    ("digits_cnn/pool/MaxPool", "pool"),
    ("digits_cnn/flatten/Reshape", "flatten"),
    ("digits_cnn/fc1/MatMul;digits_cnn/fc1/Relu", "fc1"),
    ("digits_cnn/classifier/MatMul1", "classifier"),
    # ds_cnn, mobilenet_v1: an Activation layer and a BatchNormalization fused in
    ("ds_cnn/conv1_relu/Relu;ds_cnn/conv1/Conv2D", "conv1"),
    ("ds_cnn/dw1_relu/Relu;ds_cnn/dw1_bn/FusedBatchNormV3;ds_cnn/dw1/depthwise1", "dw1"),
    ("mobilenet_v1/pw13_relu/Relu;mobilenet_v1/pw13/Conv2D", "pw13"),
    # resnet8: the add, not the relu after it
    ("resnet8/s1_relu/Relu;resnet8/s1_add/add", "s1_add"),
    ("resnet8/s2_shortcut/Conv2D1", "s2_shortcut"),
    # autoencoder: the dense layer, not the batch normalization folded after it
    (
        "autoencoder/fc1/MatMul;autoencoder/fc1_relu/Relu;autoencoder/fc1_bn/batchnorm/mul_1",
        "fc1",
    ),
    # Conv1D: EXPAND_DIMS and RESHAPE around the CONV_2D belong to the Conv1D layer
    ("functional_5/c1/Conv1D/ExpandDims", "c1"),
    ("functional_5/c1/Relu;functional_5/c1/Conv1D/Squeeze1", "c1"),
    (
        "functional_5/act/Relu6;functional_5/bn/batchnorm/mul_1;functional_5/c2/Conv1D/Squeeze;"
        "functional_5/bn/batchnorm/Rsqrt;functional_5/c2/Conv1D1",
        "c2",
    ),
    (
        "functional_5/act/Relu6;functional_5/bn/batchnorm/mul_1;functional_5/c2/Conv1D/Squeeze;"
        "functional_5/bn/batchnorm/Rsqrt",
        "c2",
    ),
    ("functional_5/gap/Mean", "gap"),
    # Sequential: an activation op of its own still belongs to its Dense layer
    ("sequential/dense_1/MatMul1", "dense_1"),
    ("sequential/dense_1/Sigmoid", "dense_1"),
    # an unrolled LSTM: every op of the cell is the LSTM layer's
    ("model/rnn/lstm_cell/MatMul;model/rnn/lstm_cell/BiasAdd", "rnn"),
    ("model/rnn/lstm_cell/Sigmoid_2", "rnn"),
    ("model/rnn/unstack;model/rnn/unstack1;model/rnn/unstack2", "rnn"),
    # a MobileNetV2-like model: PAD and the reshape's shape ops name their layers
    ("mbv2/pad/Pad", "pad"),
    ("mbv2/stem_relu/Relu6;mbv2/stem/Conv2D", "stem"),
    ("mbv2/reshape/strided_slice", "reshape"),
    # MLPerf Tiny KWS: a node of another layer that only shared a function comes later
    (
        "functional_1/activation/Relu;functional_1/batch_normalization/FusedBatchNormV3;"
        "functional_1/conv2d/BiasAdd/ReadVariableOp/resource;functional_1/conv2d/BiasAdd;"
        "functional_1/conv2d_4/Conv2D;functional_1/conv2d/Conv2D1",
        "conv2d",
    ),
    (
        "model/activation/Relu;model/batch_normalization/FusedBatchNormV3;"
        "model/conv2d/BiasAdd/ReadVariableOp/resource;model/conv2d/BiasAdd;"
        "model/depthwise_conv2d/depthwise;model/conv2d/Conv2D1",
        "conv2d",
    ),
    # what the issue showed, cut from the left
    ("functional_5/c2/BiasAdd/ReadVariableOp;functional_5/c2/Conv1D1", "c2"),
    # TF1 slim scopes repeat the model's name
    ("MobilenetV1/MobilenetV1/Conv2d_10_pointwise/Relu6", "Conv2d_10_pointwise"),
    ("MobilenetV1/Logits/AvgPool_1a/AvgPool", "Logits"),
    # names the TFLite Micro op check has always read
    ("tiny_cnn/conv/Relu;tiny_cnn/conv/BiasAdd;tiny_cnn/conv/Conv2D", "conv"),
    ("odd_ops/topk/TopKV2;odd_ops/topk/TopKV21", "topk"),
    ("outer/inner_block/dense/Tensordot/MatMul", "inner_block"),
    ("conv/bias", "conv"),
    # a model's last output carries no layer
    ("StatefulPartitionedCall:0", ""),
    ("Identity", ""),
    ("", ""),
]


@pytest.mark.parametrize(("tensor", "layer"), REAL_NAMES)
def test_keras_layer_is_read_from_the_converter_name(tensor, layer):
    assert keras_layer(tensor) == layer


@pytest.mark.parametrize(
    "path",
    sorted(
        glob.glob(
            os.path.join(os.path.dirname(__file__), "..", "targets", "calibration", "*", "*.json")
        )
    ),
)
def test_every_operator_of_the_shipped_models_but_the_output_has_its_layer(path):
    with open(path) as fh:
        ops = json.load(fh)["ops"]
    layers = [keras_layer(op["layer"]) for op in ops]
    assert all(layers[:-1]), [op["layer"] for op, name in zip(ops, layers, strict=True) if not name]
    assert not any(name.startswith(("activation", "batch_normalization")) for name in layers)


def test_a_name_without_a_layer_is_shown_whole_cut_at_the_right():
    assert layer_label("StatefulPartitionedCall:0") == "StatefulPartitionedCall:0"
    assert layer_label("x" * 50, 10) == "xxxxxxx..."
    assert layer_label("functional_5/c2/BiasAdd/ReadVariableOp;functional_5/c2/Conv1D1") == "c2"


def _cost() -> ModelCost:
    fused = (
        "functional_5/act/Relu6;functional_5/bn/batchnorm/mul_1;functional_5/c2/Conv1D/Squeeze;"
        "functional_5/bn/batchnorm/Rsqrt;functional_5/c2/BiasAdd/ReadVariableOp;"
        "functional_5/c2/Conv1D1"
    )
    conv = (1, "CONV_2D", fused, "conv", "int8", "int8", 90_000, 0, 900, 640, 640, "3x1")
    reshape = (0, "EXPAND_DIMS", "functional_5/c2/Conv1D/ExpandDims", "data_movement")
    reshape += ("int8", "", 0, 640, 0, 640, 640, "")
    return ModelCost("m.tflite", (OpCost(*reshape), OpCost(*conv)))


def test_check_and_run_tables_show_the_layer_not_the_tensor_name():
    est = estimate(_cost(), load_cost_model("cmsis-nn_cortex-m4f"), 64_000_000)
    text = format_top_ops(est)
    rows = [line.split() for line in text.splitlines()[3:]]
    assert [r[2] for r in rows] == ["c2", "c2"], text
    assert "ReadVariableOp" not in text and "..." not in text


def test_cost_table_has_a_layer_column():
    from edgeprune.presentation import ops

    text = ops._cost_text(_cost(), None)
    header, _rule, *rows = text.splitlines()
    assert header.split()[:3] == ["op", "layer", "class"]
    assert rows[0].split()[2] == "c2" and rows[1].split()[2] == "c2"
