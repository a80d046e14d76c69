"""``report.json``: its typed entries, the one write path, the one read path, the merge rules.

A run folder's report is a :class:`Report`: a header (tool, library versions,
seed, recipe, inputs), one entry per stage (:class:`Stages`), the sizes of the
models, notes, the artifacts with their SHA-256 and the validation results.
Every entry is a frozen dataclass with ``to_dict`` and ``from_dict``; the JSON
keys are the field names. :func:`write` is the only writer (atomic, with the
schema version), :func:`read` the only reader (it refuses another schema with
one line). Two merge rules live here: a stage command keeps the entries of
the stages that produced its input (:func:`merge_stage`), and a validation
result goes under ``validation.<runner>`` (:func:`add_validation`).

``edgeprune check --report`` writes a smaller document, :class:`CheckReport`;
a tree model's run a :class:`TreeReport` (:mod:`edgeprune.report.tree_entries`).
This module knows nothing of how the figures were measured.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import math
import os
from dataclasses import replace

from edgeprune import artifacts
from edgeprune.errors import BadInputError
from edgeprune.report.compress_entries import CompressEntry
from edgeprune.report.entries import (
    SCHEMA_VERSION,
    BaselineEntry,
    CheckEntry,
    CheckReport,
    DenseEntry,
    DenseVariant,
    EvalEntry,
    InputsEntry,
    ModelSize,
    PruneEntry,
    QuantizeEntry,
    Report,
    Stages,
    StripEntry,
    ValidationResult,
    library_versions,
)
from edgeprune.report.structured import (
    FitCandidate,
    FitEntry,
    FitRule,
    RoundEntry,
    StructuredEntry,
)
from edgeprune.report.tree_entries import TreeModelEntry, TreeReport, TreeRunEntry
from edgeprune.rules.result import RuleResult

__all__ = [
    "ValidationResult",
    "SCHEMA_VERSION",
    "REPORT_NAME",
    "HTML_NAME",
    "BaselineEntry",
    "CheckEntry",
    "CheckReport",
    "CompressEntry",
    "DenseEntry",
    "DenseVariant",
    "EvalEntry",
    "FitCandidate",
    "FitEntry",
    "FitRule",
    "InputsEntry",
    "ModelSize",
    "PruneEntry",
    "QuantizeEntry",
    "Report",
    "RoundEntry",
    "RuleResult",
    "Stages",
    "StripEntry",
    "StructuredEntry",
    "TreeModelEntry",
    "TreeReport",
    "TreeRunEntry",
    "library_versions",
    "size_notes",
    "write",
    "read",
    "load",
    "begin_run",
    "remove",
    "write_run",
    "add_validation",
    "kept_stages",
    "merge_stage",
]

REPORT_NAME = "report.json"
# The page built from report.json (edgeprune.presentation.html). Whoever replaces or
# removes report.json removes it first, so a report.html always shows the report.json
# beside it, or is absent (then `edgeprune report FOLDER` rebuilds it).
HTML_NAME = "report.html"


def size_notes(sizes: dict[str, ModelSize]) -> tuple[str, ...]:
    """Plain statements about what the sizes mean."""
    notes = []
    b, st, p = sizes.get("baseline"), sizes.get("structured"), sizes.get("pruned")
    if b and st:
        notes.append(
            f"Structured pruning removed whole channels: the structured float32 flatbuffer is "
            f"{st.bytes} bytes vs {b.bytes} baseline ({b.bytes / st.bytes:.2f}x smaller, "
            f"{st.parameter_count} vs {b.parameter_count} parameters); this saving is real on "
            f"every runtime."
        )
    before, name = (st, "structured") if st else (b, "baseline")
    if before and p:
        notes.append(
            f"Unstructured sparsity does not shrink the flatbuffer: pruned float32 is "
            f"{p.bytes} bytes vs {before.bytes} {name} ({p.bytes - before.bytes:+d}); TFLite "
            f"Micro stores and runs every weight. Only the gzip size changes ({p.gzip_bytes} "
            f"vs {before.gzip_bytes} bytes), which matters for over-the-air updates, not for "
            f"flash or RAM."
        )
    return tuple(notes)


# ---------------------------------------------------------------- read and write


def write(path: str | os.PathLike, report: Report | CheckReport) -> str:
    """Write ``report`` to ``path`` atomically, with the schema version; return the path.

    Raises:
        ArtifactWriteError: the file could not be written.
    """
    # allow_nan=False: a NaN or inf (a device's broken timer) would make the file
    # invalid JSON; every such figure is written as null instead.
    text = json.dumps(_finite(report.to_dict()), indent=2, allow_nan=False)
    artifacts.write_bytes_atomic(path, (text + "\n").encode())
    return os.fspath(path)


def _finite(obj):
    """``obj`` with every NaN and infinity replaced by None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def read(path: str | os.PathLike) -> Report:
    """Read a run folder's ``report.json`` into a :class:`Report`.

    Raises:
        BadInputError: missing, unreadable, another schema version, or incomplete.
    """
    try:
        with open(path, encoding="utf-8") as fh:
            body = json.load(fh)
    except FileNotFoundError:
        raise BadInputError(f"{path} does not exist; run `edgeprune run` first") from None
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{path} is not readable JSON ({exc}); re-run the pipeline") from None
    version = body.get("schema_version") if isinstance(body, dict) else None
    if version != SCHEMA_VERSION:
        raise BadInputError(
            f"{path} has report schema {version}; this edgeprune reads "
            f"schema {SCHEMA_VERSION}; re-run the pipeline"
        )
    kind = TreeReport if "trees" in body else Report  # a tree model's run (edgeprune.trees)
    try:
        return kind.from_dict(body)
    except (TypeError, KeyError, AttributeError) as exc:
        raise BadInputError(
            f"{path} is not a complete edgeprune report ({exc}); re-run "
            f"the pipeline for this folder"
        ) from None


def load(out: artifacts.RunDir) -> Report | None:
    """The folder's existing report, its artifacts adopted by ``out``; None when there
    is none or it cannot be used (another schema, incomplete), which is then not merged."""
    path = out.file(REPORT_NAME)
    if not os.path.isfile(path):
        return None
    try:
        old = read(path)
    except BadInputError:
        return None
    out.artifacts = {**old.artifacts, **out.artifacts}
    return old


def begin_run(out: artifacts.RunDir) -> set[str]:
    """Start a fresh run in ``out``: remove its ``report.json`` (it would describe files
    this run is about to replace) and return the artifact names it listed."""
    path = out.file(REPORT_NAME)
    _drop_html(out.path)
    if not os.path.isfile(path):
        return set()
    try:
        old = set(read(path).artifacts)
    except BadInputError:
        old = set()
    os.unlink(path)
    return old


def remove(folder: str) -> None:
    """Delete ``folder``'s ``report.json`` and the ``report.html`` built from it."""
    for name in (HTML_NAME, REPORT_NAME):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(folder, name))


def _drop_html(folder: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(folder, HTML_NAME))


def write_run(out: artifacts.RunDir, report: Report) -> str:
    """Write ``report`` as ``out``'s ``report.json``, listing every artifact ``out`` holds."""
    os.makedirs(out.path, exist_ok=True)
    _drop_html(out.path)
    written = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    body = replace(report, artifacts=dict(out.artifacts), written=written)
    return write(out.file(REPORT_NAME), body)


def add_validation(folder: str, entry: ValidationResult) -> str:
    """Put one validation result under ``validation.<runner>`` of ``folder``'s report
    (replacing that runner's earlier one); every other entry is kept.

    Raises:
        BadInputError: the report cannot be read (see :func:`read`).
    """
    path = os.path.join(folder, REPORT_NAME)
    report = read(path)
    validation = {**(report.validation or {}), entry.runner: entry}
    _drop_html(folder)
    return write(path, replace(report, validation=validation))


# ---------------------------------------------------------------- merge rules

# The stages a single-stage command can run, in order, and the artifact each hands on.
STAGE_ORDER = ("baseline", "prune", "quantize")
STAGE_OUTPUT = {"baseline": artifacts.BASELINE_KERAS, "prune": artifacts.PRUNED_KERAS}
# sizes and evaluate entries by model -> the stage that made the model
_MADE_BY = {"baseline": "baseline", "pruned": "prune"}


def kept_stages(
    old: Report | None, stage: str, listed: dict, input_sha256: str | None, data_sha256: str
) -> set[str]:
    """The earlier stages whose entries a ``stage`` command keeps: only while they
    produced its input (the artifact ``listed`` for them has the input's hash, and
    the data is the same), together with the stages before them."""
    if old is None or old.inputs.data_sha256 != data_sha256:
        return set()
    keep: set[str] = set()
    for earlier in STAGE_ORDER[: STAGE_ORDER.index(stage)]:
        produced = listed.get(STAGE_OUTPUT.get(earlier, ""), {}).get("sha256")
        if produced and produced == input_sha256:
            keep = set(STAGE_ORDER[: STAGE_ORDER.index(earlier) + 1])
    return keep


def merge_stage(old: Report | None, keep: set[str], new: Report) -> Report:
    """``new`` (one stage command's report) with ``old``'s entries of the ``keep`` stages.

    A kept entry written by ``run`` gets the old header's input, seed and recipe,
    so that every entry says what it ran on. Kept sizes and evaluations are those
    of models the kept stages made; everything else of ``old`` is dropped.
    """
    if old is None:
        return new
    kept = {}
    for name in keep:
        entry = getattr(old.stages, name)
        if entry is not None and entry.input is None:
            entry = replace(entry, input=old.inputs.to_dict(), seed=old.seed, recipe=old.recipe)
        kept[name] = entry
    evaluate = {k: v for k, v in old.stages.evaluate.items() if _MADE_BY.get(k) in keep}
    sizes = {k: v for k, v in old.sizes.items() if _MADE_BY.get(k) in keep}
    sizes.update(new.sizes)
    stages = replace(new.stages, **kept, evaluate={**evaluate, **new.stages.evaluate})
    return replace(new, stages=stages, sizes=sizes, notes=size_notes(sizes))
