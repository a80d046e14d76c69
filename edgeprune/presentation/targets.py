"""The text of `edgeprune targets` and `edgeprune targets show`."""

from __future__ import annotations

from edgeprune.presentation.table import table
from edgeprune.rules.result import format_size
from edgeprune.target import Target


def format_targets(targets: list[Target]) -> str:
    """The table ``edgeprune targets`` prints."""
    rows = [
        [
            "target",
            "device",
            "kind",
            "core",
            "clock",
            "flash",
            "RAM",
            "runtime",
            "kernels",
            "latency budget",
        ]
    ]
    for t in targets:
        rows.append(
            [
                t.id,
                t.name,
                t.kind,
                t.core,
                f"{t.clock_hz / 1e6:g} MHz",
                format_size(t.flash_bytes),
                format_size(t.ram_bytes),
                t.runtime,
                t.kernels,
                _latency_budget(t),
            ]
        )
    return "\n".join(
        table(rows)
        + [
            "",
            "Flash and RAM budgets are each device's capacity (targets show NAME); the "
            "latency budget is the application's: max_latency_ms in a recipe's [budget] "
            "or --max-latency-ms.",
        ]
    )


def _latency_budget(t: Target) -> str:
    if t.budget.max_latency_ms is None:
        return "set by your recipe"
    return f"<= {t.budget.max_latency_ms:g} ms (this profile's)"


def _budget_text(t: Target) -> str:
    """The budget line of ``targets show``: what each budget is and who sets it."""
    what = (
        ("storage", "the model file", "RAM", "the memory the model adds to a process")
        if t.kind == "linux"
        else ("flash", "model + runtime + reserve", "RAM", "arena + runtime + reserve")
    )
    latency = (
        "latency set by your recipe ([budget] max_latency_ms or --max-latency-ms)"
        if t.budget.max_latency_ms is None
        else f"latency <= {t.budget.max_latency_ms:g} ms"
    )
    return (
        f"{what[0]} ({what[1]}) <= {t.budget.max_flash_bytes:,} B, {what[2]} ({what[3]}) "
        f"<= {t.budget.max_ram_bytes:,} B, {latency}"
    )


def format_target(t: Target) -> str:
    """The text ``edgeprune targets show NAME`` prints."""
    cpu = ", ".join(x for x in (t.cpu, f"{t.cores} cores" if t.cores else "") if x)
    lines = [
        f"{t.id}: {t.name}",
        f"  file            {t.path}",
        f"  kind            {t.kind} ({t.runtime}, kernels: {t.kernels})",
        f"  core            {t.core} at {t.clock_hz / 1e6:g} MHz"
        + (f" ({cpu})" if cpu else "")
        + (f", NPU {t.npu}" if t.npu else ""),
        f"  {'storage' if t.kind == 'linux' else 'flash':<16}{t.flash_bytes:,} B "
        f"({format_size(t.flash_bytes)})",
        f"  RAM             {t.ram_bytes:,} B ({format_size(t.ram_bytes)})"
        + (f", largest block {t.largest_ram_block_bytes:,} B" if t.largest_ram_block_bytes else ""),
    ]
    if t.read_from_this_machine:
        lines.append(
            f"  read here       {', '.join(t.read_from_this_machine)}: read from this machine "
            f"when the profile is loaded (/proc/cpuinfo, /proc/meminfo, sysfs cpufreq)"
        )
    lines.append(f"  model dtype     {t.model_dtype}")
    source = "this profile" if t.channel_multiple_source == "profile" else t.channel_multiple_source
    lines.append(
        f"  channels        structured pruning rounds kept channels to multiples of "
        f"{t.channel_multiple} ({source})"
        if t.channel_multiple > 1
        else f"  channels        structured pruning does not round channel counts ({source})"
    )
    if t.sdk:
        lines.append("  SDKs            " + ", ".join(f"{b.sdk} (board {b.board})" for b in t.sdk))
    if t.kind == "mcu":
        lines += [
            f"  reserved        flash {t.reserve.flash_bytes:,} B, RAM {t.reserve.ram_bytes:,} B"
            f" (for the application; counted in every check)",
            f"  arena margin    +{t.arena_margin.fraction:.0%} +{t.arena_margin.bytes} B: "
            f"{t.arena_margin.reason}",
        ]
    lines += [
        f"  budget          {_budget_text(t)}",
        f"  latency model   {_cost_model_text(t)}, {t.latency.threads} thread"
        + ("s" if t.latency.threads > 1 else ""),
    ]
    if t.latency.measure:
        lines.append(
            f"  latency         measured on this machine: median of {t.latency.runs} "
            f"invokes in ai-edge-litert; the model above gives the estimate beside it"
        )
    if t.latency.active_power_mw is not None:
        lines.append(
            f"  active power    {t.latency.active_power_mw:g} mW ({t.latency.power_source})"
        )
    return "\n".join(lines)


def _cost_model_text(t: Target) -> str:
    """The cost model's id and how good it is (its basis, its leave-one-out error)."""
    from edgeprune.estimates.latency import CostModelError, load_cost_model

    ident = t.latency.cost_model_id(t)
    try:
        model = load_cost_model(ident)
    except CostModelError as exc:
        return f"{ident} (cannot be loaded: {exc})"
    if model.accuracy is not None:
        a = model.accuracy
        return (
            f"{ident} (fitted; leave-one-out error median {a.median_abs_error:.0%}, max "
            f"{a.max_abs_error:.0%} over {a.n} measurements on {a.set})"
        )
    return f"{ident} ({model.basis}: {model.source})"
