"""The report's record of what quantization kept: pruned zeros and weight clusters.

Split from :mod:`edgeprune.report.entries` (at its size limit); the
:class:`~edgeprune.report.entries.QuantizeEntry` holds one :class:`PreserveEntry`
when the run clustered weights or used a preserving QAT mode (pqat, cqat, pcqat).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class PreserveLayer:
    """One weighted layer, float model against int8 model.

    ``int8_distinct`` is the largest count of distinct stored values in one output
    channel (per-channel quantization) or in the tensor (per-tensor); ``found`` is
    false when no int8 weight tensor carries the layer's name (then nothing about
    the layer was checked, and ``why`` says so).
    """

    layer: str
    weights: int
    float_zero_fraction: float
    int8_zero_fraction: float | None
    float_distinct: int
    int8_distinct: int | None
    per_channel: bool
    clustered: bool
    found: bool
    ok: bool
    why: str  # empty when ok


@dataclass(frozen=True)
class PreserveEntry:
    """The checks after an int8 conversion that must keep zeros (``"sparsity"``: every
    layer's int8 zero fraction at least its float one minus ``sparsity_tolerance``)
    and clusters (``"clusters"``: every clustered layer at most ``clusters`` distinct
    values per channel), with the QAT fine-tuning that preceded it (``qat_epochs``
    0: post-training int8)."""

    mode: str
    checks: tuple[str, ...]
    sparsity_tolerance: float
    clusters: int  # 0: not clustered
    cluster_epochs: int
    qat_epochs: int
    layers: tuple[PreserveLayer, ...]

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.layers)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PreserveEntry:
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["checks"] = tuple(values["checks"])
        values["layers"] = tuple(PreserveLayer(**row) for row in values["layers"])
        return cls(**values)
