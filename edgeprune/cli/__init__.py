"""The ``edgeprune`` command line: parse options, call one library function, map errors.

This package holds the click group, the error mapping, logging set-up, the
options several commands share and the console script; the commands live in
:mod:`edgeprune.cli.stages` (models through the pipeline's stages) and
:mod:`edgeprune.cli.tools` (device profiles, .tflite inspection, cost models,
fleet tables), and are registered on the group at the end of this module.

Nothing heavy is imported at start-up: TensorFlow loads only inside the
commands that need it, so ``edgeprune --help`` and ``edgeprune inspect``
answer quickly. Exit codes: 0 success, 1 bad input or tool error, 2 usage
error (click's own), 3 budget check failed, 4 a quality budget or a
validation rule failed, 5 a device failed during validation (partial results
written), 70 an internal error (a bug in edgeprune: bad input never ends
there), 130 interrupted.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import typing

import click

from edgeprune import __version__
from edgeprune.errors import EdgepruneError, clip

log = logging.getLogger("edgeprune")


# EX_SOFTWARE of sysexits.h: distinct from bad input (1), so a script and the
# fault campaign can tell a bug in edgeprune from a refused input.
INTERNAL_ERROR = 70


def fail(message: str, code: int) -> typing.NoReturn:
    click.echo(f"edgeprune: error: {message}", err=True)
    sys.exit(code)


def guarded(fn):
    """Turn domain errors into one line on stderr and their exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except EdgepruneError as exc:
            fail(str(exc), exc.exit_code)
        except click.ClickException:
            raise
        except KeyboardInterrupt:
            fail("interrupted", 130)
        except Exception as exc:  # noqa: BLE001 - last line of defence
            if os.environ.get("EDGEPRUNE_DEBUG"):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {clip(exc)}"
                f" (set EDGEPRUNE_DEBUG=1 for the traceback)",
                INTERNAL_ERROR,
            )

    return wrapper


class _Formatter(logging.Formatter):
    """``edgeprune: message``; a warning says so (``edgeprune: warning: message``),
    so that it stands out from progress lines and a script can grep for it."""

    def __init__(self) -> None:
        super().__init__("edgeprune: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            text = text.replace("edgeprune: ", f"edgeprune: {record.levelname.lower()}: ", 1)
        return text


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False
    # bars when stderr is a terminal (checked after the native filter took fd 2:
    # sys.stderr is still the terminal), plain lines otherwise, one a step with -v
    from edgeprune import progress

    progress.configure(
        progress.mode_for(sys.stderr, quiet=verbosity < 0),
        stream=sys.stderr,
        log_every_s=0.0 if verbosity > 0 else progress.LOG_EVERY_S,
    )
    # TensorFlow's own Python loggers and warnings are noise at this level.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    if verbosity < 1:
        import warnings

        warnings.filterwarnings("ignore")


# ------------------------------------------------------------ the group


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


model_option = click.option(
    "--model",
    "model",
    default=None,
    metavar="PATH",
    help="Keras model: .keras, .h5 or SavedModel folder "
    "or a built-in name: digits_cnn (the default), or the MLPerf "
    "Tiny ds_cnn, mobilenet_v1, resnet8, autoencoder on generated "
    "data.",
)
data_option = click.option(
    "--data",
    "data",
    default=None,
    metavar="NPZ|NAME",
    help="An .npz with x_train, y_train, x_test, y_test (optional x_val, "
    "y_val, x_calib) or a built-in data set name (digits; "
    "kws_synthetic, vww_synthetic, ic_synthetic, ad_synthetic: "
    "generated).",
)
recipe_option = click.option(
    "--recipe",
    "recipe_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="TOML recipe; flags override its values.",
)
out_option = click.option(
    "--out", "out", default=None, metavar="DIR", help="Run directory (default: runs/<model name>)."
)
max_model_option = click.option(
    "--max-model-mb",
    "max_model_mb",
    default=64,
    show_default=True,
    type=click.IntRange(min=1),
    help="Refuse a .tflite larger than this many MiB (the file is read into memory).",
)


def entry() -> None:
    """The console script: the click group, with TensorFlow's native log lines
    filtered from the terminal (kept with ``-vv`` or ``EDGEPRUNE_DEBUG=1``)."""
    argv = sys.argv[1:]
    loads_tensorflow = any(
        a in ("run", "prune", "quantize", "check", "validate", "sweep") for a in argv
    )
    if (
        loads_tensorflow
        and not os.environ.get("EDGEPRUNE_DEBUG")
        and not any(a in ("-vv", "-vvv") for a in argv)
        and argv.count("-v") + argv.count("--verbose") < 2
    ):
        from edgeprune._native_stderr import filter_native_stderr

        filter_native_stderr()
    main(prog_name="edgeprune")


# ------------------------------------------------------------ the commands
# Imported last: their modules take fail, guarded and the shared options from above.
from edgeprune.cli import stages, tools  # noqa: E402
from edgeprune.cli.sweep import sweep as _sweep  # noqa: E402

for _command in (
    stages.run,
    stages.prune_cmd,
    stages.quantize_cmd,
    stages.check_cmd,
    stages.firmware_cmd,
    stages.validate_cmd,
    tools.targets,
    tools.report_cmd,
    tools.inspect,
    tools.cost,
    tools.calibrate,
    tools.measure,
    tools.fleet,
    _sweep,
):
    main.add_command(_command)
del _command
