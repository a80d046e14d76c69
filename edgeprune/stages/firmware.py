"""The firmware stage: the final model as C++ sources for a TFLite Micro device.

Renders ``firmware/`` (model array, op resolver, arena size, labels, the
inference example, the validation harness, a project per SDK of the target) from the bytes the
quantize stage handed on and the arena the device check settled, and lists
every file as an artifact. :func:`build_firmware` does the same for any
``.tflite`` file (``edgeprune firmware``); both write through
:func:`firmware_stage`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from edgeprune.artifacts import Artifact, Flatbuffer, RunDir
from edgeprune.firmware.model_files import check_name

__all__ = ["FOLDER", "FirmwareResult", "build_firmware", "check_name", "firmware_stage"]

FOLDER = "firmware"

# The stems of the .tflite files a run writes: they say which stage, not which
# model, so a firmware name never comes from them.
_STAGE_STEMS = ("baseline_float32", "structured_float32", "pruned_float32")


@dataclass(frozen=True)
class FirmwareResult:
    """The firmware folder, the files written into it and the model's C name."""

    folder: str
    files: tuple[Artifact, ...]
    name: str = ""


def firmware_stage(
    out: RunDir, model: Flatbuffer, arena_bytes: int, name: str | None = None, facts=None
) -> FirmwareResult:
    """Write ``out/firmware/`` for ``model`` with an arena of ``arena_bytes``, its
    files and C symbols named ``name`` (default: from the model's file name),
    with ``facts`` (:class:`edgeprune.firmware.emit.ModelFacts`: labels, task,
    example input).

    Side effects: replaces the folder as a whole (see
    :func:`edgeprune.firmware.emit.write_firmware`) and records its files.

    Raises:
        ArtifactWriteError: the folder could not be written.
        UnsupportedModelError: an op cannot be registered (checked before).
        BadInputError: ``name`` is not a C name, or the labels do not match.
    """
    from edgeprune.firmware import emit

    written = emit.write_firmware(
        model.data,
        model.name,
        out.file(FOLDER),
        arena_bytes,
        name or default_name(model.path),
        facts,
    )
    files = tuple(
        out.record(os.path.relpath(path, out.path), "firmware") for path in written.files.values()
    )
    return FirmwareResult(written.folder, files, written.name)


def default_name(model_path: str, source: str | None = None) -> str:
    """The firmware's C name for the model at ``model_path``: the name of the model
    its run took in (``source``: ``builtin:<name>`` or a file path), else the file's
    stem, sanitised (:func:`edgeprune.firmware.model_files.default_name`); a stage's
    file name (``final_int8``, ``pruned_float32``) gives way to its folder's name."""
    from edgeprune.firmware.model_files import default_name as c_name

    if source:
        if source.startswith("builtin:"):
            return c_name(source.removeprefix("builtin:"))
        return _source_name(source)
    stem = os.path.splitext(os.path.basename(model_path))[0]
    if stem.startswith("final_") or stem in _STAGE_STEMS:
        folder = os.path.basename(os.path.dirname(os.path.abspath(model_path)))
        return c_name(folder) if folder else "model"
    return c_name(model_path)


def _source_name(source: str) -> str:
    """The C name of a Keras model file or folder a run took in. A stage's own file
    (a sweep's trials take its ``baseline/baseline.keras``) gives way to the model
    its ``baseline.json`` says it was trained from, else to its folder's name."""
    import json

    from edgeprune.artifacts import BASELINE_META
    from edgeprune.firmware.model_files import default_name as c_name

    stem = os.path.splitext(os.path.basename(os.path.normpath(source)))[0]
    if stem not in ("baseline", "structured", "pruned"):
        return c_name(stem)
    try:
        with open(os.path.join(os.path.dirname(source), BASELINE_META), encoding="utf-8") as fh:
            model = json.load(fh)["key"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        model = None
    if isinstance(model, str) and model:
        return c_name(os.path.splitext(os.path.basename(os.path.normpath(model)))[0])
    folder = os.path.basename(os.path.dirname(os.path.abspath(source)))
    return c_name(folder) if folder else "model"


def builtin_facts(dataset: str | None, task: str | None, x_test=None, y_test=None):
    """The :class:`~edgeprune.firmware.emit.ModelFacts` a run on data set ``dataset``
    knows: its labels when it is a built-in one
    (:func:`edgeprune.firmware.labels.label_names`), ``task``, and test sample 0 of
    ``x_test`` (its label from ``y_test``) as the example's input."""
    from edgeprune.firmware.emit import ExampleInput, ModelFacts
    from edgeprune.firmware.labels import label_names

    labels = label_names(dataset) if dataset and task == "classification" else None
    sample = None
    if x_test is not None and len(x_test):
        note = f"test sample 0 of {dataset}"
        if labels is not None and y_test is not None and 0 <= int(y_test[0]) < len(labels):
            note += f', true label "{labels[int(y_test[0])]}"'
        sample = ExampleInput(tuple(float(v) for v in x_test[0].reshape(-1)), note)
    note = f"Labels of the built-in data set {dataset}."
    return ModelFacts(labels=labels, labels_note=note, task=task, sample=sample)


def run_firmware(
    inp, model: Flatbuffer, arena_bytes: int, name: str | None = None, target=None
) -> FirmwareResult:
    """:func:`firmware_stage` for the final ``model`` of a pipeline run on ``inp``
    (:class:`~edgeprune.stages.inputs.Inputs`): named ``name`` (default: the run's
    model, :func:`default_name`), with the labels of its built-in data set and its
    first test sample as the example's input, where they fit the model, and the
    projects of ``target``'s SDKs."""
    from dataclasses import replace

    ds = inp.dataset
    facts = fit_facts(builtin_facts(ds.name, inp.task, ds.x_test, ds.y_test), model.info)
    facts = replace(facts, target=target)
    name = name or default_name(model.path, inp.model_source)
    return firmware_stage(inp.out, model, arena_bytes, name, facts)


def fit_facts(facts, info):
    """``facts`` without the labels or the sample that do not fit the model ``info``
    (a data set's labels, but another head; a sample of another input shape)."""
    from dataclasses import replace

    if facts.labels is not None and (
        not info.outputs or len(facts.labels) != info.outputs[0].elements
    ):
        facts = replace(facts, labels=None)
    if facts.sample is not None and (
        not info.inputs or len(facts.sample.values) != info.inputs[0].elements
    ):
        facts = replace(facts, sample=None)
    return facts


def _run_facts(model_path: str, sha256: str, input_elements: int):
    """(source, facts) from the run folder the ``.tflite`` at ``model_path`` belongs
    to (its ``report.json`` lists these bytes), or (None, None). The data set is
    loaded for its first test sample only when the example would compile it in."""
    from edgeprune import run_folder
    from edgeprune.data import BUILTIN_DATASETS, load_dataset
    from edgeprune.firmware.example import MAX_SAMPLE_VALUES

    folder = os.path.dirname(os.path.abspath(model_path))
    listed = run_folder.report_section(folder, "artifacts") or {}
    if not any(isinstance(a, dict) and a.get("sha256") == sha256 for a in listed.values()):
        return None, None
    inputs = run_folder.report_section(folder, "inputs") or {}
    source = inputs.get("model") if isinstance(inputs.get("model"), str) else None
    data = inputs.get("data")
    dataset = data.get("name") if isinstance(data, dict) else None
    task = inputs.get("task") if inputs.get("task") in ("classification", "regression") else None
    if dataset not in BUILTIN_DATASETS:
        return source, None
    if input_elements > MAX_SAMPLE_VALUES:
        return source, builtin_facts(dataset, task)
    ds = load_dataset(dataset)
    return source, builtin_facts(dataset, task, ds.x_test, ds.y_test)


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
    name: str | None = None,
    labels_path: str | None = None,
) -> FirmwareBuild:
    """Firmware sources for the ``.tflite`` at ``model_path`` on a TFLite Micro
    ``target`` (a profile id, path or :class:`~edgeprune.target.Target`): the
    device check measures the arena (under the recipe's ``[budget]``
    ``options``), then ``firmware/`` is written into ``out`` (default: the
    model's folder) with that arena. What ``edgeprune firmware`` does. A model
    over ``max_model_bytes`` (default 64 MiB) is refused unread, and so is an
    ``out`` that holds another model's run (unless ``force``).

    ``name`` is the C name of every file and symbol (default: the model of the
    run the file belongs to, else the file's stem: :func:`default_name`);
    ``labels_path`` a text file of one label per output value (default: the
    labels of the run's built-in data set, if any). A model of a run on a
    built-in data set also gets that set's first test sample as the example's
    input. TensorFlow is never imported.

    The folder is written whether or not the model fits the budgets: the check
    in the result says which; the caller decides.

    Raises:
        BadInputError: unreadable model, unknown profile, a Linux target (it
            runs the ``.tflite`` itself), a name that is not a C name, a labels
            file that cannot be read or does not match the model's output, an
            output folder that cannot be written, or holds another model's run
            (OtherModelError); TargetMismatchError: TFLite Micro cannot run the
            model. All before anything is written.
    """
    from dataclasses import replace

    from edgeprune import run_folder
    from edgeprune.artifacts import check_out_dir, read_flatbuffer
    from edgeprune.errors import BadInputError
    from edgeprune.firmware.emit import ModelFacts
    from edgeprune.firmware.labels import check_labels, read_labels
    from edgeprune.stages.check import check_flatbuffer
    from edgeprune.target import Target, load_target

    if name is not None:
        check_name(name)
    if not str(model_path).lower().endswith(".tflite"):
        raise BadInputError(
            f"{model_path} is not a .tflite file; firmware is built from a converted int8 "
            f".tflite model (the pipeline converts a Keras model: run it for the target)"
        )
    target = target if isinstance(target, Target) else load_target(target)
    if target.runtime != "tflm":
        raise BadInputError(
            f"{target.id} runs LiteRT on Linux and loads the .tflite file "
            f"itself; firmware is for TFLite Micro targets"
        )
    labels = read_labels(labels_path) if labels_path is not None else None
    model = read_flatbuffer(model_path, max_model_bytes)
    if labels is not None:
        check_labels(labels, model.info, f"labels file {labels_path}")
    out = out or os.path.dirname(os.path.abspath(model_path))
    check_out_dir(out)
    inputs = model.info.inputs
    source, facts = _run_facts(model_path, model.sha256, inputs[0].elements if inputs else 0)
    facts = facts or ModelFacts()
    if labels is not None:
        note = f"Labels from {os.path.basename(labels_path)}."
        facts = replace(facts, labels=labels, labels_note=note, task="classification")
    facts = replace(fit_facts(facts, model.info), target=target)
    name = name or default_name(model_path, source)
    with run_folder.hold(out, "firmware"):
        run_folder.refuse_foreign_firmware(out, model_path, model.sha256, force)
        check = check_flatbuffer(model, target, options)
        arena = check.evidence.arena_bytes
        return FirmwareBuild(check, firmware_stage(RunDir(out), model, arena, name, facts))
