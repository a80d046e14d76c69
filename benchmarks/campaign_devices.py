"""Device-fault campaign: every serial and ssh fault of issue 14, through `edgeprune validate`.

    python benchmarks/campaign_devices.py [--workdir DIR] [--timeout S]

builds one run folder (the digits CNN, int8; reused when DIR already holds
one), then runs ``edgeprune validate`` as a subprocess, with a hard timeout,
against:

* the scripted faulty serial board (:mod:`edgeprune.runners.faulty`, served
  from a thread of this process on a pseudo-terminal), every fault kind at a
  few sample positions;
* the emulated board (TFLite Micro behind a pseudo-terminal,
  ``python -m edgeprune.tflm.board --fault``): a clean run and disconnects;
* the ssh stand-in (``ssh``/``scp`` on PATH that run here): every fault of the
  scripted board's runner, and a clean run of the real ``board_script.py``.

Each case is tallied: ``traceback``, ``internal`` (exit 70), ``hang`` (the
timeout), ``partial`` (exit 5, report.json valid JSON with the runner's entry
marked partial and as many samples as the board completed), ``pass`` (exit 0)
or ``other``. A fault case must end ``partial``, a clean one ``pass``; the
script exits 1 otherwise. :func:`run_device_campaign` is the same as a function
for ``benchmarks/campaign.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import click

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SAMPLES = 8
POSITIONS = (0, 3, 7)  # samples completed before the fault: first, middle, last


def build_run(workdir: str) -> str:
    """A finished run folder in ``workdir/run`` (a quick recipe), reused when present."""
    run = os.path.join(workdir, "run")
    if not os.path.isfile(os.path.join(run, "report.json")):
        subprocess.run(
            [sys.executable, "-m", "edgeprune", "-q", "run", "--out", run]
            + ["--train-epochs", "3", "--epochs", "2", "--calibration-samples", "50"],
            check=True,
            cwd=REPO,
        )
    return run


def _cases() -> list[tuple[str, str, str, int | None]]:
    """(runner, board, fault, completed expected; None for a clean run that must pass)."""
    from edgeprune.runners.faulty import SERIAL, SSH

    cases = []
    for kind in SERIAL:
        at = (0,) if kind.startswith("identity-") else POSITIONS
        cases += [("serial", "scripted", f"{kind}@{n}", n) for n in at]
    cases += [("serial", "emulated", "", None)]
    cases += [("serial", "emulated", f"disconnect@{n}", n) for n in POSITIONS]
    for kind in SSH:
        at = (0,) if "N ignored" in SSH[kind] else POSITIONS[:2]
        cases += [("ssh", "scripted", f"{kind}@{n}", n) for n in at]
    cases += [("ssh", "board_script", "", None)]
    return cases


def _classify(proc, run: str, runner: str, completed: int | None) -> tuple[str, str]:
    text = (proc.stdout or "") + (proc.stderr or "")
    lines = [ln for ln in text.splitlines() if ln.startswith("edgeprune: error:")]
    message = lines[-1] if lines else (text.strip().splitlines() or [""])[-1]
    if "Traceback (most recent call last)" in text:
        return "traceback", message
    if proc.returncode == 70:
        return "internal", message
    if proc.returncode == 0:
        return "pass", message
    if proc.returncode != 5:
        return "other", message
    try:
        with open(os.path.join(run, "report.json")) as fh:
            report = json.load(fh, parse_constant=_refuse)
        entry = report["validation"][runner]
    except (OSError, ValueError, KeyError) as exc:
        return "other", f"{message} [report.json: {exc}]"
    if entry["partial"] and entry["completed"] == completed:
        return "partial", message
    return "other", f"{message} [entry: partial {entry['partial']}, {entry['completed']} done]"


def _refuse(constant: str):
    raise ValueError(f"{constant} in report.json (invalid JSON)")


def _validate(run: str, args: list[str], env: dict, timeout: float):
    argv = [sys.executable, "-m", "edgeprune", "validate", run, "--samples", str(SAMPLES)]
    try:
        return subprocess.run(
            argv + args + ["--device-timeout", "1"],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        return None


def _one(run: str, case, env: dict, bin_dir: str, timeout: float) -> dict:
    from edgeprune.runners import faulty

    runner, board, fault, completed = case
    with open(os.path.join(run, "final_int8.tflite"), "rb") as fh:
        model = fh.read()
    stop, proc_board = None, None
    if runner == "serial" and board == "scripted":
        port, stop = faulty.serve_in_thread(
            faulty.scripted_board(model), faulty.SerialFault.parse(fault)
        )
        args = ["--runner", "serial", "--device", port]
    elif runner == "serial":
        proc_board = subprocess.Popen(
            [sys.executable, "-m", "edgeprune.tflm.board", os.path.join(run, "final_int8.tflite")]
            + (["--fault", fault] if fault else []),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        args = ["--runner", "serial", "--device", proc_board.stdout.readline().strip()]
    else:
        env = {**env, "PATH": bin_dir + os.pathsep + env["PATH"]}
        if fault:
            env["EDGEPRUNE_SSH_FAULT"] = fault
        args = ["--runner", "ssh", "--device", "pi@board"]
    try:
        proc = _validate(run, args, env, timeout)
    finally:
        if stop is not None:
            stop()
        if proc_board is not None:
            proc_board.kill()
            proc_board.wait()
    name = f"{board}:{fault or 'clean'}"
    if proc is None:
        return {"case": name, "runner": runner, "exit": None, "outcome": "hang", "message": ""}
    outcome, message = _classify(proc, run, runner, completed)
    expected = "pass" if completed is None else "partial"
    return {
        "case": name,
        "runner": runner,
        "exit": proc.returncode,
        "outcome": outcome,
        "expected": expected,
        "message": message,
    }


def run_device_campaign(workdir: str, timeout: float = 120.0) -> list[dict]:
    """Run every device-fault case (see the module docstring) in ``workdir``; one dict
    per case: ``case``, ``runner``, ``exit`` (None on a hang), ``outcome``,
    ``expected`` and ``message`` (the error line). Side effects: writes a run
    folder and the stand-in ``ssh`` into ``workdir``."""
    from edgeprune.runners import faulty

    run = build_run(workdir)
    bin_dir = faulty.install_fake_ssh(os.path.join(workdir, "bin"))
    pristine = os.path.join(workdir, "report.pristine.json")
    if not os.path.exists(pristine):
        shutil.copy(os.path.join(run, "report.json"), pristine)
    env = {k: v for k, v in os.environ.items() if k != "EDGEPRUNE_SSH_FAULT"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    results = []
    for case in _cases():
        shutil.copy(pristine, os.path.join(run, "report.json"))  # each case from the start
        results.append(_one(run, case, env, bin_dir, timeout))
    return results


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False), default=None)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="per case, in s")
def main(workdir: str | None, timeout: float) -> None:
    """Run the device-fault campaign and print a table and a summary line."""
    workdir = workdir or tempfile.mkdtemp(prefix="edgeprune-devices-")
    began = time.perf_counter()
    results = run_device_campaign(workdir, timeout)
    for r in results:
        flag = "" if r["outcome"] == r["expected"] else "  <-- expected " + r["expected"]
        print(
            f"{r['runner']:6} {r['case']:32} exit {r['exit']!s:4} {r['outcome']:9} "
            f"{r['message'][:110]}{flag}"
        )
    tally = {
        k: sum(r["outcome"] == k for r in results)
        for k in ("traceback", "internal", "hang", "partial", "pass", "other")
    }
    bad = sum(r["outcome"] != r["expected"] for r in results)
    print(
        f"{len(results)} cases in {time.perf_counter() - began:.0f} s: "
        + ", ".join(f"{v} {k}" for k, v in tally.items())
        + f"; {bad} not as expected"
    )
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
