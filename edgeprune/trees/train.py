"""Training tree models from data, and the validation split pruning chooses on.

:class:`TreeOptions` is what the recipe's ``[trees]`` section maps onto; it is
validated when built, so a bad value fails before any fitting. :func:`train`
fits one of the six scikit-learn estimators and returns it as a
:class:`~edgeprune.trees.model.Forest`. The data is checked first: trees take
numbers only, so NaN, infinities and non-numeric (categorical) columns are
refused with a one-line message saying what to do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeprune.errors import DataError, RecipeError
from edgeprune.trees.model import CLASSIFICATION, REGRESSION, Forest, from_sklearn

KIND_NAMES = ("decision_tree", "random_forest", "extra_trees")
TASKS = (CLASSIFICATION, REGRESSION)
MAX_FEATURES_WORDS = ("sqrt", "log2")


@dataclass(frozen=True)
class TreeOptions:
    """Hyperparameters of a tree model, as scikit-learn names them.

    ``kind`` is "decision_tree", "random_forest" or "extra_trees";
    ``n_estimators`` is ignored for a single tree; ``max_features`` is
    scikit-learn's (``"sqrt"``, ``"log2"``, a fraction in (0, 1] or ``None`` for
    all features). Raises :class:`~edgeprune.errors.RecipeError` on a bad value.
    """

    kind: str = "random_forest"
    n_estimators: int = 100
    max_depth: int | None = None
    min_samples_leaf: int = 1
    min_impurity_decrease: float = 0.0
    max_features: str | float | None = "sqrt"
    random_state: int = 0

    def __post_init__(self):
        if self.kind not in KIND_NAMES:
            raise RecipeError(f"trees.kind is {self.kind!r}; use one of {', '.join(KIND_NAMES)}")
        _positive_int("trees.n_estimators", self.n_estimators)
        if self.max_depth is not None:
            _positive_int("trees.max_depth", self.max_depth)
        _positive_int("trees.min_samples_leaf", self.min_samples_leaf)
        mid = self.min_impurity_decrease
        if isinstance(mid, bool) or not isinstance(mid, int | float) or not mid >= 0:
            raise RecipeError(f"trees.min_impurity_decrease is {mid!r}; use a number >= 0")
        mf = self.max_features
        ok = mf is None or mf in MAX_FEATURES_WORDS
        ok = ok or (isinstance(mf, int | float) and not isinstance(mf, bool) and 0 < mf <= 1)
        if not ok:
            raise RecipeError(
                f'trees.max_features is {mf!r}; use "sqrt", "log2", a fraction in (0, 1] '
                "or none for all features"
            )
        if isinstance(self.random_state, bool) or not isinstance(self.random_state, int):
            raise RecipeError(f"trees.random_state is {self.random_state!r}; use an integer")


def _positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RecipeError(f"{name} is {value!r}; use a whole number >= 1")


def check_xy(x, y, task: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as a 2-D float array (more dimensions flattened per sample) and ``y``
    as a 1-D array, after checking that trees can take them.

    Raises:
        DataError: a non-numeric (categorical) column, NaN or infinity, an
            empty set, lengths that differ, or a task that is not one of ours.
    """
    if task not in TASKS:
        raise DataError(f"task is {task!r}; use {CLASSIFICATION!r} or {REGRESSION!r}")
    x, y = np.asarray(x), np.asarray(y)
    if x.dtype.kind not in "biuf":
        raise DataError(
            f"the features are {x.dtype} (categorical or text columns); trees here take "
            "numbers only: encode categories as integers (one-hot or ordinal) first"
        )
    if x.ndim < 2 or x.shape[0] == 0:
        raise DataError(f"the features have shape {x.shape}; give one row per sample")
    x = x.reshape(x.shape[0], -1).astype(np.float64)
    if y.ndim != 1:
        y = y.reshape(len(y), -1)
        if y.shape[1] != 1:
            raise DataError(f"the labels have shape {y.shape}; give one label per sample")
        y = y[:, 0]
    if len(y) != len(x):
        raise DataError(f"{len(x)} feature rows but {len(y)} labels; give one label per row")
    bad = ~np.isfinite(x)
    if bad.any():
        col = int(np.nonzero(bad.any(axis=0))[0][0])
        raise DataError(
            f"the features hold {int(bad.sum())} NaN or infinite values (first in column "
            f"{col}); impute or drop them first: the C export cannot take missing values"
        )
    if task == REGRESSION:
        if y.dtype.kind not in "biuf" or not np.all(np.isfinite(y.astype(np.float64))):
            raise DataError("regression targets must be finite numbers; drop NaN targets first")
        y = y.astype(np.float64)
    return x, y


def estimator(options: TreeOptions, task: str):
    """The unfitted scikit-learn estimator ``options`` describe, for ``task``."""
    from sklearn import ensemble, tree

    classes = {
        ("decision_tree", CLASSIFICATION): tree.DecisionTreeClassifier,
        ("decision_tree", REGRESSION): tree.DecisionTreeRegressor,
        ("random_forest", CLASSIFICATION): ensemble.RandomForestClassifier,
        ("random_forest", REGRESSION): ensemble.RandomForestRegressor,
        ("extra_trees", CLASSIFICATION): ensemble.ExtraTreesClassifier,
        ("extra_trees", REGRESSION): ensemble.ExtraTreesRegressor,
    }
    params = {
        "max_depth": options.max_depth,
        "min_samples_leaf": options.min_samples_leaf,
        "min_impurity_decrease": float(options.min_impurity_decrease),
        "max_features": options.max_features,
        "random_state": options.random_state,
    }
    if options.kind != "decision_tree":
        params["n_estimators"] = options.n_estimators
    return classes[(options.kind, task)](**params)


def train(options: TreeOptions, x, y, task: str) -> Forest:
    """Fit the model ``options`` describe on ``(x, y)`` and return it as a Forest.

    ``x`` may have more than two dimensions (each sample is flattened). The
    Forest's ``meta["options"]`` holds the hyperparameters and, for a bagged
    forest, ``meta["bootstrap"]`` its members' bootstrap seeds and a fingerprint
    of ``(x, y)`` (:func:`edgeprune.trees.oob.bootstrap_record`). No side effects.

    Raises:
        DataError: see :func:`check_xy`; a classification set with one class.
    """
    x, y = check_xy(x, y, task)
    if task == CLASSIFICATION and len(np.unique(y)) < 2:
        raise DataError("the labels hold a single class; a classifier needs two or more")
    from edgeprune.trees.oob import BOOTSTRAP_KEY, bootstrap_record

    fitted = estimator(options, task).fit(x, y)
    forest = from_sklearn(fitted)
    record = bootstrap_record(fitted, x, y)  # each member's out-of-bag rows, for pruning
    extra = {BOOTSTRAP_KEY: record} if record else {}
    return forest.with_trees(forest.trees, options=asdict(options), **extra)


def validation_split(x, y, task: str, fraction: float = 0.2, seed: int = 0):
    """``(x_fit, y_fit, x_val, y_val)``: ``fraction`` of the samples held out for
    choosing pruning levels, stratified by class for classification (so every
    class with at least two samples appears on both sides). Deterministic in ``seed``.

    Raises:
        DataError: ``fraction`` outside (0, 1), or too few samples to split.
    """
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise DataError(f"the validation fraction is {fraction!r}; use a number in (0, 1)")
    x, y = check_xy(x, y, task)
    n_val = int(round(len(x) * fraction))
    if n_val < 1 or len(x) - n_val < 1:
        raise DataError(f"{len(x)} samples cannot be split {fraction:.0%} for validation")
    stratify = None
    if task == CLASSIFICATION:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and n_val >= len(counts):
            stratify = y
    x_fit, x_val, y_fit, y_val = train_test_split(
        x, y, test_size=n_val, random_state=seed, stratify=stratify
    )
    return x_fit, y_fit, x_val, y_val
