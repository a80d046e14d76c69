"""The tree run's driver: inputs → baseline → importance → feature drop → prune →
C export → compiled sizes → check → host C agreement → firmware → report.

:func:`run` is what ``edgeprune run --model random_forest|decision_tree|extra_trees``
(or ``--model FILE.json|.skops``) does, the tree counterpart of
:func:`edgeprune.pipeline.run`. Every input is loaded and checked by
:func:`resolve_inputs` before the first byte is written (the data, the
model file, the recipe's ``[trees]``, the target and its compiler), so bad
input leaves the output folder untouched. The stages themselves are in
:mod:`edgeprune.trees.run_stages`. The run holds the folder's lock
(:mod:`edgeprune.run_folder`) and, failing part way, removes what it wrote,
as the Keras pipeline does.

Which data choose what: the model is fitted on the training split less a
validation split (``x_val`` when the data has one, else
``[trees] validation_fraction`` of ``x_train``, stratified); every pruning
choice, the importance and the feature drop are made on the validation split;
the test split only measures. TensorFlow is never imported on this path.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edgeprune import artifacts, report, run_folder
from edgeprune.errors import BudgetError, DataError, RecipeError
from edgeprune.recipe import Recipe
from edgeprune.target import Target

log = logging.getLogger(__name__)

KINDS = ("decision_tree", "random_forest", "extra_trees")
MODEL_SUFFIXES = (".json", ".skops", ".pkl", ".pickle", ".joblib")
# Breast cancer: 30 real measurements per sample (a tabular sensor-like task, the kind
# trees serve on devices), two classes, 569 samples: large enough that a 20 % validation
# split holds 91 samples, small enough that a 100-tree forest trains in a second.
DEFAULT_DATA = "breast_cancer"
C_NAME = "edgeprune"  # every symbol of the generated C starts with it
# Integer labels with at most this many distinct values are classes when the task is
# "auto"; anything else is a regression target.
MAX_AUTO_CLASSES = 256


def is_tree_model(model: str | None) -> bool:
    """True when ``--model`` names a tree model: a kind, or a file of a tree format."""
    if model is None:
        return False
    return model in KINDS or os.path.splitext(model)[1].lower() in MODEL_SUFFIXES


def refuse_unknown_name(model: str | None) -> None:
    """Refuse a ``--model`` that is neither a file nor a built-in name (Keras or tree),
    naming both lists: ``gradient_boosting`` is a model type, not a missing file.

    Raises:
        UnsupportedModelError: ``model`` has no path separator or suffix, does not
            exist, and names no built-in model.
    """
    from edgeprune.errors import UnsupportedModelError
    from edgeprune.models import BUILTIN_MODELS

    if model is None or os.path.exists(model) or model in BUILTIN_MODELS:
        return
    if os.sep in model or os.path.splitext(model)[1]:
        return  # a path: the Keras loader says it is missing
    raise UnsupportedModelError(
        f"model '{model}' is neither a model file nor a built-in model; built-in Keras "
        f"models: {', '.join(BUILTIN_MODELS)}; tree models: {', '.join(KINDS)} (or a fitted "
        "one as .skops or .json)"
    )


class TreeGoalError(BudgetError):
    """No pruned candidate passes the device's budgets (the fit goal): exit 3 as a
    failed budget, and no file is left (the run had nothing that fits to write)."""


@dataclass(frozen=True)
class TreeInputs:
    """Everything a tree run needs, loaded and checked before anything is written."""

    recipe: Recipe
    kind: str
    source: str  # builtin:<kind> or the model file's absolute path
    model_sha256: str | None
    forest: object | None  # a user's model (Forest), or None: trained here
    tree_options: object | None  # TreeOptions when edgeprune trains
    prune_options: object
    dataset: object
    task: str
    fit: tuple  # (x, y): the training split less validation
    val: tuple  # (x, y)
    val_split: str
    test: tuple  # (x, y)
    target: Target | None
    dtype: str  # "float" or "int16"
    out: artifacts.RunDir

    def inputs_entry(self) -> report.InputsEntry:
        classes = np.unique(np.concatenate([self.fit[1], self.val[1], self.test[1]]))
        return report.InputsEntry(
            self.source,
            self.dataset.describe(),
            self.task,
            len(classes) if self.task == "classification" else 0,
            False,
            model_sha256=self.model_sha256,
        )


def _labels(y: np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:  # one-hot rows
        return np.argmax(y, axis=1)
    return y.reshape(len(y)) if y.ndim > 1 and y.size == len(y) else y


def infer_task(y: np.ndarray, requested: str) -> str:
    """``requested`` unless "auto": then classification for integer labels with at
    most :data:`MAX_AUTO_CLASSES` distinct values, else regression."""
    if requested != "auto":
        return requested
    y = np.asarray(y)
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        return "classification"  # check_xy names what is wrong with such labels
    integral = y.dtype.kind in "biu" or bool(np.all(np.mod(y, 1) == 0))
    few = len(np.unique(y)) <= MAX_AUTO_CLASSES
    return "classification" if integral and few else "regression"


def _target(target, recipe: Recipe) -> Target | None:
    if target is None:
        return None
    from edgeprune.target import load_target
    from edgeprune.trees.compile import toolchain

    target = target if isinstance(target, Target) else load_target(target)
    toolchain(target.core)  # CompilerMissingError now, not after training
    return target


def _dtype(section, target: Target | None) -> str:
    if section.dtype != "auto" or target is None:
        return "float" if section.dtype == "auto" else section.dtype
    from edgeprune.trees.compile import default_dtype

    return default_dtype(target)  # int16 on a core without an FPU


def _model(model: str | None, recipe: Recipe):
    """(kind, source, sha256, forest or None, TreeOptions or None)."""
    section = recipe.trees
    if model is None or model in KINDS:
        kind = model or section.kind or "random_forest"
        return kind, f"builtin:{kind}", None, None, section.tree_options(kind, recipe.seed)
    from edgeprune.trees.load import load_model

    forest = load_model(model, unsafe_load=recipe.unsafe_load)
    for what, needs in (
        ('trees.prune.method = "pre"', section.prune.get("method") == "pre"),
        ("trees.keep_features", section.keep_features is not None),
    ):
        if needs:
            raise RecipeError(
                f"{what} refits the model, and {model} was fitted elsewhere (edgeprune does "
                'not know its training options); use method = "ccp", "reduced_error" or "mdl"'
            )
    path = os.path.abspath(model)
    return forest.kind, path, artifacts.sha256_file(path), forest, None


def _splits(dataset, task: str, section, seed: int):
    from edgeprune.trees.train import check_xy, validation_split

    x_train, y_train = check_xy(dataset.x_train, _labels(dataset.y_train), task)
    test = check_xy(dataset.x_test, _labels(dataset.y_test), task)
    if dataset.x_val is not None:
        val = check_xy(dataset.x_val, _labels(dataset.y_val), task)
        return (x_train, y_train), val, "validation (x_val of the data)", test
    x_fit, y_fit, x_val, y_val = validation_split(
        x_train, y_train, task, section.validation_fraction, seed
    )
    split = f"{section.validation_fraction:.0%} of x_train held out (stratified, seed {seed})"
    return (x_fit, y_fit), (x_val, y_val), split, test


def _check_model_fits_data(forest, fit, val, test, source: str) -> None:
    width = fit[0].shape[1]
    if forest.n_features != width:
        raise DataError(
            f"{source} reads {forest.n_features} features but the data has {width}; give "
            "the data the model was fitted on"
        )
    if forest.task == "classification":
        known = set(forest.classes)
        unknown = sorted({v for part in (fit, val, test) for v in part[1].tolist()} - known)
        if unknown:
            raise DataError(
                f"the labels hold {unknown[:5]} that {source} does not predict (its classes: "
                f"{list(forest.classes)[:10]}); give data with the model's classes"
            )


def resolve_inputs(model, data, recipe: Recipe, out, target) -> TreeInputs:
    """Load and check every input of a tree run; write nothing.

    Raises:
        BadInputError: (and subclasses) the model file (refused pickle, unhandled
            estimator, damaged file), the data (NaN, categorical columns, too few
            samples), the recipe (a goal without a target, a refit of a model
            fitted elsewhere), the target (unknown, or its compiler missing:
            :class:`~edgeprune.trees.compile.CompilerMissingError`), the output folder.
    """
    from edgeprune.data import load_dataset

    section = recipe.trees
    prune_options = section.prune_options()
    if section.goal == "fit" and target is None:
        raise RecipeError(
            'trees.prune.goal = "fit" keeps the most accurate model that fits a device: '
            "name the device (--target NAME)"
        )
    target = _target(target, recipe)
    kind, source, sha, forest, tree_options = _model(model, recipe)
    dataset = load_dataset(data or DEFAULT_DATA)
    task = forest.task if forest is not None else infer_task(_labels(dataset.y_train), recipe.task)
    if forest is not None and recipe.task not in ("auto", task):
        raise RecipeError(f"task = {recipe.task!r} but {source} is a {task} model")
    fit, val, val_split, test = _splits(dataset, task, section, recipe.seed)
    if forest is not None:
        _check_model_fits_data(forest, fit, val, test, source)
    elif task == "classification" and len(np.unique(fit[1])) < 2:
        raise DataError("the training labels hold a single class; a classifier needs two or more")
    if out is None:  # never build/<target>: that is `make <target>`'s Keras build
        stem = kind if forest is None else os.path.splitext(os.path.basename(source))[0]
        out = os.path.join("build", f"{target.id}_{stem}") if target else os.path.join("runs", stem)
    artifacts.check_out_dir(out)
    return TreeInputs(
        recipe,
        kind,
        source,
        sha,
        forest,
        tree_options,
        prune_options,
        dataset,
        task,
        fit,
        val,
        val_split,
        test,
        target,
        _dtype(section, target),
        artifacts.RunDir(os.fspath(out)),
    )


def run(
    model: str | None = None,
    data: str | None = None,
    recipe: Recipe | None = None,
    out: str | None = None,
    target: str | Target | None = None,
    force: bool = False,
    page: bool = True,
):
    """Train (or read) a tree model, prune it, export it as C, measure it and write the
    run folder; return a :class:`~edgeprune.trees.run_stages.TreeRunResult`.

    ``model``: a kind (``random_forest``, ``decision_tree``, ``extra_trees``; default
    the recipe's ``[trees] kind``) or a fitted model file (``.json``, ``.skops``; a
    pickle only with ``recipe.unsafe_load``). ``data``: a built-in set or an ``.npz``
    (default :data:`DEFAULT_DATA`). With ``target``, the C is compiled for its core,
    checked against its budgets and ``firmware/`` written.

    Side effects: writes ``baseline_trees.json``, ``pruned_trees.json``,
    ``firmware/`` (the C, its serial harness, a README), ``report.json`` and
    ``report.html`` into ``out`` (default ``runs/<kind>``, or
    ``build/<target>_<kind>`` with a target, apart from the Keras build of
    ``make <target>``) holding its lock; a failure part way removes them.

    Raises:
        BadInputError: before writing anything, see :func:`resolve_inputs`; another
            process writes ``out``; ``out`` holds another model's run (unless ``force``).
        TreeGoalError: (exit 3, nothing written) no pruned candidate fits the target.
        BudgetError: (after writing) the pruned model fails a budget rule.
    """
    from edgeprune.trees import run_stages

    t0 = time.perf_counter()
    recipe = recipe or Recipe()
    inp = resolve_inputs(model, data, recipe, out, target)
    with run_folder.hold(inp.out.path, "run") as held:
        run_folder.refuse_other_model(inp.out.path, inp.source, inp.model_sha256, force)
        previous = report.begin_run(inp.out)
        held.journal(previous | run_stages.may_write(inp))  # undone after a kill -9
        with _undone_on_failure(inp, previous):
            result = run_stages.run_stages(inp, previous, t0)
        if page:
            from edgeprune.presentation.html import refresh_run_html

            refresh_run_html(inp.out.path)  # a view of report.json: a failure is a warning
    check = result.check
    if check is not None and not check.ok:
        failed = ", ".join(r.name for r in check.rules if not r.ok)
        raise BudgetError(
            f"the pruned {inp.kind} does not fit {check.target}: {failed} over budget (see the "
            'table and report.json); prune harder ([trees.prune] goal = "fit", fewer '
            "members, max_nodes) or raise the budget",
            result,
        )
    return result


@contextlib.contextmanager
def _undone_on_failure(inp: TreeInputs, previous: set[str]) -> Iterator[None]:
    """A run that fails part way (any exception, Ctrl-C too) leaves no artifact: what
    it wrote is deleted, and so is what the report it replaced listed (that report
    is gone, see :func:`report.begin_run`). The input model file is never deleted."""
    try:
        yield
    except BaseException as exc:
        if inp.out.undo(previous, inp.source):
            log.warning("the run failed: removed its artifacts from %s", inp.out.path)
        from edgeprune.trees.prune import GoalUnreachableError

        if isinstance(exc, GoalUnreachableError):
            where = f"{inp.target.id}'s budgets" if inp.target else "the budget"
            raise TreeGoalError(str(exc).replace("the device budget", where, 1)) from None
        raise


def require_tree_run(folder: str) -> bool:
    """True when ``folder``'s ``report.json`` is a tree run's (it has a ``trees`` section)."""
    return run_folder.report_section(folder, "trees") is not None


__all__ = ["TreeGoalError", "TreeInputs", "is_tree_model", "resolve_inputs", "run"]
