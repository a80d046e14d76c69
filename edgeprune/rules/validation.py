"""Validation rules: does the model still do its job where it runs?

Each rule is one function taking the figures a validation run measured
(:class:`Evidence`) and the ``[validate]`` options, and returning a
:class:`~edgeprune.rules.result.RuleResult`. The first line of a rule's
docstring is the rule as the user reads it; the recipe key of its budget
belongs to the rule. A rule never
measures anything itself. Which rules apply depends only on the task
(:data:`RULES`), so no rule has a branch for a task it does not judge.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeprune.recipe_options import ValidateOptions
from edgeprune.rules.result import RuleResult, rule_text

# Budgets are compared with this slack so that a figure equal to its budget
# passes despite float rounding (0.97 - 0.94 is 0.030000000000000027).
_EPS = 1e-12


@dataclass(frozen=True)
class Evidence:
    """What one validation run measured, on the same samples for every figure."""

    metrics: dict  # the runner's: accuracy, macro_f1 (classification) or mse, mae
    baseline: dict  # the float baseline's, on the host
    agreement: dict  # stages.validate.reference_agreement: agreement, basis, ...


def accuracy_rule(ev: Evidence, opts: ValidateOptions) -> RuleResult:
    """The accuracy lost against the float baseline fits the validation budget.

    The float baseline's accuracy minus the runner's, on the same samples, in
    absolute terms; at most ``validate.max_accuracy_drop``.
    """
    got, base = ev.metrics["accuracy"], ev.baseline["accuracy"]
    drop = base - got
    return RuleResult(
        "accuracy",
        rule_text(accuracy_rule),
        bool(drop <= opts.max_accuracy_drop + _EPS),
        drop,
        opts.max_accuracy_drop,
        "",
        "validate.max_accuracy_drop",
        f"accuracy {got:.4f} on the runner, {base:.4f} for the float baseline",
    )


def mse_rule(ev: Evidence, opts: ValidateOptions) -> RuleResult:
    """The relative MSE increase against the float baseline fits the validation budget.

    The runner's MSE over the float baseline's, minus one, on the same
    samples; at most ``validate.max_mse_increase``.
    """
    got, base = ev.metrics["mse"], ev.baseline["mse"]
    rise = (got - base) / max(base, 1e-12)
    return RuleResult(
        "mse",
        rule_text(mse_rule),
        bool(rise <= opts.max_mse_increase + _EPS),
        rise,
        opts.max_mse_increase,
        "",
        "validate.max_mse_increase",
        f"mse {got:.5g} on the runner, {base:.5g} for the float baseline",
    )


def agreement_rule(ev: Evidence, opts: ValidateOptions) -> RuleResult:
    """The share of samples agreeing with the host reference reaches the agreement budget.

    The fraction of samples on which the runner and the same model on this
    host agree; at least ``validate.min_agreement``.
    """
    a = ev.agreement
    return RuleResult(
        "agreement",
        rule_text(agreement_rule),
        bool(a["agreement"] >= opts.min_agreement - _EPS),
        a["agreement"],
        opts.min_agreement,
        "",
        "validate.min_agreement",
        f"agreeing means {a['basis']}; output difference max {a['max_abs_diff']:.4g} {a['unit']}",
        bound="min",
    )


#: The rules that judge each task.
RULES = {
    "classification": (accuracy_rule, agreement_rule),
    "regression": (mse_rule, agreement_rule),
}


def evaluate(task: str, ev: Evidence, opts: ValidateOptions) -> tuple[RuleResult, ...]:
    """Apply every rule of ``task`` to ``ev`` with the budgets of ``opts``."""
    return tuple(rule(ev, opts) for rule in RULES[task])


def failures(rules: tuple[RuleResult, ...]) -> str:
    """The failed rules as one clause for an error message ("" when all held)."""
    return "; ".join(r.failure() for r in rules if not r.ok)
