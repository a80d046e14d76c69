"""Build the int8 (or float32) models whose TFLite Micro kernels ``run_counts.py`` times under QEMU.

Two groups, each model in ``OUT/<name>/`` as ``<name>.tflite`` and the firmware
folder edgeprune emits for it (``firmware/``, unmodified, no arena: the
profiling program brings its own):

* ``reference``: the four MLPerf Tiny architectures of ``models/mlperf_tiny.py``,
  trained one epoch on generated data, batch-norm statistics calibrated, int8.
  (The digits CNN comes from ``edgeprune run``; see ``run_all.sh``.)
* files named with ``--file GROUP=PATH``: existing int8 models (the MLPerf Tiny
  reference ``.tflite`` files), under their group.
* ``sweep``: single-operator models that sweep the shape of each kernel class
  (1x1 conv, other convs, depthwise 3x3 and others, fully connected, pooling,
  add, reshape, pad, softmax, mean), so that each class's cost can be fitted
  as a function of its shape.

``OUT/manifest.json`` lists every model with its group and the per-operator
counts of :func:`edgeprune.estimates.opcost.model_cost` (MACs, elements,
bytes), which ``run_counts.py`` joins with the measured instructions.

Usage: ``.venv/bin/python benchmarks/kernel_counts/make_models.py OUT [--only sweep|reference]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from edgeprune.adapters import converter  # noqa: E402
from edgeprune.adapters import keras as ka  # noqa: E402
from edgeprune.estimates.opcost import model_cost  # noqa: E402
from edgeprune.firmware.emit import write_firmware  # noqa: E402
from edgeprune.tflite import inspect_model, parse  # noqa: E402
from models import mlperf_tiny  # noqa: E402

log = logging.getLogger("make_models")
keras, layers = ka.keras, ka.keras.layers


def _conv(name, hw, ic, oc, k, s=1, padding="same"):
    h, w = hw if isinstance(hw, tuple) else (hw, hw)
    inp = keras.Input((h, w, ic))
    out = layers.Conv2D(oc, k, strides=s, padding=padding, activation="relu")(inp)
    return keras.Model(inp, out, name=name)


def _dw(name, hw, c, k, s=1, mult=1):
    h, w = hw if isinstance(hw, tuple) else (hw, hw)
    inp = keras.Input((h, w, c))
    out = layers.DepthwiseConv2D(
        k, strides=s, padding="same", depth_multiplier=mult, activation="relu"
    )(inp)
    return keras.Model(inp, out, name=name)


def _fc(name, features, units):
    inp = keras.Input((features,))
    return keras.Model(inp, layers.Dense(units, activation="relu")(inp), name=name)


def _one(name, shape, layer):
    inp = keras.Input(shape)
    return keras.Model(inp, layer(inp), name=name)


def _add(name, shape):
    a, b = keras.Input(shape), keras.Input(shape)
    return keras.Model([a, b], layers.Add()([a, b]), name=name)


def sweep_builders() -> dict:
    """name -> zero-argument builder of a one-operator Keras model."""
    b = {}
    for hw in (4, 8, 16):
        for ic, oc in ((3, 16), (8, 8), (8, 32), (16, 16), (32, 32), (32, 64), (64, 64), (64, 128)):
            b[f"conv1x1_{hw}x{hw}_{ic}to{oc}"] = (_conv, hw, ic, oc, 1)
    # spatial sizes below the 2x2 blocks of the matrix-multiply kernels (classifier heads)
    for hw, ic, oc in (
        (1, 128, 32),
        (1, 256, 2),
        (1, 64, 64),
        (2, 32, 32),
        (3, 64, 64),
        (3, 16, 8),
    ):
        b[f"conv1x1_{hw}x{hw}_{ic}to{oc}"] = (_conv, hw, ic, oc, 1)
    for hw, ic, oc in (
        (16, 16, 32),
        (8, 32, 64),
        (32, 8, 16),
        (16, 8, 8),
        (8, 64, 128),
        (4, 32, 32),
    ):
        b[f"conv1x1s2_{hw}x{hw}_{ic}to{oc}"] = (_conv, hw, ic, oc, 1, 2)
    for hw in (8, 16, 32):
        for ic, oc in ((1, 8), (3, 16), (8, 16), (16, 16), (16, 32), (32, 32)):
            b[f"conv3x3_{hw}x{hw}_{ic}to{oc}"] = (_conv, hw, ic, oc, 3)
    for hw in (16, 32):
        for ic, oc in ((3, 8), (16, 32), (32, 64)):
            b[f"conv3x3s2_{hw}x{hw}_{ic}to{oc}"] = (_conv, hw, ic, oc, 3, 2)
    for hw, ic, oc in ((12, 8, 16), (16, 16, 16)):
        b[f"conv5x5_{hw}x{hw}_{ic}to{oc}"] = (_conv, hw, ic, oc, 5)
    b["conv10x4s2_49x10_1to32"] = (_conv, (49, 10), 1, 32, (10, 4), 2)
    for hw, ic, oc in ((48, 3, 8), (64, 3, 16), (24, 1, 16)):
        b[f"conv3x3s2_{hw}x{hw}_{ic}to{oc}"] = (_conv, hw, ic, oc, 3, 2)
    for hw in (6, 12, 24):
        for c in (8, 16, 32, 64, 128):
            b[f"dw3x3_{hw}x{hw}_{c}"] = (_dw, hw, c, 3)
    for hw, c in ((12, 16), (24, 32), (24, 64), (48, 8)):
        b[f"dw3x3s2_{hw}x{hw}_{c}"] = (_dw, hw, c, 3, 2)
    for hw, c in ((12, 16), (12, 64), (24, 32)):
        b[f"dw5x5_{hw}x{hw}_{c}"] = (_dw, hw, c, 5)
    b["dw7x7_12x12_32"] = (_dw, 12, 32, 7)
    for hw, c in ((12, 8), (12, 32), (24, 16), (6, 16), (8, 8)):
        b[f"dw3x3m2_{hw}x{hw}_{c}"] = (_dw, hw, c, 3, 1, 2)
    b["dw10x8s2m8_49x40_1"] = (_dw, (49, 40), 1, (10, 8), 2, 8)
    b["dw3x3s2m8_48x48_1"] = (_dw, 48, 1, 3, 2, 8)
    b["dw3x3m4_12x12_8"] = (_dw, 12, 8, 3, 1, 4)
    b["dw3x3m4_24x24_4"] = (_dw, 24, 4, 3, 1, 4)
    b["dw3x3m4_6x6_16"] = (_dw, 6, 16, 3, 1, 4)
    b["dw3x3m4_32x32_1"] = (_dw, 32, 1, 3, 1, 4)
    # one-dimensional (streaming keyword models): kernel k x 1 over time
    for h, c, k in ((30, 40, 3), (28, 128, 5), (64, 64, 9), (15, 128, 15)):
        b[f"dw{k}x1_{h}x1_{c}"] = (_dw, (h, 1), c, (k, 1))
    for features in (16, 64, 256, 640):
        for units in (8, 32, 128):
            b[f"fc_{features}to{units}"] = (_fc, features, units)
    b["fc_128to640"] = (_fc, 128, 640)
    b["fc_256to256"] = (_fc, 256, 256)
    for hw in (8, 16, 32):
        for c in (8, 32):
            b[f"maxpool2x2_{hw}x{hw}_{c}"] = (_one, (hw, hw, c), layers.MaxPooling2D(2))
            b[f"avgpool2x2_{hw}x{hw}_{c}"] = (_one, (hw, hw, c), layers.AveragePooling2D(2))
    for h, w, c in ((4, 4, 64), (8, 8, 16), (8, 8, 64), (25, 5, 64), (3, 3, 256)):
        b[f"avgpoolglobal_{h}x{w}_{c}"] = (_one, (h, w, c), layers.AveragePooling2D((h, w)))
    for h, c in ((4, 64), (8, 16), (8, 64), (2, 128), (16, 8), (6, 32)):
        b[f"mean_{h}x{h}_{c}"] = (_one, (h, h, c), layers.GlobalAveragePooling2D())
    for hw, c in ((8, 8), (8, 32), (16, 16), (16, 32), (32, 16)):
        b[f"add_{hw}x{hw}_{c}"] = (_add, (hw, hw, c))
    for hw, c in ((4, 8), (8, 16), (16, 32)):
        b[f"reshape_{hw}x{hw}_{c}"] = (_one, (hw, hw, c), layers.Flatten())
    for hw, c in ((8, 8), (16, 16), (32, 16)):
        b[f"pad1_{hw}x{hw}_{c}"] = (_one, (hw, hw, c), layers.ZeroPadding2D(1))
    b["pad01_16x16_16"] = (_one, (16, 16, 16), layers.ZeroPadding2D(((0, 1), (0, 1))))
    for n in (2, 10, 12, 100, 1000):
        b[f"softmax_{n}"] = (_one, (n,), layers.Softmax())
    for rows, n in ((16, 10), (4, 12), (32, 2)):
        b[f"softmax_{rows}x{n}"] = (_one, (rows, n), layers.Softmax())
    return {
        name: (lambda spec=spec, name=name: spec[0](name, *spec[1:])) for name, spec in b.items()
    }


def _calibration(model, n: int, seed: int):
    rng = np.random.default_rng(seed)
    shapes = [tuple(t.shape[1:]) for t in model.inputs]
    samples = [rng.standard_normal((n, *s)).astype(np.float32) for s in shapes]
    return samples


def _to_float32(model) -> bytes:
    """The float32 model TFLite Micro runs with its reference float kernels."""
    if len(model.inputs) == 1:
        return converter.to_tflite(model, "float32")
    return bytes(ka.tf.lite.TFLiteConverter.from_keras_model(model).convert())


def _to_int8(model, samples) -> bytes:
    if len(samples) == 1:
        return converter.to_tflite(model, "int8", samples[0])
    # Several inputs (ADD): the adapter takes one array, so feed the converter directly.
    tf = ka.tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: (
        [s[i : i + 1] for s in samples] for i in range(len(samples[0]))
    )
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return bytes(conv.convert())


def reference_models() -> dict:
    out = {}
    for name, (builder, shape, classes) in mlperf_tiny.REFERENCE.items():
        model = builder(shape, classes) if classes else builder(shape)
        x, y = mlperf_tiny.synthetic_data(shape, classes, n=256, seed=0)
        model.compile("adam", "mse" if classes is None else "sparse_categorical_crossentropy")
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)
        mlperf_tiny.calibrate_batchnorm(model, x[:128])
        out[name] = converter.to_tflite(model, "int8", x[:100])
    return out


def _shape(t) -> str:
    return "x".join(str(d) for d in t.shape) if t is not None else ""


def _op_shapes(path: str) -> list[tuple[str, str]]:
    """(first activation input shape, first output shape) of each subgraph-0 op."""
    info = inspect_model(path)
    tensors = {(t.subgraph, t.index): t for t in info.tensors}
    shapes = []
    for op in (o for o in info.operators if o.subgraph == 0):
        acts = [tensors[0, k] for k in op.inputs if k >= 0 and not tensors[0, k].is_constant]
        out = tensors[0, op.outputs[0]] if op.outputs else None
        shapes.append((_shape(acts[0] if acts else None), _shape(out)))
    return shapes


def write_model(out_dir: str, name: str, data: bytes, group: str, manifest: dict) -> None:
    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{name}.tflite")
    with open(path, "wb") as fh:
        fh.write(data)
    write_firmware(data, f"{name}.tflite", os.path.join(folder, "firmware"), None)
    ops = [o.to_dict() for o in model_cost(path).ops]
    for op, (inp, out) in zip(ops, _op_shapes(path), strict=True):
        op.update(input_shape=inp, output_shape=out)
    manifest[name] = {"group": group, "tflite": path, "ops": ops}


@contextlib.contextmanager
def _unverified():
    """Skip edgeprune's structural verifier for third-party files. The MLPerf Tiny VWW
    reference file (vww_96_int8.tflite) gives its 1-D conv biases 8 scales along
    dimension 3, which the verifier refuses and TFLite Micro runs (it reads the
    scales, not the dimension)."""
    saved = parse.verify
    parse.verify = lambda fb, info: None
    try:
        yield
    finally:
        parse.verify = saved


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--only", choices=("sweep", "reference", "files"))
    ap.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="GROUP=PATH",
        help="also take an existing int8 .tflite (e.g. an MLPerf Tiny reference file) as GROUP",
    )
    ap.add_argument("--match", default="", help="build only sweep models whose name contains this")
    ap.add_argument(
        "--dtype",
        choices=("int8", "float32"),
        default="int8",
        help="float32: the sweep as float models (reference float kernels), group sweep_float",
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ka.seed_everything(0)
    os.makedirs(args.out, exist_ok=True)
    manifest_path = os.path.join(args.out, "manifest.json")
    manifest = {}
    if os.path.exists(manifest_path):
        with open(manifest_path) as fh:
            manifest = json.load(fh)
        for entry in manifest.values():  # manifests written before shapes were recorded
            if entry["ops"] and "input_shape" not in entry["ops"][0]:
                with _unverified():
                    for op, (inp, out) in zip(
                        entry["ops"], _op_shapes(entry["tflite"]), strict=True
                    ):
                        op.update(input_shape=inp, output_shape=out)
    start = time.time()
    if args.only in (None, "sweep"):
        for name, build in sweep_builders().items():
            if args.match not in name:
                continue
            model = build()
            if args.dtype == "float32":
                write_model(args.out, name, _to_float32(model), "sweep_float", manifest)
            else:
                data = _to_int8(model, _calibration(model, 32, seed=len(name)))
                write_model(args.out, name, data, "sweep", manifest)
            ops = [o["opcode"] for o in manifest[name]["ops"]]
            log.info("%-28s %s", name, " ".join(ops))
    if args.only in (None, "reference"):
        for name, data in reference_models().items():
            write_model(args.out, name, data, "reference", manifest)
            log.info("%-28s %d ops", name, len(manifest[name]["ops"]))
    for spec in args.file:
        group, _, path = spec.partition("=")
        name = os.path.basename(path).removesuffix(".tflite")
        with open(path, "rb") as fh, _unverified():
            write_model(args.out, name, fh.read(), group, manifest)
        log.info("%-28s %d ops (%s)", name, len(manifest[name]["ops"]), group)
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
    log.info("%d models in %s (%.0f s)", len(manifest), manifest_path, time.time() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
