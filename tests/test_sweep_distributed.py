"""One study, several machines: ``edgeprune sweep --storage postgresql://... --study S``
workers (processes with their own sweep folders, as on separate machines) on a
real PostgreSQL server (the ``postgres`` fixture, tests/pg_server.py).

The workers run the CLI on a tiny space (one-epoch trials of the digits CNN);
they are marked slow. The stopping rule's tie-break (:func:`surplus`) is also
checked on its own, quickly, with Optuna's in-memory storage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from edgeprune.sweep.storage import open_storage, redact
from edgeprune.sweep.study import surplus

TARGET = "nano33ble"
RECIPE = """
[train]
epochs = 3

[budget]
max_latency_ms = 12.0

[sweep]
width = [0.3, 1.0]
importance = "l1"
ranking = "global"
epochs = 1
"""


def test_of_two_trials_started_at_once_the_later_stands_down():
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.enqueue_trial({})  # nothing to suggest: only the states matter
    first, second = study.ask(), study.ask()  # two workers asked in the same instant
    assert surplus(second, wanted=1) and not surplus(first, wanted=1)
    assert not surplus(second, wanted=2)  # room for both
    study.tell(first, [0.9, 5.0])
    assert surplus(second, wanted=1)  # the count is already complete


def test_a_trial_after_a_failed_one_runs():
    study = optuna.create_study(directions=["maximize"])
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    assert not surplus(study.ask(), wanted=1)


def _command(folder, url, study, trials, recipe):
    return [
        sys.executable, "-m", "edgeprune", "sweep", "--recipe", str(recipe),
        "--target", TARGET, "--storage", url, "--study", study,
        "--trials", str(trials), "--out", str(folder),
    ]  # fmt: skip


def _start(folder, url, study, trials, recipe):
    log = open(f"{folder}.log", "w")
    proc = subprocess.Popen(
        _command(folder, url, study, trials, recipe),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # killed as a group, as a machine that dies
    )
    log.close()
    return proc


def _finish(proc, folder, timeout=900):
    proc.wait(timeout=timeout)
    with open(f"{folder}.log") as fh:
        out = fh.read()
    assert proc.returncode == 0, out[-3000:]
    return out


def _trials(url, study):
    store = open_storage(url, "unused")
    return optuna.load_study(study_name=study, storage=store).get_trials(deepcopy=False)


def _local(folder) -> set[int]:
    """The trial numbers whose folders this sweep folder holds (complete runs)."""
    root = os.path.join(folder, "trials")
    found = set(int(n) for n in os.listdir(root)) if os.path.isdir(root) else set()
    for n in found:
        assert os.path.isfile(os.path.join(root, f"{n:04d}", "report.json")), n
    return found


@pytest.fixture
def recipe(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE)
    return path


@pytest.mark.slow
def test_two_workers_finish_the_count_between_them(postgres, tmp_path, recipe):
    url = postgres.fresh_database("two_workers")
    a, b = tmp_path / "machine_a", tmp_path / "machine_b"
    procs = [_start(f, url, "S", 4, recipe) for f in (a, b)]
    outs = [_finish(p, f) for p, f in zip(procs, (a, b), strict=True)]
    trials = _trials(url, "S")
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(complete) == 4, [(t.number, t.state.name) for t in trials]
    assert {t.state.name for t in trials} <= {"COMPLETE", "PRUNED"}  # no loss, no failure
    here_a, here_b = _local(a), _local(b)
    assert here_a and here_b, "one worker ran every trial"
    assert not here_a & here_b  # no trial run on both machines
    # A point TPE proposed again is not rerun: it has no folder of its own and
    # points at the trial that ran it.
    ran = {t.number for t in complete if "duplicate_of" not in t.user_attrs}
    assert here_a | here_b == ran
    assert {t.user_attrs["duplicate_of"] for t in complete if t.number not in ran} <= ran
    searched = json.loads((a / "sweep.json").read_text())["identity"]["space"]["searched"]
    for t in complete:
        assert set(t.params) == set(searched) and 0.3 <= t.params["width"] <= 1.0
    for folder, out in ((a, outs[0]), (b, outs[1])):
        doc = json.loads((folder / "sweep.json").read_text())
        assert doc["storage"] == redact(url) and ":***@127.0.0.1:" in doc["storage"]
        assert "s3cret" not in (folder / "sweep.json").read_text() + out
        assert sorted(t["number"] for t in doc["trials"] if t["state"] == "COMPLETE") == sorted(
            t.number for t in complete
        )


@pytest.mark.slow
def test_a_killed_worker_leaves_the_study_usable(postgres, tmp_path, recipe):
    """Machine A dies mid-trial (SIGKILL to its process group): B finishes the
    count, retrying A's trial with its parameters once its heartbeats are stale;
    A's rerun then finds the study done and clears the half-written trial."""
    url = postgres.fresh_database("killed")
    a, b = tmp_path / "machine_a", tmp_path / "machine_b"
    victim = _start(a, url, "K", 3, recipe)
    deadline = time.monotonic() + 600
    while not os.path.isdir(a / "trials") or not os.listdir(a / "trials"):
        assert victim.poll() is None, (a.parent / "machine_a.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "machine A never started a trial"
        time.sleep(0.2)
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    (killed,) = [t for t in _trials(url, "K") if t.state.name == "RUNNING"]
    survivor = _start(b, url, "K", 3, recipe)
    _finish(survivor, b)
    trials = {t.number: t for t in _trials(url, "K")}
    assert trials[killed.number].state.name == "FAIL"
    (retry,) = [t for t in trials.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state.name == "COMPLETE" and retry.params == killed.params
    assert sum(t.state.name == "COMPLETE" for t in trials.values()) == 3
    assert os.path.isdir(a / "trials" / f"{killed.number:04d}")  # A's half-written trial
    out = _finish(_start(a, url, "K", 3, recipe), a)  # A's machine is back
    assert not os.path.exists(a / "trials" / f"{killed.number:04d}"), out
    assert sum(t.state.name == "COMPLETE" for t in _trials(url, "K")) == 3
    doc = json.loads((a / "sweep.json").read_text())
    row = next(t for t in doc["trials"] if t["number"] == retry.number)
    assert row["retry_of"] == killed.number and row["state"] == "COMPLETE"


@pytest.mark.slow
def test_joining_with_another_space_or_target_is_refused(postgres, tmp_path, recipe):
    url = postgres.fresh_database("identity")
    _finish(_start(tmp_path / "first", url, "J", 1, recipe), tmp_path / "first")
    other = tmp_path / "other.toml"
    other.write_text(RECIPE.replace("width = [0.3, 1.0]", "width = [0.5, 1.0]"))
    for folder, command in (
        (tmp_path / "space", _command(tmp_path / "space", url, "J", 1, other)),
        (tmp_path / "pico", _command(tmp_path / "pico", url, "J", 1, recipe)),
    ):
        if folder.name == "pico":
            command[command.index(TARGET)] = "pico"
        done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        assert done.returncode == 1, done.stderr[-3000:]
        (line,) = [x for x in done.stderr.splitlines() if x.startswith("edgeprune: error:")]
        assert "study J is a sweep of another" in line
        assert "choose another study name (--study)" in line
        assert ("search space" in line) if folder.name == "space" else ("target" in line)
        assert not os.path.exists(folder / "trials")
    assert len(_trials(url, "J")) == 1
