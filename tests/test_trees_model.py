"""The shared tree representation: read from scikit-learn, predicting as it does, and
the array helpers every pruning algorithm builds on (make_leaves, visits, postorder)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import ensemble, tree
from sklearn.datasets import load_breast_cancer, load_wine

from edgeprune.trees.model import (
    LEAF,
    Tree,
    compact,
    from_sklearn,
    make_leaf,
    make_leaves,
    model_inputs,
    parents,
    postorder,
    visits,
)

ESTIMATORS = {
    "DecisionTreeClassifier": lambda: tree.DecisionTreeClassifier(random_state=0),
    "DecisionTreeRegressor": lambda: tree.DecisionTreeRegressor(max_depth=6, random_state=0),
    "RandomForestClassifier": lambda: ensemble.RandomForestClassifier(8, random_state=0),
    "RandomForestRegressor": lambda: ensemble.RandomForestRegressor(8, random_state=0),
    "ExtraTreesClassifier": lambda: ensemble.ExtraTreesClassifier(8, random_state=0),
    "ExtraTreesRegressor": lambda: ensemble.ExtraTreesRegressor(8, random_state=0),
}


@pytest.fixture(scope="module")
def wine():
    return load_wine(return_X_y=True)


def _fit(name, x, y):
    est = ESTIMATORS[name]()
    target = y if "Classifier" in name else x[:, 0] * 2 + y
    return est.fit(x, target)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_forest_predicts_exactly_as_scikit_learn(name, wine):
    x, y = wine
    est = _fit(name, x, y)
    forest = from_sklearn(est)
    assert np.array_equal(forest.predict(x), est.predict(x))
    rng = np.random.default_rng(0)
    noisy = x + rng.normal(0, x.std(axis=0) * 0.3, x.shape)  # away from the training points
    assert np.array_equal(forest.predict(noisy), est.predict(noisy))


@pytest.mark.parametrize("name", ["RandomForestClassifier", "DecisionTreeRegressor"])
def test_weight_is_scikit_learns_weighted_sample_count(name, wine):
    x, y = wine
    est = _fit(name, x, y)
    members = getattr(est, "estimators_", [est])
    for member, t in zip(members, from_sklearn(est).trees, strict=True):
        assert np.array_equal(t.weight, member.tree_.weighted_n_node_samples)
    if name.startswith("RandomForest"):  # bootstrap counts differ from distinct samples
        t = from_sklearn(est).trees[0]
        assert not np.array_equal(t.weight, t.n_samples.astype(float))


def _hand_tree():
    """      0: x0 <= 0.5
          /           \\
      1: leaf A     2: x1 <= 0.5
                    /         \\
                3: leaf B    4: leaf A
    """
    return Tree(
        left=np.array([1, -1, 3, -1, -1], dtype=np.int32),
        right=np.array([2, -1, 4, -1, -1], dtype=np.int32),
        feature=np.array([0, -2, 1, -2, -2], dtype=np.int32),
        threshold=np.array([0.5, -2, 0.5, -2, -2]),
        value=np.array([[0.6, 0.4], [1.0, 0.0], [0.25, 0.75], [0.0, 1.0], [1.0, 0.0]]),
        n_samples=np.array([10, 6, 4, 3, 1]),
        impurity=np.array([0.48, 0.0, 0.375, 0.0, 0.0]),
        weight=np.array([10.0, 6.0, 4.0, 3.0, 1.0]),
    )


def test_make_leaf_drops_the_subtree_and_keeps_the_nodes_value():
    t = make_leaf(_hand_tree(), 2)
    assert t.n_nodes == 3 and t.n_leaves == 2
    assert np.array_equal(t.value[2], [0.25, 0.75])
    assert t.feature[2] == -2 and t.left[2] == LEAF
    assert np.array_equal(t.weight, [10.0, 6.0, 4.0])


def test_make_leaves_inside_a_removed_subtree_is_harmless():
    once = make_leaves(_hand_tree(), [3, 2])
    assert once.n_nodes == 3
    root_only = make_leaves(_hand_tree(), [0, 2])
    assert root_only.n_nodes == 1 and root_only.depth == 0
    assert make_leaves(_hand_tree(), []).n_nodes == 5


def test_compact_renumbers_depth_first_and_keeps_predictions():
    t = _hand_tree()
    # the same tree with its nodes stored in another order (2 before 1)
    shuffled = Tree(
        left=np.array([2, 3, -1, -1, -1], dtype=np.int32),
        right=np.array([1, 4, -1, -1, -1], dtype=np.int32),
        feature=np.array([0, 1, -2, -2, -2], dtype=np.int32),
        threshold=np.array([0.5, 0.5, -2, -2, -2]),
        value=t.value[[0, 2, 1, 3, 4]],
        n_samples=t.n_samples[[0, 2, 1, 3, 4]],
        impurity=t.impurity[[0, 2, 1, 3, 4]],
        weight=t.weight[[0, 2, 1, 3, 4]],
    )
    c = compact(shuffled)
    assert np.array_equal(c.left, t.left) and np.array_equal(c.value, t.value)
    x = np.array([[0, 0], [1, 0], [1, 1], [0.5, 0.5]], dtype=np.float32)
    assert np.array_equal(c.apply(x), t.apply(x))


def test_visits_are_the_decision_paths(wine):
    x, y = wine
    est = tree.DecisionTreeClassifier(random_state=0).fit(x, y)
    nodes, rows = visits(from_sklearn(est).trees[0], x)
    path = est.decision_path(x).tocoo()
    assert sorted(zip(nodes.tolist(), rows.tolist(), strict=True)) == sorted(
        zip(path.col.tolist(), path.row.tolist(), strict=True)
    )


def test_postorder_visits_children_first_and_parents_invert_children():
    t = _hand_tree()
    order = postorder(t)
    assert sorted(order) == [0, 1, 2, 3, 4]
    for node in order:
        if t.left[node] != LEAF:
            assert order.index(node) > order.index(int(t.left[node]))
            assert order.index(node) > order.index(int(t.right[node]))
    assert parents(t).tolist() == [-1, 0, 0, 2, 2]


def test_model_inputs_selects_the_kept_feature_columns():
    x, y = load_breast_cancer(return_X_y=True)
    forest = from_sklearn(tree.DecisionTreeClassifier(random_state=0).fit(x[:, [7, 3]], y))
    narrowed = forest.with_trees(forest.trees, features=[7, 3])
    assert np.array_equal(model_inputs(narrowed, x), x[:, [7, 3]])
    assert model_inputs(forest, x) is x  # a model on every feature reads x as it is
