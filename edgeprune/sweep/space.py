"""The sweep's search space: a registry of dimensions and the ``[sweep]`` recipe section.

Each :class:`Dimension` names one compression choice, its kind (a float or
int range, or categorical choices), its default when the recipe leaves it out,
the values it may take, and ``apply(recipe, value) -> recipe``, which sets
the choice on the recipe's sections (``dataclasses.replace``). A later
compression (clustering, QAT) is one more entry in :data:`DIMENSIONS`; the
sweep itself never names a dimension.

The ``[sweep]`` section is read in two steps: :func:`parse_section` checks
what can be checked from the recipe alone (keys, types, ranges, choices) when
the recipe loads; :func:`resolve_space` then fixes the space against the
target and the objectives when a sweep starts. A range is ``[low, high]``; a
single value fixes the dimension (applied, not searched). Nothing here
imports optuna.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from edgeprune.errors import RecipeError
from edgeprune.sweep import compression

#: Cost objectives a user may choose: recipe word -> the value key measured per trial.
COSTS = {"latency": "latency_ms", "flash": "flash_bytes", "ram": "ram_bytes", "ota": "gzip_bytes"}
QUALITY = ("accuracy", "mse")
GOALS = ("macs", "params")
DEFAULT_TRIALS = 40
DEFAULT_OBJECTIVES = ("latency",)


def _structured(r, **changes):
    return replace(r, structured=replace(r.structured, **changes))


def _apply_width(r, v: float):
    return _structured(r, goal="none") if v >= 1.0 else _structured(r, goal="width", width=v)


def _apply_reduction(r, v: float, goal: str = "macs"):
    return _structured(r, goal="none") if v <= 1.0 else _structured(r, goal=goal, reduction=v)


def _apply_epochs(r, v: int):
    # The tfmot stage's fine-tuning is the trial's one fine-tuning: the structured
    # rounds cut one-shot (see the sweep's notes in docs/DESIGN-notes.md).
    return replace(r, prune=replace(r.prune, epochs=v), structured=replace(r.structured, epochs=0))


@dataclass(frozen=True)
class Dimension:
    """One compression choice of the search space.

    ``kind`` is ``float``, ``int`` or ``categorical``; ``default`` the range or
    choices used when the recipe leaves the key out (None: not searched unless
    asked for); ``limits`` the allowed ``(low, high)`` of a range or
    ``choices`` of a categorical; ``step`` the grid of a float range.
    """

    name: str
    kind: str
    default: tuple | None
    apply: Callable[[Any, Any], Any]
    limits: tuple = ()
    choices: tuple = ()
    step: float | None = None
    help: str = ""


DIMENSIONS: dict[str, Dimension] = {
    d.name: d
    for d in (
        Dimension(
            "width",
            "float",
            (0.25, 1.0),
            _apply_width,
            limits=(0.05, 1.0),
            step=0.05,
            help="fraction of the prunable channels kept (1.0: no structured pruning)",
        ),
        Dimension(
            "reduction",
            "float",
            None,
            _apply_reduction,
            limits=(1.0, 64.0),
            step=0.25,
            help="factor the MACs or params (sweep.goal) are divided by (1.0: none)",
        ),
        Dimension(
            "importance",
            "categorical",
            ("l1", "taylor"),
            lambda r, v: _structured(r, importance=v),
            choices=("l1", "l2", "bn_scale", "taylor", "obd"),
            help="channel importance criterion",
        ),
        Dimension(
            "ranking",
            "categorical",
            ("global", "uniform"),
            lambda r, v: _structured(r, ranking=v),
            choices=("global", "uniform"),
            help="channels ranked across layers or cut by the same ratio",
        ),
        Dimension(
            "epochs",
            "int",
            (1, 8),
            _apply_epochs,
            limits=(1, 1000),
            help="fine-tuning epochs",
        ),
        Dimension(
            "dense",
            "categorical",
            ("per_channel", "per_tensor"),
            lambda r, v: replace(r, quantize=replace(r.quantize, dense=v)),
            choices=("per_channel", "per_tensor"),
            help="how Dense weights are quantized (int8)",
        ),
        Dimension(
            "quantize",
            "categorical",
            ("int8", "dynamic", "float16"),
            lambda r, v: replace(r, quantize=replace(r.quantize, mode=v)),
            choices=("int8", "dynamic", "float16", "float32"),
            help="quantization mode",
        ),
        Dimension(
            "sparsity",
            "float",
            (0.0, 0.9),
            lambda r, v: replace(r, prune=replace(r.prune, final_sparsity=v)),
            limits=(0.0, 0.95),
            step=0.05,
            help="unstructured sparsity (over the air; flash too with prune compression)",
        ),
        Dimension(
            "compress",
            "categorical",
            None,
            compression.apply_compress,
            choices=("none", "prune", "lut", "both"),
            help="TFLite Micro weight compression (DECODE); TFLite Micro targets only",
        ),
        Dimension(
            "clusters",
            "int",
            None,
            compression.apply_clusters,
            limits=(2, 128),
            help="distinct weight values per layer (clustering), for lut/both compression",
        ),
    )
}


@dataclass(frozen=True)
class SweepSection:
    """The ``[sweep]`` recipe section as written (checked, not yet resolved):
    ``dims`` maps each dimension the recipe names to its range, choices or
    fixed value."""

    trials: int = DEFAULT_TRIALS
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    goal: str = "macs"
    dims: tuple[tuple[str, Any], ...] = ()

    def to_dict(self) -> dict:
        out = {"trials": self.trials, "objectives": list(self.objectives), "goal": self.goal}
        out.update({k: list(v) if isinstance(v, tuple) else v for k, v in self.dims})
        return out


def parse_section(values: Any, where: str = "recipe") -> SweepSection:
    """Check the ``[sweep]`` table: known keys, ranges ``[low, high]`` within each
    dimension's limits, known and distinct choices.

    Raises:
        RecipeError: one line naming the key and the fix.
    """
    if not isinstance(values, dict):
        raise RecipeError(f"{where}: 'sweep' must be a table ([sweep])")
    values = dict(values)
    trials = values.pop("trials", DEFAULT_TRIALS)
    if isinstance(trials, bool) or not isinstance(trials, int) or not 1 <= trials <= 100_000:
        raise RecipeError(f"sweep.trials = {trials!r} must be a whole number from 1 to 100000")
    objectives = parse_objectives(values.pop("objectives", list(DEFAULT_OBJECTIVES)))
    goal = values.pop("goal", "macs")
    if goal not in GOALS:
        raise RecipeError(f"sweep.goal = {goal!r} is not one of: {', '.join(GOALS)}")
    dims = []
    for key, value in values.items():
        if key not in DIMENSIONS:
            known = ", ".join(["trials", "objectives", "goal", *DIMENSIONS])
            raise RecipeError(f"{where}: unknown key 'sweep.{key}'; known keys: {known}")
        dims.append((key, check_value(DIMENSIONS[key], value)))
    section = SweepSection(trials, objectives, goal, tuple(dims))
    check_combination(section)
    return section


def check_combination(section: SweepSection) -> None:
    """Dimensions that cannot go together, or not with these objectives.

    Raises:
        RecipeError: width with reduction; sparsity that saves nothing measured
            (neither the ota objective nor prune compression).
    """
    names = {k for k, _ in section.dims}
    if {"width", "reduction"} <= names:
        raise RecipeError(
            "sweep.width and sweep.reduction both set the structured cut; keep one "
            "(width: fraction of channels kept; reduction: MACs or params divided)"
        )
    compression.check_clusters(section)
    if (
        "sparsity" in names
        and "ota" not in section.objectives
        and not compression.may_prune(section)
    ):
        raise RecipeError(
            "sweep.sparsity saves no flash (the flatbuffer stores every zero weight), "
            'only over-the-air (gzip) bytes; add "ota" to sweep.objectives, offer "prune" '
            "in sweep.compress (the zeros then leave the flash), or remove it"
        )


def parse_objectives(value: Any) -> tuple[str, ...]:
    """The cost objectives of ``sweep.objectives`` (a list or a comma-separated
    string), in order; the quality one (accuracy or MSE) is implied first.

    Raises:
        RecipeError: an unknown or repeated objective.
    """
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise RecipeError(f"sweep.objectives = {value!r} must be a list of strings")
    known = ", ".join(COSTS)
    costs = []
    for v in value:
        if v in QUALITY:
            continue
        if v not in COSTS:
            raise RecipeError(f"sweep.objectives: unknown objective {v!r}; choose from {known}")
        if v in costs:
            raise RecipeError(f"sweep.objectives names {v!r} twice; name each objective once")
        costs.append(v)
    if not costs:
        raise RecipeError(
            f"sweep.objectives names no cost to trade accuracy against; add one of {known}"
        )
    return tuple(costs)


def check_value(dim: Dimension, value: Any) -> Any:
    """A dimension's value as written: a range (tuple), choices (tuple) or one fixed value."""
    key = f"sweep.{dim.name}"
    if dim.kind == "categorical":
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not items:
            raise RecipeError(f"{key} is an empty list; give at least one of {_or(dim.choices)}")
        for v in items:
            if v not in dim.choices:
                raise RecipeError(f"{key}: {v!r} is not one of {_or(dim.choices)}")
        if len(set(items)) != len(items):
            raise RecipeError(f"{key} = {items!r} names a choice twice; name each once")
        return tuple(items) if len(items) > 1 else items[0]
    if not isinstance(value, (list, tuple)):
        return _number(dim, value, key)
    if len(value) != 2:
        what = "is an empty range" if not value else f"= {list(value)!r} is not a range"
        raise RecipeError(f"{key} {what}; write it as [low, high], e.g. {list(dim.default or ())}")
    lo, hi = (_number(dim, v, key) for v in value)
    if lo > hi:
        raise RecipeError(
            f"{key} = [{lo}, {hi}] is inverted; write the low end first: [{hi}, {lo}]"
        )
    return (lo, hi) if lo < hi else lo


def _number(dim: Dimension, v: Any, key: str):
    ok_type = int if dim.kind == "int" else (int, float)
    if isinstance(v, bool) or not isinstance(v, ok_type) or not math.isfinite(v):
        what = "a whole number" if dim.kind == "int" else "a number"
        raise RecipeError(f"{key}: {v!r} must be {what} (a range is [low, high])")
    lo, hi = dim.limits
    if not lo <= v <= hi:
        raise RecipeError(f"{key}: {v} is outside the allowed [{lo}, {hi}]")
    return float(v) if dim.kind == "float" else v


def _or(choices) -> str:
    return ", ".join(choices)


# ---------------------------------------------------------------- the resolved space


@dataclass(frozen=True)
class Space:
    """The space a sweep searches: ``searched`` maps a dimension to its range
    (``(low, high)``) or choices (a tuple); ``fixed`` maps a dimension to the one
    value every trial uses; ``goal`` is the reduction's structured goal."""

    searched: dict
    fixed: dict
    goal: str = "macs"

    def canonical(self) -> dict:
        """The space as plain, ordered JSON data: what a study records as its identity."""
        return {
            "searched": {k: list(self.searched[k]) for k in sorted(self.searched)},
            "fixed": {k: self.fixed[k] for k in sorted(self.fixed)},
            "goal": self.goal if "reduction" in {**self.searched, **self.fixed} else None,
        }

    def apply(self, recipe, params: dict):
        """``recipe`` with the fixed values and a trial's ``params`` set on it.
        ``clusters`` is set only on trials whose ``compress`` (when it is a
        dimension) encodes clustered weights: the others keep the recipe's."""
        values = {**self.fixed, **params}
        for name, value in values.items():
            if (
                name == "clusters"
                and values.get("compress", "lut") not in compression.CLUSTER_METHODS
            ):
                continue
            if name == "reduction":
                recipe = _apply_reduction(recipe, value, self.goal)
            else:
                recipe = DIMENSIONS[name].apply(recipe, value)
        return recipe


def resolve_space(section: SweepSection, runtime: str, mode: str, compress: str = "none") -> Space:
    """The space for a target of ``runtime`` (``tflm`` or ``litert``), the
    recipe's quantization ``mode`` and compression method ``compress``: the
    recipe's dimensions, and the defaults of those it leaves out where they apply.

    Unstructured sparsity is fixed at 0 unless the ``ota`` objective or prune
    compression (``compress`` may be prune or both) makes it save something:
    otherwise it would cost accuracy and save no flash. On TFLite Micro the
    quantization mode is not searched by default (int8 is what its kernels are
    built for). Compression is searched only when asked for (``sweep.compress``).

    Raises:
        RecipeError: a quantization mode the target cannot run; compression on a
            Linux target (LiteRT has no DECODE operator) or of a model not int8.
    """
    given = dict(section.dims)
    may_prune = compression.may_prune(section, compress)
    applies = {
        "width": "reduction" not in given,
        "reduction": False,
        "quantize": runtime != "tflm",
        "dense": runtime == "tflm",
        "sparsity": "ota" in section.objectives or may_prune,
    }
    searched, fixed = {}, {}
    for name, dim in DIMENSIONS.items():
        value = given.get(name, dim.default if applies.get(name, True) else None)
        if value is None:
            continue
        (searched if isinstance(value, tuple) else fixed)[name] = value
    modes = searched.get("quantize", (fixed.get("quantize", mode),))
    if runtime == "tflm":
        from edgeprune.stages.inputs import TFLM_LACKS

        lacking = [m for m in modes if m in TFLM_LACKS]
        if lacking:
            raise RecipeError(
                f"sweep.quantize: TFLite Micro cannot run {lacking[0]} models "
                f"({TFLM_LACKS[lacking[0]]}); choose from int8, float32"
            )
    compression.refuse(section, runtime, modes, compress)
    if "sparsity" not in searched and "sparsity" not in fixed:
        fixed["sparsity"] = 0.0
    if not searched:
        raise RecipeError(
            "the [sweep] section fixes every dimension: nothing is left to search; "
            "give at least one dimension a range or several choices"
        )
    return Space(searched, fixed, section.goal)


def suggest(trial, space: Space) -> dict:
    """Ask an optuna ``trial`` for a value of each searched dimension."""
    params = {}
    for name in sorted(space.searched):
        dim, value = DIMENSIONS[name], space.searched[name]
        if dim.kind == "categorical":
            params[name] = trial.suggest_categorical(name, list(value))
        elif dim.kind == "int":
            params[name] = trial.suggest_int(name, value[0], value[1])
        else:
            lo, hi = value
            step = dim.step if _on_grid(lo, hi, dim.step) else None
            # a grid point as written (0.95, not 0.9500000000000001)
            params[name] = round(trial.suggest_float(name, lo, hi, step=step), 9)
    return params


def _on_grid(lo: float, hi: float, step: float | None) -> bool:
    if step is None:
        return False
    n = (hi - lo) / step
    return abs(n - round(n)) < 1e-9
