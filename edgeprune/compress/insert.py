"""Write the compressed model: the plan's tensors encoded, DECODE operators inserted.

The encoding of ``prune`` tensors is ours (numpy, here); everything that
needs TFLite Micro's Python modules (its LUT compressor, ``decode_insert``,
the alignment pass) runs in the TFLite Micro worker process
(:mod:`edgeprune.tflm.decode_worker`), as every use of ``tflite_micro`` does.
"""

from __future__ import annotations

import dataclasses
import json
import logging

from edgeprune.compress import prune_format
from edgeprune.compress.plan import (
    CompressedModel,
    CompressionFailed,
    TensorCompression,
    plan,
)

logger = logging.getLogger(__name__)

_COMPRESS_TIMEOUT_S = 300.0


def compress_model(
    model: bytes, method: str = "prune", *, max_decoded_bytes: int | None = None
) -> CompressedModel:
    """Compress ``model`` (an int8 ``.tflite``'s bytes) for TFLite Micro's DECODE operator.

    ``method`` is ``"prune"`` (store only the values that differ from the zero
    point, plus a bit mask), ``"lut"`` (a table of the distinct values per
    channel plus packed indices: for clustered weights) or ``"both"`` (the
    smaller of the two per tensor). Tensors whose encoding would not make
    the model smaller stay dense; so do tensors an operator needs constant
    at prepare time, and tensors over ``max_decoded_bytes`` (a decoded
    tensor takes arena while its consumer runs). If nothing is compressed,
    the result holds the input model and a one-line ``note`` (not an
    error). Writes nothing the caller sees (temporary files of the worker
    process only). The result is not yet run: :func:`~edgeprune.compress.verify`
    proves it lossless.

    Raises:
        CompressionError: ``method`` is unknown or ``max_decoded_bytes`` negative.
        TFLiteFormatError: ``model`` is not a valid ``.tflite``.
        CompressionFailed: TFLite Micro's tools failed (the message quotes them).
    """
    from edgeprune.tflite import read_constant
    from edgeprune.tflm.client import Worker

    model = bytes(model)
    decisions = list(plan(model, method, max_decoded_bytes=max_decoded_bytes))
    chosen = [d for d in decisions if d.method]
    if not chosen:
        return CompressedModel(
            model=model,
            method=method,
            dense_bytes=len(model),
            model_bytes=len(model),
            tensors=tuple(decisions),
            note=_nothing_note(decisions, method),
        )
    from edgeprune.tflite import inspect_model

    tensors = {(t.subgraph, t.index): t for t in inspect_model(model).tensors}
    with Worker(model) as worker:
        items = []
        for d in chosen:
            item = {"subgraph": d.subgraph, "tensor": d.index, "method": d.method}
            info = tensors[d.subgraph, d.index]
            if d.method == "prune":
                zero_points = prune_format.ZeroPoints(
                    tuple(info.zero_points) or (0,), info.quantized_dimension if info.scales else 0
                )
                encoded, ancillary = prune_format.encode(read_constant(model, info), zero_points)
                stem = worker.directory / f"t{d.subgraph}_{d.index}"
                stem.with_suffix(".bits").write_bytes(encoded)
                stem.with_suffix(".anc").write_bytes(ancillary)
                item.update(
                    encoded=str(stem.with_suffix(".bits")), ancillary=str(stem.with_suffix(".anc"))
                )
            else:
                per_channel = len(info.scales) > 1
                item.update(
                    bitwidth=d.lut_bits, axis=info.quantized_dimension if per_channel else None
                )
            items.append(item)
        plan_path = worker.directory / "plan.json"
        out_path = worker.directory / "compressed.tflite"
        plan_path.write_text(json.dumps({"tensors": items}))
        reply = worker.request(
            {"cmd": "compress", "plan": str(plan_path), "out": str(out_path)}, _COMPRESS_TIMEOUT_S
        )
        if not reply.ok:
            raise CompressionFailed(
                f"TFLite Micro's compression tools failed: {reply.message}; "
                f"compress with another method or report the model"
            )
        compressed = out_path.read_bytes()
    skipped = {(s["subgraph"], s["tensor"]): s["why"] for s in reply.details.get("skipped", [])}
    sizes = {(s["subgraph"], s["tensor"]): s for s in reply.details.get("sizes", [])}
    final = []
    for d in decisions:
        key = (d.subgraph, d.index)
        if key in skipped:
            d = dataclasses.replace(d, method="", reason=f"left dense: {skipped[key]}")
        elif key in sizes and d.method == "lut":
            s = sizes[key]  # what TFLite Micro's LUT compressor wrote
            d = dataclasses.replace(d, lut_bytes=s["encoded_bytes"] + s["ancillary_bytes"])
        final.append(d)
    if not any(d.method for d in final):
        return CompressedModel(
            model, method, len(model), len(model), tuple(final), note=_nothing_note(final, method)
        )
    if len(compressed) >= len(model):
        note = (
            f"the compressed model ({len(compressed):,} B) is not smaller than the dense one "
            f"({len(model):,} B); kept dense"
        )
        final = [dataclasses.replace(d, method="", reason=note) if d.method else d for d in final]
        return CompressedModel(model, method, len(model), len(model), tuple(final), note=note)
    result = CompressedModel(compressed, method, len(model), len(compressed), tuple(final))
    logger.info(
        "compressed %d of %d tensors (%s): %d -> %d bytes",
        sum(1 for d in final if d.method),
        len(final),
        method,
        len(model),
        len(compressed),
    )
    return result


def _nothing_note(decisions: list[TensorCompression], method: str) -> str:
    if not decisions:
        return "no int8 constant tensor to compress; the model is unchanged"
    return (
        f"no tensor is worth compressing with {method} (e.g. {decisions[0].name}: "
        f"{decisions[0].reason}); the model is unchanged"
    )
