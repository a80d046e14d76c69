"""The typed entries of ``report.json``: one frozen dataclass per stage and per part.

Each has ``to_dict`` and ``from_dict``; the JSON keys are the field names
(see :mod:`edgeprune.report` for reading, writing and merging).
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

from edgeprune import __version__
from edgeprune.report._entry import _Entry, _optional
from edgeprune.report.qat_entries import PreserveEntry
from edgeprune.report.structured import StructuredEntry
from edgeprune.rules.result import RuleResult

# 2: one rule result everywhere (``figure``, not ``measured``; ``key``, ``unit``,
# ``reference``, ``bound`` on every rule) and the check's ``preconditions``.
SCHEMA_VERSION = 2


def library_versions() -> dict[str, str | None]:
    """Python, edgeprune and the libraries that shape a run's figures (None: not installed)."""
    names = [
        "tensorflow",
        "tf-keras",
        "tensorflow-model-optimization",
        "ai-edge-litert",
        "tflite-micro",
        "numpy",
        "scikit-learn",
        "click",
    ]
    out: dict[str, str | None] = {"python": platform.python_version(), "edgeprune": __version__}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


@dataclass(frozen=True)
class InputsEntry(_Entry):
    """What the run took in: the model (a path or ``builtin:<name>``), the data and the task."""

    model: str
    data: dict  # Dataset.describe(): name, sha256, shapes
    task: str
    n_classes: int
    outputs_are_probabilities: bool
    model_sha256: str | None = _optional()  # of a model file, hashed before any write
    converted_from_keras3: dict | None = _optional()
    stripped_pruning_wrappers_on_load: bool | None = _optional()

    @property
    def data_name(self) -> str:
        return self.data["name"]

    @property
    def data_sha256(self) -> str:
        return self.data.get("sha256") or ""


@dataclass(frozen=True)
class _StageEntry(_Entry):
    """A stage command's entry also says what it ran on: ``input`` (the model and
    data), ``seed`` and ``recipe``; entries written by ``run`` share the header's."""

    input: dict | None = _optional(kw_only=True)
    seed: int | None = _optional(kw_only=True)
    recipe: dict | None = _optional(kw_only=True)


@dataclass(frozen=True)
class BaselineEntry(_StageEntry):
    trained: bool
    cached: bool
    train_metrics: dict
    seconds: float


@dataclass(frozen=True)
class StripEntry(_Entry):
    """Stripped vs pruned outputs on the test set; ``equal`` means bit-identical."""

    samples: int
    max_abs_diff: float
    equal: bool


@dataclass(frozen=True)
class PruneEntry(_StageEntry):
    """The tfmot stage. ``edgeprune prune`` also puts ``strip`` and ``structured``
    here; ``run`` gives them entries of their own."""

    _types: ClassVar[dict[str, Any]] = {"strip": StripEntry, "structured": StructuredEntry}
    schedule: dict  # SchedulePlan.to_dict()
    requested_sparsity: float
    overall_sparsity: float
    layers: list  # per weighted layer: weights, zeros, requested and achieved sparsity
    skipped_layers: dict  # layer -> why it was not pruned
    fine_tune_metrics: dict
    seconds: float
    strip: StripEntry | None = _optional()
    structured: StructuredEntry | None = _optional()


@dataclass(frozen=True)
class DenseVariant:
    """One way of quantizing Dense weights: its size, arena, quality and budget check."""

    bytes: int
    arena_bytes: int
    check: RuleResult
    metrics: dict  # flattened into the entry in JSON, as the evaluate entries are

    def to_dict(self) -> dict:
        return {
            "bytes": self.bytes,
            "arena_bytes": self.arena_bytes,
            "check": self.check.to_dict(),
            **self.metrics,
        }

    @classmethod
    def from_dict(cls, data: dict) -> DenseVariant:
        rest = {k: v for k, v in data.items() if k not in ("bytes", "arena_bytes", "check")}
        return cls(data["bytes"], data["arena_bytes"], RuleResult.from_dict(data["check"]), rest)


@dataclass(frozen=True)
class DenseEntry(_Entry):
    """The choice between per-channel and per-tensor Dense weights (TFLite Micro targets)."""

    _types: ClassVar[dict[str, Any]] = {"per_channel": DenseVariant, "per_tensor": DenseVariant}
    picked: str  # "per_channel" or "per_tensor"
    why: str
    per_channel: DenseVariant
    per_tensor: DenseVariant


@dataclass(frozen=True)
class QuantizeEntry(_StageEntry):
    _types: ClassVar[dict[str, Any]] = {
        "check": RuleResult,
        "dense_quantization": DenseEntry,
        "preserve": PreserveEntry,
    }
    mode: str
    calibration_samples: int
    calibration_source: str
    experimental_sparsity: bool
    check: RuleResult  # the quantization budget
    seconds: float
    dense_quantization: DenseEntry | None = _optional()
    preserve: PreserveEntry | None = _optional()  # zeros and clusters kept (qat_entries.py)


@dataclass(frozen=True)
class EvalEntry:
    """One model run on the test set: its metrics and its agreement with the reference."""

    artifact: str
    figures: dict  # metrics and agreement, flat in JSON
    agreement_reference: str

    def to_dict(self) -> dict:
        return {
            "artifact": self.artifact,
            **self.figures,
            "agreement_reference": self.agreement_reference,
        }

    @classmethod
    def from_dict(cls, data: dict) -> EvalEntry:
        figures = {k: v for k, v in data.items() if k not in ("artifact", "agreement_reference")}
        return cls(data["artifact"], figures, data["agreement_reference"])


@dataclass(frozen=True)
class CheckEntry(_Entry):
    """The device check (:meth:`edgeprune.rules.budget.CheckResult.to_dict`): the
    preconditions that held, then the budget rules."""

    _types: ClassVar[dict[str, Any]] = {
        "preconditions": (tuple, RuleResult),
        "rules": (tuple, RuleResult),
    }
    target: str
    ok: bool
    budget: dict
    preconditions: tuple[RuleResult, ...]
    rules: tuple[RuleResult, ...]
    evidence: dict  # the measured figures and where they came from

    def rule(self, name: str) -> RuleResult | None:
        return next((r for r in self.rules if r.name == name), None)

    @property
    def latency_measured(self) -> bool:
        """True when the latency figure was measured, not estimated."""
        return bool(self.evidence.get("latency_measured"))


@dataclass(frozen=True)
class ModelSize(_Entry):
    """Sizes measured on a ``.tflite``. ``bytes`` is what flash holds: the
    flatbuffer stores every weight, zero or not. ``gzip_bytes`` is what a
    compressed over-the-air update would carry."""

    path: str
    mode: str
    bytes: int
    gzip_bytes: int
    weight_elements: int
    zero_weight_elements: int
    zero_weight_fraction: float
    parameter_count: int
    ops: dict


@dataclass(frozen=True)
class Stages(_Entry):
    """One entry per stage that ran, in pipeline order; ``evaluate`` by model."""

    _types: ClassVar[dict[str, Any]] = {
        "baseline": BaselineEntry,
        "structured": StructuredEntry,
        "prune": PruneEntry,
        "strip": StripEntry,
        "quantize": QuantizeEntry,
        "evaluate": (dict, EvalEntry),
        "check": CheckEntry,
    }
    baseline: BaselineEntry | None = _optional()
    structured: StructuredEntry | None = _optional()
    prune: PruneEntry | None = _optional()
    strip: StripEntry | None = _optional()
    quantize: QuantizeEntry | None = _optional()
    evaluate: dict = field(default_factory=dict)  # "baseline", "pruned", "final" -> EvalEntry
    check: CheckEntry | None = _optional()
    compress: Any = _optional()  # CompressEntry: typed by edgeprune.report.compress_entries


@dataclass(frozen=True)
class ValidationResult(_Entry):
    """One validation run of a run folder's final model on one runner
    (``validation.<runner>`` in ``report.json``; :mod:`edgeprune.stages.validate`)."""

    _types: ClassVar[dict[str, Any]] = {"rules": (tuple, RuleResult), "notes": tuple}
    runner: str
    where: str
    timing: str
    model: str
    model_sha256: str
    data: str
    split: str
    samples: int  # asked for
    completed: int
    partial: bool
    error: str
    metrics: dict
    baseline_metrics: dict
    agreement: dict
    latency_ms: dict
    rules: tuple[RuleResult, ...] = ()
    notes: tuple[str, ...] = ()
    clock_hz: int | None = None  # the clock the device reported, where it reports one

    @property
    def ok(self) -> bool:
        return not self.partial and all(r.ok for r in self.rules)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "ok": self.ok}


@dataclass(frozen=True)
class Report(_Entry):
    """A run folder's ``report.json``."""

    _types: ClassVar[dict[str, Any]] = {
        "inputs": InputsEntry,
        "stages": Stages,
        "sizes": (dict, ModelSize),
        "validation": (dict, ValidationResult),
        "notes": tuple,
    }
    seed: int
    recipe: dict
    inputs: InputsEntry
    stages: Stages
    sizes: dict = field(default_factory=dict)  # "baseline", ... -> ModelSize
    notes: tuple[str, ...] = ()
    seconds: float | None = _optional()  # the whole run, in process
    written: str | None = _optional(kw_only=True)  # when report.json was written (UTC, ISO 8601)
    target: dict | None = _optional()  # the device profile of a run for a target
    tool: dict = field(default_factory=lambda: {"name": "edgeprune", "version": __version__})
    versions: dict = field(default_factory=library_versions)
    artifacts: dict = field(default_factory=dict)  # name -> stage, path, bytes, sha256
    validation: dict | None = _optional()  # runner -> ValidationResult

    def to_dict(self) -> dict:
        body = super().to_dict()
        head = {k: body.pop(k) for k in ("tool", "versions")}
        return {"schema_version": SCHEMA_VERSION, **head, **body}

    def sha256_of(self, name: str) -> str | None:
        """The SHA-256 the report records for the artifact ``name``."""
        return self.artifacts.get(name, {}).get("sha256")


@dataclass(frozen=True)
class CheckReport(_Entry):
    """What ``edgeprune check --report`` writes: one model against one device."""

    model: str
    model_sha256: str
    target: dict
    check: CheckEntry
    _types: ClassVar[dict[str, Any]] = {"check": CheckEntry}
    tool: dict = field(default_factory=lambda: {"name": "edgeprune"})
    versions: dict = field(default_factory=library_versions)

    def to_dict(self) -> dict:
        body = super().to_dict()
        head = {k: body.pop(k) for k in ("tool", "versions")}
        return {"schema_version": SCHEMA_VERSION, **head, **body}
