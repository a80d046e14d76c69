"""The structured stage: remove whole channels to the recipe's goal (``[structured]``).

Whole filters are what shrinks flash, arena and latency on a microcontroller;
unstructured sparsity does not. The narrower model and its float32 ``.tflite``
are written and handed on in memory; the tfmot stage then prunes the narrower
model.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field

from edgeprune import artifacts, report
from edgeprune.artifacts import Artifact, Flatbuffer
from edgeprune.recipe import Recipe
from edgeprune.recipe_options import converted_dtype
from edgeprune.stages.inputs import Inputs, KerasModel
from edgeprune.target import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StructuredStageResult:
    """Whole channels removed and the model rebuilt.

    ``result`` is the :class:`edgeprune.structured.rounds.StructuredResult`;
    ``evaluated_on`` the split the accuracy floor was checked on; ``fit`` the
    goal fit (the target, and each candidate's check) or None.
    """

    keras: Artifact
    tflite: Flatbuffer  # float32
    result: object = field(repr=False)
    evaluated_on: str
    fit: report.FitEntry | None
    seconds: float
    metric_name: str = "accuracy"  # of each round: accuracy, or mse (regression)
    multiple: tuple[int, str] = (1, "no target")  # channel_multiple and who chose it

    @property
    def model(self) -> KerasModel:
        return self.result.model

    def entry(self, recipe: Recipe) -> report.StructuredEntry:
        return structured_entry(
            self.result,
            recipe,
            self.evaluated_on,
            self.metric_name,
            self.fit,
            self.seconds,
            self.multiple,
        )


def channel_multiple(recipe: Recipe, target: Target | None) -> tuple[int, str]:
    """The multiple the structured stage rounds kept channel counts to, and who
    chose it: the recipe (``structured.channel_multiple`` or ``--channel-multiple``),
    the target's profile, its kernel library's default, or no target (1)."""
    own = recipe.structured.channel_multiple
    if own is not None:
        return own, "recipe (structured.channel_multiple)"
    if target is None:
        return 1, "no target"
    if target.channel_multiple_source == "profile":
        return target.channel_multiple, f"{target.id} profile (channel_multiple)"
    return target.channel_multiple, f"{target.kernels} default ({target.id})"


def structured_entry(
    r,
    recipe: Recipe,
    evaluated_on: str,
    metric_name: str,
    fit: report.FitEntry | None,
    seconds: float,
    multiple: tuple[int, str] = (1, "no target"),
) -> report.StructuredEntry:
    """The report entry of a structured result ``r``. Regression rounds carry -MSE
    (the rounds maximise their metric); the entry gives the MSE itself.
    ``multiple``: the channel multiple used and who chose it."""
    s = recipe.structured
    rounds = tuple(
        report.RoundEntry(
            x.round,
            x.removed_channels,
            x.width,
            x.params,
            x.macs,
            None if x.metric is None else x.metric if metric_name == "accuracy" else -x.metric,
            x.rebuild_max_abs_diff,
            x.verify_samples,
            {n: [a, b] for n, a, b in x.widths},
        )
        for x in r.rounds
    )
    return report.StructuredEntry(
        goal=s.goal,
        width=s.width if s.goal == "width" else None,
        reduction=s.reduction if s.goal in ("params", "macs") else None,
        importance=s.importance,
        ranking=s.ranking,
        floor=s.floor,
        params_before=r.params_before,
        params_after=r.params,
        macs_before=r.macs_before,
        macs_after=r.macs,
        params_reduction=r.params_before / max(r.params, 1),
        macs_reduction=r.macs_before / max(r.macs, 1),
        rounds=rounds,
        metric_split=evaluated_on,
        metric_name=metric_name,
        kept_whole=dict(r.kept_whole),
        stopped=r.stopped,
        notes=tuple(r.notes),
        fit=fit,
        seconds=seconds,
        channel_multiple=multiple[0],
        channel_multiple_source=multiple[1],
    )


def structured_stage(
    inp: Inputs, model: KerasModel, target: Target | None = None
) -> StructuredStageResult:
    """Remove whole channels to the recipe's goal, fine-tuning after each round;
    save the narrower model and its float32 ``.tflite``.

    The accuracy floor is checked on ``x_val`` when the data has it, else on
    the test set (the report says which). Each round's rebuild is verified on
    up to 256 test samples before fine-tuning. The goal ``fit`` checks each
    candidate against ``target``. Kept channel counts are rounded to
    :func:`channel_multiple` (the target's kernels' preference unless the recipe
    sets one; 1 without a target), and every goal and fit candidate is measured
    on the rounded model.

    Side effects: writes ``structured.keras`` and ``structured_float32.tflite``.

    Raises:
        BadInputError: no channel can be cut, or the goal cannot be served.
        VerificationError: a rebuilt model does not compute what it must.
    """
    from edgeprune import metrics
    from edgeprune.adapters import converter as convert
    from edgeprune.adapters import keras as ka
    from edgeprune.structured.rounds import StructuredOptions, prune_structured

    t0 = time.perf_counter()
    s, ds = inp.recipe.structured, inp.dataset
    multiple = channel_multiple(inp.recipe, target)
    opts = StructuredOptions(
        importance=s.importance,
        ranking=s.ranking,
        floor=s.floor,
        goal=s.goal,
        target=s.width if s.goal == "width" else s.reduction,
        rounds=s.rounds,
        min_accuracy=s.min_accuracy,
        samples=s.samples,
        channel_multiple=multiple[0],
    )

    def fine_tune(candidate) -> None:
        if s.epochs:
            ka.compile_for(candidate, inp.task, s.learning_rate, inp.probabilities)
            ka.fit(
                candidate,
                ds.x_train,
                ds.y_train,
                epochs=s.epochs,
                batch_size=s.batch_size,
                seed=inp.recipe.seed,
                validation=inp.validation,
                description="structured fine-tuning",
            )

    split = "validation" if ds.x_val is not None else "test"
    x_eval, y_eval = (ds.x_val, ds.y_val) if ds.x_val is not None else (ds.x_test, ds.y_test)

    def evaluate(candidate) -> float:
        m = metrics.evaluate(
            inp.task, y_eval, inp.scores(ka.predict(candidate, x_eval)), inp.n_classes
        )
        return m["accuracy"] if inp.task == "classification" else -m["mse"]

    trials: list[report.FitCandidate] = []
    fits = _fit_check(inp, target, trials) if s.goal == "fit" else None
    log.info(
        "structured: %s goal, %s importance, %s ranking, %d round(s), channels rounded to "
        "multiples of %d (%s)",
        s.goal,
        s.importance,
        s.ranking,
        s.rounds,
        *multiple,
    )
    result = prune_structured(
        model,
        opts,
        x=ds.x_train,
        y=ds.y_train,
        loss=ka.sample_loss(inp.task, ka.shapes(model).output_units, inp.probabilities),
        fine_tune=fine_tune,
        evaluate=evaluate,
        fits=fits,
        verify_x=ds.x_test[:256],
        log=log.info,
    )
    fit = None
    if target is not None and s.goal == "fit":
        fit = report.FitEntry(
            target.id,
            inp.recipe.quantize.mode,
            tuple(
                report.FitCandidate(w, t.params, t.ok, t.rules)
                for (w, _), t in zip(result.fit_trials, trials, strict=True)
            ),
        )
    keras = inp.out.write_with(
        artifacts.STRUCTURED_KERAS,
        lambda p: ka.save_model(result.model, p),
        "structured",
        suffix=".keras",
    )
    tflite = inp.out.write_flatbuffer(
        artifacts.STRUCTURED_TFLITE,
        convert.to_tflite(result.model, "float32"),
        "structured",
        "float32",
    )
    return StructuredStageResult(
        keras,
        tflite,
        result,
        split,
        fit,
        time.perf_counter() - t0,
        "accuracy" if inp.task == "classification" else "mse",
        multiple,
    )


def _fit_check(inp: Inputs, target: Target, trials: list):
    """``fits(model)`` for the goal fit: convert a candidate as the quantize stage
    will (16 calibration samples: sizes do not depend on them) and check it
    against ``target``'s budgets in memory; with ``[compress]``, check what the
    compress stage would ship instead (:func:`~edgeprune.stages.compress.would_ship`).
    Each check is appended to ``trials`` (its width is filled in from the rounds'
    own record)."""
    from edgeprune.adapters import converter as convert
    from edgeprune.stages import check as check_stage
    from edgeprune.stages.compress import would_ship

    mode = converted_dtype(inp.recipe.quantize.mode)  # a QAT mode's model is int8
    calib = inp.calibration(16) if mode == "int8" else None

    def fits(model) -> bool:
        name, data = f"candidate_{mode}.tflite", None
        if inp.recipe.compress.method != "none":  # judge what the compress stage would ship
            data, compressed = would_ship(
                inp, model, target, lambda m: convert.to_tflite(m, mode, calib)
            )
            name = name.replace(".tflite", "_compressed.tflite") if compressed else name
        data = data or convert.to_tflite(model, mode, calib)
        candidate = Flatbuffer.of(data, os.path.join(inp.out.path, name), mode)
        result = check_stage.check_flatbuffer(candidate, target, inp.recipe.budget)
        measured = result.evidence.latency_measured is not None
        trials.append(
            report.FitCandidate(
                0.0,
                int(model.count_params()),
                result.ok,
                {
                    r.name: report.FitRule(
                        r.figure,
                        r.budget,
                        r.unit,
                        r.ok,
                        ("measured" if measured else "estimate") if r.name == "latency" else None,
                    )
                    for r in result.rules
                    if r.figure is not None
                },
            )
        )
        return result.ok

    return fits
