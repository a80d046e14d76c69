"""Quality rules: how much quality a step may cost.

The same style as :mod:`edgeprune.rules.budget`: each rule is one function
comparing figures measured elsewhere with a budget from the recipe, and the
first line of its docstring is the rule as the user reads it (and as
``report.json`` records it under ``rule``). A rule returns a
:class:`QualityResult` naming its figure, the budget, the recipe key that sets
the budget and one line of evidence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from edgeprune.errors import QualityError

# Comparisons allow a rounding error, so that a budget met exactly passes.
_EPSILON = 1e-12


@dataclass(frozen=True)
class QualityResult:
    """One quality rule applied: ``measured`` against ``budget`` (set by ``key``)."""

    name: str  # the figure: "accuracy", "mse", "agreement"
    rule: str  # the rule's text: the first line of its function's docstring
    measured: float
    budget: float
    key: str  # the recipe key that sets the budget
    ok: bool
    reference: str = ""  # the model the figure was compared with
    evidence: str = ""

    def to_dict(self) -> dict:
        body = asdict(self)
        if not self.reference:
            del body["reference"]
        return body

    @classmethod
    def from_dict(cls, data: dict) -> QualityResult:
        """Read a result written by :meth:`to_dict` (or by an older edgeprune,
        which wrote no ``name``, ``key`` or ``evidence``)."""
        known = {f.name for f in fields(cls)}
        return cls(**{"name": "", "key": "", **{k: v for k, v in data.items() if k in known}})

    def failure(self) -> str:
        """The result as one line of an error message."""
        against = f" against the {self.reference} model" if self.reference else ""
        return (f"{self.rule} is {self.measured:.4f}{against}, over the budget {self.budget} "
                f"({self.key})")


def _text(rule) -> str:
    return rule.__doc__.strip().splitlines()[0]


def quantization_accuracy(before: dict, after: dict, budget: float,
                          reference: str) -> QualityResult:
    """accuracy drop from quantization

    The float model's accuracy minus the converted model's, on the same test
    samples, in absolute terms; at most ``quantize.max_accuracy_drop``.
    """
    drop = before["accuracy"] - after["accuracy"]
    return QualityResult("accuracy", _text(quantization_accuracy), drop, budget,
                         "quantize.max_accuracy_drop", bool(drop <= budget + _EPSILON),
                         reference, f"accuracy {after['accuracy']:.4f} after conversion, "
                                    f"{before['accuracy']:.4f} before")


def quantization_mse(before: dict, after: dict, budget: float, reference: str) -> QualityResult:
    """relative MSE increase from quantization

    The converted model's MSE over the float model's, minus one, on the same
    test samples; at most ``quantize.max_mse_increase``.
    """
    rise = (after["mse"] - before["mse"]) / max(before["mse"], _EPSILON)
    return QualityResult("mse", _text(quantization_mse), rise, budget,
                         "quantize.max_mse_increase", bool(rise <= budget + _EPSILON), reference,
                         f"mse {after['mse']:.5g} after conversion, {before['mse']:.5g} before")


def quantization_rule(task: str, before: dict, after: dict, options,
                      reference: str) -> QualityResult:
    """The quantization budget of ``task``, under the recipe's ``[quantize]`` ``options``:
    :func:`quantization_accuracy` for classification, :func:`quantization_mse` otherwise."""
    if task == "classification":
        return quantization_accuracy(before, after, options.max_accuracy_drop, reference)
    return quantization_mse(before, after, options.max_mse_increase, reference)


def raise_if_failed(check: QualityResult, result=None) -> None:
    """Raise :class:`QualityError` (carrying ``result``) when the quantization budget failed.

    Called after everything is written, so the message says so.
    """
    if not check.ok:
        raise QualityError(f"{check.failure()}; the artifacts and report.json are written; "
                           f"calibrate with more or better samples, or choose another mode",
                           result)
