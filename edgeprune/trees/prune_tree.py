"""Post-pruning one tree: cost-complexity, reduced-error and minimum description length.

Each function takes a :class:`~edgeprune.trees.model.Tree` and returns a new,
compacted one (never editing its argument). None of them sees test data: the
callers pass the validation split where one is needed.

- :func:`ccp_path` / :func:`ccp_prune`: Breiman et al.'s weakest-link pruning
  (CART, 1984) exactly as scikit-learn computes it, on our arrays;
- :func:`reduced_error_prune`: Quinlan (1987), bottom-up on a validation set;
- :func:`mdl_prune`: Mehta, Rissanen & Agrawal (KDD 1995), classification only.

The formulas are written out in ``docs/tree-pruning.md``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgeprune.errors import BadInputError
from edgeprune.trees.model import LEAF, Tree, make_leaves, parents, postorder, visits


@dataclass(frozen=True)
class CcpPath:
    """The weakest-link sequence of one tree.

    ``alphas[0]`` is 0 (the whole tree); step ``s >= 1`` turned node
    ``pruned[s - 1]`` (an index in the original tree) into a leaf at effective
    alpha ``alphas[s]``, leaving total leaf impurity ``impurities[s]`` (scikit-learn's
    ``cost_complexity_pruning_path`` returns the same two arrays).
    """

    alphas: np.ndarray
    impurities: np.ndarray
    pruned: np.ndarray


def ccp_path(tree: Tree) -> CcpPath:
    """The whole cost-complexity pruning path of ``tree``.

    A node's risk is its impurity times its weighted share of the root's
    samples; at each step the internal node with the smallest
    ``(R(node) - R(subtree)) / (leaves(subtree) - 1)`` becomes a leaf (the
    lowest index on a tie, as scikit-learn), until the root is a leaf.
    """
    n = tree.n_nodes
    r_node = tree.impurity * tree.weight / tree.weight[0]
    parent = parents(tree)
    is_leaf = tree.left == LEAF
    r_branch = np.zeros(n)
    n_leaves = np.zeros(n, dtype=np.int64)
    for leaf in np.nonzero(is_leaf)[0]:  # the order scikit-learn sums in, for equal floats
        node = leaf
        while node != -1:
            r_branch[node] += r_node[leaf]
            n_leaves[node] += 1
            node = parent[node]
    present = np.ones(n, dtype=bool)
    leaf_now = is_leaf.copy()
    alphas, impurities, pruned = [0.0], [r_branch[0]], []
    while not leaf_now[0]:
        candidates = present & ~leaf_now
        with np.errstate(divide="ignore", invalid="ignore"):
            g = np.where(candidates, (r_node - r_branch) / (n_leaves - 1), np.inf)
        node = int(np.argmin(g))
        alphas.append(float(g[node]))
        pruned.append(node)
        for d in _descendants(tree, node):
            present[d] = False
        leaf_now[node] = True
        lost = n_leaves[node] - 1
        r_diff = r_node[node] - r_branch[node]
        n_leaves[node], r_branch[node] = 1, r_node[node]
        up = parent[node]
        while up != -1:
            n_leaves[up] -= lost
            r_branch[up] += r_diff
            up = parent[up]
        impurities.append(r_branch[0])
    return CcpPath(np.asarray(alphas), np.asarray(impurities), np.asarray(pruned, dtype=np.int64))


def _descendants(tree: Tree, node: int) -> list[int]:
    out, stack = [], [int(tree.left[node]), int(tree.right[node])]
    while stack:
        d = stack.pop()
        if d == LEAF:
            continue
        out.append(d)
        stack += [int(tree.left[d]), int(tree.right[d])]
    return out


def ccp_prune(tree: Tree, alpha: float, path: CcpPath | None = None) -> Tree:
    """``tree`` pruned as scikit-learn's ``ccp_alpha=alpha`` prunes it: the path's
    steps are taken while their effective alpha is at most ``alpha``."""
    path = path or ccp_path(tree)
    over = np.nonzero(path.alphas[1:] > alpha)[0]
    steps = int(over[0]) if over.size else len(path.pruned)
    return make_leaves(tree, path.pruned[:steps])


def class_index(y, classes) -> np.ndarray:
    """Each label's index in ``classes`` (-1 for a label the model never saw)."""
    lookup = {c: i for i, c in enumerate(classes)}
    return np.asarray([lookup.get(v, -1) for v in np.asarray(y).tolist()], dtype=np.int64)


def leaf_errors(tree: Tree, x, y, task: str, classes=()) -> np.ndarray:
    """For every node, the validation error of the samples reaching it if the node
    were a leaf: misclassified samples (classification) or the sum of squared
    errors (regression)."""
    nodes, rows = visits(tree, x)
    err = np.zeros(tree.n_nodes)
    if task == "classification":
        truth = class_index(y, classes)
        wrong = np.argmax(tree.value[nodes], axis=1) != truth[rows]
        np.add.at(err, nodes, wrong.astype(np.float64))
    else:
        diff = tree.value[nodes, 0] - np.asarray(y, dtype=np.float64)[rows]
        np.add.at(err, nodes, diff**2)
    return err


def reduced_error_prune(tree: Tree, x_val, y_val, task: str, classes=(), strict=False) -> Tree:
    """Quinlan's reduced-error pruning: visiting nodes bottom-up, a subtree becomes
    a leaf (predicting the node's own training value) when that does not raise
    the error on the validation samples reaching it; ties prune, so a subtree no
    validation sample reaches is pruned. ``strict``: prune only when the leaf's
    error is strictly lower (ties keep the subtree, so does a subtree no sample
    reaches): the conservative rule, for a forest whose members vote together.
    Works for classification (errors counted) and regression (squared errors summed)."""
    as_leaf = leaf_errors(tree, x_val, y_val, task, classes)
    err = as_leaf.copy()
    pruned = []
    for node in postorder(tree):
        if tree.left[node] == LEAF:
            continue
        below = err[tree.left[node]] + err[tree.right[node]]
        if as_leaf[node] < below or (not strict and as_leaf[node] == below):
            pruned.append(node)
        else:
            err[node] = below
    return make_leaves(tree, pruned)


def stochastic_complexity(counts: np.ndarray, n_classes: int) -> float:
    """Bits to encode the class labels of records with these per-class counts
    (Rissanen; the data cost of Mehta, Rissanen & Agrawal 1995):
    sum_i n_i log2(n / n_i) + (k - 1)/2 log2(n / 2) + log2(pi^(k/2) / Gamma(k/2))."""
    counts = np.asarray(counts, dtype=np.float64)
    n, k = float(counts.sum()), n_classes
    if n <= 0:
        return 0.0
    present = counts[counts > 0]
    labels = float(np.sum(present * np.log2(n / present)))
    parametric = (k - 1) / 2 * math.log2(n / 2)
    constant = (k / 2 * math.log(math.pi) - math.lgamma(k / 2)) / math.log(2)
    return labels + parametric + constant


def split_cost(n_features: int, n_samples: int) -> float:
    """Bits to encode a test ``x[f] <= v``: log2 of the number of features for the
    attribute plus log2 of the number of cut points (at most n_samples - 1)."""
    return math.log2(max(n_features, 1)) + math.log2(max(n_samples - 1, 1))


def mdl_costs(tree: Tree, n_features: int, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(cost as a leaf, cost of the subtree after pruning below) for every node, in bits.

    A leaf costs 1 structure bit plus its labels' stochastic complexity; an
    internal node 1 bit plus its split plus its children's (pruned) costs.
    """
    counts = tree.value * tree.weight[:, None]  # class fractions back to (weighted) counts
    as_leaf = np.asarray([1.0 + stochastic_complexity(c, n_classes) for c in counts])
    best = as_leaf.copy()
    for node in postorder(tree):
        if tree.left[node] != LEAF:
            kept = 1.0 + split_cost(n_features, int(tree.n_samples[node]))
            kept += best[tree.left[node]] + best[tree.right[node]]
            best[node] = min(kept, as_leaf[node])
    return as_leaf, best


def mdl_prune(tree: Tree, n_features: int, n_classes: int, task: str = "classification") -> Tree:
    """Mehta, Rissanen & Agrawal's MDL pruning ("full" strategy): bottom-up, a
    subtree is kept only when its encoding cost (structure, splits and the
    labels its leaves leave) is strictly lower than the node's as a leaf.
    Uses the training statistics in the tree only.

    Raises:
        BadInputError: a regression tree (the code encodes class labels).
    """
    if task != "classification":
        raise BadInputError(
            "MDL pruning encodes class labels, so it is for classifiers; prune a regressor "
            'with method = "reduced_error" or "ccp"'
        )
    as_leaf, best = mdl_costs(tree, n_features, n_classes)
    pruned = [
        node for node in postorder(tree) if tree.left[node] != LEAF and as_leaf[node] <= best[node]
    ]
    return make_leaves(tree, pruned)
