"""The campaign's run-folder faults and special files.

Run folders (e): a run killed with SIGKILL part way and re-run into the same
folder (no temporary file may survive the re-run, which must succeed), two
runs started together into one ``--out`` (both exiting 0 is a failure: the
first one's summary describes files the second replaced), a read-only
folder, a folder without permissions, ``--out`` naming a file. As root the
permission cases run as ``nobody``, since root ignores file modes.

Special files (f): ``/dev/zero``, ``/dev/urandom``, a FIFO, a folder, an empty
file and a sparse 8 GiB file given to ``inspect``, ``cost`` and ``check``,
each with a deadline and its peak RSS against the same command on a normal
model (at most 200 MB more).
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import time

from campaign_cli import (
    Case,
    Completed,
    call,
    classify,
    error_line,
    kill,
    leftovers,
    start,
    wait,
)

TRAIN = ["--train-epochs", "2", "--epochs", "1", "--calibration-samples", "8"]
RSS_HEADROOM_MB = 200.0


def _row(area: str, name: str, outcome: str, message: str, done: Completed | None) -> dict:
    return {
        "area": area,
        "case": name,
        "exit": None if done is None else done.exit,
        "outcome": outcome,
        "message": message,
        "seconds": 0.0 if done is None else round(done.seconds, 2),
        "peak_rss_mb": 0.0 if done is None else round(done.peak_rss_mb, 1),
    }


def _judge(case: Case, done: Completed) -> dict:
    outcome, why = classify(case, done)
    return _row(
        case.area, case.case, outcome, error_line(done.stderr) if outcome == "ok" else why, done
    )


def kill_and_rerun(workdir: str, log=print) -> list[dict]:
    """SIGKILL a run in the middle of an atomic write (as soon as a temporary file
    shows, polled every 2 ms; else 0.5 s after its first file), then re-run into the
    same folder: it must succeed and leave no temporary file."""
    out = os.path.join(workdir, "out_killed")
    running = start(["run", "--out", out, *TRAIN], workdir)
    deadline, first_file = time.monotonic() + 300, None
    while time.monotonic() < deadline and running.proc.poll() is None:
        files, temporary = leftovers(out)
        if temporary:
            break
        if files and first_file is None:
            first_file = time.monotonic()
        if first_file is not None and time.monotonic() - first_file > 0.5:
            break
        time.sleep(0.002)
    kill(running, signal.SIGKILL)
    wait(running, 10)
    _, temporary = leftovers(out)
    log(f"killed run left {len(temporary)} temporary file(s): {temporary[:3]}")
    again = Case("run-folder", "re-run after kill -9 mid-write", [], (0,), 400, out=out)
    row = _judge(again, call(["run", "--out", out, *TRAIN], workdir, again.timeout_s))
    row["killed_run_left"] = temporary
    return [row]


def concurrent_runs(workdir: str) -> list[dict]:
    """Two runs into one folder at once: one must be refused while the other runs."""
    out = os.path.join(workdir, "out_concurrent")
    runs = [start(["run", "--out", out, *TRAIN], workdir) for _ in range(2)]
    done = [wait(r, 600) for r in runs]
    codes = sorted(d.exit for d in done if d.exit is not None)
    name = "two runs into one --out at once"
    if any(d.exit is None for d in done):
        return [_row("run-folder", name, "hang", "a run did not finish in 600 s", done[0])]
    for d in done:
        if "Traceback" in d.stderr or d.exit == 70:
            return [_row("run-folder", name, "internal", error_line(d.stderr), d)]
    if codes == [0, 0]:
        return [
            _row("run-folder", name, "invalid-passed", "both exited 0 into one folder", done[0])
        ]
    if codes != [0, 1]:
        return [_row("run-folder", name, "wrong-exit", f"exits {codes}, expected 0 and 1", done[0])]
    refused = next(d for d in done if d.exit == 1)
    return [_row("run-folder", name, "ok", error_line(refused.stderr), refused)]


def permission_cases(workdir: str) -> list[dict]:
    """Read-only and inaccessible run folders, and --out naming a file."""
    rows = []
    ro = os.path.join(workdir, "out_readonly")
    locked = os.path.join(workdir, "out_locked")
    afile = os.path.join(workdir, "out_is_a_file")
    os.makedirs(ro, exist_ok=True)
    os.makedirs(locked, exist_ok=True)
    os.chmod(ro, 0o555)
    os.chmod(locked, 0o000)
    with open(afile, "w") as fh:
        fh.write("keep me")
    drop = _drop_root_prefix()
    os.chmod(workdir, 0o755)  # nobody must reach the folders under test
    for name, out in (
        ("read-only --out folder", ro),
        ("--out folder without permissions", os.path.join(locked, "sub")),
        ("--out names a file", afile),
    ):
        case = Case("run-folder", name, [], (1,), 120)
        if name != "--out names a file" and os.geteuid() == 0 and not drop:
            rows.append(_row("run-folder", name, "ok", "skipped: root ignores modes", None))
            continue
        argv = ["run", "--out", out, *TRAIN]
        done = call(argv, workdir, case.timeout_s, prefix=drop if out != afile else None)
        rows.append(_judge(case, done))
    with open(afile) as fh:
        if fh.read() != "keep me":
            rows[-1].update(outcome="half-written", message="the file named by --out was changed")
    os.chmod(locked, 0o755)
    os.chmod(ro, 0o755)
    return rows


def _drop_root_prefix() -> list[str] | None:
    """``setpriv`` arguments that run a command as nobody, when root and available."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if not setpriv:
        return None
    nobody = pwd.getpwnam("nobody")
    return [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]


def special_file_cases(workdir: str, good_tflite: str | None, quick: bool = False) -> list[dict]:
    """inspect, cost and check on files that are not regular model files."""
    folder = os.path.join(workdir, "special")
    os.makedirs(folder, exist_ok=True)
    fifo = os.path.join(folder, "pipe.tflite")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    empty = os.path.join(folder, "empty.tflite")
    open(empty, "wb").close()
    sparse = os.path.join(folder, "sparse.tflite")
    with open(sparse, "wb") as fh:
        fh.truncate(8 * 2**30)
    files = {
        "/dev/zero": "/dev/zero",
        "/dev/urandom": "/dev/urandom",
        "a FIFO": fifo,
        "a folder": folder,
        "an empty file": empty,
        "a sparse 8 GiB file": sparse,
    }
    commands = {
        "inspect": ["inspect"],
        "cost": ["cost"],
        "check": ["check", "--target", "nano33ble"],
    }
    if quick:
        del commands["check"]
    rows: list[dict] = []
    for cmd, head in commands.items():
        tail = head[1:]
        baseline = None
        if good_tflite:  # the control: a normal model, whose peak RSS sets the limit
            control = Case("files", f"{cmd} a normal model (the control)", [], (0,), 120)
            base = call([head[0], good_tflite, *tail], workdir, 120)
            rows.append(_judge(control, base))
            baseline = base.peak_rss_mb
        for what, path in files.items():
            limit = None if baseline is None else baseline + RSS_HEADROOM_MB
            deadline = 60 if cmd == "check" else 20  # check imports TensorFlow first
            argv = [head[0], path, *tail]
            case = Case("files", f"{cmd} {what}", argv, (1, 2), deadline, max_rss_mb=limit)
            rows.append(_judge(case, call(case.argv, workdir, case.timeout_s)))
    return rows
