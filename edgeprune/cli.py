"""The ``edgeprune`` command line: parse options, call one library function, map errors.

Nothing heavy is imported at start-up: TensorFlow loads only inside the
commands that need it, so ``edgeprune --help`` and ``edgeprune inspect``
answer quickly. Exit codes: 0 success, 1 bad input or tool error, 2 usage
error (click's own), 3 budget check failed, 4 a quality budget or a
validation rule failed, 5 a device failed during validation (partial results
written), 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
import typing

import click

from edgeprune import __version__
from edgeprune.errors import (
    BadInputError,
    BudgetError,
    DeviceError,
    EdgepruneError,
    QualityError,
)
from edgeprune.recipe import option_fields

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


# ------------------------------------------------------------ recipe options

def _recipe_key(section, f) -> str:
    return f"{section}.{f.name}" if section else f.name


def _click_option(section, f):
    meta = f.metadata
    kwargs: dict = {"default": None, "help": meta["help"]}
    dest = _recipe_key(section, f).replace(".", "__")
    if meta.get("choices"):
        kwargs["type"] = click.Choice(meta["choices"])
    elif meta.get("kind") == "pair":
        kwargs["type"] = str
        kwargs["metavar"] = "A:B"
    elif "tuple[str" in str(f.type):
        kwargs["multiple"] = True
        kwargs["default"] = ()
        kwargs["metavar"] = "NAME"
    elif str(f.type).startswith("int"):
        kwargs["type"] = int
    elif str(f.type).startswith("float"):
        kwargs["type"] = float
    kwargs["help"] += f"  [recipe: {_recipe_key(section, f)}]"
    return click.option(meta["flag"], dest, **kwargs)


def recipe_options(sections: tuple[str | None, ...]):
    """Decorator adding one flag per recipe option of ``sections``."""

    def decorate(fn):
        for section, f in reversed(option_fields()):
            if section in sections:
                fn = _click_option(section, f)(fn)
        return fn

    return decorate


def _overrides(kwargs: dict) -> dict:
    out = {}
    for key in list(kwargs):
        if "__" in key or key in ("seed", "task"):
            value = kwargs.pop(key)
            if value is None or value == ():
                continue
            out[key.replace("__", ".")] = list(value) if isinstance(value, tuple) else value
    return out


def _recipe(recipe_path, kwargs):
    from edgeprune.recipe import load_recipe

    return load_recipe(recipe_path, _overrides(kwargs))


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

    from edgeprune.rules.budget import format_check
    from edgeprune.stages.check import check_model

    recipe = _recipe(recipe_path, kwargs)
    try:
        result = check_model(model_path, target, recipe.budget, report_path)
    except BudgetError as exc:
        if exc.result is not None:
            click.echo(format_check(exc.result))
        raise
    click.echo(format_check(result))


@main.group(invoke_without_command=True)
@click.pass_context
@guarded
def targets(ctx):
    """List the device profiles (targets/*.toml)."""
    if ctx.invoked_subcommand is None:
        from edgeprune.target import format_targets, list_targets, load_target

        click.echo(format_targets([load_target(t) for t in list_targets()]))


@targets.command("show")
@click.argument("name")
@guarded
def targets_show(name):
    """Print one device profile: hardware, reserve, arena margin, budgets."""
    from edgeprune.target import format_target, load_target

    click.echo(format_target(load_target(name)))


@main.command()
@click.argument("model_path", metavar="MODEL.tflite", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@guarded
def inspect(model_path, as_json):
    """Ops, tensors, sizes and parameter count of a .tflite file (no TensorFlow)."""
    from edgeprune.tflite import format_model_info

    info = _model_info(model_path)
    if as_json:
        import dataclasses
        import json

        body = dataclasses.asdict(info)
        body["weights"]["zero_fraction"] = info.weights.zero_fraction
        click.echo(json.dumps(body, indent=2))
    else:
        click.echo(format_model_info(info))


def _model_info(model_path):
    """Parse a .tflite, or raise a one-line BadInputError."""
    from edgeprune.tflite import inspect_model

    try:
        return inspect_model(model_path)
    except FileNotFoundError:
        raise BadInputError(f"{model_path} does not exist; check the path") from None
    except ValueError as exc:  # TFLiteFormatError
        raise BadInputError(f"{exc}; pass a .tflite flatbuffer") from None
    except OSError as exc:
        raise BadInputError(f"{model_path} cannot be read ({exc.strerror})") from None


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
    import json

    from edgeprune.estimates.opcost import format_count, model_cost
    from edgeprune.presentation.table import table

    info = _model_info(model_path)
    costs = model_cost(info)
    est = None
    if target is not None:
        from edgeprune.stages.check import estimate_latency
        from edgeprune.target import load_target

        est = estimate_latency(costs, load_target(target), cost_model)
    if as_json:
        body = costs.to_dict()
        if est is not None:
            body["estimate"] = dataclasses.asdict(est)
        click.echo(json.dumps(body, indent=1))
        return
    rows = [["op", "class", "dtype", "kernel", "MACs", "elements", "weights B", "act. B"]
            + (["est. ms", "share"] if est else [])]
    for i, o in enumerate(costs.ops):
        row = [f"{o.index} {o.opcode}", o.op_class, o.dtype, o.kernel, format_count(o.macs),
               format_count(o.elements), f"{o.weight_bytes:,}",
               f"{o.input_bytes + o.output_bytes:,}"]
        if est:
            row += [f"{est.ops[i].ms:.4g}", f"{est.ops[i].ms / est.ms:.0%}" if est.ms else "-"]
        rows.append(row)
    click.echo("\n".join(table(rows, right=set(range(4, 10)))))
    click.echo(f"total: {costs.macs:,} MACs, {costs.weight_bytes:,} B of constants, "
               f"{len(costs.ops)} operators")
    if est is not None:
        from edgeprune.rules.budget import format_top_ops

        line = f"latency on {est.target}: ESTIMATE {est.ms:,.4g} ms"
        if est.energy_uj is not None:
            line += f", energy {est.energy_uj:,.4g} uJ at {est.power_mw:g} mW"
        click.echo(f"{line}\n  {est.caveat}\n")
        click.echo(format_top_ops(est))


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
    from edgeprune.estimates import calibrate as cal
    from edgeprune.estimates.latency import load_cost_model

    params = tuple(p.strip() for p in fit.split(",") if p.strip())
    rows = cal.load_measurements(measurements)
    result = cal.calibrate(rows, load_cost_model(base) if base else None, params, set_name)
    click.echo(cal.format_calibration(result))
    if out is not None:
        from edgeprune.artifacts import check_out_dir, write_bytes_atomic

        check_out_dir(os.path.dirname(os.path.abspath(out)))
        model = dataclasses.replace(result.model, id=os.path.splitext(os.path.basename(out))[0])
        write_bytes_atomic(out, cal.cost_model_toml(
            model, f"Written by `edgeprune calibrate {os.path.basename(measurements)}`.").encode())
        click.echo(f"wrote {out}")


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
    """Time models on this machine with ai-edge-litert; rows for `edgeprune calibrate`."""
    import datetime

    from edgeprune.estimates import calibrate as cal
    from edgeprune.runners.host import measure_latency
    from edgeprune.stages.check import load_model_bytes
    from edgeprune.target import load_target

    t = load_target(target)
    if t.runtime != "litert":
        raise BadInputError(f"{t.id} runs TFLite Micro on a microcontroller; `measure` times "
                            f"LiteRT on this machine: use --target host (or a Linux profile)")
    if append and out is None:
        raise BadInputError("--append needs --out, the measurements file to extend")
    existing = cal.existing_measurements(out, append) if out is not None else ""
    folder = os.path.dirname(os.path.abspath(out)) if out else os.getcwd()
    rows = []
    today = datetime.date.today().isoformat()
    for path in models:
        data, _ = load_model_bytes(path)
        m = measure_latency(data, t.kernels, t.latency.threads, runs=runs or t.latency.runs)
        click.echo(f"{path}: {m.p50_ms:.4g} ms ({m.text})")
        rows.append(cal.measurement_row(
            path, m.p50_ms, t.clock_hz, t.latency.cost_model_id(t), m.where,
            f"edgeprune measure --target {t.id}, {today}: {m.text}", folder))
    header = f"Measured with `edgeprune measure` on {today}; ms is the median invoke time."
    if out is None:
        click.echo(cal.measurements_csv(rows, header), nl=False)
        return
    cal.write_measurements(out, rows, header, existing)
    click.echo(f"wrote {len(rows)} row{'s' if len(rows) != 1 else ''} to {out}")


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
@click.option("--device", "device_address", default=None, metavar="ADDR",
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
def validate_cmd(run_dir, target, runner, device_address, measurements, data, recipe_path,
                 **kwargs):
    """Run a run folder's final model on a runner; accuracy, F1, confusion matrix,
    agreement with the host reference and latency; exit 4 if it fails the rules."""
    from edgeprune.stages import validate as val

    if run_dir is None and target is None:
        raise click.UsageError("give the run folder (RUN_DIR) or --target NAME for build/NAME")
    recipe = _recipe(recipe_path, kwargs)
    run_dir = run_dir or os.path.join("build", target)
    device = None
    if target is not None:
        from edgeprune.target import load_target

        device = load_target(target)
    tflm_target = device is not None and device.runtime == "tflm"
    if runner == "auto":
        if device_address:
            if device is None:
                raise BadInputError("with --device, name the runner (--runner serial or "
                                    "--runner ssh) or the --target it belongs to")
            runner = "serial" if tflm_target else "ssh"
        else:
            runner = "tflm" if tflm_target else "host"
    if runner == "serial" and not device_address:
        raise BadInputError("the serial runner needs the device's port; pass it as --device, "
                            "for example /dev/ttyACM0@115200")
    if runner == "ssh" and not device_address:
        raise BadInputError("the ssh runner needs the board's address; pass it as --device, "
                            "for example pi@raspberrypi.local")
    if runner in ("host", "tflm") and device_address:
        raise BadInputError(f"the {runner} runner runs on this machine; --device is for the "
                            f"serial and ssh runners (drop it, or choose one of those)")
    if device is not None and runner == "ssh" and tflm_target:
        raise BadInputError(f"{device.id} runs TFLite Micro on a microcontroller; validate it "
                            f"with --runner serial (or tflm here), not ssh")
    if device is not None and runner == "serial" and not tflm_target:
        raise BadInputError(f"{device.id} is a Linux machine running LiteRT; validate "
                            f"it with --runner ssh (or host here), not serial")
    existing = None
    if measurements is not None:
        from edgeprune.estimates import calibrate as cal

        if runner not in ("ssh", "serial"):
            raise BadInputError(f"--measurements records a device's invoke time; the {runner} "
                                f"runner times this machine (`edgeprune measure` times "
                                f"LiteRT here)")
        if device is None:
            raise BadInputError("--measurements needs --target: the row takes the profile's "
                                "cost model and clock")
        existing = cal.existing_measurements(measurements, append=True)
    opts = recipe.validate
    run = val.read_run(run_dir)
    with open(run.model_path, "rb") as fh:
        model = fh.read()
    if runner == "serial":
        from edgeprune.runners.serial import SerialRunner

        engine = SerialRunner(model, device_address, opts.timeout_s)
    elif runner == "ssh":
        from edgeprune.runners.ssh import SshRunner

        linux = device is not None and device.runtime == "litert"
        reference = linux and device.kernels == "reference"
        engine = SshRunner(model, device_address, opts.timeout_s,
                           kernels="reference" if reference else "xnnpack",
                           threads=device.latency.threads if linux else 1,
                           python=opts.remote_python, ssh_config=opts.ssh_config,
                           identity=opts.ssh_key, model_name=os.path.basename(run.model_path))
    elif runner == "tflm":
        from edgeprune.runners.tflm import TflmRunner

        engine = TflmRunner(model)
    else:
        from edgeprune.runners.host import HostRunner

        engine = HostRunner(model)
    result = val.validate(run, engine, data, opts)
    path = val.write_result(run, result)
    click.echo(val.format_result(result))
    click.echo(f"report: {path}")
    if existing is not None and not result.partial and result.latency_ms.get("n"):
        row = val.measurement_row(run, result, device, measurements)
        cal.write_measurements(measurements, [row], (
            "Measured on devices with `edgeprune validate --measurements`; ms is the median "
            "(p50) invoke time on the device."), existing)
        click.echo(f"measurements: added {row['model']} at {row['ms']} ms to {measurements}")
    elif existing is not None:
        click.echo(f"measurements: no row added to {measurements}: the run is partial")
    if result.partial and result.error.startswith("interrupted"):
        _fail(f"{result.error}; the partial results are in report.json", 130)
    if result.partial:
        raise DeviceError(f"validation on {result.runner} is partial: {result.error}; the "
                          f"partial results are in report.json")
    if not result.ok:
        failed = "; ".join(f"{r['name']} {r['measured']:.4f} against {r['budget']} ({r['key']})"
                           for r in result.rules if not r["ok"])
        raise QualityError(f"{result.model} fails validation on {result.runner}: {failed}")


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
