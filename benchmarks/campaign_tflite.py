"""Throw damaged .tflite files at edgeprune and count what goes wrong (issue 14).

Seeds are our own models (the digits CNN and ds_cnn, int8 and float32,
converted here, or the .tflite files of ``--seeds DIR``). Mutants: the hand-made
cases of :mod:`tflite_mutants` (stride 0, padding 99, no inputs, NaN scales,
a huge dimension...) on every seed, then seeded byte-level mutants up to
``--count``. Each goes through ``edgeprune inspect`` and ``edgeprune cost`` as
subprocesses with a timeout and a peak-memory watch, and through ``edgeprune
check --target nano33ble`` (which starts TFLite Micro) when inspect accepted it.
LiteRT's own loader, ``Interpreter(model_content=...)`` and
``allocate_tensors()`` in a subprocess of its own (it can crash), says whether
a mutant is valid.

Counted as failures (exit 1): a traceback, an internal error (exit 70), a
hang, a command killed by a signal, and "invalid passed" (LiteRT refuses the
model but ``check`` exits 0). Reported apart, not failures: models LiteRT
accepts that edgeprune refuses (TFLite Micro may be unable to run them, or the
verifier is stricter). The memory part runs ``inspect`` on the worst inputs
(``/dev/zero``, a huge declared dimension, a 64 MiB file) next to a normal one.

    python benchmarks/campaign_tflite.py [--count 500] [--workdir DIR] [--seeds DIR]

``run_tflite_campaign(workdir, count)`` is the same, as a function returning one
dict per mutant (for ``benchmarks/campaign.py``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import tflite_mutants  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = {"inspect": 30, "cost": 30, "check": 180}
COMMANDS = {
    "inspect": ["inspect"],
    "cost": ["cost"],
    "check": ["check", "--target", "nano33ble"],
}
_SEED_SCRIPT = """
import os, sys
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, {repo!r})
import numpy as np
from edgeprune.adapters.converter import to_tflite
from models.digits_cnn import build
from models.mlperf_tiny import ds_cnn
rng = np.random.default_rng(0)
for name, model in (("digits_cnn", build()), ("ds_cnn", ds_cnn())):
    x = rng.uniform(0, 1, (8, *model.input_shape[1:])).astype("float32")
    for mode in ("int8", "float32"):
        data = to_tflite(model, mode, x if mode == "int8" else None)
        open(os.path.join(sys.argv[1], f"{{name}}_{{mode}}.tflite"), "wb").write(data)
"""
_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss}")
"""
_LITERT_SCRIPT = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, resource.RLIM_INFINITY))
from ai_edge_litert.interpreter import Interpreter
for line in sys.stdin:
    try:
        interpreter = Interpreter(model_content=open(line.strip(), "rb").read())
        interpreter.allocate_tensors()
        print("valid", flush=True)
    except Exception as exc:
        print("invalid " + " ".join(str(exc).split())[:200], flush=True)
"""


def _edgeprune() -> list[str]:
    return [sys.executable, "-m", "edgeprune"]


def run_watched(args: list[str], timeout_s: float) -> dict:
    """Run ``args``; exit code, stderr, whether it hung, and its peak RSS in MB.

    A small wrapper process forks and waits for the command: a child's peak
    RSS starts at its parent's, and this campaign's own is over 100 MB. The
    wrapper leads a new session, so a hung command and its workers are
    killed together.
    """
    env = {k: v for k, v in os.environ.items() if k != "EDGEPRUNE_DEBUG"}
    env["PYTHONPATH"] = str(REPO)
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile() as peak:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_DUP2, err.fileno(), 2),
        ]
        wrapper = [sys.executable, "-S", "-c", _WRAPPER, peak.name, *args]
        pid = os.posix_spawn(sys.executable, wrapper, env, file_actions=actions, setsid=True)
        deadline, hung = time.monotonic() + timeout_s, False
        while not os.waitpid(pid, os.WNOHANG)[0]:
            if time.monotonic() > deadline:
                hung = True
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        err.seek(0)
        stderr = err.read().decode("utf-8", "replace")
        status, maxrss_kb = (peak.read().split() or [b"-9", b"0"])[:2]
    return {
        "exit": int(status),
        "hung": hung,
        "stderr": stderr.strip().splitlines()[-1][:300] if stderr.strip() else "",
        "traceback": "Traceback (most recent call last)" in stderr,
        "peak_mb": int(maxrss_kb) / 1024,
    }


class LiteRTJudge:
    """LiteRT's loader in one long-lived subprocess, restarted when a model crashes it."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None

    def __call__(self, path: Path) -> str:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _LITERT_SCRIPT],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        try:
            self.proc.stdin.write(f"{path}\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().strip()
        except BrokenPipeError:
            answer = ""
        if not answer:
            self.proc.wait()
            return f"invalid (LiteRT crashed: exit {self.proc.returncode})"
        return answer

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def build_seeds(folder: Path) -> dict[str, bytes]:
    """Our own models, converted once into ``folder`` (kept for the next run)."""
    folder.mkdir(parents=True, exist_ok=True)
    if not list(folder.glob("*.tflite")):
        subprocess.run(
            [sys.executable, "-c", _SEED_SCRIPT.format(repo=str(REPO)), str(folder)],
            check=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
            capture_output=True,
        )
    return {p.stem: p.read_bytes() for p in sorted(folder.glob("*.tflite"))}


def make_mutants(seeds: dict[str, bytes], count: int, seed: int = 14) -> list[tuple[str, bytes]]:
    """The hand-made cases on every seed, then byte-level mutants up to ``count``."""
    mutants = []
    for seed_name, data in seeds.items():
        for case, make in tflite_mutants.HAND_MADE.items():
            try:
                mutants.append((f"{seed_name}: {case}", make(data)))
            except LookupError:
                pass  # the case needs what this seed lacks (quantized weights)
    extra = max(count - len(mutants), 0)
    mutants += list(tflite_mutants.random_mutants(seeds, extra, seed))
    return mutants


def _judge(name: str, path: Path, litert: str) -> dict:
    row = {"name": name, "path": str(path), "litert": litert}
    for command in ("inspect", "cost", "check"):
        if command == "check" and row["inspect"]["exit"] != 0:
            continue
        row[command] = run_watched(
            [*_edgeprune(), *COMMANDS[command], str(path)], TIMEOUT_S[command]
        )
    runs = [row[c] for c in COMMANDS if c in row]
    row["traceback"] = any(r["traceback"] for r in runs)
    row["internal"] = any(r["exit"] == 70 or "internal error" in r["stderr"] for r in runs)
    row["hung"] = any(r["hung"] for r in runs)
    row["signalled"] = any(r["exit"] < 0 and not r["hung"] for r in runs)
    valid = litert == "valid"
    row["invalid_passed"] = not valid and row.get("check", {}).get("exit") == 0
    row["valid_refused"] = valid and row["inspect"]["exit"] != 0
    return row


def run_tflite_campaign(
    workdir, count: int = 500, jobs: int = 2, seeds_dir=None, seed: int = 14
) -> list[dict]:
    """Mutate our own models ``count`` times and run each through inspect, cost and check.

    Writes the seeds and mutants under ``workdir``; returns one dict per mutant
    (``name``, ``litert`` verdict, the ``inspect``/``cost``/``check`` runs with
    exit code, last stderr line, peak MB, and the flags ``traceback``,
    ``internal``, ``hung``, ``signalled``, ``invalid_passed``, ``valid_refused``).
    """
    workdir = Path(workdir)
    seeds = (
        {p.stem: p.read_bytes() for p in sorted(Path(seeds_dir).glob("*.tflite"))}
        if seeds_dir
        else build_seeds(workdir / "seeds")
    )
    folder = workdir / "mutants"
    folder.mkdir(parents=True, exist_ok=True)
    judge = LiteRTJudge()
    work = []
    try:
        for i, (name, data) in enumerate(make_mutants(seeds, count, seed)):
            path = folder / f"{i:04d}.tflite"
            path.write_bytes(data)
            work.append((name, path, judge(path)))
    finally:
        judge.close()
    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda w: _judge(*w), work))


def memory_worst_cases(workdir, seed_model: bytes) -> dict[str, float]:
    """Peak RSS (MB) of ``edgeprune inspect`` on a normal model and on the worst inputs."""
    workdir = Path(workdir)
    normal, huge, big = (workdir / n for n in ("normal.tflite", "huge.tflite", "64mib.tflite"))
    normal.write_bytes(seed_model)
    huge.write_bytes(tflite_mutants.HAND_MADE["huge dimension"](seed_model))
    big.write_bytes(seed_model.ljust(64 * 2**20 - 1, b"\0"))  # valid: padding after the model
    cases = {"normal": normal, "/dev/zero": "/dev/zero", "huge dimension": huge, "64 MiB": big}
    return {
        name: run_watched([*_edgeprune(), "inspect", str(p)], 60)["peak_mb"]
        for name, p in cases.items()
    }


def summarize(rows: list[dict]) -> tuple[str, bool]:
    """A table of outcomes and one summary line; True when nothing failed."""
    counts = collections.Counter()
    for row in rows:
        counts["LiteRT valid" if row["litert"] == "valid" else "LiteRT invalid"] += 1
        counts["inspect refused" if row["inspect"]["exit"] else "inspect accepted"] += 1
        if "check" in row:
            counts[f"check exit {row['check']['exit']}"] += 1
        for flag in ("traceback", "internal", "hung", "signalled", "invalid_passed"):
            counts[flag] += row[flag]
        counts["valid_refused"] += row["valid_refused"]
    lines = [f"{k:>20}  {v}" for k, v in sorted(counts.items())]
    for row in rows:
        if row["traceback"] or row["internal"] or row["hung"] or row["invalid_passed"]:
            last = row.get("check", row["inspect"])["stderr"]
            lines.append(f"FAIL {row['name']} ({row['path']}): {row['litert']}; {last}")
    bad = sum(counts[f] for f in ("traceback", "internal", "hung", "signalled", "invalid_passed"))
    lines.append(
        f"{len(rows)} mutants: {counts['traceback']} tracebacks, {counts['internal']} internal "
        f"errors, {counts['hung']} hangs, {counts['signalled']} killed by a signal, "
        f"{counts['invalid_passed']} invalid models passed; {counts['valid_refused']} models "
        "LiteRT accepts were refused by inspect (not a failure: the verifier is stricter)"
    )
    return "\n".join(lines), bad == 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--workdir", default="build/campaign_tflite")
    parser.add_argument("--seeds", default=None, help="folder of .tflite seeds (default: build)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=14, help="seed of the byte-level mutants")
    args = parser.parse_args(argv)
    start = time.monotonic()
    rows = run_tflite_campaign(args.workdir, args.count, args.jobs, args.seeds, args.seed)
    Path(args.workdir, "results.json").write_text(json.dumps(rows, indent=1))
    text, ok = summarize(rows)
    print(text)
    seed = next(iter(sorted(Path(args.workdir, "seeds").glob("*int8.tflite"))), None)
    if seed is not None or args.seeds:
        seed = seed or next(iter(sorted(Path(args.seeds).glob("*.tflite"))))
        peaks = memory_worst_cases(args.workdir, seed.read_bytes())
        base = peaks["normal"]
        print(
            "peak RSS of edgeprune inspect: "
            + ", ".join(f"{k} {v:.0f} MB ({v - base:+.0f})" for k, v in peaks.items())
        )
        ok = ok and max(peaks.values()) - base < 200
    print(f"campaign took {time.monotonic() - start:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
