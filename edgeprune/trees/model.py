"""The one representation of a tree model every other part of the package reads.

A :class:`Forest` is a tuple of :class:`Tree` arrays (a single decision tree
is a forest of one) plus what prediction needs: the task, the classes and how
the members' outputs are combined. It is built from a fitted scikit-learn
estimator (:func:`from_sklearn`) and predicts exactly as that estimator does
(:meth:`Forest.predict`), so that pruning, the C export and the runners can
work on plain arrays and be checked against scikit-learn.

Conventions (those of scikit-learn's ``tree_``):

- node 0 is the root; ``left[i] == -1`` (and ``right[i] == -1``) marks a leaf;
- a sample goes left when ``x[feature[i]] <= threshold[i]``, with ``x`` as
  float32 and the threshold as float64 (scikit-learn casts X to float32);
- ``value[i]`` is the node's output: class fractions (rows sum to 1) for a
  classifier, the mean target for a regressor (one column);
- ``n_samples[i]``: training samples that reached the node (for MDL and
  reduced-error tie-breaking); ``impurity[i]`` its training impurity;
  ``weight[i]`` the weighted sample count (scikit-learn's
  ``weighted_n_node_samples``: bootstrap counts in a random forest), which
  cost-complexity pruning and impurity importance weigh nodes by.

A forest's classifier prediction averages the members' leaf fractions and
takes the argmax (scikit-learn's soft vote); a regressor's averages the leaf
values. Pruning never edits arrays in place: a pruned tree is a new
:class:`Tree` whose unreachable nodes are dropped (:func:`compact`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLASSIFICATION = "classification"
REGRESSION = "regression"
LEAF = -1


@dataclass(frozen=True, eq=False)
class Tree:
    left: np.ndarray  # int32 (n_nodes,), -1 at leaves
    right: np.ndarray  # int32 (n_nodes,), -1 at leaves
    feature: np.ndarray  # int32 (n_nodes,), -2 at leaves (scikit-learn's value)
    threshold: np.ndarray  # float64 (n_nodes,)
    value: np.ndarray  # float64 (n_nodes, n_outputs)
    n_samples: np.ndarray  # int64 (n_nodes,)
    impurity: np.ndarray  # float64 (n_nodes,)
    weight: np.ndarray  # float64 (n_nodes,): weighted_n_node_samples

    @property
    def n_nodes(self) -> int:
        return int(self.left.shape[0])

    @property
    def is_leaf(self) -> np.ndarray:
        return self.left == LEAF

    @property
    def n_leaves(self) -> int:
        return int(np.count_nonzero(self.is_leaf))

    @property
    def depth(self) -> int:
        """Edges on the longest root-to-leaf path (a lone leaf has depth 0)."""
        deepest, stack = 0, [(0, 0)]
        while stack:
            node, d = stack.pop()
            if self.left[node] == LEAF:
                deepest = max(deepest, d)
            else:
                stack += [(int(self.left[node]), d + 1), (int(self.right[node]), d + 1)]
        return deepest

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The leaf each row of ``x`` (n, n_features) reaches."""
        x = np.asarray(x, dtype=np.float32)
        node = np.zeros(x.shape[0], dtype=np.int64)
        active = self.left[node] != LEAF
        while active.any():
            idx = np.nonzero(active)[0]
            cur = node[idx]
            go_left = x[idx, self.feature[cur]].astype(np.float64) <= self.threshold[cur]
            node[idx] = np.where(go_left, self.left[cur], self.right[cur])
            active = self.left[node] != LEAF
        return node

    def path_nodes(self, x: np.ndarray) -> list[np.ndarray]:
        """For each row of ``x``, the nodes from the root to its leaf."""
        out = []
        for row in np.asarray(x, dtype=np.float32):
            node, path = 0, [0]
            while self.left[node] != LEAF:
                left = float(row[self.feature[node]]) <= self.threshold[node]
                node = int(self.left[node] if left else self.right[node])
                path.append(node)
            out.append(np.asarray(path, dtype=np.int64))
        return out


@dataclass(frozen=True, eq=False)
class Forest:
    task: str  # CLASSIFICATION or REGRESSION
    trees: tuple[Tree, ...]
    n_features: int
    classes: tuple = ()  # class labels as scikit-learn's classes_ (classification)
    kind: str = "random_forest"  # "decision_tree", "random_forest", "extra_trees"
    feature_names: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)  # hyperparameters, how it was pruned

    @property
    def n_members(self) -> int:
        return len(self.trees)

    @property
    def n_nodes(self) -> int:
        return sum(t.n_nodes for t in self.trees)

    @property
    def n_leaves(self) -> int:
        return sum(t.n_leaves for t in self.trees)

    @property
    def depth(self) -> int:
        return max(t.depth for t in self.trees)

    def predict_value(self, x: np.ndarray) -> np.ndarray:
        """The members' averaged leaf values (class fractions or regression values)."""
        total = None
        for t in self.trees:
            v = t.value[t.apply(x)]
            total = v if total is None else total + v
        return total / len(self.trees)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class labels (classification) or values (regression), as scikit-learn predicts."""
        v = self.predict_value(x)
        if self.task == CLASSIFICATION:
            return np.asarray(self.classes)[np.argmax(v, axis=1)]
        return v[:, 0] if v.shape[1] == 1 else v

    def with_trees(self, trees, **meta) -> Forest:
        """The same model with other members (pruned trees, a subset of the ensemble)."""
        return Forest(
            self.task,
            tuple(trees),
            self.n_features,
            self.classes,
            self.kind,
            self.feature_names,
            {**self.meta, **meta},
        )


def tree_from_sklearn(tree_) -> Tree:
    """One scikit-learn ``tree_`` object as a :class:`Tree` (arrays copied)."""
    value = np.asarray(tree_.value, dtype=np.float64)
    n = value.shape[0]
    if value.shape[1] == 1:  # single output: (n, 1, n_classes) -> (n, n_classes)
        value = value[:, 0, :]
    else:
        raise ValueError("multi-output trees are not handled")
    if value.shape[1] > 1:  # a classifier: scikit-learn < 1.4 stored counts
        sums = value.sum(axis=1, keepdims=True)
        value = np.divide(value, sums, out=np.zeros_like(value), where=sums > 0)
    return Tree(
        left=np.asarray(tree_.children_left, dtype=np.int32).copy(),
        right=np.asarray(tree_.children_right, dtype=np.int32).copy(),
        feature=np.asarray(tree_.feature, dtype=np.int32).copy(),
        threshold=np.asarray(tree_.threshold, dtype=np.float64).copy(),
        value=value.reshape(n, -1).copy(),
        n_samples=np.asarray(tree_.n_node_samples, dtype=np.int64).copy(),
        impurity=np.asarray(tree_.impurity, dtype=np.float64).copy(),
        weight=np.asarray(tree_.weighted_n_node_samples, dtype=np.float64).copy(),
    )


KINDS = {
    "DecisionTreeClassifier": ("decision_tree", CLASSIFICATION),
    "DecisionTreeRegressor": ("decision_tree", REGRESSION),
    "RandomForestClassifier": ("random_forest", CLASSIFICATION),
    "RandomForestRegressor": ("random_forest", REGRESSION),
    "ExtraTreesClassifier": ("extra_trees", CLASSIFICATION),
    "ExtraTreesRegressor": ("extra_trees", REGRESSION),
}


def from_sklearn(estimator, feature_names=()) -> Forest:
    """A fitted scikit-learn tree or forest (one of :data:`KINDS`) as a :class:`Forest`."""
    name = type(estimator).__name__
    if name not in KINDS:
        raise ValueError(f"{name} is not a tree model edgeprune handles ({', '.join(KINDS)})")
    kind, task = KINDS[name]
    members = getattr(estimator, "estimators_", None) or [estimator]
    trees = tuple(tree_from_sklearn(m.tree_) for m in members)
    classes = tuple(np.asarray(estimator.classes_).tolist()) if task == CLASSIFICATION else ()
    return Forest(task, trees, int(estimator.n_features_in_), classes, kind, tuple(feature_names))


def compact(tree: Tree) -> Tree:
    """``tree`` without the nodes no longer reachable from the root, renumbered depth-first."""
    order, stack = [], [0]
    while stack:
        node = stack.pop()
        order.append(node)
        if tree.left[node] != LEAF:
            stack += [int(tree.right[node]), int(tree.left[node])]
    new_id = {old: i for i, old in enumerate(order)}
    idx = np.asarray(order, dtype=np.int64)

    def remap(children):
        ids = [new_id[int(c)] if c != LEAF else LEAF for c in children[idx]]
        return np.asarray(ids, dtype=np.int32)

    return Tree(
        remap(tree.left),
        remap(tree.right),
        tree.feature[idx].copy(),
        tree.threshold[idx].copy(),
        tree.value[idx].copy(),
        tree.n_samples[idx].copy(),
        tree.impurity[idx].copy(),
        tree.weight[idx].copy(),
    )


def make_leaf(tree: Tree, node: int) -> Tree:
    """``tree`` with ``node``'s subtree replaced by a leaf holding the node's value."""
    return make_leaves(tree, [node])


def make_leaves(tree: Tree, nodes) -> Tree:
    """``tree`` with each of ``nodes``' subtrees replaced by a leaf holding that node's
    value (a node inside another's removed subtree simply disappears), compacted once."""
    nodes = np.asarray(list(nodes), dtype=np.int64)
    if nodes.size == 0:
        return tree
    left, right, feature = tree.left.copy(), tree.right.copy(), tree.feature.copy()
    threshold = tree.threshold.copy()
    left[nodes] = right[nodes] = LEAF
    feature[nodes] = -2
    threshold[nodes] = -2.0  # scikit-learn's value at leaves
    pruned = Tree(
        left, right, feature, threshold, tree.value, tree.n_samples, tree.impurity, tree.weight
    )
    return compact(pruned)


def visits(tree: Tree, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every (node, row) pair such that row ``row`` of ``x`` passes through ``node``
    on its way to a leaf, as two int64 arrays of equal length (root first)."""
    x = np.asarray(x, dtype=np.float32)
    rows = np.arange(x.shape[0], dtype=np.int64)
    node = np.zeros(x.shape[0], dtype=np.int64)
    all_nodes, all_rows = [node], [rows]
    while rows.size:
        inner = tree.left[node] != LEAF
        rows, node = rows[inner], node[inner]
        go_left = x[rows, tree.feature[node]].astype(np.float64) <= tree.threshold[node]
        node = np.where(go_left, tree.left[node], tree.right[node]).astype(np.int64)
        all_nodes.append(node)
        all_rows.append(rows)
    return np.concatenate(all_nodes), np.concatenate(all_rows)


def parents(tree: Tree) -> np.ndarray:
    """Each node's parent (-1 for the root)."""
    parent = np.full(tree.n_nodes, -1, dtype=np.int64)
    inner = np.nonzero(tree.left != LEAF)[0]
    parent[tree.left[inner]] = inner
    parent[tree.right[inner]] = inner
    return parent


def postorder(tree: Tree) -> list[int]:
    """The reachable nodes, every child before its parent."""
    order, stack = [], [0]
    while stack:
        node = stack.pop()
        order.append(node)
        if tree.left[node] != LEAF:
            stack += [int(tree.left[node]), int(tree.right[node])]
    return order[::-1]


def model_inputs(forest: Forest, x: np.ndarray) -> np.ndarray:
    """The columns of ``x`` (all the data set's features) that ``forest`` reads:
    ``x[:, forest.meta["features"]]`` for a model refitted on fewer features
    (the original indices, in the model's order), else ``x`` unchanged."""
    features = forest.meta.get("features")
    x = np.asarray(x)
    return x if features is None else x[:, np.asarray(features, dtype=np.int64)]
