"""One-shot or iterative structured pruning to a goal, with an accuracy floor.

Each round scores the channels of the current model, removes enough of them
to reach that round's share of the goal, rebuilds the narrower model and
fine-tunes it. Goals:

``width``   keep this fraction of the prunable channels (0.5: half of them)
``params``  divide the parameter count by this factor (2.0: half the parameters)
``macs``    divide the multiply-accumulates by this factor
``fit``     the widest model that ``fits(model)`` accepts: the pipeline passes
            a check of the int8 model against a target's flash, RAM and
            latency budgets, which depend on the architecture only

With ``rounds`` > 1 the goal is approached geometrically (iterative pruning:
each round removes the same share of what is left); for ``fit`` the rounds
before the last head for the width that fits the original model, and the
last round searches again on the fine-tuned model.

Every round's rebuild is verified before fine-tuning: on ``verify_x`` the
narrower model must compute what the original computes with every weight that
reads a removed channel zeroed (:func:`surgery.verify_rebuild`). When a round's
accuracy falls below ``min_accuracy`` the run stops and returns the model of
the round before, saying so.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from edgeprune import progress
from edgeprune.errors import BadInputError, VerificationError
from edgeprune.recipe_options import STRUCTURED_GOALS
from edgeprune.structured.graph import analyze
from edgeprune.structured.importance import DATA_CRITERIA, channel_scores, keras_macs, select
from edgeprune.structured.rounding import blocks_to_restore
from edgeprune.structured.surgery import (
    rebuild,
    rebuild_tolerance,
    verify_rebuild,
    width_report,
)

if TYPE_CHECKING:
    from edgeprune.adapters.keras import KerasModel

GOALS = tuple(g for g in STRUCTURED_GOALS if g != "none")  # "none": the stage is off
MAX_AMOUNT = 0.999  # the most of the prunable channels a search may remove


@dataclass(frozen=True)
class StructuredOptions:
    importance: str = "l1"
    ranking: str = "global"  # or "uniform"
    floor: float = 0.1  # each group keeps at least this fraction (global ranking)
    goal: str = "width"
    target: float = 0.5  # width: fraction kept; params/macs: reduction factor
    rounds: int = 1  # fine-tuning between rounds is the caller's fine_tune callback
    min_accuracy: float | None = None  # stop when a round falls below it
    samples: int = 256  # training samples the data criteria use
    channel_multiple: int = 1  # kept channel counts rounded to this (1: not rounded)

    def validate(self) -> None:
        if self.goal not in GOALS:
            raise BadInputError(
                f"structured goal '{self.goal}' is unknown; choose from {', '.join(GOALS)}"
            )
        if self.goal == "width" and not 0 < self.target <= 1:
            raise BadInputError(
                f"structured width {self.target} must be in (0, 1]: the fraction of channels kept"
            )
        if self.goal in ("params", "macs") and self.target < 1:
            raise BadInputError(
                f"structured {self.goal} reduction {self.target} must be >= 1 "
                f"(2.0 halves the {self.goal})"
            )
        if self.rounds < 1:
            raise BadInputError(f"structured rounds = {self.rounds} must be at least 1")
        if self.channel_multiple < 1:
            raise BadInputError(
                f"structured channel_multiple = {self.channel_multiple} must be at least 1 "
                f"(1: channel counts not rounded)"
            )


@dataclass(frozen=True)
class RoundResult:
    round: int
    removed_channels: int
    params: int
    macs: int
    metric: float | None  # accuracy (classification) or -MSE after fine-tuning
    widths: tuple[tuple[str, int, int], ...]  # producer, width before any round, after
    width: float = 1.0  # fraction of the original prunable channels kept
    rebuild_max_abs_diff: float | None = None  # vs the masked original, before fine-tuning
    verify_samples: int = 0


@dataclass(frozen=True)
class StructuredResult:
    model: KerasModel
    params_before: int
    macs_before: int
    rounds: tuple[RoundResult, ...]
    kept_whole: tuple[tuple[str, str], ...]  # producers left whole, and why
    stopped: str = ""  # why the schedule stopped before its goal, if it did
    notes: tuple[str, ...] = field(default_factory=tuple)
    fit_trials: tuple[tuple[float, bool], ...] = ()  # (width, fits) of each model checked

    @property
    def params(self) -> int:
        return self.rounds[-1].params if self.rounds else self.params_before

    @property
    def macs(self) -> int:
        return self.rounds[-1].macs if self.rounds else self.macs_before


def _off_multiple(model, graph, pruned, multiple: int) -> list[str]:
    """A note naming the cut-able producers of ``pruned`` whose width is not a
    multiple of ``multiple``, and why (see :mod:`rounding`)."""
    off = []
    for group in graph.prunable_groups:
        for name in group.producers:
            before = len(graph.atoms[name])
            cfg = pruned.get_layer(name).get_config()
            after = int(cfg.get("units", cfg.get("filters", before)))
            if after % multiple == 0:
                continue
            why = (
                f"narrower than {multiple} to begin with"
                if before < multiple
                else "left at its full width"
                if after == before
                else "the layer floor leaves no multiple"
            )
            off.append(f"{name} {after} ({why})")
    if not off:
        return []
    return [f"channel counts not multiples of {multiple}: " + "; ".join(off)]


def _measure(goal: str, model: KerasModel) -> float:
    return model.count_params() if goal == "params" else keras_macs(model)


def _smallest_removal(
    model: KerasModel,
    graph,
    scores,
    opts: StructuredOptions,
    accept: Callable[[object, set[int]], bool],
    steps: int = 14,
) -> tuple[set[int], bool]:
    """The smallest removal set (by bisection on the fraction removed) whose
    rebuild ``accept(rebuilt, removed)`` takes, and whether one was found; without one, the
    largest removal the floor allows. ``accept`` must be monotone: what a
    removal passes, every larger removal passes (params, MACs, flash, arena
    and latency all fall with the channels removed)."""
    hi_set = select(graph, scores, MAX_AMOUNT, opts.ranking, opts.floor, opts.channel_multiple)
    if not accept(rebuild(model, graph, hi_set), hi_set):
        return hi_set, False
    lo, hi, best = 0.0, MAX_AMOUNT, hi_set
    seen: dict[frozenset, bool] = {frozenset(hi_set): True}
    for _ in range(steps):
        mid = (lo + hi) / 2
        removed = select(graph, scores, mid, opts.ranking, opts.floor, opts.channel_multiple)
        key = frozenset(removed)
        if key not in seen:
            seen[key] = accept(rebuild(model, graph, removed), removed)
        if seen[key]:
            best, hi = removed, mid
        else:
            lo = mid
    return best, True


def _fill(
    model: KerasModel,
    graph,
    scores,
    removed: set[int],
    multiple: int,
    accept: Callable[[object, set[int]], bool],
) -> set[int]:
    """``removed`` with blocks of ``multiple`` channels put back, best first, while
    ``accept`` still takes the rebuild. A block that fails is not tried again:
    putting others back only raises the figure it failed on."""
    failed: set[int] = set()
    while True:
        for key, candidate in blocks_to_restore(graph, scores, removed, multiple):
            if key in failed:
                continue
            if accept(rebuild(model, graph, candidate), candidate):
                removed = candidate
                break
            failed.add(key)
        else:
            return removed


def prune_structured(
    model: KerasModel,
    opts: StructuredOptions,
    *,
    x=None,
    y=None,
    loss=None,
    fine_tune: Callable | None = None,
    evaluate: Callable | None = None,
    fits: Callable | None = None,
    verify_x: np.ndarray | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> StructuredResult:
    """Prune ``model`` to ``opts``'s goal.

    ``x``, ``y`` and a per-sample ``loss`` feed the data criteria (Taylor,
    OBD). ``fine_tune(model)`` trains a rebuilt model in place (compile it
    first); ``evaluate(model)`` returns the metric the floor is checked on;
    ``fits(model)`` says whether a candidate passes the target (goal ``fit``);
    ``verify_x`` are the inputs each rebuild is verified on.

    Raises:
        BadInputError: no channel can be cut, or the goal lacks what it needs.
        VerificationError: a rebuilt model does not compute what the original
            computes without the removed channels.
    """
    opts.validate()
    if opts.importance in DATA_CRITERIA and (x is None or loss is None):
        raise BadInputError(f"importance {opts.importance} needs training data")
    if opts.goal == "fit" and fits is None:
        raise BadInputError(
            "structured goal fit needs a target device whose budgets the "
            "model must pass; name one, or choose goal width, params or macs"
        )
    graph0 = analyze(model)
    kept_whole = tuple((p, g.reason) for g in graph0.groups if not g.prunable for p in g.producers)
    total0 = sum(g.size for g in graph0.prunable_groups)
    if total0 == 0:
        raise BadInputError(
            f"{model.name} has no channels that can be cut: "
            + "; ".join(f"{p}: {why}" for p, why in kept_whole)
        )
    params0, macs0 = model.count_params(), keras_macs(model)
    trials: list[tuple[float, bool]] = []

    def fits_logged(candidate, width: float, bar: progress.Task | None = None) -> bool:
        ok = bool(fits(candidate))
        trials.append((width, ok))
        verdict = f"width {width:.3f} {'fits' if ok else 'does not fit'}"
        log(f"structured fit: {verdict}")
        if bar is not None:
            bar.advance(status=verdict)
        return ok

    if opts.goal == "fit" and fits_logged(model, 1.0):
        return StructuredResult(
            model,
            params0,
            macs0,
            (),
            kept_whole,
            "",
            ("the unpruned model already fits the device: nothing removed",),
            tuple(trials),
        )
    start = {"width": 1.0, "params": params0, "macs": macs0, "fit": 1.0}[opts.goal]
    rounds, current, stopped, notes = [], model, "", []
    fit_width = None
    with progress.task("structured rounds", opts.rounds, "round", plain=False) as rounds_bar:
        for r in range(1, opts.rounds + 1):
            share = r / opts.rounds
            graph = graph0 if current is model else analyze(current)
            scores = channel_scores(current, graph, opts.importance, x, y, loss, opts.samples)
            total = sum(g.size for g in graph.prunable_groups)

            def width_of(removed: set[int], total=total) -> float:
                return (total - len(removed)) / total0

            def by_width(goal_width: float, graph=graph, scores=scores, total=total) -> set[int]:
                # keep goal_width of the original: of the current model, proportionally
                return select(
                    graph,
                    scores,
                    max(0.0, 1 - goal_width * total0 / total),
                    opts.ranking,
                    opts.floor,
                    opts.channel_multiple,
                )

            if opts.goal == "width":
                removed = by_width(opts.target**share)
            elif opts.goal in ("params", "macs"):
                goal_value = start / opts.target**share
                removed, reached = _smallest_removal(
                    current,
                    graph,
                    scores,
                    opts,
                    lambda m, _, g=goal_value: _measure(opts.goal, m) <= g,
                )
                if not reached:
                    narrowest = _measure(opts.goal, rebuild(current, graph, removed))
                    notes.append(
                        f"round {r}: {opts.goal} goal {goal_value:,.0f} is out of reach: the "
                        f"narrowest model the layer floor ({opts.floor})"
                        + (
                            f" and the channel multiple ({opts.channel_multiple})"
                            if opts.channel_multiple > 1
                            else ""
                        )
                        + f" allow has {narrowest:,.0f}; kept that one"
                    )
                elif opts.channel_multiple > 1:  # rounded steps are coarse: use the room left
                    removed = _fill(
                        current,
                        graph,
                        scores,
                        removed,
                        opts.channel_multiple,
                        lambda m, _, g=goal_value: _measure(opts.goal, m) <= g,
                    )
            elif r < opts.rounds and fit_width is not None:
                removed = by_width(fit_width**share)
            else:  # fit: search on this model (round 1, and the last round)
                with progress.task("structured fit", unit="candidate", plain=False) as bar:
                    removed, ok = _smallest_removal(
                        current,
                        graph,
                        scores,
                        opts,
                        lambda m, cut, width_of=width_of, bar=bar: fits_logged(
                            m, width_of(cut), bar
                        ),
                        steps=8,
                    )
                if not ok:
                    notes.append(
                        f"even the narrowest model the per-layer floor ({opts.floor}) "
                        f"allows does not fit the device; kept that one"
                    )
                if fit_width is None:
                    fit_width = width_of(removed)
                if r < opts.rounds:
                    removed = by_width(fit_width**share)
            candidate = rebuild(current, graph, removed)
            diff = None
            if verify_x is not None:
                diff, scale = verify_rebuild(current, graph, removed, candidate, verify_x)
                if not diff <= rebuild_tolerance(scale):
                    raise VerificationError(
                        f"structured round {r}: the rebuilt model differs from the original with "
                        f"the removed channels zeroed by {diff:.3g} (outputs up to {scale:.3g}); "
                        f"report this model's layers as a bug, or exclude them from pruning"
                    )
            if fine_tune is not None:
                fine_tune(candidate)
            metric = evaluate(candidate) if evaluate is not None else None
            widths = tuple(width_report(model, candidate))
            result = RoundResult(
                r,
                len(removed),
                candidate.count_params(),
                keras_macs(candidate),
                metric,
                widths,
                width_of(removed),
                diff,
                0 if verify_x is None else len(verify_x),
            )
            log(
                f"structured round {r}/{opts.rounds}: removed {len(removed)} channels (width "
                f"{result.width:.3f}), {result.params:,} params, {result.macs:,} MACs"
                + (f", rebuild verified (max |d| {diff:.2g})" if diff is not None else "")
                + (f", metric {metric:.4f}" if metric is not None else "")
            )
            rounds_bar.advance(
                status=f"width {result.width:.3f}"
                + (f", metric {metric:.4f}" if metric is not None else "")
            )
            if opts.min_accuracy is not None and metric is not None and metric < opts.min_accuracy:
                stopped = (
                    f"round {r} reached {metric:.4f}, below the floor {opts.min_accuracy}; "
                    f"kept the model of round {r - 1}"
                    if r > 1
                    else f"round 1 reached {metric:.4f}, below the floor {opts.min_accuracy}; "
                    f"kept the unpruned model"
                )
                break
            rounds.append(result)
            current = candidate
    if not rounds:
        notes.append("no round met the accuracy floor: the model is unchanged")
    elif opts.goal == "width" and not stopped:
        achieved_width = rounds[-1].width
        if not math.isclose(achieved_width, opts.target, abs_tol=0.5 / total0 + 1e-9):
            why = f"the per-group floor ({opts.floor})" + (
                f" and rounding to multiples of {opts.channel_multiple}"
                if opts.channel_multiple > 1
                else ""
            )
            notes.append(
                f"width {achieved_width:.3f} of the prunable channels, not {opts.target}: {why}"
            )
    if rounds and opts.channel_multiple > 1:
        notes.extend(_off_multiple(model, graph0, current, opts.channel_multiple))
    return StructuredResult(
        current, params0, macs0, tuple(rounds), kept_whole, stopped, tuple(notes), tuple(trials)
    )
