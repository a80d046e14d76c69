"""Choosing pruning on out-of-bag rows (edgeprune/trees/oob.py): the rows equal
scikit-learn's, the fallback to validation says why, ordering with a vote mask is
derived by hand, and the conservative reduced-error rule keeps ties."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.ensemble._forest import _generate_unsampled_indices
from test_trees_prune import _three_leaves  # tests/ is on sys.path

from edgeprune.errors import RecipeError
from edgeprune.trees import oob
from edgeprune.trees.model import from_sklearn
from edgeprune.trees.prune import PruneOptions, prune
from edgeprune.trees.prune_ensemble import greedy_order, prefix_scores
from edgeprune.trees.prune_tree import reduced_error_prune
from edgeprune.trees.train import TreeOptions, train, validation_split


@pytest.fixture(scope="module")
def wine_forest():
    x, y = load_wine(return_X_y=True)
    x_fit, y_fit, x_val, y_val = validation_split(x, y, "classification", 0.25, seed=0)
    forest = train(TreeOptions(n_estimators=12, random_state=3), x_fit, y_fit, "classification")
    return forest, (x_fit, y_fit), (x_val, y_val)


def test_unsampled_rows_equal_scikit_learns():
    x, y = load_wine(return_X_y=True)
    est = RandomForestClassifier(n_estimators=5, random_state=7).fit(x, y)
    n = len(x)
    for member in est.estimators_:
        seed = member.random_state
        theirs = _generate_unsampled_indices(seed, n, n, None)
        assert np.array_equal(oob.unsampled_rows(seed, n, n), theirs)
        assert 0 < len(theirs) < n


def test_a_trained_forest_is_judged_on_its_out_of_bag_and_validation_rows(wine_forest):
    forest, (x_fit, y_fit), val = wine_forest
    record = forest.meta[oob.BOOTSTRAP_KEY]
    assert len(record["seeds"]) == 12 and record["n_samples"] == len(x_fit)
    ev = oob.evaluation_set(forest, x_fit, y_fit, val)
    assert ev.source == "out-of-bag + validation"
    assert ev.mask.shape == (12, len(x_fit) + len(val[0]))
    for t, seed in enumerate(record["seeds"]):
        out_of_bag = np.nonzero(ev.mask[t, : len(x_fit)])[0]
        assert np.array_equal(
            out_of_bag, _generate_unsampled_indices(seed, len(x_fit), len(x_fit), None)
        )
    assert ev.mask[:, len(x_fit) :].all()  # every validation row judges every member
    assert np.array_equal(ev.x[len(x_fit) :], val[0])


def test_other_rows_or_a_model_fitted_elsewhere_fall_back_to_validation(wine_forest):
    forest, (x_fit, y_fit), val = wine_forest
    other = oob.evaluation_set(forest, x_fit[::-1], y_fit[::-1], val)
    assert other.source == "validation (the training rows differ from those it was fitted on)"
    assert other.mask.all() and np.array_equal(other.x, val[0])
    # a model fitted elsewhere (as load_model returns it) has no bootstrap record
    elsewhere = from_sklearn(
        RandomForestClassifier(n_estimators=5, random_state=0).fit(x_fit, y_fit)
    )
    out = prune(
        elsewhere,
        PruneOptions(method="reduced_error", ensemble="greedy", choose_on="oob"),
        (x_fit, y_fit),
        val,
    )
    assert [s["parameters"]["judged_on"] for s in out.steps[:2]] == [
        "validation (no bootstrap record (a model read from a file, or one not bagged))"
    ] * 2


def test_prune_on_oob_records_its_rows_and_drops_the_record(wine_forest):
    forest, fit, val = wine_forest
    options = PruneOptions(
        method="reduced_error", reduced_error_rule="better", ensemble="greedy", choose_on="oob"
    )
    out = prune(forest, options, fit, val)
    tree_step, ensemble_step = out.steps
    assert tree_step["parameters"]["judged_on"] == "out-of-bag + validation"
    assert tree_step["parameters"]["rule"] == "better"
    assert ensemble_step["parameters"]["judged_on"] == "out-of-bag + validation"
    assert 4 <= ensemble_step["members_after"] <= 12  # at least ceil(0.3 * 12)
    kept = ensemble_step["parameters"]["order"]
    assert [t.n_nodes for t in out.forest.trees] == [
        prune(forest, PruneOptions(**{**options.__dict__, "ensemble": "none"}), fit, val)
        .forest.trees[i]
        .n_nodes
        for i in kept
    ]
    assert oob.BOOTSTRAP_KEY not in out.forest.meta  # its members are not the record's


# Hand-made outputs: 3 members, 4 samples, 2 classes, truth 0, 0, 1, 1.
# A says class 0 (one-hot) everywhere and votes on samples 0, 1; B is right (one-hot)
# and votes on 0, 1, 2; C is wrong (0.6) everywhere and votes on all.
OUTPUTS = np.array(
    [
        [[1, 0]] * 4,
        [[1, 0], [1, 0], [0, 1], [0, 1]],
        [[0.4, 0.6], [0.4, 0.6], [0.6, 0.4], [0.6, 0.4]],
    ]
)
TRUTH = np.array([0, 0, 1, 1])
MASK = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]], dtype=bool)


def test_greedy_with_a_vote_mask_scores_each_member_on_its_own_rows():
    # unmasked: B is right on all 4 (A 2/4, C 0/4); then B+C is right on all 4
    # ((1.4, 0.6) or (0.6, 1.4)) where B+A ties (1, 1) on samples 2, 3 and takes
    # class 0: 2/4. Order B, C, A.
    assert greedy_order(OUTPUTS, TRUTH, "classification").tolist() == [1, 2, 0]
    # masked: A is right on its 2 rows, B on its 3 (both 1.0, probability 1.0): the
    # lower index, A. A+B: right on samples 0-2, sample 3 has no vote: 3/3. A+C: on 2
    # C alone votes class 0 (wrong), on 3 too: 2/4. Order A, B, C.
    order = greedy_order(OUTPUTS, TRUTH, "classification", MASK)
    assert order.tolist() == [0, 1, 2]
    primary, _ = prefix_scores(OUTPUTS, order, TRUTH, "classification", MASK)
    # all three: sample 3 has C's vote only (wrong), the rest are right: 3/4
    assert primary.tolist() == [1.0, 1.0, 0.75]


def test_the_conservative_reduced_error_rule_keeps_ties():
    # only (0,0) label 0: node 2 is reached by no sample (0 errors either way) and the
    # root is right as a leaf and as a subtree: "not_worse" prunes both, "better" neither.
    x = np.array([[0, 0]], dtype=np.float32)
    assert reduced_error_prune(_three_leaves(), x, [0], "classification", (0, 1)).n_nodes == 1
    kept = reduced_error_prune(_three_leaves(), x, [0], "classification", (0, 1), strict=True)
    assert kept.n_nodes == 5
    # a leaf strictly better still prunes: (0,0):0, (1,0):1, (1,1):1 (see test_trees_prune)
    x = np.array([[0, 0], [1, 0], [1, 1]], dtype=np.float32)
    pruned = reduced_error_prune(_three_leaves(), x, [0, 1, 1], "classification", (0, 1), True)
    assert pruned.n_nodes == 3


def test_a_bad_member_share_is_refused():
    with pytest.raises(RecipeError, match=r"trees.prune.min_members_fraction is 0; use a number"):
        PruneOptions(min_members_fraction=0)
    with pytest.raises(RecipeError, match=r"trees.prune.choose_on is 'test'; use one of"):
        PruneOptions(choose_on="test")
