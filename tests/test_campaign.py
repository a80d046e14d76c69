"""The fault campaign's own machinery (benchmarks/campaign*.py): the outcome rule,
the generated TOML and the hostile files; quick, without running edgeprune's
pipeline (the campaign itself is `make campaign`)."""

from __future__ import annotations

import math
import sys
import tomllib
import zipfile
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import campaign_inputs  # noqa: E402
from campaign import normalize, summary  # noqa: E402
from campaign_cli import Case, Completed, call, classify  # noqa: E402


def _done(code, stderr="", seconds=1.0, rss=50.0):
    return Completed(code, "", stderr, seconds, rss)


ERR = "edgeprune: error: prune.epochs = 0 is below its minimum 1\n"


@pytest.mark.parametrize(
    "case, done, outcome",
    [
        (Case("r", "c", []), _done(1, ERR), "ok"),
        (Case("r", "c", []), _done(None), "hang"),
        (Case("r", "c", []), _done(1, "Traceback (most recent call last):\n  x\n"), "traceback"),
        (Case("r", "c", []), _done(70, "edgeprune: error: internal error: X\n"), "internal"),
        (Case("r", "c", []), _done(0), "invalid-passed"),
        (Case("r", "c", [], accepted="below"), _done(1, ERR), "invalid-passed"),
        (Case("r", "c", [], expect=(3,)), _done(1, ERR), "wrong-exit"),
        (Case("r", "c", [], expect=(0, 1), warn_if_ok=True), _done(0, "done\n"), "wrong-exit"),
        (Case("r", "c", [], expect=(0, 1), warn_if_ok=True), _done(0, "warning: 1\n"), "ok"),
        (Case("r", "c", []), _done(1, "something broke\n"), "unnamed"),
        (Case("r", "c", [], must_name="prune.frequency"), _done(1, ERR), "unnamed"),
        (Case("r", "c", [], max_rss_mb=100), _done(1, ERR, rss=300.0), "memory"),
    ],
)
def test_classify_names_the_first_failure(case, done, outcome):
    assert classify(case, done)[0] == outcome


def test_classify_sees_markers_and_files_a_refused_run_left(tmp_path):
    marker = tmp_path / "ran"
    marker.write_text("x")
    assert classify(Case("m", "c", [], marker=str(marker)), _done(1, ERR))[0] == "code-executed"
    out = tmp_path / "out"
    out.mkdir()
    (out / "baseline.keras").write_text("x")
    assert classify(Case("m", "c", [], out=str(out)), _done(1, ERR)) == (
        "half-written",
        "a refused run wrote: baseline.keras",
    )
    (out / "baseline.keras").unlink()
    (out / ".report.json.tmp").write_text("x")
    assert classify(Case("m", "c", [], expect=(0,), out=str(out)), _done(0))[0] == "half-written"


def test_call_reports_exit_code_output_and_kills_at_the_deadline(tmp_path):
    done = call(["--version"], str(tmp_path), 60)
    assert done.exit == 0 and "edgeprune" in done.stdout and done.peak_rss_mb > 1
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]  # edgeprune's argv ignored
    done = call(["--version"], str(tmp_path), 2, prefix=sleeper)
    assert done.exit is None and done.seconds < 30


def test_generated_toml_reads_back_with_its_odd_values(tmp_path):
    data = {"seed": 2**70, "name": "a\x1b[2J\nb", "prune": {"x": math.inf, "y": [1, "2"]}}
    back = tomllib.loads(campaign_inputs.dump_toml(data))
    assert back["seed"] == 2**70 and back["name"] == data["name"]
    assert back["prune"]["x"] == math.inf and back["prune"]["y"] == [1, "2"]
    assert math.isnan(tomllib.loads(campaign_inputs.dump_toml({"v": math.nan}))["v"])


def test_recipe_cases_mutate_every_numeric_key(tmp_path):
    names = {c.case for c in campaign_inputs.recipe_cases(str(tmp_path))}
    for key, _, _ in campaign_inputs._numeric_keys():
        assert {f"{key} = nan", f"{key} = huge", f"{key} = negative"} <= names
    assert len(names) >= 50


def test_the_huge_npz_header_declares_256_gib_over_a_few_bytes(tmp_path):
    path = tmp_path / "huge.npz"
    campaign_inputs._huge_header_npz(str(path))
    with zipfile.ZipFile(path) as zf, zf.open("x_train.npy") as fh:
        assert np.lib.format.read_magic(fh) == (1, 0)
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
        assert np.prod(shape) * dtype.itemsize == 256 * 2**30
        assert zf.getinfo("x_train.npy").file_size < 200


def test_summary_counts_every_outcome_class():
    rows = [
        {"area": "a", "case": "1", "exit": 1, "outcome": "ok"},
        {"area": "a", "case": "2", "exit": 70, "outcome": "internal"},
    ]
    text = summary(rows)
    assert "2 cases: ok 1, stricter 0, traceback 0, internal 1, hang 0" in text
    assert "a 1/2 acceptable" in text


def test_rows_of_the_other_campaign_modules_are_read_in_this_tables_terms():
    device = {"case": "serial:drop", "exit": 5, "outcome": "partial", "expected": "partial"}
    assert normalize(device, "device")["outcome"] == "ok"
    wrong = normalize({**device, "outcome": "exit0"}, "device")
    assert wrong["outcome"] == "wrong-exit" and "exit0, expected partial" in wrong["message"]
    assert normalize({**device, "outcome": "hang"}, "device")["outcome"] == "hang"
    run = {"exit": 0, "stderr": "warn\nedgeprune: error: x"}
    mutant = {"name": "flip 3", "inspect": run, "internal": False, "invalid_passed": True}
    row = normalize(mutant, "tflite")
    assert (row["case"], row["exit"], row["outcome"]) == ("flip 3", 0, "invalid-passed")
    assert row["message"] == "edgeprune: error: x" and row["area"] == "tflite"
    assert normalize({**mutant, "invalid_passed": False}, "tflite")["outcome"] == "ok"
