"""benchmarks/bench_trees.py: its quick mode end to end (wine, 10-tree forests), and
its target check on hand-made rows. The full table is `make bench-trees`."""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))

import bench_trees  # noqa: E402

from edgeprune.trees.tree_latency import CPI  # noqa: E402

TOOLS = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "gcc", "qemu-system-arm"))
REQUIRED = os.environ.get("EDGEPRUNE_REQUIRE_ARM_GCC") == "1"  # .ci/run: fail, do not skip
needs_tools = pytest.mark.skipif(
    not (TOOLS or REQUIRED), reason="needs arm-none-eabi-gcc, gcc and qemu-system-arm"
)


def _row(data, model, accuracy, nodes, flash, agree=36, kind="random_forest"):
    return bench_trees.Row(data, kind, model, accuracy, nodes, 10, flash, 0, 100.0, 1.0, agree, 36)


def test_targets_are_judged_from_the_rows():
    rows = [
        _row("wine", "unpruned", 1.0, 400, 3000),
        _row("wine", "emlearn", 0.97, 400, 9000, agree=30),  # not ours: no agreement target
        _row("wine", "edgeprune", 0.99, 100, 1000),
        _row("wine", "unpruned", 0.9, 19, 144, kind="decision_tree"),
        _row("wine", "edgeprune", 0.9, 19, 144, kind="decision_tree"),  # trees: no ratio target
    ]
    checks = dict(bench_trees.targets(rows))
    assert checks == {
        "wine forest: 4.0x fewer nodes (>= 4x)": True,
        "wine forest: 3.0x less flash (>= 3x)": True,
        "wine forest: test accuracy 1.0000 -> 0.9900 (-1.00 points; at most 1 lost)": True,
        "wine random_forest unpruned: host C = scikit-learn on 36/36": True,
        "wine random_forest edgeprune: host C = scikit-learn on 36/36": True,
        "wine decision_tree unpruned: host C = scikit-learn on 36/36": True,
        "wine decision_tree edgeprune: host C = scikit-learn on 36/36": True,
    }


def test_a_missed_target_is_a_miss():
    rows = [
        _row("digits", "unpruned", 0.96, 1000, 3000),
        _row("digits", "edgeprune", 0.9489, 251, 1001, agree=35),
    ]
    checks = bench_trees.targets(rows)
    assert [ok for _, ok in checks] == [False, False, False, True, False]
    assert "3.98x" not in checks[0][0] and "4.0x" in checks[0][0]  # 3.98 rounds, still missed
    assert "0.9600 -> 0.9489 (-1.11 points" in checks[2][0]


def test_several_seeds_are_judged_on_the_worst():
    from dataclasses import replace

    rows = []
    for seed, (acc, nodes) in enumerate([(0.99, 100), (0.985, 80)]):
        rows += [
            replace(_row("wine", "unpruned", 1.0, 400, 3000), seed=seed),
            replace(_row("wine", "edgeprune", acc, nodes, 900), seed=seed),
        ]
    checks = bench_trees.worst_seed(rows)
    assert ("seed 1: wine forest: 5.0x fewer nodes (>= 4x)", True) in checks
    worst = [c for c in checks if c[0].startswith(("worst", "every"))]
    assert worst == [
        ("worst seed, wine forest: 4.0x fewer nodes (seed 0; >= 4x)", True),
        ("worst seed, wine forest: 3.3x less flash (seed 0; >= 3x)", True),
        ("worst seed, wine forest: test accuracy -1.50 points (seed 1; at most 1 lost)", False),
        ("every seed: host C = scikit-learn on 144/144", True),
    ]


def test_the_spread_over_seeds_is_reported_beside_the_targets():
    from dataclasses import replace

    rows = []
    for seed, acc in enumerate([1.0, 0.9722, 0.99]):
        rows += [
            replace(_row("wine", "unpruned", 1.0, 400, 3000), seed=seed),
            replace(_row("wine", "edgeprune", acc, 100, 900), seed=seed),
        ]
    assert bench_trees.spread(rows) == [
        "wine forest over 3 seeds: test accuracy change mean -1.26 points, worst -2.78; "
        "within 1 point on 2 of 3"
    ]
    assert bench_trees.spread(rows[:2]) == []  # one seed: its check lines say it all
    assert bench_trees.parse_seeds("0,3-5,9") == [0, 3, 4, 5, 9]


@pytest.mark.slow
@needs_tools
def test_quick_mode_measures_every_row(tmp_path, capsys):
    path = tmp_path / "bench.json"
    code = bench_trees.main(["--quick", "--json", str(path)])
    doc = json.loads(path.read_text())
    rows = [bench_trees.Row(**r) for r in doc["rows"]]
    assert [(r.kind, r.model) for r in rows] == [
        (kind, model) for kind in bench_trees.KINDS for model in bench_trees.MODELS
    ]
    by = {(r.kind, r.model): r for r in rows}
    cpi = CPI["cortex-m4f"][0]
    for kind in bench_trees.KINDS:
        base, eml = by[kind, "unpruned"], by[kind, "emlearn"]
        assert eml.nodes == base.nodes and eml.members == base.members  # the same model
        assert by[kind, "edgeprune"].nodes <= base.nodes
        assert by[kind, "sklearn ccp"].nodes <= base.nodes
        for r in (base, eml, by[kind, "edgeprune"]):
            assert r.flash_bytes > 0 and r.instructions > 0 and r.n_test == 36
            assert r.latency_us == pytest.approx(r.instructions * cpi / 120)  # 120 MHz, in µs
    assert all(by[kind, m].agree == 36 for kind in bench_trees.KINDS for m in bench_trees.OURS)
    assert by["random_forest", "edgeprune"].members < by["random_forest", "unpruned"].members
    # the exit code and the JSON say what the printed check lines say
    assert code == (0 if all(ok for _, ok in doc["targets"]) else 1)
    out = capsys.readouterr().out
    assert out.count("| wine |") == 8
    assert all(("ok   " if ok else "MISS ") + what in out for what, ok in doc["targets"])
