"""Pipeline options: the recipe, its loading from TOML and flags, and its checks.

A recipe is a TOML file whose tables mirror :class:`Recipe` and its sections (the
dataclasses of :mod:`edgeprune.recipe_options`)::

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

    [cluster]          # at most n distinct weights per layer (LUT compression)
    clusters = 16

    [quantize]
    mode = "pcqat"     # int8 after prune- and cluster-preserving QAT

    [compress]         # TFLite Micro targets: DECODE weight compression
    method = "prune"

Every option can also be set from the command line; each field's metadata
names its flag (``flag``) and help text, and the CLI builds its options from
them, so a new option is one new field in :mod:`edgeprune.recipe_options`.
Values from flags override the recipe. Unknown keys and out-of-range values
raise :class:`RecipeError`.

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
from edgeprune.recipe_options import (
    BudgetOptions,
    ClusterOptions,
    CompressOptions,
    PruneOptions,
    QuantizeOptions,
    StructuredPruning,
    TrainOptions,
    ValidateOptions,
    option,
)
from edgeprune.sweep.space import SweepSection, parse_section
from edgeprune.trees import recipe as trees_recipe

TASKS = ("auto", "classification", "regression")
# Step and sample counters are int32 in TensorFlow; a whole number above this is a typo.
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class Recipe:
    """Every pipeline option. Build with :func:`load_recipe` or ``Recipe()``."""

    seed: int = option(
        0, "--seed", "Seed for every random choice (same seed, same metrics).", lo=0, hi=2**32 - 1
    )
    task: str = option(
        "auto", "--task", "Task; auto infers it from the labels and the model.", choices=TASKS
    )
    unsafe_load: bool = option(
        False,
        "--unsafe-load",
        "Load a model file whose Lambda layers or custom objects run Python code "
        "while it loads (refused otherwise); only for files you trust.",
    )
    train: TrainOptions = field(default_factory=TrainOptions)
    structured: StructuredPruning = field(default_factory=StructuredPruning)
    prune: PruneOptions = field(default_factory=PruneOptions)
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    quantize: QuantizeOptions = field(default_factory=QuantizeOptions)
    validate: ValidateOptions = field(default_factory=ValidateOptions)
    budget: BudgetOptions = field(default_factory=BudgetOptions)
    compress: CompressOptions = field(default_factory=CompressOptions)
    # [sweep]: the search space of `edgeprune sweep` (edgeprune.sweep.space); no flags
    sweep: SweepSection = field(default_factory=SweepSection)
    # [trees], [trees.prune]: tree models (edgeprune.trees.recipe); no flags
    trees: trees_recipe.TreesSection = field(default_factory=trees_recipe.TreesSection)

    def to_dict(self) -> dict[str, Any]:
        """The resolved recipe as plain TOML-able data (tuples become lists)."""

        def plain(v):
            if isinstance(v, tuple):
                return [plain(x) for x in v]
            return v

        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, SweepSection | trees_recipe.TreesSection):
                out[f.name] = v.to_dict()
            elif dataclasses.is_dataclass(v):
                out[f.name] = {g.name: plain(getattr(v, g.name)) for g in dataclasses.fields(v)}
            else:
                out[f.name] = plain(v)
        return out


SECTIONS: dict[str, type] = {
    "train": TrainOptions,
    "structured": StructuredPruning,
    "prune": PruneOptions,
    "cluster": ClusterOptions,
    "validate": ValidateOptions,
    "quantize": QuantizeOptions,
    "budget": BudgetOptions,
    "compress": CompressOptions,
}


def option_fields() -> list[tuple[str | None, dataclasses.Field]]:
    """Every leaf option as ``(section or None, field)``, in declaration order."""
    out: list[tuple[str | None, dataclasses.Field]] = []
    for f in dataclasses.fields(Recipe):
        if f.name in SECTIONS:
            out.extend((f.name, g) for g in dataclasses.fields(SECTIONS[f.name]))
        elif f.name not in ("sweep", "trees"):  # tables set by their own command's flags
            out.append((None, f))
    return out


def _unknown(key: str, known: list[str], where: str) -> RecipeError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], known, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(known)
    return RecipeError(f"{where}: unknown key '{key}'; {hint}")


# m_by_n and block_size count weights along one kernel dimension.
MAX_PAIR = 65536


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
        raise RecipeError(
            f"{key} = {text!r} is not a pair of whole numbers; write it "
            f"like 2:4 (m_by_n) or 1x4 (block_size)"
        ) from None
    if a < 1 or b < 1:
        raise RecipeError(f"{key} = {text!r} must hold two positive integers")
    if max(a, b) > MAX_PAIR:
        raise RecipeError(
            f"{key} = {text!r} is larger than any kernel dimension; each number must be at "
            f"most {MAX_PAIR}"
        )
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
        for v in value:
            _printable(v, key)
        return tuple(value)
    typ = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if value is None:
        if "None" in typ:
            return None
        raise RecipeError(f"{key} must be set")
    if typ.startswith("bool"):
        if not isinstance(value, bool):
            raise RecipeError(f"{key} = {value!r} must be true or false")
    elif typ.startswith("int"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise RecipeError(f"{key} = {value!r} must be a whole number")
        if meta.get("hi") is None and value > MAX_INT:
            raise RecipeError(f"{key} = {value} is above the largest allowed value {MAX_INT}")
    elif typ.startswith("float"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RecipeError(f"{key} = {value!r} must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise RecipeError(f"{key} = {value} must be a finite number")
    elif typ.startswith("str"):
        if not isinstance(value, str):
            raise RecipeError(f"{key} = {value!r} must be a string")
        _printable(value, key)
        if not value.strip() and default != "":
            hint = f" (the default is {default!r})" if default else ""
            raise RecipeError(f"{key} is empty; give it a value or leave it out{hint}")
    choices, lo, hi = meta.get("choices"), meta.get("lo"), meta.get("hi")
    if choices and value not in choices:
        raise RecipeError(f"{key} = {value!r} is not one of: {', '.join(choices)}")
    if lo is not None and meta.get("lo_open") and not value > lo:
        raise RecipeError(f"{key} = {value} must be above {lo}")
    if lo is not None and not value >= lo:
        raise RecipeError(f"{key} = {value} is below its minimum {lo}")
    if hi is not None:
        if meta.get("hi_open") and value >= hi:
            raise RecipeError(
                f"{key} = {value} is outside [{lo}, {hi}); choose a value "
                f"from {lo} up to, but not including, {hi}"
            )
        if not meta.get("hi_open") and value > hi:
            raise RecipeError(f"{key} = {value} is outside [{lo}, {hi}]")
    return value


def _printable(value: str, key: str) -> None:
    if not value.isprintable():
        raise RecipeError(f"{key} = {value!r} holds control characters; use plain text")


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
        if name == "sweep":
            kwargs[name] = parse_section(value, where)
        elif name == "trees":
            kwargs[name] = trees_recipe.parse_section(value, where)
        elif name in SECTIONS:
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
        raise RecipeError(
            f"prune.m_by_n = {m}:{n} must have m < n (m zeros in every n weights), for example 2:4"
        )
    if p.initial_sparsity > p.final_sparsity:
        raise RecipeError(
            f"prune.initial_sparsity = {p.initial_sparsity} is above "
            f"prune.final_sparsity = {p.final_sparsity}; lower it"
        )
    if p.begin_step is not None and p.end_step is not None and p.end_step <= p.begin_step:
        raise RecipeError(
            f"prune.end_step = {p.end_step} must be after prune.begin_step = {p.begin_step}"
        )
    _check_qat(recipe)
    if set(p.include) & set(p.exclude):
        both = ", ".join(sorted(set(p.include) & set(p.exclude)))
        raise RecipeError(f"prune.include and prune.exclude both name {both}; keep it in one")


def _check_qat(recipe: Recipe) -> None:
    """A preserving QAT mode needs what it preserves; a cluster count of 1 is no model."""
    mode, n = recipe.quantize.mode, recipe.cluster.clusters
    if n == 1:
        raise RecipeError(
            "cluster.clusters = 1 would set every weight of a layer to one value; "
            "use 0 (no clustering) or 2 to 128"
        )
    if mode in ("pqat", "cqat", "pcqat") and recipe.quantize.dense == "per_channel":
        raise RecipeError(
            f"quantize.dense = 'per_channel' cannot apply to quantize.mode = {mode!r}: its QAT "
            f"scheme quantizes Dense weights per-tensor; leave quantize.dense at auto"
        )
    if mode in ("cqat", "pcqat") and n == 0:
        raise RecipeError(
            f"quantize.mode = {mode!r} preserves weight clusters but cluster.clusters = 0 "
            f"clusters nothing; set cluster.clusters (2 to 128) or use pqat or int8"
        )
    if (
        mode in ("pqat", "pcqat")
        and recipe.prune.final_sparsity == 0
        and (recipe.prune.pattern != "m_by_n")
    ):
        raise RecipeError(
            f"quantize.mode = {mode!r} preserves pruned zeros but prune.final_sparsity = 0 "
            f"prunes none; raise prune.final_sparsity or use {'cqat' if n else 'int8'}"
        )


def load_recipe(path: str | os.PathLike | None, overrides: dict[str, Any] | None = None) -> Recipe:
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
