"""Where a sweep's study lives: the URL a user gives, checked, opened and redacted.

``open_storage(None, folder)`` is the default, an embedded SQLite file
``<folder>/study.db``; ``sqlite:///PATH`` names another file, and
``postgresql://USER:PASSWORD@HOST:PORT/DB`` a server that several machines share
(every worker that opens the same URL and study name joins the same study).
Both go through Optuna's ``RDBStorage``: we add URL checks before connecting,
one-line errors that name the fix, a connect timeout, SQLite settings for
several local processes, and heartbeats so that the trial of a worker that died
is failed and its parameters tried again.

Heartbeats: a running trial records one every ``HEARTBEAT_SECONDS`` (10 s); a
trial whose last heartbeat is older than ``GRACE_SECONDS`` (40 s: four missed
beats, so a loaded machine is not mistaken for a dead one) is stale. Optuna
fails stale trials when a worker starts its next trial, and
``RetryHeartbeatStaleTrialCallback`` (the current name of
``RetryFailedTrialCallback``) queues the same parameters again, once, as a
WAITING trial, which the next ``ask`` takes first. A killed worker's trial is
thus reclaimed 40-50 s after its death, as soon as another worker asks for work
(the sweep's waiting workers look every half second).
Only trials run through ``Study.optimize`` (or inside ``heartbeat(trial)``)
send heartbeats; a RUNNING trial that never sent one is never reclaimed.
"""

from __future__ import annotations

import os
import re

from edgeprune.errors import BadInputError, clip

HEARTBEAT_SECONDS = 10
GRACE_SECONDS = 40
CONNECT_TIMEOUT_SECONDS = 5
# SQLite's busy timeout: how long a local worker waits for another's write
# before "database is locked". Trials write a few rows each, so waits are short.
SQLITE_BUSY_SECONDS = 60
DEFAULT_FILE = "study.db"
_CREATE_RACE = ("already exists", "duplicate key value")

SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg2", "postgres")
USAGE = "use sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


class StorageError(BadInputError):
    """The sweep's storage URL is malformed, or its server cannot be used as given."""


def redact(url: str | None) -> str:
    """``url`` with any password replaced by ``***``, for printing and sweep.json.

    ``None`` (the default store) is shown as ``study.db``, the file's name in the
    sweep folder. Never raises: a URL that does not parse is redacted by pattern.
    """
    if url is None:
        return DEFAULT_FILE
    text = re.sub(r"(://[^:/@?#]*):[^@/?#]*@", r"\1:***@", url)
    return re.sub(r"((?:^|[?&])password=)[^&#]*", r"\1***", text, flags=re.IGNORECASE)


def sqlite_url(folder: str) -> str:
    """The default store's URL: ``study.db`` in the sweep folder, absolute."""
    return "sqlite:///" + os.path.abspath(os.path.join(folder, DEFAULT_FILE))


def open_storage(
    url: str | None,
    folder: str,
    *,
    heartbeat_seconds: int = HEARTBEAT_SECONDS,
    grace_seconds: int = GRACE_SECONDS,
):
    """Open the sweep's storage (an ``optuna.storages.RDBStorage``).

    ``url`` None means ``<folder>/study.db`` (the folder is created). The tables
    are created when absent, so this writes to the store. Raises
    :class:`StorageError` (a ``BadInputError``) for a malformed URL, an unknown
    scheme, a server that cannot be reached within a few seconds, bad
    credentials, a missing database or a folder SQLite cannot write to.
    """
    if url is None:
        os.makedirs(folder, exist_ok=True)
        url = sqlite_url(folder)
    parsed = _check_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine_kwargs = {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
        _prepare_sqlite(parsed.database)
    else:
        # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; psycopg2 is what we ship.
        url = parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
        engine_kwargs = {
            "connect_args": {"connect_timeout": CONNECT_TIMEOUT_SECONDS},
            "pool_pre_ping": True,  # a connection the server closed is replaced, not failed
        }
    return _rdb_storage(url, parsed, engine_kwargs, heartbeat_seconds, grace_seconds)


def heartbeat(study, trial):
    """A context manager that sends ``trial``'s heartbeats while it runs, for code
    that drives trials with ``ask``/``tell`` rather than ``Study.optimize``."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    return get_heartbeat_thread(trial._trial_id, study._storage)


def reclaim_stale(study) -> None:
    """Fail the trials of workers that stopped sending heartbeats and queue their
    parameters again (what ``Study.optimize`` does before each trial)."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _check_url(url: str):
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = redact(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StorageError(f"storage URL {shown!r} is malformed: {USAGE}") from None
    if parsed.drivername not in SCHEMES:
        raise StorageError(
            f"storage URL {shown!r} has scheme {parsed.drivername!r}, which edgeprune "
            f"does not store sweeps in: {USAGE}"
        )
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise StorageError(
                f"storage URL {shown!r} names no file (an in-memory study is lost when the "
                "sweep ends): use sqlite:///PATH, e.g. sqlite:///sweeps/study.db"
            )
        return parsed
    if not parsed.host:
        raise StorageError(f"storage URL {shown!r} names no host: {USAGE}")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise StorageError(f"storage URL {shown!r} has a bad port: {USAGE}")
    if not parsed.database:
        raise StorageError(f"storage URL {shown!r} names no database: {USAGE}")
    return parsed


def _prepare_sqlite(path: str) -> None:
    """Check the file's folder, and put the file in WAL mode (once: it is stored in
    the file), so that readers never block the worker that writes."""
    import sqlite3

    folder = os.path.dirname(os.path.abspath(path)) or "."
    if not os.path.isdir(folder):
        raise StorageError(
            f"cannot create the sweep's study file {path}: folder {folder} does not exist; "
            "create it or name another file"
        )
    try:
        with sqlite3.connect(path, timeout=SQLITE_BUSY_SECONDS) as db:
            db.execute("PRAGMA journal_mode=WAL")
        db.close()
    except sqlite3.DatabaseError as e:
        raise StorageError(
            f"cannot open the sweep's study file {path} ({clip(e, 120)}): it must be a "
            "SQLite file edgeprune can write; remove it or name another file"
        ) from None


def retry_once():
    """The stale-trial callback: a killed worker's trial is retried once (a trial
    that kills every worker that runs it is not retried forever)."""
    import optuna

    return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)


def _rdb_storage(url, parsed, engine_kwargs, heartbeat_seconds, grace_seconds):
    import time
    import warnings

    import optuna
    from sqlalchemy.exc import DBAPIError

    for attempt in range(1, 5):
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.9
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_seconds,
                    grace_period=grace_seconds,
                    heartbeat_stale_trial_callback=retry_once(),
                )
            except DBAPIError as e:
                # Workers started together on an empty database race to create the
                # tables: the loser's CREATE fails; the tables are there on a retry.
                if attempt < 4 and any(w in str(e) for w in _CREATE_RACE):
                    time.sleep(0.2 * attempt)
                    continue
                raise _explain(e.orig if e.orig is not None else e, parsed) from None
            except RuntimeError as e:  # Optuna: the schema is of another Optuna version
                raise StorageError(
                    f"the study store {redact(url)!r} cannot be used: {clip(e, 160)}"
                ) from None


def _explain(error: BaseException, parsed) -> StorageError:
    """One line for a database error met while opening the store."""
    said = clip(str(error).strip().splitlines()[0] if str(error).strip() else error, 160)
    if parsed.get_backend_name() == "sqlite":
        return StorageError(
            f"cannot use the sweep's study file {parsed.database} ({said}): it must be a "
            "SQLite file edgeprune can write; remove it or name another file"
        )
    where = f"{parsed.host}:{parsed.port or 5432}"
    user, database = parsed.username or "(none)", parsed.database
    text = str(error)
    if "password authentication failed" in text or "no password supplied" in text:
        return StorageError(
            f"the PostgreSQL server at {where} refused user {user!r} (authentication "
            "failed): check the user name and password in the storage URL"
        )
    if re.search(r'database ".*" does not exist', text):
        return StorageError(
            f"the PostgreSQL server at {where} has no database {database!r}: create it "
            f"(createdb -O {user} {database}) or name an existing one in the storage URL"
        )
    if re.search(r'role ".*" does not exist', text):
        return StorageError(
            f"the PostgreSQL server at {where} has no user {user!r}: create it "
            "(createuser --pwprompt) or name an existing one in the storage URL"
        )
    if "permission denied" in text:
        return StorageError(
            f"user {user!r} may not create the study's tables in database {database!r} at "
            f"{where} ({said}): make {user!r} the database's owner or grant it CREATE on "
            "schema public"
        )
    if "could not translate host name" in text:
        return StorageError(
            f"cannot resolve host {parsed.host!r} of the storage URL: check the host name"
        )
    if "connection to server" in text or "timeout expired" in text:
        return StorageError(
            f"cannot reach the PostgreSQL server at {where} ({said}): start the server, "
            "or check the host and port in the storage URL"
        )
    return StorageError(f"cannot open the study store at {where}: {said}")
