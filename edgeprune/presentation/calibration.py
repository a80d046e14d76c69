"""The text of `edgeprune calibrate`: each measurement against its fit and left-out
estimate, the leave-one-out error and the fitted constants."""

from __future__ import annotations

from edgeprune.estimates.calibrate import WARN_MAX_ERROR, WARN_MEDIAN_ERROR, Calibration
from edgeprune.estimates.opcost import CLASSES
from edgeprune.presentation.table import table


def format_calibration(cal: Calibration) -> str:
    rows = [["board", "measurement", "measured ms", "fitted ms", "left-out ms", "error"]]
    for r in cal.rows:
        rows.append(
            [
                r.row.board,
                r.row.label,
                f"{r.row.ms:.4g}",
                f"{r.fitted_ms:.4g}",
                f"{r.loo_ms:.4g}",
                f"{r.loo_error:+.1%}",
            ]
        )
    a = cal.accuracy
    lines = (
        [f"calibrated {cal.model.id} on {a.n} measurements (fit: {', '.join(cal.params)})", ""]
        + table(rows, right={2, 3, 4, 5})
        + [
            "",
            f"leave-one-out error: median {a.median_abs_error:.1%}, max {a.max_abs_error:.1%}"
            + (_over_thresholds() if cal.warnings else ""),
            "constants:",
        ]
    )
    m = cal.model
    units = ", ".join(
        f"{c} {m.cycles_per_unit[c]:.4g}" for c in CLASSES if m.cycles_per_unit[c] > 0
    )
    lines += [
        f"  cycles per MAC/element: {units or '(none)'}",
        f"  cycles per activation byte {m.cycles_per_activation_byte:.4g}, per weight byte "
        f"{m.cycles_per_weight_byte:.4g}, per operator {m.overhead_cycles:.4g}",
    ]
    return "\n".join(lines)


def _over_thresholds() -> str:
    return (
        f" (over the warning thresholds: median {WARN_MEDIAN_ERROR:.0%}, "
        f"max {WARN_MAX_ERROR:.0%}; see the warnings)"
    )
