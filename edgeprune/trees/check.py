"""The device check of a tree model: compiled sizes and the latency estimate, judged by rules.

A tree model has no flatbuffer, arena or TFLite Micro runtime, so the TFLite
:class:`~edgeprune.rules.budget.Evidence` does not describe it: its evidence is
a :class:`TreeEvidence`, the figures of the generated C compiled for the
target's core (:func:`edgeprune.trees.compile.compiled_size`: what the model
adds to a firmware, read from the linked ELF's sections) and the latency
estimate from its counted instructions
(:func:`edgeprune.trees.tree_latency.estimate`). The rules are those of
:mod:`edgeprune.rules.budget` in kind and form (one function each, its
docstring's first line the rule, one line of evidence saying where every
figure came from): flash = compiled flash + the target's flash reserve,
RAM = compiled static RAM and stack + the RAM reserve, latency = the estimate
with its error band (``latency_rule`` itself). The result is a
:class:`~edgeprune.rules.budget.CheckResult`, so that the report, the printed
table and the exit code (3 on a failed budget) are those of any check.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from edgeprune.estimates.latency import LatencyEstimate
from edgeprune.rules.budget import CheckResult, latency_rule
from edgeprune.rules.result import RuleResult, rule_text
from edgeprune.target import Budget, Target

EVIDENCE_KIND = "tree"


@dataclass(frozen=True)
class TreeEvidence:
    """Figures measured for one tree model's C on one target, with their sources."""

    model_path: str  # the C source the figures are of (the run folder's firmware/ file)
    flash_bytes: int  # what the model adds to a firmware's loaded sections
    ram_bytes: int  # static data + stack_bytes
    stack_bytes: int  # deepest call path from <name>_predict (GCC's call graph)
    compiler: str  # the compiler's version line
    flags: tuple[str, ...]
    core: str
    sections: dict  # section -> bytes of the model's program (before subtracting)
    baseline_sections: dict  # the same of the empty model's program, subtracted
    notes: tuple[str, ...]
    latency: LatencyEstimate
    nodes: int
    members: int
    dtype: str  # the C input dtype: "float" or "int16"
    kind: str = EVIDENCE_KIND
    latency_measured: None = None  # latency_rule's field: tree latency is never timed here
    extra: dict = field(default_factory=dict)


def evidence(compiled, latency: LatencyEstimate, forest, model_path: str, dtype: str):
    """A :class:`TreeEvidence` from a :class:`~edgeprune.trees.compile.CompiledSize`."""
    return TreeEvidence(
        model_path=model_path,
        flash_bytes=int(compiled.flash_bytes),
        ram_bytes=int(compiled.ram_bytes),
        stack_bytes=int(compiled.stack_bytes),
        compiler=compiled.compiler,
        flags=tuple(compiled.flags),
        core=compiled.core,
        sections=dict(compiled.sections),
        baseline_sections=dict(compiled.baseline_sections),
        notes=tuple(compiled.notes),
        latency=latency,
        nodes=forest.n_nodes,
        members=forest.n_members,
        dtype=dtype,
    )


def _compiled_by(ev: TreeEvidence) -> str:
    return f"compiled for {ev.core} by {ev.compiler} ({' '.join(ev.flags)})"


def tree_flash_rule(ev: TreeEvidence, target: Target, budget: Budget) -> RuleResult:
    """The compiled model and the application's reserve fit the flash budget."""
    reserve = target.reserve.flash_bytes
    figure = ev.flash_bytes + reserve
    evidence = (
        f"compiled model {ev.flash_bytes:,} B ({ev.nodes:,} nodes in {ev.members} "
        f"member{'s' * (ev.members != 1)}, {ev.dtype} inputs; loaded sections of the linked "
        f"ELF, {_compiled_by(ev)}; {'; '.join(ev.notes)}) + application reserve {reserve:,} B"
    )
    return RuleResult(
        "flash",
        rule_text(tree_flash_rule),
        figure <= budget.max_flash_bytes,
        figure,
        budget.max_flash_bytes,
        "B",
        "budget.max_flash_bytes",
        evidence,
    )


def tree_ram_rule(ev: TreeEvidence, target: Target, budget: Budget) -> RuleResult:
    """The compiled model's data, stack and the application's reserve fit the RAM budget."""
    reserve = target.reserve.ram_bytes
    figure = ev.ram_bytes + reserve
    static = ev.ram_bytes - ev.stack_bytes
    evidence = (
        f"compiled model {static:,} B static data (.data + .bss) + {ev.stack_bytes:,} B stack "
        f"(deepest call path, GCC -fcallgraph-info) ({_compiled_by(ev)}) + application "
        f"reserve {reserve:,} B"
    )
    return RuleResult(
        "ram",
        rule_text(tree_ram_rule),
        figure <= budget.max_ram_bytes,
        figure,
        budget.max_ram_bytes,
        "B",
        "budget.max_ram_bytes",
        evidence,
    )


#: The rules of a tree model on every kind of target, in the order they are shown.
TREE_RULES = (tree_flash_rule, tree_ram_rule, latency_rule)


def effective_budget(target: Target, overrides: dict | None) -> Budget:
    """The target's budget with the non-None ``overrides`` (recipe ``[budget]`` or flags)."""
    keys = set(Budget.__dataclass_fields__)
    changes = {k: v for k, v in (overrides or {}).items() if v is not None and k in keys}
    return replace(target.budget, **changes)


def evaluate(ev: TreeEvidence, target: Target, budget: Budget | None = None) -> CheckResult:
    """Apply :data:`TREE_RULES`; ``budget`` defaults to the target's own. No side effects."""
    budget = budget or target.budget
    results = tuple(rule(ev, target, budget) for rule in TREE_RULES)
    return CheckResult(target.id, all(r.ok for r in results), results, budget, ev)
