"""Firmware artifacts for TensorFlow Lite Micro: the entry point that renders and writes them.

``write_firmware`` writes a ``firmware/`` folder for one ``.tflite`` model:
the model's C files (:mod:`edgeprune.firmware.model_files`: the C array,
``model_ops.h`` with the op resolver planned by
:mod:`edgeprune.firmware.resolver`, ``model_config.h``) and, when the arena
is known, the serial validation harness and its Arduino sketch
(:mod:`edgeprune.firmware.harness`).

Output depends only on the model bytes, its file name and the arena size (no
timestamps, no absolute paths), so regenerating for the same model changes
nothing in a firmware repository. No TensorFlow import: the model is read with
:mod:`edgeprune.tflite`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

from edgeprune.artifacts import ArtifactWriteError, atomic_path
from edgeprune.errors import BadInputError
from edgeprune.firmware import model_files as c
from edgeprune.firmware.harness import validation_files
from edgeprune.firmware.model_files import (
    MODEL_CONFIG_H,
    MODEL_DATA_CC,
    MODEL_DATA_H,
    MODEL_OPS_H,
    c_identifier,
)
from edgeprune.firmware.resolver import (
    RESOLVER_METHODS,
    ResolverCall,
    int8_only_registrations,
    resolver_calls,
    resolver_plan,
)
from edgeprune.tflite import inspect_model

# The firmware API in one place: callers import these names from here.
__all__ = [
    "FirmwareFiles",
    "MODEL_CONFIG_H",
    "MODEL_DATA_CC",
    "MODEL_DATA_H",
    "MODEL_OPS_H",
    "RESOLVER_METHODS",
    "c_identifier",
    "int8_only_registrations",
    "render",
    "resolver_calls",
    "write_firmware",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirmwareFiles:
    """What :func:`write_firmware` wrote.

    ``files`` maps each file name to its path inside ``folder``;
    ``identifier`` is the C name of the model array; ``ops`` are the resolver
    method calls of ``model_ops.h`` in the order they are made, and
    ``op_count`` their number (the resolver's template argument).
    """

    folder: str
    files: dict[str, str]
    identifier: str
    op_count: int
    ops: tuple[str, ...]


def render(model: bytes, name: str, arena_bytes: int | None) -> dict[str, str]:
    """Return the firmware files for ``model`` as ``{file name: text}``.

    ``name`` is the model's file name (``"final_int8.tflite"``; a folder part
    is ignored); it names the C identifiers (see :func:`c_identifier`) and
    appears in each file's header comment with the model's size and SHA-256.
    ``arena_bytes`` is the tensor arena size to write into ``model_config.h``,
    or None to leave it out with a comment saying it was not measured (and
    without the validation harness, which needs it). Pure: the same arguments
    give the same text.

    Raises:
        TFLiteFormatError: ``model`` is not a valid ``.tflite`` flatbuffer.
        UnsupportedModelError: the model uses an op TFLite Micro's resolver
            cannot register (custom ops included), or a non-finite I/O scale.
        BadInputError: ``arena_bytes`` is not a positive int or None.
    """
    return _render(bytes(model), name, arena_bytes)[0]


def _render(
    model: bytes, name: str, arena_bytes: int | None
) -> tuple[dict[str, str], list[ResolverCall]]:
    c.check_arena(arena_bytes)
    info = inspect_model(model)
    calls = resolver_plan(info)
    n = c.names(name)
    digest = hashlib.sha256(model).hexdigest()
    source = os.path.basename(os.fspath(name).replace("\\", "/").rstrip("/")) or "<unnamed>"

    def head(what: str) -> list[str]:
        return c.header(source, model, digest, what)

    data_head = head("Model flatbuffer for TensorFlow Lite Micro.")
    files = {
        MODEL_DATA_H: c.model_data_h(n, data_head),
        MODEL_DATA_CC: c.model_data_cc(model, n, data_head),
        MODEL_OPS_H: c.model_ops_h(calls, n, head("Op resolver with exactly the model's ops.")),
        MODEL_CONFIG_H: c.model_config_h(
            info, arena_bytes, n, head("Tensor arena size and input/output tensors.")
        ),
    }
    if arena_bytes is not None:
        files.update(validation_files(files, n, head("Serial validation for edgeprune validate.")))
    return files, calls


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def write_firmware(
    model: bytes, name: str, folder: str | os.PathLike[str], arena_bytes: int | None
) -> FirmwareFiles:
    """Write the firmware files of ``model`` into ``folder`` and return what was written.

    Everything is rendered first (see :func:`render`), then written into a
    hidden temporary folder beside ``folder``, which then replaces ``folder``
    whole (:func:`edgeprune.artifacts.atomic_path`: an existing ``folder`` is
    moved aside and deleted only once the new one is in place). A failure
    leaves the previous ``folder`` (or none) and no temporary folder behind.
    Creates missing parent folders.

    Raises:
        TFLiteFormatError, UnsupportedModelError, BadInputError: as
            :func:`render`; also BadInputError when ``folder`` is a file.
        ArtifactWriteError: the files could not be written or moved into place.
    """
    files, calls = _render(bytes(model), name, arena_bytes)
    ops = tuple(call.text() for call in calls)
    target = os.path.abspath(os.fspath(folder))
    if os.path.exists(target) and not os.path.isdir(target):
        raise BadInputError(
            f"firmware folder {os.fspath(folder)} is a file; remove it or choose another folder"
        )
    try:
        os.makedirs(os.path.dirname(target), exist_ok=True)
    except OSError as exc:
        raise ArtifactWriteError(
            f"cannot write firmware folder {os.fspath(folder)}: {exc.strerror or exc}"
        ) from exc
    with atomic_path(target) as tmp:
        os.mkdir(tmp)  # honours the umask, unlike tempfile.mkdtemp (0700)
        for file_name, text in files.items():
            os.makedirs(os.path.dirname(os.path.join(tmp, file_name)), exist_ok=True)
            _write_text(os.path.join(tmp, file_name), text)
    result = FirmwareFiles(
        folder=os.fspath(folder),
        files={f: os.path.join(os.fspath(folder), f) for f in files},
        identifier=c_identifier(name),
        op_count=len(ops),
        ops=ops,
    )
    logger.info(
        "wrote %s for %s (%d bytes, %d ops) to %s",
        ", ".join(files),
        name,
        len(model),
        len(ops),
        result.folder,
    )
    return result
