"""Time edgeprune's built-in default run against a plain tfmot + converter script.

Each side runs ``--repeat`` times, in alternating order (plain, edgeprune,
edgeprune, plain, ...) so that neither always runs on a warmer machine, and
every run is a fresh subprocess with a fresh empty output folder: both pay
the TensorFlow import, and edgeprune trains its baseline (no cache reuse).

* plain: ``python benchmarks/plain_tfmot.py --out DIR``; stage times from
  the JSON line it prints last.
* edgeprune: ``python -m edgeprune -q run --out DIR``; stage times from
  ``DIR/report.json``.

Wall time is measured from outside with ``time.perf_counter`` around the
whole subprocess; peak RSS is the child's own ``ru_maxrss`` from
``os.wait4``. What this does not show: the cost of a warm baseline cache
(edgeprune reuses a trained baseline in an existing run folder; here it
never can), or of larger models, where training dominates even more.

Exit code 0, whatever the ratio; 1 if a subprocess fails (its stderr tail
is shown).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass

import click

log = logging.getLogger("bench")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PLAIN_SCRIPT = os.path.join(HERE, "plain_tfmot.py")
SIDES = ("plain", "edgeprune")
TARGET_RATIO = 1.15
# Stage rows shared by both sides. "rest" is in-process time outside the three
# named stages (TensorFlow import, data, model build, evaluation, report);
# "outside" is wall time outside the timed code (interpreter start, CLI, exit).
STAGES = ("baseline", "prune", "quantize", "rest", "outside")
STAGE_LABELS = {
    "baseline": "baseline (train, save, convert)",
    "prune": "prune (fine-tune, strip, check, save, convert)",
    "quantize": "quantize (int8 convert)",
    "rest": "rest in process (TF import, data, evaluate, report)",
    "outside": "outside (interpreter start, CLI, exit)",
}
STDERR_TAIL_LINES = 30


class BenchError(RuntimeError):
    """A benchmarked subprocess failed; the message carries its stderr tail."""


@dataclass(frozen=True)
class RunSample:
    """One run of one side."""

    side: str
    order: int  # position in the whole sequence, from 1
    wall_seconds: float
    in_process_seconds: float  # what the run itself timed
    peak_rss_mb: float
    final_accuracy: float  # int8 model on the test set
    stage_seconds: dict  # STAGES -> seconds


@dataclass(frozen=True)
class ChildRun:
    wall_seconds: float
    peak_rss_mb: float
    stdout: str


def run_order(repeat: int) -> list[str]:
    """plain, edgeprune, edgeprune, plain, plain, edgeprune, ... (``repeat`` of each)."""
    order = []
    for i in range(repeat):
        order.extend(SIDES if i % 2 == 0 else SIDES[::-1])
    return order


def run_child(argv: list[str], side: str, work: str) -> ChildRun:
    """Run ``argv`` to completion; wall time and the child's own peak RSS.

    stdout and stderr go to files in ``work`` (no pipes to drain, so nothing
    in this process competes with the child while it runs).

    Raises:
        BenchError: the child exited non-zero or was killed.
    """
    import subprocess

    out_path, err_path = os.path.join(work, "stdout.txt"), os.path.join(work, "stderr.txt")
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = code = os.waitstatus_to_exitcode(status)  # Popen must not wait again
    with open(out_path, encoding="utf-8", errors="replace") as fh:
        stdout = fh.read()
    if code != 0:
        with open(err_path, encoding="utf-8", errors="replace") as fh:
            tail = fh.read().splitlines()[-STDERR_TAIL_LINES:]
        raise BenchError(
            f"{side} run failed with exit code {code}: {' '.join(argv)}\n" + "\n".join(tail)
        )
    # ru_maxrss is in KiB on Linux.
    return ChildRun(wall, usage.ru_maxrss / 1024, stdout)


def run_plain(python: str, work: str, order: int) -> RunSample:
    out = os.path.join(work, "out")
    os.mkdir(out)
    child = run_child([python, PLAIN_SCRIPT, "--out", out], "plain", work)
    try:
        figures = json.loads(child.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(
            f"plain run printed no JSON line; its stdout ends with:\n{child.stdout[-2000:]}"
        ) from None
    s = figures["seconds"]
    total = figures["total_seconds"]
    named = s["baseline"] + s["prune"] + s["quantize"]
    stages = {
        "baseline": s["baseline"],
        "prune": s["prune"],
        "quantize": s["quantize"],
        "rest": total - named,
        "outside": child.wall_seconds - total,
    }
    return RunSample(
        "plain",
        order,
        child.wall_seconds,
        total,
        child.peak_rss_mb,
        figures["final_accuracy"],
        stages,
    )


def run_edgeprune(python: str, work: str, order: int) -> RunSample:
    out = os.path.join(work, "out")
    os.mkdir(out)
    child = run_child([python, "-m", "edgeprune", "-q", "run", "--out", out], "edgeprune", work)
    try:
        with open(os.path.join(out, "report.json"), encoding="utf-8") as fh:
            report = json.load(fh)
        st = report["stages"]
        named = {k: st[k]["seconds"] for k in ("baseline", "prune", "quantize")}
        total = report["seconds"]
        accuracy = st["evaluate"]["final"]["accuracy"]
    except (OSError, KeyError, json.JSONDecodeError) as exc:
        raise BenchError(f"edgeprune run left no usable report.json in {out}: {exc!r}") from None
    stages = {**named, "rest": total - sum(named.values()), "outside": child.wall_seconds - total}
    return RunSample(
        "edgeprune", order, child.wall_seconds, total, child.peak_rss_mb, accuracy, stages
    )


RUNNERS = {"plain": run_plain, "edgeprune": run_edgeprune}


def warm_up(python: str) -> None:
    """Import the heavy libraries once, unmeasured, so the first measured run
    does not pay for a cold page cache that later runs skip."""
    import subprocess

    subprocess.run(
        [
            python,
            "-c",
            "import tensorflow, tf_keras, "
            "tensorflow_model_optimization, ai_edge_litert.interpreter, sklearn",
        ],
        cwd=REPO,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )


def benchmark(repeat: int, python: str = sys.executable, warmup: bool = True) -> list[RunSample]:
    """Run both sides ``repeat`` times each in alternating order.

    Side effects: starts subprocesses; writes only under temporary folders,
    removed afterwards. Raises :class:`BenchError` when a run fails.
    """
    if warmup:
        log.info("warm-up: importing TensorFlow once (not measured)")
        warm_up(python)
    samples = []
    order = run_order(repeat)
    for i, side in enumerate(order, 1):
        with tempfile.TemporaryDirectory(prefix=f"edgeprune-bench-{side}-") as work:
            sample = RUNNERS[side](python, work, i)
        log.info(
            "run %d/%d %-9s  wall %6.2f s  peak RSS %5.0f MiB  int8 accuracy %.4f",
            i,
            len(order),
            side,
            sample.wall_seconds,
            sample.peak_rss_mb,
            sample.final_accuracy,
        )
        samples.append(sample)
    return samples


HELP_TARGET_SECONDS = 0.5


def time_help(python: str, runs: int = 7) -> dict:
    """Median wall time of ``edgeprune --help`` (the console script beside ``python``)."""
    import subprocess
    import time

    script = os.path.join(os.path.dirname(python), "edgeprune")
    argv = [script, "--help"] if os.path.exists(script) else [python, "-m", "edgeprune", "--help"]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    return {
        "command": " ".join(os.path.basename(a) for a in argv),
        "runs": runs,
        "median_seconds": median,
        "max_seconds": max(times),
        "target_seconds": HELP_TARGET_SECONDS,
        "within_target": median <= HELP_TARGET_SECONDS,
    }


def summarize(samples: list[RunSample]) -> dict:
    """Medians per side, the wall-time ratio edgeprune/plain and the verdict."""
    median = {}
    for side in SIDES:
        mine = [s for s in samples if s.side == side]
        median[side] = {
            "runs": len(mine),
            "wall_seconds": statistics.median(s.wall_seconds for s in mine),
            "wall_seconds_each": [round(s.wall_seconds, 3) for s in mine],
            "in_process_seconds": statistics.median(s.in_process_seconds for s in mine),
            "peak_rss_mb": statistics.median(s.peak_rss_mb for s in mine),
            "peak_rss_mb_max": max(s.peak_rss_mb for s in mine),
            "final_accuracy": statistics.median(s.final_accuracy for s in mine),
            "stage_seconds": {
                k: statistics.median(s.stage_seconds[k] for s in mine) for k in STAGES
            },
        }
    ratio = median["edgeprune"]["wall_seconds"] / median["plain"]["wall_seconds"]
    return {
        "median": median,
        "wall_ratio": ratio,
        "target_ratio": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
    }


def format_table(summary: dict) -> str:
    p, e = summary["median"]["plain"], summary["median"]["edgeprune"]
    rows = [(STAGE_LABELS[k], p["stage_seconds"][k], e["stage_seconds"][k]) for k in STAGES]
    rows += [
        ("in-process total", p["in_process_seconds"], e["in_process_seconds"]),
        ("wall time", p["wall_seconds"], e["wall_seconds"]),
    ]
    width = max(len(r[0]) for r in rows) + 2
    lines = [
        f"built-in default run (digits_cnn), median of {p['runs']} run(s) per side",
        "",
        f"{'seconds':<{width}}{'plain':>9}{'edgeprune':>11}{'diff':>9}{'ratio':>8}",
        "-" * (width + 37),
    ]
    for label, a, b in rows:
        ratio = f"{b / a:.2f}x" if a > 0.05 else ""
        if label == "wall time":
            lines.append("-" * (width + 37))
        lines.append(f"{label:<{width}}{a:>9.2f}{b:>11.2f}{b - a:>+9.2f}{ratio:>8}")
    lines += [
        f"{'peak RSS (MiB)':<{width}}{p['peak_rss_mb']:>9.0f}{e['peak_rss_mb']:>11.0f}"
        f"{e['peak_rss_mb'] - p['peak_rss_mb']:>+9.0f}",
        f"{'int8 test accuracy':<{width}}{p['final_accuracy']:>9.4f}{e['final_accuracy']:>11.4f}",
        "",
        "wall per run (s): plain "
        + ", ".join(f"{w:.2f}" for w in p["wall_seconds_each"])
        + "; edgeprune "
        + ", ".join(f"{w:.2f}" for w in e["wall_seconds_each"]),
        f"edgeprune / plain wall time: {summary['wall_ratio']:.3f}x (target <= "
        f"{summary['target_ratio']:.2f}x: {'met' if summary['within_target'] else 'MISSED'})",
    ]
    return "\n".join(lines)


def machine() -> dict:
    from importlib import metadata

    libs = {}
    for name in (
        "tensorflow",
        "tf-keras",
        "tensorflow-model-optimization",
        "ai-edge-litert",
        "edgeprune",
    ):
        try:
            libs[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            libs[name] = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "libraries": libs,
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--repeat", default=3, show_default=True, type=click.IntRange(min=1), help="Runs per side."
)
@click.option("--quick", is_flag=True, help="Smoke run: one run per side (--repeat 1).")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also write every run and the medians to this JSON file.",
)
@click.option(
    "--python",
    default=sys.executable,
    show_default=True,
    help="Interpreter that runs both sides (needs edgeprune installed).",
)
@click.option("--no-warmup", is_flag=True, help="Skip the unmeasured TensorFlow import.")
def main(repeat: int, quick: bool, json_path: str | None, python: str, no_warmup: bool) -> None:
    """Time edgeprune's default run against a plain tfmot + converter script."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("bench: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    if quick:
        repeat = 1
    try:
        samples = benchmark(repeat, python, warmup=not no_warmup)
    except BenchError as exc:
        click.echo(f"bench: error: {exc}", err=True)
        sys.exit(1)
    summary = summarize(samples)
    summary["help"] = time_help(python)
    click.echo(format_table(summary))
    h = summary["help"]
    click.echo(
        f"{h['command']}: median {h['median_seconds']:.3f} s of {h['runs']} runs (max "
        f"{h['max_seconds']:.3f} s; target <= {h['target_seconds']} s: "
        f"{'met' if h['within_target'] else 'MISSED'})"
    )
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "repeat": repeat,
                    "order": run_order(repeat),
                    "machine": machine(),
                    **summary,
                    "runs": [asdict(s) for s in samples],
                },
                fh,
                indent=2,
            )
            fh.write("\n")
        click.echo(f"json: {json_path}")


if __name__ == "__main__":
    main()
