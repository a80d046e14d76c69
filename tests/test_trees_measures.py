"""Measures of tree models: complexity, quality through edgeprune.metrics, impurity
importance equal to scikit-learn's (and recomputed after pruning), permutation
importance, and refitting on fewer features with the cost shown."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import ensemble, tree
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.metrics import confusion_matrix, f1_score

from edgeprune.errors import BadInputError, DataError
from edgeprune.trees.measures import (
    complexity,
    drop_features,
    impurity_importance,
    permutation_importance,
    quality,
)
from edgeprune.trees.model import Forest, Tree, from_sklearn, model_inputs
from edgeprune.trees.prune_tree import ccp_prune
from edgeprune.trees.train import TreeOptions, train, validation_split


@pytest.fixture(scope="module")
def wine():
    return load_wine(return_X_y=True)


def _stump_on_feature_0():
    """x0 <= 0.5 ? class 0 : class 1, three features of which only the first is read."""
    t = Tree(
        np.array([1, -1, -1], dtype=np.int32),
        np.array([2, -1, -1], dtype=np.int32),
        np.array([0, -2, -2], dtype=np.int32),
        np.array([0.5, -2, -2]),
        np.array([[0.5, 0.5], [1.0, 0.0], [0.0, 1.0]]),
        np.array([4, 2, 2]),
        np.array([0.5, 0.0, 0.0]),
        np.array([4.0, 2.0, 2.0]),
    )
    return Forest("classification", (t,), 3, (0, 1), "decision_tree")


def test_complexity_counts_the_hand_built_stump():
    assert complexity(_stump_on_feature_0()) == {
        "nodes": 3,
        "leaves": 2,
        "internal_nodes": 1,
        "depth": 1,
        "members": 1,
        "features_used": 1,
    }


def test_complexity_of_a_forest_sums_members(wine):
    x, y = wine
    est = ensemble.RandomForestClassifier(7, max_depth=3, random_state=0).fit(x, y)
    c = complexity(from_sklearn(est))
    assert c["nodes"] == sum(e.tree_.node_count for e in est.estimators_)
    assert c["leaves"] == sum(e.tree_.n_leaves for e in est.estimators_)
    assert c["depth"] == max(e.tree_.max_depth for e in est.estimators_) == 3
    assert c["members"] == 7


@pytest.mark.parametrize(
    "make",
    [
        lambda: tree.DecisionTreeClassifier(random_state=0),
        lambda: tree.DecisionTreeRegressor(max_depth=5, random_state=0),
        lambda: ensemble.RandomForestClassifier(10, random_state=0),
        lambda: ensemble.RandomForestRegressor(10, max_depth=6, random_state=0),
        lambda: ensemble.ExtraTreesClassifier(10, random_state=0),
    ],
)
def test_impurity_importance_equals_scikit_learns(make, wine):
    x, y = wine
    est = make()
    est.fit(x, y if "Classifier" in type(est).__name__ else x[:, 0] + y)
    assert np.allclose(impurity_importance(from_sklearn(est)), est.feature_importances_, atol=1e-12)


def test_impurity_importance_after_pruning_describes_the_pruned_model(wine):
    x, y = wine
    est = ensemble.RandomForestClassifier(10, random_state=0).fit(x, y)
    refit = ensemble.RandomForestClassifier(10, random_state=0, ccp_alpha=0.02).fit(x, y)
    forest = from_sklearn(est)
    pruned = forest.with_trees([ccp_prune(t, 0.02) for t in forest.trees])
    assert np.allclose(impurity_importance(pruned), refit.feature_importances_, atol=1e-12)
    assert not np.allclose(impurity_importance(pruned), est.feature_importances_)


def test_permutation_importance_is_zero_for_a_feature_never_read():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(200, 3))
    y = (x[:, 0] > 0.5).astype(int)
    mean, std = permutation_importance(_stump_on_feature_0(), x, y, repeats=4, seed=3)
    assert mean.shape == std.shape == (3,)
    assert mean[1] == mean[2] == 0.0 and std[1] == std[2] == 0.0
    assert 0.3 < mean[0] <= 0.7  # shuffling the one feature read: about half go wrong
    again, _ = permutation_importance(_stump_on_feature_0(), x, y, repeats=4, seed=3)
    assert np.array_equal(mean, again)
    with pytest.raises(BadInputError, match="repeats is 0"):
        permutation_importance(_stump_on_feature_0(), x, y, repeats=0)


def test_quality_uses_the_projects_metrics(wine):
    x, y = wine
    est = tree.DecisionTreeClassifier(max_depth=2, random_state=0).fit(x[::2], y[::2])
    q = quality(from_sklearn(est), x[1::2], y[1::2])
    pred = est.predict(x[1::2])
    assert q["accuracy"] == pytest.approx(np.mean(pred == y[1::2]))
    assert q["macro_f1"] == pytest.approx(f1_score(y[1::2], pred, average="macro"))
    assert q["confusion_matrix"] == confusion_matrix(y[1::2], pred).tolist()
    with pytest.raises(DataError, match="1 labels are classes the model was not fitted on"):
        quality(from_sklearn(est), x[:3], [0, 1, 9])


def test_quality_of_a_regressor_is_mse_and_mae(wine):
    x, y = wine
    est = tree.DecisionTreeRegressor(max_depth=3, random_state=0).fit(x, x[:, 0])
    q = quality(from_sklearn(est), x, x[:, 0])
    pred = est.predict(x)
    assert q["mse"] == pytest.approx(np.mean((pred - x[:, 0]) ** 2))
    assert q["mae"] == pytest.approx(np.mean(np.abs(pred - x[:, 0])))


@pytest.fixture(scope="module")
def cancer_split():
    x, y = load_breast_cancer(return_X_y=True)
    x_fit, y_fit, x_val, y_val = validation_split(x, y, "classification", 0.3, seed=0)
    return (x_fit, y_fit), (x_val, y_val)


def test_drop_features_refits_on_the_most_important_and_shows_the_cost(cancer_split):
    train_data, (x_val, y_val) = cancer_split
    options = TreeOptions(n_estimators=20, random_state=0)
    forest = train(options, *train_data, "classification")
    importance = impurity_importance(forest)
    result = drop_features(forest, train_data, (x_val, y_val), importance, keep=4)
    assert list(result.kept) == np.argsort(-importance)[:4].tolist()
    assert result.forest.n_features == 4
    assert result.forest.meta["features"] == list(result.kept)
    assert result.before == np.mean(forest.predict(x_val) == y_val)
    refit = train(options, train_data[0][:, list(result.kept)], train_data[1], "classification")
    assert result.after == np.mean(refit.predict(x_val[:, list(result.kept)]) == y_val)
    assert result.after == np.mean(
        result.forest.predict(model_inputs(result.forest, x_val)) == y_val
    )
    assert result.summary()["metric"] == "accuracy" and "forest" not in result.summary()


def test_drop_features_by_fraction_with_options(cancer_split):
    train_data, val = cancer_split
    options = TreeOptions(kind="decision_tree", max_depth=4)
    importance = np.arange(30, dtype=float)  # the last features rank first
    result = drop_features(options, train_data, val, importance, keep=0.1, task="classification")
    assert result.kept == (29, 28, 27)


def test_drop_features_refuses_bad_requests(cancer_split, wine):
    train_data, val = cancer_split
    forest = train(TreeOptions(kind="decision_tree"), *train_data, "classification")
    with pytest.raises(BadInputError, match="keep is 31; use a count from 1 to 30"):
        drop_features(forest, train_data, val, np.ones(30), keep=31)
    with pytest.raises(BadInputError, match="keep is 0.0; use a fraction in"):
        drop_features(forest, train_data, val, np.ones(30), keep=0.0)
    with pytest.raises(BadInputError, match="importance has 3 scores for 30 features"):
        drop_features(forest, train_data, val, np.ones(3), keep=2)
    x, y = wine
    loaded = from_sklearn(tree.DecisionTreeClassifier().fit(x, y))
    with pytest.raises(
        BadInputError, match="not trained by edgeprune; give the \\[trees\\] options"
    ):
        drop_features(loaded, (x, y), (x, y), np.ones(13), keep=2)
