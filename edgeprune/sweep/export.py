"""``sweep export``: one trial of a sweep as a normal run folder.

A trial's folder already holds what ``run --target`` writes (its report.json
lists every artifact, ``firmware/`` included); export copies those files into
the output folder under its lock, each file atomically (``firmware/`` as one
folder), ``report.json`` last, and then removes the files of the run it
replaced that the new one does not list. The replaced run's report goes
first, and an export that fails part way removes what it copied, so the
folder never holds a report that describes other files. A folder that holds another model's
run is refused unless ``force``, as ``run`` refuses it.
"""

from __future__ import annotations

import json
import os
import shutil

from edgeprune import artifacts, run_folder
from edgeprune.errors import BadInputError
from edgeprune.report import REPORT_NAME
from edgeprune.report import remove as remove_report
from edgeprune.sweep.results import SWEEP_JSON, read_sweep


def export_trial(number: int, sweep: str, out: str, force: bool = False) -> str:
    """Copy trial ``number`` of the sweep folder ``sweep`` into ``out``; return ``out``.

    Raises:
        BadInputError: no sweep there, no such complete trial, its folder is
            gone, ``out`` is the trial's own folder, or (without ``force``)
            ``out`` holds another model's run.
        ArtifactWriteError: a file could not be written.
    """
    trial = _find_trial(number, sweep)
    source = os.path.join(sweep, trial["folder"])
    report_path = os.path.join(source, REPORT_NAME)
    try:
        with open(report_path, encoding="utf-8") as fh:
            report = json.load(fh)
        inputs, listed = report["inputs"], report["artifacts"]
    except (OSError, ValueError, KeyError, TypeError):
        raise BadInputError(
            f"trial {number}'s folder {source} holds no readable report.json; run the "
            f"sweep again to redo it, or export another trial"
        ) from None
    if os.path.realpath(out) == os.path.realpath(source):
        raise BadInputError(f"--out {out} is the trial's own folder; choose another folder")
    names = sorted({name.split("/", 1)[0] for name in listed})
    artifacts.check_out_dir(out)
    with run_folder.hold(out, "export"):
        run_folder.refuse_other_model(out, inputs.get("model"), inputs.get("model_sha256"), force)
        old = _listed(out)
        # The old report goes first: a copy that fails part way must not leave a
        # report describing files that are no longer the ones beside it.
        remove_report(out)  # and the page built from it
        try:
            for name in names:
                _copy(os.path.join(source, name), os.path.join(out, name))
            _copy(report_path, os.path.join(out, REPORT_NAME))
        except BaseException:
            _remove(out, old | set(names))
            raise
        _remove(out, old - set(names))
        from edgeprune.presentation.html import refresh_run_html

        refresh_run_html(out)  # trials are run without their page
    return out


def _remove(folder: str, names: set[str]) -> None:
    for name in names:
        run_folder.delete(os.path.join(folder, name))


def _find_trial(number: int, sweep: str) -> dict:
    trials = read_sweep(os.path.join(sweep, SWEEP_JSON))["trials"]
    found = [t for t in trials if isinstance(t, dict) and t.get("number") == number]
    if not found:
        raise BadInputError(
            f"the sweep in {sweep} has no trial {number}; the front table and results.csv "
            f"list its trials"
        )
    trial = found[0]
    if trial.get("state") != "COMPLETE" or not trial.get("folder"):
        raise BadInputError(
            f"trial {number} of {sweep} is {trial.get('state')}, with no run to export; "
            f"export a complete trial"
        )
    return trial


def _listed(folder: str) -> set[str]:
    """The top-level names the run in ``folder`` lists (none without a report)."""
    listed = run_folder.report_section(folder, "artifacts") or {}
    return {str(n).split("/", 1)[0] for n in listed if ".." not in str(n)}


def _copy(source: str, dest: str) -> None:
    if not os.path.exists(source):
        raise BadInputError(
            f"{source} is missing from the trial's folder; run the sweep again to redo "
            f"the trial, or export another one"
        )
    with artifacts.atomic_path(dest) as tmp:
        if os.path.isdir(source):
            shutil.copytree(source, tmp)
        else:
            shutil.copyfile(source, tmp)
