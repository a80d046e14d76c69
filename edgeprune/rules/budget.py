"""Budget rules: does a model fit a device?

Each rule is one function taking the measured :class:`Evidence`, the device
and the budgets in force, and returning a :class:`RuleResult`. The first line
of a rule's docstring is the rule as the user reads it. A rule never measures
anything itself; it only compares figures measured elsewhere and says where
each came from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgeprune.estimates.latency import LatencyEstimate, LatencyMeasurement
from edgeprune.presentation.table import table
from edgeprune.target import Budget, Target


@dataclass(frozen=True)
class Evidence:
    """Figures measured for one model on one target, with where each came from."""

    model_path: str
    model_bytes: int
    model_dtype: str  # "int8", "float32", "mixed": of the input, output and weights
    ops: dict[str, int]
    # TFLite Micro targets
    ops_supported: bool | None = None
    unsupported_ops: tuple[str, ...] = ()  # "OPCODE at operator N (layer)"
    arena_min_bytes: int | None = None  # smallest arena that allocated and ran here
    arena_recorded_bytes: int | None = None  # what print_allocations() reported
    arena_bytes: int | None = None  # max of the two plus the target's margin
    runtime_flash_bytes: int | None = None
    runtime_flash_basis: str = ""
    runtime_ram_bytes: int | None = None
    # Linux targets
    peak_memory_bytes: int | None = None
    # every target: estimated from the op costs and the target's cost model
    latency: LatencyEstimate | None = None
    # profiles that time the model on this machine (the host profile)
    latency_measured: LatencyMeasurement | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class RuleResult:
    name: str
    rule: str
    ok: bool
    figure: float | None
    budget: float | None
    unit: str
    evidence: str

    @property
    def headroom(self) -> float | None:
        if self.figure is None or self.budget is None:
            return None
        return self.budget - self.figure


@dataclass(frozen=True)
class CheckResult:
    target: str
    ok: bool
    rules: tuple[RuleResult, ...]
    budget: Budget
    evidence: Evidence

    def to_dict(self) -> dict:
        return {"target": self.target, "ok": self.ok, "budget": asdict(self.budget),
                "rules": [{**asdict(r), "headroom": r.headroom} for r in self.rules],
                "evidence": asdict(self.evidence)}


def _rule_text(fn) -> str:
    return fn.__doc__.strip().splitlines()[0]


def flash_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The model, its runtime and the application's reserve fit the flash budget."""
    reserve = target.reserve.flash_bytes
    if target.kind == "linux":
        figure = ev.model_bytes + reserve
        evidence = (f"model file {ev.model_bytes:,} B (the LiteRT library is part of the OS "
                    f"image) + reserve {reserve:,} B")
    else:
        figure = ev.model_bytes + (ev.runtime_flash_bytes or 0) + reserve
        evidence = (f"model {ev.model_bytes:,} B (dense flatbuffer: pruned zeros are stored) + "
                    f"TFLite Micro runtime {ev.runtime_flash_bytes:,} B ({ev.runtime_flash_basis})"
                    f" + application reserve {reserve:,} B")
    return RuleResult("flash", _rule_text(flash_rule), figure <= budget.max_flash_bytes, figure,
                      budget.max_flash_bytes, "B", evidence)


def ram_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The model's working memory, its runtime and the application's reserve fit the RAM budget."""
    reserve = target.reserve.ram_bytes
    if target.kind == "linux":
        if ev.peak_memory_bytes is None:
            return RuleResult("ram", _rule_text(ram_rule), False, None, budget.max_ram_bytes,
                              "B", "not measured")
        figure = ev.peak_memory_bytes + reserve
        evidence = (f"{ev.peak_memory_bytes:,} B: memory growth of a fresh process that loads "
                    f"the model in ai-edge-litert ({target.kernels}), allocates and invokes "
                    f"once, measured on this host; + reserve {reserve:,} B")
    else:
        if ev.arena_bytes is None:
            return RuleResult("ram", _rule_text(ram_rule), False, None, budget.max_ram_bytes, "B",
                              "no arena: TFLite Micro could not allocate the model")
        figure = ev.arena_bytes + (ev.runtime_ram_bytes or 0) + reserve
        m = target.arena_margin
        evidence = (f"arena {ev.arena_bytes:,} B = max(smallest working {ev.arena_min_bytes:,} B, "
                    f"print_allocations {ev.arena_recorded_bytes or 0:,} B) + {m.fraction:.0%} + "
                    f"{m.bytes} B margin; + {ev.runtime_ram_bytes or 0:,} B static runtime RAM"
                    f" + application reserve {reserve:,} B")
    return RuleResult("ram", _rule_text(ram_rule), figure <= budget.max_ram_bytes, figure,
                      budget.max_ram_bytes, "B", evidence)


def arena_block_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The tensor arena fits the largest contiguous RAM block."""
    block = target.largest_ram_block_bytes
    if target.runtime != "tflm" or block is None:
        return RuleResult("arena", _rule_text(arena_block_rule), True, None, None, "",
                          "no bank limit recorded for this device")
    ok = ev.arena_bytes is not None and ev.arena_bytes <= block
    return RuleResult("arena", _rule_text(arena_block_rule), ok, ev.arena_bytes, block, "B",
                      f"one static arena of {ev.arena_bytes or 0:,} B in the largest block of "
                      f"{target.id} ({block:,} B)")


def ops_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The runtime implements every operator and dtype in the model."""
    if target.runtime != "tflm":
        ok = ev.peak_memory_bytes is not None
        return RuleResult("ops", _rule_text(ops_rule), ok, None, None, "",
                          "loaded, allocated and invoked in ai-edge-litert" if ok else
                          "not run in ai-edge-litert")
    ok = bool(ev.ops_supported)
    if ok:
        evidence = "loaded in TFLite Micro: " + ", ".join(f"{k} x{v}" for k, v in ev.ops.items())
    else:
        evidence = "TFLite Micro lacks: " + "; ".join(ev.unsupported_ops or ("unknown",))
    return RuleResult("ops", _rule_text(ops_rule), ok, None, None, "", evidence)


def dtype_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The model's input, output and weights have the dtype the target requires."""
    ok = target.model_dtype == "any" or ev.model_dtype == target.model_dtype
    needs = "runs any dtype" if target.model_dtype == "any" else f"needs {target.model_dtype}"
    return RuleResult("dtype", _rule_text(dtype_rule), ok, None, None, "",
                      f"model is {ev.model_dtype}; {target.id} {needs}")


def latency_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """One inference's latency fits the latency budget.

    Measured on this machine where the profile says so (the host), estimated
    from the op costs everywhere else."""
    est, measured = ev.latency, ev.latency_measured
    if measured is not None:
        evidence = f"MEASURED {measured.p50_ms:,.4g} ms, {measured.text}"
        if est is not None:
            evidence += (f"; the cost model estimates {est.ms:,.4g} ms "
                         f"({est.ms / max(measured.p50_ms, 1e-9) - 1:+.0%}), "
                         f"{est.caveat}")
        return RuleResult("latency", _rule_text(latency_rule),
                          measured.p50_ms <= budget.max_latency_ms, measured.p50_ms,
                          budget.max_latency_ms, "ms", evidence)
    if est is None:
        return RuleResult("latency", _rule_text(latency_rule), False, None,
                          budget.max_latency_ms, "ms", "not estimated")
    threads = f", {est.threads} threads" if est.threads > 1 else ""
    evidence = (f"ESTIMATE {est.ms:,.4g} ms at {est.clock_hz / 1e6:g} MHz{threads}, "
                f"{est.caveat}")
    if est.energy_uj is not None:
        evidence += f"; energy {est.energy_uj:.4g} uJ at {est.power_mw:g} mW (also an estimate)"
    return RuleResult("latency", _rule_text(latency_rule), est.ms <= budget.max_latency_ms,
                      est.ms, budget.max_latency_ms, "ms", evidence)


RULES = (flash_rule, ram_rule, arena_block_rule, ops_rule, dtype_rule, latency_rule)


def evaluate(ev: Evidence, target: Target, budget: Budget | None = None) -> CheckResult:
    """Apply every rule; ``budget`` defaults to the target's own."""
    budget = budget or target.budget
    results = tuple(rule(ev, target, budget) for rule in RULES)
    return CheckResult(target.id, all(r.ok for r in results), results, budget, ev)


def format_figure(value: float, unit: str) -> str:
    """A rule's figure without its unit: milliseconds to 4 significant digits,
    bytes (and counts) whole, with thousands separators."""
    return f"{value:,.4g}" if unit == "ms" else f"{value:,.0f}"


def format_check(result: CheckResult) -> str:
    """One line per rule: figure, budget, headroom, pass/fail, evidence."""
    rows = [["rule", "figure", "budget", "headroom", "result"]]

    def num(v, unit):
        return "-" if v is None else f"{format_figure(v, unit)} {unit}".strip()

    for r in result.rules:
        rows.append([r.name, num(r.figure, r.unit), num(r.budget, r.unit),
                     num(r.headroom, r.unit), "pass" if r.ok else "FAIL"])
    lines = [f"check {result.evidence.model_path} on {result.target}: "
             f"{'PASS' if result.ok else 'FAIL'}", ""]
    lines += table(rows, right={1, 2, 3})
    lines.append("")
    lines += [f"{r.name}: {r.rule} {r.evidence}" for r in result.rules]
    if result.evidence.latency is not None:
        lines += ["", format_top_ops(result.evidence.latency)]
    return "\n".join(lines)


def format_top_ops(est: LatencyEstimate, n: int = 5) -> str:
    """The ``n`` most expensive operators of an estimate, with their share."""
    from edgeprune.estimates.opcost import format_count

    rows = [["op", "layer", "class", "kernel", "MACs", "est. ms", "share"]]
    for o in est.top(n):
        layer = o.layer if len(o.layer) <= 40 else "..." + o.layer[-37:]
        rows.append([f"{o.index} {o.opcode}", layer, o.op_class, o.kernel, format_count(o.macs),
                     f"{o.ms:.3g}", f"{o.ms / est.ms:.0%}" if est.ms else "-"])
    return "\n".join([f"most expensive operators (estimated, {est.cost_model}):"]
                     + table(rows, right={4, 5, 6}))
