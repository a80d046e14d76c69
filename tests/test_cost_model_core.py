"""Cost models know their core: one fitted for another core or kernel library is
refused unless forced, and a forced estimate says so (issue 15)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.estimates.latency import (
    CostModelMismatchError,
    estimate_latency,
    load_cost_model,
    select_cost_model,
)
from edgeprune.estimates.opcost import ModelCost, OpCost
from edgeprune.recipe import Recipe
from edgeprune.recipe_options import BudgetOptions
from edgeprune.stages.inputs import resolve_target
from edgeprune.target import list_targets, load_target

#: one int8 3x3 convolution: index, opcode, layer, class, dtypes, MACs, elements, bytes
_CONV = (0, "CONV_2D", "m/c/Conv2D", "conv", "int8", "int8", 10_000, 0, 100, 64, 64, "")
ONE_CONV = ModelCost("m.tflite", (OpCost(*_CONV),))


def invoke(*args):
    return CliRunner().invoke(main, list(args))


@pytest.mark.parametrize("name", list_targets())
def test_every_target_default_cost_model_is_for_its_own_core(name):
    target = load_target(name)
    model, note = select_cost_model(target)
    assert (model.kernels, model.core) == (target.kernels, target.core)
    assert note == ""


def test_x86_model_on_a_cortex_m4f_is_refused_naming_both_and_the_fix():
    with pytest.raises(CostModelMismatchError) as info:
        estimate_latency(ONE_CONV, load_target("nano33ble"), "xnnpack_x86-64")
    text = str(info.value)
    assert text == (
        "cost model xnnpack_x86-64 is for xnnpack on x86-64, but nano33ble runs cmsis-nn "
        "on cortex-m4f; choose a cost model for cmsis-nn_cortex-m4f or pass "
        "--force-cost-model (recipe: [budget] force_cost_model = true) to use it anyway"
    )


def test_same_kernels_on_another_core_is_refused_too():
    with pytest.raises(CostModelMismatchError, match="cmsis-nn on cortex-m7, but nano33ble"):
        estimate_latency(ONE_CONV, load_target("nano33ble"), "cmsis-nn_cortex-m7")


def test_forced_estimate_says_so_in_its_caveat():
    target = load_target("nano33ble")
    forced = estimate_latency(ONE_CONV, target, "xnnpack_x86-64", force=True)
    own = estimate_latency(ONE_CONV, target)
    assert forced.cost_model == "xnnpack_x86-64" and forced.ms != own.ms
    assert "FORCED: cost model xnnpack_x86-64 is for xnnpack on x86-64, not cmsis-nn on " in (
        forced.caveat
    )
    assert "FORCED" not in own.caveat


def test_a_model_file_for_the_same_core_is_accepted(tmp_path):
    from edgeprune.estimates.calibrate import cost_model_toml

    path = tmp_path / "mine.toml"
    path.write_text(cost_model_toml(load_cost_model("cmsis-nn_cortex-m4f")))
    est = estimate_latency(ONE_CONV, load_target("nano33ble"), str(path))
    assert est.cost_model == "mine" and est.notes == ()


def test_run_refuses_a_foreign_cost_model_before_training():
    """The preflight of `run --target`: refused in milliseconds, not after training."""
    recipe = Recipe(budget=BudgetOptions(cost_model="xnnpack_x86-64"))
    with pytest.raises(CostModelMismatchError):
        resolve_target("nano33ble", recipe)
    forced = Recipe(budget=BudgetOptions(cost_model="xnnpack_x86-64", force_cost_model=True))
    assert resolve_target("nano33ble", forced).id == "nano33ble"


def test_cost_command_refuses_then_accepts_with_the_force_flag(tmp_path, int8_model):
    model = tmp_path / "m.tflite"
    model.write_bytes(int8_model)
    args = ("cost", str(model), "--target", "nano33ble", "--cost-model", "xnnpack_x86-64")
    refused = invoke(*args)
    assert refused.exit_code == 1
    assert refused.stderr.strip().splitlines() == [
        "edgeprune: error: cost model xnnpack_x86-64 is for xnnpack on x86-64, but nano33ble "
        "runs cmsis-nn on cortex-m4f; choose a cost model for cmsis-nn_cortex-m4f or pass "
        "--force-cost-model (recipe: [budget] force_cost_model = true) to use it anyway"
    ]
    forced = invoke(*args, "--force-cost-model")
    assert forced.exit_code == 0, forced.output
    assert "FORCED: cost model xnnpack_x86-64" in forced.stdout


def test_check_command_takes_the_force_flag(tmp_path, int8_model):
    model = tmp_path / "m.tflite"
    model.write_bytes(int8_model)
    args = ("check", str(model), "--target", "nano33ble", "--cost-model", "xnnpack_x86-64")
    refused = invoke(*args)
    assert refused.exit_code == 1 and "--force-cost-model" in refused.stderr
    forced = invoke(*args, "--force-cost-model")
    assert forced.exit_code in (0, 3), forced.output
    assert "FORCED: cost model xnnpack_x86-64" in forced.stdout
