"""The built-in default run, written by hand with tfmot and the TFLite converter.

This is the script a practitioner would write without edgeprune: the same
work as ``edgeprune run`` with the default recipe (train the digits CNN,
convert it, prune it to 75 % with a polynomial schedule, strip and check the
strip, convert to float32 and full-integer int8, evaluate all three
``.tflite`` files with LiteRT), and nothing more: no input checks, no
hashes, no atomic writes, no report. It must not import edgeprune; it is the
yardstick ``bench_default.py`` measures edgeprune against.

It writes its artifacts to ``--out`` and prints one JSON line at the end:
seconds per stage, ``total_seconds``, ``final_accuracy`` (int8) and
``peak_rss_mb``.
"""

from __future__ import annotations

import time

T_START = time.perf_counter()

import gzip  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402

import click  # noqa: E402

# tfmot works only with Keras 2 (tf_keras), which TensorFlow picks only if
# this is set before its first import.
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SEED = 0
TRAIN_EPOCHS, TRAIN_BATCH, TRAIN_LR = 20, 32, 2e-3
PRUNE_EPOCHS, PRUNE_BATCH, PRUNE_LR = 10, 32, 1e-3
FINAL_SPARSITY, POWER, END_FRACTION, MASK_UPDATES = 0.75, 3.0, 0.7, 16
CALIBRATION_SAMPLES = 200


def seed_everything() -> None:
    import tensorflow as tf
    import tf_keras

    tf_keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()


def load_digits_split():
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)


def build_cnn(keras):
    return keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="fc1"),
            keras.layers.Dense(10, activation="softmax", name="classifier"),
        ],
        name="digits_cnn",
    )


def pruning_schedule_steps(n_train: int) -> tuple[int, int, int]:
    """(begin, end, frequency): prune from step 0 over the first 70 % of the
    fine-tuning steps, about 16 mask updates, end on an update step (as
    edgeprune's plan_schedule derives them)."""
    total = math.ceil(n_train / PRUNE_BATCH) * PRUNE_EPOCHS
    span = max(1, int(total * END_FRACTION))
    frequency = max(1, span // MASK_UPDATES)
    return 0, max(frequency, span // frequency * frequency), frequency


def to_tflite(tf, model, x_calib=None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if x_calib is not None:

        def representative():
            for i in range(len(x_calib)):
                yield [x_calib[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    return converter.convert()


def run_tflite(model_bytes: bytes, x):
    """Float32 outputs of a .tflite on ``x``: one invoke over the whole batch,
    int8 inputs quantized and outputs dequantized with the model's scales."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(
        model_content=model_bytes,
        num_threads=1,
        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
    )
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], [len(x), *inp["shape"][1:]])
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    if inp["dtype"] == np.int8:
        scale, zero = inp["quantization"]
        x = np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8)
    it.set_tensor(inp["index"], x)
    it.invoke()
    y = it.get_tensor(out["index"])
    if out["dtype"] == np.int8:
        scale, zero = out["quantization"]
        y = (y.astype(np.float32) - zero) * scale
    return y.astype(np.float32)


def run(out: str) -> dict:
    """Every stage in order; returns the figures printed as the JSON line."""
    seconds: dict[str, float] = {}
    t = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal t
        now = time.perf_counter()
        seconds[stage] = now - t
        t = now

    import numpy as np
    import tensorflow as tf
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras
    from sklearn.metrics import confusion_matrix, f1_score

    lap("import")

    x_train, x_test, y_train, y_test = load_digits_split()
    seed_everything()
    model = build_cnn(keras)
    lap("data")

    # Re-seeding before each fit, as edgeprune does, makes both runs draw the
    # same shuffles, so their accuracies can be compared exactly.
    model.compile(
        optimizer=keras.optimizers.Adam(TRAIN_LR),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    seed_everything()
    model.fit(
        x_train, y_train, epochs=TRAIN_EPOCHS, batch_size=TRAIN_BATCH, shuffle=True, verbose=0
    )
    model.save(os.path.join(out, "baseline.keras"))
    baseline_tflite = to_tflite(tf, model)
    with open(os.path.join(out, "baseline_float32.tflite"), "wb") as fh:
        fh.write(baseline_tflite)
    lap("baseline")

    begin, end, frequency = pruning_schedule_steps(len(x_train))
    schedule = tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=FINAL_SPARSITY,
        begin_step=begin,
        end_step=end,
        power=POWER,
        frequency=frequency,
    )
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    pruned = keras.models.clone_model(
        copy,
        clone_function=lambda layer: (
            tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
            else layer
        ),
    )
    pruned.compile(
        optimizer=keras.optimizers.Adam(PRUNE_LR),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=["accuracy"],
    )
    seed_everything()
    pruned.fit(
        x_train,
        y_train,
        epochs=PRUNE_EPOCHS,
        batch_size=PRUNE_BATCH,
        shuffle=True,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    stripped = tfmot.sparsity.keras.strip_pruning(pruned)
    if not np.array_equal(
        np.asarray(pruned(x_test, training=False)), np.asarray(stripped(x_test, training=False))
    ):
        raise SystemExit("strip_pruning changed the model's outputs")
    sparsity = {
        layer.name: float(np.mean(layer.kernel.numpy() == 0))
        for layer in stripped.layers
        if hasattr(layer, "kernel")
    }
    stripped.save(os.path.join(out, "pruned.keras"))
    pruned_tflite = to_tflite(tf, stripped)
    with open(os.path.join(out, "pruned_float32.tflite"), "wb") as fh:
        fh.write(pruned_tflite)
    lap("prune")

    rng = np.random.default_rng(SEED)
    idx = np.sort(rng.choice(len(x_train), size=CALIBRATION_SAMPLES, replace=False))
    int8_tflite = to_tflite(tf, stripped, x_train[idx])
    with open(os.path.join(out, "final_int8.tflite"), "wb") as fh:
        fh.write(int8_tflite)
    lap("quantize")

    evaluation, reference = {}, None
    for stage, blob in (
        ("baseline", baseline_tflite),
        ("pruned", pruned_tflite),
        ("final", int8_tflite),
    ):
        y_pred = run_tflite(blob, x_test).argmax(axis=1)
        reference = y_pred if reference is None else reference
        evaluation[stage] = {
            "accuracy": float(np.mean(y_pred == y_test)),
            "macro_f1": float(
                f1_score(y_test, y_pred, labels=list(range(10)), average="macro", zero_division=0)
            ),
            "confusion_matrix": confusion_matrix(y_test, y_pred, labels=list(range(10))).tolist(),
            "agreement": float(np.mean(y_pred == reference)),
            "bytes": len(blob),
            "gzip_bytes": len(gzip.compress(blob, compresslevel=9, mtime=0)),
        }
    lap("evaluate")

    return {
        "seconds": seconds,
        "sparsity": sparsity,
        "schedule": [begin, end, frequency],
        "evaluate": {
            k: {m: v for m, v in e.items() if m != "confusion_matrix"}
            for k, e in evaluation.items()
        },
        "final_accuracy": evaluation["final"]["accuracy"],
    }


@click.command()
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder for the artifacts (created if missing).",
)
def main(out: str) -> None:
    """Run the default edgeprune recipe by hand; print one JSON line of figures."""
    os.makedirs(out, exist_ok=True)
    figures = run(out)
    figures["total_seconds"] = time.perf_counter() - T_START
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    click.echo(json.dumps(figures))


if __name__ == "__main__":
    main()
