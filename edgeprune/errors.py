"""Domain errors. The library raises these; only the CLI maps them to exit codes.

Each is also a builtin error (``ValueError``, ``RuntimeError``) so that callers
who catch the builtin keep working. Messages are one line that names the
problem and the fix; the library never names CLI flags (the recipe key is the
common name for an option: ``prune.final_sparsity``).
"""

from __future__ import annotations


class EdgepruneError(Exception):
    """Base class of every error edgeprune raises on purpose."""

    exit_code = 1


class BadInputError(EdgepruneError, ValueError):
    """A model, data set, recipe or path the user gave cannot be used as given."""


class ModelLoadError(BadInputError):
    """The model file is missing, unreadable or not a model edgeprune can load."""


class InvalidModelError(ModelLoadError):
    """The model file is damaged or breaks its format's rules (a ``.tflite`` with
    stride 0, a missing buffer, a NaN scale); the message says what and where."""


class UnsupportedModelError(BadInputError):
    """The model loads but cannot go through the pipeline (Keras 3, subclassed, ...)."""


class DataError(BadInputError):
    """The data set is missing keys, has the wrong shape or labels out of range."""


class RecipeError(BadInputError):
    """The recipe has an unknown key, a wrong type or a value out of range."""


class ScheduleError(RecipeError):
    """A pruning schedule cannot reach its final sparsity within the training steps."""


class VerificationError(EdgepruneError, RuntimeError):
    """A stage that must keep the model's behaviour did not (strip changed outputs)."""


class QualityError(EdgepruneError):
    """A quality budget was missed (quantization cost too much accuracy).

    Raised after the artifacts and the report are written, so they can be
    inspected; the report names the rule, the figure and the budget.
    """

    exit_code = 4

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result  # what was written and measured, for the caller to show


class BudgetError(EdgepruneError):
    """A device budget rule failed (flash, RAM, latency). Raised after the
    report is written; ``result`` holds what was measured."""

    exit_code = 3

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class DeviceError(EdgepruneError, RuntimeError):
    """A device stopped answering or answered wrongly during a validation run.

    Raised after the partial results are written; the message says how far
    the run got, and ``result`` holds them where there are any.
    """

    exit_code = 5

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


class Interrupted(EdgepruneError, KeyboardInterrupt):
    """Ctrl-C ended a run part way, after the partial results were written.

    Still a ``KeyboardInterrupt``, so a script stops as it would on Ctrl-C;
    ``result`` holds what was completed.
    """

    exit_code = 130

    def __init__(self, message: str, result=None):
        super().__init__(message)
        self.result = result


def signal_name(returncode: int) -> str:
    """The signal that ended a child process, by name (``SIGSEGV``), from the negative
    return code :mod:`subprocess` gives for it."""
    import signal

    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def clip(text: object, limit: int = 300) -> str:
    """``text`` on one line, cut at a word boundary to at most ``limit`` characters
    with "…" where it was cut: how a message quotes another tool's words."""
    line = " ".join(str(text).split())
    if len(line) <= limit:
        return line
    cut = line[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip(" ,;:") + "…"
