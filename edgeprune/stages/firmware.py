"""The firmware stage: the final model as C++ sources for a TFLite Micro device.

Renders ``firmware/`` (model array, op resolver, arena size, the validation
harness and sketch) from the bytes the quantize stage handed on and the arena
the device check settled, and lists every file as an artifact.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgeprune.artifacts import Artifact, Flatbuffer, RunDir

FOLDER = "firmware"


@dataclass(frozen=True)
class FirmwareResult:
    """The firmware folder and the files written into it."""

    folder: str
    files: tuple[Artifact, ...]


def firmware_stage(out: RunDir, model: Flatbuffer, arena_bytes: int) -> FirmwareResult:
    """Write ``out/firmware/`` for ``model`` with an arena of ``arena_bytes``.

    Side effects: replaces the folder as a whole (see
    :func:`edgeprune.firmware.emit.write_firmware`) and records its files.

    Raises:
        ArtifactWriteError: the folder could not be written.
        UnsupportedModelError: an op cannot be registered (checked before).
    """
    from edgeprune.firmware import emit

    written = emit.write_firmware(model.data, model.name, out.file(FOLDER), arena_bytes)
    files = tuple(out.record(os.path.relpath(path, out.path), "firmware")
                  for path in written.files.values())
    return FirmwareResult(written.folder, files)
