"""What a tree model is judged by besides accuracy: its size and which features matter.

Accuracy, macro-F1 and the confusion matrix come from :mod:`edgeprune.metrics`
(:func:`quality` calls it); this module adds model complexity, impurity-based
importance (recomputed from the arrays, so it describes the pruned model),
permutation importance on the validation split, and refitting on fewer
features: on a device each dropped feature is a sensor read or a feature
computation saved, and :func:`drop_features` shows what it costs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from edgeprune import metrics
from edgeprune.errors import BadInputError, DataError
from edgeprune.trees.model import CLASSIFICATION, LEAF, Forest, Tree, model_inputs
from edgeprune.trees.train import TreeOptions, check_xy, train


def complexity(forest: Forest) -> dict:
    """Nodes, leaves, internal nodes, depth (edges, deepest member), members and
    the number of distinct features the splits read. Bytes are not here: they
    come from compiling the exported C."""
    used = set()
    for t in forest.trees:
        used.update(int(f) for f in t.feature[t.left != LEAF])
    return {
        "nodes": forest.n_nodes,
        "leaves": forest.n_leaves,
        "internal_nodes": forest.n_nodes - forest.n_leaves,
        "depth": forest.depth,
        "members": forest.n_members,
        "features_used": len(used),
    }


def quality(forest: Forest, x, y) -> dict:
    """Accuracy, macro-F1 and confusion matrix (rows: truth, columns in the order
    of ``forest.classes``), or MSE and MAE, of ``forest`` on ``(x, y)``.
    ``x`` holds the data set's features (see :func:`model_inputs`)."""
    x, y = check_xy(x, y, forest.task)
    values = forest.predict_value(model_inputs(forest, x))
    if forest.task == CLASSIFICATION:
        lookup = {c: i for i, c in enumerate(forest.classes)}
        truth = np.asarray([lookup.get(v, -1) for v in y.tolist()])
        if (truth < 0).any():
            raise DataError(
                f"{int((truth < 0).sum())} labels are classes the model was not fitted on; "
                "evaluate on labels from the same set"
            )
        return metrics.classification(truth, values, len(forest.classes))
    return metrics.regression(y, values[:, 0])


def _tree_importance(tree: Tree, n_features: int) -> np.ndarray:
    inner = np.nonzero(tree.left != LEAF)[0]
    w, imp = tree.weight, tree.impurity
    left, right = tree.left[inner], tree.right[inner]
    decrease = w[inner] * imp[inner] - w[left] * imp[left] - w[right] * imp[right]
    out = np.zeros(n_features)
    np.add.at(out, tree.feature[inner], decrease)
    out /= w[0]
    total = out.sum()
    return out / total if total > 0 else out


def impurity_importance(forest: Forest) -> np.ndarray:
    """Mean decrease in impurity per feature, normalised to sum to 1, computed as
    scikit-learn's ``feature_importances_`` is (members that are a lone leaf are
    left out), from the arrays: after pruning it describes the pruned model.
    All zeros when no member splits."""
    per_tree = [_tree_importance(t, forest.n_features) for t in forest.trees if t.n_nodes > 1]
    if not per_tree:
        return np.zeros(forest.n_features)
    mean = np.mean(per_tree, axis=0)
    total = mean.sum()
    return mean / total if total > 0 else mean


def _score(forest: Forest, x, y) -> float:
    pred = forest.predict(x)
    if forest.task == CLASSIFICATION:
        return float(np.mean(pred == y))
    return -float(np.mean((pred - y) ** 2))


def permutation_importance(forest: Forest, x, y, repeats: int = 5, seed: int = 0):
    """(mean, std) per model feature of the drop in validation score when that
    column is shuffled (score: accuracy, or -MSE so the drop is the MSE's rise),
    over ``repeats`` shuffles seeded by ``seed``. ``x`` holds the data set's features.

    Raises:
        DataError: data trees cannot take; BadInputError: ``repeats`` < 1.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise BadInputError(f"repeats is {repeats!r}; use a whole number >= 1")
    x, y = check_xy(x, y, forest.task)
    x = model_inputs(forest, x).astype(np.float32)
    rng = np.random.default_rng(seed)
    base = _score(forest, x, y)
    drops = np.zeros((forest.n_features, repeats))
    for j in range(forest.n_features):
        shuffled = x.copy()
        for r in range(repeats):
            shuffled[:, j] = x[rng.permutation(len(x)), j]
            drops[j, r] = base - _score(forest, shuffled, y)
    return drops.mean(axis=1), drops.std(axis=1)


@dataclass(frozen=True)
class FeatureDrop:
    """The result of refitting on the most important features.

    ``kept``: original feature indices, most important first; ``forest``: the
    refitted model (its ``meta["features"]`` is ``kept``); ``metric``: "accuracy"
    or "mse"; ``before``/``after``: that metric on validation with all features
    and with ``kept`` only.
    """

    kept: tuple[int, ...]
    forest: Forest
    metric: str
    before: float
    after: float

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("forest")
        d["kept"] = list(self.kept)
        return d


def _options_of(model) -> TreeOptions:
    if isinstance(model, TreeOptions):
        return model
    options = model.meta.get("options") if isinstance(model, Forest) else None
    if options is None:
        raise BadInputError(
            "dropping features refits the model, and this one was not trained by edgeprune; "
            "give the [trees] options to refit with"
        )
    return TreeOptions(**options)


def _metric(forest: Forest, x, y) -> float:
    s = _score(forest, x, y)
    return s if forest.task == CLASSIFICATION else -s


def drop_features(model, train_data, val_data, importance, keep, task: str | None = None):
    """Refit on the ``keep`` most important features and measure the cost.

    ``model``: a Forest trained by edgeprune (its options are reused) or
    :class:`TreeOptions`; ``train_data``/``val_data``: ``(x, y)`` with all the
    data set's features; ``importance``: one score per feature (of ``x``);
    ``keep``: a count >= 1, or a fraction in (0, 1] of the features (at least
    one is kept). ``task`` is needed only with TreeOptions. Returns a
    :class:`FeatureDrop`; writes nothing.

    Raises:
        BadInputError: a bad ``keep``, an importance of the wrong length, or a
            model without options to refit with.
    """
    options = _options_of(model)
    task = model.task if isinstance(model, Forest) else task
    x, y = check_xy(*train_data, task)
    x_val, y_val = check_xy(*val_data, task)
    importance = np.asarray(importance, dtype=np.float64)
    if importance.shape != (x.shape[1],):
        raise BadInputError(
            f"importance has {importance.size} scores for {x.shape[1]} features; "
            "give one per feature of the data"
        )
    count = _count(keep, x.shape[1])
    kept = tuple(int(i) for i in np.argsort(-importance, kind="stable")[:count])
    full = model if isinstance(model, Forest) else train(options, x, y, task)
    before = _metric(full, model_inputs(full, x_val), y_val)
    refit = train(options, x[:, list(kept)], y, task)
    refit = refit.with_trees(refit.trees, features=list(kept))
    after = _metric(refit, model_inputs(refit, x_val), y_val)
    return FeatureDrop(kept, refit, "accuracy" if task == CLASSIFICATION else "mse", before, after)


def _count(keep, n_features: int) -> int:
    if isinstance(keep, bool) or not isinstance(keep, int | float):
        raise BadInputError(f"keep is {keep!r}; use a feature count or a fraction in (0, 1]")
    if isinstance(keep, int):
        if not 1 <= keep <= n_features:
            raise BadInputError(f"keep is {keep}; use a count from 1 to {n_features}")
        return keep
    if not 0 < keep <= 1:
        raise BadInputError(f"keep is {keep!r}; use a fraction in (0, 1]")
    return max(1, int(round(keep * n_features)))
