"""Fit one kernel library's cost models for several cores at once, from published
whole-model latencies, and keep the boards that judge them out of every fit.

For a measurement on the core of cost model ``c``:

    cycles = s_c x (sum_j g_j x F_j + R)

``F_j`` is what the base cost model charges the ops of group ``j`` of classes,
``R`` the rest (the interpreter's per-op dispatch). The base is the kernels'
shape, counted instruction by instruction (:func:`kernel_shape`), so by default
there is one group: ``g`` is the reference core's cycles per instruction and
``s_c`` each other core's relative to it (wait states, pipeline). Both are
fitted by alternating non-negative least squares on relative error. Four
models per core could not support more: per-class rates are not identifiable
from whole-model times (1x1 and depthwise convolutions always come together).

Leave-one-out refits everything without the row it predicts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from edgeprune.estimates.calibrate import RowResult, _solve, predict_ms
from edgeprune.estimates.latency import Accuracy, CostModel, load_cost_model
from edgeprune.estimates.measurements import CalibrationError, Measurement
from edgeprune.estimates.opcost import CLASSES

#: Boards whose published results judge the estimates and never enter a fit.
HELD_OUT_BOARDS = ("EK-RA6M4", "EK-RA8D1")
__all__ = [
    "HELD_OUT_BOARDS",
    "BoardFit",
    "check_not_held_out",
    "derive",
    "fit_boards",
    "kernel_shape",
    "predict_ms",
    "scaled",
]
#: One scale over every class: with the kernels' shape counted instruction by instruction
#: (:func:`kernel_shape`), what is left to fit per core is cycles per instruction.
DEFAULT_GROUPS = (CLASSES,)
#: Classes the instruction counts lack, costed as the class whose kernel they share.
_BORROW = {
    "transpose_conv": "conv",
    "matmul": "fully_connected",
    "recurrent": "fully_connected",
    "activation": "elementwise",
    "quantize": "elementwise",
    "other": "elementwise",
}


def kernel_shape(*paths: str) -> tuple[dict, dict, dict]:
    """Per-class instructions of CMSIS-NN's kernels, fitted to a per-operator count table
    (``targets/latency/kernel_counts/``): per unit of work, per output element (MAC
    classes) and per call, each class by non-negative least squares on relative error.

    Returns (cycles_per_unit, cycles_per_output, cycles_per_op), in instructions.
    """
    import csv

    from edgeprune.estimates.opcost import MAC_CLASSES

    rows = []
    for path in paths:
        with open(path, newline="") as fh:
            rows += csv.DictReader(line for line in fh if not line.startswith("#"))
    units, per_output, per_op = {}, {}, {}
    for cls in CLASSES:
        mine = [r for r in rows if r["op_class"] == cls]
        if not mine:
            continue
        y = np.array([float(r["instructions"]) for r in mine])
        unit = "macs" if cls in MAC_CLASSES else "output_bytes"
        unit = unit if cls in MAC_CLASSES or cls == "data_movement" else "elements"
        cols = [[float(r[unit]) for r in mine]]
        if cls in MAC_CLASSES:
            cols.append([float(r["elements"]) for r in mine])
        theta = _solve(np.array([*cols, [1.0] * len(mine)]).T, np.zeros(len(mine)), y)
        units[cls], per_op[cls] = float(theta[0]), float(theta[-1])
        if cls in MAC_CLASSES:
            per_output[cls] = float(theta[1])
    for cls, like in _BORROW.items():
        units.setdefault(cls, units[like])
        per_op.setdefault(cls, per_op[like])
        if like in per_output:
            per_output.setdefault(cls, per_output[like])
    return units, per_output, per_op


def check_not_held_out(rows: list[Measurement]) -> None:
    """Raises CalibrationError naming the first row measured on a held-out board."""
    for r in rows:
        if r.board.startswith(HELD_OUT_BOARDS):
            raise CalibrationError(
                f"row {r.line} ({r.label}) was measured on {r.board}, a board held out of "
                f"every fit ({', '.join(HELD_OUT_BOARDS)}): its results judge the estimates; "
                "remove the row from the fit set"
            )


def _features(row: Measurement, base: CostModel, groups) -> tuple[np.ndarray, float]:
    grouped, rest = np.zeros(len(groups)), 0.0
    for op in row.cost.ops:
        cycles = base.op_cycles(op)
        j = next((i for i, g in enumerate(groups) if op.op_class in g), None)
        if j is None:
            rest += cycles
        else:
            grouped[j] += cycles - base.overhead_cycles
            rest += base.overhead_cycles
    return grouped, rest


def _fit(rows, bases, groups, reference, rounds: int = 60):
    feats = [_features(r, bases[r.cost_model], groups) for r in rows]
    y = np.array([r.cycles for r in rows])
    cores = sorted({r.cost_model for r in rows})
    scale = dict.fromkeys(cores, 1.0)
    g = np.ones(len(groups))
    for _ in range(rounds):
        s = np.array([scale[r.cost_model] for r in rows])
        x = np.stack([f for f, _ in feats]) * s[:, None]
        g = _solve(x, np.array([rest for _, rest in feats]) * s, y)
        for core in cores:
            if core == reference:
                continue
            p = np.array(
                [
                    (f @ g + rest) / yy
                    for (f, rest), yy, r in zip(feats, y, rows, strict=True)
                    if r.cost_model == core
                ]
            )
            scale[core] = float(p.sum() / (p @ p)) if p.any() else 1.0
    return scale, g


def scaled(base: CostModel, s: float, g, groups=DEFAULT_GROUPS) -> CostModel:
    """``base`` in a core's cycles: core scale ``s`` times group scales ``g``."""
    factor = {}
    for c in CLASSES:
        j = next((i for i, grp in enumerate(groups) if c in grp), None)
        factor[c] = s * (1.0 if j is None else float(g[j]))
    # Every term is in the core's cycles, so the core scale multiplies them all.
    return replace(
        base,
        cycles_per_unit={c: base.cycles_per_unit[c] * factor[c] for c in CLASSES},
        cycles_per_output={c: v * factor[c] for c, v in base.cycles_per_output.items()},
        cycles_per_op={c: v * factor[c] for c, v in base.cycles_per_op.items()},
        overhead_cycles=base.overhead_cycles * s,
        cycles_per_activation_byte=base.cycles_per_activation_byte * s,
        cycles_per_weight_byte=base.cycles_per_weight_byte * s,
    )


@dataclass(frozen=True)
class BoardFit:
    """The fitted cost model of every core, and each row's fitted and left-out estimate."""

    models: dict[str, CostModel]
    core_scales: dict[str, float]
    group_scales: tuple[float, ...]
    rows: tuple[RowResult, ...]


def fit_boards(
    rows: list[Measurement],
    bases: dict[str, CostModel] | None = None,
    groups=DEFAULT_GROUPS,
    reference: str = "cmsis-nn_cortex-m4f",
    set_name: str = "",
) -> BoardFit:
    """Fit the cost models the rows name (``bases``: their starting constants, default
    the shipped ones) and measure each row's leave-one-out error; every model's
    accuracy is over its own rows.

    Raises:
        CalibrationError: a row from a held-out board, a core with fewer than two rows,
            or a reference core without rows.
    """
    check_not_held_out(rows)
    ids = sorted({r.cost_model for r in rows})
    if reference not in ids:
        raise CalibrationError(
            f"no row calibrates the reference cost model {reference}; add its measurements "
            f"or name another reference (one of: {', '.join(ids)})"
        )
    for core in ids:
        if sum(r.cost_model == core for r in rows) < 2:
            raise CalibrationError(
                f"{core} has one measurement; leave-one-out needs two per cost model: "
                "add another or drop that row"
            )
    bases = bases or {i: load_cost_model(i) for i in ids}
    scale, g = _fit(rows, bases, groups, reference)
    fitted = {i: scaled(bases[i], scale[i], g, groups) for i in ids}
    results = []
    for k, row in enumerate(rows):
        s2, g2 = _fit(rows[:k] + rows[k + 1 :], bases, groups, reference)
        if row.cost_model not in s2:  # its core's only other row was left out
            s2[row.cost_model] = 1.0
        left_out = scaled(bases[row.cost_model], s2[row.cost_model], g2, groups)
        results.append(
            RowResult(row, predict_ms(fitted[row.cost_model], row), predict_ms(left_out, row))
        )
    models = {}
    for i in ids:
        errors = np.abs([r.loo_error for r in results if r.row.cost_model == i])
        boards = sorted({r.board for r in rows if r.cost_model == i})
        accuracy = Accuracy(
            len(errors),
            float(np.median(errors)),
            float(errors.max()),
            set_name or ", ".join(boards),
        )
        others = ", ".join(j for j in ids if j != i) or "no other core"
        source = (
            f"fitted: {len(errors)} published latencies on {', '.join(boards)} "
            f"({accuracy.set}), kernel shape shared with {others}"
        )
        models[i] = replace(
            fitted[i], basis="fit", source=source, accuracy=accuracy, stated_error_band=None
        )
    return BoardFit(models, scale, tuple(float(v) for v in g), tuple(results))


def derive(
    base: CostModel, model_id: str, core: str, scalar_ratio: float, mac_ratio: float
) -> CostModel:
    """``base`` for another core: every term x ``scalar_ratio`` (a CoreMark/MHz ratio), the
    MAC classes further x ``mac_ratio`` (a vector-extension speed-up). No accuracy: a
    derived model is judged on held-out boards only."""
    from edgeprune.estimates.opcost import MAC_CLASSES

    ratio = {c: scalar_ratio * (mac_ratio if c in MAC_CLASSES else 1.0) for c in CLASSES}
    units = {c: base.cycles_per_unit[c] * ratio[c] for c in CLASSES}
    return replace(
        base,
        cycles_per_output={c: v * ratio[c] for c, v in base.cycles_per_output.items()},
        cycles_per_op={c: v * ratio[c] for c, v in base.cycles_per_op.items()},
        id=model_id,
        core=core,
        basis="derived",
        cycles_per_unit=units,
        overhead_cycles=base.overhead_cycles * scalar_ratio,
        cycles_per_activation_byte=base.cycles_per_activation_byte * scalar_ratio,
        cycles_per_weight_byte=base.cycles_per_weight_byte * scalar_ratio,
        accuracy=None,
    )
