"""report.json: typed entries round-trip, the read path checks the schema, the merge rules."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from edgeprune import artifacts, report
from edgeprune.errors import BadInputError
from edgeprune.rules.quality import quantization_accuracy
from edgeprune.rules.result import RuleResult


def _check() -> RuleResult:
    return quantization_accuracy({"accuracy": 0.98}, {"accuracy": 0.97}, 0.02, "pruned float32")


def _inputs(data_sha256: str = "d" * 64) -> report.InputsEntry:
    return report.InputsEntry(
        "builtin:digits_cnn", {"name": "digits", "sha256": data_sha256}, "classification", 10, True
    )


def _size(path: str, nbytes: int) -> report.ModelSize:
    return report.ModelSize(
        path, "float32", nbytes, nbytes // 2, 100, 75, 0.75, 100, {"CONV_2D": 2}
    )


def _eval(artifact: str) -> report.EvalEntry:
    return report.EvalEntry(
        artifact, {"accuracy": 0.97, "agreement": 0.99}, "baseline_float32.tflite"
    )


def _validation(runner: str, samples: int, ok: bool = True) -> report.ValidationResult:
    """A validation result of ``samples`` samples whose one rule held or not."""
    rule = _check()
    rule = replace(rule, ok=ok)
    return report.ValidationResult(
        runner,
        "here",
        "perf_counter",
        "final_int8.tflite",
        "f" * 64,
        "digits",
        "test",
        samples,
        samples,
        False,
        "",
        {"accuracy": 0.97},
        {"accuracy": 0.98},
        {"agreement": 1.0},
        {"n": samples, "p50": 0.1},
        (rule,),
        ("a note",),
        None,
    )


def _full_report() -> report.Report:
    """A report with every kind of entry, as `run --target` with a structured fit writes."""
    quality = _check()
    variant = report.DenseVariant(45_000, 6_272, quality, {"accuracy": 0.97, "macro_f1": 0.96})
    fit = report.FitEntry(
        "nano33ble",
        "int8",
        (
            report.FitCandidate(
                1.0,
                40_000,
                False,
                {
                    "latency": report.FitRule(31.7, 15.0, "ms", False, "estimate"),
                    "flash": report.FitRule(400_000, 1_000_000, "B", True),
                },
            ),
        ),
    )
    structured = report.StructuredEntry(
        goal="fit",
        importance="l1",
        ranking="global",
        floor=0.25,
        params_before=40_000,
        params_after=20_000,
        macs_before=2_000_000,
        macs_after=900_000,
        params_reduction=2.0,
        macs_reduction=2.22,
        rounds=(
            report.RoundEntry(1, 10, 0.5, 20_000, 900_000, 0.96, 1e-7, 256, {"conv1": [16, 8]}),
        ),
        metric_split="test",
        metric_name="accuracy",
        kept_whole={"classifier": "the output"},
        stopped="",
        notes=("a note",),
        fit=fit,
        seconds=3.0,
    )
    rule = RuleResult(
        "ram", "The arena fits.", True, 73_235, 262_144, "B", "budget.max_ram_bytes", "arena"
    )
    held = RuleResult(
        "dtype",
        "The dtype fits.",
        True,
        None,
        None,
        "",
        "model_dtype",
        "model is int8; nano33ble needs int8",
    )
    stages = report.Stages(
        baseline=report.BaselineEntry(True, False, {"loss": 0.1}, 5.0),
        structured=structured,
        prune=report.PruneEntry(
            {"kind": "constant"},
            0.75,
            0.75,
            [{"name": "conv1"}],
            {"dw": "depthwise"},
            {"loss": 0.2},
            4.0,
        ),
        strip=report.StripEntry(360, 0.0, True),
        quantize=report.QuantizeEntry(
            "int8",
            200,
            "x_train (seeded sample)",
            False,
            quality,
            0.6,
            dense_quantization=report.DenseEntry("per_tensor", "less arena", variant, variant),
        ),
        evaluate={"baseline": _eval("baseline_float32.tflite"), "final": _eval("final.tflite")},
        check=report.CheckEntry(
            "nano33ble",
            True,
            {"max_ram_bytes": 262_144},
            (held,),
            (rule,),
            {"latency_measured": None},
        ),
    )
    return report.Report(
        0,
        {"seed": 0},
        _inputs(),
        stages,
        {"baseline": _size("baseline_float32.tflite", 156_428)},
        ("n",),
        17.4,
        target={"id": "nano33ble"},
        artifacts={"a": {"sha256": "x"}},
        validation={"host": _validation("host", 10)},
    )


def test_every_entry_survives_a_round_trip_through_json(tmp_path):
    original = _full_report()
    assert report.Report.from_dict(json.loads(json.dumps(original.to_dict()))) == original
    path = report.write(tmp_path / "report.json", original)
    assert report.read(path) == original
    body = json.loads((tmp_path / "report.json").read_text())
    assert list(body)[:4] == ["schema_version", "tool", "versions", "seed"]
    assert body["schema_version"] == report.SCHEMA_VERSION
    # the JSON keys other tools read stay where they were
    quality = body["stages"]["quantize"]["check"]
    assert quality["rule"] == "The accuracy lost in quantization fits the quantization budget."
    assert quality["figure"] == pytest.approx(0.01) and "measured" not in quality
    assert body["stages"]["check"]["rules"][0]["headroom"] == 262_144 - 73_235
    assert body["stages"]["check"]["preconditions"][0]["name"] == "dtype"
    assert body["stages"]["quantize"]["dense_quantization"]["per_tensor"]["arena_bytes"] == 6272
    assert body["stages"]["evaluate"]["final"]["accuracy"] == 0.97  # metrics stay flat
    assert body["stages"]["structured"]["rounds"][0]["widths"] == {"conv1": [16, 8]}
    assert "width" not in body["stages"]["structured"]  # unset options are left out


@pytest.mark.parametrize(
    "body,message",
    [
        ({"schema_version": 99}, "has report schema 99; this edgeprune reads schema 2; re-run"),
        ({"stages": {}}, "has report schema None"),
        ({"schema_version": 1, "seed": 0}, "has report schema 1; this edgeprune reads schema 2"),
        ({"schema_version": 2, "seed": 0}, "is not a complete edgeprune report"),
        ("not json", "is not readable JSON"),
    ],
)
def test_the_read_path_refuses_what_it_cannot_read_in_one_line(tmp_path, body, message):
    path = tmp_path / "report.json"
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    with pytest.raises(BadInputError, match=message) as info:
        report.read(path)
    assert "\n" not in str(info.value)


def test_a_report_of_another_schema_is_neither_merged_nor_listed(tmp_path):
    out = artifacts.RunDir(str(tmp_path))
    (tmp_path / "report.json").write_text(
        json.dumps({"schema_version": 99, "artifacts": {"old.bin": {"stage": "prune"}}})
    )
    assert report.load(out) is None and out.artifacts == {}
    assert report.begin_run(out) == set() and not (tmp_path / "report.json").exists()


def test_begin_run_removes_the_report_and_names_what_it_listed(tmp_path):
    out = artifacts.RunDir(str(tmp_path))
    out.write_bytes("final_int8.tflite", b"x", "quantize")
    report.write_run(out, _full_report())
    listed = json.loads((tmp_path / "report.json").read_text())["artifacts"]
    assert set(listed) == {"final_int8.tflite"}  # the folder's listing, not the report's
    assert report.begin_run(artifacts.RunDir(str(tmp_path))) == {"final_int8.tflite"}
    assert not (tmp_path / "report.json").exists()


def _run_report(pruned_sha: str) -> report.Report:
    """A `run` report whose pruned.keras has the hash ``pruned_sha``."""
    stages = report.Stages(
        baseline=report.BaselineEntry(True, False, {}, 5.0),
        prune=report.PruneEntry({}, 0.75, 0.75, [], {}, {}, 4.0),
        strip=report.StripEntry(360, 0.0, True),
        quantize=report.QuantizeEntry("int8", 200, "x", False, _check(), 0.6),
        evaluate={
            "baseline": _eval("baseline_float32.tflite"),
            "pruned": _eval("pruned_float32.tflite"),
            "final": _eval("final_int8.tflite"),
        },
    )
    return report.Report(
        0,
        {"seed": 0},
        _inputs(),
        stages,
        {"baseline": _size("b", 10), "pruned": _size("p", 10), "final": _size("f", 5)},
        artifacts={"pruned.keras": {"stage": "prune", "sha256": pruned_sha}},
    )


def _quantize_report(seed: int = 5) -> report.Report:
    entry = report.QuantizeEntry(
        "int8",
        50,
        "x",
        False,
        _check(),
        0.1,
        input={"model": "pruned.keras"},
        seed=seed,
        recipe={"seed": seed},
    )
    return report.Report(
        seed,
        {"seed": seed},
        _inputs(),
        report.Stages(quantize=entry, evaluate={"final": _eval("final_int8.tflite")}),
        {"final": _size("final_int8.tflite", 4)},
    )


def test_a_stage_command_keeps_the_stages_that_made_its_input():
    old = _run_report("a" * 64)
    keep = report.kept_stages(old, "quantize", old.artifacts, "a" * 64, "d" * 64)
    assert keep == {"baseline", "prune"}
    merged = report.merge_stage(old, keep, _quantize_report())
    assert merged.stages.strip is None  # a `run` entry no stage command writes
    assert merged.stages.quantize.seed == 5 and merged.stages.quantize.calibration_samples == 50
    # a kept entry written by `run` is given the old header's input, seed and recipe
    assert merged.stages.prune.input == old.inputs.to_dict() and merged.stages.prune.seed == 0
    assert set(merged.stages.evaluate) == {"baseline", "pruned", "final"}
    assert merged.stages.evaluate["final"].artifact == "final_int8.tflite"
    assert merged.sizes["final"].bytes == 4 and set(merged.sizes) == {"baseline", "pruned", "final"}
    assert any("does not shrink the flatbuffer" in n for n in merged.notes)


@pytest.mark.parametrize("case", ["other input", "other data", "no old report"])
def test_a_stage_command_drops_what_did_not_make_its_input(case):
    old = None if case == "no old report" else _run_report("a" * 64)
    input_sha = "b" * 64 if case == "other input" else "a" * 64
    data_sha = "e" * 64 if case == "other data" else "d" * 64
    keep = report.kept_stages(old, "quantize", old.artifacts if old else {}, input_sha, data_sha)
    assert keep == set()
    merged = report.merge_stage(old, keep, _quantize_report())
    assert merged.stages.baseline is None and merged.stages.prune is None
    assert set(merged.stages.evaluate) == {"final"} and set(merged.sizes) == {"final"}


def test_validation_results_are_added_by_runner(tmp_path):
    out = artifacts.RunDir(str(tmp_path))
    report.write_run(out, _run_report("a" * 64))
    report.add_validation(str(tmp_path), _validation("tflm", 10))
    report.add_validation(str(tmp_path), _validation("host", 20))
    report.add_validation(str(tmp_path), _validation("tflm", 30, ok=False))
    read = report.read(tmp_path / "report.json")
    assert read.validation == {
        "tflm": _validation("tflm", 30, ok=False),
        "host": _validation("host", 20),
    }
    body = json.loads((tmp_path / "report.json").read_text())["validation"]
    assert body["tflm"]["ok"] is False and body["host"]["ok"] is True
    assert body["tflm"]["rules"][0]["figure"] == _check().figure
    assert read.stages == _run_report("a" * 64).stages  # nothing else changes


def test_validation_is_not_added_to_a_report_of_another_schema(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(BadInputError, match="schema 99"):
        report.add_validation(str(tmp_path), _validation("host", 1))
    assert json.loads((tmp_path / "report.json").read_text()) == {"schema_version": 99}


def test_a_rule_without_one_of_its_fields_makes_the_report_incomplete(tmp_path):
    body = _full_report().to_dict()
    del body["stages"]["quantize"]["check"]["key"]
    (tmp_path / "report.json").write_text(json.dumps(body))
    with pytest.raises(BadInputError, match="is not a complete edgeprune report .*'key'"):
        report.read(tmp_path / "report.json")


def test_the_check_report_keeps_its_shape(tmp_path):
    entry = report.CheckEntry("pico", False, {}, (), (), {})
    report.write(
        tmp_path / "c.json", report.CheckReport("/m.tflite", "f" * 64, {"id": "pico"}, entry)
    )
    body = json.loads((tmp_path / "c.json").read_text())
    assert list(body) == [
        "schema_version",
        "tool",
        "versions",
        "model",
        "model_sha256",
        "target",
        "check",
    ]
    assert body["tool"] == {"name": "edgeprune"} and body["check"]["ok"] is False
