"""Quality rules: how much quality a step may cost.

The same style as :mod:`edgeprune.rules.budget`: each rule is one function
comparing figures measured elsewhere with a budget from the recipe, and the
first line of its docstring is the rule as the user reads it (and as
``report.json`` records it under ``rule``). A rule returns a
:class:`~edgeprune.rules.result.RuleResult` naming its figure, the budget, the
recipe key that sets the budget, the model compared with and one line of
evidence.
"""

from __future__ import annotations

from edgeprune.errors import QualityError
from edgeprune.rules.result import RuleResult, rule_text

# Comparisons allow a rounding error, so that a budget met exactly passes.
_EPSILON = 1e-12


def quantization_accuracy(before: dict, after: dict, budget: float, reference: str) -> RuleResult:
    """The accuracy lost in quantization fits the quantization budget.

    The float model's accuracy minus the converted model's, on the same test
    samples, in absolute terms; at most ``quantize.max_accuracy_drop``.
    """
    drop = before["accuracy"] - after["accuracy"]
    return RuleResult(
        "accuracy",
        rule_text(quantization_accuracy),
        bool(drop <= budget + _EPSILON),
        drop,
        budget,
        "",
        "quantize.max_accuracy_drop",
        f"accuracy {after['accuracy']:.4f} after conversion, {before['accuracy']:.4f} before",
        reference,
    )


def quantization_mse(before: dict, after: dict, budget: float, reference: str) -> RuleResult:
    """The relative MSE increase from quantization fits the quantization budget.

    The converted model's MSE over the float model's, minus one, on the same
    test samples; at most ``quantize.max_mse_increase``.
    """
    rise = (after["mse"] - before["mse"]) / max(before["mse"], _EPSILON)
    return RuleResult(
        "mse",
        rule_text(quantization_mse),
        bool(rise <= budget + _EPSILON),
        rise,
        budget,
        "",
        "quantize.max_mse_increase",
        f"mse {after['mse']:.5g} after conversion, {before['mse']:.5g} before",
        reference,
    )


def quantization_rule(task: str, before: dict, after: dict, options, reference: str) -> RuleResult:
    """The quantization budget of ``task``, under the recipe's ``[quantize]`` ``options``:
    :func:`quantization_accuracy` for classification, :func:`quantization_mse` otherwise."""
    if task == "classification":
        return quantization_accuracy(before, after, options.max_accuracy_drop, reference)
    return quantization_mse(before, after, options.max_mse_increase, reference)


def raise_if_failed(check: RuleResult, result=None) -> None:
    """Raise :class:`QualityError` (carrying ``result``) when the quantization budget failed.

    Called after everything is written, so the message says so.
    """
    if not check.ok:
        raise QualityError(
            f"quantization costs too much: {check.failure()}; the artifacts and "
            f"report.json are written; calibrate with more or better samples, "
            f"or choose another mode",
            result,
        )
