"""The tfmot adapter's second half: weight clustering and the collaborative
quantization-aware training schemes (PQAT, CQAT, PCQAT), beside the pruning of
:mod:`edgeprune.adapters.tfmot`, whose quirks list covers both."""

from __future__ import annotations

import logging

import numpy as np
import tensorflow_model_optimization as tfmot

from edgeprune.adapters import keras as ka
from edgeprune.adapters.tfmot import KerasModel, keras, layer_kernel
from edgeprune.errors import UnsupportedModelError

log = logging.getLogger(__name__)


def _train(model: KerasModel, x, y, description: str, *, task, probabilities, **fit) -> None:
    """Compile and fit: ``fit`` holds epochs, batch_size, learning_rate and seed."""
    ka.compile_for(model, task, fit.pop("learning_rate"), probabilities)
    ka.fit(model, x, y, description=description, **fit)


def cluster(
    model: KerasModel, x: np.ndarray, y: np.ndarray, *, clusters: int, **training
) -> tuple[KerasModel, list[str]]:
    """Cluster the kernels of ``model`` (kmeans++ centroids, zeros kept as zeros), fine-tune
    and strip; return the stripped copy and the names of the clustered layers.
    ``training``: task, probabilities, epochs, batch_size, learning_rate, seed.

    Layers tfmot does not cluster (DepthwiseConv2D: "big unrecoverable accuracy loss",
    its registry says; recurrent and attention layers: not verified here) and kernels
    with no more than ``clusters`` weights (nothing to gain) are left as they are, and
    logged. ``model`` is not modified.

    Raises:
        UnsupportedModelError: no layer of the model can be clustered.
    """
    from tensorflow_model_optimization.python.core.clustering.keras.clustering_registry import (
        ClusteringRegistry,
    )

    chosen = set()
    for layer in model.layers:
        names = ClusteringRegistry._LAYERS_WEIGHTS_MAP.get(type(layer), [])
        w = getattr(layer, names[0], None) if names else None
        if w is not None and int(np.prod(w.shape)) > clusters:
            chosen.add(layer.name)
        elif layer_kernel(layer)[1] is not None:
            log.info("cluster: %s (%s) left unclustered", layer.name, type(layer).__name__)
    if not chosen:
        raise UnsupportedModelError(
            f"no layer of this model can be clustered into {clusters} values (tfmot clusters "
            f"Conv and Dense kernels with more weights than clusters); set cluster.clusters = 0"
        )
    init = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS
    params = dict(number_of_clusters=clusters, cluster_centroids_init=init)

    def clone_fn(layer):
        if layer.name in chosen:
            return tfmot.clustering.keras.cluster_weights(layer, preserve_sparsity=True, **params)
        return layer

    # Two clones, unlike tfmot.wrap's one: the wrapper initializes its centroids from
    # the weights its layer holds when it is built, so the layer must carry them then.
    wrapped = keras.models.clone_model(ka.clone(model), clone_function=clone_fn)
    _train(wrapped, x, y, "clustering", **training)
    return tfmot.clustering.keras.strip_clustering(wrapped), sorted(chosen)


def _scheme(mode: str):
    combine = tfmot.experimental.combine
    if mode == "pqat":
        return combine.Default8BitPrunePreserveQuantizeScheme()
    if mode in ("cqat", "pcqat"):
        return combine.Default8BitClusterPreserveQuantizeScheme(preserve_sparsity=mode == "pcqat")
    if mode == "qat":  # plain QAT: offered to show what it destroys, never by a recipe
        return tfmot.quantization.keras.default_8bit.Default8BitQuantizeScheme()
    raise ValueError(f"unknown QAT mode {mode!r}")


def quantize_aware(model: KerasModel, x: np.ndarray, y: np.ndarray, *, mode: str, **training):
    """Quantization-aware fine-tuning of the stripped ``model`` with the scheme of ``mode``
    (``pqat``, ``cqat``, ``pcqat``; ``qat`` is plain QAT). Returns the trained model with
    its fake-quantization wrappers, ready for int8 conversion; ``model`` is not modified.
    ``training``: task, probabilities, epochs, batch_size, learning_rate, seed.

    Raises:
        UnsupportedModelError: tfmot cannot quantize a layer of the model.
    """
    try:
        annotated = tfmot.quantization.keras.quantize_annotate_model(ka.clone(model))
        with tfmot.quantization.keras.quantize_scope():
            qat = tfmot.quantization.keras.quantize_apply(annotated, _scheme(mode))
    except (ValueError, RuntimeError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UnsupportedModelError(
            f"tfmot cannot apply quantization-aware training ({mode}) to this model: "
            f'{first[:200]}; use quantize.mode = "int8" (post-training, keeps zeros too)'
        ) from None
    _train(qat, x, y, f"{mode} fine-tuning", **training)
    return qat


def kernel_figures(model: KerasModel) -> dict[str, tuple[int, int, int]]:
    """Per weighted layer of a stripped float model: (weights, zeros, distinct values)."""
    out = {}
    for layer in model.layers:
        _, w = layer_kernel(layer)
        if w is not None:
            v = np.asarray(w)
            out[layer.name] = (int(v.size), int(np.count_nonzero(v == 0)), len(np.unique(v)))
    return out
