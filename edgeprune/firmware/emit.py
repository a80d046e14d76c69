"""Firmware artifacts for TensorFlow Lite Micro: the entry point that renders and writes them.

``write_firmware`` writes a ``firmware/`` folder for one ``.tflite`` model,
every file and C symbol named by the model's C name ``<name>``
(:mod:`edgeprune.firmware.model_files`): ``model_<name>.h/.cc`` (the C
array), ``ops_<name>.h`` (the op resolver planned by
:mod:`edgeprune.firmware.resolver`), ``config_<name>.h`` (arena, tensors),
``labels_<name>.h`` when the labels are known
(:mod:`edgeprune.firmware.labels`) and, when the arena is known,
``inference_example.cc`` (:mod:`edgeprune.firmware.example`) and the serial
validation harness (:mod:`edgeprune.firmware.harness`); with a target whose
profile names SDKs, a project per SDK under ``projects/``, each of which builds
the harness as an option (:mod:`edgeprune.firmware.projects`).

Output depends only on the model bytes, its file name, the C name, the arena
size, the labels and the example input (no timestamps, no absolute paths), so
regenerating for the same model changes nothing in a firmware repository. No
TensorFlow import: the model is read with :mod:`edgeprune.tflite`.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass

from edgeprune.artifacts import ArtifactWriteError, atomic_path
from edgeprune.errors import BadInputError
from edgeprune.firmware import model_files as c
from edgeprune.firmware.alt_memory import alt_block
from edgeprune.firmware.example import (
    EXAMPLE_CC,
    ExampleInput,
    example_unsupported,
    inference_example_cc,
    is_classifier,
)
from edgeprune.firmware.harness import validation_files
from edgeprune.firmware.labels import check_labels, labels_h
from edgeprune.firmware.model_files import (
    Names,
    c_identifier,
    check_name,
    default_name,
    names,
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
    "EXAMPLE_CC",
    "ExampleInput",
    "FirmwareFiles",
    "ModelFacts",
    "Names",
    "RESOLVER_METHODS",
    "c_identifier",
    "check_name",
    "default_name",
    "int8_only_registrations",
    "names",
    "render",
    "resolver_calls",
    "write_firmware",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FirmwareFiles:
    """What :func:`write_firmware` wrote.

    ``files`` maps each file name to its path inside ``folder``; ``name`` is
    the model's C name and ``identifier`` the C name of the model array;
    ``ops`` are the resolver method calls of ``ops_<name>.h`` in the order they
    are made, and ``op_count`` their number (the resolver's template argument).
    ``example``: why ``inference_example.cc`` is missing, or None when written.
    """

    folder: str
    files: dict[str, str]
    name: str
    identifier: str
    op_count: int
    ops: tuple[str, ...]
    example: str | None = None


@dataclass(frozen=True)
class ModelFacts:
    """What is known about a model beyond its bytes, for the firmware files.

    ``labels``: one name per value of the first output, with ``labels_note``
    saying where they come from; ``task``: ``"classification"``,
    ``"regression"`` or None (then a model whose output comes from a SOFTMAX or
    LOGISTIC, or that has labels, is a classifier); ``sample``: the example's
    input (None: zeros); ``target``: the device profile the firmware is for
    (with a measured arena, its ``[sdk]`` table adds a project per SDK under
    ``projects/``, :mod:`edgeprune.firmware.projects`).
    """

    labels: tuple[str, ...] | None = None
    labels_note: str = "Labels of the model's output values."
    task: str | None = None
    sample: ExampleInput | None = None
    target: object | None = None  # a Target


def render(
    model: bytes,
    source: str,
    arena_bytes: int | None,
    name: str | None = None,
    facts: ModelFacts | None = None,
) -> dict[str, str]:
    """Return the firmware files for ``model`` as ``{file name: text}``.

    ``source`` is the model's file name (``"digits_cnn.tflite"``; a folder part
    is ignored): it appears in each file's header comment with the model's
    size and SHA-256. ``name`` is the model's C name, which every file and C
    symbol carries (default: :func:`default_name` of ``source``).
    ``arena_bytes`` is the tensor arena size to write into ``config_<name>.h``,
    or None to leave it out with a comment saying it was not measured (and
    without the example and the validation harness, which need it). ``facts``:
    labels, task and example input (:class:`ModelFacts`). Pure: the same
    arguments give the same text.

    Raises:
        TFLiteFormatError: ``model`` is not a valid ``.tflite`` flatbuffer.
        UnsupportedModelError: the model uses an op TFLite Micro's resolver
            cannot register (custom ops included), or a non-finite I/O scale.
        BadInputError: ``arena_bytes`` is not a positive int or None, ``name``
            is not a C name, or the labels do not match the model's output.
    """
    return _render(bytes(model), source, arena_bytes, name, facts or ModelFacts())[0]


def _render(
    model: bytes, source: str, arena_bytes: int | None, name: str | None, facts: ModelFacts
) -> tuple[dict[str, str], list[ResolverCall], Names, str | None]:
    c.check_arena(arena_bytes)
    n = names(default_name(source) if name is None else name)
    info = inspect_model(model)
    calls = resolver_plan(info)
    if facts.labels is not None:
        check_labels(facts.labels, info)
    digest = hashlib.sha256(model).hexdigest()
    shown = os.path.basename(os.fspath(source).replace("\\", "/").rstrip("/")) or "<unnamed>"

    def head(what: str) -> list[str]:
        return c.header(shown, model, digest, what)

    data_head = head("Model flatbuffer for TensorFlow Lite Micro.")
    files = {
        n.model_h: c.model_data_h(n, data_head),
        n.model_cc: c.model_data_cc(model, n, data_head),
        n.ops_h: c.model_ops_h(calls, n, head("Op resolver with exactly the model's ops.")),
        n.config_h: c.model_config_h(
            info,
            arena_bytes,
            n,
            head("Tensor arena size and input/output tensors."),
            alt_block(model, facts.target),
        ),
    }
    if facts.labels is not None:
        files[n.labels_h] = labels_h(
            facts.labels, n, head("Class labels of the model's outputs."), facts.labels_note
        )
    missing = "the arena was not measured" if arena_bytes is None else example_unsupported(info)
    if missing is None:
        classifier = facts.task == "classification" or (
            facts.task is None and (facts.labels is not None or is_classifier(info))
        )
        files[EXAMPLE_CC] = inference_example_cc(
            info,
            n,
            head("Inference example: one input, end to end."),
            facts.sample,
            facts.labels is not None,
            classifier,
        )
    if arena_bytes is not None:
        files.update(validation_files(head("Serial validation for edgeprune validate.")))
    if arena_bytes is not None and facts.target is not None:
        from edgeprune.firmware.projects import render_projects

        s = facts.sample
        sample, note = (s.values, s.note) if s is not None else (None, "")
        files.update(render_projects(facts.target, n.name, files, sample, note))
    return files, calls, n, missing


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="ascii", newline="\n") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def write_firmware(
    model: bytes,
    source: str,
    folder: str | os.PathLike[str],
    arena_bytes: int | None,
    name: str | None = None,
    facts: ModelFacts | None = None,
) -> FirmwareFiles:
    """Write the firmware files of ``model`` into ``folder`` and return what was written.

    Everything is rendered first (see :func:`render`, which takes ``source``,
    ``arena_bytes``, ``name`` and ``facts``), then written into a
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
    files, calls, n, missing = _render(
        bytes(model), source, arena_bytes, name, facts or ModelFacts()
    )
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
        name=n.name,
        identifier=n.array,
        op_count=len(ops),
        ops=ops,
        example=missing,
    )
    if missing is not None:
        logger.info("no %s for %s: %s", EXAMPLE_CC, source, missing)
    logger.info(
        "wrote %s for %s (%d bytes, %d ops) to %s",
        ", ".join(files),
        source,
        len(model),
        len(ops),
        result.folder,
    )
    return result
