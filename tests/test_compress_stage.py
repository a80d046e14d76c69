"""The compress stage in the pipeline (edgeprune.stages.compress): TFLite Micro DECODE
compression after quantize, its verification, the check's accounting of the DECODE
kernel and of decoding time, the report's side-by-side figures and the firmware.

One run of the digits CNN (tests' short recipe, pruned to 75 %, int8) compressed with
``prune`` for nano33ble, under a RAM budget the dense model fits and the compressed
one (decoded weights in the arena) does not: the run writes everything and fails its
budget (exit 3), which is what a compression that stops the model fitting must do.
"""

from __future__ import annotations

import dataclasses
import types

import numpy as np
import pytest
from conftest import small_recipe

from edgeprune import pipeline, report
from edgeprune.artifacts import read_flatbuffer
from edgeprune.errors import BudgetError
from edgeprune.recipe import load_recipe
from edgeprune.stages.compress import CompressTargetError
from edgeprune.target import load_target

RAM_BUDGET = 90_000  # dense int8 needs ~72 kB with reserve; prune-compressed ~103 kB


def _compress_recipe(**compress):
    return dataclasses.replace(
        small_recipe(),
        compress=load_recipe(None, {f"compress.{k}": v for k, v in compress.items()}).compress,
        budget=load_recipe(None, {"budget.max_ram_bytes": RAM_BUDGET}).budget,
    )


@pytest.fixture(scope="module")
def compressed_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("compress") / "run"
    with pytest.raises(BudgetError) as failed:
        pipeline.run(recipe=_compress_recipe(method="prune"), out=str(out), target="nano33ble")
    return failed.value


def test_the_run_writes_both_models_and_fails_its_budget_with_exit_3(compressed_run):
    result = compressed_run.result
    assert compressed_run.exit_code == 3
    assert "final_int8_compressed.tflite does not fit nano33ble: ram" in str(compressed_run)
    folder = result.out_dir
    dense = read_flatbuffer(f"{folder}/final_int8.tflite")
    comp = read_flatbuffer(f"{folder}/final_int8_compressed.tflite")
    assert "CUSTOM:TFLM_DECODE" in comp.info.op_counts
    assert "CUSTOM:TFLM_DECODE" not in dense.info.op_counts
    assert len(comp.data) < len(dense.data) / 2
    written = report.read(f"{folder}/report.json")
    assert written.artifacts["final_int8_compressed.tflite"]["sha256"] == comp.sha256
    assert written.artifacts["final_int8_compressed.tflite"]["stage"] == "compress"
    entry = written.stages.compress  # read back typed
    assert entry.model == "final_int8_compressed.tflite"
    assert entry.dense_check.rule("ram").ok and entry.stopped_fitting == ("ram",)
    assert entry.verification == result.report.stages.compress.verification


def test_the_compressed_model_is_bit_exact_against_the_dense_one_in_tflite_micro(
    compressed_run, digits
):
    from edgeprune.tflm import probe

    folder = compressed_run.result.out_dir
    entry = compressed_run.result.report.stages.compress
    assert entry.verification["samples"] == len(digits.x_test)
    assert entry.verification["bit_exact"] is True
    raws = []
    for name in ("final_int8.tflite", "final_int8_compressed.tflite"):
        data = open(f"{folder}/{name}", "rb").read()
        arena = probe.find_arena(data).required_bytes()
        raws.append(probe.run_detailed(data, digits.x_test[:50], arena).raw)
    assert raws[0].dtype == raws[1].dtype == np.int8
    assert np.array_equal(raws[0], raws[1])


def test_the_check_counts_the_compressed_model_and_the_decode_kernel(compressed_run):
    from edgeprune.estimates.decode_cost import TABLE

    entry = compressed_run.result.report.stages.compress
    check = compressed_run.result.report.stages.check
    ev, dense_ev = check.evidence, entry.dense_check.evidence
    assert ev["model_path"].endswith("final_int8_compressed.tflite")
    assert dense_ev["model_path"].endswith("final_int8.tflite")
    assert ev["model_bytes"] == entry.compression["model_bytes"]
    m4f = TABLE["build"]["cmsis-nn_cortex-m4f"]["flash_bytes"]  # nano33ble's own build
    assert ev["decode_flash_bytes"] == sum(m4f.values()) == 6228
    assert ev["decode_flash_basis"].startswith("measured on cmsis-nn_cortex-m4f")
    assert dense_ev["decode_flash_bytes"] == 0
    flash, dense_flash = check.rule("flash"), entry.dense_check.rule("flash")
    assert flash.figure - dense_flash.figure == (
        ev["model_bytes"]
        - dense_ev["model_bytes"]
        + 6228
        + ev["runtime_flash_bytes"]
        - dense_ev["runtime_flash_bytes"]
    )
    assert "DECODE kernel and decoders 6,228 B" in flash.evidence
    # the arena is the compressed model's own (decoded weights live in it)
    assert ev["arena_bytes"] > entry.verification["compressed_arena_bytes"] * 0.95
    assert ev["arena_bytes"] > 5 * dense_ev["arena_bytes"]


def test_a_compression_that_stops_the_model_fitting_says_so(compressed_run):
    entry = compressed_run.result.report.stages.compress
    assert entry.dense_check.rule("ram").ok
    assert not compressed_run.result.report.stages.check.rule("ram").ok
    assert entry.stopped_fitting == ("ram",)
    from edgeprune.presentation.compress_page import format_compress

    text = "\n".join(format_compress(entry, compressed_run.result.report.stages.check))
    assert "compression made the model stop fitting: ram over budget" in text
    assert "final_int8.tflite" in text and "final_int8_compressed.tflite" in text


def test_decoding_time_is_an_estimate_per_decoded_byte(compressed_run):
    from edgeprune.estimates.decode_cost import decode_time

    entry = compressed_run.result.report.stages.compress
    lat = compressed_run.result.report.stages.check.evidence["latency"]
    dense_lat = entry.dense_check.evidence["latency"]
    decoded = sum(
        int(np.prod(t["shape"])) for t in entry.compression["tensors"] if t["method"] == "prune"
    )
    assert decoded == 32768 + 4608 + 640
    expected = decode_time({"prune": decoded}, "cortex-m4f", 64_000_000)
    assert expected.cycles == pytest.approx(decoded * 14.0 * 1.205)
    assert lat["ms"] - dense_lat["ms"] == pytest.approx(expected.ms, rel=1e-6)
    assert any("DECODE" in n and "ESTIMATE" in n for n in lat["notes"])
    rows = [o for o in lat["ops"] if o["opcode"] == "CUSTOM:TFLM_DECODE"]
    assert len(rows) == 3 and sum(o["ms"] for o in rows) == pytest.approx(expected.ms)


def test_firmware_embeds_the_compressed_model_and_says_what_the_build_needs(compressed_run):
    folder = compressed_run.result.out_dir
    comp = read_flatbuffer(f"{folder}/final_int8_compressed.tflite")
    listed = report.read(f"{folder}/report.json").artifacts
    fw = {name.rsplit("/", 1)[-1]: name for name in listed if name.startswith("firmware/")}
    ops = open(f"{folder}/{fw['ops_digits_cnn.h']}").read()
    config = open(f"{folder}/{fw['config_digits_cnn.h']}").read()
    data = open(f"{folder}/{fw['model_digits_cnn.cc']}").read()
    assert "AddDecode()" in ops
    assert "kWeightsCompressedForDecode = true" in config
    assert "3 DECODE operators" in config
    assert comp.sha256 in data


def test_report_page_shows_dense_and_compressed(compressed_run):
    html = open(f"{compressed_run.result.out_dir}/report.html").read()
    assert "Weight compression (TFLite Micro DECODE)" in html
    assert "final_int8_compressed.tflite" in html
    assert "stop fitting" in html


def test_litert_cannot_run_the_compressed_model_and_check_says_so(compressed_run, tmp_path):
    import shutil

    from edgeprune.stages.check import TargetMismatchError, check_model

    # alone: outside its run folder there is no uncompressed model to check instead
    path = shutil.copy(f"{compressed_run.result.out_dir}/final_int8_compressed.tflite", tmp_path)
    with pytest.raises(TargetMismatchError, match="TFLM_DECODE; check the model on a TFLite"):
        check_model(path, "host")


def test_a_linux_target_no_target_or_a_float_model_is_refused_before_anything(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(CompressTargetError, match="rpi4, a Linux target.*LiteRT"):
        pipeline.run(recipe=_compress_recipe(method="prune"), out=str(out), target="rpi4")
    with pytest.raises(CompressTargetError, match="without a target"):
        pipeline.run(recipe=_compress_recipe(method="lut"), out=str(out))
    float_recipe = dataclasses.replace(
        _compress_recipe(method="prune"),
        quantize=load_recipe(None, {"quantize.mode": "float32"}).quantize,
    )
    with pytest.raises(CompressTargetError, match="encodes int8 weights"):
        pipeline.run(recipe=float_recipe, out=str(out), target="nano33ble")
    assert not out.exists()


def test_a_missing_decoder_is_refused_before_the_folder_is_written(monkeypatch, tmp_path):
    from edgeprune.compress import DecoderMissingError, verification

    monkeypatch.setattr(verification, "decoders_available", lambda: frozenset({"lut"}))
    out = tmp_path / "run"
    with pytest.raises(DecoderMissingError, match="no DECODE prune decoder"):
        pipeline.run(recipe=_compress_recipe(method="both"), out=str(out), target="nano33ble")
    assert not out.exists()


def test_a_model_with_nothing_worth_compressing_gets_a_note_and_ships_dense(
    int8_model, digits, tmp_path
):
    from edgeprune.artifacts import Flatbuffer, RunDir
    from edgeprune.stages.compress import compress_stage

    recipe = _compress_recipe(method="prune")
    inp = types.SimpleNamespace(recipe=recipe, dataset=digits, out=RunDir(str(tmp_path)))
    dense = Flatbuffer.of(int8_model, str(tmp_path / "final_int8.tflite"), "int8")
    result = compress_stage(inp, dense, load_target("nano33ble"))
    assert result.tflite is None and result.verification is None
    assert result.shipped is dense
    assert "the model is unchanged" in result.compressed.note
    entry = result.entry(None, None, None)
    assert entry.model == "" and entry.note == result.compressed.note
    assert list(tmp_path.iterdir()) == []


def test_a_compression_that_saves_less_than_the_decode_kernel_ships_dense(compressed_run, tmp_path):
    from edgeprune.artifacts import Flatbuffer, RunDir
    from edgeprune.stages.compress import compress_stage

    dense = read_flatbuffer(f"{compressed_run.result.out_dir}/final_int8.tflite")
    # only the classifier (640 B, saves ~160 B) may be compressed: less than 6,228 B
    recipe = _compress_recipe(method="prune", max_decoded_bytes=1000)
    inp = types.SimpleNamespace(recipe=recipe, dataset=None, out=RunDir(str(tmp_path)))
    result = compress_stage(
        inp, Flatbuffer.of(dense.data, dense.path, "int8"), load_target("nano33ble")
    )
    assert result.tflite is None and result.shipped.data == dense.data
    assert "but the DECODE kernel and decoders cost 6,228 B of flash on cortex-m4f; kept dense" in (
        result.compressed.note
    )
    assert not any(t.method for t in result.compressed.tensors)
    assert list(tmp_path.iterdir()) == []


def test_the_fleet_table_shows_the_dense_figures_beside_the_compressed(compressed_run, tmp_path):
    import shutil

    from edgeprune.presentation.fleet import row

    shutil.copytree(compressed_run.result.out_dir, tmp_path / "nano33ble")
    (tmp_path / "nano33ble.exit").write_text("3\n")
    cells, code = row(str(tmp_path), "nano33ble")
    entry = compressed_run.result.report.stages.compress
    dense_ram = entry.dense_check.rule("ram").figure
    assert f"(dense {dense_ram:,} B)" in cells[2]
    assert cells[2].startswith(
        f"{compressed_run.result.report.stages.check.rule('ram').figure:,} B"
    )
    assert code == 3 and cells[-1] == "FAIL"


def test_the_run_summary_prints_dense_and_compressed_side_by_side(compressed_run):
    from edgeprune.presentation.summary import format_run

    text = format_run(compressed_run.result)
    entry = compressed_run.result.report.stages.compress
    assert "compress (prune): final_int8.tflite" in text
    assert f"-> final_int8_compressed.tflite {entry.compression['model_bytes']:,} B" in text
    line = next(x for x in text.splitlines() if x.startswith("DECODE kernel bytes"))
    assert line.split()[-1] == "6,228"
    assert "compression made the model stop fitting: ram over budget" in text
