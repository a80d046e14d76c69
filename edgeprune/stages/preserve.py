"""Did the int8 model keep what pruning and clustering made? The checks after conversion.

Plain quantization-aware training trains every weight freely: the design notes
measured a 0.90-sparse model coming out 0.31 sparse, and clusters dissolve the
same way. The preserving schemes (pqat, cqat, pcqat) should keep both; these
checks read the converted ``.tflite`` and hold it to that, layer by layer:

* sparsity: a layer's int8 zero fraction (stored values equal to the zero
  point) is at least its float zero fraction minus :data:`SPARSITY_TOLERANCE`.
  More zeros is fine: small weights round to zero in int8.
* clusters: a clustered layer's int8 kernel holds at most ``clusters`` distinct
  values in each output channel (per-channel quantization gives each channel
  its own scale, so one float value maps to one int8 value per channel), or in
  the tensor (per-tensor).

What the checks do not prove: that the int8 model is accurate (the quantization
budget judges that), nor anything of a layer whose int8 weights carry no name
that maps back to it (listed with ``found`` false).
"""

from __future__ import annotations

import logging

import numpy as np

from edgeprune.errors import VerificationError
from edgeprune.report.qat_entries import PreserveEntry, PreserveLayer
from edgeprune.tflite.names import keras_layer
from edgeprune.tflite.parse import inspect_model, read_constant

# PQAT freezes the zeros; int8 rounding can only add zeros. One percentage point
# absorbs a converter that folds or splits a tensor differently, and is far below
# what plain QAT loses (0.75 -> 0.30 on the tests' tiny models).
log = logging.getLogger(__name__)

SPARSITY_TOLERANCE = 0.01
QAT_PREFIX = "quant_"  # tfmot renames each wrapped layer quant_<name>


def int8_weights(data: bytes) -> dict[str, tuple[int, int, int, bool]]:
    """Per Keras layer of the converted ``data``: (weights, zeros, the largest count of
    distinct stored values in one channel, per-channel quantized)."""
    info = inspect_model(data)
    by_key = {(t.subgraph, t.index): t for t in info.tensors}
    out: dict[str, tuple[int, int, int, bool]] = {}
    for w in info.weights.per_tensor:
        tensor = by_key[(w.subgraph, w.index)]
        values = read_constant(data, tensor)
        per_channel = len(tensor.scales) > 1
        if per_channel:
            axis = tensor.quantized_dimension
            distinct = max(
                len(np.unique(np.take(values, i, axis=axis))) for i in range(values.shape[axis])
            )
        else:
            distinct = len(np.unique(values))
        layer = keras_layer(w.name).removeprefix(QAT_PREFIX)
        n, zeros, d, pc = out.get(layer, (0, 0, 0, False))
        out[layer] = (n + w.elements, zeros + w.zero_elements, max(d, distinct), pc or per_channel)
    return out


def _row(name, figures, int8, clustered: bool, checks, clusters: int) -> PreserveLayer:
    weights, zeros, float_distinct = figures
    float_zf = zeros / weights if weights else 0.0
    if name not in int8:
        why = "no int8 weight tensor is named after this layer: not checked"
        return PreserveLayer(
            name, weights, float_zf, None, float_distinct, None, False, clustered, False, True, why
        )
    n8, z8, d8, per_channel = int8[name]
    int8_zf = z8 / n8 if n8 else 0.0
    why = ""
    if "sparsity" in checks and int8_zf < float_zf - SPARSITY_TOLERANCE:
        why = (
            f"{int8_zf:.3f} of its int8 weights are zero against {float_zf:.3f} of its float "
            f"weights (tolerance {SPARSITY_TOLERANCE})"
        )
    elif "clusters" in checks and clustered and max(d8, float_distinct) > clusters:
        where = "in one output channel" if per_channel else "in the tensor"
        why = (
            f"{d8} distinct int8 values {where} ({float_distinct} in the float kernel), "
            f"more than cluster.clusters = {clusters}"
        )
    return PreserveLayer(
        name,
        weights,
        float_zf,
        int8_zf,
        float_distinct,
        d8,
        per_channel,
        clustered,
        True,
        not why,
        why,
    )


def check_preserved(
    mode: str,
    float_figures: dict[str, tuple[int, int, int]],
    data: bytes,
    *,
    clustered: list[str],
    clusters: int,
    cluster_epochs: int = 0,
    qat_epochs: int = 0,
) -> PreserveEntry:
    """Check the int8 ``data`` against the float model's per-layer ``float_figures``
    (weights, zeros, distinct values; :func:`edgeprune.adapters.tfmot_qat.kernel_figures`).

    ``mode`` chooses the checks: pqat sparsity, cqat clusters, pcqat both; plain
    ``qat`` both (to show what it destroys); int8 after clustering clusters.

    Raises:
        VerificationError: a layer lost its zeros or clusters (the first such layer,
            with its figures), or no layer of the float model maps to an int8 tensor.
    """
    checks = []
    if mode in ("pqat", "pcqat", "qat"):
        checks.append("sparsity")
    if clusters and mode in ("cqat", "pcqat", "qat", "int8"):
        checks.append("clusters")
    int8 = int8_weights(data)
    rows = tuple(
        _row(name, figs, int8, name in clustered, checks, clusters)
        for name, figs in float_figures.items()
    )
    if rows and not any(r.found for r in rows):
        raise VerificationError(
            f"{mode}: no weight tensor of the int8 model maps to a layer of the float model "
            f"({', '.join(r.layer for r in rows)}), so nothing could be checked"
        )
    for r in rows:
        if not r.found and (r.clustered or r.float_zero_fraction > SPARSITY_TOLERANCE):
            log.warning("%s: layer %s not checked: %s", mode, r.layer, r.why)
    bad = next((r for r in rows if not r.ok), None)
    if bad is not None:
        raise VerificationError(
            f"{mode} did not keep layer {bad.layer}: {bad.why}; nothing was written "
            f'(quantize.mode = "int8", post-training, keeps zeros and clusters exactly)'
        )
    return PreserveEntry(
        mode, tuple(checks), SPARSITY_TOLERANCE, clusters, cluster_epochs, qat_epochs, rows
    )
