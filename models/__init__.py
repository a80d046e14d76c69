"""Reference model builders shipped with edgeprune.

Each builder takes the input shape (without the batch dimension) and the
number of classes, and returns an untrained tf_keras model. ``BUILTIN_MODELS``
maps a name to the builder and the built-in data set it is meant for.
Builders import tf_keras inside the function so that listing them is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from edgeprune.models import digits_cnn


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    build: Callable
    dataset: str
    # Bump when the architecture changes, so cached baselines are not reused.
    version: int
    description: str


BUILTIN_MODELS = {
    "digits_cnn": BuiltinModel("digits_cnn", digits_cnn.build, "digits", digits_cnn.VERSION,
                               digits_cnn.__doc__.strip().splitlines()[0]),
}

DEFAULT_MODEL = "digits_cnn"
