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
export stores in no table (docs/tree-pruning.md, "Leaves as votes").
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgeprune.errors import BadInputError
from edgeprune.trees.model import CLASSIFICATION, LEAF, Forest

MARGIN_REFERENCE = 0.075


def member_outputs(forest: Forest, x) -> np.ndarray:
    """Each member's leaf values on ``x``: shape (members, samples, outputs)."""
    return np.stack([t.value[t.apply(x)] for t in forest.trees])


def _scores(sums: np.ndarray, truth: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray]:
    """(primary, tie-break) scores, higher better, of ensembles whose averaged
    outputs are ``sums`` (…, samples, outputs): accuracy and the mean probability
    of the true class, or -MSE twice for regression."""
    if task == CLASSIFICATION:
        right = np.argmax(sums, axis=-1) == truth
        total = sums.sum(axis=-1)
        known = np.clip(truth, 0, None)
        p_true = np.take_along_axis(sums, known[None, :, None], axis=-1)[..., 0] / total
        p_true = np.where(truth >= 0, p_true, 0.0)
        return right.mean(axis=-1), p_true.mean(axis=-1)
    mse = np.mean((sums[..., 0] - truth) ** 2, axis=-1)
    return -mse, -mse


def greedy_order(outputs: np.ndarray, truth: np.ndarray, task: str) -> np.ndarray:
    """Member indices in greedy forward-selection order on validation.

    ``truth``: class indices (classification, -1 for an unseen label) or
    target values (regression).
    """
    m = outputs.shape[0]
    chosen, left = [], list(range(m))
    total = np.zeros(outputs.shape[1:])
    for size in range(1, m + 1):
        trial = (total[None] + outputs[left]) / size
        primary, secondary = _scores(trial, truth, task)
        best = np.lexsort((np.arange(len(left)), -secondary, -primary))[0]
        pick = left.pop(int(best))
        chosen.append(pick)
        total = total + outputs[pick]
    return np.asarray(chosen, dtype=np.int64)


def margin_order(outputs: np.ndarray, truth: np.ndarray, task: str) -> np.ndarray:
    """Member indices in margin-distance-minimisation order (classification only).

    Raises:
        BadInputError: a regression forest (a member is not right or wrong).
    """
    if task != CLASSIFICATION:
        raise BadInputError(
            'ordered aggregation by margin distance is for classifiers; use ensemble = "greedy" '
            "for a regressor"
        )
    signature = np.where(np.argmax(outputs, axis=-1) == truth[None], 1.0, -1.0)
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


def prefix_scores(outputs: np.ndarray, order: np.ndarray, truth, task: str):
    """(primary, secondary) validation scores of the first k members of ``order``,
    for k = 1 .. len(order): accuracy and the mean probability of the true class
    (classification), or -MSE for both (regression); higher is better."""
    sums = np.cumsum(outputs[order], axis=0)
    sizes = np.arange(1, len(order) + 1, dtype=np.float64)[:, None, None]
    return _scores(sums / sizes, truth, task)


def order_members(forest: Forest, x_val, truth, how: str):
    """(order, primary prefix scores, secondary prefix scores) of ``forest``'s members
    ordered by ``how`` ("greedy" or "ordered"); see :func:`prefix_scores`."""
    outputs = member_outputs(forest, x_val)
    if how == "greedy":
        order = greedy_order(outputs, truth, forest.task)
    else:
        order = margin_order(outputs, truth, forest.task)
    return (order, *prefix_scores(outputs, order, truth, forest.task))


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
    if forest.task != CLASSIFICATION:
        raise BadInputError("a regressor's leaves are values, not class votes; keep leaves")
    trees = []
    for tree in forest.trees:
        leaves = tree.left == LEAF
        value = tree.value.copy()
        rows = np.zeros_like(value[leaves])
        rows[np.arange(rows.shape[0]), np.argmax(value[leaves], axis=1)] = 1.0
        value[leaves] = rows
        trees.append(replace(tree, value=value))
    return forest.with_trees(trees)
