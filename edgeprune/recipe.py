"""Pipeline options: the recipe.

A recipe is a TOML file whose tables mirror the dataclasses below::

    seed = 0
    task = "auto"

    [train]            # only used when edgeprune trains the baseline itself
    epochs = 20

    [structured]       # whole channels removed, the model rebuilt narrower
    goal = "width"
    width = 0.5

    [prune]
    schedule = "polynomial_decay"
    final_sparsity = 0.75
    exclude = ["Dense"]

    [quantize]
    mode = "int8"

Every option can also be set from the command line; each field's metadata
names its flag (``flag``) and help text, and the CLI builds its options from
them, so a new option is one new field here. Values from flags override the
recipe. Unknown keys and out-of-range values raise :class:`RecipeError`.

A recipe holds pipeline options only, never facts about a device.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from dataclasses import dataclass, field
from typing import Any

from edgeprune._toml import read_toml
from edgeprune.errors import RecipeError

TASKS = ("auto", "classification", "regression")
SCHEDULES = ("polynomial_decay", "constant")
PATTERNS = ("unstructured", "m_by_n", "block")
QUANTIZE_MODES = ("int8", "dynamic", "float16", "float32")


def _opt(default: Any, flag: str, help: str, *, choices=None, lo=None, hi=None, hi_open=False,
         lo_open=False, kind=None, factory=None):
    meta = {"flag": flag, "help": help, "choices": choices, "lo": lo, "hi": hi,
            "hi_open": hi_open, "lo_open": lo_open, "kind": kind}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainOptions:
    """How edgeprune trains a built-in baseline model (ignored for a user's model)."""

    epochs: int = _opt(20, "--train-epochs", "Epochs to train a built-in baseline.", lo=1)
    batch_size: int = _opt(32, "--train-batch-size", "Batch size for baseline training.", lo=1)
    learning_rate: float = _opt(2e-3, "--train-learning-rate",
                                "Adam learning rate for baseline training.", lo=0.0,
                                lo_open=True)


@dataclass(frozen=True)
class PruneOptions:
    """Magnitude pruning with tfmot and the fine-tuning that goes with it."""

    schedule: str = _opt("polynomial_decay", "--schedule", "Pruning schedule.",
                         choices=SCHEDULES)
    final_sparsity: float = _opt(0.75, "--sparsity",
                                 "Fraction of weights to zero in each pruned layer.",
                                 lo=0.0, hi=1.0, hi_open=True)
    initial_sparsity: float = _opt(0.0, "--initial-sparsity",
                                   "Sparsity at the first step (polynomial_decay).",
                                   lo=0.0, hi=1.0, hi_open=True)
    power: float = _opt(3.0, "--power", "Exponent of the polynomial_decay schedule.", lo=0.0,
                        lo_open=True)
    pattern: str = _opt("unstructured", "--pattern",
                        "Sparsity pattern: any weight, m zeros in every n, or whole blocks.",
                        choices=PATTERNS)
    m_by_n: tuple[int, int] = _opt((2, 4), "--m-by-n",
                                   "For pattern m_by_n: m zeros in every n weights, as M:N.",
                                   kind="pair")
    block_size: tuple[int, int] = _opt((1, 4), "--block-size",
                                       "For pattern block: block height and width, as HxW "
                                       "(2-D kernels, that is Dense layers, only).",
                                       kind="pair")
    block_pooling: str = _opt("AVG", "--block-pooling", "How a block's magnitude is pooled.",
                              choices=("AVG", "MAX"))
    epochs: int = _opt(10, "--epochs", "Fine-tuning epochs while pruning.", lo=1)
    batch_size: int = _opt(32, "--batch-size", "Fine-tuning batch size.", lo=1)
    learning_rate: float = _opt(1e-3, "--learning-rate", "Adam learning rate for fine-tuning.",
                                lo=0.0, lo_open=True)
    begin_step: int | None = _opt(None, "--begin-step",
                                  "Step at which pruning starts (default 0).", lo=0)
    end_step: int | None = _opt(None, "--end-step",
                                "Step at which the schedule reaches final_sparsity "
                                "(default: derived from end_fraction).", lo=1)
    end_fraction: float = _opt(0.7, "--end-fraction",
                               "Fraction of the fine-tuning steps by which the schedule ends; "
                               "the rest recovers accuracy at the final sparsity.",
                               lo=0.0, hi=1.0)
    frequency: int | None = _opt(None, "--frequency",
                                 "Steps between mask updates (default: derived, about 16 "
                                 "updates over the schedule).", lo=1)
    include: tuple[str, ...] = _opt((), "--include",
                                    "Prune only these layers (names or layer types).",
                                    factory=tuple)
    exclude: tuple[str, ...] = _opt((), "--exclude",
                                    "Never prune these layers (names or layer types).",
                                    factory=tuple)


STRUCTURED_GOALS = ("none", "width", "params", "macs", "fit")
IMPORTANCE = ("l1", "l2", "bn_scale", "taylor", "obd")


@dataclass(frozen=True)
class StructuredPruning:
    """Structured pruning: whole neurons, filters and channels removed and the
    model rebuilt narrower, before the tfmot stage (``goal = "none"``: off)."""

    goal: str = _opt("none", "--structured",
                     "Structured pruning goal: none (off); width (keep a fraction of the "
                     "channels); params or macs (divide them by a factor); fit (the largest "
                     "model that passes the --target device's flash, RAM and latency budgets).",
                     choices=STRUCTURED_GOALS)
    width: float = _opt(0.5, "--width",
                        "Goal width: fraction of the prunable channels kept.",
                        lo=0.0, hi=1.0, lo_open=True)
    reduction: float = _opt(2.0, "--reduction",
                            "Goal params or macs: factor to divide them by (2.0 halves them).",
                            lo=1.0)
    importance: str = _opt("l1", "--importance",
                           "Channel importance: L1 or L2 norm of the kernel, BatchNorm scale, "
                           "first-order Taylor or Optimal Brain Damage (both on training data).",
                           choices=IMPORTANCE)
    ranking: str = _opt("global", "--ranking",
                        "Rank channels across all layers (global, with a per-layer floor) or "
                        "cut every layer by the same ratio (uniform).",
                        choices=("global", "uniform"))
    floor: float = _opt(0.1, "--layer-floor",
                        "Global ranking: fraction of each layer's channels always kept.",
                        lo=0.0, hi=1.0, hi_open=True)
    rounds: int = _opt(1, "--structured-rounds",
                       "Prune-and-fine-tune rounds that approach the goal geometrically "
                       "(1: one-shot).", lo=1, hi=50)
    epochs: int = _opt(5, "--structured-epochs",
                       "Fine-tuning epochs after each round (0: none).", lo=0)
    batch_size: int = _opt(32, "--structured-batch-size",
                           "Fine-tuning batch size of the structured rounds.", lo=1)
    learning_rate: float = _opt(1e-3, "--structured-learning-rate",
                                "Adam learning rate of the structured rounds.", lo=0.0,
                                lo_open=True)
    min_accuracy: float | None = _opt(None, "--min-accuracy",
                                      "Stop the rounds when validation accuracy falls below "
                                      "this and keep the round before (classification).",
                                      lo=0.0, hi=1.0)
    samples: int = _opt(256, "--importance-samples",
                        "Training samples the taylor and obd criteria use.", lo=1)


@dataclass(frozen=True)
class QuantizeOptions:
    """TFLite conversion."""

    mode: str = _opt("int8", "--quantize", "TFLite conversion mode.", choices=QUANTIZE_MODES)
    calibration_samples: int = _opt(200, "--calibration-samples",
                                    "Representative samples for int8 calibration (from x_calib "
                                    "if the data has it, else a seeded sample of x_train).",
                                    lo=1)
    max_accuracy_drop: float = _opt(0.02, "--max-accuracy-drop",
                                    "Quantization budget (classification): accuracy the "
                                    "converted model may lose against the float model it "
                                    "came from; more fails the run with exit code 4.",
                                    lo=0.0, hi=1.0)
    max_mse_increase: float = _opt(0.25, "--max-mse-increase",
                                   "Quantization budget (regression): relative MSE increase "
                                   "allowed against the float model; more fails with exit "
                                   "code 4.", lo=0.0)


@dataclass(frozen=True)
class ValidateOptions:
    """On-device validation: what counts as the model still doing its job."""

    max_accuracy_drop: float = _opt(0.03, "--max-validation-drop",
                                    "Accuracy the model may lose on the runner against the "
                                    "float baseline on the same samples; more exits 4.",
                                    lo=0.0, hi=1.0)
    max_mse_increase: float = _opt(0.5, "--max-validation-mse-increase",
                                   "Regression: relative MSE increase allowed against the "
                                   "float baseline; more exits 4.", lo=0.0)
    min_agreement: float = _opt(0.95, "--min-agreement",
                                "Fraction of samples whose result matches the host reference "
                                "(same class; regression: every output within 1 LSB); less "
                                "exits 4.", lo=0.0, hi=1.0)
    samples: int | None = _opt(None, "--samples",
                               "Validate on the first N samples of the split (default: all).",
                               lo=1)
    timeout_s: float = _opt(10.0, "--device-timeout",
                            "Seconds any one device call may take before the device counts "
                            "as silent.", lo=0.0, lo_open=True)
    remote_python: str = _opt("python3", "--remote-python",
                              "ssh runner: the board's Python, with numpy and tflite_runtime "
                              "or ai_edge_litert (a path for a virtualenv's).")
    ssh_config: str | None = _opt(None, "--ssh-config",
                                  "ssh runner: an ssh config file to use instead of "
                                  "~/.ssh/config (ssh -F).")
    ssh_key: str | None = _opt(None, "--ssh-key",
                               "ssh runner: the private key to log in with (ssh -i); default: "
                               "the ssh config's and the agent's.")


@dataclass(frozen=True)
class BudgetOptions:
    """Overrides of the target's default budgets (unset: the target's own)."""

    max_flash_bytes: int | None = _opt(None, "--max-flash-bytes",
                                       "Flash budget for model + runtime + reserve, bytes.",
                                       lo=1)
    max_ram_bytes: int | None = _opt(None, "--max-ram-bytes",
                                     "RAM budget for arena + runtime + reserve, bytes.", lo=1)
    max_latency_ms: float | None = _opt(None, "--max-latency-ms",
                                        "Latency budget for one inference (estimated), ms.",
                                        lo=0.0, lo_open=True)
    cost_model: str | None = _opt(None, "--cost-model",
                                  "Cost model for the latency estimate: a shipped id or a .toml "
                                  "written by `edgeprune calibrate --out` (default: the "
                                  "target's).")


@dataclass(frozen=True)
class Recipe:
    """Every pipeline option. Build with :func:`load_recipe` or ``Recipe()``."""

    seed: int = _opt(0, "--seed", "Seed for every random choice (same seed, same metrics).",
                     lo=0, hi=2**32 - 1)
    task: str = _opt("auto", "--task", "Task; auto infers it from the labels and the model.",
                     choices=TASKS)
    train: TrainOptions = field(default_factory=TrainOptions)
    structured: StructuredPruning = field(default_factory=StructuredPruning)
    prune: PruneOptions = field(default_factory=PruneOptions)
    quantize: QuantizeOptions = field(default_factory=QuantizeOptions)
    validate: ValidateOptions = field(default_factory=ValidateOptions)
    budget: BudgetOptions = field(default_factory=BudgetOptions)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain TOML-able data (tuples become lists)."""

        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            return v

        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if dataclasses.is_dataclass(v):
                out[f.name] = {g.name: plain(getattr(v, g.name)) for g in dataclasses.fields(v)}
            else:
                out[f.name] = plain(v)
        return out


SECTIONS: dict[str, type] = {"train": TrainOptions, "structured": StructuredPruning,
                             "prune": PruneOptions, "validate": ValidateOptions,
                             "quantize": QuantizeOptions, "budget": BudgetOptions}


def option_fields() -> list[tuple[str | None, dataclasses.Field]]:
    """Every leaf option as ``(section or None, field)``, in declaration order."""
    out: list[tuple[str | None, dataclasses.Field]] = []
    for f in dataclasses.fields(Recipe):
        if f.name in SECTIONS:
            out.extend((f.name, g) for g in dataclasses.fields(SECTIONS[f.name]))
        else:
            out.append((None, f))
    return out


def _unknown(key: str, known: list[str], where: str) -> RecipeError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(known)
    return RecipeError(f"{where}: unknown key '{key}'; {hint}")


def parse_pair(text: str, key: str) -> tuple[int, int]:
    """Parse ``"2:4"``, ``"1x4"`` or ``[2, 4]`` into a pair of positive ints."""
    if isinstance(text, (list, tuple)):
        parts = list(text)
    else:
        parts = str(text).lower().replace("x", ":").replace(",", ":").split(":")
    try:
        if len(parts) != 2 or any(isinstance(p, (bool, float)) for p in parts):
            raise ValueError
        a, b = (int(p) for p in parts)
    except (TypeError, ValueError):
        raise RecipeError(f"{key} = {text!r} is not a pair of whole numbers; write it "
                          f"like 2:4 (m_by_n) or 1x4 (block_size)") from None
    if a < 1 or b < 1:
        raise RecipeError(f"{key} = {text!r} must hold two positive integers")
    return a, b


def _coerce(f: dataclasses.Field, value: Any, key: str) -> Any:
    meta = f.metadata
    if meta.get("kind") == "pair":
        return parse_pair(value, key)
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise RecipeError(f"{key} = {value!r} must be a list of strings")
        return tuple(value)
    typ = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if value is None:
        if "None" in typ:
            return None
        raise RecipeError(f"{key} must be set")
    if typ.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{key} = {value!r} must be a whole number")
    elif typ.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{key} = {value!r} must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise RecipeError(f"{key} = {value} must be a finite number")
    elif typ.startswith("str"):
        if not isinstance(value, str):
            raise RecipeError(f"{key} = {value!r} must be a string")
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    if choices and value not in choices:
        raise RecipeError(f"{key} = {value!r} is not one of: {', '.join(choices)}")
    if lo is not None and meta.get("lo_open") and not value > lo:
        raise RecipeError(f"{key} = {value} must be above {lo}")
    if lo is not None and not value >= lo:
        raise RecipeError(f"{key} = {value} is below its minimum {lo}")
    if hi is not None:
        if meta.get("hi_open") and value >= hi:
            raise RecipeError(f"{key} = {value} is outside [{lo}, {hi}); choose a value "
                              f"from {lo} up to, but not including, {hi}")
        if not meta.get("hi_open") and value > hi:
            raise RecipeError(f"{key} = {value} is outside [{lo}, {hi}]")
    return value


def build_recipe(values: dict[str, Any], where: str = "recipe") -> Recipe:
    """Build a validated :class:`Recipe` from nested ``{section: {key: value}}`` data.

    Raises:
        RecipeError: an unknown key, a wrong type or a value out of range.
    """
    if not isinstance(values, dict):
        raise RecipeError(f"{where}: expected a table of options")
    top_fields = {f.name: f for f in dataclasses.fields(Recipe)}
    kwargs: dict[str, Any] = {}
    for name, value in values.items():
        if name not in top_fields:
            raise _unknown(name, list(top_fields), where)
        if name in SECTIONS:
            if not isinstance(value, dict):
                raise RecipeError(f"{where}: '{name}' must be a table ([{name}])")
            sub_fields = {f.name: f for f in dataclasses.fields(SECTIONS[name])}
            sub: dict[str, Any] = {}
            for k, v in value.items():
                if k not in sub_fields:
                    raise _unknown(f"{name}.{k}", list(sub_fields), where)
                sub[k] = _coerce(sub_fields[k], v, f"{name}.{k}")
            kwargs[name] = SECTIONS[name](**sub)
        else:
            kwargs[name] = _coerce(top_fields[name], value, name)
    recipe = Recipe(**kwargs)
    _check_consistency(recipe)
    return recipe


def _check_consistency(recipe: Recipe) -> None:
    p = recipe.prune
    m, n = p.m_by_n
    if m >= n:
        raise RecipeError(f"prune.m_by_n = {m}:{n} must have m < n (m zeros in every n "
                          f"weights), for example 2:4")
    if p.initial_sparsity > p.final_sparsity:
        raise RecipeError(f"prune.initial_sparsity = {p.initial_sparsity} is above "
                          f"prune.final_sparsity = {p.final_sparsity}; lower it")
    if p.begin_step is not None and p.end_step is not None and p.end_step <= p.begin_step:
        raise RecipeError(f"prune.end_step = {p.end_step} must be after prune.begin_step = "
                          f"{p.begin_step}")
    if set(p.include) & set(p.exclude):
        both = ", ".join(sorted(set(p.include) & set(p.exclude)))
        raise RecipeError(f"prune.include and prune.exclude both name {both}; keep it in one")


def load_recipe(path: str | os.PathLike | None, overrides: dict[str, Any] | None = None
                ) -> Recipe:
    """Read a recipe TOML file (or none) and apply ``overrides``.

    ``overrides`` maps dotted keys (``"prune.final_sparsity"``) to values;
    they win over the file. Raises :class:`RecipeError` for an unreadable or
    malformed file, an unknown key or an out-of-range value.
    """
    data: dict[str, Any] = {}
    where = "recipe"
    if path is not None:
        where = f"recipe {os.fspath(path)}"
        data = read_toml(path, RecipeError, "recipe")
    for dotted, value in (overrides or {}).items():
        section, _, name = dotted.rpartition(".")
        if section:
            table = data.setdefault(section, {})
            if not isinstance(table, dict):
                raise RecipeError(f"{where}: '{section}' must be a table ([{section}])")
            table[name] = value
        else:
            data[name] = value
    return build_recipe(data, where)
