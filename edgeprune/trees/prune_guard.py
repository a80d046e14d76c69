"""The accuracy guard of forest pruning (``[trees.prune] max_accuracy_drop``).

Tree-level pruning and member selection are each chosen on the choice rows
(out-of-bag + validation, :mod:`.oob`), but nothing checks what they cost
together against the unpruned forest. The guard does, the way
``quantize.max_accuracy_drop`` guards quantization: it scores the pruned
forest and the unpruned one on the same rows (each row voted on by the
members that may judge it, Breiman's out-of-bag estimate) and, while the
drop exceeds the limit, undoes pruning, cheapest first:

1. grow the member count along the selection order (one member at a time);
2. then give the kept members back their unpruned trees, in selection order.

It stops when the drop is within the limit or nothing is left to undo.
Classification compares accuracy (a drop in accuracy, as a fraction);
regression the relative rise of the mean squared error. With ``votes``, the
pruned members vote with one-hot leaves (:func:`prune_ensemble.one_hot`, as
:func:`prune_ensemble.vote_leaves` makes them), the unpruned forest with its
class fractions, as it is deployed.

The rows are those the choices were made on, so the guard's estimate is
optimistic for the pruned forest (docs/tree-pruning.md, "The accuracy guard").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeprune.trees.model import CLASSIFICATION
from edgeprune.trees.prune_ensemble import member_outputs, one_hot, truth


@dataclass(frozen=True)
class GuardResult:
    """What the guard kept: the first ``members`` of the order, the members in
    ``restored`` with their unpruned trees, and the drop before and after
    (accuracy fraction, or relative MSE rise)."""

    members: int
    restored: tuple[int, ...]
    drop_before: float
    drop_after: float

    def parameters(self, members_before: int, limit: float, judged_on: str) -> dict:
        """The step dict's parameters for this result."""
        return {
            "max_accuracy_drop": limit,
            "drop_before": round(self.drop_before, 6),
            "drop_after": round(self.drop_after, 6),
            "members_added": self.members - members_before,
            "members_restored": len(self.restored),
            "judged_on": judged_on,
        }


def _error(outputs, mask, keep, truth, task: str, rows) -> float:
    """Error rate (classification) or MSE of the members ``keep`` on ``rows``, each
    row averaged over the kept members whose mask allows it."""
    m = mask[keep]
    sums = (outputs[keep] * m[..., None]).sum(axis=0)[rows]
    counts = m.sum(axis=0)[rows]
    if task == CLASSIFICATION:
        return float(np.mean(np.argmax(sums, axis=-1) != truth[rows]))
    return float(np.mean((sums[:, 0] / counts - truth[rows]) ** 2))


def _drop(error_pruned: float, error_full: float, task: str) -> float:
    if task == CLASSIFICATION:
        return error_pruned - error_full
    return (error_pruned - error_full) / error_full if error_full > 0 else error_pruned


def accuracy_guard(
    full: np.ndarray,
    pruned: np.ndarray,
    order,
    members: int,
    truth: np.ndarray,
    task: str,
    limit: float,
    mask=None,
    votes: bool = False,
) -> GuardResult:
    """Undo pruning until the pruned forest is within ``limit`` of the unpruned one.

    ``full``/``pruned``: every member's outputs on the choice rows, unpruned and
    tree-level pruned (members, rows, outputs); ``order``: the selection order of
    all members, of which the first ``members`` are kept; ``truth``: class indices
    (-1: a label the model never saw, always wrong) or targets; ``mask`` (members,
    rows): where a member may vote (None: everywhere); ``votes``: the pruned
    members vote with one-hot leaves. Rows the first ``members`` cannot vote on
    are left out of both scores. No side effects.
    """
    order = [int(i) for i in order]
    mask = np.ones(full.shape[:2], dtype=bool) if mask is None else np.asarray(mask, bool)
    truth = np.asarray(truth)
    rows = mask[order[:members]].any(axis=0)
    error_full = _error(full, mask, order, truth, task, rows)
    ours = one_hot(pruned) if votes and task == CLASSIFICATION else pruned
    back = one_hot(full) if votes and task == CLASSIFICATION else full
    restored: list[int] = []

    def drop_of(k: int) -> float:
        outputs = ours.copy()
        outputs[restored] = back[restored]
        return _drop(_error(outputs, mask, order[:k], truth, task, rows), error_full, task)

    k = members
    before = after = drop_of(k)
    while after > limit and k < len(order):
        k += 1
        after = drop_of(k)
    for member in order[:k]:
        if after <= limit:
            break
        restored.append(member)
        after = drop_of(k)
    return GuardResult(k, tuple(restored), before, after)


def guard_forest(forest, pruned, final, order, limit: float, ev, votes: bool):
    """``(forest, parameters)``: the guard applied to ``final``, the first members of
    ``order`` (indices into both) of ``pruned``, the tree-level pruned ``forest``;
    scored on the choice rows ``ev`` (an :class:`~.oob.EvaluationSet` of ``forest``).
    The forest returned is ``final`` itself when the guard undid nothing."""
    full, cut = member_outputs(forest, ev.x), member_outputs(pruned, ev.x)
    labels = truth(forest, ev.y)
    result = accuracy_guard(
        full, cut, order, final.n_members, labels, forest.task, limit, ev.mask, votes
    )
    params = result.parameters(final.n_members, limit, ev.source)
    if result.members == final.n_members and not result.restored:
        return final, params
    trees = [(forest if i in result.restored else pruned).trees[i] for i in order[: result.members]]
    return pruned.with_trees(trees), params
