"""The rounding benchmark runs end to end (quick mode) and its figures hold
together: every variant meets the MAC goal, the rounded ones keep multiples."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # about 75 s: two models, three variants each

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_rounding_benchmark_writes_consistent_figures(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, "benchmarks", "bench_rounding.py"),
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
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "| digits_cnn | 4 |" in proc.stdout and "| autoencoder | 8 |" in proc.stdout
    rows = {r["model"]: r for r in json.loads(out.read_text())}
    for r in rows.values():
        base = r["baseline"]
        assert base["off_4"] == base["off_8"] == []  # the reference widths are multiples of 8
        for m, v in r["variants"].items():
            assert v["macs"] * 2 <= base["macs"], (r["model"], m)
            assert v["flash_bytes"] < base["flash_bytes"]
            assert v["arena_bytes"] <= base["arena_bytes"]
            assert v["rebuild_max_abs_diff"] < 1e-4
            original = base["widths"]  # a layer narrower than the multiple keeps its count
            assert all(c % int(m) == 0 for n, c in v["widths"].items() if original[n] >= int(m)), (
                r["model"],
                m,
            )
        # left as they fall, counts are ones the SIMD widths do not divide
        assert r["variants"]["1"]["off_8"]
    assert 0 <= rows["digits_cnn"]["variants"]["4"]["int8_accuracy"] <= 1


# ------------------------------------------------------------------ the committed measurements

DATA = os.path.join(ROOT, "benchmarks", "rounding")


def _load():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        import bench_rounding
    finally:
        sys.path.pop(0)
    with open(os.path.join(DATA, "bench.json")) as fh:
        rows = {r["model"]: r for r in json.load(fh)}
    return bench_rounding, rows


@pytest.mark.slow  # imports TensorFlow (through the benchmark's imports)
def test_committed_instruction_counts_are_of_the_benchmarks_models(capsys):
    """The instruction tables under benchmarks/rounding/ count exactly the models the
    committed bench.json describes (same MACs, op by op summed), each rounded
    variant keeps its multiple, and the README quotes the tables as they print."""
    bench, rows = _load()
    counts = bench.read_counts(DATA)
    assert set(counts) == {"m4f", "m33", "m55"}
    for core, models in counts.items():
        expected = {}
        for name, r in rows.items():
            expected[f"{name}_unpruned"] = r["baseline"]
            for m, v in r["variants"].items():
                expected[f"{name}_x{m}"] = v
        assert set(models) == set(expected), core
        for name, row in models.items():
            assert row["macs"] == expected[name]["macs"], (core, name)
            assert int(row["invoke_instructions"]) > int(row["kernel_instructions"]) > 0
    for r in rows.values():
        for m, v in r["variants"].items():
            original = r["baseline"]["widths"]
            assert all(c % int(m) == 0 for n, c in v["widths"].items() if original[n] >= int(m)), (
                r["model"],
                m,
            )
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    bench.print_instructions(DATA)
    bench.print_table(list(rows.values()))
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("| "):
            assert line in readme, line
