"""Shared fixtures: tiny models built in code, one per shape of model, and data files.

Keras models are module-scoped (TensorFlow work is shared within a test module)
and built on scikit-learn's bundled digits, so they learn something real in
a few epochs. Converted models (``.tflite`` bytes, which no test can change)
are session-scoped and go through the project's own converter
(``edgeprune.adapters.converter``), so every test sees what the pipeline emits.

Slow tests carry ``@pytest.mark.slow``: ``make test`` deselects them
(``-m "not slow"``), ``make test-all`` and ``.ci/run`` run them.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits():
    from edgeprune.data import load_dataset

    return load_dataset("digits")


def build_tiny(kind: str, n_classes: int = 10):
    """Tiny models of each shape the pipeline must handle, seeded."""
    from edgeprune.adapters.keras import keras, seed_everything

    seed_everything(0)

    L = keras.layers
    inp = keras.Input((8, 8, 1))
    if kind == "sequential":
        return keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                L.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
                L.Flatten(name="flatten"),
                L.Dense(16, activation="relu", name="hidden"),
                L.Dense(n_classes, activation="softmax", name="out"),
            ],
            name="tiny_sequential",
        )
    if kind == "cnn":
        return keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                L.Conv2D(8, 3, activation="relu", name="conv"),
                L.MaxPooling2D(2, name="pool"),
                L.Flatten(name="flatten"),
                L.Dense(n_classes, activation="softmax", name="dense"),
            ],
            name="tiny_cnn",
        )
    if kind == "residual":
        x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
        x = L.BatchNormalization(name="stem_bn")(x)
        x = L.ReLU(name="stem_relu")(x)
        y = L.Conv2D(8, 3, padding="same", activation="relu", name="branch")(x)
        x = L.Add(name="add")([x, y])
        x = L.MaxPooling2D(name="pool")(x)
        x = L.Flatten(name="flatten")(x)
        out = L.Dense(n_classes, name="logits")(x)  # logits: no softmax
        return keras.Model(inp, out, name="tiny_residual")
    if kind == "depthwise":
        x = L.Conv2D(8, 3, padding="same", activation="relu", name="stem")(inp)
        x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
        x = L.BatchNormalization(name="dw_bn")(x)
        x = L.ReLU(name="dw_relu")(x)
        x = L.Conv2D(16, 1, activation="relu", name="pw")(x)
        x = L.Flatten(name="flatten")(x)
        out = L.Dense(n_classes, activation="softmax", name="out")(x)
        return keras.Model(inp, out, name="tiny_depthwise")
    if kind == "autoencoder":
        x = L.Flatten(name="flatten")(inp)
        x = L.Dense(16, activation="relu", name="enc")(x)
        x = L.Dense(64, activation="sigmoid", name="dec")(x)
        out = L.Reshape((8, 8, 1), name="reshape")(x)
        return keras.Model(inp, out, name="tiny_autoencoder")
    raise ValueError(kind)


def train_tiny(model, digits, epochs: int = 3, regression: bool = False):
    from edgeprune.adapters import keras as ka

    if regression:
        model.compile("adam", "mse")
        model.fit(digits.x_train, digits.x_train, epochs=epochs, batch_size=64, verbose=0)
    else:
        from_logits = model.name == "tiny_residual"
        model.compile(
            "adam", ka.keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        )
        model.fit(digits.x_train, digits.y_train, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained_models(digits):
    """One trained tiny model of each kind (module-scoped: shared by a module's tests).

    The classifiers must really classify (over 80 % test accuracy), or tests
    of agreement and accuracy through the pipeline would say nothing.
    """
    from edgeprune.adapters import keras as ka

    models = {
        kind: train_tiny(build_tiny(kind), digits, epochs=6, regression=kind == "autoencoder")
        for kind in ("sequential", "residual", "depthwise", "autoencoder")
    }
    for kind in ("sequential", "residual", "depthwise"):
        accuracy = np.mean(ka.predict(models[kind], digits.x_test).argmax(1) == digits.y_test)
        assert accuracy > 0.8, f"tiny {kind} model only reached {accuracy:.2f}"
    return models


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory, digits):
    """The digits split as an .npz file in the documented layout."""
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(
        path,
        x_train=digits.x_train,
        y_train=digits.y_train,
        x_test=digits.x_test,
        y_test=digits.y_test,
    )
    return str(path)


def small_recipe(**prune):
    """A quick recipe for tests: few epochs, the rest default."""
    from edgeprune.recipe import build_recipe

    return build_recipe(
        {
            "train": {"epochs": 3},
            "prune": {"epochs": 2, **prune},
            "quantize": {"calibration_samples": 50},
        }
    )


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A finished run folder (digits CNN, int8) for the validation tests; tests that
    change its files work on a copy."""
    import edgeprune.pipeline as pipeline

    out = tmp_path_factory.mktemp("validate") / "run"
    pipeline.run(recipe=small_recipe(), out=str(out))
    return out


# --- converted models (session-scoped, through edgeprune's converter) --------------------------


@pytest.fixture(scope="session")
def tiny_cnn(digits):
    """The tiny int8 CNN's Keras model: Conv2D, MaxPooling2D, Flatten, Dense with
    softmax on 8x8x1 digits, trained to about 80 % test accuracy (8 epochs, 3 s) so
    that its outputs on digits are far from uniform. Session-scoped for the converted
    fixtures below; a test that would train or change it clones it first."""
    return train_tiny(build_tiny("cnn"), digits, epochs=8)


@pytest.fixture(scope="session")
def int8_model(tiny_cnn, digits) -> bytes:
    """The shared int8 model: ``tiny_cnn`` fully int8 (int8 input and output),
    calibrated on 32 digits, as the pipeline's int8 stage converts."""
    from edgeprune.adapters.converter import to_tflite

    return to_tflite(tiny_cnn, "int8", digits.x_train[:32])


@pytest.fixture(scope="session")
def float_model(tiny_cnn) -> bytes:
    """``tiny_cnn`` as a float32 ``.tflite``."""
    from edgeprune.adapters.converter import to_tflite

    return to_tflite(tiny_cnn, "float32")


@pytest.fixture(scope="session")
def int8_float_io_model(tiny_cnn, digits) -> bytes:
    """``tiny_cnn`` int8 inside, float32 at the edges (the converter adds QUANTIZE and
    DEQUANTIZE). edgeprune never emits this, but users bring such models; its
    converter has no mode for it, hence the one direct converter call of the tests."""
    from edgeprune.adapters.keras import tf

    samples = digits.x_train[:16]
    converter = tf.lite.TFLiteConverter.from_keras_model(tiny_cnn)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([samples[i : i + 1]] for i in range(len(samples)))
    return bytes(converter.convert())


@pytest.fixture(scope="session")
def topk_model() -> bytes:
    """An int8 model with TOPK_V2 (an op TFLite Micro does not implement) at
    operator 1, from the layer named ``topk``."""
    from edgeprune.adapters.converter import to_tflite
    from edgeprune.adapters.keras import keras, seed_everything, tf

    seed_everything(0)
    inp = keras.Input((16,))
    x = keras.layers.Dense(8, name="dense")(inp)
    x = keras.layers.Lambda(lambda t: tf.math.top_k(t, k=2).values, name="topk")(x)
    out = keras.layers.Dense(2, name="head")(x)  # so TOPK's output keeps its layer name
    data = np.random.default_rng(0).random((20, 16), dtype=np.float32)
    return to_tflite(keras.Model(inp, out), "int8", data)


@pytest.fixture(scope="session")
def odd_ops_model() -> bytes:
    """A float model with two ops TFLite Micro lacks (TOPK_V2, ATAN2) and two
    kernels that reject int32: CUMSUM when it is prepared, ABS only when invoked."""
    from edgeprune.adapters.converter import to_tflite
    from edgeprune.adapters.keras import keras, seed_everything, tf

    seed_everything(0)
    L = keras.layers
    inp = keras.Input((16,), batch_size=1)
    x = L.Dense(16, name="fc")(inp)
    x = L.Lambda(lambda t: tf.math.top_k(t, k=8)[0], name="topk")(x)
    x = L.Lambda(lambda t: tf.math.atan2(t, t + 2.0), name="angle")(x)
    x = L.Lambda(lambda t: tf.cast(t * 10.0, tf.int32), name="to_int")(x)
    x = L.Lambda(lambda t: tf.math.cumsum(t, axis=1), name="cumsum")(x)
    x = L.Lambda(lambda t: tf.math.abs(t), name="magnitude")(x)
    x = L.Lambda(lambda t: tf.cast(t, tf.float32), name="to_float")(x)
    out = L.Dense(3, name="out")(x)
    return to_tflite(keras.Model(inp, out, name="odd_ops"), "float32")


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on 127.0.0.1 for the session (tests/pg_server.py): skipped
    without one, failed instead when EDGEPRUNE_REQUIRE_POSTGRES=1 (.ci/run sets it)."""
    import pg_server

    why = pg_server.why_unavailable()
    if why is not None:
        if os.environ.get(pg_server.REQUIRE_VARIABLE):
            pytest.fail(f"{pg_server.REQUIRE_VARIABLE} is set but {why}")
        pytest.skip(why)
    server = pg_server.PostgresServer()
    yield server
    server.stop()
