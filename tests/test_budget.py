"""Budget rules on measured evidence, and the runtime flash estimate."""

import pytest

from edgeprune.estimates import footprint
from edgeprune.rules import budget as b
from edgeprune.target import Budget, load_target


def _estimate(ms: float):
    from edgeprune.estimates.latency import LatencyEstimate

    return LatencyEstimate("nano33ble", "test-model", "fit", "a test fit", 64_000_000, 1, ms,
                           None, None, ())


def evidence(**kw):
    base = dict(latency=_estimate(12.5), model_path="m.tflite", model_bytes=45_336,
                model_dtype="int8",
                ops={"CONV_2D": 2, "FULLY_CONNECTED": 2}, ops_supported=True,
                arena_min_bytes=10_000, arena_recorded_bytes=9_500, arena_bytes=12_000,
                runtime_flash_bytes=40_000, runtime_flash_basis="estimate: test",
                runtime_ram_bytes=716)
    base.update(kw)
    return b.Evidence(**base)


def test_rules_have_their_docstring_as_text():
    result = b.evaluate(evidence(), load_target("nano33ble"))
    assert [r.name for r in result.rules] == ["flash", "ram", "arena", "ops", "dtype", "latency"]
    assert result.rules[0].rule == ("The model, its runtime and the application's reserve fit "
                                    "the flash budget.")
    assert result.ok


def test_flash_counts_dense_model_plus_runtime_and_headroom():
    t = load_target("nano33ble")
    r = b.flash_rule(evidence(), t, t.budget)
    assert r.figure == 45_336 + 40_000 + t.reserve.flash_bytes  # the formula
    assert r.headroom == t.budget.max_flash_bytes - r.figure
    assert "dense flatbuffer" in r.evidence and "estimate: test" in r.evidence
    assert f"application reserve {t.reserve.flash_bytes:,} B" in r.evidence


def test_ram_over_budget_fails_with_the_arena_breakdown():
    t = load_target("pico")
    tight = Budget(t.budget.max_flash_bytes, 12_000 + t.reserve.ram_bytes,
                   t.budget.max_latency_ms)
    r = b.ram_rule(evidence(), t, tight)
    assert not r.ok and r.figure == 12_716 + t.reserve.ram_bytes and r.headroom == -716
    assert "smallest working 10,000 B" in r.evidence and "print_allocations 9,500 B" in r.evidence


def test_unsupported_op_and_wrong_dtype_fail():
    t = load_target("esp32")
    result = b.evaluate(evidence(ops_supported=False, unsupported_ops=("TOPK_V2 at operator 3 "
                                                                       "(layer topk)",),
                                 model_dtype="float32"), t)
    by = {r.name: r for r in result.rules}
    assert not result.ok and not by["ops"].ok and not by["dtype"].ok
    assert "TOPK_V2 at operator 3" in by["ops"].evidence
    assert "model is float32; esp32 needs int8" in by["dtype"].evidence


def test_linux_targets_use_file_size_and_peak_memory():
    t = load_target("rpi4")
    ev = evidence(model_dtype="float32", peak_memory_bytes=5_000_000, arena_bytes=None)
    result = b.evaluate(ev, t)
    by = {r.name: r for r in result.rules}
    assert by["flash"].figure == 45_336 + t.reserve.flash_bytes
    assert by["ram"].figure == 5_000_000 + t.reserve.ram_bytes
    assert by["dtype"].ok and by["ops"].ok and by["arena"].ok and result.ok
    assert "runs any dtype" in by["dtype"].evidence


def test_arena_must_fit_the_largest_ram_block():
    t = load_target("esp32")  # a static arena may not exceed 160 KB of DRAM
    r = b.arena_block_rule(evidence(arena_bytes=200_000), t, t.budget)
    assert not r.ok and r.budget == 163_840 and r.figure == 200_000
    assert b.arena_block_rule(evidence(), t, t.budget).ok


def test_no_arena_is_a_ram_failure_not_a_crash():
    t = load_target("nano33ble")
    r = b.ram_rule(evidence(arena_bytes=None, ops_supported=False), t, t.budget)
    assert not r.ok and r.figure is None and "could not allocate" in r.evidence


def test_format_check_prints_one_line_per_rule():
    text = b.format_check(b.evaluate(evidence(), load_target("nano33ble")))
    assert text.splitlines()[0] == "check m.tflite on nano33ble: PASS"
    for name in ("flash", "ram", "arena", "ops", "dtype"):
        assert any(line.startswith(name) for line in text.splitlines())


@pytest.mark.parametrize("key", sorted(footprint.MEASURED))
def test_runtime_flash_reproduces_the_measured_kws_build(key):
    m = footprint.MEASURED[key]
    est = footprint.runtime_flash(*key, {op: True for op in footprint.KWS_OPS})
    assert est.total_bytes == m.kws_int8_bytes
    assert est.basis.startswith(f"estimate: measured on {key[0]} with {key[1]}")


def test_generic_registrations_cost_more_than_int8_only():
    ops = {"CONV_2D": True, "FULLY_CONNECTED": True, "SOFTMAX": True}
    int8 = footprint.runtime_flash("cortex-m4f", "cmsis-nn", ops)
    generic = footprint.runtime_flash("cortex-m4f", "cmsis-nn", dict.fromkeys(ops, False))
    assert generic.total_bytes > int8.total_bytes
    one = footprint.runtime_flash("cortex-m4f", "cmsis-nn", {"CONV_2D": True})
    assert one.kernel_bytes == footprint.MEASURED[("cortex-m4f", "cmsis-nn")].ops["CONV_2D"][0]


def test_runtime_flash_for_unmeasured_core_and_op_says_so():
    assert {("cortex-m0plus", "cmsis-nn"), ("cortex-m7", "cmsis-nn"),
            ("cortex-m33", "cmsis-nn")} <= set(footprint.MEASURED)
    est = footprint.runtime_flash("xtensa-lx7", "esp-nn", {"CONV_2D": True, "GELU": False})
    assert "no measurement for xtensa-lx7 with esp-nn" in est.basis
    assert "GELU not measured, counted as the largest measured kernel" in est.basis


def test_latency_rule_compares_the_estimate_and_says_it_is_one():
    t = load_target("nano33ble")
    ok = b.latency_rule(evidence(), t, t.budget)
    assert (ok.ok, ok.figure, ok.budget, ok.unit) == (True, 12.5, t.budget.max_latency_ms, "ms")
    assert "ESTIMATE" in ok.evidence and "test-model" in ok.evidence
    over = b.latency_rule(evidence(latency=_estimate(t.budget.max_latency_ms + 1)), t, t.budget)
    assert not over.ok and over.headroom == -1
    missing = b.latency_rule(evidence(latency=None), t, t.budget)
    assert not missing.ok and missing.evidence == "not estimated"
