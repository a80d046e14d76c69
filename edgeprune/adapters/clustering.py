"""Weight clustering for the LUT encoding (tfmot ``cluster_weights``, then strip).

tfmot's clustering replaces each clustered kernel's values by the nearest of
``n`` centroids, fine-tunes the centroids, and ``strip_clustering`` leaves a
plain Keras model whose kernels hold at most ``n`` distinct values, the zero
included (``preserve_sparsity`` keeps the pruned zeros, and one of the ``n``
centroids is zero: measured, 15 clusters of the 75 %-pruned digits CNN leave 14
non-zero values per kernel). After int8 quantization a channel then holds at
most ``n`` values, so TFLite Micro's LUT encoding stores ``ceil(log2(n))``-bit
indices. The second home
of ``tensorflow_model_optimization`` beside :mod:`edgeprune.adapters.tfmot`,
whose module is the pruning adapter.
"""

from __future__ import annotations

import numpy as np
import tensorflow_model_optimization as tfmot

from edgeprune.adapters import keras as ka
from edgeprune.adapters.keras import keras

#: The layers whose kernel is clustered (what the pruning stage prunes, too).
CLUSTERED = ("Conv2D", "DepthwiseConv2D", "Dense")


def cluster(
    model,
    clusters: int,
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    probabilities: bool,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
):
    """A copy of ``model`` whose ``CLUSTERED`` layers' kernels hold at most ``clusters``
    distinct values, the zero included (zeros kept), fine-tuned ``epochs`` on ``x``, ``y`` and
    stripped. ``model`` itself is not modified."""
    cluster_weights = tfmot.clustering.keras.cluster_weights
    init = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS
    base = ka.clone(model)

    def clone_fn(layer):
        if type(layer).__name__ in CLUSTERED:
            return cluster_weights(
                layer,
                number_of_clusters=clusters,
                cluster_centroids_init=init,
                preserve_sparsity=True,
            )
        return layer

    wrapped = keras.models.clone_model(base, clone_function=clone_fn)
    if epochs:
        ka.compile_for(wrapped, task, learning_rate, probabilities)
        ka.fit(
            wrapped,
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            seed=seed,
            description="cluster fine-tuning",
        )
    return tfmot.clustering.keras.strip_clustering(wrapped)


def distinct_values(model) -> dict[str, int]:
    """Each clustered layer's kernel: its number of distinct non-zero values."""
    out = {}
    for layer in model.layers:
        if type(layer).__name__ in CLUSTERED and layer.get_weights():
            kernel = layer.get_weights()[0]
            out[layer.name] = int(np.unique(kernel[kernel != 0]).size)
    return out
