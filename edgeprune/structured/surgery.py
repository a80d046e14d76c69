"""Rebuild a tf_keras model without the removed channels: a smaller, dense model.

The new model is made from the old one's config with each producer's width
(``filters``/``units``) set to the channels it keeps, and every weight sliced
on its input and output channel axes by the keep masks of
:meth:`ChannelGraph.keep_masks`. With nothing removed it is the same model,
weight for weight (``tests/test_structured.py`` checks the outputs on every
reference model).
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

import numpy as np

from edgeprune.structured.graph import ChannelGraph

if TYPE_CHECKING:
    from edgeprune.adapters.keras import KerasModel


class SurgeryError(RuntimeError):
    """A layer's weights could not be sliced to the kept channels."""


def _slice(
    cls: str,
    weights: list[np.ndarray],
    keep_in: np.ndarray | None,
    keep_out: np.ndarray,
    layer_name: str,
) -> list[np.ndarray]:
    """``weights`` of one layer restricted to the kept input and output channels."""
    if not weights:
        return weights
    if cls in ("Conv1D", "Conv2D", "Conv3D", "Dense"):
        kernel = weights[0][..., keep_in, :][..., keep_out]
        return [kernel, *(w[keep_out] for w in weights[1:])]
    if cls == "Conv2DTranspose":  # kernel (kh, kw, out, in)
        kernel = weights[0][..., keep_in][..., keep_out, :]
        return [kernel, *(w[keep_out] for w in weights[1:])]
    if cls in ("SeparableConv1D", "SeparableConv2D"):  # depthwise, pointwise, bias
        depthwise = weights[0][..., keep_in, :]
        pointwise = weights[1][..., keep_in, :][..., keep_out]
        return [depthwise, pointwise, *(w[keep_out] for w in weights[2:])]
    if cls in ("DepthwiseConv2D", "DepthwiseConv1D"):  # kernel (..., C, 1), bias (C,)
        return [weights[0][..., keep_out, :], *(w[keep_out] for w in weights[1:])]
    if cls in ("BatchNormalization", "PReLU"):
        return [w[..., keep_out] for w in weights]
    if keep_in is not None and keep_in.all() and keep_out.all():
        return weights
    raise SurgeryError(f"layer {layer_name} ({cls}) has weights edgeprune cannot slice")


def _strip_build_config(config):
    if isinstance(config, dict):
        return {k: _strip_build_config(v) for k, v in config.items() if k != "build_config"}
    if isinstance(config, list):
        return [_strip_build_config(v) for v in config]
    return config


def rebuild(model: KerasModel, graph: ChannelGraph, removed: set[int]) -> KerasModel:
    """A new model without the channel roots in ``removed``, its weights copied."""

    masks = graph.keep_masks(removed)
    config = copy.deepcopy(model.get_config())
    layer_configs = config["layers"]
    for entry in layer_configs:
        cfg = entry["config"]
        name = cfg["name"]
        if name not in graph.atoms:
            if entry["class_name"] == "Reshape" and name in masks:
                _, out = masks[name]
                if int(cfg["target_shape"][-1]) == len(out) and len(cfg["target_shape"]) > 1:
                    cfg["target_shape"] = [*cfg["target_shape"][:-1], int(out.sum())]
            continue
        kept = int(masks[name][1].sum())
        key = "units" if "units" in cfg else "filters"
        cfg[key] = kept
    config = _strip_build_config(config)
    cls = model.__class__
    new = cls.from_config(config)
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        if layer.name not in masks:
            new.get_layer(layer.name).set_weights(weights)
            continue
        ins, out = masks[layer.name]
        keep_in = ins[0] if ins else None
        sliced = _slice(layer.__class__.__name__, weights, keep_in, out, layer.name)
        new.get_layer(layer.name).set_weights(sliced)
    return new


def width_report(old: KerasModel, new: KerasModel) -> list[tuple[str, int, int]]:
    """(producer, channels before, after) for every producer whose width changed."""
    rows = []
    for layer in old.layers:
        cfg = layer.get_config()
        key = "units" if "units" in cfg else "filters" if "filters" in cfg else None
        if key is None:
            continue
        after = new.get_layer(layer.name).get_config()[key]
        if after != cfg[key]:
            rows.append((layer.name, int(cfg[key]), int(after)))
    return rows


def _zero_inputs(cls: str, weights: list[np.ndarray], cut: np.ndarray) -> list[np.ndarray]:
    """``weights`` of a producer with the kernel rows that read ``cut`` inputs zeroed."""
    weights = [w.copy() for w in weights]
    if cls in ("Conv1D", "Conv2D", "Conv3D", "Dense"):
        weights[0][..., cut, :] = 0
    elif cls == "Conv2DTranspose":
        weights[0][..., cut] = 0
    elif cls in ("SeparableConv1D", "SeparableConv2D"):
        weights[1][..., cut, :] = 0
    else:
        raise SurgeryError(f"cannot mask the inputs of a {cls} layer")
    return weights


def masked_copy(model: KerasModel, graph: ChannelGraph, removed: set[int]) -> KerasModel:
    """The original architecture with every weight that reads a removed channel
    zeroed: the function the rebuilt model must compute, channel for channel.

    Cutting a channel is the same as its consumers ignoring it, whatever the
    producer and the BatchNormalization between computed for it; the consumers
    are the producers whose input rows the keep masks drop.
    """
    masks = graph.keep_masks(removed)
    new = model.__class__.from_config(_strip_build_config(copy.deepcopy(model.get_config())))
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        ins = masks.get(layer.name, ((), None))[0]
        if layer.name in graph.atoms and ins and not ins[0].all():
            weights = _zero_inputs(layer.__class__.__name__, weights, ~ins[0])
        new.get_layer(layer.name).set_weights(weights)
    return new


def verify_rebuild(
    model: KerasModel, graph: ChannelGraph, removed: set[int], rebuilt: KerasModel, x: np.ndarray
) -> tuple[float, float]:
    """Run ``rebuilt`` and :func:`masked_copy` of ``model`` on ``x``.

    Returns ``(max |difference|, max |output|)``: the rebuild is right when the
    difference is float32 rounding of the output's scale.
    """
    from edgeprune.adapters.keras import predict

    expected = predict(masked_copy(model, graph, removed), x)
    got = predict(rebuilt, x)
    return float(np.max(np.abs(expected - got))), float(np.max(np.abs(expected)))


def rebuild_tolerance(scale: float) -> float:
    """The largest difference :func:`verify_rebuild` accepts at an output scale."""
    return 1e-4 * max(1.0, scale)
