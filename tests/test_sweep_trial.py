"""What a trial measures from a pipeline result: figures in bytes and ms whatever
unit a rule shows, the failed rules, one constraint per rule (> 0: failed)."""

from __future__ import annotations

from types import SimpleNamespace

from edgeprune.rules.result import RuleResult
from edgeprune.sweep.trial import CONSTRAINT_RULES, measure


def _rule(name, figure, budget, unit, ok=None):
    ok = figure <= budget if ok is None and budget is not None else ok if ok is not None else True
    return RuleResult(name, f"{name} rule", ok, figure, budget, unit, f"budget.{name}", "test")


def _result(rules, quality_ok=True):
    final = SimpleNamespace(stage="final", metrics={"accuracy": 0.97, "macro_f1": 0.96})
    quality = _rule("quantization", 0.01 if quality_ok else 0.05, 0.02, "")
    return SimpleNamespace(
        evaluations=[final],
        check=SimpleNamespace(rules=rules),
        quality=quality,
        sizes={"final": SimpleNamespace(gzip_bytes=12000)},
        prune=SimpleNamespace(fine_tune_seconds=2.5),
        compress=None,  # no [compress]: the dense int8 model ships, as sizes["final"] says
    )


def test_mcu_rules_give_bytes_and_ms_and_name_the_rule_over_budget():
    out = measure(
        _result(
            [
                _rule("flash", 400_000, 1_048_576, "B"),
                _rule("ram", 70_000, 262_144, "B"),
                _rule("arena", 5_000, None, "B"),
                _rule("latency", 24.5, 12.0, "ms"),
            ]
        ),
        seconds=4.0,
    )
    assert out.values == {
        "accuracy": 0.97,
        "macro_f1": 0.96,
        "latency_ms": 24.5,
        "flash_bytes": 400_000,
        "ram_bytes": 70_000,
        "gzip_bytes": 12000,
    }
    assert (out.feasible, out.failed_rules) == (False, ["latency"])
    by_rule = dict(zip(CONSTRAINT_RULES, out.constraints, strict=True))
    assert by_rule["latency"] > 0 and by_rule["latency"] == (24.5 - 12.0) / 12.0
    assert by_rule["flash"] < 0 and by_rule["arena"] == 0.0 and by_rule["storage"] == 0.0
    assert out.budgets == {"latency": 12.0, "flash": 1_048_576, "ram": 262_144}
    assert (out.seconds, out.fine_tune_seconds) == (4.0, 2.5)


def test_linux_storage_rule_in_mib_is_the_flash_figure_and_quality_is_a_constraint():
    out = measure(
        _result(
            [_rule("storage", 0.5, 8192.0, "MiB"), _rule("ram", 3.5, 1024.0, "MiB")],
            quality_ok=False,
        ),
        seconds=3.0,
    )
    assert out.values["flash_bytes"] == 524_288 and out.values["ram_bytes"] == 3_670_016
    assert out.values["latency_ms"] is None
    assert out.budgets == {"flash": 8192 * 2**20, "ram": 1024 * 2**20}
    assert (out.feasible, out.failed_rules) == (False, ["quantization"])
    assert dict(zip(CONSTRAINT_RULES, out.constraints, strict=True))["quantization"] > 0
