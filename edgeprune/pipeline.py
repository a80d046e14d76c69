"""The pipeline driver: inputs → baseline → structured → prune and strip →
quantize → evaluate → check → firmware → report.

:func:`run` reads like the table of contents of a run: one line per stage,
each a function (in :mod:`edgeprune.stages`) from the previous stage's result
to a frozen result that carries its artifact in memory (the model or the
``.tflite`` bytes), its path, its SHA-256 and the figures it measured; the
check that belongs after a stage follows it. All input is loaded and checked
before the first byte is written, so bad input leaves the output folder
untouched. :func:`prune_only` and :func:`quantize_only` run one stage on a
model file with the same stage functions and merge into the folder's report.

TensorFlow is imported by the stage functions, not by this module's import.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace

from edgeprune import artifacts, report
from edgeprune.errors import BudgetError
from edgeprune.recipe import Recipe
from edgeprune.rules.budget import CheckResult
from edgeprune.rules.quality import quantization_rule, raise_if_failed
from edgeprune.rules.result import RuleResult
from edgeprune.stages.baseline import BaselineResult, baseline_stage
from edgeprune.stages.check import check_flatbuffer
from edgeprune.stages.evaluate import StageEval, evaluate_stage, measure_size, metrics_of
from edgeprune.stages.firmware import FirmwareResult, firmware_stage
from edgeprune.stages.inputs import (
    Inputs,
    check_structured,
    preflight_tflm,
    resolve_inputs,
    resolve_target,
)
from edgeprune.stages.prune import PruneResult, prune_stage
from edgeprune.stages.quantize import QuantizeResult, quantize_stage
from edgeprune.stages.structured import StructuredStageResult, structured_stage
from edgeprune.target import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """Everything a run wrote and measured; ``report`` is what ``report.json`` holds."""

    out_dir: str
    report_path: str
    task: str
    baseline: BaselineResult
    prune: PruneResult
    quantize: QuantizeResult
    sizes: dict  # stage -> report.ModelSize
    evaluations: list  # StageEval, in stage order
    seconds: float
    report: report.Report = field(repr=False)
    quality: RuleResult  # the quantization budget
    check: CheckResult | None = None  # when run for a target
    structured: StructuredStageResult | None = None
    firmware: FirmwareResult | None = None


def run(
    model: str | None = None,
    data: str | None = None,
    recipe: Recipe | None = None,
    out: str | None = None,
    target: str | Target | None = None,
) -> RunResult:
    """Run the whole pipeline and write the run directory.

    With ``target`` (a device profile id or path), the final model is checked
    against the target's budgets and, for a TFLite Micro target, the
    ``firmware/`` folder is written.

    Side effects: writes artifacts and ``report.json`` under ``out`` (default
    ``runs/<model name>``, or ``build/<target>``). Raises
    :class:`~edgeprune.errors.BadInputError` before writing anything when the
    input is unusable, :class:`~edgeprune.errors.VerificationError` when a
    check after a stage fails, and, after writing everything,
    :class:`~edgeprune.errors.BudgetError` (a device budget failed) or
    :class:`~edgeprune.errors.QualityError` (quantization cost too much).
    """
    t0 = time.perf_counter()
    recipe = recipe or Recipe()
    target = resolve_target(target, recipe)
    if target is not None and out is None:
        out = os.path.join("build", target.id)
    inp = resolve_inputs(
        model,
        data,
        recipe,
        out,
        writes=(artifacts.BASELINE_KERAS, artifacts.STRUCTURED_KERAS, artifacts.PRUNED_KERAS),
    )
    check_structured(inp, target)
    if target is not None and target.runtime == "tflm":
        preflight_tflm(inp, target)
    previous = report.begin_run(inp.out)

    base = baseline_stage(inp)
    structured = None
    if recipe.structured.goal != "none":
        structured = structured_stage(inp, base.model, target)
    pruned = prune_stage(inp, (structured or base).model)  # checks strip and sparsity
    quant = quantize_stage(inp, pruned.model, target, reference=pruned.tflite)
    models = {"baseline": base.tflite}
    if structured is not None:
        models["structured"] = structured.tflite
    models.update(pruned=pruned.tflite, final=quant.tflite)
    sizes = {stage: measure_size(m) for stage, m in models.items()}
    evals = evaluate_stage(inp, models)
    by_stage = {e.stage: e for e in evals}
    quality = quantization_rule(
        inp.task,
        by_stage["pruned"].metrics,
        by_stage["final"].metrics,
        recipe.quantize,
        "pruned float32",
    )
    check = firmware = None
    if target is not None:
        check = check_flatbuffer(quant.tflite, target, recipe.budget, quant.arena)
        if target.runtime == "tflm":
            firmware = firmware_stage(inp.out, quant.tflite, check.evidence.arena_bytes)

    inp.out.remove_unlisted(previous)
    seconds = time.perf_counter() - t0
    stages = report.Stages(
        baseline=base.entry(),
        structured=structured.entry(recipe) if structured else None,
        prune=pruned.entry(),
        strip=pruned.strip_entry(),
        quantize=quant.entry(quality),
        evaluate={e.stage: e.entry(artifacts.BASELINE_TFLITE) for e in evals},
        check=None if check is None else report.CheckEntry.from_dict(check.to_dict()),
    )
    body = report.Report(
        recipe.seed,
        recipe.to_dict(),
        inp.entry(),
        stages,
        sizes,
        report.size_notes(sizes),
        seconds,
        target=None if target is None else target.to_dict(),
    )
    path = report.write_run(inp.out, body)
    result = RunResult(
        inp.out.path,
        path,
        inp.task,
        base,
        pruned,
        quant,
        sizes,
        evals,
        seconds,
        body,
        quality,
        check,
        structured,
        firmware,
    )
    if check is not None and not check.ok:
        failed = ", ".join(r.name for r in check.rules if not r.ok)
        raise BudgetError(
            f"{quant.tflite.name} does not fit {target.id}: {failed} over "
            f"budget (see the table and report.json); prune harder, remove "
            f"filters, or raise the budget",
            result,
        )
    raise_if_failed(quality, result)
    return result


# ---------------------------------------------------------------- single stages


@dataclass(frozen=True)
class StageRunResult:
    """What a single-stage command (``prune``, ``quantize``) wrote and measured."""

    out_dir: str
    report_path: str
    stage: str
    task: str
    entry: report.PruneEntry | report.QuantizeEntry  # as written into report.json
    sizes: dict  # stage -> report.ModelSize
    evaluations: list  # StageEval
    seconds: float


def prune_only(
    model: str,
    data: str,
    recipe: Recipe | None = None,
    out: str | None = None,
    target: str | Target | None = None,
) -> StageRunResult:
    """Prune, strip and verify the Keras model file ``model``; write
    ``pruned.keras`` and its float32 ``.tflite``; evaluate it against the
    input model. With a ``structured`` goal, whole channels go first
    (``structured.keras``); the goal fit checks candidates against ``target``.
    Merges into an existing ``report.json`` in ``out``."""
    t0 = time.perf_counter()
    recipe = recipe or Recipe()
    target = resolve_target(target, recipe)
    inp = resolve_inputs(
        model,
        data,
        recipe,
        out,
        require_file=True,
        writes=(artifacts.STRUCTURED_KERAS, artifacts.PRUNED_KERAS),
    )
    check_structured(inp, target)
    reference = _keras_scores(inp)
    structured = None
    if recipe.structured.goal != "none":
        structured = structured_stage(inp, inp.model, target)
    result = prune_stage(inp, structured.model if structured else inp.model)
    models = {"structured": structured.tflite} if structured else {}
    models["pruned"] = result.tflite
    entry = replace(
        result.entry(with_strip=True), structured=structured.entry(recipe) if structured else None
    )
    return _finish_stage(
        inp,
        "prune",
        entry,
        {s: measure_size(m) for s, m in models.items()},
        evaluate_stage(inp, models, reference),
        model,
        t0,
    )


def quantize_only(
    model: str, data: str, recipe: Recipe | None = None, out: str | None = None
) -> StageRunResult:
    """Convert the Keras model file ``model`` in the recipe's quantization mode;
    evaluate the ``.tflite`` against the Keras model's own outputs and hold it
    to the quantization budget.

    Raises:
        QualityError: (after writing) conversion cost more than the budget.
    """
    t0 = time.perf_counter()
    recipe = recipe or Recipe()
    inp = resolve_inputs(model, data, recipe, out, plan_pruning=False, require_file=True)
    reference = _keras_scores(inp)
    result = quantize_stage(inp, inp.model)
    evals = evaluate_stage(inp, {"final": result.tflite}, reference)
    check = quantization_rule(
        inp.task, metrics_of(inp, reference), evals[0].metrics, recipe.quantize, "input Keras"
    )
    stage_result = _finish_stage(
        inp,
        "quantize",
        result.entry(check),
        {"final": measure_size(result.tflite)},
        evals,
        model,
        t0,
    )
    raise_if_failed(check, stage_result)
    return stage_result


def _keras_scores(inp: Inputs):
    """The input Keras model's test-set scores: the reference of a stage command."""
    from edgeprune.adapters import keras as ka

    return inp.scores(ka.predict(inp.model, inp.dataset.x_test))


def _finish_stage(
    inp: Inputs, stage: str, entry, sizes: dict, evals: list[StageEval], model: str, t0: float
) -> StageRunResult:
    """Merge one stage's results into ``report.json`` (see :func:`report.merge_stage`).

    Earlier stages are kept only while they produced this stage's input (same
    model hash, same data); everything else in the old report, and this
    stage's own older artifacts, is dropped and its files deleted, so the
    report always describes the folder. The input file itself is never deleted.
    Every stage entry records its own input, seed and recipe.
    """
    fresh = set(inp.out.artifacts)
    old = report.load(inp.out)
    keep = report.kept_stages(old, stage, inp.out.artifacts, inp.input_sha256, inp.dataset.sha256)
    protected = {os.path.abspath(inp.model_source)}
    for name, listed in list(inp.out.artifacts.items()):
        stale = listed.get("stage") not in keep and name not in fresh
        if stale and os.path.abspath(inp.out.file(name)) not in protected:
            inp.out.forget_artifact(name)
        elif stale:
            del inp.out.artifacts[name]
    recipe = inp.recipe
    entry = replace(entry, input=inp.stage_input(), seed=recipe.seed, recipe=recipe.to_dict())
    reference = f"input model {os.path.basename(model)}"
    new = report.Report(
        recipe.seed,
        recipe.to_dict(),
        inp.entry(),
        report.Stages(**{stage: entry}, evaluate={e.stage: e.entry(reference) for e in evals}),
        sizes,
        report.size_notes(sizes),
    )
    path = report.write_run(inp.out, report.merge_stage(old, keep, new))
    return StageRunResult(
        inp.out.path, path, stage, inp.task, entry, sizes, evals, time.perf_counter() - t0
    )
