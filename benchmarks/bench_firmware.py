"""How long `edgeprune firmware` takes on a ~300 KB int8 .tflite, as a whole process.

    .venv/bin/python benchmarks/bench_firmware.py [RUNS] [--model M.tflite] [--target T]

The model is the MLPerf Tiny MobileNetV1 (visual wake words, 96x96x3, the
built-in ``mobilenet_v1``) converted to int8 as
``benchmarks/firmware_check/make_models.py`` does (random weights, BatchNorm
statistics set on generated data: weights do not change the time), built once
with TensorFlow and kept in ``build/bench_firmware/`` (git-ignored). Then
``edgeprune firmware MODEL --target nano33ble --out DIR`` runs RUNS times
(default 5) after one warm-up, each a new Python process, timed from outside
(wall clock around the child, its user and system CPU seconds and peak RSS
from ``os.wait4``); the child reports whether TensorFlow got imported. The
issue asks for under 10 s on this 2-core machine. Prints one JSON line per
run and a summary (min, median, max).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, "build", "bench_firmware")
LIMIT_S = 10.0
# The child: the console script's main(), then whether TensorFlow got imported.
_CHILD = """
import sys
from edgeprune.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print("BENCH", code, "tensorflow" in sys.modules, file=sys.stderr)
sys.exit(code)
"""


def model_path() -> str:
    """The ~300 KB int8 MobileNetV1, built once (TensorFlow, in a child process)."""
    path = os.path.join(CACHE, "mobilenet_v1_int8.tflite")
    if not os.path.exists(path):
        os.makedirs(CACHE, exist_ok=True)
        script = (
            "import sys; sys.path.insert(0, 'benchmarks/firmware_check');"
            "from make_models import int8_model;"
            f"open({path!r}, 'wb').write(int8_model('mobilenet_v1'))"
        )
        subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True)
    return path


def time_once(model: str, target: str, out: str) -> dict:
    """One whole `edgeprune firmware` process: wall, user, sys, peak RSS, its exit
    code and whether TensorFlow was imported."""
    cmd = [sys.executable, "-c", _CHILD, "firmware", model, "--target", target, "--out", out]
    began = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    verdict = [ln for ln in stderr.splitlines() if ln.startswith("BENCH ")]
    _, code, tf = verdict[-1].split() if verdict else ("", str(child.returncode), "?")
    return {
        "wall_s": round(wall, 3),
        "user_s": round(usage.ru_utime, 3),
        "sys_s": round(usage.ru_stime, 3),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        "exit": int(code),
        "tensorflow_imported": tf == "True",
    }


def main(argv: list[str]) -> int:
    runs = int(argv[0]) if argv and argv[0].isdigit() else 5
    model = argv[argv.index("--model") + 1] if "--model" in argv else model_path()
    target = argv[argv.index("--target") + 1] if "--target" in argv else "nano33ble"
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for i in range(runs + 1):
            row = time_once(model, target, out)
            if i:  # the first run warms the file cache
                rows.append(row)
                print(json.dumps(row), flush=True)
    walls = [r["wall_s"] for r in rows]
    summary = {
        "model": os.path.basename(model),
        "model_bytes": os.path.getsize(model),
        "target": target,
        "runs": runs,
        "wall_s": {"min": min(walls), "median": statistics.median(walls), "max": max(walls)},
        "cpu_s_median": statistics.median(r["user_s"] + r["sys_s"] for r in rows),
        "peak_rss_mb_median": statistics.median(r["peak_rss_mb"] for r in rows),
        "tensorflow_imported": any(r["tensorflow_imported"] for r in rows),
        "exit_codes": sorted({r["exit"] for r in rows}),
        "cores": os.cpu_count(),
        "under_limit": max(walls) < LIMIT_S,
    }
    print(json.dumps(summary))
    return 0 if summary["under_limit"] and not summary["tensorflow_imported"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
