"""The structured pruning benchmark script runs end to end (quick mode) and its
figures are consistent: pruning shrinks what it should, and the table is printed."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # about 30 s: two models pruned, converted, checked

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_benchmark_writes_consistent_figures(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "bench_structured.py"),
            "--quick",
            "--models",
            "digits_cnn,autoencoder",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    assert "| digits_cnn |" in proc.stdout and "| nano33ble |" in proc.stdout
    rows = {r["model"]: r for r in json.loads(out.read_text())}
    for r in rows.values():
        b, a = r["before"], r["after"]
        for key in ("params", "macs", "flash_bytes", "arena_bytes"):
            assert a[key] < b[key], (r["model"], key)
        assert a["macs"] == a["keras_macs"] and b["macs"] == b["keras_macs"]
        assert r["rebuild_max_abs_diff"] < 1e-4
        assert all(a["latency_ms"][t] < b["latency_ms"][t] for t in b["latency_ms"])
    assert rows["autoencoder"]["after"]["macs"] * 2 <= rows["autoencoder"]["before"]["macs"]
    assert 0 <= rows["digits_cnn"]["after"]["int8_accuracy"] <= 1
