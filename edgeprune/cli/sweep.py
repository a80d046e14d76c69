"""``edgeprune sweep`` (search the compression choices on a target) and
``edgeprune sweep export`` (one trial as a run folder)."""

from __future__ import annotations

import click

from edgeprune.cli import data_option, guarded, model_option, recipe_option
from edgeprune.errors import Interrupted
from edgeprune.recipe_flags import recipe_from as _recipe
from edgeprune.recipe_flags import recipe_options


@click.group("sweep", invoke_without_command=True)
@model_option
@data_option
@recipe_option
@click.option(
    "--target",
    "target",
    default=None,
    metavar="NAME",
    help="Device profile (required): its budgets are the sweep's constraints.",
)
@click.option(
    "--out",
    "out",
    default=None,
    metavar="DIR",
    help="Sweep folder (default: sweeps/<model>_<target>); an existing one is resumed.",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=None,
    help="Complete trials wanted, all workers together  [recipe: sweep.trials]",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes on this machine.",
)
@click.option(
    "--storage",
    default=None,
    metavar="URL",
    help="Shared study storage "
    "(postgresql://user:pass@host/db); default: the sweep folder's study.db.",
)
@click.option(
    "--study",
    "study",
    default=None,
    metavar="NAME",
    help="Study name in the storage (default: <model>_<target>).",
)
@click.option(
    "--objectives",
    default=None,
    metavar="LIST",
    help="Costs traded against "
    "accuracy: latency, flash, ram, ota (comma-separated)  [recipe: sweep.objectives]",
)
@click.option(
    "--reference",
    default=None,
    metavar="RUN_DIR",
    help="A run folder made "
    "for the same target (e.g. run --structured fit) to show beside the front.",
)
@recipe_options((None, "train", "quantize", "budget"))
@click.pass_context
@guarded
def sweep(
    ctx, model, data, recipe_path, target, out, trials, jobs, storage, study, objectives, **kwargs
):
    """Search compression choices for the Pareto front of accuracy against the
    chosen costs on --target; print the front."""
    if ctx.invoked_subcommand is not None:
        return
    if target is None:
        raise click.UsageError(
            "--target is required: the sweep's constraints are its budgets "
            "(see `edgeprune targets`)"
        )
    if model is not None and data is None:
        raise click.UsageError("--data is required with --model: every trial fine-tunes on it")
    recipe = _recipe(recipe_path, kwargs)
    from edgeprune.sweep.driver import sweep as run_sweep
    from edgeprune.sweep.results import format_front

    try:
        result = run_sweep(
            model, data, recipe, target, out, trials, jobs, storage, study, objectives
        )
    except Interrupted as exc:
        if exc.result is not None:
            click.echo(format_front(exc.result.document))
        raise
    click.echo(format_front(result.document))


@sweep.command("export")
@click.argument("number", metavar="TRIAL", type=click.IntRange(min=0))
@click.option("--sweep", "sweep_dir", required=True, metavar="DIR", help="The sweep folder.")
@click.option("--out", "out", required=True, metavar="DIR", help="Run folder to write.")
@click.option("--force", is_flag=True, help="Replace the run of another model in --out.")
@guarded
def export_cmd(number, sweep_dir, out, force):
    """Turn TRIAL of a sweep into a normal run folder (report.json, .tflite, firmware/)."""
    from edgeprune.sweep.export import export_trial

    click.echo(export_trial(number, sweep_dir, out, force))
