"""``edgeprune sweep`` on the digits CNN against nano33ble with a 12 ms latency budget.

Run: python benchmarks/bench_sweep.py [--quick] [--json FILE] [--keep DIR]

Four figures, each against its target (issue 16); exit code 1 when one is missed:

1. a 40-trial sweep with ``--jobs 2`` (the default space), wall time from the
   command's start to its end, baseline training included: < 10 minutes;
2. ``run --structured fit`` at the same budget: the sweep's front holds a point
   at least as accurate (int8 test accuracy, the same figure both report);
3. two workers on one PostgreSQL study (two ``edgeprune sweep --storage``
   commands, as on two machines) against one worker, small trials (one
   fine-tuning epoch): trials per minute >= 1.7x. The rate is counted from the
   study's own timestamps, first trial started to last trial complete, so the
   baseline each command prepares before its first trial is not in it; one
   worker and two are run in turn three times, and the median of the three
   pairs' ratios is the figure (the machine's load drifts). Each worker stands
   for a machine: it is pinned to a core of its own (the first to CPU 0, the
   second to CPU 1) and TensorFlow is told to use one thread;
4. per-trial overhead (a trial's time less its fine-tuning, over its time,
   summed over the complete trials of the 40-trial sweep): < 30 %.

The PostgreSQL server is started the way the tests start it (tests/pg_server.py:
Debian's binaries on 127.0.0.1, as the postgres user when run as root).
``--quick`` runs 8 trials instead of 40 and one pair of legs of 6 small trials
(its figures are for checking the script, not for quoting).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import pg_server  # noqa: E402  (tests/ holds the helper the tests use too)

TARGET, LATENCY_MS = "nano33ble", 12.0
# 60 points (15 widths x 2 rankings x 2 Dense choices), so that TPE seldom proposes
# a point again (a repeated point completes at once, without a run).
SMALL_TRIALS = """
[sweep]
width = [0.3, 1.0]
importance = "l1"
ranking = ["global", "uniform"]
dense = ["per_channel", "per_tensor"]
epochs = 1
"""
LIMITS = {"sweep_minutes": 10.0, "speedup": 1.7, "overhead": 0.30}
# A PostgreSQL worker stands for a machine: one core each (pinned), TensorFlow told so.
ONE_THREAD = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def edgeprune(*args: str) -> list[str]:
    return [sys.executable, "-m", "edgeprune", *args]


def timed(command: list[str], log: str) -> float:
    """Run ``command`` (output to ``log``); its wall seconds. Raises on failure."""
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        done = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - t0
    if done.returncode:
        with open(log) as fh:
            tail = fh.read()[-2000:]
        raise SystemExit(f"{' '.join(command[2:])} failed ({done.returncode}):\n{tail}")
    return seconds


def read_json(path: str) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def overhead(trials: list[dict]) -> float | None:
    """A trial's time less its fine-tuning, over its time, summed over ``trials``."""
    total = sum(t["seconds"] for t in trials)
    return 1.0 - sum(t["fine_tune_seconds"] or 0.0 for t in trials) / total if total else None


def stage_seconds(folder: str, trials: list[dict]) -> dict:
    """Median seconds per part of a trial, from each trial's report.json."""
    parts: dict[str, list[float]] = {}
    for t in trials:
        stages = read_json(os.path.join(folder, t["folder"], "report.json"))["stages"]
        seen = {
            k: v["seconds"] for k, v in stages.items() if isinstance(v, dict) and v.get("seconds")
        }
        seen["prune less fine-tuning"] = seen.pop("prune", 0.0) - (t["fine_tune_seconds"] or 0.0)
        seen["fine-tuning"] = t["fine_tune_seconds"] or 0.0
        seen["other (evaluate, check, firmware, bookkeeping)"] = t["seconds"] - sum(seen.values())
        seen["trial"] = t["seconds"]
        for k, v in seen.items():
            parts.setdefault(k, []).append(v)
    return {k: statistics.median(v) for k, v in parts.items()}


def sweep_figures(folder: str, jobs: int) -> dict:
    doc = read_json(os.path.join(folder, "sweep.json"))
    complete = [t for t in doc["trials"] if t["state"] == "COMPLETE"]
    front = [t for t in complete if t["number"] in doc["front"]]
    best = max(front, key=lambda t: t["values"]["accuracy"]) if front else None
    # Trials 0..jobs-1 are each worker's first: they carry the process's start-up
    # (TensorFlow and tfmot imports, first graph builds), once per worker.
    steady = [t for t in complete if t["number"] >= jobs]
    return {
        "complete": len(complete),
        "feasible": sum(bool(t["feasible"]) for t in complete),
        "failed": sum(t["state"] == "FAIL" for t in doc["trials"]),
        "front": [
            {"number": t["number"], "params": t["params"], **t["values"]}
            for t in sorted(front, key=lambda t: t["values"]["latency_ms"])
        ],
        "best": best and {"number": best["number"], **best["values"]},
        "overhead": overhead(complete),
        "overhead_steady": overhead(steady),
        "median_seconds_steady": stage_seconds(folder, steady),
    }


def fit_figures(folder: str) -> dict:
    stages = read_json(os.path.join(folder, "report.json"))["stages"]
    latency = next(r for r in stages["check"]["rules"] if r["name"] == "latency")
    return {
        "accuracy": stages["evaluate"]["final"]["accuracy"],
        "latency_ms": latency["figure"],
        "fits": stages["check"]["ok"],
    }


def rate_per_minute(url: str, study: str) -> tuple[float, int, float]:
    """(trials run per minute, trials run, window seconds) from the study: complete
    trials that ran, not the points TPE proposed again (they complete at once
    without a run, and would flatter whichever leg drew more of them)."""
    import optuna

    from edgeprune.sweep.storage import open_storage

    trials = optuna.load_study(study_name=study, storage=open_storage(url, ".")).trials
    done = [t for t in trials if t.state.name == "COMPLETE" and "duplicate_of" not in t.user_attrs]
    window = (
        max(t.datetime_complete for t in done)
        - min(t.datetime_start for t in trials if t.datetime_start)
    ).total_seconds()
    return 60.0 * len(done) / window, len(done), window


def postgres_leg(work: str, url: str, name: str, workers: int, trials: int, recipe: str):
    """``workers`` sweep commands (own sweep folders, as on separate machines) on one
    fresh study; its rate from the study's timestamps."""
    common = ["--recipe", recipe, "--target", TARGET, "--max-latency-ms", str(LATENCY_MS)]
    common += ["--storage", url, "--study", "bench", "--trials", str(trials)]
    t0 = time.perf_counter()
    procs = []
    for k in range(workers):
        with open(os.path.join(work, f"{name}_{k}.log"), "w") as log:
            out = os.path.join(work, f"{name}_{k}")
            command = edgeprune("sweep", *common, "--out", out)
            procs.append(
                subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=ONE_THREAD,
                    preexec_fn=lambda k=k: os.sched_setaffinity(0, {k % os.cpu_count()}),
                )
            )
    codes = [p.wait() for p in procs]
    if any(codes):
        raise SystemExit(f"PostgreSQL leg {name} failed with exit codes {codes} (see its logs)")
    per_minute, done, window = rate_per_minute(url, "bench")
    wall = time.perf_counter() - t0
    return {"trials_per_minute": per_minute, "complete": done, "window_seconds": window,
            "wall_seconds": wall}  # fmt: skip


def postgres_legs(work: str, trials: int, rounds: int) -> dict:
    """One worker, then two, ``rounds`` times in turn (a shared machine's load drifts:
    each pair is measured close together); the ratio of each pair, and the median."""
    recipe = os.path.join(work, "small.toml")
    with open(recipe, "w") as fh:
        fh.write(SMALL_TRIALS)
    server = pg_server.PostgresServer()
    try:
        pairs = []
        for r in range(rounds):
            pair = {}
            for workers in (1, 2):
                name = f"pg{workers}w_round{r}"
                url = server.fresh_database(name.lower())
                pair[workers] = postgres_leg(work, url, name, workers, trials, recipe)
            pair["speedup"] = pair[2]["trials_per_minute"] / pair[1]["trials_per_minute"]
            pairs.append(pair)
    finally:
        server.stop()
    return {"pairs": pairs, "speedup": statistics.median(p["speedup"] for p in pairs)}


def table(rows: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="8 trials, 6 small ones per leg")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--keep", help="work in this folder (kept) instead of a temporary one")
    args = parser.parse_args(argv)
    why = pg_server.why_unavailable()
    if why:
        raise SystemExit(f"bench_sweep needs PostgreSQL: {why}")
    # 16 small trials a leg: the idle tail of the two-worker leg (one worker waits
    # while the other runs the last trial) is a smaller share than with 10.
    trials, small, rounds = (8, 6, 1) if args.quick else (40, 16, 3)
    work = args.keep or tempfile.mkdtemp(prefix="bench_sweep.")
    os.makedirs(work, exist_ok=True)
    budget = ("--target", TARGET, "--max-latency-ms", str(LATENCY_MS))

    sweep_dir = os.path.join(work, "sweep")
    sweep_seconds = timed(
        edgeprune("sweep", *budget, "--trials", str(trials), "--jobs", "2", "--out", sweep_dir),
        os.path.join(work, "sweep.log"),
    )
    swept = sweep_figures(sweep_dir, 2)
    fit_dir = os.path.join(work, "fit")
    fit_seconds = timed(
        edgeprune("run", *budget, "--structured", "fit", "--out", fit_dir),
        os.path.join(work, "fit.log"),
    )
    fit = fit_figures(fit_dir)
    legs = postgres_legs(work, small, rounds)
    speedup = legs["speedup"]
    one = statistics.median(p[1]["trials_per_minute"] for p in legs["pairs"])
    two = statistics.median(p[2]["trials_per_minute"] for p in legs["pairs"])

    best = swept["best"] or {"accuracy": float("nan"), "latency_ms": float("nan"), "number": "-"}
    checks = {
        "sweep_minutes": sweep_seconds / 60 < LIMITS["sweep_minutes"],
        "front_vs_fit": best["accuracy"] >= fit["accuracy"],
        "speedup": speedup >= LIMITS["speedup"],
        "overhead": swept["overhead"] is not None and swept["overhead"] < LIMITS["overhead"],
    }
    verdict = {True: "pass", False: "MISSED"}
    print(f"\nsweep: {trials} trials, --jobs 2, {TARGET}, latency budget {LATENCY_MS:g} ms")
    print(
        table(
            [
                ("figure", "measured", "target", "result"),
                (
                    f"{trials}-trial sweep, --jobs 2 (wall)",
                    f"{sweep_seconds / 60:.1f} min",
                    f"< {LIMITS['sweep_minutes']:g} min",
                    verdict[checks["sweep_minutes"]],
                ),
                (
                    "most accurate front point vs run --structured fit",
                    f"{best['accuracy']:.4f} vs {fit['accuracy']:.4f}",
                    ">=",
                    verdict[checks["front_vs_fit"]],
                ),
                (
                    "PostgreSQL: 2 workers vs 1, trials/min",
                    f"{two:.2f} vs {one:.2f} (median of {rounds} pairs: {speedup:.2f}x)",
                    f">= {LIMITS['speedup']:g}x",
                    verdict[checks["speedup"]],
                ),
                (
                    "per-trial overhead (all but fine-tuning)",
                    f"{100 * (swept['overhead'] or 0):.0f} %",
                    f"< {100 * LIMITS['overhead']:.0f} %",
                    verdict[checks["overhead"]],
                ),
            ]
        )
    )
    parts = ", ".join(f"{k} {v:.2f} s" for k, v in swept["median_seconds_steady"].items())
    print(
        f"\nper-trial overhead without each worker's first trial (its process start-up): "
        f"{100 * (swept['overhead_steady'] or 0):.0f} %; median seconds per part: {parts}"
    )
    print(
        f"\nfront ({swept['complete']} complete, {swept['feasible']} fit, "
        f"{swept['failed']} failed):"
    )
    front_rows = [("trial", "accuracy", "latency (estimate)", "params")]
    for t in swept["front"]:
        params = ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t["params"].items()
        )
        front_rows.append(
            (str(t["number"]), f"{t['accuracy']:.4f}", f"{t['latency_ms']:.2f} ms", params)
        )
    front_rows.append(
        (
            "fit",
            f"{fit['accuracy']:.4f}",
            f"{fit['latency_ms']:.2f} ms",
            f"run --structured fit ({fit_seconds:.0f} s)",
        )
    )
    print(table(front_rows))
    figures = {
        "quick": args.quick,
        "cpus": os.cpu_count(),
        "sweep": {"trials": trials, "wall_seconds": sweep_seconds, **swept},
        "fit": {"wall_seconds": fit_seconds, **fit},
        "postgres": {"trials": small, **legs},
        "checks": checks,
    }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)
    print(f"\nwork folder: {work}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
