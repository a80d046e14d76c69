"""Tree models end to end through the CLI, each command in its own process: run for a
Cortex-M target (a 20-tree forest, pruned), validate on the host and on a serial
"board" (the firmware/ harness compiled for this machine behind a pty), report, a
user's model file, and the refusals; TensorFlow is never imported on this path."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tree_board import board_main  # tests/ is on sys.path

ARM = shutil.which("arm-none-eabi-gcc") is not None
GCC = shutil.which("gcc") is not None
REQUIRED = os.environ.get("EDGEPRUNE_REQUIRE_ARM_GCC") == "1"  # .ci/run: fail, do not skip
pytestmark = pytest.mark.skipif(
    not ((ARM and GCC) or REQUIRED),
    reason="needs arm-none-eabi-gcc (Debian: gcc-arm-none-eabi) and gcc (build-essential)",
)
TARGET = "nucleo_l4r5zi"
RECIPE = """\
[trees]
n_estimators = 20

[trees.prune]
method = "ccp"
ensemble = "greedy"
"""
# Runs the CLI in this process and says afterwards whether TensorFlow was imported.
_CLI = """\
import sys
from edgeprune.cli import main
try:
    main(sys.argv[1:], prog_name="edgeprune")
    code = 0
except SystemExit as exc:
    code = exc.code or 0
print("TENSORFLOW_IMPORTED=" + str("tensorflow" in sys.modules))
sys.exit(code)
"""


def edgeprune(*argv: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _CLI, *argv], capture_output=True, text=True, cwd=cwd, timeout=600
    )


def _ok(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "TENSORFLOW_IMPORTED=False" in proc.stdout
    return proc.stdout


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trees_cli")
    (root / "r.toml").write_text(RECIPE)
    out = root / "run"
    proc = edgeprune(
        "-q", "run", "--model", "random_forest", "--recipe", str(root / "r.toml"),
        "--target", TARGET, "--out", str(out),
    )  # fmt: skip
    text = _ok(proc)
    assert f"check firmware/edgeprune_model.c on {TARGET}: PASS" in text
    return out


def _report(folder: Path) -> dict:
    return json.loads((folder / "report.json").read_text())


def test_run_prunes_the_forest_and_measures_it_on_the_target_without_tensorflow(run_dir):
    trees = _report(run_dir)["trees"]
    base, pruned = trees["baseline"], trees["pruned"]
    assert base["complexity"]["members"] == 20
    assert pruned["complexity"]["nodes"] < base["complexity"]["nodes"]
    assert pruned["compiled"]["flash_bytes"] < base["compiled"]["flash_bytes"]
    assert pruned["compiled"]["core"] == "cortex-m4f"
    assert "arm-none-eabi-gcc" in pruned["compiled"]["compiler"]
    assert pruned["latency"]["basis"] == "estimate" and pruned["latency"]["error_band"] > 0
    assert trees["agreement"]["n_equal"] == trees["agreement"]["n"] == 114
    assert [s["name"] for s in trees["steps"]] == ["ccp", "greedy", "quantized"]


def test_the_check_judges_compiled_flash_plus_reserve(run_dir):
    body = _report(run_dir)
    check = body["stages"]["check"]
    flash = next(r for r in check["rules"] if r["name"] == "flash")
    reserve = body["target"]["reserve"]["flash_bytes"]
    assert flash["figure"] == body["trees"]["pruned"]["compiled"]["flash_bytes"] + reserve
    assert check["ok"] and check["evidence"]["kind"] == "tree"


def test_every_artifact_is_listed_and_firmware_holds_the_model_and_its_harness(run_dir):
    listed = _report(run_dir)["artifacts"]
    firmware = sorted(p.name for p in (run_dir / "firmware").iterdir())
    assert firmware == sorted(
        [
            "README.md",
            "edgeprune_harness_glue.c",
            "edgeprune_model.c",
            "edgeprune_model.h",
            "edgeprune_protocol.h",
            "tree_harness.c",
            "tree_harness.h",
        ]
    )
    assert {f"firmware/{f}" for f in firmware} | {
        "baseline_trees.json",
        "pruned_trees.json",
    } == set(listed)


def test_validate_runs_the_c_on_the_host_and_records_it(run_dir):
    text = _ok(edgeprune("validate", str(run_dir), "--runner", "host"))
    assert "validate pruned_trees.json on host: PASS" in text
    host = _report(run_dir)["validation"]["host"]
    assert host["agreement"]["agreement"] == 1.0 and host["completed"] == 114
    trees = _report(run_dir)["trees"]
    assert host["metrics"]["accuracy"] == trees["pruned"]["test"]["accuracy"]
    # the "float baseline" is the unpruned model, as for a Keras run's validation
    assert host["baseline_metrics"]["accuracy"] == trees["baseline"]["test"]["accuracy"]


def test_validate_refuses_a_changed_c_file_and_a_runner_trees_do_not_have(run_dir, tmp_path):
    proc = edgeprune("validate", str(run_dir), "--runner", "tflm")
    assert proc.returncode == 1
    assert "use --runner host or --runner serial --device PORT" in proc.stderr
    copy = tmp_path / "copy"
    shutil.copytree(run_dir, copy)
    with open(copy / "firmware" / "edgeprune_model.c", "a") as fh:
        fh.write("/* edited */\n")
    proc = edgeprune("validate", str(copy), "--runner", "host")
    assert proc.returncode == 1 and "edgeprune_model.c changed since report.json" in proc.stderr


def test_report_rebuilds_the_page_of_a_tree_run(run_dir):
    (run_dir / "report.html").unlink(missing_ok=True)
    proc = subprocess.run(
        [sys.executable, "-m", "edgeprune", "report", str(run_dir)], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr
    page = (run_dir / "report.html").read_text()
    trees = _report(run_dir)["trees"]
    assert '<section id="trees">' in page and '<section id="importance">' in page
    nodes = trees["pruned"]["complexity"]["nodes"]
    assert f'<td class="n">{nodes:,}</td>' in page
    assert f"on {trees['agreement']['n_equal']} of {trees['agreement']['n']} test samples" in page


def test_validate_over_serial_talks_to_the_firmware_harness(run_dir, tmp_path):
    """The run's firmware/ built for this machine as the "board", behind a pty."""
    import tty

    for f in (run_dir / "firmware").iterdir():
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "board.c").write_text(board_main("edgeprune"))
    sources = sorted(str(p) for p in tmp_path.glob("*.c"))
    subprocess.run(
        ["gcc", "-std=gnu99", "-I", str(tmp_path), *sources, "-o", str(tmp_path / "board")],
        check=True,
    )
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    board = subprocess.Popen([str(tmp_path / "board")], stdin=master, stdout=master)
    try:
        proc = edgeprune(
            "validate", str(run_dir), "--runner", "serial", "--device", os.ttyname(slave),
            "--samples", "40",
        )  # fmt: skip
    finally:
        board.kill()
        board.wait()
        os.close(master)
        os.close(slave)
    _ok(proc)
    serial = _report(run_dir)["validation"]["serial"]
    assert serial["completed"] == 40 and serial["agreement"]["agreement"] == 1.0
    assert serial["latency_ms"]["n"] == 40 and serial["latency_ms"]["p50"] > 0


def test_a_fitted_model_file_is_read_pruned_and_exported(run_dir, tmp_path):
    model = run_dir / "baseline_trees.json"
    (tmp_path / "r.toml").write_text('[trees.prune]\nmethod = "reduced_error"\n')
    out = tmp_path / "mine"
    _ok(
        edgeprune(
            "-q", "run", "--model", str(model), "--data", "breast_cancer",
            "--recipe", str(tmp_path / "r.toml"), "--out", str(out),
        )
    )  # fmt: skip
    body = _report(out)
    assert body["inputs"]["model"] == str(model.resolve())
    assert (
        body["trees"]["baseline"]["complexity"]
        == _report(run_dir)["trees"]["baseline"]["complexity"]
    )
    assert body["trees"]["steps"][0]["name"] == "reduced_error"
    assert model.exists()  # the input is never touched


def test_a_goal_no_pruning_meets_exits_3_and_writes_nothing(tmp_path):
    (tmp_path / "r.toml").write_text(RECIPE + 'goal = "fit"\n')
    out = tmp_path / "none"
    proc = edgeprune(
        "-q", "run", "--model", "decision_tree", "--recipe", str(tmp_path / "r.toml"),
        "--target", TARGET, "--max-flash-bytes", "1000", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert proc.stderr.startswith(
        f"edgeprune: error: no pruned candidate meets {TARGET}'s budgets: the smallest has"
    )
    assert not out.exists()


def test_a_pickle_is_refused_with_its_reason_and_nothing_is_written(tmp_path):
    model = tmp_path / "forest.joblib"
    model.write_bytes(b"never unpickled")
    out = tmp_path / "o"
    proc = edgeprune("-q", "run", "--model", str(model), "--data", "wine", "--out", str(out))
    assert proc.returncode == 1
    assert "a pickle can run any code when loaded" in proc.stderr
    assert "--unsafe-load" in proc.stderr and not out.exists()


def test_a_model_file_needs_its_data():
    proc = edgeprune("run", "--model", "model.skops")
    assert proc.returncode == 2 and "--data is required with a fitted tree model" in proc.stderr
