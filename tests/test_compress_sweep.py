"""Compression as a sweep dimension: a real sweep on the digits CNN for nano33ble whose
only searched choice is ``compress`` (none or prune, 75 % sparse weights), one epoch
per trial. The trial that ships the prune-compressed model says so, its flash figure
is that file's, and ``sweep export`` reproduces the shipped files (firmware with
DECODE)."""

from __future__ import annotations

import filecmp
import gzip
import json
import os

import pytest

from edgeprune.recipe import build_recipe
from edgeprune.sweep.driver import sweep
from edgeprune.sweep.export import export_trial

pytestmark = pytest.mark.slow  # trains a baseline and runs three trials

TARGET = "nano33ble"
COMPRESSED = "final_int8_compressed.tflite"


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    recipe = build_recipe(
        {
            "train": {"epochs": 3},
            "sweep": {
                "trials": 3,
                "objectives": ["flash"],
                "width": 1.0,
                "importance": "l1",
                "ranking": "global",
                "epochs": 1,
                "dense": "per_channel",
                "sparsity": 0.75,
                "compress": ["none", "prune"],
            },
        }
    )
    folder = str(tmp_path_factory.mktemp("sweep") / "sw")
    result = sweep(recipe=recipe, target=TARGET, out=folder)
    # Run in this process (one job): its kept TFLite Micro worker ended with it.
    from edgeprune.tflm import client

    assert not client._IDLE and not client._KEEP
    return result


def shipped_path(swept, trial: dict) -> str:
    return os.path.join(swept.folder, trial["folder"], COMPRESSED)


def _report(folder: str, trial: dict) -> dict:
    with open(os.path.join(folder, trial["folder"], "report.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _measured(swept) -> dict:
    """compress choice -> the first trial that ran it (repeats of a point are not run)."""
    out = {}
    for t in swept.document["trials"]:
        if t["state"] == "COMPLETE" and t.get("duplicate_of") is None:
            out.setdefault(t["params"]["compress"], t)
    return out


def test_the_trial_that_ships_the_compressed_model_says_so_and_counts_its_flash(swept):
    trials = _measured(swept)
    assert set(trials) == {"none", "prune"}, swept.document["trials"]
    prune, dense = trials["prune"], trials["none"]
    assert prune["values"]["shipped_model"] == COMPRESSED
    assert "shipped_model" not in dense["values"]  # no compress stage ran: the dense model
    gzipped = len(gzip.compress(open(shipped_path(swept, prune), "rb").read(), 9, mtime=0))
    assert prune["values"]["gzip_bytes"] == gzipped  # over the air: the file that ships
    body = _report(swept.folder, prune)
    assert body["stages"]["compress"]["model"] == COMPRESSED
    assert body["recipe"]["prune"]["final_sparsity"] == 0.75
    evidence = body["stages"]["check"]["evidence"]
    shipped = shipped_path(swept, prune)
    assert os.path.basename(evidence["model_path"]) == COMPRESSED
    assert evidence["model_bytes"] == os.path.getsize(shipped) and evidence["decode_flash_bytes"]
    assert prune["values"]["flash_bytes"] == _flash(body["stages"]["check"])
    # the dense model's check beside it, and the dense trial: the compressed flash is smaller
    dense_check = body["stages"]["compress"]["dense_check"]
    assert evidence["model_bytes"] < dense_check["evidence"]["model_bytes"]
    assert _flash(body["stages"]["check"]) < _flash(dense_check)
    assert prune["values"]["flash_bytes"] < dense["values"]["flash_bytes"]
    assert _report(swept.folder, dense)["stages"].get("compress") is None


def _flash(check: dict) -> float:
    rule = next(r for r in check["rules"] if r["name"] == "flash")
    assert rule["unit"] == "B"
    return rule["figure"]


def test_export_reproduces_the_shipped_files_with_decode_in_the_firmware(swept, tmp_path):
    prune = _measured(swept)["prune"]
    trial = os.path.join(swept.folder, prune["folder"])
    out = export_trial(prune["number"], swept.folder, str(tmp_path / "exported"))
    for name in (COMPRESSED, "final_int8.tflite", "report.json"):
        assert filecmp.cmp(os.path.join(trial, name), os.path.join(out, name), shallow=False)
    cmp = filecmp.dircmp(os.path.join(trial, "firmware"), os.path.join(out, "firmware"))
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files)
    headers = []
    for root, _, files in os.walk(os.path.join(out, "firmware")):
        for f in files:
            if f.endswith(".h"):
                with open(os.path.join(root, f), encoding="utf-8") as fh:
                    headers.append(fh.read())
    assert any("AddDecode()" in h for h in headers)
