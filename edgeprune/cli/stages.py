"""The commands that take a model through the pipeline's stages: run (all of them),
prune, quantize, check, firmware and validate; TensorFlow loads inside their bodies."""

from __future__ import annotations

import click

from edgeprune.cli import (
    data_option,
    guarded,
    max_model_option,
    model_option,
    out_option,
    recipe_option,
)
from edgeprune.errors import BadInputError, BudgetError, EdgepruneError, QualityError
from edgeprune.recipe_flags import recipe_from as _recipe
from edgeprune.recipe_flags import recipe_options

name_option = click.option(
    "--name",
    "name",
    default=None,
    metavar="NAME",
    help="C name of the firmware's files and symbols (model_NAME.h, g_NAME_model_data, "
    "NAME_OpResolver): letters, digits and single underscores. Default: the model's name.",
)


def _show(fmt, fn, *args):
    """Echo ``fmt`` of ``fn(*args)``'s result, or of the result its domain error carries."""
    try:
        result = fn(*args)
    except EdgepruneError as exc:
        if getattr(exc, "result", None) is not None:
            click.echo(fmt(exc.result))
        raise
    click.echo(fmt(result))
    return result


@click.command()
@model_option
@data_option
@recipe_option
@out_option
@click.option(
    "--target",
    "target",
    default=None,
    metavar="NAME",
    help="Device profile (see `edgeprune targets`): check the final model against "
    "its budgets and write firmware/ for TFLite Micro devices. Default "
    "output: build/NAME.",
)
@click.option(
    "--force",
    "force",
    is_flag=True,
    help="Replace the run of another model in the output folder (refused without it).",
)
@name_option
@recipe_options((None, "train", "structured", "prune", "cluster", "quantize", "budget", "compress"))
@guarded
def run(model, data, recipe_path, out, target, force, name, **kwargs):
    """Run every stage: baseline, prune, strip, quantize, evaluate (and check).

    Tree models (--model random_forest, decision_tree, extra_trees, or a fitted
    model as .json or .skops): train, prune, export C, compile, check."""
    from edgeprune.trees.pipeline import is_tree_model, refuse_unknown_name

    if is_tree_model(model):
        return _run_trees(model, data, recipe_path, out, target, force, kwargs)
    if model is not None and model.lower().endswith(".tflite"):
        return _run_tflite(model, data, recipe_path, out, target, force, name, kwargs)
    refuse_unknown_name(model)  # before TensorFlow loads
    if model is not None and data is None:
        raise click.UsageError(
            "--data is required with --model: pruning fine-tunes on it "
            "(an .npz file or a built-in data set name)"
        )
    _run_keras(model, data, _recipe(recipe_path, kwargs), out, target, force, name)


def _run_keras(model, data, recipe, out, target, force, name):
    """``run`` for a Keras model (or the built-in): the whole pipeline."""
    from edgeprune import pipeline
    from edgeprune.presentation.summary import format_run

    try:
        result = pipeline.run(
            model=model,
            data=data,
            recipe=recipe,
            out=out,
            target=target,
            force=force,
            firmware_name=name,
        )
    except (QualityError, BudgetError) as exc:
        if exc.result is not None:
            click.echo(format_run(exc.result))
        raise
    click.echo(format_run(result))


def _run_tflite(model, data, recipe_path, out, target, force, name, kwargs):
    """``run --model X.tflite``: nothing to train or convert, so firmware for a
    target, else a refusal; answered before TensorFlow loads."""
    if target is None or data is not None:
        raise BadInputError(
            f"{model} is a converted model, which run cannot prune or quantize again; "
            f"for firmware use `edgeprune firmware {model} --target NAME`, for the "
            f"budgets `edgeprune check {model} --target NAME`"
        )
    return _firmware(model, target, out, force, recipe_path, 64, name, None, kwargs)


def _run_trees(model, data, recipe_path, out, target, force, kwargs):
    """``run`` for a tree model: no TensorFlow on this path."""
    from edgeprune.trees.pipeline import KINDS, run
    from edgeprune.trees.summary import format_tree_run

    if model not in KINDS and data is None:
        raise click.UsageError(
            "--data is required with a fitted tree model file: it is evaluated and pruned on it"
        )
    recipe = _recipe(recipe_path, kwargs)
    try:
        result = run(model=model, data=data, recipe=recipe, out=out, target=target, force=force)
    except BudgetError as exc:
        if exc.result is not None:
            click.echo(format_tree_run(exc.result))
        raise
    click.echo(format_tree_run(result))


@click.command("prune")
@click.argument("model_path", metavar="MODEL")
@data_option
@recipe_option
@out_option
@click.option(
    "--target",
    "target",
    default=None,
    metavar="NAME",
    help="Device profile whose budgets the structured goal fit must pass, and whose "
    "kernels' channel multiple structured pruning rounds kept channels to.",
)
@recipe_options((None, "structured", "prune", "budget"))
@guarded
def prune_cmd(model_path, data, recipe_path, out, target, **kwargs):
    """Prune, strip and verify MODEL; writes pruned.keras and pruned_float32.tflite
    (and structured.keras first, with a structured goal)."""
    if data is None:
        raise click.UsageError("--data is required: pruning fine-tunes on it")
    recipe = _recipe(recipe_path, kwargs)
    from edgeprune import pipeline
    from edgeprune.presentation.summary import format_stage

    click.echo(format_stage(pipeline.prune_only(model_path, data, recipe, out, target)))


@click.command("quantize")
@click.argument("model_path", metavar="MODEL")
@data_option
@recipe_option
@out_option
@recipe_options((None, "cluster", "quantize"))
@guarded
def quantize_cmd(model_path, data, recipe_path, out, **kwargs):
    """Convert a (pruned, stripped) Keras MODEL to .tflite and evaluate it."""
    if data is None:
        raise click.UsageError("--data is required: calibration and evaluation use it")
    recipe = _recipe(recipe_path, kwargs)
    from edgeprune import pipeline
    from edgeprune.presentation.summary import format_stage

    try:
        result = pipeline.quantize_only(model_path, data, recipe, out)
    except QualityError as exc:
        click.echo(format_stage(exc.result))
        raise
    click.echo(format_stage(result))


@click.command("check")
@click.argument("model_path", metavar="MODEL.tflite")
@click.option(
    "--target",
    "target",
    required=True,
    metavar="NAME",
    help="Device profile id (see `edgeprune targets`) or a profile .toml path.",
)
@click.option(
    "--report",
    "report_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Also write the result as JSON (schema-versioned, written atomically).",
)
@recipe_option
@recipe_options(("budget",))
@max_model_option
@guarded
def check_cmd(model_path, target, report_path, recipe_path, max_model_mb, **kwargs):
    """Check MODEL.tflite against a device: flash, RAM, ops, dtype, estimated latency;
    exit 3 if over budget."""

    from edgeprune.presentation.check import format_check
    from edgeprune.stages.check import check_model

    recipe = _recipe(recipe_path, kwargs)
    try:
        result = check_model(model_path, target, recipe.budget, report_path, max_model_mb * 2**20)
    except BudgetError as exc:
        if exc.result is not None:
            click.echo(format_check(exc.result))
        raise
    click.echo(format_check(result))


@click.command("firmware")
@click.argument("model_path", metavar="MODEL.tflite")
@click.option(
    "--target",
    "target",
    required=True,
    metavar="NAME",
    help="TFLite Micro device profile (see `edgeprune targets`) or a profile .toml.",
)
@click.option(
    "--out",
    "out",
    default=None,
    metavar="DIR",
    help="Folder to write firmware/ into (default: the model's folder).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write firmware/ into --out even when it holds the run of another model.",
)
@name_option
@click.option(
    "--labels",
    "labels_path",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Text file of class labels, one a line in the order of the model's outputs: "
    "labels_<name>.h and the example print them (default: the labels of the run's "
    "built-in data set, if any).",
)
@recipe_option
@recipe_options(("budget",))
@max_model_option
@guarded
def firmware_cmd(
    model_path, target, out, force, name, labels_path, recipe_path, max_model_mb, **kwargs
):
    """Write firmware/ (model array, op resolver, measured arena, labels, inference
    example, validation harness, Arduino sketch) for MODEL.tflite on a TFLite Micro
    device; exit 3 if over budget. TensorFlow is not loaded."""
    _firmware(model_path, target, out, force, recipe_path, max_model_mb, name, labels_path, kwargs)


def _firmware(model_path, target, out, force, recipe_path, max_model_mb, name, labels, kwargs):
    """`firmware`, and `run --model X.tflite --target NAME`: the check, then firmware/."""
    from edgeprune.presentation.check import format_check
    from edgeprune.stages.firmware import build_firmware

    budget = _recipe(recipe_path, kwargs).budget
    build = build_firmware(
        model_path, target, out, budget, max_model_mb * 2**20, force, name, labels
    )
    click.echo(format_check(build.check))
    click.echo(f"firmware: {build.firmware.folder}")
    if not build.check.ok:
        failed = ", ".join(r.name for r in build.check.rules if not r.ok)
        raise BudgetError(
            f"{model_path} does not fit {build.check.target}: {failed} over "
            f"budget; firmware/ is written with the measured arena"
        )


@click.command("validate")
@click.argument("run_dir", metavar="RUN_DIR", required=False, type=click.Path(file_okay=False))
@click.option(
    "--target",
    "target",
    default=None,
    metavar="NAME",
    help="Device profile; picks the runner and, without RUN_DIR, the folder "
    "build/NAME that `make NAME` wrote.",
)
@click.option(
    "--runner",
    "runner",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "host", "tflm", "serial", "ssh"]),
    help="Where the model runs: host (ai-edge-litert here), tflm (the TFLite Micro "
    "interpreter here), serial (a microcontroller flashed with this run's "
    "firmware/), ssh (a Linux board such as a Raspberry Pi). auto: with "
    "--device, serial on a TFLite Micro target and ssh on a Linux one; "
    "without, tflm on a TFLite Micro target and host otherwise.",
)
@click.option(
    "--device",
    "address",
    default=None,
    metavar="ADDR",
    help="The device: a serial port, optionally with its baud rate "
    "(/dev/ttyACM0@115200), or a board for ssh (pi@raspberrypi.local, "
    "pi@10.0.0.7:2222, or an alias of your ssh config).",
)
@click.option(
    "--measurements",
    "measurements",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="FILE.csv",
    help="Add the device's median invoke time as a row of this measurements file "
    "for `edgeprune calibrate` (created if missing). ssh and serial runners, "
    "with --target (its clock and cost model).",
)
@data_option
@recipe_option
@recipe_options(("validate",))
@guarded
def validate_cmd(run_dir, target, runner, address, measurements, data, recipe_path, **kwargs):
    """Run a run folder's final model on a runner; accuracy, F1, confusion matrix,
    agreement with the host reference and latency; exit 4 if it fails the rules,
    5 if the device fails (partial results are written either way)."""
    if run_dir is None and target is None:
        raise click.UsageError("give the run folder (RUN_DIR) or --target NAME for build/NAME")
    options = _recipe(recipe_path, kwargs).validate
    from edgeprune.presentation.validation import format_result
    from edgeprune.trees.pipeline import require_tree_run

    if require_tree_run(run_dir or f"build/{target}"):  # a tree model's C
        return _validate_trees(
            run_dir or f"build/{target}", runner, address, measurements, data, options
        )
    from edgeprune.stages.validate import validate_run

    _show(
        format_result, validate_run, run_dir, target, runner, address, data, options, measurements
    )


def _validate_trees(folder, runner, address, measurements, data, options):
    """``validate`` for a tree run: its C on the host or a serial board."""
    from edgeprune.errors import BadInputError
    from edgeprune.presentation.validation import format_result
    from edgeprune.trees.validate import validate_tree_run

    if measurements is not None:
        raise BadInputError(
            "--measurements adds rows for the TFLite cost models; a tree model's device "
            "times are in report.json (validation.serial.latency_ms)"
        )
    which = runner if runner != "auto" else ("serial" if address else "host")
    _show(format_result, validate_tree_run, folder, which, address, data, options)
