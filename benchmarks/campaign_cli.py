"""What every campaign case shares: one CLI call as a subprocess with a deadline and a
memory cap, and the rule that classifies its result.

A :class:`Case` is the command line and what a correct edgeprune does with it;
:func:`run_case` runs it and returns the row the campaign prints: ``case``,
``exit``, ``outcome``, ``message`` (+ ``area``, ``seconds``, ``peak_rss_mb``).
Outcomes, the first that applies:

* ``hang``: the deadline passed (the process group is killed);
* ``traceback``: stderr holds a Python traceback;
* ``internal``: exit 70 or "internal error" (a bug, never bad input);
* ``code-executed``: the case's marker file appeared (a model ran its code);
* ``invalid-passed``: a refusal was expected and the call succeeded, or the
  value under test was accepted (the ``accepted`` sentinel is in the message);
* ``wrong-exit``: another exit code than the expected ones;
* ``unnamed``: a refusal without one ``edgeprune: error:`` line naming ``must_name``;
* ``half-written``: a refused run left files in its folder, or temporary files;
* ``memory``: peak RSS above the case's ``max_rss_mb``;
* ``ok``: none of these.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

OUTCOMES = (
    "ok",
    # a named refusal (exit 1) of a .tflite LiteRT's loader accepts: the verifier's
    # semantic checks (NaN scales, no operator, an unknown fused activation) go
    # further than the loader, which leaves those to fail, or give garbage, at invoke
    "stricter",
    "traceback",
    "internal",
    "hang",
    "code-executed",
    "invalid-passed",
    "wrong-exit",
    "unnamed",
    "half-written",
    "memory",
)
#: The outcomes that are no failure.
ACCEPTABLE = frozenset({"ok", "stricter"})
INTERNAL_EXIT = 70
# Address-space cap of every child: a process that reads /dev/zero or allocates a
# declared 256 GB array dies of MemoryError here instead of taking the shared machine.
MEM_LIMIT_BYTES = 6 * 2**30
RUN_ARTIFACTS = ("baseline.keras", "pruned.keras", "structured.keras", "report.json")


@dataclass
class Case:
    """One CLI call and what a correct edgeprune does with it."""

    area: str
    case: str
    argv: list[str]
    expect: tuple[int, ...] = (1,)
    timeout_s: float = 60.0
    out: str | None = None  # run folder a refused call must leave empty
    marker: str | None = None  # a file that appears only if embedded code ran
    accepted: str | None = None  # message text meaning the bad value got through
    must_name: str | None = None  # a refusal must name this (the key, the file)
    warn_if_ok: bool = False  # exit 0 is right only with a warning on stderr
    max_rss_mb: float | None = None


@dataclass
class Completed:
    exit: int | None  # None: killed at the deadline
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEM_LIMIT_BYTES, MEM_LIMIT_BYTES))


def edgeprune_argv(argv: list[str]) -> list[str]:
    """The real console entry point, with this interpreter (the virtualenv's)."""
    return [sys.executable, "-c", "from edgeprune.cli import entry; entry()", *argv]


@dataclass
class Running:
    proc: subprocess.Popen
    t0: float
    chunks: dict
    threads: list


def start(argv: list[str], cwd: str, env: dict | None = None, prefix=None) -> Running:
    """Start ``edgeprune ARGV`` in its own process group, under the memory cap,
    its output drained by two threads; ``prefix`` runs it through another command
    (``setpriv`` to drop root)."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    full_env.pop("EDGEPRUNE_DEBUG", None)
    proc = subprocess.Popen(
        [*(prefix or []), *edgeprune_argv(argv)],
        cwd=cwd,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_limit_memory,
    )
    chunks: dict = {"out": [], "err": []}

    def drain(stream, key):
        for block in iter(lambda: stream.read(65536), b""):
            chunks[key].append(block)

    threads = [
        threading.Thread(target=drain, args=(proc.stdout, "out"), daemon=True),
        threading.Thread(target=drain, args=(proc.stderr, "err"), daemon=True),
    ]
    for t in threads:
        t.start()
    return Running(proc, time.monotonic(), chunks, threads)


def kill(running: Running, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to the call's whole process group (its workers too)."""
    try:
        os.killpg(running.proc.pid, sig)
    except ProcessLookupError:
        pass


def wait(running: Running, timeout_s: float) -> Completed:
    """Wait for the call up to ``timeout_s`` after its start; kill its group at the
    deadline. Peak RSS is the child's own ``ru_maxrss`` from ``wait4`` (the TFLite
    Micro worker and other grandchildren not included; 0 if ``Popen.poll`` reaped
    the child first)."""
    pid, code, rss_kb = running.proc.pid, running.proc.returncode, 0
    while code is None:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if not done and time.monotonic() - running.t0 > timeout_s:
            kill(running)
            _, _, usage = os.wait4(pid, 0)
            rss_kb, running.proc.returncode = usage.ru_maxrss, -signal.SIGKILL
            break
        if done:
            code, rss_kb = os.waitstatus_to_exitcode(status), usage.ru_maxrss
            running.proc.returncode = code
        else:
            time.sleep(0.05)
    kill(running)  # leftovers of the group (a worker the CLI left behind)
    for t in running.threads:
        t.join(timeout=10)
    return Completed(
        code,
        b"".join(running.chunks["out"]).decode("utf-8", "replace"),
        b"".join(running.chunks["err"]).decode("utf-8", "replace"),
        time.monotonic() - running.t0,
        rss_kb / 1024,
    )


def call(argv: list[str], cwd: str, timeout_s: float, prefix=None) -> Completed:
    """Run ``edgeprune ARGV`` to completion or its deadline."""
    return wait(start(argv, cwd, prefix=prefix), timeout_s)


def error_line(stderr: str) -> str:
    """The ``edgeprune: error:`` line, else the last line of stderr."""
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("edgeprune: error:")]
    return (errors or lines or [""])[-1].strip()


def leftovers(folder: str | None) -> tuple[list[str], list[str]]:
    """(every file under ``folder``, the temporary ones among them)."""
    if not folder or not os.path.isdir(folder):
        return [], []
    found = []
    for root, dirs, files in os.walk(folder):
        found += [os.path.relpath(os.path.join(root, f), folder) for f in files + dirs]
    temporary = [f for f in found if ".tmp" in os.path.basename(f) or f.endswith("~")]
    return found, temporary


def classify(case: Case, done: Completed) -> tuple[str, str]:
    """(outcome, why) of one call; see the module's docstring for the order."""
    err, line = done.stderr, error_line(done.stderr)
    if done.exit is None:
        return "hang", f"no answer within {case.timeout_s:.0f} s"
    if "Traceback (most recent call last)" in err:
        return "traceback", line
    if done.exit == INTERNAL_EXIT or "internal error" in err:
        return "internal", line
    if case.marker and os.path.exists(case.marker):
        return "code-executed", f"{os.path.basename(case.marker)} was written by the model"
    if done.exit == 0 and 0 not in case.expect:
        return "invalid-passed", "exit 0 for an input that must be refused"
    if case.accepted and case.accepted in line:
        return "invalid-passed", "the bad value got through to a later check"
    if done.exit not in case.expect:
        return "wrong-exit", f"exit {done.exit}, expected {'/'.join(map(str, case.expect))}"
    if done.exit == 0 and case.warn_if_ok and "warning" not in err.lower():
        return "wrong-exit", "exit 0 without a warning for degenerate input"
    if done.exit not in (0, 2):
        named = [ln for ln in err.splitlines() if ln.startswith("edgeprune: error:")]
        if len(named) != 1:
            return "unnamed", f"{len(named)} error lines: {line}"
        if case.must_name and case.must_name not in named[0]:
            return "unnamed", f"does not name {case.must_name}: {line}"
    files, temporary = leftovers(case.out)
    if temporary:
        return "half-written", "temporary files left: " + ", ".join(temporary[:3])
    if done.exit in (1, 2) and files:
        return "half-written", "a refused run wrote: " + ", ".join(sorted(files)[:4])
    if case.max_rss_mb is not None and done.peak_rss_mb > case.max_rss_mb:
        return "memory", f"peak RSS {done.peak_rss_mb:.0f} MB > {case.max_rss_mb:.0f} MB"
    return "ok", line


def row(case: Case, done: Completed) -> dict:
    """The campaign's row for one call."""
    outcome, why = classify(case, done)
    return {
        "area": case.area,
        "case": case.case,
        "exit": done.exit,
        "outcome": outcome,
        "message": error_line(done.stderr) if outcome == "ok" else why,
        "seconds": round(done.seconds, 2),
        "peak_rss_mb": round(done.peak_rss_mb, 1),
    }


def run_case(case: Case, cwd: str) -> dict:
    """Run one case and classify it."""
    return row(case, call(case.argv, cwd, case.timeout_s))
