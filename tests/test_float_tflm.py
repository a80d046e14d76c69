"""Float32 models on TFLite Micro targets are checked, not refused (issue 15).

TFLite Micro runs float32 models with its reference float kernels on every core;
a profile's ``model_dtype`` is what edgeprune quantizes to, not a refusal. A
hybrid (dynamic-range) model stays refused: TFLite Micro has no kernels for float
activations with int8 weights. Models are built here through edgeprune's converter.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tomllib  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from edgeprune.artifacts import Flatbuffer  # noqa: E402
from edgeprune.estimates.latency import estimate_latency, latency_dir  # noqa: E402
from edgeprune.estimates.opcost import model_cost  # noqa: E402
from edgeprune.firmware.emit import render, resolver_calls  # noqa: E402
from edgeprune.stages.check import TargetMismatchError, check_flatbuffer  # noqa: E402
from edgeprune.target import load_target  # noqa: E402
from edgeprune.tflite import inspect_model  # noqa: E402

FLOAT_EVIDENCE = (
    "float32: TFLite Micro runs it with its reference float kernels (cmsis-nn optimises "
    'int8 only): 4x the weight bytes of int8 and slower; quantize with quantize.mode = "int8" '
    "for the optimised kernels"
)


@pytest.fixture(scope="module")
def dense_models() -> dict[str, bytes]:
    """One tiny Dense classifier converted three ways. 64x32 weights: dynamic-range
    quantization leaves tensors under 1,024 elements in float."""
    from edgeprune.adapters.converter import to_tflite
    from edgeprune.adapters.keras import keras, seed_everything

    seed_everything(0)
    inp = keras.Input((64,))
    hidden = keras.layers.Dense(32, activation="relu")(inp)
    out = keras.layers.Dense(4, activation="softmax")(hidden)
    model = keras.Model(inp, out)
    samples = np.random.default_rng(0).standard_normal((16, 64)).astype(np.float32)
    return {mode: to_tflite(model, mode, samples) for mode in ("float32", "int8", "dynamic")}


def _model(data: bytes, name: str) -> Flatbuffer:
    return Flatbuffer.of(data, f"/models/{name}", "")


def test_a_float32_model_passes_check_on_nano33ble_with_what_float_costs(dense_models):
    result = check_flatbuffer(_model(dense_models["float32"], "f.tflite"), load_target("nano33ble"))
    dtype = next(p for p in result.preconditions if p.name == "dtype")
    ops = next(p for p in result.preconditions if p.name == "ops")
    assert dtype.ok and dtype.evidence == FLOAT_EVIDENCE
    assert ops.ok and ops.evidence == "loaded in TFLite Micro: FULLY_CONNECTED x2, SOFTMAX x1"
    assert result.ok and result.evidence.model_dtype == "float32"
    # the reference float kernels ask for no CMSIS-NN scratch: the arena is computed for the
    # device, not the host's figure padded for kernels without rules
    assert "no rule" not in result.evidence.arena_basis
    assert "+ 0 B largest cmsis-nn (dsp) scratch + 0 B handles" in result.evidence.arena_basis


def test_a_float32_model_on_the_m0plus_says_software_floating_point(dense_models):
    result = check_flatbuffer(_model(dense_models["float32"], "f.tflite"), load_target("pico"))
    dtype = next(p for p in result.preconditions if p.name == "dtype")
    assert "reference float kernels in software floating point (cmsis-nn" in dtype.evidence


def test_a_float32_model_gets_the_generic_kernels_in_its_resolver(dense_models):
    f32, i8 = dense_models["float32"], dense_models["int8"]
    assert resolver_calls(inspect_model(f32)) == ["AddFullyConnected()", "AddSoftmax()"]
    assert resolver_calls(inspect_model(i8)) == [
        "AddFullyConnected(tflite::Register_FULLY_CONNECTED_INT8())",
        "AddSoftmax(tflite::Register_SOFTMAX_INT8())",
    ]
    ops_h = render(f32, "f.tflite", 4096)["ops_f.h"]
    assert "  if (resolver.AddFullyConnected() != kTfLiteOk) {" in ops_h
    assert "_INT8" not in ops_h


@pytest.mark.parametrize("target", ["nano33ble", "stm32f746g_disco", "pico2", "alif_e7", "pico"])
def test_float_ops_are_costed_by_the_counted_float_kernels(dense_models, target):
    """Each float op costs what the cost model's float tables say (read here from the
    TOML itself), so the float model is slower than its int8 twin by the measured ratio."""
    t = load_target(target)
    f32 = estimate_latency(model_cost(inspect_model(dense_models["float32"])), t)
    i8 = estimate_latency(model_cost(inspect_model(dense_models["int8"])), t)
    with open(os.path.join(latency_dir(), f"{f32.cost_model}.toml"), "rb") as fh:
        raw = tomllib.load(fh)
    unit, out, call = (raw[f"float_cycles_per_{k}"] for k in ("unit", "output", "op"))
    ops = {o.index: o for o in model_cost(inspect_model(dense_models["float32"])).ops}
    for row in f32.ops:
        op = ops[row.index]
        cls = op.op_class
        expected = raw["overhead_cycles"] + (
            op.work * unit[cls] + op.elements * out.get(cls, 0.0) + call.get(cls, 0.0)
        )
        assert row.cycles == pytest.approx(expected, rel=1e-9)
    fc_f32 = sum(r.cycles for r in f32.ops if r.opcode == "FULLY_CONNECTED")
    fc_i8 = sum(r.cycles for r in i8.ops if r.opcode == "FULLY_CONNECTED")
    assert fc_f32 > 1.2 * fc_i8  # the reference float loop against CMSIS-NN's int8 one
    note = next(n for n in f32.notes if n.startswith("float ops (FULLY_CONNECTED, SOFTMAX): "))
    assert raw["float_basis"] in note and note in f32.caveat
    assert not any(n.startswith("float ops") for n in i8.notes)
    # no board measured a float model: its band is wider than the integer fit's, and says why
    assert i8.error_band < 1.0 and f32.error_band == 1.0
    assert "float kernels: counted under QEMU, no board measured" in f32.caveat


def test_a_hybrid_model_is_still_refused_naming_its_float_tensor(dense_models):
    with pytest.raises(TargetMismatchError) as err:
        check_flatbuffer(_model(dense_models["dynamic"], "hybrid.tflite"), load_target("nano33ble"))
    message = str(err.value)
    assert message.startswith("hybrid.tflite is a mixed model (float32 tensor 0 (")
    assert message.endswith(
        "but TFLite Micro on nano33ble runs integer-only or float32 models, not float "
        'activations with int8 weights; convert with quantize.mode = "int8"'
    )
    assert "read by FULLY_CONNECTED at operator 0 beside an int8 input) but" in message
    assert "\n" not in message


@pytest.mark.slow
def test_run_for_nano33ble_in_float32_checks_and_emits_generic_kernels(tmp_path):
    """``run --target nano33ble --quantize float32``: the pipeline keeps the float model,
    the check passes it with the float evidence, and the firmware registers the generic
    kernels with the arena the check computed."""
    import json

    from click.testing import CliRunner

    from edgeprune.cli import main

    out = tmp_path / "f32"
    r = CliRunner().invoke(
        main, ["run", "--target", "nano33ble", "--quantize", "float32", "--out", str(out)]
    )
    assert r.exit_code == 0, r.output
    check = json.loads((out / "report.json").read_text())["stages"]["check"]
    dtype = next(p for p in check["preconditions"] if p["name"] == "dtype")
    assert dtype["ok"] and dtype["evidence"] == FLOAT_EVIDENCE
    ops_h = (out / "firmware" / "ops_digits_cnn.h").read_text()
    for method in ("AddConv2D()", "AddFullyConnected()", "AddMaxPool2D()", "AddSoftmax()"):
        assert f"resolver.{method} != kTfLiteOk" in ops_h
    assert "_INT8" not in ops_h
    config = (out / "firmware" / "config_digits_cnn.h").read_text()
    arena = check["evidence"]["arena_bytes"]
    assert f"constexpr int kDigitsCnnArenaBytes = {arena};" in config
    assert "+ 0 B largest cmsis-nn (dsp) scratch" in check["evidence"]["arena_basis"]
