"""The sections of a run folder's ``report.html``, from its :class:`~edgeprune.report.Report` alone.

Each section is shown when the report has its data and says in one line why
not otherwise (a run without a target has no device check, a stage command's
report has no baseline). Every figure shown is one report.json holds;
estimates say so.
"""

from __future__ import annotations

from edgeprune.presentation import plots
from edgeprune.presentation.page import (
    ESTIMATE,
    Section,
    esc,
    missing,
    num,
    page,
    para,
    table,
    verdict,
)
from edgeprune.presentation.summary import channel_multiple_text
from edgeprune.report import Report
from edgeprune.rules.result import format_quantity
from edgeprune.tflite.names import layer_label

TOP_OPS = 10  # operators in the latency figure and table
QUALITY_KEYS = {
    "classification": [
        ("accuracy", "accuracy"),
        ("macro_f1", "macro-F1"),
        ("agreement", "agreement"),
    ],
    "regression": [("mse", "MSE"), ("mae", "MAE"), ("mse_vs_baseline", "MSE vs baseline")],
}


def render(rep: Report) -> str:
    """The whole page for ``rep``."""
    from edgeprune.presentation.compress_page import compress_section
    from edgeprune.presentation.tree_page import tree_sections

    sections = [
        header(rep),
        *tree_sections(rep),  # a tree model's run (edgeprune.trees)
        sizes(rep),
        layers(rep),
        quality(rep),
        confusion(rep),
        budgets(rep),
        *filter(None, [compress_section(rep)]),  # presentation/compress_page.py
        operators(rep),
        validation(rep),
    ]
    target = f" on {rep.target['id']}" if rep.target else ""
    return page(
        f"edgeprune report: {_model_name(rep)}{target}",
        f"built from report.json (schema {rep.to_dict()['schema_version']}) alone; "
        f"`edgeprune report FOLDER` rebuilds it",
        sections,
    )


def _model_name(rep: Report) -> str:
    return rep.inputs.model.replace("builtin:", "", 1).rsplit("/", 1)[-1]


def header(rep: Report) -> Section:
    inp = rep.inputs
    rows = [
        ("model", f"<code>{esc(inp.model)}</code>"),
        ("model SHA-256", _sha_text(inp.model, inp.model_sha256)),
        ("data", f"{esc(inp.data_name)} <code>{esc(inp.data_sha256 or '-')}</code>"),
        (
            "task",
            f"{esc(inp.task)}, {inp.n_classes} classes"
            if inp.task == "classification"
            else esc(inp.task),
        ),
        ("target", _target_text(rep.target)),
        ("seed", esc(rep.seed)),
        ("written", esc(rep.written or "not recorded (a report of an older edgeprune)")),
        ("run time", f"{num(rep.seconds, 3)} s" if rep.seconds is not None else "-"),
        ("tool", esc(f"{rep.tool.get('name')} {rep.tool.get('version')}")),
    ]
    versions = ", ".join(f"{k} {v}" for k, v in rep.versions.items() if v)
    rows.append(("versions", esc(versions)))
    body = table(None, rows)
    return Section("run", "Run", body)


def _sha_text(model: str, sha256: str | None) -> str:
    if sha256:
        return f"<code>{esc(sha256)}</code>"
    return "- (a built-in model: no file)" if model.startswith("builtin:") else "-"


def _target_text(target: dict | None) -> str:
    if not target:
        return '<span class="none">none (no device check)</span>'
    parts = [target.get("name") or target["id"], target.get("core"), target.get("runtime")]
    clock = target.get("clock_hz")
    text = ", ".join(str(p) for p in parts if p)
    return f"<b>{esc(target['id'])}</b>: {esc(text)}" + (f", {clock / 1e6:g} MHz" if clock else "")


def sizes(rep: Report) -> Section:
    title = "Size by stage"
    if not rep.sizes:
        return missing("sizes", title, "This report measured no model sizes.")
    rows = [
        [
            esc(stage),
            f"<code>{esc(s.path)}</code>",
            esc(s.mode),
            num(s.bytes),
            num(s.gzip_bytes),
            f"{s.zero_weight_fraction:.1%}",
            num(s.parameter_count),
        ]
        for stage, s in rep.sizes.items()
    ]
    body = plots.size_by_stage(rep.sizes) + table(
        [
            "stage",
            "artifact",
            "mode",
            "flatbuffer bytes",
            "gzip bytes",
            "zero weights",
            "parameters",
        ],
        rows,
        numeric=(3, 4, 5, 6),
    )
    body += "".join(para(n) for n in rep.notes)
    return Section("sizes", title, body)


def layers(rep: Report) -> Section:
    title = "Layers: sparsity and kept width"
    prune, structured = rep.stages.prune, rep.stages.structured
    if structured is None and prune is not None:
        structured = prune.structured  # `edgeprune prune` keeps it in the prune entry
    if prune is None and structured is None:
        return missing("layers", title, "No pruning stage ran in this folder.")
    body = ""
    if prune is not None and prune.layers:
        body += "<h3>Unstructured sparsity (tfmot)</h3>" + plots.layer_sparsity(prune.layers)
        body += table(
            ["layer", "type", "weights", "zeros", "requested", "achieved"],
            [
                [esc(e["name"]), esc(e["type"]), num(e["weights"]), num(e["zeros"])]
                + [f"{e['requested']:.3f}", f"{e['achieved']:.3f}"]
                for e in prune.layers
            ],
            numeric=(2, 3, 4, 5),
        )
        body += para(f"overall sparsity of the weighted layers: {prune.overall_sparsity:.1%}")
    else:
        body += para("No unstructured pruning in this report.", "missing")
    if structured is not None and structured.rounds:
        widths = structured.rounds[-1].widths
        body += "<h3>Kept width (structured pruning)</h3>" + plots.kept_width(widths)
        body += table(
            ["layer", "channels before", "kept", "kept share"],
            [
                [esc(n), num(b), num(a), f"{a / b:.0%}" if b else "-"]
                for n, (b, a) in widths.items()
            ],
            numeric=(1, 2, 3),
        )
        body += para(
            f"goal {structured.goal}, {structured.importance} importance, {structured.ranking} "
            f"ranking, {len(structured.rounds)} round(s); parameters {structured.params_before:,} "
            f"-> {structured.params_after:,}, MACs {structured.macs_before:,} -> "
            f"{structured.macs_after:,}"
            + (
                f"; {channel_multiple_text(structured)}"
                if structured.channel_multiple is not None
                else ""
            )
        )
    else:
        body += para("No structured pruning in this report (structured.goal none).", "missing")
    return Section("layers", title, body)


def _quality_keys(rep: Report) -> list[tuple[str, str]]:
    figures = [e.figures for e in rep.stages.evaluate.values()]
    keys = QUALITY_KEYS.get(rep.inputs.task, QUALITY_KEYS["regression"])
    return [(k, label) for k, label in keys if any(f.get(k) is not None for f in figures)]


def quality(rep: Report) -> Section:
    title = "Quality by stage"
    evaluate = rep.stages.evaluate
    if not evaluate:
        return missing("quality", title, "No model was evaluated in this report.")
    keys = _quality_keys(rep)
    order = [s for s in plots.STAGE_ORDER if s in evaluate] + [
        s for s in evaluate if s not in plots.STAGE_ORDER
    ]
    figures = {s: evaluate[s].figures for s in order}
    rows = [
        [esc(s), f"<code>{esc(evaluate[s].artifact)}</code>"]
        + [num(figures[s].get(k)) for k, _ in keys]
        + [esc(evaluate[s].agreement_reference)]
        for s in order
    ]
    body = plots.quality_by_stage(figures, keys) if keys else ""
    body += table(
        ["stage", "artifact", *[label for _, label in keys], "agreement reference"],
        rows,
        numeric=range(2, 2 + len(keys)),
    )
    body += para("Measured on the test set with each stage's .tflite on this machine (LiteRT).")
    return Section("quality", title, body)


def confusion(rep: Report) -> Section:
    title = "Confusion matrix (final model)"
    final = rep.stages.evaluate.get("final")
    matrix = final.figures.get("confusion_matrix") if final else None
    if not matrix:
        why = (
            "A regression model has no confusion matrix."
            if rep.inputs.task != "classification"
            else "No final model was evaluated in this report."
        )
        return missing("confusion", title, why)
    body = plots.confusion(matrix, f"Confusion matrix of {final.artifact} (test set)", "confusion")
    return Section("confusion", title, body)


def budgets(rep: Report) -> Section:
    title = "Budgets on the target"
    check = rep.stages.check
    if check is None:
        return missing("budgets", title, "This run had no target, so no device check ran.")
    latency = check.evidence.get("latency") or {}
    band = latency.get("error_band")
    estimate_ms = None if check.latency_measured else latency.get("ms")
    rows = []
    for r in check.rules:
        shown = esc(format_quantity(r.figure, r.unit))
        if r.name == "latency" and estimate_ms is not None:
            shown = f"{esc(format_quantity(estimate_ms, 'ms'))} {ESTIMATE}"
            shown += f" ±{band:.0%}" if band else ""
            if r.figure is not None and num(r.figure) != num(estimate_ms):
                shown += f"; judged at {esc(format_quantity(r.figure, r.unit))}"
        elif r.name == "latency":
            shown += " (measured)"
        rows.append(
            [
                esc(r.name),
                shown,
                esc(format_quantity(r.budget, r.unit)) if r.budget is not None else "not set",
                esc(format_quantity(r.headroom, r.unit)) if r.budget is not None else "",
                verdict(r.ok if r.judged else None),
                esc(r.evidence),
            ]
        )
    judged = any(r.budget for r in check.rules)
    body = f"<p><b>{esc(check.target)}</b>: {verdict(check.ok)}</p>"
    body += plots.budget_use(check.rules, estimate_ms, band) if judged else ""
    body += table(["rule", "figure", "budget", "headroom", "result", "evidence"], rows, (1, 2, 3))
    if band and estimate_ms is not None:
        body += para(
            f"The latency is an estimate (cost model {latency.get('cost_model')}); its error band "
            f"±{band:.0%} is {latency.get('error_band_basis') or 'the cost model error'}."
        )
    pre = [[esc(p.name), verdict(p.ok), esc(p.evidence)] for p in check.preconditions]
    if pre:
        body += "<h3>Preconditions</h3>" + table(["precondition", "result", "evidence"], pre)
    return Section("budgets", title, body)


def operators(rep: Report) -> Section:
    title = "Operators by estimated latency"
    check = rep.stages.check
    latency = (check.evidence.get("latency") or {}) if check else {}
    ops = latency.get("ops") or []
    if not ops:
        why = (
            "This run had no target, so no latency was estimated."
            if check is None
            else ("The check evidence holds no per-operator estimate.")
        )
        return missing("operators", title, why)
    total = latency.get("ms") or sum(o["ms"] for o in ops)
    cost_model = latency.get("cost_model", "?")
    chosen = sorted(ops, key=lambda o: -o["ms"])[:TOP_OPS]
    rows = [
        [
            num(o["index"]),
            esc(o["opcode"]),
            esc(layer_label(o["layer"])),
            esc(o.get("op_class", "")),
            esc(o.get("kernel", "")),
            num(o.get("macs")),
            num(o["ms"], 3),
            f"{o['ms'] / total:.0%}" if total else "-",
        ]
        for o in chosen
    ]
    body = plots.op_latency(ops, TOP_OPS, cost_model)
    body += table(
        ["#", "op", "layer", "class", "kernel", "MACs", "est. ms", "share"], rows, (0, 5, 6, 7)
    )
    body += (
        f'<p class="note">{ESTIMATE} {esc(num(total, 4))} ms in all at '
        f"{esc(num((latency.get('clock_hz') or 0) / 1e6, 4))} MHz, from cost model "
        f"{esc(cost_model)} ({esc(latency.get('source', ''))}).</p>"
    )
    return Section("operators", title, body)


def validation(rep: Report) -> Section:
    title = "Validation"
    results = rep.validation or {}
    if not results:
        return missing(
            "validation", title, "No validation results: `edgeprune validate FOLDER` adds them."
        )
    keys = QUALITY_KEYS.get(rep.inputs.task, QUALITY_KEYS["regression"])[:2]
    percentiles = ("p50", "p90", "p99", "max")
    rows = []
    for name, v in results.items():
        rows.append(
            [esc(name), f"{v.completed} of {v.samples}"]
            + [num(v.metrics.get(k)) for k, _ in keys]
            + [num(v.agreement.get("agreement", v.agreement.get("max_abs_diff")))]
            + [num(v.latency_ms.get(p), 3) for p in percentiles]
            + ["partial" if v.partial else verdict(v.ok)]
        )
    body = plots.latency_percentiles({n: v.latency_ms for n, v in results.items()})
    body += table(
        [
            "runner",
            "samples",
            *[label for _, label in keys],
            "agreement",
            *[f"{p} ms" for p in percentiles],
            "result",
        ],
        rows,
        numeric=range(2, 4 + len(keys) + len(percentiles)),
    )
    for name, v in results.items():
        body += f"<h3>{esc(name)}</h3>" + para(f"model: {v.model} (SHA-256 {v.model_sha256[:12]})")
        body += para(f"where: {v.where}; timing: {v.timing}")
        body += para(f"data: {v.data}, {v.split}")
        body += "".join(para(f"note: {n}") for n in v.notes)
        if v.error:
            body += para(f"error: {v.error}", "fail")
        body += table(
            ["rule", "figure", "budget", "result", "evidence"],
            [
                [esc(r.name), num(r.figure), num(r.budget), verdict(r.ok), esc(r.evidence)]
                for r in v.rules
            ],
            (1, 2),
        )
    return Section("validation", title, body)
