"""The sweep's storage (edgeprune/sweep/storage.py) with Optuna alone, no TensorFlow:
URL checks, one-line errors from a real PostgreSQL server (the ``postgres``
fixture, tests/pg_server.py), SQLite shared by several local processes, and
heartbeats that hand a killed worker's trial to the next one."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from edgeprune.errors import BadInputError
from edgeprune.sweep import storage
from edgeprune.sweep.storage import open_storage, redact

optuna.logging.set_verbosity(optuna.logging.WARNING)

# A worker in its own process: opens the store, runs N trials of a quick objective.
# argv: url, folder, study, n_trials, heartbeat seconds, grace seconds, hang marker.
# With a marker path, the objective writes its trial number there and hangs.
WORKER = """
import sys, time, optuna
from edgeprune.sweep.storage import open_storage
url, folder, name, n, beat, grace, marker = sys.argv[1:8]
optuna.logging.set_verbosity(optuna.logging.WARNING)
store = open_storage(None if url == "-" else url, folder,
                     heartbeat_seconds=int(beat), grace_seconds=int(grace))
study = optuna.create_study(study_name=name, storage=store, load_if_exists=True,
                            directions=["maximize", "minimize"])
def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    kind = trial.suggest_categorical("kind", ["l1", "l2", "taylor"])
    if marker != "-":
        with open(marker, "w") as f:
            f.write(str(trial.number))
        time.sleep(600)
    return x, len(kind) * x
study.optimize(objective, n_trials=int(n))
"""


def _worker(url, folder, study, n, beat=10, grace=40, marker="-"):
    args = [sys.executable, "-c", WORKER, url or "-", str(folder), study, str(n)]
    return subprocess.Popen(
        [*args, str(beat), str(grace), str(marker)],
        stderr=subprocess.PIPE,
        text=True,
    )


def _message(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and isinstance(exc.value, BadInputError)
    return text


@pytest.mark.parametrize(
    "url, said",
    [
        ("not a url", "storage URL 'not a url' is malformed: use sqlite:///PATH or postgresql://"),
        ("postgresql://u:pw@host:port/db", "'postgresql://u:***@host:port/db' is malformed"),
        ("mysql://u:pw@host/db", "has scheme 'mysql', which edgeprune does not store sweeps in"),
        (
            "redis://host:6379",
            "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
        ),
        ("postgresql:///sweeps", "'postgresql:///sweeps' names no host"),
        ("postgresql://u:pw@host/", "'postgresql://u:***@host/' names no database"),
        ("postgresql://u@host:99999/db", "has a bad port"),
        ("sqlite://", "names no file (an in-memory study is lost when the sweep ends)"),
        ("sqlite:///:memory:", "use sqlite:///PATH, e.g. sqlite:///sweeps/study.db"),
    ],
)
def test_bad_storage_urls_are_refused_before_connecting(url, said, tmp_path):
    with pytest.raises(storage.StorageError) as exc:
        open_storage(url, str(tmp_path))
    assert said in _message(exc)
    assert "pw" not in str(exc.value)  # the password is never shown
    assert os.listdir(tmp_path) == []  # nothing written


def test_sqlite_file_in_a_missing_folder_names_the_folder(tmp_path):
    with pytest.raises(storage.StorageError) as exc:
        open_storage(f"sqlite:///{tmp_path}/nowhere/study.db", str(tmp_path))
    assert f"folder {tmp_path}/nowhere does not exist; create it" in _message(exc)


def test_a_study_file_that_is_not_sqlite_is_refused(tmp_path):
    (tmp_path / "study.db").write_bytes(b"this is a report, not a database\n" * 100)
    with pytest.raises(storage.StorageError) as exc:
        open_storage(None, str(tmp_path))
    assert f"cannot open the sweep's study file {tmp_path}/study.db (" in _message(exc)
    assert "remove it or name another file" in str(exc.value)


@pytest.mark.parametrize(
    "url, shown",
    [
        (None, "study.db"),
        ("postgresql://bob:hunter2@db.lan:5432/sweeps", "postgresql://bob:***@db.lan:5432/sweeps"),
        ("postgresql+psycopg2://bob:p%40ss@h/db", "postgresql+psycopg2://bob:***@h/db"),
        ("postgresql://bob@h/db?password=hunter2&sslmode=require", "?password=***&sslmode=require"),
        ("postgresql://h/db", "postgresql://h/db"),
        ("sqlite:////tmp/a:b/study.db", "sqlite:////tmp/a:b/study.db"),
        ("not a url:secret@x", "not a url:secret@x"),  # no scheme: nothing to find
    ],
)
def test_redact_hides_passwords_only(url, shown):
    assert shown in redact(url)
    assert "hunter2" not in redact(url) and "p%40ss" not in redact(url)


def test_default_store_is_study_db_in_the_sweep_folder_in_wal_mode(tmp_path):
    folder = tmp_path / "sweeps" / "digits_cnn_nano33ble"
    store = open_storage(None, str(folder))
    study = optuna.create_study(study_name="s", storage=store, directions=["maximize"])
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert (folder / "study.db").is_file()
    with sqlite3.connect(folder / "study.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    again = optuna.load_study(study_name="s", storage=open_storage(None, str(folder)))
    assert [t.state.name for t in again.trials] == ["COMPLETE", "COMPLETE"]
    assert store.heartbeat_interval == storage.HEARTBEAT_SECONDS
    assert store.grace_period == storage.GRACE_SECONDS


def test_sqlite_store_takes_several_local_workers_at_once(tmp_path):
    """Three processes writing the same file, heartbeats on: no "database is locked",
    every trial recorded once."""
    store = open_storage(None, str(tmp_path))  # created before the workers, as --jobs does
    optuna.create_study(study_name="s", storage=store, directions=["maximize", "minimize"])
    workers = [_worker(None, tmp_path, "s", 15, beat=1, grace=30) for _ in range(3)]
    errors = [w.communicate(timeout=300)[1] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], errors
    trials = optuna.load_study(study_name="s", storage=store).trials
    assert sorted(t.number for t in trials) == list(range(45))
    assert {t.state.name for t in trials} == {"COMPLETE"}


def _kill_mid_trial(url, folder, marker) -> None:
    worker = _worker(url, folder, "s", 1, beat=1, grace=2, marker=marker)
    deadline = time.monotonic() + 120
    while not marker.exists():
        assert worker.poll() is None, worker.communicate()[1]
        assert time.monotonic() < deadline, "the worker never started its trial"
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.communicate()


def _reclaimed_by_next_worker(url, folder, marker):
    _kill_mid_trial(url, folder, marker)
    store = open_storage(url, str(folder), heartbeat_seconds=1, grace_seconds=2)
    study = optuna.load_study(study_name="s", storage=store)
    (lost,) = study.trials
    assert lost.state.name == "RUNNING"  # until its heartbeats are found stale
    deadline = time.monotonic() + 60
    while study.trials[0].state.name == "RUNNING":
        assert time.monotonic() < deadline, "the killed worker's trial was never reclaimed"
        time.sleep(0.5)
        storage.reclaim_stale(study)
    ran = []
    study.optimize(lambda t: ran.append(dict(t.params)) or (1.0, 2.0), n_trials=1)
    failed, retried = study.trials
    assert failed.state.name == "FAIL" and retried.state.name == "COMPLETE"
    assert ran == [lost.params] and retried.params == lost.params
    assert retried.system_attrs["failed_trial"] == lost.number


def test_killed_workers_trial_is_retried_by_the_next_worker_sqlite(tmp_path):
    _reclaimed_by_next_worker(None, tmp_path, tmp_path / "started")


def test_killed_workers_trial_is_retried_by_the_next_worker_postgres(postgres, tmp_path):
    url = postgres.fresh_database("reclaim")
    _reclaimed_by_next_worker(url, tmp_path, tmp_path / "started")


def test_postgres_store_is_shared_by_url(postgres, tmp_path):
    url = postgres.fresh_database("shared")
    for scheme in ("postgresql", "postgresql+psycopg2", "postgres"):
        store = open_storage(url.replace("postgresql", scheme, 1), str(tmp_path))
        study = optuna.create_study(
            study_name="s", storage=store, load_if_exists=True, directions=["maximize"]
        )
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(study.trials) == 3
    assert os.listdir(tmp_path) == []  # no study.db beside a server's study


@pytest.mark.parametrize(
    "part, said",
    [
        ({"password": "wrong"}, "refused user 'edgeprune' (authentication failed): check the user"),
        ({"password": None}, "refused user 'edgeprune' (authentication failed)"),
        ({"user": "ghost"}, "refused user 'ghost' (authentication failed)"),
        ({"database": "nosuch"}, "has no database 'nosuch': create it (createdb -O edgeprune"),
    ],
)
def test_postgres_refusals_are_one_line_naming_the_fix(postgres, tmp_path, part, said):
    with pytest.raises(storage.StorageError) as exc:
        open_storage(postgres.url(**part), str(tmp_path))
    assert f"the PostgreSQL server at 127.0.0.1:{postgres.port} " in _message(exc)
    assert said in str(exc.value)


def test_postgres_user_without_create_rights_is_told_what_to_grant(postgres, tmp_path):
    postgres.admin("CREATE DATABASE not_ours")  # owned by the superuser
    with pytest.raises(storage.StorageError) as exc:
        open_storage(postgres.url(database="not_ours"), str(tmp_path))
    assert "user 'edgeprune' may not create the study's tables in database 'not_ours'" in (
        _message(exc)
    )
    assert "make 'edgeprune' the database's owner or grant it CREATE on schema public" in (
        str(exc.value)
    )


def test_unreachable_server_is_named_with_host_and_port(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(storage.StorageError) as exc:
        open_storage(f"postgresql://u:pw@127.0.0.1:{port}/db", str(tmp_path))
    assert f"cannot reach the PostgreSQL server at 127.0.0.1:{port} (" in _message(exc)
    assert "Connection refused" in str(exc.value)
    assert "start the server, or check the host and port" in str(exc.value)


def test_silent_server_times_out_instead_of_hanging(tmp_path, monkeypatch):
    """A port that accepts connections and never answers (a firewall, a wrong service)."""
    monkeypatch.setattr(storage, "CONNECT_TIMEOUT_SECONDS", 2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        port = silent.getsockname()[1]
        with pytest.raises(storage.StorageError) as exc:
            open_storage(f"postgresql://u:pw@127.0.0.1:{port}/db", str(tmp_path))
    assert f"cannot reach the PostgreSQL server at 127.0.0.1:{port} (" in _message(exc)
    assert "timeout expired" in str(exc.value)


def test_workers_that_open_an_empty_database_together_all_get_in(postgres, tmp_path):
    """Machines started at once race to create the tables; the losers retry."""
    import threading

    url = postgres.fresh_database("race")
    start, opened, errors = threading.Barrier(4), [], []

    def join():
        start.wait()
        try:
            opened.append(open_storage(url, str(tmp_path)))
        except Exception as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=join) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(opened) == 4


@pytest.mark.parametrize(
    "url, said",
    [
        ("mysql://u:pw@db/s", "has scheme 'mysql', which edgeprune does not store sweeps in"),
        ("postgresql://u:pw@127.0.0.1:1/s", "cannot reach the PostgreSQL server at 127.0.0.1:1"),
    ],
)
def test_sweep_refuses_a_bad_storage_before_any_work(url, said, tmp_path):
    from click.testing import CliRunner

    from edgeprune.cli import main

    out = tmp_path / "sweep"
    args = ["sweep", "--target", "nano33ble", "--storage", url, "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("edgeprune: error:")]
    assert said in line and "pw" not in line
    assert not out.exists()  # no baseline trained, nothing written


def test_a_damaged_study_file_stops_the_sweep_before_its_baseline_is_trained(tmp_path):
    from edgeprune.sweep.driver import sweep

    (tmp_path / "study.db").write_bytes(b"this is a report, not a database\n" * 100)
    with pytest.raises(storage.StorageError) as exc:
        sweep(target="nano33ble", out=str(tmp_path))
    assert "remove it or name another file" in str(exc.value)
    assert sorted(os.listdir(tmp_path)) == ["study.db"]  # no baseline/, no lock left
