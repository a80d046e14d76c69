"""The pruning algorithms: each on hand-built trees whose pruned result is derived in the
test, or against scikit-learn where it implements the same algorithm; then the
driver's choices on validation and the fit goal."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from edgeprune.errors import BadInputError, DataError, RecipeError
from edgeprune.trees import prune as prune_mod
from edgeprune.trees.model import Forest, Tree, from_sklearn
from edgeprune.trees.prune import (
    GoalUnreachableError,
    PruneOptions,
    ccp_candidates,
    prune,
    validation_metric,
)
from edgeprune.trees.prune_ensemble import (
    greedy_order,
    margin_order,
    member_outputs,
    prefix_scores,
)
from edgeprune.trees.prune_tree import (
    ccp_path,
    ccp_prune,
    class_index,
    mdl_prune,
    reduced_error_prune,
    stochastic_complexity,
)
from edgeprune.trees.train import TreeOptions, train, validation_split

LOG2_PI = math.log2(math.pi)  # log2(pi^(k/2) / Gamma(k/2)) for k = 2 classes


def _tree(left, right, feature, threshold, value, weight):
    n = len(left)
    return Tree(
        np.asarray(left, dtype=np.int32),
        np.asarray(right, dtype=np.int32),
        np.asarray(feature, dtype=np.int32),
        np.asarray(threshold, dtype=np.float64),
        np.asarray(value, dtype=np.float64),
        np.asarray(weight, dtype=np.int64),
        np.zeros(n),
        np.asarray(weight, dtype=np.float64),
    )


def _three_leaves():
    """0: x0 <= 0.5 ? 1 : 2;  1: leaf, class 0;  2: x1 <= 0.5 ? 3 : 4 (as a leaf: class 1);
    3: leaf, class 1;  4: leaf, class 0."""
    return _tree(
        [1, -1, 3, -1, -1],
        [2, -1, 4, -1, -1],
        [0, -2, 1, -2, -2],
        [0.5, -2, 0.5, -2, -2],
        [[0.6, 0.4], [1, 0], [0.25, 0.75], [0, 1], [1, 0]],
        [10, 6, 4, 3, 1],
    )


# ------------------------------------------------------------------ reduced error


def test_reduced_error_prunes_a_subtree_whose_leaf_does_better():
    # a=(0,0) label 0 reaches leaf 1 (right); b=(1,0) label 1 reaches leaf 3 (right);
    # c=(1,1) label 1 reaches leaf 4 (class 0: wrong). At node 2 the subtree makes 1
    # error, node 2 as a leaf (class 1) none: pruned. At the root the subtree makes 0
    # errors, the root as a leaf (class 0) 2: kept. Result: root, leaf 1, leaf 2.
    x = np.array([[0, 0], [1, 0], [1, 1]], dtype=np.float32)
    pruned = reduced_error_prune(_three_leaves(), x, [0, 1, 1], "classification", (0, 1))
    assert pruned.n_nodes == 3
    assert pruned.left.tolist() == [1, -1, -1]
    assert np.array_equal(pruned.value[2], [0.25, 0.75])


def test_reduced_error_keeps_a_subtree_that_does_better():
    # d=(1,1) label 0 now: leaf 4 is right, node 2 as a leaf would be wrong: kept.
    x = np.array([[0, 0], [1, 0], [1, 1]], dtype=np.float32)
    kept = reduced_error_prune(_three_leaves(), x, [0, 1, 0], "classification", (0, 1))
    assert kept.n_nodes == 5


def test_reduced_error_ties_prune_so_unvisited_subtrees_go():
    # only a=(0,0) label 0: node 2 sees no sample (0 <= 0 errors: pruned); the root as a
    # leaf (class 0) is right on a, as is the subtree (0 <= 0): pruned to one leaf.
    x = np.array([[0, 0]], dtype=np.float32)
    pruned = reduced_error_prune(_three_leaves(), x, [0], "classification", (0, 1))
    assert pruned.n_nodes == 1 and np.array_equal(pruned.value[0], [0.6, 0.4])


def test_reduced_error_on_a_regression_tree_compares_squared_errors():
    stump = _tree([1, -1, -1], [2, -1, -1], [0, -2, -2], [0.5, -2, -2], [[5], [2], [8]], [4, 2, 2])
    x = np.array([[0], [1]], dtype=np.float32)
    # y = 3, 7: subtree SSE (3-2)^2 + (7-8)^2 = 2 < leaf SSE (3-5)^2 + (7-5)^2 = 8: kept
    assert reduced_error_prune(stump, x, [3.0, 7.0], "regression").n_nodes == 3
    # y = 4.5, 5.5: subtree 2.5^2 * 2 = 12.5 > leaf 0.5^2 * 2 = 0.5: pruned
    assert reduced_error_prune(stump, x, [4.5, 5.5], "regression").n_nodes == 1


# ------------------------------------------------------------------ MDL


def test_stochastic_complexity_matches_the_hand_computed_bits():
    # (5, 5): 5 log2 2 + 5 log2 2 = 10, + 1/2 log2(10/2) = 1.16096, + log2 pi = 1.65150
    assert stochastic_complexity([5, 5], 2) == pytest.approx(10 + 0.5 * math.log2(5) + LOG2_PI)
    assert stochastic_complexity([5, 5], 2) == pytest.approx(12.81246, abs=1e-5)
    # (5, 0): no label bits, 1/2 log2 2.5 = 0.66096, + 1.65150
    assert stochastic_complexity([5, 0], 2) == pytest.approx(2.31246, abs=1e-5)
    # three classes: log2(pi^1.5 / Gamma(1.5)) = log2(pi) + 1 (Gamma(1.5) = sqrt(pi)/2)
    assert stochastic_complexity([2, 0, 0], 3) == pytest.approx(0 + 0 + LOG2_PI + 1)


def _pure_split(n_each):
    """A root with n_each samples of each class split into two pure leaves."""
    n = 2 * n_each
    return _tree(
        [1, -1, -1],
        [2, -1, -1],
        [0, -2, -2],
        [0.5, -2, -2],
        [[0.5, 0.5], [1, 0], [0, 1]],
        [n, n_each, n_each],
    )


def test_mdl_keeps_a_split_that_pays_for_itself():
    # 10 samples (5, 5), 2 features. As a leaf: 1 + 12.81246 = 13.81246 bits.
    # Kept: 1 + split (log2 2 + log2 9 = 4.16993) + 2 x (1 + 2.31246) = 11.79485 bits.
    assert mdl_prune(_pure_split(5), n_features=2, n_classes=2).n_nodes == 3


def test_mdl_prunes_a_split_that_does_not():
    # 6 samples (3, 3). As a leaf: 1 + 6 + 1/2 log2 3 + 1.65150 = 9.44398 bits.
    # Kept: 1 + (log2 2 + log2 5 = 3.32193) + 2 x (1 + 1/2 log2 1.5 + 1.65150) = 10.20989
    # bits; without the split value's log2 5 it would be 7.888 and kept.
    assert mdl_prune(_pure_split(3), n_features=2, n_classes=2).n_nodes == 1
    # 4 samples (2, 2): 7.15150 bits as a leaf against 8.88796 kept.
    assert mdl_prune(_pure_split(2), n_features=2, n_classes=2).n_nodes == 1


def test_mdl_refuses_a_regression_tree():
    with pytest.raises(BadInputError, match='for classifiers; prune a regressor with method = "'):
        mdl_prune(_pure_split(2), 2, 2, task="regression")


# ------------------------------------------------------------------ cost complexity


@pytest.mark.parametrize("estimator", ["classifier", "regressor"])
def test_ccp_path_and_pruned_sizes_equal_scikit_learns(estimator):
    x, y = load_breast_cancer(return_X_y=True)
    if estimator == "classifier":
        make = lambda **kw: DecisionTreeClassifier(random_state=0, **kw)  # noqa: E731
        target = y
    else:
        make = lambda **kw: DecisionTreeRegressor(random_state=0, max_depth=7, **kw)  # noqa: E731
        target = x[:, 0]
    est = make().fit(x, target)
    tree = from_sklearn(est).trees[0]
    path = ccp_path(tree)
    ours_alpha, ours_impurity = path.alphas, path.impurities
    theirs = est.cost_complexity_pruning_path(x, target)
    assert np.array_equal(ours_alpha, theirs.ccp_alphas)
    assert np.array_equal(ours_impurity, theirs.impurities)
    distinct = np.unique(ours_alpha)
    for alpha in np.concatenate([distinct, (distinct[:-1] + distinct[1:]) / 2]):
        refit = make(ccp_alpha=alpha).fit(x, target)
        pruned = ccp_prune(tree, alpha, path)
        assert pruned.n_nodes == refit.tree_.node_count, alpha
        assert np.array_equal(from_sklearn(est).with_trees([pruned]).predict(x), refit.predict(x))


def test_ccp_on_a_forest_equals_scikit_learns_ccp_alpha_refit():
    """Members are bootstrap samples: the weights, not the distinct counts, set the risks."""
    x, y = load_wine(return_X_y=True)
    forest = from_sklearn(RandomForestClassifier(10, random_state=0).fit(x, y))
    refit = RandomForestClassifier(10, random_state=0, ccp_alpha=0.01).fit(x, y)
    pruned = forest.with_trees([ccp_prune(t, 0.01) for t in forest.trees])
    assert pruned.n_nodes == sum(e.tree_.node_count for e in refit.estimators_)
    assert np.array_equal(pruned.predict(x), refit.predict(x))


# ------------------------------------------------------------------ ensemble orderings

# truth [0, 0, 1, 1]; member A predicts [0, 0, 1, 0], B [1, 1, 0, 1], C [0, 0, 0, 1]
ONE_HOT = np.eye(2)
OUTPUTS = np.stack([ONE_HOT[[0, 0, 1, 0]], ONE_HOT[[1, 1, 0, 1]], ONE_HOT[[0, 0, 0, 1]]])
TRUTH = np.array([0, 0, 1, 1])


def test_greedy_order_is_derived_by_hand():
    # step 1: A and C both 3/4 right (and the same true-class probability): A, the lower index.
    # step 2: A+B and A+C both 2/4 right (ties in the average go to class 0); the mean
    # true-class probability is 0.5 for A+B, 0.75 for A+C: C. Then B.
    order = greedy_order(OUTPUTS, TRUTH, "classification")
    assert order.tolist() == [0, 2, 1]
    accuracy, _ = prefix_scores(OUTPUTS, order, TRUTH, "classification")
    assert accuracy.tolist() == [0.75, 0.5, 0.75]


def test_margin_order_is_derived_by_hand():
    # signatures A (+,+,+,-), B (-,-,-,+), C (+,+,-,+); reference 0.075 everywhere.
    # step 1: |o - A|^2 = 3 (0.925^2) + 1.075^2 = 3.7225 = |o - C|^2 < |o - B|^2: A.
    # step 2: mean(A, B) = 0 -> 4 x 0.075^2 = 0.0225; mean(A, C) = (1,1,0,0) -> 1.7225: B.
    assert margin_order(OUTPUTS, TRUTH, "classification").tolist() == [0, 1, 2]
    with pytest.raises(BadInputError, match='use ensemble = "greedy" for a regressor'):
        margin_order(OUTPUTS, TRUTH.astype(float), "regression")


# ------------------------------------------------------------------ the driver


@pytest.fixture(scope="module")
def digits_like():
    """breast cancer: train / validation / test, and a 30-member forest."""
    x, y = load_breast_cancer(return_X_y=True)
    x_fit, y_fit, x_rest, y_rest = validation_split(x, y, "classification", 0.4, seed=0)
    x_val, y_val = x_rest[::2], y_rest[::2]
    options = TreeOptions(n_estimators=30, random_state=0)
    forest = train(options, x_fit, y_fit, "classification")
    return forest, options, (x_fit, y_fit), (x_val, y_val)


def test_ccp_best_picks_the_most_accurate_alpha_on_validation(digits_like):
    forest, _, _, val = digits_like
    out = prune(forest, PruneOptions(method="ccp"), val_data=val)
    scores = [
        (validation_metric(c.forest, *val), -c.forest.n_nodes) for c in ccp_candidates(forest)
    ]
    assert validation_metric(out.forest, *val) == max(scores)[0]
    assert out.forest.n_nodes == -max(scores)[1]
    (step,) = out.steps
    assert step["name"] == "ccp" and step["parameters"]["rule"] == "best"
    assert step["nodes_before"] == forest.n_nodes and step["nodes_after"] == out.forest.n_nodes
    assert step["validation_after"] == validation_metric(out.forest, *val)


def test_ccp_one_standard_error_takes_the_largest_alpha_within_it():
    x, y = load_wine(return_X_y=True)
    x_fit, y_fit, x_val, y_val = validation_split(x, y, "classification", 0.4, seed=2)
    forest = train(TreeOptions(kind="decision_tree"), x_fit, y_fit, "classification")
    best = prune(forest, PruneOptions(method="ccp"), val_data=(x_val, y_val))
    one_se = prune(forest, PruneOptions(method="ccp", ccp_rule="1se"), val_data=(x_val, y_val))
    err_best = 1 - best.steps[0]["validation_after"]
    limit = err_best + math.sqrt(err_best * (1 - err_best) / len(y_val))
    alpha = one_se.steps[0]["parameters"]["alpha"]
    assert alpha >= best.steps[0]["parameters"]["alpha"]
    assert 1 - one_se.steps[0]["validation_after"] <= limit + 1e-12
    for cand in ccp_candidates(forest):  # no larger alpha is within one standard error
        if cand.parameters["alpha"] > alpha:
            assert 1 - validation_metric(cand.forest, x_val, y_val) > limit


def test_pre_pruning_refits_the_grid_and_picks_on_validation(digits_like, monkeypatch):
    forest, options, train_data, val = digits_like
    monkeypatch.setattr(prune_mod, "PRE_MAX_DEPTH", (None, 2))
    monkeypatch.setattr(prune_mod, "PRE_MIN_SAMPLES_LEAF", (1, 20))
    monkeypatch.setattr(prune_mod, "PRE_MIN_IMPURITY_DECREASE", (0.0,))
    out = prune(forest, PruneOptions(method="pre"), train_data, val, tree_options=options)
    results = {}
    for depth in (None, 2):
        for leaf in (1, 20):
            f = train(
                TreeOptions(n_estimators=30, max_depth=depth, min_samples_leaf=leaf),
                *train_data,
                "classification",
            )
            results[(depth, leaf)] = (validation_metric(f, *val), -f.n_nodes)
    chosen = out.steps[0]["parameters"]
    assert results[(chosen["max_depth"], chosen["min_samples_leaf"])] == max(results.values())
    assert chosen["candidates"] == 4


def test_pre_pruning_without_training_data_says_what_it_needs(digits_like):
    forest, _, _, val = digits_like
    with pytest.raises(BadInputError, match="needs the training data and the \\[trees\\] options"):
        prune(forest, PruneOptions(method="pre"), val_data=val)


def test_greedy_members_keeps_the_first_k_of_the_greedy_order(digits_like):
    forest, _, _, (x_val, y_val) = digits_like
    out = prune(forest, PruneOptions(ensemble="greedy", members=5), val_data=(x_val, y_val))
    assert out.forest.n_members == 5
    order = greedy_order(
        member_outputs(forest, x_val), class_index(y_val, forest.classes), "classification"
    )
    kept = [forest.trees[i] for i in order[:5]]
    assert all(a is b for a, b in zip(out.forest.trees, kept, strict=True))
    assert out.steps[0]["members_after"] == 5 and out.steps[0]["parameters"]["members"] == 5


def test_methods_compose_tree_level_then_ensemble(digits_like):
    forest, _, _, val = digits_like
    out = prune(forest, PruneOptions(method="reduced_error", ensemble="ordered"), val_data=val)
    tree_step, ensemble_step = out.steps
    assert tree_step["name"] == "reduced_error" and ensemble_step["name"] == "ordered"
    assert ensemble_step["nodes_before"] == tree_step["nodes_after"]
    assert out.forest.n_members < forest.n_members  # at least 20 % kept, fewer than all here
    assert out.forest.n_members >= 6
    assert out.forest.meta["pruning"][1]["name"] == "ordered"


def test_fit_goal_returns_the_most_accurate_candidate_that_fits(digits_like):
    forest, _, _, val = digits_like
    calls = []

    def fits(candidate: Forest) -> bool:
        calls.append(candidate.n_nodes)
        return candidate.n_nodes <= 400

    out = prune(forest, PruneOptions(method="ccp"), val_data=val, fits=fits)
    assert out.forest.n_nodes <= 400
    within = [c.forest for c in ccp_candidates(forest) if c.forest.n_nodes <= 400]
    best = max(validation_metric(f, *val) for f in within)
    assert validation_metric(out.forest, *val) == best
    # among the equally accurate, the largest: the goal is the largest model that fits
    assert out.forest.n_nodes == max(
        f.n_nodes for f in within if validation_metric(f, *val) == best
    )
    assert calls[-1] == out.forest.n_nodes and all(n > 400 for n in calls[:-1])
    # after a failure only smaller candidates are tried: each call is smaller than the last
    assert all(a > b for a, b in zip(calls, calls[1:], strict=False))
    assert out.steps[0]["parameters"]["rule"] == "fit"


def test_max_nodes_with_an_ensemble_stays_within_it(digits_like):
    forest, _, _, val = digits_like
    out = prune(forest, PruneOptions(ensemble="greedy", max_nodes=300), val_data=val)
    assert out.forest.n_nodes <= 300 and out.forest.n_members >= 1


def test_an_unreachable_goal_names_the_smallest_candidate(digits_like):
    forest, _, _, val = digits_like
    # the candidates are the greedy order's prefixes: the smallest is its first member
    order = greedy_order(
        member_outputs(forest, val[0]), class_index(val[1], forest.classes), "classification"
    )
    smallest = forest.trees[order[0]].n_nodes
    with pytest.raises(GoalUnreachableError) as err:
        prune(forest, PruneOptions(ensemble="greedy"), val_data=val, fits=lambda f: False)
    message = str(err.value)
    assert f"the smallest has {smallest} nodes in 1 members" in message
    assert "loosen the budget or prune harder" in message and "\n" not in message


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"method": "c45"}, "trees.prune.method is 'c45'; use one of none, pre, ccp"),
        ({"ccp_rule": "2se"}, "trees.prune.ccp_rule is '2se'"),
        ({"ensemble": "boost"}, "trees.prune.ensemble is 'boost'"),
        ({"ensemble": "greedy", "members": 0}, "trees.prune.members is 0"),
        ({"members": 3}, 'set ensemble = "greedy" or "ordered" too'),
        ({"max_nodes": 2.5}, "trees.prune.max_nodes is 2.5"),
    ],
)
def test_bad_prune_options_are_refused(kwargs, words):
    with pytest.raises(RecipeError) as err:
        PruneOptions(**kwargs)
    assert words in str(err.value)


def test_validation_of_the_wrong_width_or_missing_is_refused(digits_like):
    forest, _, _, (x_val, y_val) = digits_like
    with pytest.raises(DataError, match="have 5 columns but the model takes 30"):
        prune(forest, PruneOptions(method="ccp"), val_data=(x_val[:, :5], y_val))
    with pytest.raises(BadInputError, match="reduced_error pruning chooses on a validation split"):
        prune(forest, PruneOptions(method="reduced_error"))


def test_regression_forest_prunes_by_reduced_error_and_refuses_mdl():
    x, _ = load_wine(return_X_y=True)
    target = x[:, 0]
    x = x[:, 1:]
    x_fit, y_fit, x_val, y_val = validation_split(x, target, "regression", 0.3, seed=0)
    forest = train(TreeOptions(n_estimators=10), x_fit, y_fit, "regression")
    out = prune(forest, PruneOptions(method="reduced_error"), val_data=(x_val, y_val))
    assert out.steps[0]["metric"] == "mse" and out.forest.n_nodes < forest.n_nodes
    for before, after in zip(forest.trees, out.forest.trees, strict=True):
        # what reduced-error promises: no member's validation error rises
        sse_before = np.sum((before.value[before.apply(x_val), 0] - y_val) ** 2)
        sse_after = np.sum((after.value[after.apply(x_val), 0] - y_val) ** 2)
        assert sse_after <= sse_before + 1e-9
    with pytest.raises(BadInputError, match="MDL pruning encodes class labels"):
        prune(forest, PruneOptions(method="mdl"))


def test_a_node_budget_below_every_candidate_is_refused_without_calling_fits(digits_like):
    forest, _, _, val = digits_like
    calls = []
    with pytest.raises(GoalUnreachableError) as err:
        prune(
            forest,
            PruneOptions(method="mdl", max_nodes=2),
            val_data=val,
            fits=lambda f: calls.append(f) or True,
        )
    assert "no pruned candidate meets at most 2 nodes and the device budget" in str(err.value)
    assert calls == []
