"""The prune stage: tfmot magnitude pruning, strip, and the checks after them.

The model is wrapped, fine-tuned under the planned schedule, stripped of its
wrappers, and then checked: stripping must leave the outputs bit-identical
and every pruned layer must reach its sparsity. A schedule that zeroes
nothing (sparsity 0 from start to end) fine-tunes a plain copy instead: the
wrappers would mask nothing. The stripped model is handed
on in memory (the quantize stage converts it); ``pruned.keras`` is written
for the user and for ``edgeprune quantize``, never read back here.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field

from edgeprune import artifacts, report
from edgeprune.artifacts import Artifact, Flatbuffer
from edgeprune.schedule import SchedulePlan
from edgeprune.stages.inputs import Inputs, KerasModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PruneResult:
    """The stripped model, its files and the sparsity it reached.

    ``layers`` are :class:`edgeprune.adapters.tfmot.LayerSparsity`, one per
    weighted layer; ``strip_check`` the :class:`~edgeprune.adapters.tfmot.StripCheck`.
    """

    keras: Artifact
    tflite: Flatbuffer  # float32
    schedule: SchedulePlan
    layers: list
    overall_sparsity: float
    requested_sparsity: float
    strip_check: object
    fine_tune_metrics: dict
    seconds: float
    model: KerasModel = field(repr=False)  # stripped
    fine_tune_seconds: float = 0.0  # of ``seconds``: the training itself

    def strip_entry(self) -> report.StripEntry:
        return report.StripEntry(**asdict(self.strip_check))

    def entry(self, with_strip: bool = False) -> report.PruneEntry:
        """The report entry; ``with_strip`` puts the strip check inside it (as the
        ``prune`` command does) instead of leaving it to an entry of its own."""
        return report.PruneEntry(
            self.schedule.to_dict(),
            self.requested_sparsity,
            self.overall_sparsity,
            [asdict(s) for s in self.layers],
            {s.name: s.reason for s in self.layers if not s.pruned},
            self.fine_tune_metrics,
            self.seconds,
            strip=self.strip_entry() if with_strip else None,
        )


def prune_stage(inp: Inputs, model: KerasModel) -> PruneResult:
    """Wrap, fine-tune with the planned schedule, strip, and verify.

    Side effects: writes ``pruned.keras`` and ``pruned_float32.tflite``.

    Raises:
        VerificationError: a pruned layer missed its sparsity, or stripping
            changed the outputs.
    """
    from edgeprune.adapters import converter as convert
    from edgeprune.adapters import keras as ka
    from edgeprune.adapters import tfmot as pr

    t0 = time.perf_counter()
    opts, ds = inp.recipe.prune, inp.dataset
    # planned again on the model given: structured pruning may have narrowed it
    layer_plans = inp.layer_plans if model is inp.model else pr.plan_layers(model, opts)
    pruned_count = sum(p.pruned for p in layer_plans)
    log.info(
        "prune: %s to %.2f on %d layer(s), %d steps",
        inp.schedule.kind,
        pr.requested_sparsity(opts),
        pruned_count,
        inp.schedule.total_steps,
    )
    # Nothing to prune (the sweep's default): tfmot's wrappers would mask nothing,
    # so the model is fine-tuned as it is; "stripping" it is then the identity.
    plain = pr.prunes_nothing(opts)
    wrapped = ka.clone(model) if plain else pr.wrap(model, layer_plans, inp.schedule, opts)
    t_fit = time.perf_counter()
    fit_metrics = pr.fine_tune(
        wrapped,
        ds.x_train,
        ds.y_train,
        task=inp.task,
        probabilities=inp.probabilities,
        opts=opts,
        seed=inp.recipe.seed,
        validation=inp.validation,
    )
    fine_tune_seconds = time.perf_counter() - t_fit
    stripped = wrapped if plain else pr.strip(wrapped)
    log.info("strip: verifying outputs on %d test samples", len(ds.x_test))
    strip_check = pr.verify_strip(wrapped, stripped, ds.x_test)
    layers = pr.measure_sparsity(stripped, layer_plans, opts)
    pr.check_sparsity(layers)
    keras = inp.out.write_with(
        artifacts.PRUNED_KERAS, lambda p: ka.save_model(stripped, p), "prune", suffix=".keras"
    )
    tflite = inp.out.write_flatbuffer(
        artifacts.PRUNED_TFLITE, convert.to_tflite(stripped, "float32"), "prune", "float32"
    )
    return PruneResult(
        keras,
        tflite,
        inp.schedule,
        layers,
        pr.overall_sparsity(layers),
        pr.requested_sparsity(opts),
        strip_check,
        fit_metrics,
        time.perf_counter() - t0,
        stripped,
        fine_tune_seconds,
    )
