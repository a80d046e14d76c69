"""One writer per run folder: the folder lock and the cleanup of a killed writer's leftovers.

A run (or a stage command) that writes into a folder holds an exclusive
``fcntl.flock`` on ``.edgeprune.lock`` in it for as long as it writes. A second
writer is refused at once, naming the holder, instead of both replacing each
other's files and the first one's summary describing files it no longer owns.
The kernel drops a ``flock`` when its process ends, however it ends (kill -9
included), so a lock is never stale: the file a killed holder leaves behind is
simply taken by the next run.

Once the lock is held, the temporary files and folders that
:func:`edgeprune.artifacts.atomic_path` creates (``.NAME.XXXXXXXX.tmpSUFFIX``
and ``.NAME.old-XXXXXXXX``; also :func:`edgeprune.artifacts.check_out_dir`'s
``.edgeprune-probe-XXXXXXXX``) and a killed writer left are removed: nobody else
can be writing them, and their pattern is edgeprune's own, so no user file
matches it. A run also journals in the lock file the artifacts it may write
(and those of the run it replaces): when it is killed before its
``report.json``, the next holder finds the journal and deletes them, so a
killed run does not leave a half-written folder for long.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from edgeprune.errors import BadInputError

log = logging.getLogger(__name__)

LOCK_NAME = ".edgeprune.lock"
_JOURNAL = "may write "

# What atomic_path names its temporary files (tempfile's 8 random characters
# between ".NAME." and ".tmp"), _replace_folder the folder it moves aside, and
# check_out_dir its probe file.
_LEFTOVER = re.compile(
    r"^\..+\.[a-z0-9_]{8}\.tmp(\.[A-Za-z0-9]+)?$"
    r"|^\..+\.old-[0-9a-f]{8}$"
    r"|^\.edgeprune-probe-[a-z0-9_]{8}$"
)


class FolderInUseError(BadInputError):
    """Another edgeprune process is writing the run folder."""


class OtherModelError(BadInputError):
    """The run folder holds the run of another model, which a run would replace."""


def is_leftover(name: str) -> bool:
    """True for the name of a temporary file or folder edgeprune's atomic writer makes."""
    return bool(_LEFTOVER.match(name))


@dataclass
class HeldFolder:
    """A run folder whose lock this process holds (what :func:`hold` yields).

    ``removed``: what was cleaned up on entry, relative to the folder: the
    atomic writer's leftovers and the files of a run killed part way.
    """

    path: str
    fd: int = field(repr=False)
    removed: list[str]

    def journal(self, names: Iterable[str]) -> None:
        """Note in the lock file the artifacts a run is about to write or leave
        unlisted: if this process dies without unlocking (kill -9), the next
        holder deletes them, unless the run got as far as its ``report.json``."""
        text = "".join(f"{_JOURNAL}{name}\n" for name in sorted(names))
        with contextlib.suppress(OSError):  # best effort: the lock itself is what counts
            os.write(self.fd, text.encode())
            os.fsync(self.fd)


@contextlib.contextmanager
def hold(folder: str | os.PathLike, command: str = "run") -> Iterator[HeldFolder]:
    """Hold the lock of run folder ``folder`` (created if missing) while the block runs.

    On entry, removes the atomic writer's leftovers in the folder and, when
    the previous holder was a run killed before its report (its lock file
    still holds a journal, see :meth:`HeldFolder.journal`), the files it
    journaled. The lock file is removed on exit; a folder this call created
    is removed again if it is still empty then (a run refused or failed before
    writing leaves nothing).

    Raises:
        FolderInUseError: another process holds the folder's lock.
        BadInputError: the folder cannot be created or the lock file written.
    """
    path = os.path.abspath(os.fspath(folder))
    created = []  # the folders this call makes, innermost first
    probe = path
    while not os.path.exists(probe):
        created.append(probe)
        probe = os.path.dirname(probe)
    try:
        os.makedirs(path, exist_ok=True)
        fd, before = _acquire(os.fspath(folder), command)
    except OSError as exc:
        _remove_if_empty(created)
        raise BadInputError(
            f"run folder {os.fspath(folder)} cannot be created ({exc.strerror}); "
            f"choose a folder you can write"
        ) from None
    except BaseException:
        _remove_if_empty(created)
        raise
    try:
        yield HeldFolder(path, fd, _recover(path, before) + remove_leftovers(path))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(path, LOCK_NAME))  # still ours: we hold the lock
        os.close(fd)
        _remove_if_empty(created)


def ensure_free(folder: str | os.PathLike) -> None:
    """Refuse a folder another process is writing, without taking its lock
    (for a one-file write such as ``check --report``); a missing folder is free.

    Raises:
        FolderInUseError: another process holds the folder's lock.
    """
    lock = os.path.join(os.fspath(folder), LOCK_NAME)
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise _in_use(os.fspath(folder), lock) from None
    finally:
        os.close(fd)


def report_section(folder: str | os.PathLike, key: str) -> dict | None:
    """The ``key`` section (``inputs``, ``artifacts``) of ``folder``'s ``report.json``
    as plain JSON, read leniently: None when there is no report, it is not JSON, or
    the section is not an object. For the guards that ask what a folder holds
    before anything is written; :func:`edgeprune.report.read` is the strict reader."""
    import json

    from edgeprune.report import REPORT_NAME

    try:
        with open(os.path.join(os.fspath(folder), REPORT_NAME), encoding="utf-8") as fh:
            section = json.load(fh).get(key)
    except (OSError, ValueError, AttributeError):
        return None
    return section if isinstance(section, dict) else None


def previous_model(folder: str | os.PathLike) -> tuple[str, str | None] | None:
    """The model (``builtin:<name>`` or a file's absolute path) and its SHA-256 that
    the run in ``folder`` took in, from its ``report.json``; None when the folder
    holds no readable run report (nothing, a check report, a damaged file)."""
    inputs = report_section(folder, "inputs")
    if inputs is None:
        return None
    model = inputs.get("model")
    if not isinstance(model, str) or not model:
        return None
    sha = inputs.get("model_sha256")
    return model, sha if isinstance(sha, str) else None


def refuse_other_model(
    folder: str | os.PathLike, model: str, sha256: str | None, force: bool = False
) -> None:
    """Refuse to run ``model`` (``builtin:<name>`` or an absolute path; ``sha256`` of
    its file) into ``folder`` when the run there is of another model, unless ``force``.

    The same model is the same built-in, the same file path (edited in place:
    the usual loop of retrain and re-run) or the same bytes at another path;
    anything else is another model, whose run would be replaced silently.

    Raises:
        OtherModelError: another model's run is in ``folder`` and ``force`` is off.
    """
    old = previous_model(folder)
    if force or old is None:
        return
    old_model, old_sha = old
    if old_model == model or (sha256 is not None and old_sha == sha256):
        return
    shown = old_model.replace("builtin:", "the built-in ", 1)
    raise OtherModelError(
        f"{os.fspath(folder)} holds the run of another model ({shown}), which this run "
        f"would replace; choose another output folder (--out) or pass --force to replace it"
    )


def refuse_foreign_firmware(
    folder: str | os.PathLike, model_path: str, sha256: str, force: bool = False
) -> None:
    """Refuse to write ``firmware/`` for the ``.tflite`` at ``model_path`` (``sha256``)
    into ``folder`` when ``folder`` holds a run whose report lists no artifact with
    those bytes, unless ``force``: that firmware would not match the run's report,
    and ``validate`` would then check one model's firmware against another's.

    Raises:
        OtherModelError: ``folder``'s run is of another model and ``force`` is off.
    """
    listed = report_section(folder, "artifacts")
    if listed is None or not all(isinstance(a, dict) for a in listed.values()):
        return  # no readable run report: nothing firmware/ could contradict
    hashes = {a.get("sha256") for a in listed.values()}
    if force or sha256 in hashes:
        return
    raise OtherModelError(
        f"{os.fspath(folder)} holds the run of another model than {os.path.basename(model_path)}; "
        f"its firmware/ would not match that run's report; choose another folder (--out) or "
        f"pass --force to write it there"
    )


def remove_leftovers(folder: str | os.PathLike) -> list[str]:
    """Delete the atomic writer's leftovers in ``folder`` and return their names.
    Call only while holding the folder's lock. (``firmware/`` is written as one
    temporary folder beside it, so its leftovers are here too.)"""
    path = os.fspath(folder)
    try:
        names = sorted(filter(is_leftover, os.listdir(path)))
    except OSError:
        return []
    for name in names:
        delete(os.path.join(path, name))
    if names:
        log.info("removed leftovers of an interrupted write in %s: %s", path, ", ".join(names))
    return names


def delete(path: str) -> None:
    """Remove a file, link or folder (a folder with everything in it), if it is there."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(path)


def _recover(folder: str, lock_text: str) -> list[str]:
    """Delete what a run killed before its report journaled (see
    :meth:`HeldFolder.journal`); return the names removed."""
    from edgeprune.report import REPORT_NAME

    head, *lines = lock_text.splitlines() or [""]
    names = [line[len(_JOURNAL) :] for line in lines if line.startswith(_JOURNAL)]
    if ", run, " not in head or not names or os.path.exists(os.path.join(folder, REPORT_NAME)):
        return []
    root = os.path.realpath(folder)
    removed = []
    for name in names:
        full = os.path.join(folder, name)
        if not os.path.realpath(full).startswith(root + os.sep):
            continue
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full, ignore_errors=True)
        elif os.path.lexists(full):
            with contextlib.suppress(OSError):
                os.unlink(full)
        else:
            continue
        removed.append(name)
    if removed:
        log.warning(
            "a run killed part way (%s) left files in %s: removed %s",
            head,
            folder,
            ", ".join(removed),
        )
    return removed


def _acquire(folder: str, command: str) -> tuple[int, str]:
    """Lock ``folder``'s lock file and write who holds it; return its descriptor
    and what the file held before (a killed holder's journal, or nothing)."""
    lock = os.path.join(folder, LOCK_NAME)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BadInputError(
                f"run folder {folder} cannot be locked ({exc.strerror}); choose a "
                f"folder you can write"
            ) from None
        try:
            if not _lock_exclusive(fd):
                os.close(fd)
                raise _in_use(folder, lock)
        except OSError as exc:
            os.close(fd)
            raise BadInputError(
                f"run folder {folder} cannot be locked ({exc.strerror}); choose a "
                f"local folder (network file systems may not support locks)"
            ) from None
        # The holder before us may have unlinked the file after we opened it:
        # then we hold a lock nobody else can see; open the new file instead.
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    before = b""
    with contextlib.suppress(OSError):
        before = os.pread(fd, 1 << 20, 0)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    with contextlib.suppress(OSError):  # who holds it is a courtesy for the message
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}, {command}, started {stamp}\n".encode())
    return fd, before.decode("utf-8", errors="replace")


def _lock_exclusive(fd: int, attempts: int = 5) -> bool:
    """Take the exclusive lock; False while another process holds it. A probe of
    :func:`ensure_free` holds a shared lock for microseconds: a few short retries
    keep it from refusing a run that starts at that moment."""
    for _ in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        time.sleep(0.01)
    return False


def _in_use(folder: str, lock: str) -> FolderInUseError:
    holder = ""
    with contextlib.suppress(OSError), open(lock, encoding="utf-8", errors="replace") as fh:
        holder = fh.read(200).strip()
    pid, command, started = (holder.split(", ") + ["", ""])[:3]
    ok = pid.startswith("pid ") and started.startswith("started ")
    who = f" ({pid}, edgeprune {command}, {started})" if ok else ""
    return FolderInUseError(
        f"run folder {folder} is in use by another edgeprune process{who}; wait "
        f"for it to finish or choose another output folder"
    )


def _remove_if_empty(folders: list[str]) -> None:
    """Remove ``folders`` (innermost first) while they are empty."""
    for path in folders:
        try:
            os.rmdir(path)
        except OSError:
            return
