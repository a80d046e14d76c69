"""The quantize stage: convert the stripped model in the recipe's mode, once.

For a TFLite Micro target in int8, the stage also chooses how Dense weights
are quantized. The converter quantizes them per output channel by default;
TFLite Micro then keeps per-channel multipliers and shifts in the arena,
which cost one autoencoder 11 KB. Both variants are converted and measured
(quality on the test set, the smallest working arena), and the final model is
written once, with the chosen bytes. The stage hands on those bytes and the
arena measured for them, so that the device check never searches again.

Before converting, the stage clusters the weights when ``cluster.clusters`` is
set (tfmot ``cluster_weights``, kmeans++, fine-tune, strip; each clustered
kernel then holds at most that many values, pruned zeros among them). In the
QAT modes (``pqat``, ``cqat``, ``pcqat``) it fine-tunes with tfmot's
preserving scheme and converts to int8; after clustering or QAT, the int8
model is checked to have kept its zeros and clusters
(:mod:`edgeprune.stages.preserve`) before anything is written. The
quantization budget is measured against the float model the stage was given,
so it covers clustering and QAT as well as rounding.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from edgeprune import artifacts, report
from edgeprune.artifacts import Flatbuffer
from edgeprune.recipe_options import QAT_MODES, converted_dtype
from edgeprune.report.qat_entries import PreserveEntry
from edgeprune.rules.quality import quantization_rule
from edgeprune.rules.result import RuleResult
from edgeprune.stages.evaluate import metrics_of, predict
from edgeprune.stages.inputs import Inputs, KerasModel
from edgeprune.target import Target

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuantizeResult:
    """The final model (``final_<mode>.tflite``) and how it was made.

    ``dense`` is the Dense-weight choice and ``arena`` the
    :class:`edgeprune.tflm.probe.ArenaResult` of the final bytes, both only
    when the stage measured them (TFLite Micro targets, int8).
    """

    tflite: Flatbuffer
    calibration_samples: int
    calibration_source: str
    seconds: float
    dense: report.DenseEntry | None = None
    arena: object = field(default=None, repr=False)
    preserve: PreserveEntry | None = None

    @property
    def mode(self) -> str:
        return self.tflite.mode

    def entry(self, check: RuleResult) -> report.QuantizeEntry:
        return report.QuantizeEntry(
            self.mode,
            self.calibration_samples,
            self.calibration_source,
            False,
            check,
            self.seconds,
            dense_quantization=self.dense,
            preserve=self.preserve,
        )


def quantize_stage(
    inp: Inputs,
    model: KerasModel,
    target: Target | None = None,
    reference: Flatbuffer | None = None,
) -> QuantizeResult:
    """Convert the stripped ``model`` in the recipe's quantization mode and write it.

    With a TFLite Micro ``target``, int8 and ``quantize.dense = "auto"``, Dense
    weights are quantized per-tensor when that needs less arena and stays
    within the quantization budget measured against ``reference`` (the float
    model that was converted); see the module's description. ``per_channel``
    or ``per_tensor`` converts that variant only.

    With ``cluster.clusters`` set, the weights are clustered first; in a QAT mode
    (pqat, cqat, pcqat) the model is fine-tuned quantization-aware and converted to
    int8 (its Dense quantization is the scheme's, per-tensor); both are checked
    after conversion (see the module's description).

    Side effects: writes ``final_<mode>.tflite``; trains (clustering, QAT); starts
    TFLite Micro worker processes for the arena search.

    Raises:
        ConversionError: the converter refused the model.
        MicroError: TFLite Micro could not allocate a variant at any size.
        UnsupportedModelError: tfmot cannot cluster or quantize-aware train the model.
        VerificationError: the int8 model lost the zeros or clusters its mode keeps
            (nothing written).
    """
    from edgeprune.adapters import converter as convert

    t0 = time.perf_counter()
    mode = inp.recipe.quantize.mode
    dtype = converted_dtype(mode)
    model, preserve = _train_before_conversion(inp, model)
    calib, n, source = None, 0, ""
    if dtype == "int8":
        calib = inp.calibration()
        n = len(calib)
        source = "x_calib" if inp.dataset.x_calib is not None else "x_train (seeded sample)"
    log.info("quantize: %s%s", mode, f" with {n} calibration samples from {source}" if n else "")
    choice = inp.recipe.quantize.dense
    per_tensor = mode == "int8" and choice == "per_tensor"
    data = convert.to_tflite(model, dtype, calib, per_tensor_dense=per_tensor)
    dense, arena = None, None
    tflm_int8 = target is not None and target.runtime == "tflm" and dtype == "int8"
    if tflm_int8 and (
        choice != "auto" or mode in QAT_MODES
    ):  # the recipe chose: one variant, one arena search
        from edgeprune.tflm import probe as micro

        why = "the QAT scheme's" if mode in QAT_MODES else "quantize.dense"
        log.info("quantize: Dense weights %s (%s)", choice.replace("_", "-"), why)
        arena = micro.find_arena(data)
    elif tflm_int8:
        if reference is None:
            raise ValueError("the Dense quantization choice needs the float reference model")
        per_tensor_data = convert.to_tflite(model, "int8", calib, per_tensor_dense=True)
        dense, data, arena = _choose_dense(
            inp, reference, {"per_channel": data, "per_tensor": per_tensor_data}
        )
    if preserve is not None:
        preserve = preserve(data)  # the bytes written, checked before they are
    final = inp.out.write_flatbuffer(artifacts.final_tflite_name(mode), data, "quantize", mode)
    seconds = time.perf_counter() - t0
    return QuantizeResult(final, n, source, seconds, dense, arena, preserve)


def _train_before_conversion(inp: Inputs, model: KerasModel):
    """Cluster and/or QAT-fine-tune ``model`` as the recipe asks. Returns the model to
    convert and the check to run on its int8 bytes (``None``: no check: nothing was
    clustered and the mode is not QAT)."""
    from edgeprune.adapters import tfmot_qat as tq
    from edgeprune.stages.preserve import check_preserved

    r, ds = inp.recipe, inp.dataset
    mode, n = r.quantize.mode, r.cluster.clusters
    if mode not in QAT_MODES and not n:
        return model, None
    training = dict(task=inp.task, probabilities=inp.probabilities, seed=r.seed)
    clustered: list[str] = []
    if n:
        c = r.cluster
        log.info("quantize: clustering to %d values per layer, %d epochs", n, c.epochs)
        model, clustered = tq.cluster(
            model, ds.x_train, ds.y_train, clusters=n, epochs=c.epochs,
            batch_size=c.batch_size, learning_rate=c.learning_rate, **training,
        )  # fmt: skip
        _check_float_clusters(tq.kernel_figures(model), clustered, n)
    figures = tq.kernel_figures(model)  # what the int8 model must keep
    if mode in QAT_MODES:
        q = r.quantize
        log.info("quantize: %s fine-tuning, %d epochs", mode, q.qat_epochs)
        model = tq.quantize_aware(
            model, ds.x_train, ds.y_train, mode=mode, epochs=q.qat_epochs,
            batch_size=q.qat_batch_size, learning_rate=q.qat_learning_rate, **training,
        )  # fmt: skip
    if converted_dtype(mode) != "int8":
        return model, None  # float16/float32 after clustering: no int8 to check

    def check(data: bytes) -> PreserveEntry:
        return check_preserved(
            mode, figures, data, clustered=clustered, clusters=n,
            cluster_epochs=r.cluster.epochs if n else 0,
            qat_epochs=r.quantize.qat_epochs if mode in QAT_MODES else 0,
        )  # fmt: skip

    return model, check


def _check_float_clusters(figures: dict, clustered: list[str], n: int) -> None:
    """After strip, each clustered kernel holds at most ``n`` distinct values."""
    from edgeprune.errors import VerificationError

    for name in clustered:
        distinct = figures[name][2]
        if distinct > n:
            raise VerificationError(
                f"clustering left layer {name} with {distinct} distinct weights, more than "
                f"cluster.clusters = {n}; raise cluster.epochs or report it"
            )


def _choose_dense(inp: Inputs, reference: Flatbuffer, variants: dict[str, bytes]):
    """Measure both Dense variants; return the choice, the chosen bytes and their arena."""
    from edgeprune.tflm import probe as micro

    before = metrics_of(inp, predict(inp, reference.data))
    arenas: dict[str, object] = {}  # by SHA-256: identical bytes are searched once
    measured = {}
    for name, data in variants.items():
        after = metrics_of(inp, predict(inp, data))
        digest = artifacts.sha256_bytes(data)
        if digest not in arenas:
            arenas[digest] = micro.find_arena(data)
        check = quantization_rule(inp.task, before, after, inp.recipe.quantize, "pruned float32")
        measured[name] = report.DenseVariant(
            len(data),
            arenas[digest].required_bytes(),
            check,
            {k: v for k, v in after.items() if k != "confusion_matrix"},
        )
    pc, pt = measured["per_channel"], measured["per_tensor"]
    if pt.check.ok and not pc.check.ok:
        picked = "per_tensor"
        why = "per-channel Dense weights miss the quantization budget; per-tensor stay within it"
    elif pt.arena_bytes < pc.arena_bytes and pt.check.ok:
        picked = "per_tensor"
        why = (
            f"per-tensor Dense weights need {pc.arena_bytes - pt.arena_bytes:,} B less "
            f"arena and stay within the quantization budget"
        )
    elif pt.arena_bytes < pc.arena_bytes:
        picked = "per_channel"
        why = (
            "per-tensor Dense weights need less arena but miss the quantization budget: "
            f"{pt.check.failure()}"
        )
    else:
        picked = "per_channel"
        why = "per-tensor Dense weights save no arena"
    log.info("quantize: Dense weights %s: %s", picked.replace("_", "-"), why)
    data = variants[picked]
    return (report.DenseEntry(picked, why, pc, pt), data, arenas[artifacts.sha256_bytes(data)])
