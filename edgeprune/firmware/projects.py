"""Project templates: the firmware folder as a project each SDK builds with its own command.

A target's profile names the SDKs its engineers build with and the board's id
in each (``[sdk]`` in ``targets/*.toml``, :class:`edgeprune.target.SdkBoard`).
For every one, :func:`render_projects` returns a folder ``projects/<sdk>/``
that holds copies of the model's files and what that SDK needs around them:

- ``arduino``: a library (``library.properties``, ``src/``, an inference and a
  validation example sketch) depending on the Arduino TFLite Micro library;
- ``platformio``: ``platformio.ini`` (board, TFLite Micro library) and
  ``src/main.cc``; the validation harness is the ``<board>_validate`` env;
- ``esp-idf``: a project with the model as a component whose
  ``idf_component.yml`` depends on ``espressif/esp-tflite-micro``; the
  harness is a Kconfig option;
- ``pico-sdk``: a CMake project on ``pico-tflmicro``; the harness is a CMake
  option;
- ``zephyr``: a module (``zephyr/module.yml`` layout, CMakeLists, Kconfig) and
  a sample app (``prj.conf``; the harness is ``validation.conf``).

Each TFLite Micro port is pinned (:data:`PORTS`) and its README says so. The
inputs are the firmware files in the agreed layout (``model_<name>.h/.cc``,
``ops_<name>.h``, ``config_<name>.h``, optional ``labels_<name>.h``, the
validation harness): the C names are read from those files, not assumed, and
the model bytes from ``model_<name>.cc``. The C++ and build files are
templates under ``project_src/`` (``@{...}`` placeholders, so CMake's ``${}``
stays as is). Pure and deterministic; no TensorFlow import.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from edgeprune.errors import BadInputError
from edgeprune.firmware import alt_memory
from edgeprune.firmware import projects_layout as layouts
from edgeprune.firmware.projects_layout import head as _head
from edgeprune.target import SdkBoard, Target
from edgeprune.tflite import inspect_model

PROJECTS = "projects"
HARNESS_FILES = ("validation_harness.h", "validation_harness.cc", "edgeprune_protocol.h")
MAX_NAME_CHARS = 53  # Arduino sketch folders hold at most 63 characters: <name>_inference


@dataclass(frozen=True)
class Port:
    """The TensorFlow Lite Micro port a template builds with, pinned."""

    name: str  # as the SDK's package manager or fetch knows it
    version: str  # a release, or a commit for a port without releases
    url: str
    header: str = ""  # the header an Arduino sketch includes to pull the library in
    revision: str = ""  # the port's commit, where ``version`` is the SDK's release


_CHIRALE = Port(
    # The Library Manager name really is spelled "TensorFLowLite" (library.properties).
    "Chirale_TensorFLowLite",
    "2.0.0",
    "https://github.com/spaziochirale/Chirale_TensorFlowLite.git"
    "#46da2f989205a9216229d38cd3d1c657d79d6781",
    "Chirale_TensorFlowLite.h",
)
#: The pinned TFLite Micro port of each SDK.
PORTS: dict[str, Port] = {
    "arduino": _CHIRALE,
    "platformio": _CHIRALE,
    "esp-idf": Port(
        "espressif/esp-tflite-micro",
        "1.3.4",
        "https://components.espressif.com/components/espressif/esp-tflite-micro",
    ),
    "pico-sdk": Port(
        "raspberrypi/pico-tflmicro",
        "dfea53b977f131dc50d7060568ad4fd355d4d71e",  # 2024-12-26, "Updated to latest upstream"
        "https://github.com/raspberrypi/pico-tflmicro.git",
    ),
    # Zephyr v4.1.0's submanifests/optional.yaml pins its tflite-micro fork at
    # 8d404de7 ("third_party_static: exported", 2025-02-10; zephyr PR #85547 moved it
    # there for CMSIS-NN v7.0.0), the head of that fork's zephyr-v4.1.0 branch
    # (github.com/zephyrproject-rtos/tflite-micro). Zephyr PR #105485 (2026-03) moved
    # main on to the zephyr-v4.4.0 branch; v4.1.0 keeps this one.
    "zephyr": Port(
        "zephyrproject-rtos/tflite-micro (Zephyr's optional module)",
        "v4.1.0",
        "https://github.com/zephyrproject-rtos/zephyr",
        revision="8d404de73acf7687831e16d88e86e4f73cfddf8e",
    ),
}


@dataclass(frozen=True)
class Symbols:
    """The C names the firmware files declare, and what the templates need of the model."""

    name: str
    guard: str
    array: str
    resolver: str
    register: str
    arena: str  # the arena constant's name
    labels: str | None  # the labels array, when labels_<name>.h is there
    label_count: str | None
    input_count: int
    source: str
    model_bytes: int
    sha256: str


def check_name(name: str) -> None:
    """Raise :class:`BadInputError` unless ``name`` can name the model's C symbols,
    files, Arduino library and Zephyr module."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
        raise BadInputError(
            f"model name {name!r} is not a C identifier starting with a letter; "
            f"use letters, digits and _ (such as digits_cnn)"
        )
    if "__" in name or name.endswith("_") or len(name) > MAX_NAME_CHARS:
        raise BadInputError(
            f"model name {name!r} has '__', ends in '_' or is over {MAX_NAME_CHARS} "
            f"characters; choose a shorter plain name such as digits_cnn"
        )


def _need(files: Mapping[str, str], file: str) -> str:
    if file not in files:
        raise BadInputError(
            f"the firmware files lack {file}; project templates need the model's "
            f"firmware in the agreed layout (model_, ops_, config_ files and the "
            f"validation harness, which is written only when the arena was measured)"
        )
    return files[file]


def _find(pattern: str, text: str, file: str, what: str) -> str:
    match = re.search(pattern, text, re.M)
    if match is None:
        raise BadInputError(f"{file} declares no {what}; render the firmware files again")
    return match.group(1)


def _model_bytes(cc: str, file: str) -> bytes:
    start, end = cc.find("[] = {"), cc.rfind("};")
    if start < 0 or end < start:
        raise BadInputError(f"{file} holds no model array; render the firmware files again")
    return bytes(int(h, 16) for h in re.findall(r"0x([0-9a-fA-F]{2})", cc[start:end]))


def _elements(shape: tuple[int, ...]) -> int:
    return math.prod(max(d, 1) for d in shape)


def model_symbols(name: str, files: Mapping[str, str]) -> Symbols:
    """Read the C names and the model of the firmware ``files`` named ``name``.

    Raises:
        BadInputError: ``name`` is not a usable name, a file the templates need
            is missing, or a declaration is not found in it.
        TFLiteFormatError: the model array is not a valid ``.tflite``.
    """
    check_name(name)
    for file in HARNESS_FILES:
        _need(files, file)
    data_h, data_cc = f"model_{name}.h", f"model_{name}.cc"
    ops_h, config_h, labels_h = f"ops_{name}.h", f"config_{name}.h", f"labels_{name}.h"
    array = _find(r"extern const unsigned char (\w+)\[\];", _need(files, data_h), data_h, "array")
    ops = _need(files, ops_h)
    resolver = _find(r"using (\w+) = tflite::MicroMutableOpResolver", ops, ops_h, "resolver")
    register = _find(r"inline TfLiteStatus (\w+)\(\s*" + resolver, ops, ops_h, "register function")
    arena = _find(r"constexpr \w+ (k\w*ArenaBytes) = \d+;", _need(files, config_h), config_h,
                  "measured arena constant (k<Name>ArenaBytes)")  # fmt: skip
    labels = label_count = None
    if labels_h in files:
        text = files[labels_h]
        labels = _find(r"^constexpr const char\*\s*(?:const\s+)?(k\w+)\[[^\]]*\]\s*=",
                       text, labels_h, "labels array")  # fmt: skip
        label_count = _find(r"^constexpr \w+ (k\w+LabelCount) =", text, labels_h, "label count")
    model = _model_bytes(_need(files, data_cc), data_cc)
    info = inspect_model(model)
    if not info.inputs or not info.outputs:
        raise BadInputError(f"{data_cc} holds a model without inputs or outputs")
    match = re.search(r"Generated by edgeprune from (.+): do not edit\.", files[data_h])
    return Symbols(
        name=name,
        guard="EDGEPRUNE_" + name.upper(),
        array=array,
        resolver=resolver,
        register=register,
        arena=arena,
        labels=labels,
        label_count=label_count,
        input_count=_elements(info.inputs[0].shape),
        source=match.group(1) if match else f"model_{name}.cc",
        model_bytes=len(model),
        sha256=hashlib.sha256(model).hexdigest(),
    )


def _float_text(value: float) -> str:
    text = f"{value:.9g}"
    return text + ("" if any(c in text for c in ".en") else ".0") + "f"


def _sample_values(s: Symbols, sample: Sequence[float] | None) -> tuple[str, str]:
    if sample is None:
        values = [0.0] * s.input_count
    else:
        values = [float(v) for v in sample]
        if len(values) != s.input_count:
            raise BadInputError(
                f"the sample input has {len(values)} values; the model's input takes "
                f"{s.input_count}"
            )
        if not all(math.isfinite(v) for v in values):
            raise BadInputError("the sample input holds NaN or infinity; give finite floats")
    rows = [
        "    " + ", ".join(_float_text(v) for v in values[i : i + 8]) + ","
        for i in range(0, len(values), 8)
    ]
    return "\n".join(rows), str(len(values))


_ALT_FAILED = 'return "SetDecompressionMemory failed";'


def _fields(s: Symbols, board: SdkBoard, target: Target, sample_note: str) -> dict[str, str]:
    port = PORTS[board.sdk]
    label_body = (
        f"  return i < static_cast<size_t>({s.label_count}) ? {s.labels}[i] : nullptr;"
        if s.labels
        else "  (void)i;  // no labels_<name>.h: the labels were not given\n  return nullptr;"
    )
    return {
        "name": s.name,
        "NAME": s.name.upper(),
        "guard": s.guard,
        "array": s.array,
        "resolver": s.resolver,
        "register": s.register,
        "arena": s.arena,
        "alt_memory": "\n".join(
            alt_memory.setup_lines(
                s.guard, "interpreter", 'return "SetDecompressionMemory failed";'
            )
        ),
        "labels_include": f'#include "labels_{s.name}.h"\n' if s.labels else "",
        "label_body": label_body,
        "source": s.source,
        "sha256": s.sha256,
        "board": board.board,
        "target": target.id,
        "target_name": target.name,
        "kernels": target.kernels,
        "port_name": port.name,
        "port_version": port.version,
        "port_url": port.url,
        "port_revision": port.revision,
        "port_header": port.header,
        "sample_source": sample_note,
        "cmsis_nn": (
            "CONFIG_TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS=y\n"
            if target.kernels == "cmsis-nn"
            else ""
        ),
    }


def _common(s: Symbols, fields: dict[str, str], sample: Sequence[float] | None) -> dict[str, str]:
    """The example's code: ``<name>_app.h/.cc`` and ``<name>_sample.h``."""
    values, count = _sample_values(s, sample)
    with_head = {**fields, "sample_values": values, "sample_count": count}
    return {
        f"{s.name}_app.h": layouts.fill(
            "common/app.h", {**with_head, "head": _head(s, "Inference example API.")}
        ),
        f"{s.name}_app.cc": layouts.fill(
            "common/app.cc", {**with_head, "head": _head(s, "Inference example.")}
        ),
        f"{s.name}_sample.h": layouts.fill(
            "common/sample.h", {**with_head, "head": _head(s, "Sample input.")}
        ),
    }


def _model_files(s: Symbols, files: Mapping[str, str]) -> dict[str, str]:
    names = [f"model_{s.name}.h", f"model_{s.name}.cc", f"ops_{s.name}.h", f"config_{s.name}.h"]
    names += [f"labels_{s.name}.h"] if s.labels else []
    return {n: files[n] for n in [*names, *HARNESS_FILES]}


def render_project(
    target: Target,
    board: SdkBoard,
    name: str,
    files: Mapping[str, str],
    sample: Sequence[float] | None = None,
    sample_note: str = "",
) -> dict[str, str]:
    """One SDK's project for the firmware ``files`` of model ``name``, as
    ``{path inside projects/<sdk>/: text}``. See :func:`render_projects`."""
    s = model_symbols(name, files)
    if sample is None:
        note = "zeros (no sample was given), so the label printed means nothing yet."
    else:
        # One comment line: printable ASCII, and no backslash (it would splice the next line).
        text = "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in sample_note)
        note = text or "a sample input given to edgeprune."
    fields = _fields(s, board, target, note)
    sources = {**_model_files(s, files), **_common(s, fields, sample)}
    out, fields = layouts.LAYOUTS[board.sdk](s, fields, sources)
    out["README.md"] = layouts.fill(f"{board.sdk}/README.md", fields)
    return out


def render_projects(
    target: Target,
    name: str,
    files: Mapping[str, str],
    sample: Sequence[float] | None = None,
    sample_note: str = "",
) -> dict[str, str]:
    """The project folder of every SDK in ``target``'s ``[sdk]`` table, as
    ``{"projects/<sdk>/<path>": text}``; empty for a target without one.

    ``files`` are the firmware folder's files (``{file name: text}``) in the
    agreed layout for model ``name``. ``sample`` is the input the inference
    example runs (floats, the model's input size; zeros when None), described
    in its header by ``sample_note`` (such as "the first test image of
    digits"). Pure: the same arguments give the same text.

    Raises:
        BadInputError: ``name`` is not a usable name; a file the templates need
            is missing (the validation harness is written only with a measured
            arena) or lacks a declaration; the sample has the wrong size or is
            not finite.
        TFLiteFormatError: the model array is not a valid ``.tflite``.
    """
    out: dict[str, str] = {}
    for board in target.sdk:
        for path, text in render_project(target, board, name, files, sample, sample_note).items():
            out[f"{PROJECTS}/{board.sdk}/{path}"] = text
    return out


def write_project(
    folder: str | os.PathLike[str],
    target: Target,
    name: str,
    files: Mapping[str, str],
    sample: Sequence[float] | None = None,
    sample_note: str = "",
) -> dict[str, str]:
    """Write :func:`render_projects` into ``folder/projects/`` and return
    ``{path relative to folder: path written}``.

    Everything is rendered first; ``folder/projects`` is then replaced whole
    (:func:`edgeprune.artifacts.atomic_path`), so a failure leaves the previous
    one. Nothing is written for a target without SDKs.

    Raises:
        BadInputError, TFLiteFormatError: as :func:`render_projects`.
        ArtifactWriteError: the folder could not be written.
    """
    from edgeprune.artifacts import atomic_path

    rendered = render_projects(target, name, files, sample, sample_note)
    if not rendered:
        return {}
    root = os.path.join(os.fspath(folder), PROJECTS)
    os.makedirs(os.fspath(folder), exist_ok=True)
    with atomic_path(root) as tmp:
        os.mkdir(tmp)
        for rel, text in rendered.items():
            path = os.path.join(tmp, os.path.relpath(rel, PROJECTS))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as fh:
                fh.write(text)
    return {rel: os.path.join(os.fspath(folder), rel) for rel in rendered}
