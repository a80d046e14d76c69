"""The run directory: artifact names, atomic writes and hashes.

Every artifact is written to a hidden temporary file in the same folder and
renamed into place only when complete, so a crash never leaves a file under
an artifact's name that looks finished. :class:`RunDir` lists every artifact
with its SHA-256; :mod:`edgeprune.report` writes that list into
``report.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edgeprune.errors import BadInputError, EdgepruneError

log = logging.getLogger(__name__)


class ArtifactWriteError(EdgepruneError, OSError):
    """An artifact could not be written (disk full, permissions)."""


# Artifact names, by stage. Later stages (per-target firmware) extend this.
BASELINE_KERAS = "baseline.keras"
BASELINE_META = "baseline.json"
BASELINE_TFLITE = "baseline_float32.tflite"
STRUCTURED_KERAS = "structured.keras"
STRUCTURED_TFLITE = "structured_float32.tflite"
PRUNED_KERAS = "pruned.keras"
PRUNED_TFLITE = "pruned_float32.tflite"


def final_tflite_name(mode: str) -> str:
    """Name of the converted model for quantization ``mode``."""
    return f"final_{mode}.tflite"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def sha256_path(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a folder (its files' relative paths and hashes, sorted)."""
    if not os.path.isdir(path):
        return sha256_file(path)
    h = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            h.update(os.path.relpath(full, path).encode() + b"\0")
            h.update(sha256_file(full).encode())
    return h.hexdigest()


def check_out_dir(path: str | os.PathLike) -> None:
    """Raise :class:`BadInputError` if ``path`` cannot become a run directory.

    Writability is tried for real (``os.access`` says yes to root everywhere):
    folders this creates for the probe are removed again, so nothing is left.
    """
    p = os.path.abspath(os.fspath(path))
    if os.path.exists(p) and not os.path.isdir(p):
        raise BadInputError(
            f"output directory {os.fspath(path)} is a file; choose a folder path or remove the file"
        )
    parent = os.path.dirname(p)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise BadInputError(
            f"output directory {os.fspath(path)} lies under {parent}, which is a file"
        )
    created = []
    try:
        probe = p
        missing = []
        while not os.path.exists(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        for folder in reversed(missing):
            os.mkdir(folder)
            created.append(folder)
        fd, tmp = tempfile.mkstemp(prefix=".edgeprune-probe-", dir=p)
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise BadInputError(
            f"output directory {os.fspath(path)} cannot be written "
            f"({exc.strerror}); choose another folder"
        ) from None
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                os.rmdir(folder)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, suffix: str = "") -> Iterator[str]:
    """Yield a temporary path beside ``final``; rename it to ``final`` on success.

    The temporary name starts with a dot and keeps ``suffix`` (tf_keras insists
    on ``.keras``). The writer may create a file or a folder there. A folder
    replaces an existing folder ``final`` whole: the old one is moved aside,
    the new one renamed into place, and only then the old one deleted (moved
    back if the rename fails), so ``final`` is always the old folder or the
    new one, never a mix. On error the temporary file or folder is removed.

    Raises:
        ArtifactWriteError: writing, syncing or renaming failed (any OSError).
    """
    final = os.fspath(final)
    folder, base = os.path.split(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{base}.", suffix=f".tmp{suffix}", dir=folder or ".")
    os.close(fd)
    os.unlink(tmp)  # writers such as tf_keras refuse to overwrite or want to create it
    try:
        yield tmp
        if os.path.isfile(tmp):
            with open(tmp, "rb+") as fh:  # on disk before it gets its real name
                os.fsync(fh.fileno())
        if os.path.isdir(tmp):
            _fsync_folder(tmp)
            if os.path.isdir(final):
                _replace_folder(tmp, final)
            else:
                os.replace(tmp, final)
            _fsync_folder(folder or ".")
        else:
            os.replace(tmp, final)
    except OSError as exc:
        raise ArtifactWriteError(
            f"writing {final} failed ({exc.strerror or exc}); check free "
            f"space and permissions of {folder or '.'}"
        ) from None
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        elif os.path.exists(tmp):
            os.unlink(tmp)


def _replace_folder(new: str, final: str) -> None:
    # Folders cannot be renamed over one another: move the old one aside first.
    folder, base = os.path.split(final)
    old = os.path.join(folder or ".", f".{base}.old-{secrets.token_hex(4)}")
    os.rename(final, old)
    try:
        os.rename(new, final)
    except OSError:
        try:
            os.rename(old, final)
        except OSError:
            log.error("the previous folder %s was kept as %s", final, old)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _fsync_folder(path: str) -> None:
    """Sync a folder's entries to disk where the platform allows it (best effort)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


@dataclass(frozen=True)
class Artifact:
    """A file a stage wrote: its path, SHA-256 and size, as ``report.json`` lists it."""

    path: str
    sha256: str
    size_bytes: int


@dataclass(frozen=True)
class Flatbuffer:
    """A ``.tflite`` model held in memory, with the file it came from or was written to.

    Stages hand this on, so that no stage reads back what an earlier one wrote.
    ``mode`` is the quantization mode (``int8``, ``float32``, ...; ``""`` when
    not known). ``info`` is the parsed model, parsed on first use unless given.
    """

    data: bytes = field(repr=False)
    path: str
    sha256: str
    mode: str
    parsed: Any = field(default=None, repr=False, compare=False)  # tflite.ModelInfo

    @classmethod
    def of(cls, data: bytes, path: str, mode: str, info: Any = None) -> Flatbuffer:
        return cls(data, path, sha256_bytes(data), mode, info)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def info(self):
        """The parsed model (:class:`edgeprune.tflite.ModelInfo`).

        Raises:
            TFLiteFormatError: the bytes are not a complete ``.tflite``.
        """
        if self.parsed is None:
            from edgeprune.tflite import inspect_model

            # a cache, not a change: the same bytes always parse the same
            object.__setattr__(self, "parsed", inspect_model(self.data))
        return self.parsed


@dataclass
class RunDir:
    """A run directory. Created lazily by the first write, never by construction."""

    path: str
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def _ensure(self) -> None:
        os.makedirs(self.path, exist_ok=True)

    def write_bytes(self, name: str, data: bytes, stage: str) -> Artifact:
        self._ensure()
        path = self.file(name)
        write_bytes_atomic(path, data)
        return self.record(name, stage, data)

    def write_flatbuffer(self, name: str, data: bytes, stage: str, mode: str) -> Flatbuffer:
        """Write a ``.tflite`` and return it in memory with its path and hash."""
        written = self.write_bytes(name, data, stage)
        return Flatbuffer(data, written.path, written.sha256, mode)

    def write_with(
        self, name: str, writer: Callable[[str], None], stage: str, suffix: str = ""
    ) -> Artifact:
        """Write an artifact through ``writer(tmp_path)`` (for libraries that save to a path)."""
        self._ensure()
        path = self.file(name)
        with atomic_path(path, suffix=suffix) as tmp:
            writer(tmp)
        return self.record(name, stage)

    def record(self, name: str, stage: str, data: bytes | None = None) -> Artifact:
        """List the file ``name`` as ``stage``'s artifact (``data``: its bytes, if in hand)."""
        path = self.file(name)
        digest = sha256_bytes(data) if data is not None else sha256_file(path)
        size = len(data) if data is not None else os.path.getsize(path)
        self.artifacts[name] = {"stage": stage, "path": name, "bytes": size, "sha256": digest}
        return Artifact(path, digest, size)

    def _inside(self, name: str) -> bool:
        root = os.path.realpath(self.path)
        return os.path.realpath(self.file(name)).startswith(root + os.sep)

    def remove_unlisted(self, names: set[str]) -> list[str]:
        """Delete the artifacts among ``names`` this run did not write (stale),
        and folders they leave empty; never anything outside this folder."""
        removed = []
        for name in sorted(names - set(self.artifacts)):
            if self._inside(name) and os.path.isfile(self.file(name)):
                os.unlink(self.file(name))
                removed.append(name)
                self._remove_empty_parents(self.file(name))
        return removed

    def undo(self, previous: set[str], protected: str) -> bool:
        """Delete what this run wrote and what the report it replaced listed
        (``previous``), never the file at ``protected`` (the input model), and
        forget them; True when there was anything to delete. Errors while
        deleting are ignored: the run's own failure is the one to show."""
        names = set(self.artifacts) | previous
        self.artifacts.clear()
        keep = os.path.abspath(protected)
        with contextlib.suppress(OSError):
            self.remove_unlisted({n for n in names if os.path.abspath(self.file(n)) != keep})
        return bool(names)

    def _remove_empty_parents(self, path: str) -> None:
        """Remove the folders above ``path`` that are left empty, up to (not
        including) this run folder (``firmware/projects/<sdk>/src/`` nests)."""
        root = os.path.realpath(self.path)
        folder = os.path.realpath(os.path.dirname(path))
        while folder != root and folder.startswith(root + os.sep):
            try:
                os.rmdir(folder)
            except OSError:  # not empty (or gone): the folders above are not empty either
                return
            folder = os.path.dirname(folder)

    def forget_artifact(self, name: str) -> None:
        """Unlist ``name`` and delete its file (only a plain name inside this folder)."""
        self.artifacts.pop(name, None)
        if self._inside(name) and os.path.isfile(self.file(name)):
            os.unlink(self.file(name))


def read_flatbuffer(path: str, max_bytes: int | None = None) -> Flatbuffer:
    """Read, parse and verify a ``.tflite`` file; bad files are one-line
    :class:`BadInputError` (:class:`~edgeprune.errors.InvalidModelError` when the
    bytes are not a valid model).

    Only a regular file of at most ``max_bytes`` is read (default
    :data:`edgeprune.tflite.MAX_MODEL_BYTES`, 64 MiB). Its ``mode`` is ``""``:
    a file given by the user says its dtypes, not how it was converted.
    """
    from edgeprune.errors import InvalidModelError
    from edgeprune.tflite import (
        MAX_MODEL_BYTES,
        TFLiteFormatError,
        TFLiteInvalidError,
        inspect_model,
        read_model_file,
    )

    data = read_model_file(path, MAX_MODEL_BYTES if max_bytes is None else max_bytes)
    try:
        info = inspect_model(data, label=path)  # labelled, so that errors name the file
    except TFLiteInvalidError:
        raise
    except TFLiteFormatError as exc:
        raise InvalidModelError(f"{exc}; pass a complete .tflite flatbuffer") from None
    return Flatbuffer.of(data, path, "", info)
