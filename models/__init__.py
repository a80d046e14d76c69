"""Reference model builders shipped with edgeprune.

Each builder takes the input shape (without the batch dimension) and the
number of classes, and returns an untrained tf_keras model. ``BUILTIN_MODELS``
maps a name to the builder and the built-in data set it is meant for.
Builders import tf_keras inside the function so that listing them is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgeprune.models import digits_cnn, mlperf_tiny

if TYPE_CHECKING:
    from edgeprune.adapters.keras import KerasModel


@dataclass(frozen=True)
class BuiltinModel:
    name: str
    build: Callable[..., KerasModel]
    dataset: str
    # Bump when the architecture changes, so cached baselines are not reused.
    version: int
    description: str
    task: str = "classification"  # "regression": the output reconstructs the input


def _doc(fn) -> str:
    return fn.__doc__.strip().splitlines()[0]


BUILTIN_MODELS = {
    "digits_cnn": BuiltinModel(
        "digits_cnn", digits_cnn.build, "digits", digits_cnn.VERSION, _doc(digits_cnn)
    ),
    # The MLPerf Tiny reference architectures, on generated data of their shape:
    # their sizes, arenas and latencies are real, their accuracies mean nothing.
    "ds_cnn": BuiltinModel(
        "ds_cnn", mlperf_tiny.ds_cnn, "kws_synthetic", mlperf_tiny.VERSION, _doc(mlperf_tiny.ds_cnn)
    ),
    "mobilenet_v1": BuiltinModel(
        "mobilenet_v1",
        mlperf_tiny.mobilenet_v1,
        "vww_synthetic",
        mlperf_tiny.VERSION,
        _doc(mlperf_tiny.mobilenet_v1),
    ),
    "resnet8": BuiltinModel(
        "resnet8",
        mlperf_tiny.resnet8,
        "ic_synthetic",
        mlperf_tiny.VERSION,
        _doc(mlperf_tiny.resnet8),
    ),
    "autoencoder": BuiltinModel(
        "autoencoder",
        mlperf_tiny.autoencoder,
        "ad_synthetic",
        mlperf_tiny.VERSION,
        _doc(mlperf_tiny.autoencoder),
        task="regression",
    ),
}

DEFAULT_MODEL = "digits_cnn"
