"""Quality rules: predicates whose docstring is their text, with figure, budget and key."""

from __future__ import annotations

import pytest

from edgeprune.errors import QualityError
from edgeprune.recipe_options import QuantizeOptions
from edgeprune.rules.quality import (
    quantization_accuracy,
    quantization_mse,
    quantization_rule,
    raise_if_failed,
)


def test_a_rule_text_is_the_first_line_of_its_docstring():
    for rule in (quantization_accuracy, quantization_mse):
        result = rule({"accuracy": 0.9, "mse": 1.0}, {"accuracy": 0.9, "mse": 1.0}, 0.0, "x")
        assert result.rule == rule.__doc__.strip().splitlines()[0]
        assert result.rule.endswith("fits the quantization budget.")


def test_a_budget_met_exactly_passes_and_one_lsb_over_fails():
    at = quantization_accuracy({"accuracy": 0.98}, {"accuracy": 0.96}, 0.02, "pruned float32")
    over = quantization_accuracy({"accuracy": 0.98}, {"accuracy": 0.9599}, 0.02, "p")
    assert at.ok and not over.ok
    assert at.figure == pytest.approx(0.02) and at.key == "quantize.max_accuracy_drop"
    assert "0.9600 after conversion, 0.9800 before" in at.evidence


def test_the_task_picks_the_rule_and_the_recipe_its_budget():
    opts = QuantizeOptions(max_accuracy_drop=0.05, max_mse_increase=0.1)
    accuracy = quantization_rule("classification", {"accuracy": 1.0}, {"accuracy": 0.97}, opts, "r")
    mse = quantization_rule("regression", {"mse": 1.0}, {"mse": 1.2}, opts, "r")
    assert (accuracy.name, accuracy.budget, accuracy.ok) == ("accuracy", 0.05, True)
    assert (mse.name, mse.budget, mse.ok, mse.key) == (
        "mse",
        0.1,
        False,
        "quantize.max_mse_increase",
    )
    assert mse.figure == pytest.approx(0.2)


def test_a_failed_budget_raises_naming_the_figure_the_model_and_the_key():
    check = quantization_mse({"mse": 1.0}, {"mse": 2.0}, 0.25, "input Keras")
    message = (
        r"^quantization costs too much: mse 1 against the input Keras model, over the "
        r"budget 0\.25 \(quantize\.max_mse_increase\); the artifacts"
    )
    with pytest.raises(QualityError, match=message) as info:
        raise_if_failed(check, "the result")
    assert info.value.result == "the result"
    raise_if_failed(quantization_mse({"mse": 1.0}, {"mse": 1.0}, 0.25, "x"))  # passes quietly
