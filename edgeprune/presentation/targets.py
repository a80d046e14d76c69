"""The text of `edgeprune targets` and `edgeprune targets show`."""

from __future__ import annotations

from edgeprune.presentation.table import table
from edgeprune.target import Target


def format_targets(targets: list[Target]) -> str:
    """The table ``edgeprune targets`` prints."""
    rows = [["target", "device", "kind", "core", "clock", "flash", "RAM", "runtime", "kernels"]]
    for t in targets:
        rows.append(
            [
                t.id,
                t.name,
                t.kind,
                t.core,
                f"{t.clock_hz / 1e6:g} MHz",
                _iec(t.flash_bytes),
                _iec(t.ram_bytes),
                t.runtime,
                t.kernels,
            ]
        )
    return "\n".join(table(rows))


def format_target(t: Target) -> str:
    """The text ``edgeprune targets show NAME`` prints."""
    lines = [
        f"{t.id}: {t.name}",
        f"  file            {t.path}",
        f"  kind            {t.kind} ({t.runtime}, kernels: {t.kernels})",
        f"  core            {t.core} at {t.clock_hz / 1e6:g} MHz"
        + (f", NPU {t.npu}" if t.npu else ""),
        f"  flash           {t.flash_bytes:,} B ({_iec(t.flash_bytes)})",
        f"  RAM             {t.ram_bytes:,} B ({_iec(t.ram_bytes)})"
        + (f", largest block {t.largest_ram_block_bytes:,} B" if t.largest_ram_block_bytes else ""),
        f"  model dtype     {t.model_dtype}",
        f"  reserved        flash {t.reserve.flash_bytes:,} B, RAM {t.reserve.ram_bytes:,} B"
        f" (for the application; counted in every check)",
        f"  arena margin    +{t.arena_margin.fraction:.0%} +{t.arena_margin.bytes} B: "
        f"{t.arena_margin.reason}",
        f"  budget          flash <= {t.budget.max_flash_bytes:,} B, RAM <= "
        f"{t.budget.max_ram_bytes:,} B, latency <= {t.budget.max_latency_ms:g} ms",
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


def _iec(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.4g} {unit}"
    return f"{n} B"
