"""The recipe's ``[trees]`` and ``[trees.prune]`` sections: how a tree model is
trained, pruned and exported.

::

    [trees]
    kind = "random_forest"     # or decision_tree, extra_trees (--model NAME wins)
    n_estimators = 20          # ... every TreeOptions key (scikit-learn's names)
    keep_features = 10         # refit on the 10 most important features (or a fraction)
    validation_fraction = 0.2  # held out of x_train when the data has no x_val
    dtype = "auto"             # C input dtype: float, int16, or auto (int16 without an FPU)
    importance_repeats = 5     # shuffles per feature of permutation importance

    [trees.prune]
    method = "ccp"             # every PruneOptions key: method, ccp_rule, ensemble, leaves, ...
    goal = "fit"               # the most accurate candidate that passes --target's budgets

Parsed by :func:`parse_section` into a :class:`TreesSection` whose values were
checked by building :class:`~edgeprune.trees.train.TreeOptions` and
:class:`~edgeprune.trees.prune.PruneOptions` (so their own messages name a bad
value); unknown keys are refused as in the other sections. Nothing heavy is
imported: the option classes load inside the functions.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field, fields

from edgeprune.errors import RecipeError

TREE_KEYS = (
    "n_estimators",
    "max_depth",
    "min_samples_leaf",
    "min_impurity_decrease",
    "max_features",
    "random_state",
)
PRUNE_KEYS = (
    "method",
    "ccp_rule",
    "ensemble",
    "members",
    "max_nodes",
    "leaves",
    "choose_on",
    "reduced_error_rule",
    "min_members_fraction",
    "max_accuracy_drop",
)
# What a run prunes when [trees.prune] sets nothing (each key can be set on its own):
# measured in benchmarks/bench_trees.py and chosen in docs/tree-pruning.md ("Defaults").
PRUNE_DEFAULTS = {
    "method": "reduced_error",
    "reduced_error_rule": "better",
    "choose_on": "oob",
    "ensemble": "greedy",
    "min_members_fraction": 0.25,
    "leaves": "quantized",
}
GOALS = ("none", "fit")
DTYPES = ("auto", "float", "int16")
# TOML has no null: these words stand for None where a key allows it.
NONE_WORDS = ("none", "all")


@dataclass(frozen=True)
class TreesSection:
    """The tree options of a recipe (defaults: a random forest, pruned as
    :data:`PRUNE_DEFAULTS` says where ``prune`` sets nothing)."""

    kind: str | None = None  # None: the --model name, else random_forest
    options: dict = field(default_factory=dict)  # TreeOptions keys that were set
    prune: dict = field(default_factory=dict)  # PruneOptions keys that were set
    goal: str = "none"
    keep_features: int | float | None = None
    validation_fraction: float = 0.2
    dtype: str = "auto"
    importance_repeats: int = 5

    def tree_options(self, kind: str | None, seed: int):
        """:class:`TreeOptions` for ``kind`` (the CLI's model name, else the section's,
        else random_forest); ``random_state`` defaults to the recipe's ``seed``."""
        from edgeprune.trees.train import TreeOptions

        values = {"random_state": seed, **self.options}
        return TreeOptions(kind=kind or self.kind or "random_forest", **values)

    def prune_options(self):
        """:class:`PruneOptions`: the keys set in ``[trees.prune]`` over
        :data:`PRUNE_DEFAULTS` (``members`` alone keeps the default ensemble method)."""
        from edgeprune.trees.prune import PruneOptions

        return PruneOptions(**{**PRUNE_DEFAULTS, **self.prune})

    def to_dict(self) -> dict:
        """The section as TOML-able data that :func:`parse_section` reads back."""
        skip = ("prune", "goal")
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out.update({k: "none" if v is None else v for k, v in out.pop("options").items()})
        out["prune"] = {**self.prune, "goal": self.goal}
        return {k: v for k, v in out.items() if v is not None}


def _unknown(key: str, known, where: str) -> RecipeError:
    close = difflib.get_close_matches(key.rsplit(".", 1)[-1], list(known), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "known keys: " + ", ".join(known)
    return RecipeError(f"{where}: unknown key '{key}'; {hint}")


def _none_word(value):
    return None if isinstance(value, str) and value.lower() in NONE_WORDS else value


def parse_section(values, where: str = "recipe") -> TreesSection:
    """The ``[trees]`` table (with its ``prune`` sub-table) as a :class:`TreesSection`.

    Raises:
        RecipeError: not a table, an unknown key, or a value the option classes refuse.
    """
    if not isinstance(values, dict):
        raise RecipeError(f"{where}: 'trees' must be a table ([trees])")
    own = ("kind", "keep_features", "validation_fraction", "dtype", "importance_repeats")
    known = (*own, *TREE_KEYS, "prune")
    for key in values:
        if key not in known:
            raise _unknown(f"trees.{key}", known, where)
    prune = values.get("prune", {})
    if not isinstance(prune, dict):
        raise RecipeError(f"{where}: 'trees.prune' must be a table ([trees.prune])")
    for key in prune:
        if key not in (*PRUNE_KEYS, "goal"):
            raise _unknown(f"trees.prune.{key}", (*PRUNE_KEYS, "goal"), where)
    options = {k: _none_word(values[k]) for k in TREE_KEYS if k in values}
    section = TreesSection(
        kind=values.get("kind"),
        options=options,
        prune={k: prune[k] for k in PRUNE_KEYS if k in prune},
        goal=prune.get("goal", "none"),
        keep_features=values.get("keep_features"),
        validation_fraction=values.get("validation_fraction", 0.2),
        dtype=values.get("dtype", "auto"),
        importance_repeats=values.get("importance_repeats", 5),
    )
    check(section)
    return section


def check(section: TreesSection) -> None:
    """Refuse a bad value with the option classes' own one-line messages."""
    section.tree_options(section.kind, 0)
    section.prune_options()
    if section.goal not in GOALS:
        raise RecipeError(f"trees.prune.goal is {section.goal!r}; use one of {', '.join(GOALS)}")
    if section.dtype not in DTYPES:
        raise RecipeError(f"trees.dtype is {section.dtype!r}; use one of {', '.join(DTYPES)}")
    keep = section.keep_features
    number = isinstance(keep, int | float) and not isinstance(keep, bool)
    if keep is not None and not (
        number
        and ((isinstance(keep, int) and keep >= 1) or (isinstance(keep, float) and 0 < keep <= 1))
    ):
        raise RecipeError(
            f"trees.keep_features is {keep!r}; use a feature count >= 1 or a fraction in (0, 1]"
        )
    vf = section.validation_fraction
    if isinstance(vf, bool) or not isinstance(vf, int | float) or not 0 < vf < 1:
        raise RecipeError(f"trees.validation_fraction is {vf!r}; use a number in (0, 1)")
    reps = section.importance_repeats
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise RecipeError(f"trees.importance_repeats is {reps!r}; use a whole number >= 1")
