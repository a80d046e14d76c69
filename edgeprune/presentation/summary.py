"""Human-readable summaries of pipeline results (the CLI prints them)."""

from __future__ import annotations

import os

from edgeprune.presentation.table import table


def _quality_cells(task: str, ev) -> list[str]:
    if ev is None:
        return ["-", "-", "-"]
    m, a = ev.metrics, ev.agreement
    if task == "classification":
        return [f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", f"{a['agreement']:.4f}"]
    return [f"{m['mse']:.5g}", f"{m['mae']:.5g}", f"{a['max_abs_diff_vs_baseline']:.3g}"]


def _quality_header(task: str) -> list[str]:
    if task == "classification":
        return ["accuracy", "macro-F1", "agree"]
    return ["mse", "mae", "max|d|"]


def size_and_quality_table(task: str, sizes: dict, evaluations: list) -> list[str]:
    evals = {e.stage: e for e in evaluations}
    rows = [["stage", "artifact", "bytes", "gzip", "zero weights", *_quality_header(task)]]
    for stage in [
        s for s in ("baseline", "structured", "pruned", "final") if s in sizes or s in evals
    ]:
        size = sizes.get(stage)
        ev = evals.get(stage)
        rows.append(
            [
                stage,
                size.path if size else ev.path,
                f"{size.bytes:,}" if size else "-",
                f"{size.gzip_bytes:,}" if size else "-",
                f"{size.zero_weight_fraction:.1%}" if size else "-",
                *_quality_cells(task, ev),
            ]
        )
    return table(rows, right={2, 3, 4, 5, 6, 7})


def layer_table(layers) -> list[str]:
    rows = [["layer", "type", "weights", "requested", "achieved", "note"]]
    for s in layers:
        rows.append(
            [
                s.name,
                s.type,
                f"{s.weights:,}",
                f"{s.requested:.3f}",
                f"{s.achieved:.3f}",
                s.reason or ("ok" if s.ok else "BELOW REQUESTED"),
            ]
        )
    return table(rows, right={2, 3, 4})


def schedule_line(plan) -> str:
    if plan.kind == "m_by_n":
        return (
            f"m_by_n {plan.final_sparsity:.2f}: mask set at step 1, then "
            f"{plan.total_steps} fine-tuning steps"
        )
    end = "end of training" if plan.end_step < 0 else f"step {plan.end_step}"
    return (
        f"{plan.kind} {plan.initial_sparsity:.2f} -> {plan.final_sparsity:.2f}, "
        f"step {plan.begin_step} to {end} every {plan.frequency} "
        f"({plan.mask_updates} mask updates, last at step {plan.last_update_step}) "
        f"over {plan.total_steps} steps ({plan.epochs} epochs x {plan.steps_per_epoch})"
        f"{', derived from the data' if plan.derived else ''}"
    )


def check_line(check) -> str:
    """The quantization budget (a :class:`~edgeprune.rules.result.RuleResult`) in a line."""
    return (
        f"quantization budget: {check.statement} {check.against_budget()}: "
        f"{'ok' if check.ok else 'FAILED'}"
    )


def structured_lines(entry) -> list[str]:
    """The structured stage's report entry (:class:`~edgeprune.report.StructuredEntry`),
    in a few lines."""
    goal = entry.goal
    aim = {
        "width": f" {entry.width}",
        "params": f" /{entry.reduction}",
        "macs": f" /{entry.reduction}",
    }.get(goal, "")
    if goal == "fit" and entry.fit:
        aim = f" {entry.fit.target}"
    lines = [
        f"structured pruning: goal {goal}{aim}, {entry.importance} importance, "
        f"{entry.ranking} ranking (layer floor {entry.floor}), "
        f"{len(entry.rounds)} round(s)",
        f"  params {entry.params_before:,} -> {entry.params_after:,} "
        f"({entry.params_reduction:.2f}x), MACs {entry.macs_before:,} -> "
        f"{entry.macs_after:,} ({entry.macs_reduction:.2f}x)",
    ]
    if entry.channel_multiple is not None:
        lines.append("  " + channel_multiple_text(entry))
    for r in entry.rounds:
        line = f"  round {r.round}: removed {r.removed_channels} channels, width {r.width:.3f}"
        if r.rebuild_max_abs_diff is not None:
            line += (
                f", rebuild verified on {r.verify_samples} samples (max |d| "
                f"{r.rebuild_max_abs_diff:.2g})"
            )
        if r.metric is not None:
            line += f", {entry.metric_split} {entry.metric_name} {r.metric:.4g}"
        lines.append(line)
    if entry.rounds:
        widths = entry.rounds[-1].widths
        lines.append("  widths: " + ", ".join(f"{n} {a}->{b}" for n, (a, b) in widths.items()))
    fit = entry.fit
    if fit:
        ok = [c for c in fit.candidates if c.ok]
        bad = [c for c in fit.candidates if not c.ok]
        for label, c in (
            ("widest that fits", max(ok, key=lambda c: c.width, default=None)),
            ("narrowest that does not", min(bad, key=lambda c: c.width, default=None)),
        ):
            if c is not None:
                lines.append(
                    f"  fit {fit.target}: {label}: width {c.width:.3f}: "
                    + ", ".join(_rule_cell(k, v) for k, v in c.rules.items())
                )
    for name, why in entry.kept_whole.items():
        lines.append(f"  kept whole: {name}: {why}")
    for text in ([entry.stopped] if entry.stopped else []) + list(entry.notes):
        lines.append(f"  note: {text}")
    return lines


def channel_multiple_text(entry) -> str:
    """How a structured entry rounded its kept channel counts, and who chose the multiple."""
    m, source = entry.channel_multiple, entry.channel_multiple_source
    if m == 1:
        return f"channel counts not rounded (multiple 1: {source})"
    return f"channel counts rounded to multiples of {m} ({source})"


def _rule_cell(name: str, rule) -> str:
    from edgeprune.rules.result import format_figure

    figure = format_figure(rule.figure, rule.unit)
    budget = "" if rule.budget is None else format_figure(rule.budget, rule.unit)
    label = f"{name} ({rule.basis})" if rule.basis else name
    return (
        f"{label} {figure}{'/' + budget if budget else ''} {rule.unit}{'' if rule.ok else ' OVER'}"
    )


def process_seconds() -> float | None:
    """Seconds since this process started, start-up included (the interpreter,
    TensorFlow's import): its start time in ``/proc/self/stat`` (clock ticks since
    boot) against ``/proc/uptime``. None where ``/proc`` does not say (not Linux)."""
    try:
        with open("/proc/self/stat") as fh:
            stat = fh.read()
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
        # the command name (field 2) may hold spaces: count fields after its ")"
        start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
        return max(uptime - start_ticks / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


def run_time(seconds: float) -> str:
    """``44.8 s; 94 s since the process started``: the pipeline's time, then the
    whole command's as a person waited for it (without the second where /proc is missing)."""
    text = f"{seconds:.1f} s"
    since = process_seconds()
    if since is not None and since > seconds:
        text += f"; {since:.1f} s since the process started"
    return text


def format_run(result) -> str:
    """The summary ``edgeprune run`` prints."""
    p = result.prune
    lines = [f"edgeprune run -> {result.out_dir}  ({result.task}, {run_time(result.seconds)})", ""]
    lines += size_and_quality_table(result.task, result.sizes, result.evaluations)
    if result.report.stages.structured:
        lines += [""] + structured_lines(result.report.stages.structured)
    lines += ["", f"pruning: {schedule_line(p.schedule)}"]
    lines += layer_table(p.layers)
    lines += [
        f"overall sparsity of the weighted layers: {p.overall_sparsity:.1%}",
        f"strip: outputs {'identical' if p.strip_check.equal else 'DIFFERENT'} to the "
        f"pruned model on {p.strip_check.samples} test samples "
        f"(max |difference| {p.strip_check.max_abs_diff:.3g})",
    ]
    q = result.quantize
    if q.calibration_samples:
        lines.append(
            f"quantize: {q.mode}, calibrated on {q.calibration_samples} samples "
            f"from {q.calibration_source}"
        )
    else:
        lines.append(f"quantize: {q.mode}")
    lines.append(check_line(result.quality))
    dense = q.dense
    if dense:
        lines.append(
            f"Dense weights: {dense.picked.replace('_', '-')} ({dense.why}; arena "
            f"{dense.per_channel.arena_bytes:,} B per-channel vs "
            f"{dense.per_tensor.arena_bytes:,} B per-tensor)"
        )
    for note in result.report.notes:
        lines.append(f"note: {note}")
    if result.check is not None:
        from edgeprune.presentation.check import format_check

        lines += ["", format_check(result.check)]
        if result.report.stages.compress is not None:
            from edgeprune.presentation.compress_page import format_compress

            lines += [
                "",
                *format_compress(result.report.stages.compress, result.report.stages.check),
            ]
        if result.firmware is not None:
            lines.append(f"firmware: {result.firmware.folder}")
    lines.append(f"report: {os.path.join(result.out_dir, 'report.json')}")
    return "\n".join(lines)


def format_stage(result) -> str:
    """The summary a single-stage command prints."""
    lines = [
        f"edgeprune {result.stage} -> {result.out_dir}  ({result.task}, "
        f"{run_time(result.seconds)})",
        "",
    ]
    lines += size_and_quality_table(result.task, result.sizes, result.evaluations)
    lines.append("(agreement is against the input Keras model)")
    e = result.entry
    if result.stage == "quantize":
        lines.append(check_line(e.check))
    if result.stage == "prune":
        if e.structured is not None:
            lines += structured_lines(e.structured)
        lines.append(
            f"overall sparsity of the weighted layers: {e.overall_sparsity:.1%}; "
            f"strip outputs identical on {e.strip.samples} test samples"
        )
        for name, reason in e.skipped_layers.items():
            lines.append(f"not pruned: {name}: {reason}")
    lines.append(f"report: {result.report_path}")
    return "\n".join(lines)
