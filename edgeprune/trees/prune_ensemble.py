"""Ensemble pruning: order a forest's members so that its first k are the most useful.

Two orderings, both computed on the validation split:

- :func:`greedy_order`: greedy forward selection (reduce-error ordering):
  start empty, add the member whose addition gives the most accurate
  sub-ensemble (regression: the lowest MSE), ties broken by the mean
  probability given to the true class, then by index;
- :func:`margin_order`: ordered aggregation by margin distance minimisation
  (Martínez-Muñoz & Suárez, "Aggregation ordering in bagging", 2004): each
  member's signature is +1/-1 per sample (right/wrong); add the member that
  brings the mean signature of the selected ones closest to a reference
  point with every component ``p`` (0.075, their value). Classification only.

A prefix of either order is a sub-forest; :func:`prefix_scores` gives the
validation scores of each prefix size, from which the caller picks a size.
:func:`vote_leaves` turns a classifier's leaves into majority votes, which the C
export stores in no table; :func:`quantize_leaves` rounds them to 256ths, a byte
per class (docs/tree-pruning.md, "Leaves").
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgeprune.errors import BadInputError
from edgeprune.trees.model import CLASSIFICATION, LEAF, Forest
from edgeprune.trees.prune_tree import class_index

MARGIN_REFERENCE = 0.075
# leaves = "quantized": class fractions in 256ths (see quantize_leaves)
LEAF_SCALE = 256
LEAF_SCALE_KEY = "leaf_scale"  # in Forest.meta: the C export stores leaves as integers
# With no member count or budget, ensemble pruning keeps at least this share of the
# members (see default_size).
ENSEMBLE_FLOOR = 0.3


def truth(forest: Forest, y) -> np.ndarray:
    """What the scores compare against: class indices (-1: a label the model never
    saw) for a classifier, float targets for a regressor."""
    if forest.task == CLASSIFICATION:
        return class_index(y, forest.classes)
    return np.asarray(y, dtype=np.float64)


def member_outputs(forest: Forest, x) -> np.ndarray:
    """Each member's leaf values on ``x``: shape (members, samples, outputs)."""
    return np.stack([t.value[t.apply(x)] for t in forest.trees])


def _scores(sums, counts, truth, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(primary, tie-break) scores, higher better, of ensembles whose members'
    outputs add up to ``sums`` (…, samples, outputs), ``counts`` (…, samples) of
    them voting on each sample: accuracy and the mean probability of the true
    class, or -MSE twice for regression. A sample no member votes on (all of
    them saw it in training) is left out."""
    valid = counts > 0
    n = np.maximum(valid.sum(axis=-1), 1)
    avg = sums / np.maximum(counts, 1)[..., None]
    if task == CLASSIFICATION:
        right = (np.argmax(avg, axis=-1) == truth) & valid
        total = np.where(valid, avg.sum(axis=-1), 1.0)
        known = np.clip(truth, 0, None)
        p_true = np.take_along_axis(avg, _expand(known, avg.ndim), axis=-1)[..., 0] / total
        p_true = np.where((truth >= 0) & valid, p_true, 0.0)
        return right.sum(axis=-1) / n, p_true.sum(axis=-1) / n
    mse = np.where(valid, (avg[..., 0] - truth) ** 2, 0.0).sum(axis=-1) / n
    return -mse, -mse


def _expand(index: np.ndarray, ndim: int) -> np.ndarray:
    """(samples,) class indices shaped to take along the last axis of an ndim array."""
    return index.reshape((1,) * (ndim - 2) + (-1, 1))


def _ones(outputs: np.ndarray, mask) -> np.ndarray:
    return np.ones(outputs.shape[:2], dtype=bool) if mask is None else np.asarray(mask, bool)


def greedy_order(outputs: np.ndarray, truth: np.ndarray, task: str, mask=None) -> np.ndarray:
    """Member indices in greedy forward-selection order.

    ``truth``: class indices (classification, -1 for an unseen label) or
    target values (regression). ``mask`` (members, samples): where a member
    votes on a sample (its out-of-bag rows and the validation rows); None: every
    member on every sample. A sub-ensemble is scored on each sample by the
    selected members that vote on it (Breiman's out-of-bag estimate).
    """
    mask = _ones(outputs, mask)
    voted = outputs * mask[..., None]
    m = outputs.shape[0]
    chosen, left = [], list(range(m))
    total, count = np.zeros(outputs.shape[1:]), np.zeros(outputs.shape[1])
    for _ in range(m):
        primary, secondary = _scores(total[None] + voted[left], count + mask[left], truth, task)
        best = np.lexsort((np.arange(len(left)), -secondary, -primary))[0]
        pick = left.pop(int(best))
        chosen.append(pick)
        total, count = total + voted[pick], count + mask[pick]
    return np.asarray(chosen, dtype=np.int64)


def margin_order(outputs: np.ndarray, truth: np.ndarray, task: str, mask=None) -> np.ndarray:
    """Member indices in margin-distance-minimisation order (classification only).
    With ``mask``, a member's signature is 0 on the samples it does not vote on.

    Raises:
        BadInputError: a regression forest (a member is not right or wrong).
    """
    if task != CLASSIFICATION:
        raise BadInputError(
            'ordered aggregation by margin distance is for classifiers; use ensemble = "greedy" '
            "for a regressor"
        )
    signature = np.where(np.argmax(outputs, axis=-1) == truth[None], 1.0, -1.0)
    signature = signature * _ones(outputs, mask)
    m = signature.shape[0]
    chosen, left = [], list(range(m))
    total = np.zeros(signature.shape[1])
    for size in range(1, m + 1):
        mean = (total[None] + signature[left]) / size
        distance = np.sum((MARGIN_REFERENCE - mean) ** 2, axis=1)
        pick = left.pop(int(np.argmin(distance)))
        chosen.append(pick)
        total = total + signature[pick]
    return np.asarray(chosen, dtype=np.int64)


def prefix_scores(outputs: np.ndarray, order: np.ndarray, truth, task: str, mask=None):
    """(primary, secondary) scores of the first k members of ``order``, for
    k = 1 .. len(order): accuracy and the mean probability of the true class
    (classification), or -MSE for both (regression); higher is better. ``mask``
    as in :func:`greedy_order`."""
    mask = _ones(outputs, mask)
    sums = np.cumsum(outputs[order] * mask[order][..., None], axis=0)
    return _scores(sums, np.cumsum(mask[order], axis=0), truth, task)


def order_members(forest: Forest, x, truth, how: str, mask=None):
    """(order, primary prefix scores, secondary prefix scores) of ``forest``'s members
    ordered by ``how`` ("greedy" or "ordered") on the rows ``x`` (``mask``: which
    members vote on which rows, None for all); see :func:`prefix_scores`."""
    outputs = member_outputs(forest, x)
    if how == "greedy":
        order = greedy_order(outputs, truth, forest.task, mask)
    else:
        order = margin_order(outputs, truth, forest.task, mask)
    return (order, *prefix_scores(outputs, order, truth, forest.task, mask))


def vote_leaves(forest: Forest) -> Forest:
    """``forest`` with every leaf's class fractions replaced by a one-hot row of its
    majority class (the first on a tie, as :meth:`Forest.predict`'s argmax): a
    forest then predicts by majority vote of its members (ties to the first class).

    A single tree predicts exactly as before; a forest's soft vote becomes a hard
    one, which can change predictions (the step records the validation metric).
    The C export stores no row for such a leaf: it adds one to its class's count,
    so the host C equals :meth:`Forest.predict` of the result exactly.

    Raises:
        BadInputError: a regression forest (its leaves are values, not votes).
    """
    return forest.with_trees(_map_leaves(forest, "votes", one_hot))


def one_hot(outputs: np.ndarray) -> np.ndarray:
    """Class scores (..., classes) as votes: 1 for each argmax (the first on a tie)."""
    out = np.zeros_like(outputs)
    np.put_along_axis(out, np.argmax(outputs, axis=-1)[..., None], 1.0, axis=-1)
    return out


def _map_leaves(forest: Forest, what: str, rows_to) -> list:
    """``forest``'s members with the rows of their leaves replaced by ``rows_to(rows)``
    (internal nodes keep their values); a regressor is refused."""
    if forest.task != CLASSIFICATION:
        raise BadInputError(f"a regressor's leaves are values, not class {what}; keep leaves")
    trees = []
    for tree in forest.trees:
        leaves = tree.left == LEAF
        value = tree.value.copy()
        value[leaves] = rows_to(value[leaves])
        trees.append(replace(tree, value=value))
    return trees


def quantize_leaves(forest: Forest) -> Forest:
    """``forest`` with every leaf's class fractions rounded to 256ths: ``q / 256`` with
    integers ``q`` summing to 256 (largest remainders, first class on a tie), so every
    leaf still weighs one vote. A pure leaf stays one-hot; an impure leaf's ``q`` are
    at most 255, a byte each, which is how the C export stores them (``meta["leaf_scale"]``
    tells it): its integer sums and :meth:`Forest.predict`'s float sums of these
    dyadic values are the same numbers, so the host C equals the model on every input.

    The forest keeps scikit-learn's soft vote, where :func:`vote_leaves` makes it a
    hard one; a leaf row costs a byte per class instead of a float.

    Raises:
        BadInputError: a regression forest (its leaves are values, not fractions).
    """

    def in_256ths(rows):
        total = rows.sum(axis=1, keepdims=True)
        raw = rows / np.where(total > 0, total, 1.0) * LEAF_SCALE
        q = np.floor(raw)
        short = (LEAF_SCALE - q.sum(axis=1)).astype(np.int64)
        # the largest remainders get the missing units (stable: the first class on a tie)
        rank = np.argsort(-(raw - q), axis=1, kind="stable")
        q[np.arange(len(q))[:, None], rank] += np.arange(q.shape[1])[None, :] < short[:, None]
        return q / LEAF_SCALE

    trees = _map_leaves(forest, "fractions", in_256ths)
    return forest.with_trees(trees, **{LEAF_SCALE_KEY: LEAF_SCALE})


def default_size(scores: list[float], n_members: int, share: float = ENSEMBLE_FLOOR) -> int:
    """The prefix index kept when no count or budget is given: the smallest size of
    at least ``share`` of the members whose score reaches the whole ensemble's.
    A small validation split scores a single lucky tree as well as the forest, so
    the best score alone would keep one member; Martínez-Muñoz & Suárez (2006)
    found ordered ensembles cut to 20 % of their members generalise at least as
    well as the whole, hence the floor."""
    floor = max(1, int(np.ceil(share * n_members - 1e-9)))
    target = scores[-1]
    for i in range(floor - 1, len(scores)):
        if scores[i] >= target:
            return i
    return len(scores) - 1
