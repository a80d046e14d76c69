"""One-shot or iterative structured pruning to a goal, with an accuracy floor.

Each round scores the channels of the current model, removes enough of them
to reach that round's share of the goal, rebuilds the narrower model and
fine-tunes it. Goals:

``width``   keep this fraction of the prunable channels (0.5: half of them)
``params``  divide the parameter count by this factor (2.0: half the parameters)
``macs``    divide the multiply-accumulates by this factor

With ``rounds`` > 1 the goal is approached geometrically (iterative pruning:
each round removes the same share of what is left). When a round's
accuracy falls below ``min_accuracy`` the run stops and returns the model of
the round before, saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edgeprune.errors import BadInputError
from edgeprune.structured.graph import analyze
from edgeprune.structured.importance import DATA_CRITERIA, channel_scores, keras_macs, select
from edgeprune.structured.surgery import rebuild, width_report

GOALS = ("width", "params", "macs")


@dataclass(frozen=True)
class StructuredOptions:
    importance: str = "l1"
    ranking: str = "global"  # or "uniform"
    floor: float = 0.1  # each group keeps at least this fraction (global ranking)
    goal: str = "width"
    target: float = 0.5  # width: fraction kept; params/macs: reduction factor
    rounds: int = 1
    fine_tune_epochs: int = 5
    min_accuracy: float | None = None  # stop when a round falls below it
    samples: int = 256  # training samples the data criteria use

    def validate(self) -> None:
        if self.goal not in GOALS:
            raise BadInputError(f"structured goal '{self.goal}' is unknown; choose from "
                                f"{', '.join(GOALS)}")
        if self.goal == "width" and not 0 < self.target <= 1:
            raise BadInputError(f"structured width {self.target} must be in (0, 1]: the "
                                f"fraction of channels kept")
        if self.goal != "width" and self.target < 1:
            raise BadInputError(f"structured {self.goal} reduction {self.target} must be >= 1 "
                                f"(2.0 halves the {self.goal})")
        if self.rounds < 1:
            raise BadInputError(f"structured rounds = {self.rounds} must be at least 1")


@dataclass(frozen=True)
class RoundResult:
    round: int
    removed_channels: int
    params: int
    macs: int
    metric: float | None  # accuracy (classification) or -MSE after fine-tuning
    widths: tuple[tuple[str, int, int], ...]  # producer, width before any round, after


@dataclass(frozen=True)
class StructuredResult:
    model: object
    params_before: int
    macs_before: int
    rounds: tuple[RoundResult, ...]
    kept_whole: tuple[tuple[str, str], ...]  # producers left whole, and why
    stopped: str = ""  # why the schedule stopped before its goal, if it did
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def params(self) -> int:
        return self.rounds[-1].params if self.rounds else self.params_before

    @property
    def macs(self) -> int:
        return self.rounds[-1].macs if self.rounds else self.macs_before


def _measure(goal: str, model) -> float:
    return model.count_params() if goal == "params" else keras_macs(model)


def _amount_for(model, graph, scores, opts: StructuredOptions, goal_value: float) -> set[int]:
    """The removal set that brings params or MACs to ``goal_value`` on this round
    (bisection on the fraction removed: both fall monotonically with it)."""
    lo, hi = 0.0, 0.999
    best = select(graph, scores, hi, opts.ranking, opts.floor)
    for _ in range(14):
        mid = (lo + hi) / 2
        removed = select(graph, scores, mid, opts.ranking, opts.floor)
        if _measure(opts.goal, rebuild(model, graph, removed)) <= goal_value:
            best, hi = removed, mid
        else:
            lo = mid
    return best


def prune_structured(model, opts: StructuredOptions, *, x=None, y=None, loss=None,
                     fine_tune: Callable | None = None, evaluate: Callable | None = None,
                     log: Callable[[str], None] = lambda _: None) -> StructuredResult:
    """Prune ``model`` to ``opts``'s goal.

    ``x``, ``y`` and a per-sample ``loss`` feed the data criteria (Taylor,
    OBD). ``fine_tune(model)`` trains a rebuilt model in place (compile it
    first); ``evaluate(model)`` returns the metric the floor is checked on.
    """
    opts.validate()
    if opts.importance in DATA_CRITERIA and (x is None or loss is None):
        raise BadInputError(f"importance {opts.importance} needs training data")
    graph0 = analyze(model)
    kept_whole = tuple((p, g.reason) for g in graph0.groups if not g.prunable
                       for p in g.producers)
    total0 = sum(g.size for g in graph0.prunable_groups)
    if total0 == 0:
        raise BadInputError(f"{model.name} has no channels that can be cut: "
                            + "; ".join(f"{p}: {why}" for p, why in kept_whole))
    params0, macs0 = model.count_params(), keras_macs(model)
    start = {"width": 1.0, "params": params0, "macs": macs0}[opts.goal]
    rounds, current, stopped = [], model, ""
    for r in range(1, opts.rounds + 1):
        share = r / opts.rounds
        if opts.goal == "width":
            goal_value = opts.target ** share  # fraction of the original kept
        else:
            goal_value = start / opts.target ** share
        graph = analyze(current)
        scores = channel_scores(current, graph, opts.importance, x, y, loss, opts.samples)
        if opts.goal == "width":
            # this round keeps goal_value of the original: of the current, proportionally
            total = sum(g.size for g in graph.prunable_groups)
            removed = select(graph, scores, max(0.0, 1 - goal_value * total0 / total),
                             opts.ranking, opts.floor)
        else:
            removed = _amount_for(current, graph, scores, opts, goal_value)
        candidate = rebuild(current, graph, removed)
        if fine_tune is not None:
            fine_tune(candidate)
        metric = evaluate(candidate) if evaluate is not None else None
        widths = tuple(width_report(model, candidate))
        result = RoundResult(r, len(removed), candidate.count_params(), keras_macs(candidate),
                             metric, widths)
        log(f"structured round {r}/{opts.rounds}: removed {len(removed)} channels, "
            f"{result.params:,} params, {result.macs:,} MACs"
            + (f", metric {metric:.4f}" if metric is not None else ""))
        if opts.min_accuracy is not None and metric is not None and metric < opts.min_accuracy:
            stopped = (f"round {r} reached {metric:.4f}, below the floor {opts.min_accuracy}; "
                       f"kept the model of round {r - 1}" if r > 1 else
                       f"round 1 reached {metric:.4f}, below the floor {opts.min_accuracy}; "
                       f"kept the unpruned model")
            break
        rounds.append(result)
        current = candidate
    notes = ()
    if not rounds:
        notes = ("no round met the accuracy floor: the model is unchanged",)
    elif opts.goal == "width" and not stopped:
        achieved_width = sum(g.size for g in analyze(current).prunable_groups) / total0
        if not math.isclose(achieved_width, opts.target, abs_tol=0.5 / total0 + 1e-9):
            notes = (f"width {achieved_width:.3f} of the prunable channels, not {opts.target}: "
                     f"the per-group floor ({opts.floor}) kept the rest",)
    return StructuredResult(current, params0, macs0, tuple(rounds), kept_whole, stopped, notes)


def sample_loss(task: str, output_units: int, probabilities: bool) -> Callable:
    """A per-sample loss for the data criteria, matching the training loss."""
    import tensorflow as tf

    def loss(y_true, y_pred):
        if task == "regression":
            diff = tf.reshape(tf.cast(y_true, y_pred.dtype) - y_pred, [tf.shape(y_pred)[0], -1])
            return tf.reduce_mean(tf.square(diff), axis=1)
        if output_units == 1:
            return tf.keras.losses.binary_crossentropy(
                tf.cast(tf.reshape(y_true, [-1, 1]), y_pred.dtype), y_pred,
                from_logits=not probabilities)
        return tf.keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=not probabilities)

    return loss


def evaluate_accuracy(x: np.ndarray, y: np.ndarray) -> Callable:
    """``evaluate`` for classification: argmax accuracy on ``x``, ``y``."""
    from edgeprune.keras_adapter import predict

    def run(model) -> float:
        out = predict(model, x)
        pred = out.argmax(1) if out.shape[-1] > 1 else (out[:, 0] > 0.5).astype(int)
        return float(np.mean(pred == y))

    return run
