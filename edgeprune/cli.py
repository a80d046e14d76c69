"""The ``edgeprune`` command line: parse options, call one library function, map errors.

Nothing heavy is imported at start-up: TensorFlow loads only inside the
commands that need it, so ``edgeprune --help`` and ``edgeprune inspect``
answer quickly. Exit codes: 0 success, 1 bad input or tool error, 2 usage
error (click's own), 3 budget check failed, 4 a quality budget or a
validation rule failed, 5 a device failed during validation (partial results
written), 130 interrupted.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import typing

import click

from edgeprune import __version__
from edgeprune.errors import (
    BudgetError,
    EdgepruneError,
    QualityError,
)
from edgeprune.recipe_flags import recipe_from as _recipe
from edgeprune.recipe_flags import recipe_options

log = logging.getLogger("edgeprune")


def _fail(message: str, code: int) -> typing.NoReturn:
    click.echo(f"edgeprune: error: {message}", err=True)
    sys.exit(code)


def guarded(fn):
    """Turn domain errors into one line on stderr and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgepruneError as exc:
            _fail(str(exc), exc.exit_code)
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - last line of defence
            if os.environ.get("EDGEPRUNE_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
                  f" (set EDGEPRUNE_DEBUG=1 for the traceback)", 1)

    return wrapper


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


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("edgeprune: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    # TensorFlow's own Python loggers and warnings are noise at this level.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    if verbosity < 1:
        import warnings

        warnings.filterwarnings("ignore")



# ------------------------------------------------------------ commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgeprune")
@click.option("-v", "--verbose", count=True, help="More detail (-vv: library warnings too).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors and the final summary.")
def main(verbose: int, quiet: bool) -> None:
    """Prune, strip and quantize a Keras model for an edge device, and prove it fits.

    With no options, `edgeprune run` trains the built-in digits CNN on
    scikit-learn's bundled 8x8 digits and takes it through every stage.
    """
    _setup_logging(-1 if quiet else verbose)


_model_opt = click.option("--model", "model", default=None, metavar="PATH",
                          help="Keras model: .keras, .h5 or SavedModel folder "
                               "or a built-in name: digits_cnn (the default), or the MLPerf "
                               "Tiny ds_cnn, mobilenet_v1, resnet8, autoencoder on generated "
                               "data.")
_data_opt = click.option("--data", "data", default=None, metavar="NPZ|NAME",
                         help="An .npz with x_train, y_train, x_test, y_test (optional x_val, "
                              "y_val, x_calib) or a built-in data set name (digits; "
                              "kws_synthetic, vww_synthetic, ic_synthetic, ad_synthetic: "
                              "generated).")
_recipe_opt = click.option("--recipe", "recipe_path", default=None,
                           type=click.Path(dir_okay=False),
                           help="TOML recipe; flags override its values.")
_out_opt = click.option("--out", "out", default=None, metavar="DIR",
                        help="Run directory (default: runs/<model name>).")


@main.command()
@_model_opt
@_data_opt
@_recipe_opt
@_out_opt
@click.option("--target", "target", default=None, metavar="NAME",
              help="Device profile (see `edgeprune targets`): check the final model against "
                   "its budgets and write firmware/ for TFLite Micro devices. Default "
                   "output: build/NAME.")
@recipe_options((None, "train", "structured", "prune", "quantize", "budget"))
@guarded
def run(model, data, recipe_path, out, target, **kwargs):
    """Run every stage: baseline, prune, strip, quantize, evaluate (and check)."""
    if model is not None and data is None:
        raise click.UsageError("--data is required with --model: pruning fine-tunes on it "
                               "(an .npz file or a built-in data set name)")
    recipe = _recipe(recipe_path, kwargs)
    from edgeprune import pipeline
    from edgeprune.presentation.summary import format_run

    try:
        result = pipeline.run(model=model, data=data, recipe=recipe, out=out, target=target)
    except (QualityError, BudgetError) as exc:
        if exc.result is not None:
            click.echo(format_run(exc.result))
        raise
    click.echo(format_run(result))


@main.command("prune")
@click.argument("model_path", metavar="MODEL")
@_data_opt
@_recipe_opt
@_out_opt
@click.option("--target", "target", default=None, metavar="NAME",
              help="Device profile whose budgets the structured goal fit must pass.")
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


@main.command("quantize")
@click.argument("model_path", metavar="MODEL")
@_data_opt
@_recipe_opt
@_out_opt
@recipe_options((None, "quantize"))
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


@main.command("check")
@click.argument("model_path", metavar="MODEL.tflite")
@click.option("--target", "target", required=True, metavar="NAME",
              help="Device profile id (see `edgeprune targets`) or a profile .toml path.")
@click.option("--report", "report_path", default=None, type=click.Path(dir_okay=False),
              help="Also write the result as JSON (schema-versioned, written atomically).")
@_recipe_opt
@recipe_options(("budget",))
@guarded
def check_cmd(model_path, target, report_path, recipe_path, **kwargs):
    """Check MODEL.tflite against a device: flash, RAM, ops, dtype, estimated latency;
    exit 3 if over budget."""

    from edgeprune.presentation.check import format_check
    from edgeprune.stages.check import check_model

    recipe = _recipe(recipe_path, kwargs)
    try:
        result = check_model(model_path, target, recipe.budget, report_path)
    except BudgetError as exc:
        if exc.result is not None:
            click.echo(format_check(exc.result))
        raise
    click.echo(format_check(result))


@main.command("firmware")
@click.argument("model_path", metavar="MODEL.tflite")
@click.option("--target", "target", required=True, metavar="NAME",
              help="TFLite Micro device profile (see `edgeprune targets`) or a profile .toml.")
@click.option("--out", "out", default=None, metavar="DIR",
              help="Folder to write firmware/ into (default: the model's folder).")
@_recipe_opt
@recipe_options(("budget",))
@guarded
def firmware_cmd(model_path, target, out, recipe_path, **kwargs):
    """Write firmware/ (model array, op resolver, measured arena, validation harness,
    Arduino sketch) for MODEL.tflite on a TFLite Micro device; exit 3 if over budget."""
    from edgeprune.presentation.check import format_check
    from edgeprune.stages.firmware import build_firmware

    build = build_firmware(model_path, target, out, _recipe(recipe_path, kwargs).budget)
    click.echo(format_check(build.check))
    click.echo(f"firmware: {build.firmware.folder}")
    if not build.check.ok:
        failed = ", ".join(r.name for r in build.check.rules if not r.ok)
        raise BudgetError(f"{model_path} does not fit {build.check.target}: {failed} over "
                          f"budget; firmware/ is written with the measured arena")


@main.group(invoke_without_command=True)
@click.pass_context
@guarded
def targets(ctx):
    """List the device profiles (targets/*.toml)."""
    if ctx.invoked_subcommand is None:
        from edgeprune.presentation.targets import format_targets
        from edgeprune.target import list_targets, load_target

        click.echo(format_targets([load_target(t) for t in list_targets()]))


@targets.command("show")
@click.argument("name")
@guarded
def targets_show(name):
    """Print one device profile: hardware, reserve, arena margin, budgets."""
    from edgeprune.presentation.targets import format_target
    from edgeprune.target import load_target

    click.echo(format_target(load_target(name)))


@main.command()
@click.argument("model_path", metavar="MODEL.tflite", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def inspect(model_path, as_json):
    """Ops, tensors, sizes and parameter count of a .tflite file (no TensorFlow)."""
    from edgeprune.presentation.ops import inspect_report

    click.echo(inspect_report(model_path, as_json))


@main.command()
@click.argument("model_path", metavar="MODEL.tflite", type=click.Path(dir_okay=False))
@click.option("--target", "target", default=None, metavar="NAME",
              help="Also estimate each operator's latency on this device profile.")
@click.option("--cost-model", "cost_model", default=None, metavar="ID|FILE",
              help="Cost model for the estimate (default: the target's).")
@click.option("--json", "as_json", is_flag=True,
              help="Machine-readable op costs (what calibration sets ship in place of a model).")
@guarded
def cost(model_path, target, cost_model, as_json):
    """Per-operator cost of a .tflite: class, MACs, bytes; with --target, estimated latency."""
    from edgeprune.presentation.ops import cost_report

    click.echo(cost_report(model_path, target, cost_model, as_json))


@main.command()
@click.argument("measurements", metavar="MEASUREMENTS.csv", type=click.Path(dir_okay=False))
@click.option("--fit", "fit", default="mac,activation", show_default=True,
              help="Constants to fit, comma-separated: mac, classes, elements, activation, "
                   "overhead.")
@click.option("--base", "base", default=None, metavar="ID|FILE",
              help="Cost model to start from (default: the one the rows name).")
@click.option("--name", "set_name", default="", help="Name of the measurement set in reports.")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False),
              help="Write the fitted cost model here (.toml; use with check --cost-model).")
@guarded
def calibrate(measurements, fit, base, set_name, out):
    """Fit a cost model to measured latencies; print each row's leave-one-out error."""
    from edgeprune.estimates.calibrate import calibrate_file
    from edgeprune.presentation.calibration import format_calibration

    params = tuple(p.strip() for p in fit.split(",") if p.strip())
    click.echo(format_calibration(calibrate_file(measurements, params, base, set_name, out)))


@main.command()
@click.argument("models", metavar="MODEL.tflite...", nargs=-1, required=True,
                type=click.Path(dir_okay=False))
@click.option("--target", "target", default="host", show_default=True, metavar="NAME|FILE",
              help="Profile whose kernels, threads, clock and cost model the rows take; "
                   "the timing is always on this machine.")
@click.option("--runs", "runs", default=None, type=click.IntRange(min=1),
              help="Timed invokes per model (default: the profile's, or 50).")
@click.option("--out", "out", default=None, type=click.Path(dir_okay=False),
              help="Write (or with --append, extend) a measurements CSV for `calibrate`.")
@click.option("--append", is_flag=True, help="Add the rows to an existing --out file.")
@guarded
def measure(models, target, runs, out, append):
    """Time models on this machine with ai-edge-litert; rows for `edgeprune calibrate`.
    Without --out the rows go to stdout as CSV."""
    from edgeprune.estimates.measure import measure_host

    _, csv_text = measure_host(list(models), target, runs, out, append)
    if out is None:
        click.echo(csv_text, nl=False)


@main.command("validate")
@click.argument("run_dir", metavar="RUN_DIR", required=False,
                type=click.Path(file_okay=False))
@click.option("--target", "target", default=None, metavar="NAME",
              help="Device profile; picks the runner and, without RUN_DIR, the folder "
                   "build/NAME that `make NAME` wrote.")
@click.option("--runner", "runner", default="auto", show_default=True,
              type=click.Choice(["auto", "host", "tflm", "serial", "ssh"]),
              help="Where the model runs: host (ai-edge-litert here), tflm (the TFLite Micro "
                   "interpreter here), serial (a microcontroller flashed with this run's "
                   "firmware/), ssh (a Linux board such as a Raspberry Pi). auto: with "
                   "--device, serial on a TFLite Micro target and ssh on a Linux one; "
                   "without, tflm on a TFLite Micro target and host otherwise.")
@click.option("--device", "address", default=None, metavar="ADDR",
              help="The device: a serial port, optionally with its baud rate "
                   "(/dev/ttyACM0@115200), or a board for ssh (pi@raspberrypi.local, "
                   "pi@10.0.0.7:2222, or an alias of your ssh config).")
@click.option("--measurements", "measurements", default=None, type=click.Path(dir_okay=False),
              metavar="FILE.csv",
              help="Add the device's median invoke time as a row of this measurements file "
                   "for `edgeprune calibrate` (created if missing). ssh and serial runners, "
                   "with --target (its clock and cost model).")
@_data_opt
@_recipe_opt
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
    from edgeprune.stages.validate import validate_run

    _show(format_result, validate_run, run_dir, target, runner, address, data, options,
          measurements)


@main.command()
@click.argument("build_dir", metavar="[BUILD_DIR]", required=False, default="build",
                type=click.Path(file_okay=False))
@click.argument("names", metavar="[TARGET]...", nargs=-1)
@guarded
def fleet(build_dir, names):
    """Pass/fail table of the device builds in BUILD_DIR (default: build), one row per
    TARGET (default: every NAME.exit and NAME/report.json found there), as `make
    all-targets` writes them. Exit 3 if a device is over budget, 1 if a build failed."""
    from edgeprune.presentation.fleet import fleet as fleet_table

    table = fleet_table(build_dir, names)
    click.echo(table.text())
    if table.exit_code:
        _fail(table.failures, table.exit_code)


def entry() -> None:
    """The console script: the click group, with TensorFlow's native log lines
    filtered from the terminal (kept with ``-vv`` or ``EDGEPRUNE_DEBUG=1``)."""
    argv = sys.argv[1:]
    loads_tensorflow = any(a in ("run", "prune", "quantize", "check", "validate") for a in argv)
    if loads_tensorflow and not os.environ.get("EDGEPRUNE_DEBUG") and not any(
            a in ("-vv", "-vvv") for a in argv) and argv.count("-v") + argv.count(
            "--verbose") < 2:
        from edgeprune._native_stderr import filter_native_stderr

        filter_native_stderr()
    main(prog_name="edgeprune")
