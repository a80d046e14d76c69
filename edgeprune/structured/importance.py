"""How much each channel matters, and which channels to cut.

Criteria (``CRITERIA``), each a score per channel (a class of merged atoms, see
:mod:`graph`): the sum over the producers that make the channel of

``l1``        mean |w| of the producer's kernel slice for that channel
``l2``        root mean square of that slice
``bn_scale``  |gamma| of each BatchNormalization the channel passes through
              (network slimming); refused where a group has none
``taylor``    first-order Taylor (Molchanov et al. 2017): the mean over samples
              of |sum over positions of activation x gradient of the loss| at
              the producer's output, on training data
``obd``       Optimal Brain Damage (LeCun et al. 1990): the saliency
              1/2 sum F_ii w_i^2 over the channel's kernel slice and bias, the
              diagonal Hessian F estimated by the empirical Fisher (the mean of
              squared per-sample gradients) on training data

Scores are compared across groups after dividing each group's scores by their
mean, so that layers of different size and scale compete fairly under a
global ranking.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgeprune.errors import BadInputError
from edgeprune.recipe_options import IMPORTANCE
from edgeprune.structured.graph import ChannelGraph
from edgeprune.structured.rounding import round_removal

if TYPE_CHECKING:
    from edgeprune.adapters.keras import KerasModel

CRITERIA = IMPORTANCE  # the recipe's choices: one list
DATA_CRITERIA = ("taylor", "obd")


# The data criteria's scores for the last few (model, samples, loss) this process
# scored. A sweep's trials each load the same baseline and cut it one-shot: the
# 256 per-sample gradients are then the same every trial, and are computed once
# per worker process. Exact: an entry is what the computation returned, keyed
# by the model's architecture and weights, the samples and the loss object
# (ka.sample_loss returns one object per task).
_MEMO: OrderedDict[tuple, dict[str, np.ndarray]] = OrderedDict()
_MEMO_SIZE = 4


class ImportanceError(BadInputError):
    """A criterion cannot score this model (no BatchNormalization, no data)."""


def _kernel_slices(layer) -> np.ndarray:
    """The producer's kernel as (weights per channel, channels)."""
    cls = layer.__class__.__name__
    weights = layer.get_weights()
    if cls in ("SeparableConv1D", "SeparableConv2D"):
        kernel = weights[1]
    elif cls == "Conv2DTranspose":
        kernel = np.moveaxis(weights[0], -2, -1)
    else:
        kernel = weights[0]
    return kernel.reshape(-1, kernel.shape[-1])


def _weight_scores(model: KerasModel, graph: ChannelGraph, criterion: str) -> dict[str, np.ndarray]:
    out = {}
    for producer in graph.atoms:
        k = _kernel_slices(model.get_layer(producer))
        out[producer] = (
            np.abs(k).mean(axis=0) if criterion == "l1" else np.sqrt((k**2).mean(axis=0))
        )
    return out


def _bn_scores(model: KerasModel, graph: ChannelGraph) -> dict[int, float]:
    scores: dict[int, float] = {}
    for name, use in graph.uses.items():
        if use.class_name != "BatchNormalization":
            continue
        layer = model.get_layer(name)
        if not layer.get_config().get("scale", True):
            continue
        gamma = layer.get_weights()[0]
        for atom, g in zip(use.output, gamma, strict=True):
            if atom >= 0:
                root = graph.root(atom)
                scores[root] = scores.get(root, 0.0) + abs(float(g))
    for group in graph.prunable_groups:
        if not any(r in scores for r in group.channels):
            raise ImportanceError(
                f"importance bn_scale needs BatchNormalization after the layers it cuts; "
                f"{', '.join(group.producers)} has none: choose l1, l2, taylor or obd"
            )
    return scores


def check_criterion(model: KerasModel, graph: ChannelGraph, criterion: str) -> None:
    """Refuse, before any training, a criterion this model cannot be scored by."""
    _require_known(criterion)
    if criterion == "bn_scale":
        _bn_scores(model, graph)


def _require_known(criterion: str) -> None:
    if criterion not in CRITERIA:
        raise ImportanceError(
            f"unknown importance '{criterion}'; choose from {', '.join(CRITERIA)}"
        )


def _per_channel(layer, arrays: list[np.ndarray]) -> np.ndarray:
    """Sum each of ``arrays`` (shaped like the layer's weights) per output channel."""
    n = layer.output_shape[-1]
    total = np.zeros(n)
    for a in arrays:
        if layer.__class__.__name__ == "Conv2DTranspose" and a.ndim == 4:
            a = np.moveaxis(a, -2, -1)
        if a.ndim >= 1 and a.shape[-1] == n:
            total += a.reshape(-1, n).sum(axis=0)
    return total


def _gradient_scores(
    model: KerasModel,
    graph: ChannelGraph,
    x: np.ndarray,
    y: np.ndarray,
    loss: Callable,
    criterion: str,
) -> dict[str, np.ndarray]:
    """Taylor or OBD scores from per-sample gradients of the producers' weights.

    Taylor: scaling channel k's kernel slice and bias by a gate m scales its
    activation a_k by m, so dL/dm = sum over positions of a_k * dL/da_k = sum
    over the channel's weights of w * dL/dw; its absolute value is averaged
    over samples. OBD: the empirical Fisher F = mean of squared per-sample
    gradients, and the saliency 1/2 sum F w^2 over the channel's weights.
    """
    from edgeprune.adapters.keras import per_sample_gradients

    layers = [model.get_layer(p) for p in graph.atoms]
    variables = [layer.trainable_weights for layer in layers]
    flat = [v for vs in variables for v in vs]
    values = [[v.numpy() for v in vs] for vs in variables]
    acc = [
        np.zeros(layer.output_shape[-1])
        if criterion == "taylor"
        else [np.zeros(w.shape) for w in ws]
        for layer, ws in zip(layers, values, strict=True)
    ]
    for grads in per_sample_gradients(model, flat, x, y, loss):  # both criteria need them
        position = 0
        for li, (layer, ws) in enumerate(zip(layers, values, strict=True)):
            gs = grads[position : position + len(ws)]
            position += len(ws)
            if criterion == "taylor":
                acc[li] += np.abs(_per_channel(layer, [w * g for w, g in zip(ws, gs, strict=True)]))
            else:
                for a, g in zip(acc[li], gs, strict=True):
                    a += np.square(g)
    out = {}
    for layer, ws, a in zip(layers, values, acc, strict=True):
        if criterion == "taylor":
            out[layer.name] = a / len(x)
        else:
            out[layer.name] = _per_channel(
                layer, [0.5 * (f / len(x)) * w**2 for f, w in zip(a, ws, strict=True)]
            )
    return out


def channel_scores(
    model: KerasModel,
    graph: ChannelGraph,
    criterion: str,
    x: np.ndarray | None = None,
    y: np.ndarray | None = None,
    loss: Callable | None = None,
    samples: int = 256,
) -> dict[int, float]:
    """Score of every channel root of ``graph`` under ``criterion``.

    ``taylor`` and ``obd`` need training samples ``x``, ``y`` and a per-sample
    ``loss(y_true, y_pred)``; at most ``samples`` of them are used.

    Raises:
        ImportanceError: unknown criterion, no data for a data criterion, or
            ``bn_scale`` on a group without BatchNormalization.
    """
    _require_known(criterion)
    if criterion == "bn_scale":
        return _bn_scores(model, graph)
    if criterion in DATA_CRITERIA:
        if x is None or y is None or loss is None or len(x) == 0:
            raise ImportanceError(f"importance {criterion} needs training data and a loss")
        x, y = np.asarray(x[:samples], np.float32), np.asarray(y[:samples])
        per_producer = _memo_gradient_scores(model, graph, x, y, loss, criterion)
    else:
        per_producer = _weight_scores(model, graph, criterion)
    scores: dict[int, float] = {}
    for producer, values in per_producer.items():
        for atom, v in zip(graph.atoms[producer], values, strict=True):
            root = graph.root(atom)
            scores[root] = scores.get(root, 0.0) + float(v)
    return scores


def _memo_gradient_scores(model, graph, x, y, loss, criterion) -> dict[str, np.ndarray]:
    """:func:`_gradient_scores`, answered from :data:`_MEMO` when this process
    scored the same model (architecture and weights) on the same samples."""
    digest = hashlib.sha256(model.to_json().encode())
    for a in (*model.get_weights(), x, y):
        a = np.ascontiguousarray(a)
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(a.tobytes())
    key = (digest.hexdigest(), criterion, loss)
    if key not in _MEMO:
        _MEMO[key] = _gradient_scores(model, graph, x, y, loss, criterion)
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    _MEMO.move_to_end(key)
    return {name: values.copy() for name, values in _MEMO[key].items()}


def select(
    graph: ChannelGraph,
    scores: dict[int, float],
    amount: float,
    ranking: str = "global",
    floor: float = 0.1,
    multiple: int = 1,
) -> set[int]:
    """The channel roots to remove: ``amount`` of all prunable channels.

    ``global`` ranks every channel of every prunable group together (scores
    divided by their group's mean) but leaves each group at least
    ``max(1, ceil(floor x width))`` channels; ``uniform`` removes the same
    fraction from each group. Each layer's kept count is then rounded to a
    ``multiple`` (:func:`rounding.round_removal`; 1: not rounded).
    """
    removed = _select(graph, scores, amount, ranking, floor)
    if multiple > 1:
        removed = round_removal(
            graph, scores, removed, multiple, floor if ranking == "global" else 0.0
        )
    return removed


def _select(
    graph: ChannelGraph, scores: dict[int, float], amount: float, ranking: str, floor: float
) -> set[int]:
    if not 0 <= amount < 1:
        raise ImportanceError(f"pruning amount {amount} must be in [0, 1)")
    groups = graph.prunable_groups
    removed: set[int] = set()
    if ranking == "uniform":
        for g in groups:
            n = min(int(round(amount * g.size)), g.size - 1)
            ranked = sorted(g.channels, key=lambda r: (scores.get(r, 0.0), r))
            removed.update(ranked[:n])
        return removed
    if ranking != "global":
        raise ImportanceError(f"unknown ranking '{ranking}'; choose global or uniform")
    candidates = []
    room = {}
    for gi, g in enumerate(groups):
        values = np.array([scores.get(r, 0.0) for r in g.channels])
        mean = float(values.mean()) or 1.0
        for r, v in zip(g.channels, values, strict=True):
            candidates.append((v / mean, gi, r))
        room[gi] = g.size - max(1, math.ceil(floor * g.size))
    total = sum(g.size for g in groups)
    target = int(round(amount * total))
    for _, gi, r in sorted(candidates):
        if len(removed) >= target:
            break
        if room[gi] > 0:
            removed.add(r)
            room[gi] -= 1
    return removed


def keras_macs(model: KerasModel) -> int:
    """Multiply-accumulates of one inference, from the layers' shapes (what
    ``edgeprune cost`` counts on the converted model for these layers)."""
    total = 0
    for layer in model.layers:
        cls = layer.__class__.__name__
        try:
            in_shape, out_shape = layer.input_shape, layer.output_shape
        except AttributeError:
            continue
        if isinstance(in_shape, list) or isinstance(out_shape, list):
            continue
        cfg = layer.get_config()
        if cls in ("Conv1D", "Conv2D", "Conv3D"):
            total += (
                math.prod(out_shape[1:-1])
                * math.prod(cfg["kernel_size"])
                * in_shape[-1]
                * out_shape[-1]
                // cfg.get("groups", 1)
            )
        elif cls in ("DepthwiseConv1D", "DepthwiseConv2D"):
            total += math.prod(out_shape[1:-1]) * math.prod(cfg["kernel_size"]) * out_shape[-1]
        elif cls in ("SeparableConv1D", "SeparableConv2D"):
            mid = in_shape[-1] * cfg["depth_multiplier"]
            total += math.prod(out_shape[1:-1]) * (
                math.prod(cfg["kernel_size"]) * mid + mid * out_shape[-1]
            )
        elif cls == "Conv2DTranspose":
            total += (
                math.prod(in_shape[1:-1])
                * math.prod(cfg["kernel_size"])
                * in_shape[-1]
                * out_shape[-1]
            )
        elif cls == "Dense":
            total += math.prod(in_shape[1:-1]) * in_shape[-1] * out_shape[-1]
    return int(total)
