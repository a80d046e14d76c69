"""Re-run issue 14's fault campaign against the real CLI and count what falls short.

Areas: (a) hostile and unusual models, (b) bad recipes, (c) bad device
profiles, (d) bad data sets, (e) run-folder faults, (f) special files given
to inspect, cost and check, then (g) the ``.tflite`` mutants and the device
faults of ``campaign_tflite.py`` and ``campaign_devices.py`` when those
modules are present. Every case is ``edgeprune ...`` in a subprocess with a
deadline and a 6 GiB address-space cap, in a fresh work folder, classified
by ``campaign_cli.classify``: ``ok`` or one of traceback, internal, hang,
code-executed, invalid-passed, wrong-exit, unnamed, half-written, memory.

Prints one row per case (area, case, exit, outcome, first line of the
message) and a count per outcome; ``--json PATH`` writes the rows. Exit 0
only if every case is ``ok``. ``--quick`` leaves out the cases that train
and thins the recipes and profiles (about 180 cases in 5 minutes); the full
(a)-(f) is about 580 cases in 12 minutes on two cores, before (g).

    python benchmarks/campaign.py [--quick] [--json out.json] [--only recipe ...]
"""

from __future__ import annotations

import collections
import importlib
import json
import os
import shutil
import sys
import tempfile
import time

import click

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from campaign_cli import ACCEPTABLE, OUTCOMES, run_case  # noqa: E402

AREAS = ("model", "recipe", "profile", "data", "run-folder", "files", "tflite", "device")


def _log(message: str) -> None:
    click.echo(f"campaign: {message}", err=True)


def _cases(rows: list, cases, workdir: str, label: str) -> None:
    t0 = time.monotonic()
    for case in cases:
        rows.append(run_case(case, workdir))
    _log(f"{label}: {len(cases)} cases in {time.monotonic() - t0:.0f} s")


def _external(module: str, function: str, workdir: str, **kwargs) -> list[dict] | None:
    """Rows from another helper's campaign module, or None when it is not present."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return None
    area = "tflite" if "tflite" in module else "device"
    return [normalize(row, area) for row in getattr(mod, function)(workdir, **kwargs)]


# Flags another campaign module may set on a row in place of an outcome, in our order.
FLAG_OUTCOMES = (
    ("traceback", "traceback"),
    ("internal", "internal"),
    ("hung", "hang"),
    ("signalled", "internal"),
    ("code_executed", "code-executed"),
    ("invalid_passed", "invalid-passed"),
    ("valid_refused", "stricter"),
    ("half_written", "half-written"),
)


def normalize(row: dict, area: str) -> dict:
    """A row of another campaign module in this table's terms: ``case``, ``exit``,
    ``outcome`` (``ok`` when its own outcome is the ``expected`` one, or no failure
    flag is set) and ``message``; its own keys are kept."""
    out = {"area": area, **row}
    out.setdefault("case", row.get("name", "?"))
    runs = [row[c] for c in ("check", "cost", "inspect") if isinstance(row.get(c), dict)]
    if "exit" not in row:
        out["exit"] = runs[0].get("exit") if runs else None
    if "message" not in row:
        stderr = str(runs[0].get("stderr", runs[0].get("message", ""))) if runs else ""
        out["message"] = (stderr.strip().splitlines() or [""])[-1]
    own = row.get("outcome")
    if own is None:
        out["outcome"] = next((o for flag, o in FLAG_OUTCOMES if row.get(flag)), "ok")
    elif "expected" in row:
        if own == row["expected"]:
            out["outcome"] = "ok"
        elif own not in OUTCOMES:
            out["outcome"] = "wrong-exit"
            out["message"] = f"{own}, expected {row['expected']}: {out['message']}"
    return out


def run_campaign(workdir: str, areas=AREAS, quick: bool = False, tflite_count: int = 500):
    """Every case of ``areas``; returns the rows (dicts with case, exit, outcome, message)."""
    import campaign_inputs as inputs
    import campaign_models as models
    import campaign_runs as runs

    rows: list[dict] = []
    good_tflite = None
    if "model" in areas or "files" in areas:
        cases = models.model_cases(workdir, _log, quick)
        good = os.path.join(workdir, "models", "good_int8.tflite")
        good_tflite = good if os.path.exists(good) else None
        if "model" in areas:
            _cases(rows, cases, workdir, "(a) models")
    if "recipe" in areas:
        cases = inputs.recipe_cases(workdir)
        _cases(rows, cases[::5] if quick else cases, workdir, "(b) recipes")
    if "profile" in areas:
        cases = inputs.profile_cases(workdir)
        _cases(rows, cases[::3] if quick else cases, workdir, "(c) profiles")
    if "data" in areas:
        cases = inputs.data_cases(workdir)
        _cases(rows, [c for c in cases if not quick or c.timeout_s <= 60], workdir, "(d) data")
    if "run-folder" in areas:
        t0 = time.monotonic()
        rows += runs.permission_cases(workdir)
        if not quick:
            rows += runs.kill_and_rerun(workdir, _log)
            rows += runs.concurrent_runs(workdir)
        _log(f"(e) run folders in {time.monotonic() - t0:.0f} s")
    if "files" in areas:
        t0 = time.monotonic()
        rows += runs.special_file_cases(workdir, good_tflite, quick)
        _log(f"(f) special files in {time.monotonic() - t0:.0f} s")
    for area, module, function, kwargs in (
        ("tflite", "campaign_tflite", "run_tflite_campaign", {"count": tflite_count}),
        ("device", "campaign_devices", "run_device_campaign", {}),
    ):
        if area not in areas:
            continue
        folder = os.path.join(workdir, area)
        os.makedirs(folder, exist_ok=True)
        t0 = time.monotonic()
        found = _external(module, function, folder, **kwargs)
        if found is None:
            _log(f"(g) {module}.py: not present")
            continue
        rows += found
        _log(f"(g) {module}: {len(found)} cases in {time.monotonic() - t0:.0f} s")
    return rows


def format_rows(rows: list[dict]) -> str:
    """The table: area, case, exit, outcome, first line of the message."""
    width = min(48, max((len(str(r["case"])) for r in rows), default=4))
    lines = [f"{'area':10} {'case':{width}} {'exit':>4}  {'outcome':14} message"]
    for r in rows:
        message = str(r.get("message", "")).removeprefix("edgeprune: error: ")
        lines.append(
            f"{r.get('area', ''):10} {str(r['case'])[:width]:{width}} {str(r['exit']):>4}  "
            f"{r['outcome']:14} {message[:120]}"
        )
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """Counts per outcome, every class named even at 0, then per area."""
    counts = collections.Counter(r["outcome"] for r in rows)
    parts = [f"{o} {counts.get(o, 0)}" for o in OUTCOMES]
    parts += [f"{o} {n}" for o, n in counts.items() if o not in OUTCOMES]
    by_area = collections.defaultdict(collections.Counter)
    for r in rows:
        by_area[r.get("area", "")][r["outcome"] in ACCEPTABLE] += 1
    areas = ", ".join(f"{a} {c[True]}/{c[True] + c[False]} acceptable" for a, c in by_area.items())
    return f"{len(rows)} cases: " + ", ".join(parts) + f"\nper area: {areas}"


@click.command()
@click.option("--quick", is_flag=True, help="Leave out the cases that train (a few minutes).")
@click.option("--json", "json_path", default=None, help="Also write the rows as JSON here.")
@click.option(
    "--only", multiple=True, type=click.Choice(AREAS), help="Run only these areas (repeatable)."
)
@click.option("--tflite-count", default=500, show_default=True, help="Mutants for (g).")
@click.option("--keep", is_flag=True, help="Keep the work folder (its path is printed).")
def main(quick, json_path, only, tflite_count, keep):
    """Run the fault campaign; exit 1 if any case is not ok."""
    workdir = tempfile.mkdtemp(prefix="edgeprune-campaign-")
    _log(f"work folder {workdir}")
    t0 = time.monotonic()
    try:
        rows = run_campaign(workdir, only or AREAS, quick, 50 if quick else tflite_count)
    finally:
        if not keep:
            for root, dirs, _ in os.walk(workdir):
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o755)
            shutil.rmtree(workdir, ignore_errors=True)
    click.echo(format_rows(rows))
    click.echo(summary(rows))
    click.echo(f"{time.monotonic() - t0:.0f} s")
    if json_path:
        with open(json_path, "w") as fh:
            json.dump(rows, fh, indent=1, default=str)
    sys.exit(0 if rows and all(r["outcome"] in ACCEPTABLE for r in rows) else 1)


if __name__ == "__main__":
    main()
