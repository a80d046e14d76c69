"""Validation rules: does the model still do its job where it runs?

Each rule is one function taking the figures a validation run measured
(:class:`Evidence`) and the ``[validate]`` options, and returning a
:class:`RuleResult`. The first line of a rule's docstring is the rule as the
user reads it; the recipe key of its budget belongs to the rule. A rule never
measures anything itself. Which rules apply depends only on the task
(:data:`RULES`), so no rule has a branch for a task it does not judge.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeprune.recipe import ValidateOptions

# Budgets are compared with this slack so that a figure equal to its budget
# passes despite float rounding (0.97 - 0.94 is 0.030000000000000027).
_EPS = 1e-12


@dataclass(frozen=True)
class Evidence:
    """What one validation run measured, on the same samples for every figure."""

    metrics: dict  # the runner's: accuracy, macro_f1 (classification) or mse, mae
    baseline: dict  # the float baseline's, on the host
    agreement: dict  # stages.validate.reference_agreement: agreement, basis, ...


@dataclass(frozen=True)
class RuleResult:
    name: str
    rule: str  # the rule's docstring, first line
    measured: float
    budget: float
    key: str  # the recipe key that sets the budget
    ok: bool
    evidence: str  # the figures behind ``measured``, in one line

    def to_dict(self) -> dict:
        """The entry of report.json's ``validation.<runner>.rules``."""
        return {"name": self.name, "rule": self.rule, "measured": self.measured,
                "budget": self.budget, "key": self.key, "ok": self.ok,
                "evidence": self.evidence}


def _rule_text(fn) -> str:
    return fn.__doc__.strip().splitlines()[0]


def accuracy_rule(ev: Evidence, opts: ValidateOptions) -> RuleResult:
    """Accuracy drops by at most the budget against the float baseline on the same samples."""
    got, base = ev.metrics["accuracy"], ev.baseline["accuracy"]
    drop = base - got
    return RuleResult("accuracy", _rule_text(accuracy_rule), drop, opts.max_accuracy_drop,
                      "validate.max_accuracy_drop", bool(drop <= opts.max_accuracy_drop + _EPS),
                      f"accuracy {got:.4f} on the runner, {base:.4f} for the float baseline")


def mse_rule(ev: Evidence, opts: ValidateOptions) -> RuleResult:
    """MSE rises by at most the budget (relative) against the float baseline on the same samples."""
    got, base = ev.metrics["mse"], ev.baseline["mse"]
    rise = (got - base) / max(base, 1e-12)
    return RuleResult("mse", _rule_text(mse_rule), rise, opts.max_mse_increase,
                      "validate.max_mse_increase", bool(rise <= opts.max_mse_increase + _EPS),
                      f"mse {got:.5g} on the runner, {base:.5g} for the float baseline")


def agreement_rule(ev: Evidence, opts: ValidateOptions) -> RuleResult:
    """At least the budget's fraction of samples agree with the host reference."""
    a = ev.agreement
    return RuleResult("agreement", _rule_text(agreement_rule), a["agreement"],
                      opts.min_agreement, "validate.min_agreement",
                      bool(a["agreement"] >= opts.min_agreement - _EPS),
                      f"agreeing means {a['basis']}; output difference max "
                      f"{a['max_abs_diff']:.4g} {a['unit']}")


#: The rules that judge each task.
RULES = {"classification": (accuracy_rule, agreement_rule),
         "regression": (mse_rule, agreement_rule)}


def evaluate(task: str, ev: Evidence, opts: ValidateOptions) -> tuple[RuleResult, ...]:
    """Apply every rule of ``task`` to ``ev`` with the budgets of ``opts``."""
    return tuple(rule(ev, opts) for rule in RULES[task])


def format_rule(r: RuleResult) -> str:
    """One line: the rule, its figure against its budget, and whether it held."""
    return (f"rule {r.name}: {r.rule} {r.measured:.4f}, budget {r.budget} ({r.key}): "
            f"{'ok' if r.ok else 'FAILED'}; {r.evidence}")


def failures(rules: tuple[RuleResult, ...]) -> str:
    """The failed rules as one clause for an error message ("" when all held)."""
    return "; ".join(f"{r.name} {r.measured:.4f} against {r.budget} ({r.key})"
                     for r in rules if not r.ok)
