"""What a sweep shows: ``sweep.json``, ``results.csv`` and the front as a table.

``sweep.json`` (schema ``edgeprune-sweep/1``) is the one file the HTML report
reads; both files are rewritten atomically after every trial, by whichever
worker finished it, from the study itself (so each write is the whole truth
at that moment, never a merge). Trials are given as plain dicts
(:func:`trial_rows`), so nothing here needs optuna.
"""

from __future__ import annotations

import csv
import io
import json
import os

from edgeprune import artifacts
from edgeprune._files import read_regular
from edgeprune.errors import BadInputError, clip
from edgeprune.sweep.front import pareto_front

SCHEMA = "edgeprune-sweep/1"
SWEEP_JSON = "sweep.json"
RESULTS_CSV = "results.csv"
MAX_SWEEP_BYTES = 64 << 20  # ~100,000 trials; sweep.json is read whole
_TRIAL_KEYS = ("number", "state", "params")

#: How each objective key is shown: label, unit.
LABELS = {
    "accuracy": ("accuracy", ""),
    "mse": ("MSE", ""),
    "latency_ms": ("latency (estimate)", "ms"),
    "flash_bytes": ("flash", "B"),
    "ram_bytes": ("RAM", "B"),
    "gzip_bytes": ("over-the-air (gzip)", "B"),
}
VALUE_KEYS = ("accuracy", "macro_f1", "mse", "mae", "latency_ms", "flash_bytes", "ram_bytes")
VALUE_KEYS += ("gzip_bytes",)


def objectives_of(keys: list[str]) -> list[dict]:
    """The ``objectives`` entries of ``sweep.json`` for objective ``keys`` (quality first)."""
    out = []
    for key in keys:
        label, unit = LABELS[key]
        direction = "maximize" if key == "accuracy" else "minimize"
        out.append({"key": key, "label": label, "unit": unit, "direction": direction})
    return out


def sweep_document(header: dict, trials: list[dict]) -> dict:
    """The ``sweep.json`` document: ``header`` (study, storage, identity, budgets,
    reference, export_command) and the ``trials``, with the front computed."""
    objectives = objectives_of(header["identity"]["objectives"])
    keys = [o["key"] for o in objectives]
    points = [
        {
            "number": t["number"],
            # a repeat of a measured point is that point, listed once
            "feasible": t["state"] == "COMPLETE"
            and t["feasible"]
            and t.get("duplicate_of") is None,
            "values": [(t["values"] or {}).get(k) for k in keys],
        }
        for t in trials
    ]
    front = pareto_front(points, [o["direction"] for o in objectives])
    first = objectives[0]
    return {
        "schema": SCHEMA,
        "study": header["study"],
        "storage": header["storage"],
        "identity": header["identity"],
        "metric": {"name": first["key"], "direction": first["direction"]},
        "objectives": objectives,
        "budgets": header.get("budgets") or {},
        "reference": header.get("reference"),
        "trials": trials,
        "front": front,
        "export_command": header["export_command"],
    }


def write_results(folder: str, document: dict) -> None:
    """Write ``sweep.json`` and ``results.csv`` into ``folder``, each atomically.

    Raises:
        ArtifactWriteError: a file could not be written.
    """
    artifacts.write_json_atomic(os.path.join(folder, SWEEP_JSON), document)
    artifacts.write_bytes_atomic(
        os.path.join(folder, RESULTS_CSV), results_csv(document["trials"]).encode()
    )


def read_sweep(path: str) -> dict:
    """Read and check a ``sweep.json`` (schema ``edgeprune-sweep/1``): the one reader,
    for the sweep's page and for ``sweep export``.

    Raises:
        BadInputError: missing, not JSON, another schema, or a key missing.
    """
    try:  # a regular file of bounded size: a FIFO or /dev/zero named sweep.json is refused
        body = json.loads(read_regular(path, MAX_SWEEP_BYTES))
    except FileNotFoundError:
        raise BadInputError(
            f"{path} does not exist; name a folder a sweep wrote, or run `edgeprune sweep`"
        ) from None
    except (OSError, ValueError) as exc:
        raise BadInputError(
            f"{path} is not readable JSON ({clip(exc, 120)}); re-run the sweep"
        ) from None
    schema = body.get("schema") if isinstance(body, dict) else None
    if schema is None:
        raise BadInputError(
            f"{path} is not an edgeprune sweep.json (it names no schema); name a sweep "
            f"folder or re-run the sweep"
        )
    if schema != SCHEMA:
        raise BadInputError(
            f"{path} has sweep schema {schema}; this edgeprune reads {SCHEMA}; re-run the sweep"
        )
    absent = [k for k in ("study", "objectives", "trials") if k not in body]
    absent += [
        f"trials[{i}].{k}"
        for i, t in enumerate(body.get("trials") or [])
        for k in _TRIAL_KEYS
        if not isinstance(t, dict) or k not in t
    ]
    if absent or not body["objectives"]:
        raise BadInputError(
            f"{path} is not a complete edgeprune sweep ({', '.join(absent[:3]) or 'no objectives'} "
            f"missing); re-run the sweep"
        )
    for trial in body["trials"]:  # a trial that did not complete may have null figures
        trial["values"] = trial.get("values") or {}
        trial["feasible"] = bool(trial.get("feasible"))
        trial["failed_rules"] = trial.get("failed_rules") or []
    return body


def results_csv(trials: list[dict]) -> str:
    """One row per trial: number, state, each parameter, each value, feasibility,
    failed rules, folder, seconds, fine-tuning seconds, error."""
    params = sorted({p for t in trials for p in t["params"]})
    header = ["number", "state", *params, *VALUE_KEYS, "feasible", "failed_rules", "folder"]
    header += ["seconds", "fine_tune_seconds", "error"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for t in trials:
        values = t["values"] or {}
        writer.writerow(
            [t["number"], t["state"]]
            + [_cell(t["params"].get(p)) for p in params]
            + [_cell(values.get(k)) for k in VALUE_KEYS]
            + [_cell(t["feasible"]), ";".join(t["failed_rules"]), t["folder"] or ""]
            + [_cell(t["seconds"]), _cell(t["fine_tune_seconds"]), t["error"] or ""]
        )
    return buf.getvalue()


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def reference_from_run(folder: str) -> dict:
    """The ``reference`` of ``sweep.json``: a run folder's final model as a point
    (e.g. ``run --structured fit`` at the same budget), drawn and listed beside
    the front.

    Raises:
        BadInputError: the folder holds no readable run report with a device check.
    """
    import json

    from edgeprune.errors import BadInputError

    try:
        with open(os.path.join(folder, "report.json"), encoding="utf-8") as fh:
            report = json.load(fh)
        stages = report["stages"]
        final = stages["evaluate"]["final"]
        rules = {r["name"]: r["figure"] for r in stages["check"]["rules"]}
        gzip_bytes = report["sizes"]["final"]["gzip_bytes"]
        goal = report["recipe"]["structured"]["goal"]
    except (OSError, ValueError, KeyError, TypeError):
        raise BadInputError(
            f"{folder} holds no run report with a device check to compare with; give "
            f"the folder of a run made with a target (run --target)"
        ) from None
    values = {k: final.get(k) for k in ("accuracy", "macro_f1", "mse", "mae") if k in final}
    for name, key in (("latency", "latency_ms"), ("flash", "flash_bytes"), ("ram", "ram_bytes")):
        values[key] = rules.get(name)
    values["gzip_bytes"] = gzip_bytes
    label = "run --structured fit" if goal == "fit" else f"run {os.path.basename(folder)}"
    return {"label": label, "values": values}


def format_value(key: str, v) -> str:
    """One figure as the tables show it."""
    if v is None:
        return "-"
    if key.endswith("_bytes"):
        return f"{int(v):,} B"
    if key == "latency_ms":
        return f"{v:.2f} ms" if v >= 1 else f"{v:.3g} ms"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def format_front(document: dict) -> str:
    """The front as a text table: one row per front trial (quality first, then
    each cost, the parameters and the export command), and a line counting the
    trials by outcome."""
    keys = [o["key"] for o in document["objectives"]]
    by_number = {t["number"]: t for t in document["trials"]}
    front = [by_number[n] for n in document["front"]]
    front.sort(key=lambda t: t["values"][keys[0]], reverse=keys[0] == "accuracy")
    params = sorted({p for t in front for p in t["params"]})
    rows = [["trial", *(_heading(o) for o in document["objectives"]), *params, "export"]]
    for t in front:
        rows.append(
            [str(t["number"])]
            + [format_value(k, t["values"].get(k)) for k in keys]
            + [_param(t["params"].get(p)) for p in params]
            + [document["export_command"].format(number=t["number"])]
        )
    from edgeprune.presentation.table import table

    lines = [f"Pareto front of {document['study']} ({len(front)} of {_counts(document)}):"]
    if front:
        lines += table(rows, right=set(range(1, 1 + len(keys))))
    else:
        lines.append("no feasible trial yet: every trial missed a budget or failed")
    ref = document.get("reference")
    if ref:
        shown = ", ".join(f"{k} {format_value(k, ref['values'].get(k))}" for k in keys)
        lines.append(f"reference ({ref['label']}): {shown}")
    return "\n".join(lines)


def _heading(objective: dict) -> str:
    word = "min" if objective["direction"] == "minimize" else "max"
    return f"{objective['label']} ({word})"


def _param(v) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, float) else str(v)


def _counts(document: dict) -> str:
    trials = document["trials"]
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    feasible = sum(1 for t in complete if t["feasible"])
    failed = sum(1 for t in trials if t["state"] == "FAIL")
    return f"{len(complete)} complete trials: {feasible} feasible, {failed} failed"
