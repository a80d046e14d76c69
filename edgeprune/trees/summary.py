"""The text a person reads after a tree run: the model before and after pruning, the
pruning steps, the feature drop, the device check and the host C's agreement.
Built from the run's report entries only; the CLI prints it."""

from __future__ import annotations

from edgeprune.presentation.table import table


def _quality(test: dict) -> str:
    if "accuracy" in test:
        return f"{test['accuracy']:.4f}"
    return f"{test['mse']:.4g}"


def _f1_or_mae(test: dict) -> str:
    if "macro_f1" in test:
        return f"{test['macro_f1']:.4f}"
    return f"{test.get('mae', float('nan')):.4g}"


def _model_rows(entry) -> list[list[str]]:
    classification = entry.task == "classification"
    head = ["model", "nodes", "leaves", "depth", "members"]
    head += ["test accuracy", "macro-F1"] if classification else ["test MSE", "MAE"]
    head += ["flash", "RAM", "est. latency"]
    rows = [head]
    for label, m in (("unpruned", entry.baseline), ("pruned", entry.pruned)):
        c = m.complexity
        compiled, lat = m.compiled or {}, m.latency or {}
        rows.append(
            [
                label,
                f"{c['nodes']:,}",
                f"{c['leaves']:,}",
                str(c["depth"]),
                str(c["members"]),
                _quality(m.test),
                _f1_or_mae(m.test),
                f"{compiled['flash_bytes']:,} B" if compiled else "-",
                f"{compiled['ram_bytes']:,} B" if compiled else "-",
                f"{lat['ms']:.3g} ms ±{lat['error_band']:.0%}" if lat else "-",
            ]
        )
    return rows


def format_tree_run(result) -> str:
    """The summary of a :class:`~edgeprune.trees.run_stages.TreeRunResult`."""
    entry = result.report.trees
    lines = [
        f"{entry.kind} ({entry.task}) on {result.report.inputs.data_name}: {result.out_dir}",
        "",
    ]
    lines += table(_model_rows(entry), right=set(range(1, 10)))
    lines.append("")
    metric_name = entry.pruned.validation["metric"]
    for step in entry.steps:
        params = {k: v for k, v in step.get("parameters", {}).items() if k != "order"}
        before, after = step.get("validation_before"), step.get("validation_after")
        val = (
            f", validation {metric_name} {before:.4g} -> {after:.4g}" if before is not None else ""
        )
        lines.append(
            f"prune {step['name']}: {step['nodes_before']:,} -> {step['nodes_after']:,} nodes, "
            f"{step['members_before']} -> {step['members_after']} members{val} {params}"
        )
    if entry.feature_drop:
        d = entry.feature_drop
        lines.append(
            f"feature drop: kept {len(d['kept'])} of {d['n_features_before']} features "
            f"{d['kept']}; validation {d['metric']} {d['before']:.4g} -> {d['after']:.4g}"
        )
    compiled = entry.pruned.compiled
    if compiled:
        lines.append(
            f"flash and RAM: what the model adds to a firmware, compiled for {compiled['core']} "
            f"by {compiled['compiler']} (-Os, linked ELF's sections); latency: an ESTIMATE "
            "from counted instructions (see the check's evidence)"
        )
    a = entry.agreement
    if a is not None:
        lines.append(
            f"host C ({a['dtype']} inputs, gcc on this machine) vs scikit-learn on the "
            f"{a['split']} split: {a['n_equal']}/{a['n']} equal"
            + (f"; first difference: {a['differences'][0]['why']}" if a["differences"] else "")
        )
    lines += [f"note: {n}" for n in entry.notes]
    if result.check is not None:
        from edgeprune.presentation.check import format_check

        lines += ["", format_check(result.check)]
    lines += ["", f"report: {result.report_path}"]
    return "\n".join(lines)
