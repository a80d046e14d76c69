"""Small CNN for 8x8 grey images (scikit-learn's digits): two 3x3 convs, a pool, two dense.

About 38 k parameters: two ``Conv2D`` (16 and 32 filters), ``MaxPooling2D``,
``Dense(64)`` and the softmax classifier. Every layer with a kernel is one
tfmot can prune, and every op converts to TFLite builtins that TFLite Micro
implements (CONV_2D, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeprune.adapters.keras import KerasModel

VERSION = 2


def build(input_shape=(8, 8, 1), n_classes: int = 10) -> KerasModel:
    from edgeprune.adapters.keras import keras

    return keras.Sequential(
        [
            keras.Input(shape=tuple(input_shape), name="image"),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv1"),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(64, activation="relu", name="fc1"),
            keras.layers.Dense(n_classes, activation="softmax", name="classifier"),
        ],
        name="digits_cnn",
    )
