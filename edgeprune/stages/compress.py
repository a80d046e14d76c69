"""The compress stage: the int8 model's pruned (or clustered) weights leave the flash.

After quantize, before the device check, on TFLite Micro targets only: the
final int8 model is compressed for TFLite Micro's DECODE operator
(:func:`edgeprune.compress.compress_model`: ``prune``, ``lut`` or ``both``,
each tensor only where that is smaller), proven lossless on the test set
(:func:`edgeprune.compress.verify`: both models run in TFLite Micro and their
raw outputs must be equal bit for bit) and written beside it as
``final_int8_compressed.tflite``; ``final_int8.tflite`` stays (LiteRT cannot
run DECODE, so the host runner uses it). Nothing is written before the
verification passed. A model with nothing worth compressing gets a note and
the dense model is shipped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from edgeprune import artifacts, report
from edgeprune.artifacts import Flatbuffer
from edgeprune.errors import BadInputError
from edgeprune.recipe import Recipe
from edgeprune.target import Target

log = logging.getLogger(__name__)

STAGE = "compress"
_DECODERS = {"prune": {"prune"}, "lut": {"lut"}, "both": {"prune", "lut"}}


class CompressTargetError(BadInputError):
    """Compression was asked for where its model cannot run (no TFLite Micro target)."""


def compressed_name(mode: str) -> str:
    """The compressed model's file name: ``final_int8_compressed.tflite``."""
    return artifacts.final_tflite_name(mode).removesuffix(".tflite") + "_compressed.tflite"


def refuse_compression(recipe: Recipe, target: Target | None) -> None:
    """Refuse, before anything heavy runs, a ``[compress]`` its model could not serve.

    Raises:
        CompressTargetError: compression without a target, for a Linux target
            (LiteRT has no DECODE operator) or for a model that is not int8.
    """
    method = recipe.compress.method
    if method == "none":
        return
    if target is None or target.runtime != "tflm":
        where = "without a target" if target is None else f"for {target.id}, a Linux target"
        raise CompressTargetError(
            f"compress.method = {method!r} {where}: the compressed model needs TFLite "
            f"Micro's DECODE operator, which LiteRT lacks; pass a TFLite Micro target "
            f'(--target nano33ble) or set compress.method = "none"'
        )
    if recipe.quantize.mode != "int8":
        raise CompressTargetError(
            f"compress.method = {method!r} encodes int8 weights but quantize.mode = "
            f'{recipe.quantize.mode!r}; use quantize.mode = "int8" or compress.method = "none"'
        )


def require_decoders(recipe: Recipe) -> None:
    """The installed tflite-micro interpreter must run the decoders the method may
    use, or nothing could be verified: checked before training (worker processes).

    Raises:
        DecoderMissingError: one line naming the missing decoder.
    """
    from edgeprune.compress import require_decoders as require

    if recipe.compress.method != "none":
        require(_DECODERS[recipe.compress.method])


def _pays_for_decode(result, dense: bytes, target: Target):
    """``result`` unchanged when the model bytes it saves exceed the DECODE kernel's
    flash on ``target``; else the dense model with a note saying both figures."""
    import dataclasses

    from edgeprune.estimates.decode_cost import decode_flash

    if result.note:
        return result
    kernel = decode_flash(target.core, target.kernels, True).bytes
    saved = result.dense_bytes - result.model_bytes
    if saved > kernel:
        return result
    note = (
        f"compression saves {saved:,} B of model ({result.dense_bytes:,} -> "
        f"{result.model_bytes:,} B) but the DECODE kernel and decoders cost {kernel:,} B "
        f"of flash on {target.core}; kept dense"
    )
    tensors = tuple(
        dataclasses.replace(t, method="", reason=note) if t.method else t for t in result.tensors
    )
    return dataclasses.replace(
        result,
        model=dense,
        model_bytes=result.dense_bytes,
        tensors=tensors,
        note=note,
    )


@dataclass(frozen=True)
class CompressResult:
    """What the stage made of the dense int8 model ``dense``.

    ``compressed`` is :class:`edgeprune.compress.CompressedModel`; ``tflite``
    the compressed file written and ``verification`` its bit-exact proof, both
    None when nothing was compressed (``compressed.note`` says why).
    """

    dense: Flatbuffer
    compressed: object
    tflite: Flatbuffer | None
    verification: object | None
    seconds: float

    @property
    def shipped(self) -> Flatbuffer:
        """The model the firmware embeds: the compressed one, else the dense one."""
        return self.tflite or self.dense

    def entry(self, dense_check, check, clusters: int | None) -> report.CompressEntry:
        """The report's entry; ``dense_check`` / ``check``: the device checks of the
        dense and the shipped model (:class:`~edgeprune.rules.budget.CheckResult`)."""
        compression = self.compressed.to_dict()
        stopped = ()
        if dense_check is not None and check is not None and self.tflite is not None:
            was_ok = {r.name for r in dense_check.rules if r.ok}
            stopped = tuple(r.name for r in check.rules if not r.ok and r.name in was_ok)
        return report.CompressEntry(
            compression["method"],
            self.tflite.name if self.tflite else "",
            self.dense.name,
            compression,
            compression["note"],
            clusters,
            self.verification.to_dict() if self.verification else None,
            None if dense_check is None else report.CheckEntry.from_dict(dense_check.to_dict()),
            stopped,
            round(self.seconds, 3),
        )


def compress_stage(inp, dense: Flatbuffer, target: Target) -> CompressResult:
    """Compress ``dense`` (the final int8 model) as ``inp.recipe.compress`` says,
    verify it bit-exact on ``inp``'s test set, then write it. A compression whose
    flash saving does not pay for the DECODE kernel on ``target`` (measured
    figures, :mod:`edgeprune.estimates.decode_cost`) is dropped with a note.

    Side effects: writes ``final_int8_compressed.tflite`` (only when something
    was compressed and verified); starts TFLite Micro worker processes.

    Raises:
        CompressionError: the options cannot be applied to this model.
        DecoderMissingError: the interpreter lacks a decoder the model needs.
        VerificationError: an output differs: the encoding is wrong; nothing written.
        CompressionFailed, MicroError: TFLite Micro's tools or interpreter failed.
    """
    from edgeprune.compress import compress_model, verify

    t0 = time.perf_counter()
    options = inp.recipe.compress
    result = compress_model(dense.data, options.method, max_decoded_bytes=options.max_decoded_bytes)
    result = _pays_for_decode(result, dense.data, target)
    if result.note:
        log.warning("compress: %s", result.note)
        return CompressResult(dense, result, None, None, time.perf_counter() - t0)
    checked = verify(dense.data, result.model, inp.dataset.x_test, decoders=result.decoders)
    written = inp.out.write_flatbuffer(compressed_name(dense.mode), result.model, STAGE, dense.mode)
    log.info(
        "compress: %s %d -> %d B (%.2fx), bit-exact on %d samples",
        options.method,
        result.dense_bytes,
        result.model_bytes,
        result.ratio,
        checked.samples,
    )
    return CompressResult(dense, result, written, checked, time.perf_counter() - t0)


def would_ship(inp, model, target: Target, to_tflite) -> tuple[bytes, bool]:
    """The model the compress stage would ship for ``model``, a structured fit
    candidate not yet pruned: ``(flatbuffer, compressed)``.

    A copy of ``model`` gets what the later stages will give it, in numpy:
    the kernels the prune stage prunes magnitude-pruned to the recipe's
    sparsity and, with ``cluster.clusters``, every Conv and Dense kernel
    snapped to that many values; ``to_tflite`` converts it as the candidate
    check does, and it is compressed as :func:`compress_stage` compresses,
    the DECODE kernel's flash included (:func:`_pays_for_decode`), without the
    bit-exact verification. An estimate: fine-tuning moves the weights that
    survive, not how many there are, and the prune encoding's size depends only
    on their count; the LUT's on the count of values per channel.
    ``model`` is not modified.
    """
    from edgeprune.adapters import keras as ka
    from edgeprune.adapters import tfmot as tm
    from edgeprune.compress import compress_model

    recipe = inp.recipe
    copy = ka.clone(model)
    sparsity = tm.requested_sparsity(recipe.prune)
    pruned = {p.name: p.weight for p in tm.plan_layers(copy, recipe.prune) if p.pruned}
    for layer in copy.layers:
        _shape_weights(layer, pruned.get(layer.name), sparsity, recipe.cluster.clusters)
    dense = to_tflite(copy)
    options = recipe.compress
    result = compress_model(dense, options.method, max_decoded_bytes=options.max_decoded_bytes)
    result = _pays_for_decode(result, dense, target)
    return result.model, not result.note


def _shape_weights(layer, pruned_attr: str | None, sparsity: float, clusters: int) -> None:
    """Give ``layer``'s kernel the zeros and the distinct values it will have."""
    import numpy as np

    if pruned_attr and sparsity > 0:
        w = getattr(layer, pruned_attr)
        v = w.numpy()
        k = int(round(v.size * sparsity))
        if k:
            order = np.argsort(np.abs(v), axis=None, kind="stable")
            v.reshape(-1)[order[:k]] = 0
            w.assign(v)
    kernel = getattr(layer, "kernel", None)
    kind = type(layer).__name__
    if clusters and kernel is not None and kind.startswith(("Conv", "Dense")):
        v = kernel.numpy()
        if v.size > clusters:
            live = v != 0
            n = clusters - 1 if not live.all() else clusters  # pruned zeros are one value
            if live.any() and n > 0:
                centroids = np.linspace(v[live].min(), v[live].max(), n)
                nearest = np.abs(v[live][:, None] - centroids[None, :]).argmin(axis=1)
                v[live] = centroids[nearest]
                kernel.assign(v)
