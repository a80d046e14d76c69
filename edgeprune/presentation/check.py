"""The text of a device check: the rules' table, the evidence of every
precondition and rule, and the most expensive operators of the estimate."""

from __future__ import annotations

from edgeprune.estimates.latency import LatencyEstimate
from edgeprune.estimates.opcost import format_count
from edgeprune.presentation.table import table
from edgeprune.rules.budget import CheckResult
from edgeprune.rules.result import format_quantity
from edgeprune.tflite.names import layer_label


def format_check(result: CheckResult) -> str:
    """The rules' table (figure, budget, headroom, pass/fail; a figure no budget
    judges reads "no budget set"), then one line of evidence per precondition
    and per rule."""
    rows = [["rule", "figure", "budget", "headroom", "result"]]
    for r in result.rules:
        if not r.judged:
            rows.append([r.name, format_quantity(r.figure, r.unit), "not set", "", "no budget set"])
            continue
        rows.append(
            [
                r.name,
                format_quantity(r.figure, r.unit),
                format_quantity(r.budget, r.unit),
                format_quantity(r.headroom, r.unit),
                "pass" if r.ok else "FAIL",
            ]
        )
    lines = [
        f"check {result.evidence.model_path} on {result.target}: {'PASS' if result.ok else 'FAIL'}",
        "",
    ]
    lines += table(rows, right={1, 2, 3})
    lines.append("")
    lines += [
        f"{r.name}: {r.statement} {r.evidence}" for r in (*result.preconditions, *result.rules)
    ]
    lines += ["", format_top_ops(result.evidence.latency)]
    return "\n".join(lines)


def format_top_ops(est: LatencyEstimate, n: int = 5) -> str:
    """The ``n`` most expensive operators of an estimate, with their share."""
    rows = [["op", "layer", "class", "kernel", "MACs", "est. ms", "share"]]
    for o in est.top(n):
        rows.append(
            [
                f"{o.index} {o.opcode}",
                layer_label(o.layer),
                o.op_class,
                o.kernel,
                format_count(o.macs),
                f"{o.ms:.3g}",
                f"{o.ms / est.ms:.0%}" if est.ms else "-",
            ]
        )
    return "\n".join(
        [f"most expensive operators (estimated, {est.cost_model}):"] + table(rows, right={4, 5, 6})
    )
