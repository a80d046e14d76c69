"""The tfmot adapter: pruning (which layers, wrapping, fine-tuning, strip, verification).

Every ``tensorflow_model_optimization`` import lives here and in
:mod:`edgeprune.adapters.tfmot_qat` (weight clustering and the collaborative
quantization-aware training schemes). tfmot's quirks that they hide:

* It wraps layers it cannot prune without saying so: ``DepthwiseConv2D`` is
  in its registry with no prunable weights, so its kernel stays dense.
* m-by-n and block sparsity apply only to some kernels (see
  :func:`plan_layers`); we skip the others and name them, instead of letting
  tfmot raise or pad silently.
* ``strip_pruning`` must run before conversion, or the converter emits a much
  larger model full of variable ops.
* Plain QAT (``quantize_apply`` with its default scheme) trains every weight
  freely and destroys pruned zeros (0.90 -> 0.31 in the design notes) and
  clusters; only the ``experimental.combine`` schemes keep them.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np
import tensorflow_model_optimization as tfmot

from edgeprune.adapters import keras as ka
from edgeprune.errors import RecipeError, VerificationError
from edgeprune.recipe_options import PruneOptions
from edgeprune.schedule import SchedulePlan

log = logging.getLogger(__name__)

keras = ka.keras
KerasModel = ka.KerasModel
# The public API does not export the registry that says which layers tfmot
# can prune and which weights it prunes in each; we need both to plan.
from tensorflow_model_optimization.python.core.sparsity.keras.prune_registry import (  # noqa: E402
    PruneRegistry as _registry,
)


@dataclass(frozen=True)
class LayerPlan:
    """Whether one weighted layer is pruned, and why not if it is not."""

    name: str
    type: str
    kernel_shape: tuple[int, ...]
    pruned: bool
    reason: str  # empty when pruned
    weight: str = "kernel"  # the attribute measured: what tfmot prunes in this layer


@dataclass(frozen=True)
class LayerSparsity:
    name: str
    type: str
    weights: int
    zeros: int
    requested: float
    achieved: float
    pruned: bool
    reason: str
    ok: bool


@dataclass(frozen=True)
class StripCheck:
    """Stripped vs pruned outputs on the test set; equal means bit-identical."""

    samples: int
    max_abs_diff: float
    equal: bool


def layer_kernel(layer):
    """The weight tfmot prunes in ``layer`` (its registry's first weight name),
    else the layer's main kernel (for layers tfmot leaves dense)."""
    names = []
    if (
        _registry.supports(layer)
        and not _registry._is_rnn_layer(layer)
        and not _registry._is_mha_layer(layer)
    ):
        names = list(_registry._weight_names(layer))
    for attr in names + ["kernel", "depthwise_kernel", "pointwise_kernel", "embeddings"]:
        w = getattr(layer, attr, None)
        if w is not None:
            return attr, w
    cell = _recurrent_cell(layer)
    if cell is not None and getattr(cell, "kernel", None) is not None:
        return "kernel", cell.kernel  # an RNN keeps its kernel on the cell
    return None, None


def _recurrent_cell(layer):
    """The cell of a recurrent layer (also inside Bidirectional), else None."""
    inner = getattr(layer, "forward_layer", layer)
    return getattr(inner, "cell", None)


def _matches(layer, names) -> bool:
    return layer.name in names or type(layer).__name__ in names


def plan_layers(model: KerasModel, opts: PruneOptions) -> list[LayerPlan]:
    """Decide, for every layer with a kernel, whether it is pruned.

    Raises:
        RecipeError: ``include``/``exclude`` name neither a layer nor a layer type.
    """
    known = {layer.name for layer in model.layers} | {
        type(layer).__name__ for layer in model.layers
    }
    for key, names in (("prune.include", opts.include), ("prune.exclude", opts.exclude)):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise RecipeError(
                f"{key} names {', '.join(unknown)}, which is neither a layer "
                f"name nor a layer type of this model; the model has "
                f"{', '.join(sorted(known))}"
            )
    plans, notes = [], []
    for layer in model.layers:
        attr, w = layer_kernel(layer)
        if w is None:
            continue
        shape = tuple(int(d) for d in w.shape)
        kind = type(layer).__name__
        reason = ""
        if kind.startswith("SeparableConv"):
            notes.append(
                f"{layer.name}: tfmot prunes the pointwise kernel of {kind}; its "
                f"depthwise kernel stays dense"
            )
        if _matches(layer, opts.exclude):
            reason = "excluded by prune.exclude"
        elif opts.include and not _matches(layer, opts.include):
            reason = "not in prune.include"
        elif not _registry.supports(layer):
            reason = f"tfmot cannot prune {kind} layers"
        elif _recurrent_cell(layer) is not None:
            # tfmot wraps RNN cells, but strip, conversion of the unrolled layer and
            # the saving on the device are not verified here: left dense, and said so.
            reason = f"edgeprune leaves recurrent layers ({kind}) dense"
        elif not _registry._weight_names(layer) and not _registry._is_rnn_layer(layer):
            reason = f"tfmot does not prune the {attr} of {kind} layers"
        elif opts.pattern == "m_by_n":
            m, n = opts.m_by_n
            if kind not in ("Conv2D", "Dense"):
                reason = "m_by_n applies to Conv2D and Dense kernels only"
            elif shape[-2] % n:
                reason = (
                    f"m_by_n {m}:{n} needs input channels in multiples of {n}; "
                    f"this kernel has {shape[-2]}"
                )
        elif opts.pattern == "block" and len(shape) != 2:
            reason = "block sparsity needs a 2-D kernel (Dense)"
        elif opts.pattern == "block" and (
            shape[0] % opts.block_size[0] or shape[1] % opts.block_size[1]
        ):
            bh, bw = opts.block_size
            reason = (
                f"kernel {shape[0]}x{shape[1]} does not divide into {bh}x{bw} blocks; "
                f"partial blocks would miss the requested sparsity"
            )
        plans.append(LayerPlan(layer.name, kind, shape, not reason, reason, attr))
    for note in notes:
        log.info("prune: %s", note)
    if requested_sparsity(opts) > 0 and not any(p.pruned for p in plans):
        why = "; ".join(f"{p.name}: {p.reason}" for p in plans) or "the model has no kernels"
        raise RecipeError(
            f"no layer would be pruned ({why}); change prune.include, "
            f"prune.exclude or prune.pattern"
        )
    return plans


def _schedule(plan: SchedulePlan):
    if plan.kind == "constant":
        return tfmot.sparsity.keras.ConstantSparsity(
            plan.final_sparsity,
            begin_step=plan.begin_step,
            end_step=plan.end_step,
            frequency=plan.frequency,
        )
    # m_by_n ignores the schedule, but tfmot still wants one.
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=plan.initial_sparsity,
        final_sparsity=max(plan.final_sparsity, 1e-9) if plan.kind != "m_by_n" else 0.5,
        begin_step=plan.begin_step,
        end_step=max(plan.end_step, plan.begin_step + 1),
        power=plan.power,
        frequency=plan.frequency,
    )


def wrap(
    model: KerasModel, layer_plans: list[LayerPlan], plan: SchedulePlan, opts: PruneOptions
) -> KerasModel:
    """A copy of ``model`` with the planned layers wrapped by ``prune_low_magnitude``.

    ``model`` itself is not modified and shares no layers with the result.
    """
    params = {"pruning_schedule": _schedule(plan)}
    if opts.pattern == "m_by_n":
        params["sparsity_m_by_n"] = tuple(opts.m_by_n)
    elif opts.pattern == "block":
        params["block_size"] = tuple(opts.block_size)
        params["block_pooling_type"] = opts.block_pooling
    chosen = {p.name for p in layer_plans if p.pruned}

    # One clone, not a copy then a wrapping clone: every layer is made afresh from
    # its config (wrapped when chosen), then given the original's weights.
    def clone_fn(layer):
        fresh = layer.__class__.from_config(layer.get_config())
        if layer.name in chosen:
            return tfmot.sparsity.keras.prune_low_magnitude(fresh, **params)
        return fresh

    wrapped = keras.models.clone_model(model, clone_function=clone_fn)
    copies = {}
    for layer in wrapped.layers:
        if type(layer).__name__ == "PruneLowMagnitude":
            layer = layer.layer
        copies[layer.name] = layer
    for layer in model.layers:
        copies[layer.name].set_weights(layer.get_weights())
    return wrapped


def fine_tune(
    pruned: KerasModel,
    x: np.ndarray,
    y: np.ndarray,
    *,
    task: str,
    probabilities: bool,
    opts: PruneOptions,
    seed: int,
    validation=None,
) -> dict:
    """Train the wrapped model with the pruning callback; returns last-epoch metrics."""
    ka.compile_for(pruned, task, opts.learning_rate, probabilities)
    return ka.fit(
        pruned,
        x,
        y,
        epochs=opts.epochs,
        batch_size=opts.batch_size,
        seed=seed,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
        validation=validation,
        description="prune fine-tuning",
    )


def strip(pruned: KerasModel) -> KerasModel:
    """Remove the pruning wrappers; the kernels keep their zeros."""
    return tfmot.sparsity.keras.strip_pruning(pruned)


def load_stripped(path: str, unsafe_load: bool = False) -> KerasModel:
    """Load a model saved with its pruning wrappers and strip them.

    The converter would accept the wrapped model but emit a much larger file
    full of variable ops, so a wrapped model is always stripped first.
    """
    wrapped, _ = ka.load_user_model(
        path, scope=tfmot.sparsity.keras.prune_scope, unsafe_load=unsafe_load
    )
    stripped = strip(wrapped)
    ka.check_model(stripped, path)
    return stripped


def prunes_nothing(opts: PruneOptions) -> bool:
    """Whether the schedule zeroes no weight at all (unstructured, from 0 to 0)."""
    return opts.pattern == "unstructured" and opts.final_sparsity == 0 == opts.initial_sparsity


def requested_sparsity(opts: PruneOptions) -> float:
    if opts.pattern == "m_by_n":
        m, n = opts.m_by_n
        return m / n
    return opts.final_sparsity


def measure_sparsity(
    stripped: KerasModel, layer_plans: list[LayerPlan], opts: PruneOptions
) -> list[LayerSparsity]:
    """Achieved sparsity of every weighted layer against what was requested.

    A pruned layer is ``ok`` when it reached the requested sparsity within one
    pruning unit (one weight, or one block for block sparsity); tfmot rounds
    the count of weights to keep.
    """
    by_name = {layer.name: layer for layer in stripped.layers}
    out = []
    for p in layer_plans:
        w = np.asarray(getattr(by_name[p.name], p.weight))
        zeros = int(np.count_nonzero(w == 0))
        achieved = zeros / w.size
        requested = requested_sparsity(opts) if p.pruned else 0.0
        unit = int(np.prod(opts.block_size)) if opts.pattern == "block" else 1
        ok = (not p.pruned) or achieved + (unit + 0.5) / w.size >= requested
        out.append(
            LayerSparsity(
                p.name,
                p.type,
                int(w.size),
                zeros,
                requested,
                achieved,
                p.pruned,
                p.reason,
                bool(ok),
            )
        )
    return out


def check_sparsity(layers: list[LayerSparsity]) -> None:
    bad = [s for s in layers if not s.ok]
    if bad:
        s = bad[0]
        raise VerificationError(
            f"layer {s.name} reached sparsity {s.achieved:.3f}, below the requested "
            f"{s.requested:.3f}; raise prune.epochs or check the schedule"
        )


def verify_strip(pruned: KerasModel, stripped: KerasModel, x: np.ndarray) -> StripCheck:
    """Predict with the wrapped and the stripped model; they must agree exactly.

    A model that was never wrapped (``pruned is stripped``) is predicted once:
    only the finiteness check applies.

    Raises:
        VerificationError: the outputs differ (strip changed the model), or
            are not finite (fine-tuning diverged).
    """
    a = ka.predict(pruned, x)
    b = a if stripped is pruned else ka.predict(stripped, x)
    if not np.all(np.isfinite(a)):
        raise VerificationError(
            "fine-tuning diverged: the pruned model outputs NaN or "
            "infinity; lower prune.learning_rate or check the data"
        )
    diff = float(np.max(np.abs(a - b))) if a.size else 0.0
    check = StripCheck(len(x), diff, bool(np.array_equal(a, b)))
    if not check.equal:
        raise VerificationError(
            f"stripping the pruning wrappers changed the outputs (max "
            f"difference {diff:.3g} on {len(x)} test samples)"
        )
    return check


def overall_sparsity(layers: list[LayerSparsity]) -> float:
    total = sum(s.weights for s in layers)
    return sum(s.zeros for s in layers) / total if total else 0.0


def to_dicts(items) -> list[dict]:
    return [asdict(i) for i in items]
