"""The structured stage's entries of ``report.json``: the goal, each round, the
fit candidates and the channel multiple the kept widths were rounded to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from edgeprune.report._entry import _Entry, _optional


@dataclass(frozen=True)
class RoundEntry(_Entry):
    round: int
    removed_channels: int
    width: float
    params: int
    macs: int
    metric: float | None  # accuracy, or MSE for regression
    rebuild_max_abs_diff: float | None
    verify_samples: int
    widths: dict  # layer -> [channels before, after]


@dataclass(frozen=True)
class FitRule(_Entry):
    figure: float | None
    budget: float | None
    unit: str
    ok: bool
    basis: str | None = _optional()  # latency: "measured" or "estimate"


@dataclass(frozen=True)
class FitCandidate(_Entry):
    """One width the goal fit tried, and how its int8 model did against the device."""

    _types: ClassVar[dict[str, Any]] = {"rules": (dict, FitRule)}
    width: float
    params: int
    ok: bool
    rules: dict  # rule name -> FitRule


@dataclass(frozen=True)
class FitEntry(_Entry):
    _types: ClassVar[dict[str, Any]] = {"candidates": (tuple, FitCandidate)}
    target: str
    quantize_mode: str
    candidates: tuple[FitCandidate, ...]


@dataclass(frozen=True)
class StructuredEntry(_Entry):
    """Whole channels removed: the goal, the figures before and after, each round,
    and the multiple the kept channel counts were rounded to."""

    _types: ClassVar[dict[str, Any]] = {
        "rounds": (tuple, RoundEntry),
        "fit": FitEntry,
        "notes": tuple,
    }
    goal: str
    width: float | None = _optional(kw_only=True)  # goal "width"
    reduction: float | None = _optional(kw_only=True)  # goals "params" and "macs"
    importance: str
    ranking: str
    floor: float
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int
    params_reduction: float
    macs_reduction: float
    rounds: tuple[RoundEntry, ...]
    metric_split: str
    metric_name: str
    kept_whole: dict  # layer -> why it kept every channel
    stopped: str
    notes: tuple[str, ...]
    fit: FitEntry | None
    seconds: float
    # kept channel counts were rounded to this multiple (1: not rounded), chosen by
    # channel_multiple_source: "recipe (...)", "<target> profile (...)", "<kernels>
    # default (<target>)" or "no target"; absent in reports written before rounding
    channel_multiple: int | None = _optional()
    channel_multiple_source: str | None = _optional()
