"""Budget rules: does a model fit a device? And the preconditions of asking at all.

Each rule is one function taking the measured :class:`Evidence`, the device
and the budgets in force, and returning a
:class:`~edgeprune.rules.result.RuleResult`. The first line of a rule's
docstring is the rule as the user reads it. A rule never measures anything
itself; it only compares figures measured elsewhere and says where each came
from.

The preconditions (:data:`PRECONDITIONS`: the model's dtype, the runtime's
operators) are predicates of the same style on :class:`Support`, judged
before anything is measured: a model the target cannot run at all is bad
input (:class:`~edgeprune.stages.check.TargetMismatchError`, exit 1), not a
budget failure, and a failed precondition's evidence is the error message.

A rule whose budget no one set (latency, unless the recipe, a flag or a
user's own profile sets one) reports its figure, neither passing nor failing
(:attr:`~edgeprune.rules.result.RuleResult.judged`). The rules differ by kind
of target (:data:`RULES`): on Linux storage and RAM are what the model adds,
with no reserve.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgeprune.estimates.latency import LatencyEstimate, LatencyMeasurement
from edgeprune.rules import alt_memory
from edgeprune.rules.linux import MIB, memory_rule, storage_rule  # noqa: F401  (re-exported)
from edgeprune.rules.result import RuleResult, rule_text
from edgeprune.target import SOFT_FLOAT_CORES, Budget, Target


@dataclass(frozen=True)
class Support:
    """What the preconditions judge: the model's dtypes and what the target's runtime
    made of it (``unsupported`` and ``unregistered`` empty when it ran it)."""

    model: str  # the model's name in messages
    dtype: str  # "int8", "float32", "mixed": of the input, output and weights
    float_io: bool  # a float32 input or output
    ops: dict[str, int]
    # TFLite Micro: "OPCODE at operator N (layer L): reason"; LiteRT: its one error
    unsupported: tuple[str, ...] = ()
    unregistered: str = ""  # why the firmware's op resolver cannot register an op
    first_float: str = ""  # the first float tensor in use and its operator, for messages
    npu_ops: tuple[str, ...] = ()  # operators compiled for an NPU: "ethos-u at operator 0"
    hybrid: bool = False  # an operator reads float activations with int8 weights


@dataclass(frozen=True)
class Evidence:
    """Figures measured for one model on one target, with where each came from.

    A TFLite Micro target's evidence has every TFLite Micro figure, a Linux
    target's the memory a LiteRT process grows by (:func:`evaluate` refuses evidence without them).
    """

    model_path: str
    model_bytes: int
    model_dtype: str  # "int8", "float32", "mixed": of the input, output and weights
    ops: dict[str, int]
    latency: LatencyEstimate  # from the op costs and the target's cost model
    # TFLite Micro targets
    arena_min_bytes: int | None = None  # smallest arena that allocated and ran here
    arena_recorded_bytes: int | None = None  # what print_allocations() reported
    arena_bytes: int | None = None  # computed for the target from the host's (device_arena)
    arena_basis: str = ""  # how arena_bytes was computed, in words
    runtime_flash_bytes: int | None = None
    runtime_flash_basis: str = ""
    runtime_ram_bytes: int | None = None
    decode_flash_bytes: int = 0  # DECODE kernel + decoders, when weights are compressed
    decode_flash_basis: str = ""
    # compressed weights: what DECODE needs at most at once, the block outside the arena
    # that holds them (0: in the arena) and where they live, in words (rules/alt_memory.py)
    decoded_bytes: int = 0
    alt_decompression_bytes: int = 0
    decoded_where: str = ""
    # Linux targets
    peak_memory_bytes: int | None = None
    # profiles that time the model on this machine (the host profile)
    latency_measured: LatencyMeasurement | None = None

    def missing(self, target: Target) -> list[str]:
        """The figures the rules need on ``target`` that this evidence lacks."""
        needs = (
            ("arena_min_bytes", "arena_bytes", "runtime_flash_bytes", "runtime_ram_bytes")
            if target.runtime == "tflm"
            else ("peak_memory_bytes",)
        )
        return [name for name in needs if getattr(self, name) is None]


@dataclass(frozen=True)
class CheckResult:
    """The device check: the preconditions that held, then every budget rule."""

    target: str
    ok: bool
    rules: tuple[RuleResult, ...]
    budget: Budget
    evidence: Evidence
    preconditions: tuple[RuleResult, ...] = ()

    def to_dict(self) -> dict:
        return {
            "target": self.target,
            "ok": self.ok,
            "budget": asdict(self.budget),
            "preconditions": [r.to_dict() for r in self.preconditions],
            "rules": [r.to_dict() for r in self.rules],
            "evidence": asdict(self.evidence),
        }


# ---------------------------------------------------------------- preconditions


def dtype_precondition(s: Support, target: Target) -> RuleResult:
    """The model's input, output and weights have a dtype the target's runtime runs.

    A profile's ``model_dtype`` is the dtype edgeprune quantizes to for the
    target and its kernels are optimised for, not the only one it runs:
    TFLite Micro runs float32 models with its reference float kernels on every
    core (CMSIS-NN and ESP-NN optimise integer kernels only), so a float32
    model passes with evidence saying what it costs, and so does an int8 model
    with float32 input and output (TFLite Micro converts at the edges). Whether
    every float kernel is there is the ops precondition's question (the worker
    ran it). A hybrid ("mixed") model stays refused: TFLite Micro has no kernels for
    float activations with int8 weights."""
    if target.model_dtype == "any" or s.dtype == target.model_dtype:
        needs = (
            f"{target.id} runs any dtype"
            if target.model_dtype == "any"
            else f"the dtype {target.id}'s {target.kernels} kernels are optimised for"
        )
        return _dtype_result(True, f"model is {s.dtype}; {needs}")
    if target.runtime == "tflm" and s.dtype == "float32":
        return _dtype_result(True, float_on_tflm(target))
    if target.runtime == "tflm" and s.dtype == "mixed" and s.float_io and not s.hybrid:
        return _dtype_result(True, _float_edges_on_tflm(target))
    if s.dtype == "mixed" and s.float_io and not s.hybrid:
        evidence = (
            f"{s.model} has float32 input/output around int8 weights but {target.id} "
            f"needs an integer-only model; convert with int8 input and output (the "
            f"int8 mode of quantize.mode does)"
        )
    elif s.dtype == "mixed" and target.runtime == "tflm":
        which = f" ({s.first_float})" if s.first_float else ""
        evidence = (
            f"{s.model} is a mixed model{which} but TFLite Micro on {target.id} runs "
            f"integer-only or float32 models, not float activations with int8 weights; "
            f'convert with quantize.mode = "{target.model_dtype}"'
        )
    else:
        which = f" ({s.first_float})" if s.first_float and s.dtype == "mixed" else ""
        evidence = (
            f"{s.model} is a {s.dtype} model{which} but {target.id} needs "
            f"{target.model_dtype}; convert with quantize.mode = "
            f'"{target.model_dtype}"'
        )
    return _dtype_result(False, evidence)


def _float_edges_on_tflm(target: Target) -> str:
    return (
        f"int8 inside, float32 input/output: TFLite Micro converts at the edges (QUANTIZE, "
        f"DEQUANTIZE) and runs the rest on {target.id}'s {target.kernels} int8 kernels; the "
        f"firmware passes float32 tensors. For int8 tensors at the interface (4x smaller "
        f'buffers, no conversion) convert with int8 input and output (quantize.mode = "int8")'
    )


def _dtype_result(ok: bool, evidence: str) -> RuleResult:
    return RuleResult(
        "dtype", rule_text(dtype_precondition), ok, None, None, "", "model_dtype", evidence
    )


def float_on_tflm(target: Target) -> str:
    """What a float32 model means on a TFLite Micro ``target``: the dtype rule's evidence."""
    how = "in software floating point" if target.core in SOFT_FLOAT_CORES else ""
    return (
        f"float32: TFLite Micro runs it with its reference float kernels{' ' + how if how else ''}"
        f" ({target.kernels} optimises {target.model_dtype} only): 4x the weight bytes of "
        f'int8 and slower; quantize with quantize.mode = "{target.model_dtype}" for the '
        f"optimised kernels"
    )


def ops_precondition(s: Support, target: Target) -> RuleResult:
    """The runtime implements every operator and dtype in the model."""
    if s.npu_ops:
        evidence = _npu_refusal(s, target)
    elif target.runtime != "tflm" and s.unsupported:
        from edgeprune.firmware.resolver import CUSTOM_METHODS

        micro = [op[7:] for op in s.ops if op.startswith("CUSTOM:") and op[7:] in CUSTOM_METHODS]
        fix = (
            f"LiteRT lacks TFLite Micro's own kernel{'s' * (len(micro) > 1)} "
            f"{', '.join(micro)}; check the model on a TFLite Micro target"
            if micro
            else "replace those operators, or check the model on a target whose runtime has them"
        )
        evidence = f"LiteRT cannot run {s.model} on {target.id}: {'; '.join(s.unsupported)}; {fix}"
    elif target.runtime != "tflm":
        evidence = "loaded, allocated and invoked in ai-edge-litert"
    elif s.unsupported:
        evidence = (
            f"TFLite Micro cannot run {s.model} on {target.id}: "
            f"{'; '.join(s.unsupported)}; replace those layers or choose a Linux target"
        )
    elif s.unregistered:
        evidence = f"{s.model} on {target.id}: {s.unregistered}"
    else:
        evidence = "loaded in TFLite Micro: " + ", ".join(f"{k} x{v}" for k, v in s.ops.items())
    ok = not (s.unsupported or s.unregistered or s.npu_ops)
    return RuleResult("ops", rule_text(ops_precondition), ok, None, None, "", "runtime", evidence)


def _npu_refusal(s: Support, target: Target) -> str:
    """Why a model Vela compiled for an Ethos-U NPU is not judged on ``target``, and
    what to do: check Vela's own figures on a target with that NPU, else pass the
    model from before Vela."""
    head = (
        f"{s.model} was compiled by Arm's Vela for an Ethos-U NPU ({', '.join(s.npu_ops)}):"
        " TFLite Micro runs that part only on the NPU"
    )
    if (target.npu or "").startswith("ethos-u"):
        return (
            f"{head}, so edgeprune cannot load or measure it on this host; for the "
            f"{target.npu} of {target.id}, check Vela's summary report (its "
            f"<model>_summary_<system>.csv: SRAM and flash used, NPU cycles) against the "
            f"NPU's SRAM, or check the model as it was before Vela compiled it"
        )
    return (
        f"{head}, and {target.id} has no Ethos-U; pass the model as it was before Vela compiled it"
    )


#: Judged in this order before anything is measured; the first that fails refuses the model.
PRECONDITIONS = (dtype_precondition, ops_precondition)


# ---------------------------------------------------------------- rules


def flash_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The model, its runtime and the application's reserve fit the flash budget."""
    reserve = target.reserve.flash_bytes
    figure = ev.model_bytes + ev.runtime_flash_bytes + ev.decode_flash_bytes + reserve
    model = (
        "DECODE-compressed flatbuffer"
        if ev.decode_flash_bytes
        else ("dense flatbuffer: pruned zeros are stored")
    )
    decode = (
        f" + DECODE kernel and decoders {ev.decode_flash_bytes:,} B ({ev.decode_flash_basis})"
        if ev.decode_flash_bytes
        else ""
    )
    evidence = (
        f"model {ev.model_bytes:,} B ({model}) + "
        f"TFLite Micro runtime {ev.runtime_flash_bytes:,} B ({ev.runtime_flash_basis})"
        f"{decode} + application reserve {reserve:,} B"
    )
    return RuleResult(
        "flash",
        rule_text(flash_rule),
        figure <= budget.max_flash_bytes,
        figure,
        budget.max_flash_bytes,
        "B",
        "budget.max_flash_bytes",
        evidence,
    )


def ram_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The model's working memory, its runtime and the application's reserve fit the RAM budget."""
    reserve = target.reserve.ram_bytes
    alt = alt_memory.ram_share_bytes(ev, target)
    figure = ev.arena_bytes + alt + ev.runtime_ram_bytes + reserve
    block = f" + alternate decompression block {alt:,} B" if alt else ""
    evidence = (
        f"arena {ev.arena_bytes:,} B ({ev.arena_basis or 'smallest working here'}){block}; "
        f"+ {ev.runtime_ram_bytes:,} B static runtime RAM + application reserve {reserve:,} B"
    ) + (f"; {ev.decoded_where}" if ev.decoded_where else "")
    return RuleResult(
        "ram",
        rule_text(ram_rule),
        figure <= budget.max_ram_bytes,
        figure,
        budget.max_ram_bytes,
        "B",
        "budget.max_ram_bytes",
        evidence,
    )


def arena_block_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The tensor arena fits the largest contiguous RAM block."""
    block = target.largest_ram_block_bytes
    where = (
        f"in the largest block of {target.id} ({block:,} B)"
        if block is not None
        else f"; {target.id}'s profile records no contiguous-block limit "
        f"(largest_ram_block_bytes), so only the RAM rule bounds it"
    )
    return RuleResult(
        "arena",
        rule_text(arena_block_rule),
        block is None or ev.arena_bytes <= block,
        ev.arena_bytes,
        block,
        "B",
        "largest_ram_block_bytes",
        f"one static arena of {ev.arena_bytes:,} B{' ' if block is not None else ''}{where}",
    )


def latency_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """One inference's latency fits the latency budget.

    Measured on this machine where the profile says so (the host), estimated
    from the op costs everywhere else."""
    est, measured = ev.latency, ev.latency_measured
    limit = budget.max_latency_ms
    if measured is not None:
        figure = measured.p50_ms
        evidence = (
            f"MEASURED {measured.p50_ms:,.4g} ms, {measured.text}; the cost model "
            f"estimates {est.ms:,.4g} ms ({est.ms / max(measured.p50_ms, 1e-9) - 1:+.0%}"
            f"), {est.caveat}"
        )
    else:
        # An estimate passes a budget only with its error band as headroom.
        figure = est.ms if limit is None else est.ms_high
        threads = f", {est.threads} threads" if est.threads > 1 else ""
        evidence = f"ESTIMATE {est.ms:,.4g} ms at {est.clock_hz / 1e6:g} MHz{threads}; "
        if limit is not None:
            evidence += (
                f"checked with its error band as headroom: {est.ms:,.4g} x "
                f"{1 + est.error_band:.2f} = {figure:,.4g} ms; "
            )
        evidence += est.caveat
        if est.energy_uj is not None:
            evidence += f"; energy {est.energy_uj:.4g} uJ at {est.power_mw:g} mW (also an estimate)"
    if limit is None:
        evidence = (
            "to judge it, set max_latency_ms in the recipe's [budget] or pass "
            "--max-latency-ms (a latency budget is the application's, not the device's); "
            + evidence
        )
    return RuleResult(
        "latency",
        rule_text(latency_rule),
        limit is None or figure <= limit,
        figure,
        limit,
        "ms",
        "budget.max_latency_ms",
        evidence,
    )


#: The rules of each kind of target, in the order they are shown.
RULES = {
    "mcu": (flash_rule, ram_rule, arena_block_rule, latency_rule),
    "linux": (storage_rule, memory_rule, latency_rule),
}


def evaluate(
    ev: Evidence,
    target: Target,
    budget: Budget | None = None,
    preconditions: tuple[RuleResult, ...] = (),
) -> CheckResult:
    """Apply every rule; ``budget`` defaults to the target's own. ``preconditions``
    are the results of :data:`PRECONDITIONS` that held, kept in the result.

    Raises:
        ValueError: ``ev`` lacks a figure the target's rules need (a bug in
            whoever measured it, not bad input).
    """
    missing = ev.missing(target)
    if missing:
        raise ValueError(f"the evidence for {target.id} lacks {', '.join(missing)}")
    budget = budget or target.budget
    extra = (alt_memory.alt_memory_rule,) if alt_memory.applies(ev, target) else ()
    results = tuple(rule(ev, target, budget) for rule in (*RULES[target.kind], *extra))
    return CheckResult(target.id, all(r.ok for r in results), results, budget, ev, preconditions)
