"""The sweep benchmark's figures from a hand-made sweep folder (the full script runs
sweeps for minutes: `python benchmarks/bench_sweep.py --quick` is its own check)."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))

import bench_sweep  # noqa: E402


def _trial(number, seconds, tune, accuracy, latency, feasible=True, state="COMPLETE"):
    return {
        "number": number,
        "state": state,
        "params": {"width": 0.5},
        "values": {"accuracy": accuracy, "latency_ms": latency},
        "feasible": feasible,
        "folder": f"trials/{number:04d}",
        "seconds": seconds,
        "fine_tune_seconds": tune,
    }


@pytest.fixture
def folder(tmp_path):
    trials = [
        _trial(0, 20.0, 4.0, 0.95, 5.0),  # each worker's first trial: start-up
        _trial(1, 20.0, 4.0, 0.99, 20.0, feasible=False),
        _trial(2, 4.0, 2.0, 0.97, 9.0),
        _trial(3, 6.0, 3.0, 0.90, 3.0),
        {"number": 4, "state": "FAIL", "seconds": 1.0, "fine_tune_seconds": None},
    ]
    doc = {"trials": trials, "front": [0, 2, 3]}
    (tmp_path / "sweep.json").write_text(json.dumps(doc))
    for t in trials[:4]:
        os.makedirs(tmp_path / t["folder"])
        prune = {"seconds": t["fine_tune_seconds"] + 0.5}
        stages = {"structured": {"seconds": 1.0}, "prune": prune}
        (tmp_path / t["folder"] / "report.json").write_text(json.dumps({"stages": stages}))
    return tmp_path


def test_overhead_is_all_but_fine_tuning_over_trial_time(folder):
    figures = bench_sweep.sweep_figures(str(folder), jobs=2)
    assert figures["overhead"] == pytest.approx(1 - 13.0 / 50.0)
    assert figures["overhead_steady"] == pytest.approx(1 - 5.0 / 10.0)  # trials 2 and 3
    assert (figures["complete"], figures["feasible"], figures["failed"]) == (4, 3, 1)
    parts = figures["median_seconds_steady"]
    assert parts["fine-tuning"] == pytest.approx(2.5) and parts["trial"] == pytest.approx(5.0)
    assert parts["prune less fine-tuning"] == pytest.approx(0.5)


def test_best_is_the_most_accurate_front_point_not_an_infeasible_one(folder):
    figures = bench_sweep.sweep_figures(str(folder), jobs=2)
    assert figures["best"]["number"] == 2 and figures["best"]["accuracy"] == 0.97
    assert [t["number"] for t in figures["front"]] == [3, 0, 2]  # by latency


def test_table_lines_up_its_columns():
    text = bench_sweep.table([("a", "bb", "c", "d"), ("long", "x", "yy", "z")])
    head, rule, row = text.splitlines()
    assert rule == "----  --  --  -"
    assert row.index("x") == head.index("bb")
