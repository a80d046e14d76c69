"""A run folder's models as validation sees them: the final model, the float
baseline, the compressed model the firmware embeds, and which file each runner runs.

A run whose compress stage shipped ``final_int8_compressed.tflite`` has two
final models. TFLite Micro runners (``tflm``, ``serial``: the board's firmware
embeds it) run the compressed one; LiteRT runners (``host``, ``ssh``) cannot,
LiteRT having no DECODE operator, and run the uncompressed ``final_int8.tflite``.
Each validation result names the file it ran and, with compression, says why
(:func:`runner_model`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgeprune import artifacts, report
from edgeprune.errors import BadInputError


@dataclass(frozen=True)
class RunInfo:
    """What validation needs from a run folder's report."""

    folder: str
    model_path: str
    model_sha256: str
    baseline_path: str
    task: str
    n_classes: int
    probabilities: bool
    data_name: str
    data_sha256: str
    # the DECODE-compressed model the firmware embeds ("": the run shipped model_path)
    shipped_path: str = ""
    shipped_sha256: str = ""


def read_run(folder: str) -> RunInfo:
    """The final model and its facts from ``folder/report.json``.

    Raises:
        BadInputError: no report, another schema, no final model, or the model
            changed since.
    """
    path = os.path.join(folder, report.REPORT_NAME)
    if not os.path.isfile(path):
        raise BadInputError(
            f"{folder} has no {report.REPORT_NAME}; validate a run folder "
            f"written by `edgeprune run` (make <target> writes build/<target>)"
        )
    run = report.read(path)
    if run.stages.quantize is None:
        raise BadInputError(
            f"{path} is not a complete edgeprune report (no quantize stage); "
            f"rerun `edgeprune run` for this folder"
        )
    name = artifacts.final_tflite_name(run.stages.quantize.mode)
    model_path = os.path.join(folder, name)
    baseline = os.path.join(folder, artifacts.BASELINE_TFLITE)
    for p in (model_path, baseline):
        if not os.path.isfile(p):
            raise BadInputError(f"{p} is missing from the run folder; rerun `edgeprune run`")
    sha = artifacts.sha256_file(model_path)
    recorded = run.sha256_of(name)
    if recorded is not None and recorded != sha:
        raise BadInputError(
            f"{model_path} changed since report.json was written; rerun "
            f"`edgeprune run` so that the report describes the model"
        )
    shipped, shipped_sha = _shipped(folder, run)
    inputs = run.inputs
    return RunInfo(
        folder,
        model_path,
        sha,
        baseline,
        inputs.task,
        inputs.n_classes,
        bool(inputs.outputs_are_probabilities),
        inputs.data_name,
        inputs.data_sha256,
        shipped,
        shipped_sha,
    )


def _shipped(folder: str, run) -> tuple[str, str]:
    """The compressed model the compress stage shipped, and its SHA-256 (``""`` twice
    when it shipped none)."""
    entry = run.stages.compress
    if entry is None or not entry.model:
        return "", ""
    path = os.path.join(folder, entry.model)
    if not os.path.isfile(path):
        raise BadInputError(f"{path} is missing from the run folder; rerun `edgeprune run`")
    sha = artifacts.sha256_file(path)
    recorded = run.sha256_of(entry.model)
    if recorded is not None and recorded != sha:
        raise BadInputError(
            f"{path} changed since report.json was written; rerun `edgeprune run` so "
            f"that the report describes the model"
        )
    return path, sha


#: Runners that run TFLite Micro: they run the model the firmware embeds.
MICRO_RUNNERS = ("tflm", "serial")


def runner_model(run: RunInfo, runner: str) -> tuple[str, str, str]:
    """``(path, sha256, note)`` of the file ``runner`` runs: a TFLite Micro runner
    runs the DECODE-compressed model where the run shipped one, a LiteRT runner
    (host, ssh) the uncompressed one, because LiteRT has no DECODE operator;
    ``note`` says which and why ("" for a run without compression)."""
    if not run.shipped_path:
        return run.model_path, run.model_sha256, ""
    shipped, dense = os.path.basename(run.shipped_path), os.path.basename(run.model_path)
    if runner in MICRO_RUNNERS:
        return (
            run.shipped_path,
            run.shipped_sha256,
            f"the {runner} runner ran {shipped}, the DECODE-compressed model the firmware "
            f"embeds; the host reference is {dense} in LiteRT (the compress stage proved "
            f"both bit-exact in TFLite Micro)",
        )
    return (
        run.model_path,
        run.model_sha256,
        f"the {runner} runner ran {dense}, the uncompressed model: LiteRT has no DECODE "
        f"operator, so it cannot run {shipped}, the model the firmware embeds (the compress "
        f"stage proved both bit-exact in TFLite Micro)",
    )


def litert_stand_in(model_path: str, target_id: str) -> tuple[str, str] | None:
    """``(path, why)``: the uncompressed model a LiteRT target ``target_id`` runs in
    place of the DECODE-compressed model at ``model_path``, the dense model its run's
    compress stage made it from (``report.json`` beside it), when that is there
    unchanged; None otherwise (a compressed file on its own). No side effects."""
    folder = os.path.dirname(os.path.abspath(model_path))
    path = os.path.join(folder, report.REPORT_NAME)
    try:
        run = report.read(path) if os.path.isfile(path) else None
    except BadInputError:
        return None
    entry = run.stages.compress if run is not None else None
    if entry is None or entry.model != os.path.basename(model_path):
        return None
    dense = os.path.join(folder, entry.dense_model)
    recorded = run.sha256_of(entry.dense_model)
    if not os.path.isfile(dense) or recorded not in (None, artifacts.sha256_file(dense)):
        return None
    return dense, (
        f"LiteRT has no DECODE operator, so {target_id} runs {entry.dense_model}, the "
        f"uncompressed model {entry.model} was made from (the compress stage proved both "
        f"bit-exact in TFLite Micro): checked {entry.dense_model} instead"
    )
