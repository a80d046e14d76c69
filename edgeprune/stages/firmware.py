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
    files = tuple(
        out.record(os.path.relpath(path, out.path), "firmware") for path in written.files.values()
    )
    return FirmwareResult(written.folder, files)


@dataclass(frozen=True)
class FirmwareBuild:
    """What :func:`build_firmware` measured and wrote."""

    check: object  # rules.budget.CheckResult: the evidence the arena size came from
    firmware: FirmwareResult


def build_firmware(
    model_path: str,
    target,
    out: str | None = None,
    options=None,
    max_model_bytes: int | None = None,
    force: bool = False,
) -> FirmwareBuild:
    """Firmware sources for the ``.tflite`` at ``model_path`` on a TFLite Micro
    ``target`` (a profile id, path or :class:`~edgeprune.target.Target`): the
    device check measures the arena (under the recipe's ``[budget]``
    ``options``), then ``firmware/`` is written into ``out`` (default: the
    model's folder) with that arena. What ``edgeprune firmware`` does. A model
    over ``max_model_bytes`` (default 64 MiB) is refused unread, and so is an
    ``out`` that holds another model's run (unless ``force``).

    The folder is written whether or not the model fits the budgets: the check
    in the result says which; the caller decides.

    Raises:
        BadInputError: unreadable model, unknown profile, a Linux target (it
            runs the ``.tflite`` itself), an output folder that cannot be
            written, or holds another model's run (OtherModelError);
            TargetMismatchError: TFLite Micro cannot run the model.
    """
    from edgeprune import run_folder
    from edgeprune.artifacts import check_out_dir, read_flatbuffer
    from edgeprune.errors import BadInputError
    from edgeprune.stages.check import check_flatbuffer
    from edgeprune.target import Target, load_target

    target = target if isinstance(target, Target) else load_target(target)
    if target.runtime != "tflm":
        raise BadInputError(
            f"{target.id} runs LiteRT on Linux and loads the .tflite file "
            f"itself; firmware is for TFLite Micro targets"
        )
    model = read_flatbuffer(model_path, max_model_bytes)
    out = out or os.path.dirname(os.path.abspath(model_path))
    check_out_dir(out)
    with run_folder.hold(out, "firmware"):
        run_folder.refuse_foreign_firmware(out, model_path, model.sha256, force)
        check = check_flatbuffer(model, target, options)
        return FirmwareBuild(check, firmware_stage(RunDir(out), model, check.evidence.arena_bytes))
