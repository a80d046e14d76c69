"""The typed entries of a tree model's ``report.json``.

A tree run's report is a :class:`TreeReport`: the common header of every run
(:class:`~edgeprune.report.entries.Report`: tool, versions, seed, recipe,
inputs, the device check under ``stages.check``, artifacts, validation) plus a
``trees`` section (:class:`TreeRunEntry`): the model before and after pruning
(:class:`TreeModelEntry`: complexity, test quality, validation metric, compiled
sizes and latency estimate), every pruning step, the chosen parameters,
feature importance, the feature-drop result and the host-compiled C's agreement
with scikit-learn. :func:`edgeprune.report.read` returns a TreeReport for a
report with a ``trees`` section; reading checks the fields here as it does the
others' (a missing field or a wrong kind of value is an incomplete report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from edgeprune.report.entries import Report, _Entry, _optional

TASKS = ("classification", "regression")
COMPLEXITY_KEYS = ("nodes", "leaves", "depth", "members")


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise TypeError(what)  # report.read turns it into "not a complete edgeprune report"


@dataclass(frozen=True)
class TreeModelEntry(_Entry):
    """One tree model of the run (``baseline`` or ``pruned``).

    ``complexity``: nodes, leaves, internal nodes, depth, members, features used;
    ``test``: accuracy, macro-F1 and confusion matrix (or MSE, MAE) on the test
    split; ``validation``: ``{"metric", "value"}`` on the validation split;
    ``compiled``: what the model's C adds to a firmware on the target's core
    (flash, RAM, stack, compiler, flags; None without a target);
    ``latency``: the estimate of one prediction (ms, error band, how; None without a target).
    """

    artifact: str
    complexity: dict
    test: dict
    validation: dict
    importance: dict  # impurity, permutation_mean, permutation_std, features
    compiled: dict | None = _optional()
    latency: dict | None = _optional()

    def __post_init__(self):
        _require(isinstance(self.artifact, str), "artifact is not a file name")
        _require(
            isinstance(self.complexity, dict)
            and all(isinstance(self.complexity.get(k), int) for k in COMPLEXITY_KEYS),
            f"complexity lacks one of {', '.join(COMPLEXITY_KEYS)}",
        )
        _require(isinstance(self.test, dict), "test is not an object")
        _require(isinstance(self.validation, dict), "validation is not an object")
        for key in ("compiled", "latency"):
            value = getattr(self, key)
            _require(value is None or isinstance(value, dict), f"{key} is not an object")
        if self.compiled is not None:
            _require(
                isinstance(self.compiled.get("flash_bytes"), int)
                and isinstance(self.compiled.get("ram_bytes"), int),
                "compiled lacks flash_bytes or ram_bytes",
            )


@dataclass(frozen=True)
class TreeRunEntry(_Entry):
    """The ``trees`` section: what the tree run trained or read, pruned, exported and measured.

    ``source``: ``builtin:<kind>`` (trained here) or the model file; ``options``:
    the hyperparameters; ``prune``: the ``[trees.prune]`` options in force;
    ``steps``: one dict per pruning algorithm applied (parameters chosen, nodes,
    members and validation metric before and after); ``feature_drop``: the
    refit on fewer features (kept indices, validation metric before and after,
    test quality of the refit) or None; ``agreement``: the host-compiled C
    against scikit-learn on the test split (``n_equal``, ``n``, the first
    differences and why) or None when it could not run (``notes`` says why).
    """

    _types: ClassVar[dict[str, Any]] = {
        "baseline": TreeModelEntry,
        "pruned": TreeModelEntry,
        "steps": tuple,
        "notes": tuple,
    }
    kind: str
    task: str
    source: str
    n_features: int
    classes: list
    feature_names: list
    options: dict
    prune: dict
    validation_split: str
    baseline: TreeModelEntry
    pruned: TreeModelEntry
    steps: tuple[dict, ...] = ()
    dtype: str = "float"
    c_files: list = field(default_factory=list)
    feature_drop: dict | None = _optional()
    agreement: dict | None = _optional()
    notes: tuple[str, ...] = ()

    def __post_init__(self):
        _require(self.task in TASKS, f"task {self.task!r} is not one of {', '.join(TASKS)}")
        _require(isinstance(self.n_features, int) and self.n_features >= 1, "n_features")
        _require(isinstance(self.baseline, TreeModelEntry), "baseline is not a model entry")
        _require(isinstance(self.pruned, TreeModelEntry), "pruned is not a model entry")
        if self.agreement is not None:
            a = self.agreement
            _require(
                isinstance(a.get("n_equal"), int) and isinstance(a.get("n"), int),
                "agreement lacks n_equal or n",
            )


@dataclass(frozen=True)
class TreeReport(Report):
    """A tree run's ``report.json``: a :class:`Report` with its ``trees`` section."""

    _types: ClassVar[dict[str, Any]] = {**Report._types, "trees": TreeRunEntry}
    trees: TreeRunEntry | None = None

    def __post_init__(self):
        _require(isinstance(self.trees, TreeRunEntry), "the trees section is missing")
