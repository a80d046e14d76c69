"""`edgeprune check` and `run --target`: evidence, rules, exit codes, firmware."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
from click.testing import CliRunner

from edgeprune.cli import main


def invoke(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def traced_build(tmp_path_factory):
    """The default run, built for the Nano 33 BLE (trains once for this module), with
    the SHA-256 of every model TFLite Micro searched an arena for or checked the ops
    of, and every Keras file loaded."""
    from edgeprune.adapters import keras as ka
    from edgeprune.tflm import probe

    out = tmp_path_factory.mktemp("build") / "nano33ble"
    searched, op_checked, loaded = [], [], []
    find_arena, check_ops, load_model = probe.find_arena, probe.check_ops, ka.load_model

    def traced(calls, fn):
        def call(model, **kwargs):
            calls.append(hashlib.sha256(model).hexdigest())
            return fn(model, **kwargs)

        return call

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(probe, "find_arena", traced(searched, find_arena))
        mp.setattr(probe, "check_ops", traced(op_checked, check_ops))
        mp.setattr(ka, "load_model", lambda path: loaded.append(str(path)) or load_model(path))
        result = invoke("run", "--target", "nano33ble", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, result, {"searched": searched, "op_checked": op_checked, "loaded": loaded}


@pytest.fixture(scope="module")
def built(traced_build):
    out, result, _ = traced_build
    return out, result


def test_run_for_a_target_measures_each_model_once_and_reads_nothing_back(traced_build):
    """The quantize stage hands the device check the bytes and the arena it measured:
    one arena search per distinct model (the two Dense variants), none again for the
    final model, no TFLite Micro op check of bytes whose arena search ran them, and
    pruned.keras is written for the user, never loaded back."""
    out, result, calls = traced_build
    final = hashlib.sha256((out / "final_int8.tflite").read_bytes()).hexdigest()
    assert len(calls["searched"]) == 2 and len(set(calls["searched"])) == 2
    assert calls["searched"].count(final) == 1
    assert final not in calls["op_checked"] and len(calls["op_checked"]) == 1  # preflight
    assert not [p for p in calls["loaded"] if p.endswith("pruned.keras")]
    assert result.stderr.count("smallest arena 5664 bytes") <= 1


@pytest.fixture(scope="module")
def topk_path(tmp_path_factory, topk_model):
    """The int8 TOPK_V2 model (conftest) as topk.tflite."""
    path = tmp_path_factory.mktemp("topk") / "topk.tflite"
    path.write_bytes(topk_model)
    return path


def test_run_for_a_target_checks_and_writes_firmware(built):
    out, result = built
    report = json.loads((out / "report.json").read_text())
    check = report["stages"]["check"]
    assert check["ok"] and check["target"] == "nano33ble"
    rules = {r["name"]: r for r in check["rules"]}
    ev = check["evidence"]
    target = report["target"]
    assert (
        rules["flash"]["figure"]
        == os.path.getsize(out / "final_int8.tflite")
        + ev["runtime_flash_bytes"]
        + target["reserve"]["flash_bytes"]
    )
    # computed for the nano33ble's Cortex-M4F from the host's arena (device_arena)
    host = max(ev["arena_min_bytes"], ev["arena_recorded_bytes"] or 0)
    assert ev["arena_basis"].startswith(f"host's {host:,} B") and "cortex-m4f" in ev["arena_basis"]
    assert (
        rules["ram"]["figure"]
        == ev["arena_bytes"] + ev["runtime_ram_bytes"] + target["reserve"]["ram_bytes"]
    )
    assert "estimate:" in ev["runtime_flash_basis"]
    for name in (
        "model_digits_cnn.h",
        "model_digits_cnn.cc",
        "ops_digits_cnn.h",
        "config_digits_cnn.h",
        "labels_digits_cnn.h",
        "inference_example.cc",
    ):
        assert (out / "firmware" / name).exists()
        assert f"firmware/{name}" in report["artifacts"]
    config = (out / "firmware" / "config_digits_cnn.h").read_text()
    assert f"ArenaBytes = {ev['arena_bytes']};" in config
    assert "check" in result.output and "PASS" in result.output


def test_run_for_a_target_keeps_the_preconditions_that_held(built):
    """dtype and ops are preconditions, judged before anything is measured: the
    report and the summary keep their evidence; the rules table has the budgets."""
    out, result = built
    check = json.loads((out / "report.json").read_text())["stages"]["check"]
    assert [r["name"] for r in check["preconditions"]] == ["dtype", "ops"]
    assert all(r["ok"] and r["figure"] is None for r in check["preconditions"])
    assert [r["name"] for r in check["rules"]] == ["flash", "ram", "arena", "latency"]
    assert (
        "dtype: The model's input, output and weights have a dtype the target's runtime "
        "runs. model is int8; the dtype nano33ble's cmsis-nn kernels are optimised for"
    ) in result.stdout
    assert (
        "ops: The runtime implements every operator and dtype in the model. loaded in "
        "TFLite Micro: CONV_2D x2, FULLY_CONNECTED x2, MAX_POOL_2D x1, RESHAPE x1, "
        "SOFTMAX x1"
    ) in result.stdout
    table = result.stdout[result.stdout.index("rule   ") :].split("\n\n")[0].splitlines()[2:]
    assert [row.split()[0] for row in table] == ["flash", "ram", "arena", "latency"]


def test_an_int8_model_with_float_edges_passes_on_an_mcu_and_gets_its_firmware(
    int8_float_io_model, tmp_path
):
    """TFLite Micro runs QUANTIZE and DEQUANTIZE at the edges, so an int8 model with a
    float32 interface (the converter's default) is checked and emitted, not refused."""
    model = tmp_path / "edges.tflite"
    model.write_bytes(int8_float_io_model)
    r = invoke("check", str(model), "--target", "nano33ble")
    assert r.exit_code == 0, r.output
    assert "dtype: " in r.stdout and "int8 inside, float32 input/output: TFLite Micro " in r.stdout
    assert "QUANTIZE x1" in r.stdout and "DEQUANTIZE x1" in r.stdout  # the worker ran them
    out = tmp_path / "fw"
    r = invoke("firmware", str(model), "--target", "nano33ble", "--out", str(out))
    assert r.exit_code == 0, r.output
    ops = next(out.rglob("ops_edges.h")).read_text()
    assert "AddQuantize()" in ops and "AddDequantize()" in ops
    assert "AddConv2D(tflite::Register_CONV_2D_INT8())" in ops


@pytest.mark.parametrize("case", ["litert", "resolver"])
def test_a_failed_precondition_refuses_the_model_with_its_evidence(case, int8_model, monkeypatch):
    from edgeprune.artifacts import Flatbuffer
    from edgeprune.stages import check
    from edgeprune.target import load_target

    model, target, arena = int8_model, "nano33ble", None
    if case == "litert":
        from edgeprune.runners import host

        def refuse(*args):
            raise host.RunnerError("the model does not load and run in LiteRT (no kernel)")

        monkeypatch.setattr(host, "peak_memory_bytes", refuse)
        target = "rpi4"
        message = (
            "LiteRT cannot run m.tflite on rpi4: the model does not load and run in "
            "LiteRT (no kernel); replace those operators, or check the model on a target "
            "whose runtime has them"
        )
    else:
        from edgeprune.errors import UnsupportedModelError
        from edgeprune.firmware import emit

        def unregistered(info):
            raise UnsupportedModelError("custom op MyOp has no registration")

        monkeypatch.setattr(emit, "resolver_calls", unregistered)
        arena = object()  # handed on by the quantize stage: no TFLite Micro op check
        message = "m.tflite on nano33ble: custom op MyOp has no registration"
    with pytest.raises(check.TargetMismatchError) as info:
        check.check_flatbuffer(
            Flatbuffer.of(model, "m.tflite", ""), load_target(target), arena=arena
        )
    assert str(info.value) == message


def test_check_command_matches_the_run(built):
    out, _ = built
    r = invoke("check", str(out / "final_int8.tflite"), "--target", "nano33ble")
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    arena = report["stages"]["check"]["evidence"]["arena_bytes"]
    assert f"arena {arena:,} B" in r.stdout
    assert r.stdout.splitlines()[0].endswith("on nano33ble: PASS")


def test_over_budget_exits_3_with_the_failing_rule(built):
    out, _ = built
    model = str(out / "final_int8.tflite")
    fits = invoke("check", model, "--target", "pico")
    assert fits.exit_code == 0, fits.output
    ram = next(line for line in fits.stdout.splitlines() if line.startswith("ram "))
    figure = int(ram.split()[1].replace(",", ""))  # pico keeps 32 KB for the application
    r = invoke("check", model, "--target", "pico", "--max-ram-bytes", str(figure - 1))
    assert r.exit_code == 3, r.output
    assert any(line.startswith("ram ") and line.endswith("FAIL") for line in r.stdout.splitlines())
    assert "does not fit pico: ram over budget" in r.stderr


def test_latency_over_budget_exits_3_and_names_the_estimate(built):
    out, _ = built
    model = str(out / "final_int8.tflite")
    ok = invoke("check", model, "--target", "nano33ble")
    est = json.loads((out / "report.json").read_text())["stages"]["check"]["evidence"]["latency"]
    assert est["cost_model"] == "cmsis-nn_cortex-m4f" and est["ms"] > 0
    assert "ESTIMATE" in ok.stdout and "leave-one-out error" in ok.stdout
    assert "most expensive operators" in ok.stdout
    r = invoke("check", model, "--target", "nano33ble", "--max-latency-ms", str(est["ms"] / 2))
    assert r.exit_code == 3, r.output
    assert any(
        line.startswith("latency ") and line.endswith("FAIL") for line in r.stdout.splitlines()
    )
    assert "latency over budget" in r.stderr


def test_cost_command_tables_and_json_match_the_estimate(built):
    out, _ = built
    model = str(out / "final_int8.tflite")
    r = invoke("cost", model, "--target", "esp32s3", "--json")
    assert r.exit_code == 0, r.output
    body = json.loads(r.stdout)
    assert body["macs"] == sum(o["macs"] for o in body["ops"]) > 0
    est = body["estimate"]
    assert est["ms"] == pytest.approx(sum(o["ms"] for o in est["ops"]))
    assert est["energy_uj"] == pytest.approx(est["ms"] * est["power_mw"])
    text = invoke("cost", model, "--target", "esp32s3")
    assert text.exit_code == 0 and "ESTIMATE" in text.stdout and "uJ" in text.stdout


def test_calibrate_command_writes_a_cost_model_check_can_use(built, tmp_path):
    from edgeprune.estimates.calibrate import calibrate_file
    from edgeprune.estimates.latency import load_cost_model

    out, _ = built
    csv = os.path.join(
        os.path.dirname(__file__),
        "..",
        "targets",
        "calibration",
        "mlperf_tiny_v0.5",
        "measurements.csv",
    )
    fitted = tmp_path / "mine.toml"
    r = invoke("calibrate", csv, "--out", str(fitted))
    assert r.exit_code == 0, r.output
    # the shipped M4F model is the base, so the figures follow it: the CLI prints the fit's
    a = calibrate_file(csv).accuracy
    assert f"leave-one-out error: median {a.median_abs_error:.1%}, max {a.max_abs_error:.1%}" in (
        r.stdout
    )
    assert a.median_abs_error < 0.25 and a.max_abs_error < 0.5  # no warning: see test_latency
    assert load_cost_model(str(fitted)).accuracy.n == 4
    c = invoke(
        "check",
        str(out / "final_int8.tflite"),
        "--target",
        "nano33ble",
        "--cost-model",
        str(fitted),
    )
    assert c.exit_code == 0 and "cost model mine" in c.stdout
    bad = invoke("calibrate", csv, "--fit", "mac,bogus")
    assert bad.exit_code == 1 and "unknown fit parameter bogus" in bad.stderr


def test_linux_target_uses_file_size_and_measured_memory(built):
    """What the model adds, in MiB beside the board's capacity, with no reserve and
    no arena row; the latency estimate is reported, not judged, without a budget."""
    out, _ = built
    path = out / "baseline_float32.tflite"
    r = invoke("check", str(path), "--target", "rpizero2w")
    assert r.exit_code == 0, r.output
    rows = r.stdout.split("\n\n")[1].splitlines()[2:]
    assert [row.split()[0] for row in rows] == ["storage", "ram", "latency"]
    assert rows[0].split()[1:] == [f"{path.stat().st_size / 2**20:,.4g}", "MiB", "8,192", "MiB"] + [
        f"{8192 - path.stat().st_size / 2**20:,.4g}",
        "MiB",
        "pass",
    ]
    assert rows[1].split()[3:5] == ["512", "MiB"] and rows[2].endswith("no budget set")
    assert f"{path.stat().st_size:,} B (" in r.stdout and "reserve" not in r.stdout
    assert "of rpizero2w's 512 MiB of RAM: what a fresh process grows by" in r.stdout
    assert "host with xnnpack, not on the board" in r.stdout


def test_the_float32_baseline_passes_check_on_an_mcu_with_the_float_evidence(built):
    """TFLite Micro runs float32 models (reference float kernels): checked, not refused."""
    out, _ = built
    r = invoke("check", str(out / "baseline_float32.tflite"), "--target", "nano33ble")
    assert r.exit_code == 0, r.output
    assert (
        "dtype: The model's input, output and weights have a dtype the target's runtime runs. "
        "float32: TFLite Micro runs it with its reference float kernels (cmsis-nn optimises "
        "int8 only)"
    ) in r.stdout
    assert "float ops (CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, RESHAPE, SOFTMAX): " in r.stdout


@pytest.mark.parametrize(
    "case",
    [
        "truncated",
        "not a flatbuffer",
        "unknown target",
        "negative field",
        "missing op",
    ],
)
def test_check_bad_input_is_one_line_exit_1(case, built, topk_path, tmp_path):
    out, _ = built
    model, target = str(out / "final_int8.tflite"), "nano33ble"
    if case == "truncated":
        data = (out / "final_int8.tflite").read_bytes()
        (tmp_path / "cut.tflite").write_bytes(data[: len(data) // 2])
        model, message = str(tmp_path / "cut.tflite"), "pass a complete .tflite flatbuffer"
    elif case == "not a flatbuffer":
        (tmp_path / "x.tflite").write_text("hello")
        model, message = str(tmp_path / "x.tflite"), "x.tflite: 5 bytes, too short for a TFLite"
    elif case == "unknown target":
        target, message = "arduino", "unknown target 'arduino'; known targets: alif_e7"
    elif case == "negative field":
        from edgeprune.target import load_target

        text = open(load_target("nano33ble").path).read()
        import re

        (tmp_path / "neg.toml").write_text(
            re.sub(r"max_ram_bytes = [\d_]+", "max_ram_bytes = -196_608", text)
        )
        target, message = (
            str(tmp_path / "neg.toml"),
            "budget.max_ram_bytes = -196608 is out of range; it must be > 0",
        )
    else:
        model, message = (
            str(topk_path),
            "TFLite Micro cannot run topk.tflite on nano33ble: TOPK_V2 at operator 1 (layer topk)",
        )
    r = invoke("check", model, "--target", target)
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeprune: error: "), r.stderr
    assert message in lines[0]


@pytest.mark.parametrize("mode", ["float16", "dynamic"])
def test_run_refuses_a_mode_tflite_micro_cannot_run_before_writing(tmp_path, mode):
    r = invoke("run", "--target", "nano33ble", "--quantize", mode, "--out", str(tmp_path / "b"))
    assert r.exit_code == 1
    assert (
        f"TFLite Micro on nano33ble runs int8 and float32 models but quantize.mode = {mode!r} "
        "makes "
    ) in r.stderr
    assert 'use quantize.mode = "int8" (the dtype its cmsis-nn kernels are optimised for) or ' in (
        r.stderr
    )
    assert not (tmp_path / "b").exists()


def test_fleet_table_reports_each_build(built, tmp_path):
    out, _ = built
    shutil.copytree(out, tmp_path / "nano33ble")
    (tmp_path / "nano33ble.exit").write_text("0\n")
    (tmp_path / "pico.exit").write_text("1\n")
    r = invoke("fleet", str(tmp_path), "nano33ble", "pico")
    assert r.exit_code == 1  # pico's build failed
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[2:]}
    flash = json.loads((out / "report.json").read_text())["stages"]["check"]["rules"][0]
    budget = f"{flash['figure']:,.0f} B / {flash['budget']:,.0f} B"
    assert rows["nano33ble"].endswith("PASS") and budget in rows["nano33ble"]
    latency = json.loads((out / "report.json").read_text())["stages"]["check"]["rules"][-1]
    assert latency["name"] == "latency" and latency["budget"] is None  # no profile sets one
    assert f"{latency['figure']:,.4g} ms (est.), no budget set" in rows["nano33ble"]
    assert rows["pico"].split()[1:] == [
        *"no report no report no report not evaluated".split(),
        *"ERROR (exit 1, see pico.log)".split(),
    ]


def test_fleet_exit_3_when_a_device_is_over_budget(built, tmp_path):
    out, _ = built
    shutil.copytree(out, tmp_path / "nano33ble")
    report = json.loads((tmp_path / "nano33ble" / "report.json").read_text())
    report["stages"]["check"]["ok"] = False
    (tmp_path / "nano33ble" / "report.json").write_text(json.dumps(report))
    (tmp_path / "nano33ble.exit").write_text("3\n")
    r = invoke("fleet", str(tmp_path), "nano33ble")
    assert r.exit_code == 3 and "FAIL" in r.stdout


def test_model_dtype_counts_integer_only_models_as_int8():
    from types import SimpleNamespace as NS

    from edgeprune.stages.check import first_float, model_dtype

    def info(tensors, weights, shapes=None):
        ts = [
            NS(index=i, subgraph=0, name=f"t{i}", dtype=d, elements=(shapes or {}).get(i, 4))
            for i, d in enumerate(tensors)
        ]
        op = NS(index=0, subgraph=0, opcode="FULLY_CONNECTED", inputs=(0,), outputs=(1,))
        return NS(
            tensors=ts,
            inputs=(ts[0],),
            outputs=(ts[min(3, len(ts) - 1)],),
            operators=[op, NS(index=1, subgraph=0, opcode="ADD", inputs=(1, 2), outputs=(3,))],
            weights=NS(per_tensor=[NS(dtype=d) for d in weights]),
        )

    # TFLM's audio front end: int16 in, int32 inside, int8 out, no float anywhere
    assert model_dtype(info(["int16", "int32", "int8"], [])) == "int8"
    assert model_dtype(info(["int8", "int32"], ["int8"])) == "int8"
    assert model_dtype(info(["float32"], ["float32"])) == "float32"
    assert model_dtype(info(["float32", "int8"], ["int8"])) == "mixed"  # dynamic range
    # An int8 LSTM's empty float placeholders (shape [0]) and a float tensor no
    # operator touches leave the model int8.
    assert model_dtype(info(["int8", "int8", "int8", "int8", "float32"], ["int8"])) == "int8"
    empty = info(["int8", "int8", "float32", "int8"], ["int8"], shapes={2: 0})
    assert model_dtype(empty) == "int8" and first_float(empty) == ""
    used = info(["int8", "int8", "float32", "int8"], ["int8"])
    assert model_dtype(used) == "mixed"
    assert (
        first_float(used)
        == "float32 tensor 2 ('t2') read by ADD at operator 1 beside an int8 input"
    )


def test_run_for_a_target_picks_the_dense_quantization_with_the_smaller_arena(built):
    out, result = built
    report = json.loads((out / "report.json").read_text())
    dense = report["stages"]["quantize"]["dense_quantization"]
    pc, pt = dense["per_channel"], dense["per_tensor"]
    ev = report["stages"]["check"]["evidence"]
    chosen = dense[dense["picked"]]
    assert chosen["arena_bytes"] == max(ev["arena_min_bytes"], ev["arena_recorded_bytes"] or 0)
    assert chosen["bytes"] == os.path.getsize(out / "final_int8.tflite")
    if dense["picked"] == "per_tensor":
        assert pt["arena_bytes"] < pc["arena_bytes"] and pt["check"]["ok"]
    else:
        assert pt["arena_bytes"] >= pc["arena_bytes"] or not pt["check"]["ok"]
    assert dense["why"] and "Dense weights:" in result.stdout


def test_check_writes_the_same_result_as_json(built, tmp_path):
    out, _ = built
    path = tmp_path / "check.json"
    r = invoke(
        "check", str(out / "final_int8.tflite"), "--target", "nano33ble", "--report", str(path)
    )
    assert r.exit_code == 0, r.output
    body = json.loads(path.read_text())
    run_check = json.loads((out / "report.json").read_text())["stages"]["check"]
    assert body["schema_version"] == 2 and body["check"]["ok"] is True
    assert body["check"]["rules"] == run_check["rules"]
    assert (
        body["model_sha256"]
        == json.loads((out / "report.json").read_text())["artifacts"]["final_int8.tflite"]["sha256"]
    )


def test_run_for_a_target_refuses_missing_ops_before_writing(tmp_path):
    from edgeprune.adapters import keras as ka

    keras = ka.keras
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(16, name="hidden"),
            keras.layers.Activation("gelu", name="gelu_act"),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    model.save(tmp_path / "gelu.keras")
    out = tmp_path / "build"
    r = invoke(
        "run",
        "--model",
        str(tmp_path / "gelu.keras"),
        "--data",
        "digits",
        "--target",
        "nano33ble",
        "--out",
        str(out),
        "--epochs",
        "1",
    )
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "GELU at operator" in lines[0] and "(layer gelu_act)" in lines[0]
    assert not out.exists()  # refused before training or writing anything


def test_check_options_applies_the_recipe_budget_and_its_cost_model_together(built):
    """The one entry point for a recipe's [budget]: `check`, the fit search and the
    pipeline's final check all go through it, so a --cost-model reaches each."""
    from edgeprune.recipe_options import BudgetOptions
    from edgeprune.stages.check import check_options
    from edgeprune.target import load_target

    out, _ = built
    target = load_target("nano33ble")
    path = str(out / "final_int8.tflite")
    default = check_options(path, target, BudgetOptions())
    other = check_options(
        path,
        target,
        BudgetOptions(cost_model="cmsis-nn_cortex-m7", force_cost_model=True, max_latency_ms=0.001),
    )
    assert default.evidence.latency.cost_model == "cmsis-nn_cortex-m4f"
    assert other.evidence.latency.cost_model == "cmsis-nn_cortex-m7"
    assert other.evidence.latency.ms != default.evidence.latency.ms
    rule = next(r for r in other.rules if r.name == "latency")
    assert rule.budget == 0.001 and not rule.ok and not other.ok
