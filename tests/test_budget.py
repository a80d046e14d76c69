"""Budget rules on measured evidence, the preconditions, the one rule result, and the
runtime flash estimate."""

import pytest

from edgeprune.estimates import footprint
from edgeprune.presentation.check import format_check
from edgeprune.rules import budget as b
from edgeprune.rules.result import RuleResult
from edgeprune.target import Budget, load_target


def _estimate(ms: float):
    from edgeprune.estimates.latency import LatencyEstimate

    return LatencyEstimate(
        "nano33ble", "test-model", "fit", "a test fit", 64_000_000, 1, ms, None, None, ()
    )


def evidence(**kw):
    base = dict(
        latency=_estimate(12.5),
        model_path="m.tflite",
        model_bytes=45_336,
        model_dtype="int8",
        ops={"CONV_2D": 2, "FULLY_CONNECTED": 2},
        arena_min_bytes=10_000,
        arena_recorded_bytes=9_500,
        arena_bytes=12_000,
        arena_basis="host's 10,000 B computed for the test core",
        runtime_flash_bytes=40_000,
        runtime_flash_basis="estimate: test",
        runtime_ram_bytes=716,
    )
    base.update(kw)
    return b.Evidence(**base)


def support(**kw):
    base = dict(
        model="m.tflite", dtype="int8", float_io=False, ops={"CONV_2D": 2, "FULLY_CONNECTED": 2}
    )
    base.update(kw)
    return b.Support(**base)


def test_rules_and_preconditions_have_their_docstring_as_text():
    t = load_target("nano33ble")
    result = b.evaluate(evidence(), t)
    assert [r.name for r in result.rules] == ["flash", "ram", "arena", "latency"]
    assert result.rules[0].rule == (
        "The model, its runtime and the application's reserve fit the flash budget."
    )
    assert [r.key for r in result.rules] == [
        "budget.max_flash_bytes",
        "budget.max_ram_bytes",
        "largest_ram_block_bytes",
        "budget.max_latency_ms",
    ]
    held = [p(support(), t) for p in b.PRECONDITIONS]
    assert [r.name for r in held] == ["dtype", "ops"]
    for r, fn in zip((*result.rules, *held), (*b.RULES["mcu"], *b.PRECONDITIONS), strict=True):
        assert r.rule == fn.__doc__.strip().splitlines()[0] and r.rule.endswith(".")
    assert result.ok


@pytest.mark.parametrize(
    "case,target,facts,message",
    [
        (
            "hybrid",
            "nano33ble",
            dict(dtype="mixed"),
            "m.tflite is a mixed model but TFLite Micro on nano33ble runs integer-only or "
            "float32 models, not float activations with int8 weights; convert with "
            'quantize.mode = "int8"',
        ),
    ],
)
def test_the_dtype_precondition_fails_with_the_conversion_to_use(case, target, facts, message):
    r = b.dtype_precondition(support(**facts), load_target(target))
    assert not r.ok and r.evidence == message and r.figure is None and r.key == "model_dtype"


@pytest.mark.parametrize("target", ["nano33ble", "esp32", "alif_e7", "pico"])
def test_a_float32_model_passes_the_dtype_rule_on_tflm_targets_with_what_it_costs(target):
    t = load_target(target)
    r = b.dtype_precondition(support(dtype="float32", float_io=True), t)
    soft = " in software floating point" if target == "pico" else ""
    assert r.ok and r.evidence == (
        f"float32: TFLite Micro runs it with its reference float kernels{soft} "
        f"({t.kernels} optimises int8 only): 4x the weight bytes of int8 and slower; "
        'quantize with quantize.mode = "int8" for the optimised kernels'
    )


@pytest.mark.parametrize(
    "case,target,facts,message",
    [
        (
            "tflm lacks ops",
            "esp32",
            dict(unsupported=("TOPK_V2 at operator 3 (layer topk)", "ATAN2 at operator 4")),
            "TFLite Micro cannot run m.tflite on esp32: TOPK_V2 at operator 3 (layer topk); "
            "ATAN2 at operator 4; replace those layers or choose a Linux target",
        ),
        (
            "resolver",
            "nano33ble",
            dict(unregistered="custom op MyOp has no registration"),
            "m.tflite on nano33ble: custom op MyOp has no registration",
        ),
        (
            "litert",
            "rpi4",
            dict(unsupported=("the model does not load and run in LiteRT (x)",)),
            "LiteRT cannot run m.tflite on rpi4: the model does not load and run in LiteRT (x); "
            "replace those operators, or check the model on a target whose runtime has them",
        ),
        (
            "litert_micro_kernel",
            "rpi4",
            dict(
                unsupported=("(x)",),
                ops={"CUSTOM:SignalRfft": 1, "CUSTOM:SignalWindow": 1, "CUSTOM:MyOp": 1},
            ),
            "LiteRT cannot run m.tflite on rpi4: (x); LiteRT lacks TFLite Micro's own kernels "
            "SignalRfft, SignalWindow; check the model on a TFLite Micro target",
        ),
    ],
)
def test_the_ops_precondition_fails_naming_what_the_runtime_lacks(case, target, facts, message):
    r = b.ops_precondition(support(**facts), load_target(target))
    assert not r.ok and r.evidence == message


def test_preconditions_that_hold_say_what_was_run():
    nano, rpi = load_target("nano33ble"), load_target("rpi4")
    assert b.ops_precondition(support(), nano).evidence == (
        "loaded in TFLite Micro: CONV_2D x2, FULLY_CONNECTED x2"
    )
    assert b.ops_precondition(support(), rpi).evidence == (
        "loaded, allocated and invoked in ai-edge-litert"
    )
    assert b.dtype_precondition(support(), nano).evidence == (
        "model is int8; the dtype nano33ble's cmsis-nn kernels are optimised for"
    )
    assert b.dtype_precondition(support(dtype="float32"), rpi).evidence == (
        "model is float32; rpi4 runs any dtype"
    )


def test_flash_counts_dense_model_plus_runtime_and_headroom():
    t = load_target("nano33ble")
    r = b.flash_rule(evidence(), t, t.budget)
    assert r.figure == 45_336 + 40_000 + t.reserve.flash_bytes  # the formula
    assert r.headroom == t.budget.max_flash_bytes - r.figure
    assert "dense flatbuffer" in r.evidence and "estimate: test" in r.evidence
    assert f"application reserve {t.reserve.flash_bytes:,} B" in r.evidence


def test_ram_over_budget_fails_with_the_arena_breakdown():
    t = load_target("pico")
    tight = Budget(t.budget.max_flash_bytes, 12_000 + t.reserve.ram_bytes)
    r = b.ram_rule(evidence(), t, tight)
    assert not r.ok and r.figure == 12_716 + t.reserve.ram_bytes and r.headroom == -716
    assert "arena 12,000 B (host's 10,000 B computed for the test core)" in r.evidence


def test_linux_targets_judge_what_the_model_adds_in_mib_beside_the_capacity():
    """No nominal reserve dressed as usage: the file's bytes and the measured
    process growth, in MiB, against the board's capacity; no arena row."""
    t = load_target("rpi4")
    ev = evidence(model_dtype="float32", peak_memory_bytes=3_355_443, arena_bytes=None)
    result = b.evaluate(ev, t)
    assert [r.name for r in result.rules] == ["storage", "ram", "latency"] and result.ok
    storage, ram, _ = result.rules
    assert (storage.figure, storage.budget, storage.unit) == (45_336 / 2**20, 8192.0, "MiB")
    assert (ram.figure, ram.budget, ram.unit) == (3_355_443 / 2**20, 1024.0, "MiB")
    assert storage.evidence == (
        "45,336 B (44.27 KiB) of rpi4's 8 GiB of storage (flash_bytes): the model file; "
        "the LiteRT library is part of the OS image"
    )
    assert ram.evidence.startswith("3,355,443 B (3.2 MiB) of rpi4's 1 GiB of RAM: what a fresh ")
    assert ram.evidence.endswith(" host with xnnpack, not on the board")
    assert "reserve" not in storage.evidence + ram.evidence
    rows = [line.split() for line in format_check(result).splitlines()[4:6]]
    assert rows[0] == ["storage", "0.04324", "MiB", "8,192", "MiB", "8,192", "MiB", "pass"]
    assert rows[1] == ["ram", "3.2", "MiB", "1,024", "MiB", "1,021", "MiB", "pass"]
    host = b.memory_rule(ev, load_target("rpi5"), Budget(10**9, 25_275_973_632))
    assert host.against_budget() == "3.2 MiB, budget 24,105 MiB (budget.max_ram_bytes)"
    tight = b.memory_rule(ev, t, Budget(10**9, 3_000_000))
    assert not tight.ok and tight.failure().startswith("ram 3.2 MiB, over the budget 2.861 MiB")


def test_linux_profiles_have_no_reserve_and_refuse_one():
    from edgeprune.target import TargetError, parse_target

    t = load_target("rpizero2w")
    assert (t.reserve.flash_bytes, t.reserve.ram_bytes) == (0, 0)
    assert (t.budget.max_flash_bytes, t.budget.max_ram_bytes) == (t.flash_bytes, t.ram_bytes)
    data = {k: v for k, v in vars(t).items() if k in ("name", "kind", "core", "clock_hz")}
    data.update(flash_bytes=2**33, ram_bytes=2**29, runtime="litert", kernels="xnnpack")
    data.update(model_dtype="any", arena_margin={"fraction": 0.0, "bytes": 0, "reason": "heap"})
    assert parse_target(data, "p.toml", "p").budget.max_ram_bytes == 2**29
    with pytest.raises(TargetError) as err:
        parse_target({**data, "reserve": {"flash_bytes": 1, "ram_bytes": 1}}, "p.toml", "p")
    assert str(err.value) == (
        "p.toml: [reserve] is for kind = 'mcu' only: on a Linux target flash and RAM are "
        "what the model adds (file bytes, measured process growth); remove the table"
    )


def test_arena_must_fit_the_largest_ram_block():
    t = load_target("esp32")  # a static arena may not exceed 160 KB of DRAM
    r = b.arena_block_rule(evidence(arena_bytes=200_000), t, t.budget)
    assert not r.ok and r.budget == 163_840 and r.figure == 200_000
    assert b.arena_block_rule(evidence(), t, t.budget).ok


def test_an_arena_without_a_block_limit_is_reported_not_judged():
    t = load_target("nano33ble")
    r = b.arena_block_rule(evidence(), t, t.budget)
    assert r.ok and not r.judged and (r.figure, r.budget) == (12_000, None)
    assert r.evidence == (
        "one static arena of 12,000 B; nano33ble's profile records no contiguous-block "
        "limit (largest_ram_block_bytes), so only the RAM rule bounds it"
    )


def test_evidence_without_the_figures_the_target_needs_is_refused():
    with pytest.raises(ValueError, match="the evidence for nano33ble lacks arena_bytes"):
        b.evaluate(evidence(arena_bytes=None), load_target("nano33ble"))
    with pytest.raises(ValueError, match="the evidence for rpi4 lacks peak_memory_bytes"):
        b.evaluate(evidence(), load_target("rpi4"))


@pytest.mark.parametrize(
    "rule,tight",
    [
        (b.flash_rule, Budget(1_000, 10**9)),
        (b.ram_rule, Budget(10**9, 1_000)),
        (b.latency_rule, Budget(10**9, 10**9, 1.0)),
    ],
)
def test_each_rule_over_its_budget_fails_with_its_evidence(rule, tight):
    t = load_target("nano33ble")
    r = rule(evidence(), t, tight)
    same = rule(evidence(), t, Budget(10**9, 10**9, 1e9)).evidence
    assert not r.ok and r.headroom < 0 and r.evidence == same
    assert r.failure() == (
        f"{r.name} {r.figure:,.4g} ms, over the budget 1 ms (budget.max_latency_ms)"
        if r.unit == "ms"
        else f"{r.name} {r.figure:,} B, over the budget 1,000 B ({r.key})"
    )


def test_format_check_tables_the_rules_and_gives_the_preconditions_evidence():
    nano = load_target("nano33ble")
    held = tuple(p(support(), nano) for p in b.PRECONDITIONS)
    lines = format_check(b.evaluate(evidence(), nano, preconditions=held)).splitlines()
    assert lines[0] == "check m.tflite on nano33ble: PASS"
    assert [line.split()[0] for line in lines[4:8]] == ["flash", "ram", "arena", "latency"]
    assert lines[8] == ""
    assert lines[9] == (
        "dtype: The model's input, output and weights have a dtype the "
        "target's runtime runs. model is int8; the dtype nano33ble's cmsis-nn kernels are "
        "optimised for"
    )
    assert lines[10].startswith(
        "ops: The runtime implements every operator and dtype in the "
        "model. loaded in TFLite Micro: CONV_2D x2"
    )
    for name in ("flash", "ram", "arena", "latency"):
        assert any(line.startswith(f"{name}: ") for line in lines)


def test_one_result_type_round_trips_and_measures_headroom_by_its_bound():
    at_most = RuleResult("flash", "Fits.", True, 900.0, 1_000.0, "B", "budget.max_flash_bytes", "e")
    at_least = RuleResult(
        "agreement", "Reaches.", False, 0.5, 0.9, "", "validate.min_agreement", "e", bound="min"
    )
    assert at_most.headroom == 100 and at_least.headroom == pytest.approx(-0.4)
    for r in (at_most, at_least):
        assert RuleResult.from_dict(r.to_dict()) == r
        assert r.to_dict()["headroom"] == r.headroom
    assert at_least.failure() == "agreement 0.5, under the budget 0.9 (validate.min_agreement)"
    assert at_least.against_budget() == "0.5, budget at least 0.9 (validate.min_agreement)"
    unmeasured = RuleResult("ops", "Runs.", False, None, None, "", "runtime", "it did not")
    assert unmeasured.failure() == "ops failed: it did not" and unmeasured.headroom is None
    with pytest.raises(KeyError):
        RuleResult.from_dict({k: v for k, v in at_most.to_dict().items() if k != "key"})


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
    assert {
        ("cortex-m0plus", "cmsis-nn"),
        ("cortex-m7", "cmsis-nn"),
        ("cortex-m33", "cmsis-nn"),
    } <= set(footprint.MEASURED)
    est = footprint.runtime_flash("xtensa-lx7", "esp-nn", {"CONV_2D": True, "GELU": False})
    assert "no measurement for xtensa-lx7 with esp-nn" in est.basis
    assert "GELU not measured, counted as the largest measured kernel" in est.basis


def test_latency_rule_compares_the_estimate_and_says_it_is_one():
    t = load_target("nano33ble")
    ok = b.latency_rule(evidence(), t, Budget(1, 1, 20.0))
    # an estimate is checked with its error band (0.5 when the model states none) as headroom
    assert (ok.ok, ok.figure, ok.budget, ok.unit, ok.judged) == (True, 12.5 * 1.5, 20.0, "ms", True)
    assert ok.evidence.startswith("ESTIMATE 12.5 ms") and "test-model" in ok.evidence
    assert "12.5 x 1.50 = 18.75 ms" in ok.evidence and "error band ±50%" in ok.evidence
    over = b.latency_rule(evidence(latency=_estimate(14.0)), t, Budget(1, 1, 20.0))
    assert not over.ok and over.figure == 21.0  # 14 ms fits, 14 ms + its band does not


@pytest.mark.parametrize("target", ["nano33ble", "pico", "esp32", "rpi4"])
def test_without_a_latency_budget_the_estimate_is_reported_never_judged(target):
    """A latency budget is the application's: no profile sets one, and a slow
    estimate (400 ms: a person detector on the Nano 33 BLE) neither fails nor passes."""
    t = load_target(target)
    assert t.budget.max_latency_ms is None
    ev = evidence(latency=_estimate(400.0), peak_memory_bytes=3_000_000)
    result = b.evaluate(ev, t)
    latency = result.rules[-1]
    assert result.ok and latency.ok and not latency.judged
    assert (latency.figure, latency.budget, latency.headroom) == (400.0, None, None)
    assert latency.statement == "No latency budget is set: the figure is reported, not judged."
    assert latency.evidence.startswith(
        "to judge it, set max_latency_ms in the recipe's [budget] or pass --max-latency-ms "
        "(a latency budget is the application's, not the device's); ESTIMATE 400 ms"
    )
    text = format_check(result)
    row = next(line for line in text.splitlines() if line.startswith("latency "))
    assert row.split() == ["latency", "400", "ms", "not", "set", "no", "budget", "set"]
    assert "check m.tflite on " + target + ": PASS" in text and " - " not in text


def test_latency_rule_compares_a_measurement_where_the_profile_takes_one():
    from edgeprune.estimates.latency import LatencyMeasurement

    t = load_target("host")
    measured = LatencyMeasurement(50, 5, 1, "xnnpack", 10.0, 12.0, 9.0, 14.0, "this host")
    r = b.latency_rule(evidence(latency_measured=measured), t, Budget(1, 1, 8.0))
    assert not r.ok and r.figure == 10.0 and r.evidence.startswith("MEASURED 10 ms")
    assert "the cost model estimates 12.5 ms (+25%)" in r.evidence


def test_every_rule_reads_as_its_result_pass_or_fail():
    """A failing row states the failure ("does not fit"), never the rule's "fits"."""
    from edgeprune.rules import quality, validation
    from edgeprune.rules.result import negate, rule_text

    rules = [*b.RULES["mcu"], *b.RULES["linux"]]
    rules += [quality.quantization_accuracy, quality.quantization_mse]
    rules += [validation.accuracy_rule, validation.agreement_rule, validation.mse_rule]
    for fn in rules:
        text = rule_text(fn)
        assert " not " in negate(text) and " not " not in text, text
    failed = RuleResult("latency", rule_text(b.latency_rule), False, 31.7, 20.0, "ms", "k", "")
    assert failed.statement == "One inference's latency does not fit the latency budget."
    held = RuleResult("ram", rule_text(b.ram_rule), True, 1.0, 2.0, "B", "k", "")
    assert held.statement == held.rule and held.rule.endswith(" fit the RAM budget.")
    assert " do not fit the RAM budget." in RuleResult(**{**vars(held), "ok": False}).statement


def test_tflite_micro_person_detect_is_not_refused_on_the_nano_for_a_budget_never_set():
    """TFLite Micro's person_detect (MobileNetV1 0.25, 96x96, 7.16 M MACs) runs on the
    Nano 33 BLE in TFLite Micro's own example; its estimate is far above the 100 ms
    the profile used to impose, and with no budget set it is reported, not failed."""
    import json

    from edgeprune.estimates.latency import estimate_latency
    from edgeprune.estimates.opcost import ModelCost
    from edgeprune.target import targets_dir

    path = f"{targets_dir()}/calibration/rp2040_person_detect/person_detect.json"
    with open(path) as fh:
        cost = ModelCost.from_dict(json.load(fh))
    t = load_target("nano33ble")
    est = estimate_latency(cost, t)
    assert cost.macs == 7_157_888 and est.ms > 100
    r = b.latency_rule(evidence(latency=est), t, t.budget)
    assert r.ok and not r.judged and r.figure == est.ms
    judged = b.latency_rule(evidence(latency=est), t, Budget(1, 1, 100.0))
    assert not judged.ok and judged.statement.endswith("does not fit the latency budget.")
