"""How a run and a stage command undo what they wrote when they fail part way.

A folder holds a finished run, or none: :func:`undone_on_failure` (a whole
run) and :func:`stage_undone_on_failure` (``prune``/``quantize`` alone)
delete what was written, and :func:`may_write` names everything a run may
write, for the journal that undoes a run killed with ``kill -9``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

from edgeprune import artifacts, report
from edgeprune.stages.compress import compressed_name
from edgeprune.stages.firmware import FOLDER as FIRMWARE_FOLDER
from edgeprune.stages.inputs import Inputs
from edgeprune.target import Target

log = logging.getLogger("edgeprune.pipeline")


def may_write(inp: Inputs, target: Target | None) -> set[str]:
    """Every artifact name :func:`run` may write (``firmware`` is a folder),
    never the input model."""
    names = {artifacts.BASELINE_KERAS, artifacts.BASELINE_TFLITE, artifacts.PRUNED_KERAS}
    names |= {artifacts.PRUNED_TFLITE, artifacts.final_tflite_name(inp.recipe.quantize.mode)}
    if inp.builtin is not None:
        names.add(artifacts.BASELINE_META)
    if inp.recipe.structured.goal != "none":
        names |= {artifacts.STRUCTURED_KERAS, artifacts.STRUCTURED_TFLITE}
    if target is not None and target.runtime == "tflm":
        names.add(FIRMWARE_FOLDER)
    if inp.recipe.compress.method != "none":
        names.add(compressed_name(inp.recipe.quantize.mode))
    source = os.path.abspath(inp.model_source)
    return {n for n in names if os.path.abspath(inp.out.file(n)) != source}


@contextlib.contextmanager
def undone_on_failure(inp: Inputs, previous: set[str]) -> Iterator[None]:
    """A run that fails part way (any exception, Ctrl-C too) leaves no artifact:
    what it wrote is deleted, and so is what the report it replaced listed (that
    report is gone, see :func:`report.begin_run`). A failed run could otherwise
    leave ``baseline.keras`` that looks like a finished run's."""
    try:
        yield
    except BaseException:
        if inp.out.undo(previous, inp.model_source):
            log.warning("the run failed: removed its artifacts from %s", inp.out.path)
        raise


@contextlib.contextmanager
def stage_undone_on_failure(inp: Inputs, stage: str) -> Iterator[None]:
    """A stage command that fails part way leaves the folder as its success would
    have, without its own entry: its files are deleted, and the folder's report
    keeps only the earlier stages that produced its input (their files too); a
    report left with no stage is deleted with its files."""
    try:
        yield
    except BaseException:
        if not inp.out.artifacts:  # failed before writing: the folder is as it was
            raise
        with contextlib.suppress(OSError):
            old = report.load(inp.out)
            keep = report.kept_stages(
                old, stage, inp.out.artifacts, inp.input_sha256, inp.dataset.sha256
            )
            forget_stale(inp, keep, set())
            try:
                if old is not None and keep:
                    header = report.Report(old.seed, old.recipe, old.inputs, report.Stages())
                    report.write_run(inp.out, report.merge_stage(old, keep, header))
                elif old is not None:
                    report.remove(inp.out.path)
            except OSError:  # (a full disk) the old report lists files just deleted
                report.remove(inp.out.path)
        log.warning("%s failed: removed its artifacts from %s", stage, inp.out.path)
        raise


def forget_stale(inp: Inputs, keep: set[str], fresh: set[str]) -> None:
    """Unlist the artifacts of ``inp.out`` whose stage is not in ``keep`` (nor in
    ``fresh``) and delete their files; the input model file is never deleted."""
    protected = {os.path.abspath(inp.model_source)}
    for name, listed in list(inp.out.artifacts.items()):
        stale = listed.get("stage") not in keep and name not in fresh
        if stale and os.path.abspath(inp.out.file(name)) not in protected:
            inp.out.forget_artifact(name)
        elif stale:
            del inp.out.artifacts[name]
