"""Fit a cost model's constants to measured latencies, and say how well it predicts.

The measurements come from a CSV file (:mod:`edgeprune.estimates.measurements`).
The fit is linear least squares on relative error over a few named
parameters (:data:`PARAMS`), every constant kept non-negative; the terms not
fitted keep the base model's values. Its error is reported by leave-one-out:
each row is predicted by a fit to all the others.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass, replace

import numpy as np

from edgeprune.estimates.latency import FLOAT_TABLES, Accuracy, CostModel, load_cost_model
from edgeprune.estimates.measurements import CalibrationError, Measurement, load_measurements
from edgeprune.estimates.opcost import CLASSES, MAC_CLASSES, ModelCost

#: Parameters a fit may adjust:
#: ``mac``        one scale on every MAC class's cycles per MAC (keeps their ratios)
#: ``classes``    each MAC class's cycles per MAC on its own
#: ``elements``   one scale on every element class's cycles per element
#: ``activation`` cycles per byte of activations read and written
#: ``overhead``   fixed cycles per operator
PARAMS = ("mac", "classes", "elements", "activation", "overhead")
DEFAULT_FIT = ("mac", "activation")

#: Leave-one-out errors above which a fit is written with a warning: a median
#: over 25 % misjudges the typical model by more than the headroom a budget
#: usually leaves, and one row over 50 % means the fitted form cannot follow some
#: model (a missing cost class, a row from another build).
WARN_MEDIAN_ERROR = 0.25
WARN_MAX_ERROR = 0.50


def _terms(
    cost: ModelCost, base: CostModel, params: tuple[str, ...], classes: list[str]
) -> tuple[np.ndarray, float]:
    """The fitted terms' features, and the cycles of the terms left at the base values."""
    feats: dict[str, float] = {}
    fixed = 0.0
    for op in cost.ops:
        rate = base.unit_rate(op)  # a float op's: its float kernel's, or x float_factor
        integer = base.cycles_per_unit[op.op_class]
        scale = rate / integer if integer else 1.0
        act = op.input_bytes + op.output_bytes
        mac = op.op_class in MAC_CLASSES
        throughput = "mac" if mac else "elements"  # the one scale fitted over the class
        if mac and "classes" in params:
            feats[op.op_class] = feats.get(op.op_class, 0.0) + op.work * scale
        elif throughput in params:
            feats[throughput] = feats.get(throughput, 0.0) + op.work * rate
        else:
            fixed += op.work * rate
        if "activation" in params:
            feats["activation"] = feats.get("activation", 0.0) + act
        else:
            fixed += act * base.cycles_per_activation_byte
        fixed += op.weight_bytes * base.cycles_per_weight_byte + base.shape_cycles(op)
        if "overhead" in params:
            feats["overhead"] = feats.get("overhead", 0.0) + 1
        else:
            fixed += base.overhead_cycles
    return np.array([feats.get(k, 0.0) for k in classes]), fixed


def _names(rows: list[Measurement], params: tuple[str, ...]) -> list[str]:
    names = []
    if "classes" in params:
        present = {o.op_class for r in rows for o in r.cost.ops if o.op_class in MAC_CLASSES}
        names += [c for c in CLASSES if c in present]
    names += [p for p in ("mac", "elements", "activation", "overhead") if p in params]
    return names


def _solve(x: np.ndarray, fixed: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative least squares on relative error, by trying every support set."""
    target = (y - fixed) / y
    a = x / y[:, None]
    best, best_err = np.zeros(x.shape[1]), float(np.sum(target**2))
    for k in range(1, x.shape[1] + 1):
        for support in itertools.combinations(range(x.shape[1]), k):
            cols = list(support)
            theta, *_ = np.linalg.lstsq(a[:, cols], target, rcond=None)
            if np.any(theta < 0):
                continue
            err = float(np.sum((a[:, cols] @ theta - target) ** 2))
            if err < best_err - 1e-15:
                full = np.zeros(x.shape[1])
                full[cols] = theta
                best, best_err = full, err
    return best


def _apply(base: CostModel, names: list[str], theta: np.ndarray) -> CostModel:
    values = dict(zip(names, theta, strict=True))
    units = dict(base.cycles_per_unit)
    if "mac" in values:
        for c in MAC_CLASSES:
            units[c] = base.cycles_per_unit[c] * values["mac"]
    fitted_classes = [c for c in names if c in MAC_CLASSES]
    if fitted_classes:
        ratios = [
            values[c] / base.cycles_per_unit[c]
            for c in fitted_classes
            if base.cycles_per_unit[c] > 0 and values[c] > 0
        ]
        scale = float(np.exp(np.mean(np.log(ratios)))) if ratios else 1.0
        for c in MAC_CLASSES:
            units[c] = values[c] if c in values else base.cycles_per_unit[c] * scale
    if "elements" in values:
        for c in CLASSES:
            if c not in MAC_CLASSES:
                units[c] = base.cycles_per_unit[c] * values["elements"]
    changes = {"cycles_per_unit": units}
    if "activation" in values:
        changes["cycles_per_activation_byte"] = float(values["activation"])
    if "overhead" in values:
        changes["overhead_cycles"] = float(values["overhead"])
    return replace(base, **changes)


def fit(
    rows: list[Measurement], base: CostModel, params: tuple[str, ...] = DEFAULT_FIT
) -> CostModel:
    """``base`` with the constants named by ``params`` fitted to ``rows``."""
    names = _names(rows, params)
    feats = [_terms(r.cost, base, params, names) for r in rows]
    x = np.stack([f for f, _ in feats])
    fixed = np.array([c for _, c in feats])
    y = np.array([r.cycles for r in rows])
    return _apply(base, names, _solve(x, fixed, y))


def predict_ms(model: CostModel, row: Measurement) -> float:
    return sum(model.op_cycles(op) for op in row.cost.ops) / row.clock_hz * 1e3


@dataclass(frozen=True)
class RowResult:
    row: Measurement
    fitted_ms: float  # by the fit to every row
    loo_ms: float  # by the fit to every other row

    @property
    def loo_error(self) -> float:
        return (self.loo_ms - self.row.ms) / self.row.ms


@dataclass(frozen=True)
class Calibration:
    model: CostModel
    params: tuple[str, ...]
    rows: tuple[RowResult, ...]
    accuracy: Accuracy
    warnings: tuple[str, ...] = ()  # leave-one-out errors over the thresholds


def error_warnings(rows: tuple[RowResult, ...], accuracy: Accuracy) -> tuple[str, ...]:
    """The warnings a fit carries when its leave-one-out error is over
    :data:`WARN_MEDIAN_ERROR` (median) or :data:`WARN_MAX_ERROR` (any row)."""
    out = []
    if accuracy.median_abs_error > WARN_MEDIAN_ERROR:
        out.append(
            f"the fit's median leave-one-out error is {accuracy.median_abs_error:.0%} "
            f"(over {WARN_MEDIAN_ERROR:.0%}): its estimates are not reliable; add "
            f"measurements or fit other constants (--fit)"
        )
    if accuracy.max_abs_error > WARN_MAX_ERROR:
        worst = max(rows, key=lambda r: abs(r.loo_error))
        out.append(
            f"the fit misses {worst.row.label} by {worst.loo_error:+.0%} left out (over "
            f"{WARN_MAX_ERROR:.0%}): check that row, or fit constants that can follow it"
        )
    return tuple(out)


def _refuse_mixed_kinds(rows: list[Measurement]) -> None:
    """Float and integer kernels run at other rates: one fit cannot serve both."""
    kinds: dict[str, list[Measurement]] = {}
    for r in rows:
        kinds.setdefault(r.kind, []).append(r)
    if len(kinds) > 1:

        def first(kind: str) -> str:
            more = len(kinds[kind]) - 1
            return f"{kinds[kind][0].label} (line {kinds[kind][0].line})" + (
                f" and {more} more" if more else ""
            )

        raise CalibrationError(
            f"the rows mix float models ({first('float')}) and integer ones "
            f"({first('int')}), whose kernels run at other rates; put each kind in "
            f"its own measurements file and calibrate them apart"
        )


def calibrate(
    rows: list[Measurement],
    base: CostModel | None = None,
    params: tuple[str, ...] = DEFAULT_FIT,
    set_name: str = "",
) -> Calibration:
    """Fit ``base`` (default: the cost model the rows name) to ``rows`` and
    measure the fit's leave-one-out error.

    A fit whose leave-one-out error is over :data:`WARN_MEDIAN_ERROR` (median) or
    :data:`WARN_MAX_ERROR` (any row) carries a warning for each (``warnings``).

    Raises:
        CalibrationError: rows for several cost models, float and integer models
            mixed, unknown parameters, or fewer rows than fitted parameters plus one.
    """
    unknown = [p for p in params if p not in PARAMS]
    if unknown or not params:
        raise CalibrationError(
            f"unknown fit parameter {', '.join(unknown) or '(none)'}; "
            f"choose from {', '.join(PARAMS)}"
        )
    if "mac" in params and "classes" in params:
        raise CalibrationError(
            "fit either mac (one scale) or classes (one rate per class), not both"
        )
    ids = sorted({r.cost_model for r in rows})
    if base is None:
        if len(ids) > 1:
            raise CalibrationError(
                f"the rows calibrate several cost models ({', '.join(ids)}); keep one per file"
            )
        base = load_cost_model(ids[0])
    _refuse_mixed_kinds(rows)
    n_params = len(_names(rows, params))
    if len(rows) < n_params + 1:
        raise CalibrationError(
            f"{len(rows)} measurements cannot fit {n_params} parameters "
            f"and leave one out; add measurements or fit fewer parameters"
        )
    fitted = fit(rows, base, params)
    results = []
    for i, row in enumerate(rows):
        others = fit(rows[:i] + rows[i + 1 :], base, params)
        results.append(RowResult(row, predict_ms(fitted, row), predict_ms(others, row)))
    errors = np.abs([r.loo_error for r in results])
    boards = sorted({r.board for r in rows})
    name = set_name or ", ".join(boards)
    accuracy = Accuracy(len(rows), float(np.median(errors)), float(errors.max()), name)
    source = (
        f"fitted: {', '.join(params)} to {len(rows)} measured latencies on "
        f"{', '.join(boards)} ({name})"
    )
    model = replace(fitted, basis="fit", source=source, accuracy=accuracy)
    rows_out = tuple(results)
    return Calibration(model, tuple(params), rows_out, accuracy, error_warnings(rows_out, accuracy))


def cost_model_toml(model: CostModel, header: str = "") -> str:
    """The TOML text of ``model`` (what ``calibrate --out`` writes)."""

    def q(text: str) -> str:
        return json.dumps(text)  # a TOML basic string is a JSON string for these

    lines = [f"# {line}" for line in header.splitlines()]
    lines += [
        f"kernels = {q(model.kernels)}",
        f"core = {q(model.core)}",
        f"basis = {q(model.basis)}",
        f"source = {q(model.source)}",
    ]
    if model.derivation:
        lines.append(f"derivation = {q(model.derivation)}")
    if model.float_basis:
        lines.append(f"float_basis = {q(model.float_basis)}")
    lines += [
        f"overhead_cycles = {model.overhead_cycles:.6g}",
        f"float_factor = {model.float_factor:.6g}",
        f"cycles_per_activation_byte = {model.cycles_per_activation_byte:.6g}",
        f"cycles_per_weight_byte = {model.cycles_per_weight_byte:.6g}",
        f"parallel_efficiency = {model.parallel_efficiency:.6g}",
        "",
        "[cycles_per_unit]",
    ]
    lines += [f"{c} = {model.cycles_per_unit[c]:.6g}" for c in CLASSES]
    for key in ("cycles_per_output", "cycles_per_op", *FLOAT_TABLES):  # kernel shapes, if any
        table = getattr(model, key)
        if table:
            lines += ["", f"[{key}]", *(f"{c} = {v:.6g}" for c, v in table.items())]
    if model.accuracy is not None:
        a = model.accuracy
        lines += [
            "",
            "[accuracy]",
            f"n = {a.n}",
            f"median_abs_error = {a.median_abs_error:.6g}",
            f"max_abs_error = {a.max_abs_error:.6g}",
            f"set = {q(a.set)}",
        ]
    return "\n".join(lines) + "\n"


def calibrate_file(
    path: str,
    params: tuple[str, ...] = DEFAULT_FIT,
    base: str | None = None,
    set_name: str = "",
    out: str | None = None,
) -> Calibration:
    """:func:`calibrate` on the measurements CSV at ``path`` (``base``: a cost model id
    or file). Side effects: the fit's warnings are logged (level WARNING); with
    ``out``, the fitted model is written there as TOML, its id the file's name (for
    ``edgeprune check --cost-model``), the warnings in its header, and logged.

    Raises:
        CalibrationError: see
            :func:`edgeprune.estimates.measurements.load_measurements` and :func:`calibrate`.
        BadInputError: ``out``'s folder cannot take the file.
    """
    import logging

    from edgeprune.artifacts import check_out_dir, write_bytes_atomic

    if out is not None:
        check_out_dir(os.path.dirname(os.path.abspath(out)))
    result = calibrate(
        load_measurements(path), load_cost_model(base) if base else None, params, set_name
    )
    log = logging.getLogger(__name__)
    for text in result.warnings:
        log.warning("calibrate: %s", text)
    if out is not None:
        model = replace(result.model, id=os.path.splitext(os.path.basename(out))[0])
        header = [f"Written by `edgeprune calibrate {os.path.basename(path)}`."]
        header += [f"WARNING: {text}" for text in result.warnings]
        write_bytes_atomic(out, cost_model_toml(model, "\n".join(header)).encode())
        log.info("wrote %s", out)
    return result
