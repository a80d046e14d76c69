"""`edgeprune sweep` end to end on the built-in digits CNN with a tiny space: the
sweep folder, sweep.json, results.csv, the printed front, export, refusals, a
disk that fills mid-trial, and resume."""

from __future__ import annotations

import csv
import errno
import filecmp
import json
import os
import shutil

import pytest
from click.testing import CliRunner

from edgeprune import artifacts
from edgeprune.cli import main
from edgeprune.errors import BadInputError
from edgeprune.recipe import build_recipe
from edgeprune.sweep.driver import sweep
from edgeprune.sweep.export import export_trial
from edgeprune.sweep.results import format_front

# Each test here runs or resumes a real sweep (the module's first one trains the baseline).
pytestmark = pytest.mark.slow

TARGET = "nano33ble"
TINY = {
    "train": {"epochs": 4},
    "budget": {"max_latency_ms": 12.0},
    "sweep": {
        "trials": 3,
        "width": [0.3, 1.0],
        "importance": "l1",
        "ranking": "global",
        "epochs": [1, 2],
    },
}


def tiny(**sweep_changes):
    return build_recipe({**TINY, "sweep": {**TINY["sweep"], **sweep_changes}})


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("sweep") / "sw")
    return sweep(recipe=tiny(), target=TARGET, out=folder)


def _doc(folder):
    with open(os.path.join(folder, "sweep.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _complete(doc):
    return [t for t in doc["trials"] if t["state"] == "COMPLETE"]


def test_sweep_writes_its_folder_json_csv_and_trial_runs(swept):
    doc = _doc(swept.folder)
    assert doc == swept.document
    assert doc["schema"] == "edgeprune-sweep/1" and doc["study"] == f"digits_cnn_{TARGET}"
    assert [o["key"] for o in doc["objectives"]] == ["accuracy", "latency_ms"]
    assert doc["metric"] == {"name": "accuracy", "direction": "maximize"}
    assert doc["budgets"] == {"latency_ms": 12.0}
    assert doc["identity"]["target"] == TARGET and doc["identity"]["model"] == "digits_cnn"
    assert set(doc["identity"]["space"]["searched"]) == {"width", "epochs", "dense"}
    complete = _complete(doc)
    assert len(complete) == 3 == swept.complete
    for t in complete:
        run = os.path.join(swept.folder, t["folder"])
        assert t["folder"] == f"trials/{t['number']:04d}"
        for name in ("report.json", "final_int8.tflite", "firmware/model_digits_cnn.cc"):
            assert os.path.isfile(os.path.join(run, name)), name
        assert not os.path.exists(os.path.join(run, "report.html"))  # the export makes it
        assert set(t["params"]) == {"width", "epochs", "dense"}
        with open(os.path.join(run, "report.json"), encoding="utf-8") as fh:
            report = json.load(fh)
        # the trial's choices reached its recipe; a fixed Dense choice is not measured twice
        assert report["recipe"]["quantize"]["dense"] == t["params"]["dense"]
        assert report["recipe"]["prune"]["epochs"] == t["params"]["epochs"]
        assert report["recipe"]["prune"]["final_sparsity"] == 0.0
        goal = "none" if t["params"]["width"] >= 1.0 else "width"
        assert report["recipe"]["structured"]["goal"] == goal
        assert report["stages"]["quantize"].get("dense_quantization") is None
        assert 0.5 < t["values"]["accuracy"] <= 1.0 and t["values"]["latency_ms"] > 0
        assert t["values"]["flash_bytes"] > t["values"]["gzip_bytes"] > 0
        assert t["feasible"] == (t["values"]["latency_ms"] <= 12.0)
        assert t["failed_rules"] == ([] if t["feasible"] else ["latency"])
        assert 0 < t["fine_tune_seconds"] < t["seconds"]
    feasible = {t["number"] for t in complete if t["feasible"]}
    assert set(doc["front"]) <= feasible and (doc["front"] or not feasible)
    assert os.path.isfile(os.path.join(swept.folder, "baseline", "baseline.keras"))
    with open(os.path.join(swept.folder, "report.html"), encoding="utf-8") as fh:
        assert f"digits_cnn_{TARGET}" in fh.read()  # the sweep's page, built at its end
    with open(os.path.join(swept.folder, "results.csv"), encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["number"]) for r in rows] == [t["number"] for t in doc["trials"]]
    assert {r["state"] for r in rows} == {"COMPLETE"}
    assert all(r["folder"].startswith("trials/") and float(r["seconds"]) > 0 for r in rows)


def test_printed_front_lists_each_front_trial_with_its_export_command(swept):
    text = format_front(swept.document)
    assert text.startswith(f"Pareto front of digits_cnn_{TARGET} (")
    assert "accuracy (max)" in text and "latency (estimate) (min)" in text
    for n in swept.document["front"]:
        assert f"edgeprune sweep export {n} --sweep {swept.folder} --out build/" in text
    if not swept.document["front"]:
        assert "no feasible trial yet" in text


def test_export_writes_the_trials_run_folder_with_identical_firmware(swept, tmp_path):
    number = _complete(swept.document)[0]["number"]
    trial = os.path.join(swept.folder, f"trials/{number:04d}")
    out = str(tmp_path / "exported")
    r = CliRunner().invoke(
        main, ["sweep", "export", str(number), "--sweep", swept.folder, "--out", out]
    )
    assert r.exit_code == 0, r.output
    cmp = filecmp.dircmp(os.path.join(trial, "firmware"), os.path.join(out, "firmware"))
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files)
    for name in ("report.json", "final_int8.tflite", "pruned.keras"):
        assert filecmp.cmp(os.path.join(trial, name), os.path.join(out, name), shallow=False)
    assert not [n for n in os.listdir(out) if n.startswith(".")]  # no lock, no temporary
    with open(os.path.join(out, "report.html"), encoding="utf-8") as fh:
        assert "<svg" in fh.read()  # the run's page, which the trial went without


def test_export_refusals(swept, tmp_path):
    with pytest.raises(BadInputError, match="has no trial 99; the front table and results.csv"):
        export_trial(99, swept.folder, str(tmp_path / "x"))
    with pytest.raises(BadInputError, match="sweep.json does not exist; name a folder"):
        export_trial(0, str(tmp_path), str(tmp_path / "x"))
    other = tmp_path / "other"
    other.mkdir()
    (other / "report.json").write_text(json.dumps({"inputs": {"model": "builtin:ds_cnn"}}))
    with pytest.raises(BadInputError, match="holds the run of another model .*--force"):
        export_trial(0, swept.folder, str(other))
    assert export_trial(0, swept.folder, str(other), force=True) == str(other)


def test_a_study_refuses_another_space_target_or_folder_owner(swept):
    trials_before = sorted(os.listdir(os.path.join(swept.folder, "trials")))
    with pytest.raises(BadInputError, match=r"is a sweep of another search space \(space diff"):
        sweep(recipe=tiny(width=[0.5, 1.0]), target=TARGET, out=swept.folder)
    with pytest.raises(
        BadInputError, match="holds study digits_cnn_nano33ble, not digits_cnn_pico"
    ):
        sweep(recipe=tiny(), target="pico", out=swept.folder)
    with pytest.raises(
        BadInputError, match=r"sweep of another target .*target nano33ble, not pico"
    ):
        sweep(recipe=tiny(), target="pico", out=swept.folder, study=f"digits_cnn_{TARGET}")
    assert sorted(os.listdir(os.path.join(swept.folder, "trials"))) == trials_before
    assert _doc(swept.folder)["trials"] == swept.document["trials"]


def test_disk_full_mid_trial_fails_that_trial_and_the_sweep_goes_on(swept, tmp_path, monkeypatch):
    """A resumed study (the folder copied) asked for two more trials: the first
    that writes its model meets ENOSPC, is FAIL with the one-line error and its
    folder removed; the study goes on to the count."""
    folder = str(tmp_path / "sw")
    shutil.copytree(swept.folder, folder)
    real = artifacts.write_bytes_atomic
    hit = []  # the folder of the one trial whose model write meets a full disk

    def write(path, data):
        path = os.fspath(path)
        if not hit and path.startswith(folder) and path.endswith("final_int8.tflite"):
            hit.append(os.path.dirname(path))
            with artifacts.atomic_path(path) as tmp, open(tmp, "wb"):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(artifacts, "write_bytes_atomic", write)
    result = sweep(recipe=tiny(trials=5), target=TARGET, out=folder)
    doc = _doc(folder)
    failed = [t for t in doc["trials"] if t["state"] == "FAIL"]
    assert len(failed) == 1 and hit == [
        os.path.join(folder, "trials", f"{failed[0]['number']:04d}")
    ]
    assert "No space left on device" in failed[0]["error"] and "\n" not in failed[0]["error"]
    assert failed[0]["folder"] is None and not os.path.exists(hit[0])
    assert result.complete == len(_complete(doc)) == 5
    numbers = [t["number"] for t in doc["trials"]]
    assert numbers == sorted(set(numbers))


def test_export_that_fails_part_way_leaves_no_report_and_none_of_its_files(
    swept, tmp_path, monkeypatch
):
    from edgeprune.errors import EdgepruneError
    from edgeprune.sweep import export

    out = str(tmp_path / "exported")
    number = _complete(swept.document)[0]["number"]
    export_trial(number, swept.folder, out)  # a previous export of the same model
    real = shutil.copyfile

    def copyfile(src, dst, *a, **k):
        if src.endswith("final_int8.tflite"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(src, dst, *a, **k)

    monkeypatch.setattr(export.shutil, "copyfile", copyfile)
    with pytest.raises(EdgepruneError, match="No space left on device"):
        export_trial(number, swept.folder, out)
    assert os.listdir(out) == []
