"""The text of a validation run: where it ran, quality against the float
baseline, agreement with the host reference, latency, the confusion matrix and
each rule."""

from __future__ import annotations

from edgeprune.presentation.table import table
from edgeprune.report import ValidationResult
from edgeprune.rules.result import RuleResult

# A tree run validates this file (edgeprune.trees.run_stages.PRUNED_JSON); its baseline
# is the unpruned model, not a float model before quantization.
TREE_MODEL = "pruned_trees.json"


def baseline_label(result: ValidationResult) -> str:
    """What the validated model is compared with: "unpruned model" for a tree run,
    "float baseline" for a Keras run."""
    return "unpruned model" if result.model == TREE_MODEL else "float baseline"


def format_rule(r: RuleResult) -> str:
    """One line: the rule, its figure against its budget, whether it held, the evidence."""
    verdict = "ok" if r.ok else "FAILED"
    return f"rule {r.name}: {r.statement} {r.against_budget()}: {verdict}; {r.evidence}"


def format_result(result: ValidationResult) -> str:
    lines = [
        f"validate {result.model} on {result.runner}: "
        f"{'PASS' if result.ok else 'PARTIAL' if result.partial else 'FAIL'}",
        f"  where: {result.where}",
        f"  data: {result.data}, {result.split}: {result.completed} of {result.samples} samples",
    ]
    if result.partial:
        lines.append(f"  partial: {result.error}")
    m, b, label = result.metrics, result.baseline_metrics, baseline_label(result)
    if "accuracy" in m:
        lines.append(
            f"  accuracy {m['accuracy']:.4f} ({label} {b['accuracy']:.4f}), "
            f"macro-F1 {m['macro_f1']:.4f}"
        )
    elif "mse" in m:
        lines.append(f"  mse {m['mse']:.5g} ({label} {b['mse']:.5g}), mae {m['mae']:.5g}")
    a = result.agreement
    if a.get("agreement") is None:  # no sample completed: nothing was compared
        lines.append(f"  agreement: none ({a['basis']})")
    else:
        lines.append(
            f"  agreement {a['agreement']:.4f} ({a['basis']}); output difference max "
            f"{a['max_abs_diff']:.4g}, mean {a['mean_abs_diff']:.4g} {a['unit']}"
        )
    lat = result.latency_ms
    if lat.get("n"):
        lines.append(
            f"  latency ms over {lat['n']} inferences: p50 {lat['p50']:.4g}, p90 "
            f"{lat['p90']:.4g}, p99 {lat['p99']:.4g}, max {lat['max']:.4g} "
            f"({result.timing})"
        )
    if "confusion_matrix" in m:
        cm = m["confusion_matrix"]
        rows = [["true\\pred", *map(str, range(len(cm)))]]
        rows += [[str(i), *map(str, row)] for i, row in enumerate(cm)]
        lines += ["  confusion matrix:"] + [
            "    " + r for r in table(rows, right=set(range(1, len(cm) + 1)))
        ]
    lines += [f"  {format_rule(r)}" for r in result.rules]
    lines += [f"  note: {n}" for n in result.notes]
    return "\n".join(lines)
