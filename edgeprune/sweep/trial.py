"""One trial of a sweep: one pipeline run on the sweep's baseline, and what it measured.

A trial is :func:`edgeprune.pipeline.run` with the trial's recipe, on the
baseline the sweep trained (or took) once, into ``<sweep>/trials/NNNN/``: the
folder holds what ``run --target`` writes. A trial that misses a device budget
(:class:`~edgeprune.errors.BudgetError`) or the quantization budget
(:class:`~edgeprune.errors.QualityError`) is a measured trial: complete, and
infeasible with the rules it failed. Any other error fails the trial: its
folder is removed and :class:`TrialFailed` carries the one-line reason.
Nothing here imports optuna.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import shutil
import time
from dataclasses import dataclass, field

from edgeprune.errors import BudgetError, EdgepruneError, QualityError, clip

log = logging.getLogger(__name__)

#: Every rule a trial's constraints report, in a fixed order (optuna wants one length).
#: ``storage`` is a Linux target's flash rule (the model file on its storage).
CONSTRAINT_RULES = ("flash", "storage", "ram", "arena", "latency", "quantization")
# Rules give their figures in their own unit; the values are in bytes and ms.
_SCALE = {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


class TrialFailed(Exception):
    """A trial ended in an error (not a missed budget): ``str()`` is its one line."""


@dataclass(frozen=True)
class SweepBaseline:
    """The model every trial starts from, prepared once per sweep.

    ``keras_path`` is ``<sweep>/baseline/baseline.keras``; ``data`` what the
    trials pass as ``data`` (the user's argument, or the built-in's data set);
    ``tflite`` its float32 ``.tflite`` (converted once, preflighted on the target).
    """

    keras_path: str
    data: str
    model_name: str
    model_sha256: str
    data_sha256: str
    task: str
    tflite: bytes = field(repr=False)


@dataclass(frozen=True)
class TrialOutcome:
    """What one trial measured. ``values`` holds every figure (None: not measured);
    ``constraints`` one number per :data:`CONSTRAINT_RULES` (> 0: violated)."""

    values: dict
    feasible: bool
    failed_rules: list
    constraints: list
    seconds: float
    fine_tune_seconds: float
    budgets: dict  # rule name -> its budget, for the rules that have one


def run_trial(base: SweepBaseline, recipe, target, folder: str) -> TrialOutcome:
    """Run the pipeline for one trial into ``folder`` and measure it.

    Side effects: writes ``folder`` (removed again when the trial fails).

    Raises:
        TrialFailed: the run ended in an error other than a missed budget.
        KeyboardInterrupt: Ctrl-C (the folder is removed).
    """
    from edgeprune import pipeline

    t0 = time.perf_counter()
    try:
        try:
            result = pipeline.run(
                model=base.keras_path,
                data=base.data,
                recipe=recipe,
                out=folder,
                target=target,
                force=True,
                baseline_tflite=base.tflite,
                page=False,  # ~0.7 s of a trial; the export (or `edgeprune report`) makes it
            )
        except (BudgetError, QualityError) as exc:
            if exc.result is None:
                raise
            result = exc.result
    except EdgepruneError as exc:
        _remove(folder)
        raise TrialFailed(clip(exc)) from exc
    except OSError as exc:
        _remove(folder)
        raise TrialFailed(clip(f"{exc.strerror or exc} ({exc.filename or folder})")) from exc
    except BaseException:
        _remove(folder)
        raise
    return measure(result, time.perf_counter() - t0)


def measure(result, seconds: float) -> TrialOutcome:
    """The figures, feasibility and constraints of a pipeline ``result``."""
    final = next(e for e in result.evaluations if e.stage == "final")
    values = {k: final.metrics.get(k) for k in ("accuracy", "macro_f1", "mse", "mae")}
    values = {k: v for k, v in values.items() if v is not None}
    rules = {r.name: r for r in (result.check.rules if result.check else ())}
    rules["quantization"] = result.quality
    flash = rules.get("flash") or rules.get("storage")
    values["latency_ms"] = _figure(rules.get("latency"))
    values["flash_bytes"] = _figure(flash)
    values["ram_bytes"] = _figure(rules.get("ram"))
    values["gzip_bytes"] = result.sizes["final"].gzip_bytes
    compress = result.compress
    if compress is not None:  # the check judged the file that ships: say which, and send it
        values["shipped_model"] = compress.shipped.name
        if compress.tflite is not None:
            values["gzip_bytes"] = len(gzip.compress(compress.tflite.data, 9, mtime=0))
    failed = [n for n in CONSTRAINT_RULES if n in rules and not rules[n].ok]
    constraints = [_violation(rules.get(n)) for n in CONSTRAINT_RULES]
    fine_tune = result.prune.fine_tune_seconds
    budgets = {"latency": _figure(rules.get("latency"), "budget")}
    budgets.update(flash=_figure(flash, "budget"), ram=_figure(rules.get("ram"), "budget"))
    budgets = {n: b for n, b in budgets.items() if b is not None}
    return TrialOutcome(values, not failed, failed, constraints, seconds, fine_tune, budgets)


def _figure(rule, field: str = "figure") -> float | None:
    """A rule's figure (or budget) in bytes or ms, whatever unit the rule shows."""
    value = None if rule is None else getattr(rule, field)
    if value is None:
        return None
    return round(value * _SCALE[rule.unit]) if rule.unit in _SCALE else float(value)


def _violation(rule) -> float:
    """How far over its budget a rule is, relative to the budget (> 0: failed)."""
    if rule is None or rule.headroom is None:
        return 0.0 if rule is None or rule.ok else 1.0
    scale = abs(rule.budget) or 1.0
    value = -rule.headroom / scale
    return max(value, 1e-9) if not rule.ok else min(value, 0.0)


def _remove(folder: str) -> None:
    with contextlib.suppress(OSError):
        if os.path.isdir(folder):
            shutil.rmtree(folder)
