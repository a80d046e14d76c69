"""The one result of every rule and precondition: budget, quality and validation alike.

A rule is a function whose docstring's first line is the rule as the user
reads it (:func:`rule_text`); it compares a figure measured elsewhere with a
budget set by a recipe or profile key and returns a :class:`RuleResult`. A
precondition returns the same type with no figure and no budget.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class RuleResult:
    """One rule applied: ``figure`` against ``budget`` (set by ``key``), with its evidence.

    ``bound`` is ``"max"`` when the figure may be at most the budget (flash,
    accuracy drop) and ``"min"`` when it must be at least the budget
    (agreement). A precondition has neither figure nor budget.
    """

    name: str  # one word: "flash", "accuracy", "agreement", "dtype"
    rule: str  # the rule's text: the first line of its function's docstring
    ok: bool
    figure: float | None  # what was measured, in ``unit``
    budget: float | None
    unit: str  # "B", "ms", or "" for a fraction
    key: str  # the recipe or device-profile key that sets the budget or requirement
    evidence: str  # where the figure came from, in one line
    reference: str = ""  # the model the figure was compared with, where one was
    bound: str = "max"

    @property
    def judged(self) -> bool:
        """False for a figure reported without a budget to judge it by (a latency
        when no one set a latency budget): neither a pass nor a fail."""
        return self.figure is None or self.budget is not None

    @property
    def statement(self) -> str:
        """The rule's text as a statement of the result: the text itself when the
        rule holds, its negation when it does not ("... does not fit the latency
        budget."), so that a failing row never reads "fits"; a figure without a
        budget says so instead."""
        if not self.judged:
            return f"No {self.name} budget is set: the figure is reported, not judged."
        return self.rule if self.ok else negate(self.rule)

    @property
    def headroom(self) -> float | None:
        """How far the figure is inside its budget (negative: over it); None without both."""
        if self.figure is None or self.budget is None:
            return None
        return self.budget - self.figure if self.bound == "max" else self.figure - self.budget

    def to_dict(self) -> dict:
        """The entry of report.json, ``headroom`` included."""
        return {**asdict(self), "headroom": self.headroom}

    @classmethod
    def from_dict(cls, data: dict) -> RuleResult:
        """Read what :meth:`to_dict` wrote (``headroom`` is derived, not read).

        Raises:
            KeyError: a field is missing.
        """
        return cls(**{f.name: data[f.name] for f in fields(cls)})

    def against_budget(self) -> str:
        """The figure against its budget: ``"0.03 against the pruned float32 model,
        budget 0.02 (quantize.max_accuracy_drop)"``."""
        against = f" against the {self.reference} model" if self.reference else ""
        at_least = "at least " if self.bound == "min" else ""
        return (
            f"{format_quantity(self.figure, self.unit)}{against}, budget {at_least}"
            f"{format_quantity(self.budget, self.unit)} ({self.key})"
        )

    def failure(self) -> str:
        """The failed rule as one clause of an error message."""
        if self.figure is None or self.budget is None:
            return f"{self.name} failed: {self.evidence}"
        against = f" against the {self.reference} model" if self.reference else ""
        side = "over" if self.bound == "max" else "under"
        return (
            f"{self.name} {format_quantity(self.figure, self.unit)}{against}, {side} the "
            f"budget {format_quantity(self.budget, self.unit)} ({self.key})"
        )


_NEGATIONS = {"fits": "does not fit", "fit": "do not fit", "reaches": "does not reach"}
_VERB = re.compile(r"\b(" + "|".join(_NEGATIONS) + r")\b")


def negate(text: str) -> str:
    """``text`` with its verb negated (the first of fits, fit, reaches). Every rule's
    text holds one of them; a test checks each rule, so a new verb is added here."""
    return _VERB.sub(lambda m: _NEGATIONS[m.group(1)], text, count=1)


def rule_text(fn) -> str:
    """The rule's text: the first line of ``fn``'s docstring."""
    return fn.__doc__.strip().splitlines()[0]


def format_figure(value: float, unit: str) -> str:
    """A figure without its unit: milliseconds, MiB and fractions to 4 significant
    digits (whole from 1,000 up, never an exponent), bytes (and counts) whole,
    with thousands separators."""
    if unit in ("ms", "", "MiB") and abs(value) < 1000:
        return f"{value:,.4g}"
    return f"{value:,.0f}"


def format_quantity(value: float | None, unit: str) -> str:
    """A figure with its unit (:func:`format_figure`), ``"-"`` for None."""
    if value is None:
        return "-"
    return f"{format_figure(value, unit)} {unit}".strip()


def format_size(n: int) -> str:
    """Bytes in the largest binary unit that keeps them at least 1, to 4
    significant digits: ``8 GiB``, ``3.2 MiB``, ``512 B``."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} B"
