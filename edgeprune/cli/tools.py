"""The commands around the pipeline: device profiles (targets), .tflite inspection and
operator cost, cost model calibration and host measurements, the fleet table and the
HTML report."""

from __future__ import annotations

import click

from edgeprune.cli import fail, guarded, max_model_option


@click.group(invoke_without_command=True)
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


@click.command()
@click.argument("model_path", metavar="MODEL.tflite", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@max_model_option
@guarded
def inspect(model_path, as_json, max_model_mb):
    """Ops, tensors, sizes and parameter count of a .tflite file (no TensorFlow)."""
    from edgeprune.presentation.ops import inspect_report

    click.echo(inspect_report(model_path, as_json, max_model_mb * 2**20))


@click.command()
@click.argument("model_path", metavar="MODEL.tflite", type=click.Path(dir_okay=False))
@click.option(
    "--target",
    "target",
    default=None,
    metavar="NAME",
    help="Also estimate each operator's latency on this device profile.",
)
@click.option(
    "--cost-model",
    "cost_model",
    default=None,
    metavar="ID|FILE",
    help="Cost model for the estimate (default: the target's).",
)
@click.option(
    "--force-cost-model",
    "force_cost_model",
    is_flag=True,
    help="Use --cost-model even when it was fitted for another core or kernel library.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Machine-readable op costs (what calibration sets ship in place of a model).",
)
@max_model_option
@guarded
def cost(model_path, target, cost_model, force_cost_model, as_json, max_model_mb):
    """Per-operator cost of a .tflite: class, MACs, bytes; with --target, estimated latency."""
    from edgeprune.presentation.ops import cost_report

    click.echo(
        cost_report(model_path, target, cost_model, as_json, max_model_mb * 2**20, force_cost_model)
    )


@click.command()
@click.argument("measurements", metavar="MEASUREMENTS.csv", type=click.Path(dir_okay=False))
@click.option(
    "--fit",
    "fit",
    default="mac,activation",
    show_default=True,
    help="Constants to fit, comma-separated: mac, classes, elements, activation, overhead.",
)
@click.option(
    "--base",
    "base",
    default=None,
    metavar="ID|FILE",
    help="Cost model to start from (default: the one the rows name).",
)
@click.option("--name", "set_name", default="", help="Name of the measurement set in reports.")
@click.option(
    "--out",
    "out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write the fitted cost model here (.toml; use with check --cost-model).",
)
@guarded
def calibrate(measurements, fit, base, set_name, out):
    """Fit a cost model to measured latencies; print each row's leave-one-out error."""
    from edgeprune.estimates.calibrate import calibrate_file
    from edgeprune.presentation.calibration import format_calibration

    params = tuple(p.strip() for p in fit.split(",") if p.strip())
    click.echo(format_calibration(calibrate_file(measurements, params, base, set_name, out)))


@click.command()
@click.argument(
    "models", metavar="MODEL.tflite...", nargs=-1, required=True, type=click.Path(dir_okay=False)
)
@click.option(
    "--target",
    "target",
    default="host",
    show_default=True,
    metavar="NAME|FILE",
    help="Profile whose kernels, threads, clock and cost model the rows take; "
    "the timing is always on this machine.",
)
@click.option(
    "--runs",
    "runs",
    default=None,
    type=click.IntRange(min=1),
    help="Timed invokes per model (default: the profile's, or 50).",
)
@click.option(
    "--out",
    "out",
    default=None,
    type=click.Path(dir_okay=False),
    help="Write (or with --append, extend) a measurements CSV for `calibrate`.",
)
@click.option("--append", is_flag=True, help="Add the rows to an existing --out file.")
@max_model_option
@guarded
def measure(models, target, runs, out, append, max_model_mb):
    """Time models on this machine with ai-edge-litert; rows for `edgeprune calibrate`.
    Without --out the rows go to stdout as CSV."""
    from edgeprune.estimates.measure import measure_host

    _, csv_text = measure_host(list(models), target, runs, out, append, max_model_mb * 2**20)
    if out is None:
        click.echo(csv_text, nl=False)


@click.command()
@click.argument(
    "build_dir",
    metavar="[BUILD_DIR]",
    required=False,
    default="build",
    type=click.Path(file_okay=False),
)
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
        fail(table.failures, table.exit_code)


@click.command("report")
@click.argument("folder", metavar="DIR", type=click.Path(file_okay=False))
@guarded
def report_cmd(folder):
    """(Re)build DIR/report.html from DIR/report.json (a run folder) or DIR/sweep.json
    (a sweep folder): one self-contained page with plots that needs no network."""
    from edgeprune.presentation.html import write_report

    click.echo(write_report(folder))
