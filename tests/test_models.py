"""The MLPerf Tiny reference architectures: built in tf_keras, they convert to int8
models with the reference ``.tflite`` files' operators and MAC counts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from edgeprune.models import mlperf_tiny

from edgeprune.estimates.opcost import ModelCost, model_cost

REFERENCE_COUNTS = os.path.join(
    os.path.dirname(__file__), "..", "targets", "calibration", "mlperf_tiny_v0.5"
)
REFERENCE_FILE = {
    "ds_cnn": "kws_ref",
    "mobilenet_v1": "vww_ref",
    "resnet8": "ic_ref",
    "autoencoder": "ad_ref",
}
# Trainable + non-trainable parameters of the published definitions (hand counts
# of each layer's kernel, bias and BatchNormalization's four vectors).
PARAMS = {"ds_cnn": 24_908, "mobilenet_v1": 221_794, "resnet8": 78_666, "autoencoder": 269_992}


# MobileNet v1 (221 K parameters) takes 10-25 s to build and convert here; the other
# three cover the same operators in the quick suite.
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.slow) if n == "mobilenet_v1" else n
        for n in sorted(mlperf_tiny.REFERENCE)
    ],
)
def test_reference_model_matches_published_tflite(name, tmp_path):
    from edgeprune.adapters.converter import to_tflite

    build, shape, n_classes = mlperf_tiny.REFERENCE[name]
    model = build()
    assert model.count_params() == PARAMS[name]
    x, _ = mlperf_tiny.synthetic_data(shape, n_classes, n=16)
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(to_tflite(model, "int8", x))
    ours = model_cost(str(path))
    with open(os.path.join(REFERENCE_COUNTS, REFERENCE_FILE[name] + ".json")) as fh:
        ref = ModelCost.from_dict(json.load(fh))
    assert [o.opcode for o in ours.ops] == [o.opcode for o in ref.ops]
    assert [o.macs for o in ours.ops] == [o.macs for o in ref.ops]
    assert ours.macs == ref.macs


def test_ds_cnn_hand_count():
    # conv 10x4 over 1 channel into 25x5x64; 4 x (3x3 depthwise + 1x1 64->64) at 25x5;
    # the classifier 64 -> 12
    positions = 25 * 5
    macs = positions * 64 * 10 * 4 + 4 * (positions * 64 * 9 + positions * 64 * 64) + 64 * 12
    path = os.path.join(REFERENCE_COUNTS, "kws_ref.json")
    with open(path) as fh:
        assert ModelCost.from_dict(json.load(fh)).macs == macs


def test_synthetic_data_is_learnable_and_shaped():
    x, y = mlperf_tiny.synthetic_data((49, 10, 1), 12, n=240, seed=1)
    assert x.shape == (240, 49, 10, 1) and x.dtype == np.float32
    assert set(np.unique(y)) <= set(range(12))
    # nearest class mean separates the classes: the data carries the label
    means = np.stack([x[y == c].mean(axis=0) for c in range(12)])
    dist = ((x[:, None] - means[None]) ** 2).reshape(240, 12, -1).sum(-1)
    assert (dist.argmin(1) == y).mean() > 0.9
    xa, ya = mlperf_tiny.synthetic_data((640,), None, n=32)
    assert xa.shape == (32, 640) and np.array_equal(xa, ya)
    assert np.linalg.matrix_rank(xa) == 8
