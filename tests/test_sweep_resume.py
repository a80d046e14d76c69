"""Ctrl-C on a real `edgeprune sweep --jobs 2` and a rerun that resumes it: the
study ends with the requested count, no trial lost (each interrupted one runs
again, once) and none run twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

RECIPE = """
[train]
epochs = 4

[budget]
max_latency_ms = 12.0

[sweep]
trials = 4
width = [0.3, 1.0]
importance = "l1"
ranking = "global"
epochs = [1, 2]
"""


def _sweep(tmp_path, folder):
    cmd = [sys.executable, "-m", "edgeprune", "sweep", "--target", "nano33ble"]
    cmd += ["--recipe", str(tmp_path / "r.toml"), "--out", folder, "--jobs", "2"]
    # A session of its own, so that the test's Ctrl-C reaches the whole process
    # group at once, as a terminal's does (workers included).
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _trials(folder):
    try:
        with open(os.path.join(folder, "sweep.json"), encoding="utf-8") as fh:
            return json.load(fh)["trials"]
    except (OSError, ValueError):
        return []


@pytest.mark.slow
def test_ctrl_c_then_rerun_finishes_the_count_with_no_trial_lost_or_run_twice(tmp_path):
    (tmp_path / "r.toml").write_text(RECIPE)
    folder = str(tmp_path / "sw")
    proc = _sweep(tmp_path, folder)
    deadline = time.monotonic() + 300
    while not any(t["state"] == "COMPLETE" for t in _trials(folder)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "no trial completed in 300 s"
        # Polled often, so the Ctrl-C may land as the worker that completed asks
        # optuna for its next trial (a trial then stayed RUNNING in 3 of 8 such runs
        # before sweep/interrupts.py; test_sweep_interrupts.py holds the rule itself).
        time.sleep(0.01)
    # To the group, as a terminal does: sent to the parent alone, it reaches the
    # workers only after the parent has waited 2 s for each, long enough on a
    # loaded machine for them to complete the count (it did, on CI's run).
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "edgeprune: error: sweep interrupted with " in err and "run the same command" in err
    first = _trials(folder)
    assert 1 <= sum(t["state"] == "COMPLETE" for t in first) < 4
    assert not any(t["state"] == "RUNNING" for t in first)  # each worker failed its trial
    assert all(t["error"] == "interrupted" for t in first if t["state"] == "FAIL")

    proc = _sweep(tmp_path, folder)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert "Pareto front of digits_cnn_nano33ble" in out
    trials = _trials(folder)
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    assert 4 <= len(complete) <= 5  # two workers may start the last trial in one instant
    interrupted = [t for t in trials if t["state"] == "FAIL" and t["error"] == "interrupted"]
    assert interrupted  # the worker that finished first had started its next trial
    # a retry the count no longer needed stays WAITING, with its parameters, for a
    # later sweep asking for more trials
    retries = [t["retry_of"] for t in trials if t["retry_of"] is not None]
    assert sorted(retries) == sorted(t["number"] for t in interrupted)  # each once
    by_number = {t["number"]: t for t in trials}
    for t in trials:
        if t["retry_of"] is not None:
            assert t["params"] == by_number[t["retry_of"]]["params"]
    assert all(os.path.isdir(os.path.join(folder, t["folder"])) for t in complete)
    assert not any(
        os.path.exists(os.path.join(folder, "trials", f"{t['number']:04d}"))
        for t in trials
        if t["state"] != "COMPLETE"
    )
