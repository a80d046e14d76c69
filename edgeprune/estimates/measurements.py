"""Measurements files: the measured latencies a cost model is fitted to, read and written.

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

Rows are written through one builder, :func:`measurement_row`.
"""

from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass

from edgeprune.errors import BadInputError
from edgeprune.estimates.opcost import ModelCost, model_cost

COLUMNS = ("model", "op", "ms", "clock_hz", "cost_model", "board", "source")
NOT_A_TIME = (
    "a zero or missing time is not a measurement (a cycle counter that does not run, "
    "or a run that timed nothing)"
)


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
    path: str = ""  # the model's full path (``model`` is relative to the CSV's folder)

    @property
    def cycles(self) -> float:
        return self.ms * 1e-3 * self.clock_hz

    @property
    def label(self) -> str:
        """The row's model by its full path (two folders' ``model.tflite`` stay apart)."""
        name = self.path or self.model
        return f"{name} op {self.op}" if self.op is not None else name

    @property
    def kind(self) -> str:
        """``"float"`` when the measured work runs float kernels (float32, float16 or
        dynamic-range weights on float activations), else ``"int"``: the MAC
        operators decide (quantize/dequantize at a float interface do not), or every
        operator when there is none."""
        from edgeprune.estimates.latency import FLOAT_DTYPES
        from edgeprune.estimates.opcost import MAC_CLASSES

        ops = [o for o in self.cost.ops if o.op_class in MAC_CLASSES] or list(self.cost.ops)
        return "float" if any(o.dtype in FLOAT_DTYPES for o in ops) else "int"


def _cost_of(path: str, where: str) -> ModelCost:
    if path.endswith(".json"):
        try:
            with open(path) as fh:
                return ModelCost.from_dict(json.load(fh))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CalibrationError(
                f"{where}: cannot read the op costs in {path} ({exc}); "
                f"write them with `edgeprune cost MODEL --json`"
            ) from None
    from edgeprune.errors import ModelLoadError

    try:
        return model_cost(path)
    except (OSError, ModelLoadError) as exc:  # missing, not a regular file, damaged
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
                raise CalibrationError(
                    f"{path}: missing column {', '.join(missing)}; the header "
                    f"must name {', '.join(COLUMNS)}"
                )
            rows = list(reader)
    except OSError as exc:
        raise CalibrationError(f"{path} cannot be read ({exc.strerror})") from None
    folder = os.path.dirname(os.path.abspath(path))
    costs: dict[str, ModelCost] = {}
    out = []
    for n, row in enumerate(rows, start=2):
        where = f"{path} row {n}"
        if not (row["ms"] or "").strip():
            raise CalibrationError(
                f"{where}: ms is missing; {NOT_A_TIME}: measure again or delete the row"
            )
        try:
            ms, clock = float(row["ms"]), int(row["clock_hz"])
        except (TypeError, ValueError):
            raise CalibrationError(
                f"{where}: ms = {row['ms']!r} and clock_hz = {row['clock_hz']!r} must be numbers"
            ) from None
        if not (math.isfinite(ms) and ms > 0):
            raise CalibrationError(
                f"{where}: ms = {row['ms'].strip()}; {NOT_A_TIME}: measure again or delete the row"
            )
        if clock <= 0:
            raise CalibrationError(f"{where}: clock_hz = {clock} must be positive")
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
                raise CalibrationError(
                    f"{where}: op = {row['op']!r} is not an operator index of {row['model']}"
                ) from None
        if not row["cost_model"].strip():
            raise CalibrationError(f"{where}: cost_model is empty")
        out.append(
            Measurement(
                n,
                row["model"],
                op,
                ms,
                clock,
                row["cost_model"].strip(),
                row["board"],
                row["source"],
                cost,
                model,
            )
        )
    if not out:
        raise CalibrationError(f"{path} has no measurements")
    return out


def measurement_row(
    model: str,
    ms: float,
    clock_hz: int,
    cost_model: str,
    board: str,
    source: str,
    folder: str | None = None,
    op: int | None = None,
) -> dict:
    """One row of a measurements file. ``model`` is written relative to ``folder``
    (the CSV's) when that is given, else as it is.

    Raises:
        CalibrationError: ``ms`` is zero, negative or not a number: no such row is
            ever written (``calibrate`` would refuse the file).
    """
    if not (isinstance(ms, int | float) and math.isfinite(ms) and ms > 0):
        raise CalibrationError(f"no measurement row for {model}: ms = {ms}; {NOT_A_TIME}")
    if folder is not None:
        model = os.path.relpath(os.path.abspath(model), folder)
    return {
        "model": model,
        "op": "" if op is None else str(op),
        "ms": f"{ms:.6g}",
        "clock_hz": int(clock_hz),
        "cost_model": cost_model,
        "board": board,
        "source": source,
    }


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
