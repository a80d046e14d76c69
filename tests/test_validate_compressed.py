"""Validating a run that shipped a DECODE-compressed model: every result names its file.

LiteRT has no DECODE operator, so the host runner runs the uncompressed
final_int8.tflite and says why; TFLite Micro runners (tflm, serial) run
final_int8_compressed.tflite, the model the firmware embeds. report.json, the
printed summary and report.html name the file each figure came from.

The run folder: a copy of the validation run (digits CNN, int8) with its final model
prune-compressed beside it and the compress entry the compress stage would write.
"""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from edgeprune import artifacts, report
from edgeprune.compress import compress_model
from edgeprune.errors import BadInputError
from edgeprune.presentation.validation import format_result
from edgeprune.recipe_options import ValidateOptions
from edgeprune.report.compress_entries import CompressEntry
from edgeprune.stages.run_models import read_run, runner_model
from edgeprune.stages.validate import validate_run

DENSE, COMPRESSED = "final_int8.tflite", "final_int8_compressed.tflite"
NOTE_HOST = "LiteRT has no DECODE operator, so it cannot run final_int8_compressed.tflite"


def _ship_compressed(folder) -> None:
    """What the compress stage leaves in a run folder: the compressed model, its
    artifact row and the compress entry naming it."""
    result = compress_model((folder / DENSE).read_bytes(), "prune")
    data = result.model
    (folder / COMPRESSED).write_bytes(data)
    path = folder / report.REPORT_NAME
    rep = report.read(path)
    entry = CompressEntry("prune", COMPRESSED, DENSE, result.to_dict(), result.note)
    row = {
        "stage": "compress",
        "path": str(folder / COMPRESSED),
        "bytes": len(data),
        "sha256": artifacts.sha256_file(str(folder / COMPRESSED)),
    }
    report.write(
        path,
        dataclasses.replace(
            rep,
            stages=dataclasses.replace(rep.stages, compress=entry),
            artifacts={**rep.artifacts, COMPRESSED: row},
        ),
    )


@pytest.fixture(scope="module")
def shipped(run_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("shipped") / "run"
    shutil.copytree(run_dir, folder)
    _ship_compressed(folder)
    return folder


@pytest.fixture(scope="module")
def results(shipped):
    opts = ValidateOptions(samples=40)
    return {r: validate_run(str(shipped), runner=r, options=opts) for r in ("host", "tflm")}


def test_each_runner_runs_the_file_its_runtime_can_run_and_says_why(shipped):
    run = read_run(str(shipped))
    assert run.shipped_path == str(shipped / COMPRESSED)
    for runner, name in (
        ("host", DENSE),
        ("ssh", DENSE),
        ("tflm", COMPRESSED),
        ("serial", COMPRESSED),
    ):
        path, sha, note = runner_model(run, runner)
        assert path == str(shipped / name)
        assert sha == artifacts.sha256_file(path)
        assert f"the {runner} runner ran {name}" in note
    assert NOTE_HOST in runner_model(run, "host")[2]


def test_report_json_names_the_file_of_each_result(results, shipped):
    written = json.loads((shipped / report.REPORT_NAME).read_text())["validation"]
    assert written["host"]["model"] == DENSE
    assert written["tflm"]["model"] == COMPRESSED
    assert written["tflm"]["model_sha256"] == artifacts.sha256_file(str(shipped / COMPRESSED))
    assert any(NOTE_HOST in n for n in written["host"]["notes"])
    assert any("the DECODE-compressed model the firmware" in n for n in written["tflm"]["notes"])
    # decoding is lossless: the compressed model agrees with the dense host reference
    assert results["tflm"].agreement["max_abs_diff"] <= 1 and results["tflm"].ok


def test_the_summary_and_the_page_name_the_file_of_each_result(results, shipped):
    host, tflm = format_result(results["host"]), format_result(results["tflm"])
    assert host.startswith(f"validate {DENSE} on host") and NOTE_HOST in host
    assert tflm.startswith(f"validate {COMPRESSED} on tflm")
    html = (shipped / "report.html").read_text()
    assert f"model: {COMPRESSED}" in html and f"model: {DENSE}" in html
    assert "LiteRT has no DECODE operator" in html


def test_a_run_without_compression_runs_the_dense_model_everywhere_without_a_note(run_dir):
    run = read_run(str(run_dir))
    assert run.shipped_path == ""
    assert runner_model(run, "tflm") == (run.model_path, run.model_sha256, "")


def test_a_changed_compressed_model_is_refused(shipped, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(shipped, folder)
    data = bytearray((folder / COMPRESSED).read_bytes())
    data[-1] ^= 1
    (folder / COMPRESSED).write_bytes(bytes(data))
    with pytest.raises(BadInputError, match="final_int8_compressed.tflite changed since"):
        read_run(str(folder))


def test_check_on_a_litert_target_checks_the_uncompressed_model_and_says_so(shipped, caplog):
    from edgeprune.stages.check import check_model

    with caplog.at_level("WARNING"):
        result = check_model(str(shipped / COMPRESSED), "host")
    assert result.evidence.model_path == str(shipped / DENSE)
    assert "LiteRT has no DECODE operator, so host runs final_int8.tflite" in caplog.text
    assert "checked final_int8.tflite instead" in caplog.text
