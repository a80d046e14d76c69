"""Fit a cost model's constants to measured latencies, and say how well it predicts.

A measurements file is CSV (lines starting with ``#`` are comments) with a
header row and these columns:

``model``      a ``.tflite`` file, or a ``.json`` op-cost file written by
               ``edgeprune cost --json`` (how a calibration set ships the counts
               of a model it may not redistribute); relative to the CSV's folder
``op``         blank for the whole model's ``Invoke()``, or an operator index
               when the time is of that one operator
``ms``         the measured time
``clock_hz``   the core clock it was measured at
``cost_model`` the cost model it calibrates (``cmsis-nn_cortex-m4f``)
``board``      what it was measured on
``source``     where the figure comes from (a URL with its commit, a log file)

The fit is linear least squares on relative error over a few named
parameters (:data:`PARAMS`), every constant kept non-negative; the terms not
fitted keep the base model's values. Its error is reported by leave-one-out:
each row is predicted by a fit to all the others.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
from dataclasses import dataclass, replace

import numpy as np

from edgeprune.errors import BadInputError
from edgeprune.estimates.latency import FLOAT_DTYPES, Accuracy, CostModel, load_cost_model
from edgeprune.estimates.opcost import CLASSES, MAC_CLASSES, ModelCost, model_cost

#: Parameters a fit may adjust:
#: ``mac``        one scale on every MAC class's cycles per MAC (keeps their ratios)
#: ``classes``    each MAC class's cycles per MAC on its own
#: ``elements``   one scale on every element class's cycles per element
#: ``activation`` cycles per byte of activations read and written
#: ``overhead``   fixed cycles per operator
PARAMS = ("mac", "classes", "elements", "activation", "overhead")
DEFAULT_FIT = ("mac", "activation")
COLUMNS = ("model", "op", "ms", "clock_hz", "cost_model", "board", "source")


class CalibrationError(BadInputError):
    """A measurements file or a fit request cannot be used."""


@dataclass(frozen=True)
class Measurement:
    line: int
    model: str
    op: int | None
    ms: float
    clock_hz: int
    cost_model: str
    board: str
    source: str
    cost: ModelCost  # the whole model, or just the measured operator

    @property
    def cycles(self) -> float:
        return self.ms * 1e-3 * self.clock_hz

    @property
    def label(self) -> str:
        name = os.path.basename(self.model)
        return f"{name} op {self.op}" if self.op is not None else name


def _cost_of(path: str, where: str) -> ModelCost:
    if path.endswith(".json"):
        try:
            with open(path) as fh:
                return ModelCost.from_dict(json.load(fh))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CalibrationError(f"{where}: cannot read the op costs in {path} ({exc}); "
                                   f"write them with `edgeprune cost MODEL --json`") from None
    from edgeprune.tflite import TFLiteFormatError

    try:
        return model_cost(path)
    except (OSError, TFLiteFormatError) as exc:
        raise CalibrationError(f"{where}: cannot read the model {path} ({exc})") from None


def load_measurements(path: str) -> list[Measurement]:
    """Parse a measurements CSV (see the module docstring).

    Raises:
        CalibrationError: unreadable file, a missing column, or a row with a
            bad value (named by its line number).
    """
    try:
        with open(path, newline="") as fh:
            lines = [ln for ln in fh if not ln.lstrip().startswith("#")]
            reader = csv.DictReader(lines)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise CalibrationError(f"{path}: missing column {', '.join(missing)}; the header "
                                       f"must name {', '.join(COLUMNS)}")
            rows = list(reader)
    except OSError as exc:
        raise CalibrationError(f"{path} cannot be read ({exc.strerror})") from None
    folder = os.path.dirname(os.path.abspath(path))
    costs: dict[str, ModelCost] = {}
    out = []
    for n, row in enumerate(rows, start=2):
        where = f"{path} row {n}"
        try:
            ms, clock = float(row["ms"]), int(row["clock_hz"])
        except (TypeError, ValueError):
            raise CalibrationError(f"{where}: ms = {row['ms']!r} and clock_hz = "
                                   f"{row['clock_hz']!r} must be numbers") from None
        if not (math.isfinite(ms) and ms > 0 and clock > 0):
            raise CalibrationError(f"{where}: ms and clock_hz must be positive")
        model = os.path.join(folder, row["model"])
        if model not in costs:
            costs[model] = _cost_of(model, where)
        cost = costs[model]
        op = None
        if (row["op"] or "").strip():
            try:
                op = int(row["op"])
                cost = ModelCost(cost.path, (next(o for o in cost.ops if o.index == op),))
            except (ValueError, StopIteration):
                raise CalibrationError(f"{where}: op = {row['op']!r} is not an operator index "
                                       f"of {row['model']}") from None
        if not row["cost_model"].strip():
            raise CalibrationError(f"{where}: cost_model is empty")
        out.append(Measurement(n, row["model"], op, ms, clock, row["cost_model"].strip(),
                               row["board"], row["source"], cost))
    if not out:
        raise CalibrationError(f"{path} has no measurements")
    return out


def measurement_row(model: str, ms: float, clock_hz: int, cost_model: str, board: str,
                    source: str, folder: str | None = None, op: int | None = None) -> dict:
    """One row of a measurements file. ``model`` is written relative to ``folder``
    (the CSV's) when that is given, else as it is."""
    if folder is not None:
        model = os.path.relpath(os.path.abspath(model), folder)
    return {"model": model, "op": "" if op is None else str(op), "ms": f"{ms:.6g}",
            "clock_hz": int(clock_hz), "cost_model": cost_model, "board": board,
            "source": source}


def existing_measurements(out: str, append: bool) -> str:
    """The text a measurements file ``out`` holds, to write after (``""`` for a new file).

    Raises:
        BadInputError: ``out`` exists and ``append`` is off, its folder cannot take
            the file, or it is not a measurements file.
    """
    from edgeprune.artifacts import check_out_dir

    check_out_dir(os.path.dirname(os.path.abspath(out)))
    if not os.path.exists(out):
        return ""
    if not append:
        raise BadInputError(f"{out} exists; pass --append to add rows or choose a new file")
    load_measurements(out)  # refuse to extend a file that is not one
    with open(out) as fh:
        return fh.read()


def write_measurements(out: str, rows: list[dict], header: str, existing: str) -> None:
    """Write ``rows`` to ``out`` after its ``existing`` text, in one atomic replace."""
    from edgeprune.artifacts import write_bytes_atomic

    write_bytes_atomic(out, measurements_csv(rows, header, existing).encode())


def measurements_csv(rows: list[dict], header: str = "", existing: str = "") -> str:
    """CSV text of measurement ``rows`` (dicts with the :data:`COLUMNS`), after
    ``existing`` text of the same format when appending; ``header`` becomes ``#`` lines."""
    import io

    buf = io.StringIO()
    if existing:
        buf.write(existing if existing.endswith("\n") else existing + "\n")
    else:
        for line in header.splitlines():
            buf.write(f"# {line}\n" if line else "#\n")
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    if not existing:
        writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in COLUMNS})
    return buf.getvalue()


def _terms(cost: ModelCost, base: CostModel, params: tuple[str, ...], classes: list[str]
           ) -> tuple[np.ndarray, float]:
    """The fitted terms' features, and the cycles of the terms left at the base values."""
    feats: dict[str, float] = {}
    fixed = 0.0
    for op in cost.ops:
        rate = base.cycles_per_unit[op.op_class]
        scale = base.float_factor if op.dtype in FLOAT_DTYPES else 1.0
        act = op.input_bytes + op.output_bytes
        mac = op.op_class in MAC_CLASSES
        throughput = "mac" if mac else "elements"  # the one scale fitted over the class
        if mac and "classes" in params:
            feats[op.op_class] = feats.get(op.op_class, 0.0) + op.work * scale
        elif throughput in params:
            feats[throughput] = feats.get(throughput, 0.0) + op.work * rate * scale
        else:
            fixed += op.work * rate * scale
        if "activation" in params:
            feats["activation"] = feats.get("activation", 0.0) + act
        else:
            fixed += act * base.cycles_per_activation_byte
        fixed += op.weight_bytes * base.cycles_per_weight_byte
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
    best, best_err = np.zeros(x.shape[1]), float(np.sum(target ** 2))
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
        ratios = [values[c] / base.cycles_per_unit[c] for c in fitted_classes
                  if base.cycles_per_unit[c] > 0 and values[c] > 0]
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


def fit(rows: list[Measurement], base: CostModel, params: tuple[str, ...] = DEFAULT_FIT
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


def calibrate(rows: list[Measurement], base: CostModel | None = None,
              params: tuple[str, ...] = DEFAULT_FIT, set_name: str = "") -> Calibration:
    """Fit ``base`` (default: the cost model the rows name) to ``rows`` and
    measure the fit's leave-one-out error.

    Raises:
        CalibrationError: rows for several cost models, unknown parameters, or
            fewer rows than fitted parameters plus one.
    """
    unknown = [p for p in params if p not in PARAMS]
    if unknown or not params:
        raise CalibrationError(f"unknown fit parameter {', '.join(unknown) or '(none)'}; "
                               f"choose from {', '.join(PARAMS)}")
    if "mac" in params and "classes" in params:
        raise CalibrationError("fit either mac (one scale) or classes (one rate per class), "
                               "not both")
    ids = sorted({r.cost_model for r in rows})
    if base is None:
        if len(ids) > 1:
            raise CalibrationError(f"the rows calibrate several cost models ({', '.join(ids)}); "
                                   f"keep one per file")
        base = load_cost_model(ids[0])
    n_params = len(_names(rows, params))
    if len(rows) < n_params + 1:
        raise CalibrationError(f"{len(rows)} measurements cannot fit {n_params} parameters "
                               f"and leave one out; add measurements or fit fewer parameters")
    fitted = fit(rows, base, params)
    results = []
    for i, row in enumerate(rows):
        others = fit(rows[:i] + rows[i + 1:], base, params)
        results.append(RowResult(row, predict_ms(fitted, row), predict_ms(others, row)))
    errors = np.abs([r.loo_error for r in results])
    boards = sorted({r.board for r in rows})
    name = set_name or ", ".join(boards)
    accuracy = Accuracy(len(rows), float(np.median(errors)), float(errors.max()), name)
    source = (f"fitted: {', '.join(params)} to {len(rows)} measured latencies on "
              f"{', '.join(boards)} ({name})")
    model = replace(fitted, basis="fit", source=source, accuracy=accuracy)
    return Calibration(model, tuple(params), tuple(results), accuracy)


def cost_model_toml(model: CostModel, header: str = "") -> str:
    """The TOML text of ``model`` (what ``calibrate --out`` writes)."""
    def q(text: str) -> str:
        return json.dumps(text)  # a TOML basic string is a JSON string for these

    lines = [f"# {line}" for line in header.splitlines()]
    lines += [f"kernels = {q(model.kernels)}", f"core = {q(model.core)}",
              f"basis = {q(model.basis)}", f"source = {q(model.source)}"]
    if model.derivation:
        lines.append(f"derivation = {q(model.derivation)}")
    lines += [f"overhead_cycles = {model.overhead_cycles:.6g}",
              f"float_factor = {model.float_factor:.6g}",
              f"cycles_per_activation_byte = {model.cycles_per_activation_byte:.6g}",
              f"cycles_per_weight_byte = {model.cycles_per_weight_byte:.6g}",
              f"parallel_efficiency = {model.parallel_efficiency:.6g}", "",
              "[cycles_per_unit]"]
    lines += [f"{c} = {model.cycles_per_unit[c]:.6g}" for c in CLASSES]
    if model.accuracy is not None:
        a = model.accuracy
        lines += ["", "[accuracy]", f"n = {a.n}", f"median_abs_error = {a.median_abs_error:.6g}",
                  f"max_abs_error = {a.max_abs_error:.6g}", f"set = {q(a.set)}"]
    return "\n".join(lines) + "\n"


def calibrate_file(path: str, params: tuple[str, ...] = DEFAULT_FIT, base: str | None = None,
                   set_name: str = "", out: str | None = None) -> Calibration:
    """:func:`calibrate` on the measurements CSV at ``path`` (``base``: a cost model id
    or file). Side effect: with ``out``, the fitted model is written there as TOML,
    its id the file's name (for ``edgeprune check --cost-model``), and logged.

    Raises:
        CalibrationError: see :func:`load_measurements` and :func:`calibrate`.
        BadInputError: ``out``'s folder cannot take the file.
    """
    import logging

    from edgeprune.artifacts import check_out_dir, write_bytes_atomic

    if out is not None:
        check_out_dir(os.path.dirname(os.path.abspath(out)))
    result = calibrate(load_measurements(path), load_cost_model(base) if base else None, params,
                       set_name)
    if out is not None:
        model = replace(result.model, id=os.path.splitext(os.path.basename(out))[0])
        write_bytes_atomic(out, cost_model_toml(
            model, f"Written by `edgeprune calibrate {os.path.basename(path)}`.").encode())
        logging.getLogger(__name__).info("wrote %s", out)
    return result
