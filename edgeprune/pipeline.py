"""The pipeline driver: inputs → baseline → structured → prune and strip →
quantize → evaluate → check → compress (and check again) → firmware → report.

:func:`run` reads like the table of contents of a run: one line per stage,
each a function (in :mod:`edgeprune.stages`) from the previous stage's result
to a frozen result that carries its artifact in memory (the model or the
``.tflite`` bytes), its path, its SHA-256 and the figures it measured; the
check that belongs after a stage follows it. All input is loaded and checked
before the first byte is written, so bad input leaves the output folder
untouched. :func:`prune_only` and :func:`quantize_only` run one stage on a
model file with the same stage functions and merge into the folder's report.

Each holds the run folder's lock (:mod:`edgeprune.run_folder`) while it
writes; one that fails part way removes what it wrote, so a folder holds a
finished run, or none (see :func:`edgeprune.run_cleanup.undone_on_failure`).

TensorFlow is imported by the stage functions, not by this module's import.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace

from edgeprune import artifacts, report, run_folder
from edgeprune.errors import BudgetError
from edgeprune.recipe import Recipe
from edgeprune.rules.budget import CheckResult
from edgeprune.rules.quality import quantization_rule, raise_if_failed
from edgeprune.rules.result import RuleResult
from edgeprune.run_cleanup import (
    forget_stale,
    may_write,
    stage_undone_on_failure,
    undone_on_failure,
)
from edgeprune.stages.baseline import BaselineResult, baseline_stage, convert_up_front
from edgeprune.stages.check import check_flatbuffer
from edgeprune.stages.compress import (
    CompressResult,
    compress_stage,
    refuse_compression,
    require_decoders,
)
from edgeprune.stages.evaluate import StageEval, evaluate_stage, measure_size, metrics_of
from edgeprune.stages.firmware import FirmwareResult, check_name, run_firmware
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
    compress: CompressResult | None = None  # with [compress] on a TFLite Micro target

    @property
    def shipped(self):
        """The model checked and embedded in firmware: the compressed one, if any."""
        return self.compress.shipped if self.compress else self.quantize.tflite


def run(
    model: str | None = None,
    data: str | None = None,
    recipe: Recipe | None = None,
    out: str | None = None,
    target: str | Target | None = None,
    force: bool = False,
    baseline_tflite: bytes | None = None,
    page: bool = True,
    firmware_name: str | None = None,
) -> RunResult:
    """Run the whole pipeline and write the run directory.

    With ``target`` (a device profile id or path), the final model is checked against the
    target's budgets and, for a TFLite Micro target, the ``firmware/`` folder is written.
    ``baseline_tflite``: the model file's float32 ``.tflite``, converted (and, for ``target``,
    preflighted) once by a caller that runs many times on one model (a sweep's trials), so that
    no run converts or preflights it again. ``page=False`` leaves out ``report.html`` (a sweep's
    trials: ``edgeprune report`` or the export writes it); ``firmware_name`` is the firmware's C
    name (default: the model's name).

    Side effects: writes artifacts and ``report.json`` under ``out`` (default
    ``runs/<model name>``, or ``build/<target>``), holding its lock. Raises
    :class:`~edgeprune.errors.BadInputError` before writing anything when the
    input is unusable, another process writes ``out``
    (:class:`~edgeprune.run_folder.FolderInUseError`) or, unless ``force``, ``out``
    holds the run of another model (:class:`~edgeprune.run_folder.OtherModelError`),
    :class:`~edgeprune.errors.VerificationError` when a check after a stage
    fails (then, as on any failure part way, the run's files and the replaced
    run's are removed), and, after writing everything,
    :class:`~edgeprune.errors.BudgetError` (a device budget failed) or
    :class:`~edgeprune.errors.QualityError` (quantization cost too much).
    """
    t0 = time.perf_counter()
    recipe = recipe or Recipe()
    fw_name = None if firmware_name is None else check_name(firmware_name)
    target = resolve_target(target, recipe)
    refuse_compression(recipe, target)
    if target is not None and out is None:
        out = os.path.join("build", target.id)
    inp = resolve_inputs(
        model,
        data,
        recipe,
        out,
        writes=(artifacts.BASELINE_KERAS, artifacts.STRUCTURED_KERAS, artifacts.PRUNED_KERAS),
    )
    _check_convertible(inp)
    require_decoders(recipe)
    with run_folder.hold(inp.out.path, "run") as held:
        run_folder.refuse_other_model(inp.out.path, inp.model_source, inp.input_sha256, force)
        check_structured(inp, target)
        if target is not None and target.runtime == "tflm" and baseline_tflite is None:
            preflight_tflm(inp, target)
        converted = baseline_tflite or convert_up_front(inp)
        previous = report.begin_run(inp.out)
        held.journal(previous | may_write(inp, target))  # undone after a kill -9
        with undone_on_failure(inp, previous):
            result = _run_stages(inp, (target, fw_name), previous, converted, t0)
        if page:
            _write_html(inp.out.path)  # a view of report.json: its failure is a warning
    check = result.check
    if check is not None and not check.ok:
        failed = ", ".join(r.name for r in check.rules if not r.ok)
        raise BudgetError(
            f"{result.shipped.name} does not fit {target.id}: {failed} over "
            f"budget (see the table and report.json); prune harder, remove "
            f"filters, or raise the budget",
            result,
        )
    raise_if_failed(result.quality, result)
    return result


def _run_stages(
    inp: Inputs, for_target: tuple, previous: set[str], converted: bytes | None, t0: float
) -> RunResult:
    """The stages of :func:`run`; ``for_target``: (profile or None, firmware name or None)."""
    target, fw_name = for_target
    recipe = inp.recipe
    base = baseline_stage(inp, converted)
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
        "pruned float32" + (", before clustering" if recipe.cluster.clusters else ""),
    )
    check = firmware = compressed = dense_check = None
    if target is not None:
        check = check_flatbuffer(quant.tflite, target, recipe.budget, quant.arena)
        if recipe.compress.method != "none":
            compressed, dense_check = compress_stage(inp, quant.tflite, target), check
            if compressed.tflite is not None:
                check = check_flatbuffer(compressed.tflite, target, recipe.budget)
        if target.runtime == "tflm":
            shipped = compressed.shipped if compressed else quant.tflite
            firmware = run_firmware(inp, shipped, check.evidence.arena_bytes, fw_name, target)

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
        compress=compressed.entry(dense_check, check, recipe.cluster.clusters or None)
        if compressed
        else None,
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
    return RunResult(
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
        compressed,
    )


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
    _check_convertible(inp)
    with run_folder.hold(inp.out.path, "prune"), stage_undone_on_failure(inp, "prune"):
        check_structured(inp, target)
        reference = _keras_scores(inp)
        structured = None
        if recipe.structured.goal != "none":
            structured = structured_stage(inp, inp.model, target)
        result = prune_stage(inp, structured.model if structured else inp.model)
        models = {"structured": structured.tflite} if structured else {}
        models["pruned"] = result.tflite
        entry = replace(
            result.entry(with_strip=True),
            structured=structured.entry(recipe) if structured else None,
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
    _check_convertible(inp)
    with run_folder.hold(inp.out.path, "quantize"), stage_undone_on_failure(inp, "quantize"):
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
    forget_stale(inp, keep, fresh)
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
    _write_html(inp.out.path)
    return StageRunResult(
        inp.out.path, path, stage, inp.task, entry, sizes, evals, time.perf_counter() - t0
    )


def _write_html(folder: str) -> None:
    """(Re)build ``report.html`` from the ``report.json`` just written (never raises
    an ``Exception``: a page that fails is a warning, the run stands)."""
    from edgeprune.presentation.html import refresh_run_html

    refresh_run_html(folder)


def _check_convertible(inp: Inputs) -> None:
    """Layers the converter refuses are refused before the folder is touched."""
    from edgeprune.adapters import converter

    converter.check_convertible(inp.model)
