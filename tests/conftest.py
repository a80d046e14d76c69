"""Shared fixtures: tiny models built in code, one per shape of model, and data files.

Models are module-scoped (TensorFlow work is shared within a test module)
and built on scikit-learn's bundled digits, so they learn something real in
a few epochs.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

SLOW = bool(os.environ.get("EDGEPRUNE_SLOW"))


def pytest_collection_modifyitems(config, items):
    if SLOW:
        return
    skip = pytest.mark.skip(reason="slow: set EDGEPRUNE_SLOW=1 (make test-slow) to run")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


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
        return keras.Sequential([
            keras.Input((8, 8, 1)),
            L.Conv2D(8, 3, padding="same", activation="relu", name="conv"),
            L.Flatten(name="flatten"),
            L.Dense(16, activation="relu", name="hidden"),
            L.Dense(n_classes, activation="softmax", name="out"),
        ], name="tiny_sequential")
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
        model.compile("adam", ka.keras.losses.SparseCategoricalCrossentropy(
            from_logits=from_logits))
        model.fit(digits.x_train, digits.y_train, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def trained_models(digits):
    """One trained tiny model of each kind (module-scoped: shared by a module's tests).

    The classifiers must really classify (over 80 % test accuracy), or tests
    of agreement and accuracy through the pipeline would say nothing.
    """
    from edgeprune.adapters import keras as ka

    models = {kind: train_tiny(build_tiny(kind), digits, epochs=6,
                               regression=kind == "autoencoder")
              for kind in ("sequential", "residual", "depthwise", "autoencoder")}
    for kind in ("sequential", "residual", "depthwise"):
        accuracy = np.mean(ka.predict(models[kind], digits.x_test).argmax(1) == digits.y_test)
        assert accuracy > 0.8, f"tiny {kind} model only reached {accuracy:.2f}"
    return models


@pytest.fixture(scope="session")
def digits_npz(tmp_path_factory, digits):
    """The digits split as an .npz file in the documented layout."""
    path = tmp_path_factory.mktemp("data") / "digits.npz"
    np.savez(path, x_train=digits.x_train, y_train=digits.y_train, x_test=digits.x_test,
             y_test=digits.y_test)
    return str(path)


def small_recipe(**prune):
    """A quick recipe for tests: few epochs, the rest default."""
    from edgeprune.recipe import build_recipe

    return build_recipe({"train": {"epochs": 3}, "prune": {"epochs": 2, **prune},
                         "quantize": {"calibration_samples": 50}})


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A finished run folder (digits CNN, int8) for the validation tests; tests that
    change its files work on a copy."""
    import edgeprune.pipeline as pipeline

    out = tmp_path_factory.mktemp("validate") / "run"
    pipeline.run(recipe=small_recipe(), out=str(out))
    return out
