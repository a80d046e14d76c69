"""Write the four MLPerf Tiny architectures as int8 models with their firmware folders.

    .venv/bin/python benchmarks/firmware_check/make_models.py OUT_DIR [NAME ...]

For each of ds_cnn, mobilenet_v1, resnet8 and autoencoder: the tf_keras model
of ``edgeprune.models.mlperf_tiny`` with its initial (random) weights and
BatchNorm statistics set on generated data, converted to int8 (int8 input and
output, per-channel weights as the converter makes them) on 32 generated
samples (digits_cnn and digits_cnn_w50: the digits CNN and its 50 %-width
cut), then ``OUT_DIR/NAME/final_int8.tflite`` and ``OUT_DIR/NAME/firmware/``
with the arena edgeprune computes for the nano33ble (Cortex-M4F, CMSIS-NN).
Weights do not change an arena, so the models are not trained. Prints one JSON
line per model with the host's smallest arena.
"""

from __future__ import annotations

import json
import os
import sys

# The digits CNN as `make nano33ble` builds it, and its 50 %-width variant as
# `--structured width --width 0.5` cut it (8, 15 and 33 channels kept); both with
# per-tensor Dense weights, the quantization the pipeline picked for them.
DIGITS_WIDTHS = {"digits_cnn": (16, 32, 64), "digits_cnn_w50": (8, 15, 33)}
MLPERF = ("ds_cnn", "mobilenet_v1", "resnet8", "autoencoder")


def digits_cnn(widths: tuple[int, int, int]):
    """The digits CNN (models/digits_cnn.py) with the given conv1, conv2 and fc1 widths."""
    from edgeprune.adapters.keras import keras

    c1, c2, fc = widths
    layers = keras.layers
    # Non-zero biases, as training leaves them: the converter drops all-zero ones.
    b = {"bias_initializer": "random_normal"}
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1), name="image"),
            layers.Conv2D(c1, 3, padding="same", activation="relu", name="conv1", **b),
            layers.Conv2D(c2, 3, padding="same", activation="relu", name="conv2", **b),
            layers.MaxPooling2D(name="pool"),
            layers.Flatten(name="flatten"),
            layers.Dense(fc, activation="relu", name="fc1", **b),
            layers.Dense(10, activation="softmax", name="classifier", **b),
        ],
        name="digits_cnn",
    )


def int8_model(name: str) -> bytes:
    """The int8 flatbuffer of one of DIGITS_WIDTHS or MLPERF, untrained."""
    import numpy as np
    from edgeprune.models import mlperf_tiny as mt

    from edgeprune.adapters import converter
    from edgeprune.adapters.keras import keras

    keras.utils.set_random_seed(0)
    if name in DIGITS_WIDTHS:
        model = digits_cnn(DIGITS_WIDTHS[name])
        x = np.random.default_rng(0).uniform(0, 1, (32, 8, 8, 1)).astype(np.float32)
        return converter.to_tflite(model, "int8", calibration=x, per_tensor_dense=True)
    model = getattr(mt, name)()
    shape = tuple(model.input_shape[1:])
    classes = None if name == "autoencoder" else model.output_shape[-1]
    x, _ = mt.synthetic_data(shape, classes, n=64, seed=0)
    mt.calibrate_batchnorm(model, x)
    return converter.to_tflite(model, "int8", calibration=x[:32])


def build(name: str, out: str) -> dict:
    from edgeprune.firmware import emit
    from edgeprune.tflm import probe

    data = int8_model(name)
    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "final_int8.tflite"), "wb") as f:
        f.write(data)
    arena = probe.find_arena(data)
    emit.write_firmware(
        data, "final_int8", os.path.join(folder, "firmware"), arena.required_bytes()
    )
    return {"model": name, "bytes": len(data), "host_min_arena": arena.min_arena_bytes}


def main(argv: list[str]) -> int:
    out, names = argv[0], argv[1:] or list(MLPERF)
    for name in names:
        print(json.dumps(build(name, out)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
