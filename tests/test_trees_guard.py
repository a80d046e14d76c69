"""The accuracy guard of forest pruning ([trees.prune] max_accuracy_drop) on hand-made
member outputs, its option check, and its step in a pruning run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from sklearn.datasets import load_wine

from edgeprune.errors import RecipeError
from edgeprune.trees.prune import PruneOptions, prune
from edgeprune.trees.prune_guard import accuracy_guard
from edgeprune.trees.recipe import parse_section
from edgeprune.trees.train import TreeOptions, train

RIGHT, SURE_WRONG, LEANS_RIGHT = [1.0, 0.0], [0.0, 1.0], [0.6, 0.4]
TRUTH = np.zeros(4, dtype=np.int64)  # every row is class 0


def _outputs(*members) -> np.ndarray:
    """(members, 4 rows, 2 classes): each member given as its output per row."""
    return np.asarray(members, dtype=np.float64)


FULL = _outputs([RIGHT] * 4, [RIGHT] * 4, [RIGHT] * 4)  # the unpruned forest: no error


def _pruned(third):
    # member 0, pruned, is sure of the wrong class on rows 0 and 1
    first = [SURE_WRONG, SURE_WRONG, RIGHT, RIGHT]
    return _outputs(first, [LEANS_RIGHT] * 4, [third] * 4)


def test_guard_grows_the_member_count_along_the_order_until_within_the_limit():
    got = accuracy_guard(FULL, _pruned(RIGHT), [0, 1, 2], 1, TRUTH, "classification", 0.1)
    # one member: rows 0-1 wrong (0.5); two: 0.6 against 1.0, still wrong; three: right
    assert (got.members, got.restored) == (3, ())
    assert got.drop_before == pytest.approx(0.5)
    assert got.drop_after == pytest.approx(0.0)


def test_guard_restores_unpruned_members_when_every_member_is_not_enough():
    got = accuracy_guard(FULL, _pruned(LEANS_RIGHT), [0, 1, 2], 1, TRUTH, "classification", 0.1)
    # all three members: 1.2 against 1.0 on rows 0-1; member 0 unpruned fixes them
    assert (got.members, got.restored) == (3, (0,))
    assert (got.drop_before, got.drop_after) == (pytest.approx(0.5), pytest.approx(0.0))


def test_guard_keeps_the_pruning_within_the_limit_and_says_what_the_drop_is():
    got = accuracy_guard(FULL, _pruned(RIGHT), [0, 1, 2], 1, TRUTH, "classification", 0.5)
    assert (got.members, got.restored) == (1, ())
    assert got.drop_before == got.drop_after == pytest.approx(0.5)


def test_guard_scores_votes_as_one_hot_leaves():
    # as votes, member 1's 0.6 is a whole vote: 1 against 1 is a tie, won by class 0
    got = accuracy_guard(
        FULL, _pruned(LEANS_RIGHT), [0, 1, 2], 1, TRUTH, "classification", 0.1, votes=True
    )
    assert (got.members, got.restored) == (2, ())


def test_guard_leaves_out_rows_the_kept_members_may_not_vote_on():
    mask = np.ones((3, 4), dtype=bool)
    mask[0, :2] = False  # rows 0-1 are in member 0's bootstrap
    got = accuracy_guard(FULL, _pruned(RIGHT), [0, 1, 2], 1, TRUTH, "classification", 0.0, mask)
    assert (got.members, got.restored, got.drop_before) == (1, (), 0.0)


def test_guard_on_a_regressor_limits_the_relative_rise_of_the_mse():
    truth = np.array([1.0, 1.0])
    full = np.full((2, 2, 1), 1.2)  # MSE 0.04
    pruned = full.copy()
    pruned[0] = 1.4  # alone: MSE 0.16, a rise of 3.0; with member 1: 0.09, 1.25
    got = accuracy_guard(full, pruned, [0, 1], 1, truth, "regression", 0.5)
    assert got.drop_before == pytest.approx(3.0)
    assert (got.members, got.restored, got.drop_after) == (2, (0,), pytest.approx(0.0))


@pytest.mark.parametrize("value", [-0.1, 1.5, True, "0.01"])
def test_max_accuracy_drop_outside_zero_to_one_is_refused_naming_the_key(value):
    with pytest.raises(RecipeError, match=r"trees\.prune\.max_accuracy_drop is .*\[0, 1\]"):
        parse_section({"prune": {"max_accuracy_drop": value}}).prune_options()


def test_the_guard_is_off_unless_the_recipe_sets_it():
    assert parse_section({}).prune_options().max_accuracy_drop == 1.0
    section = parse_section({"prune": {"max_accuracy_drop": 0.005}})
    assert section.prune_options().max_accuracy_drop == 0.005


def test_prune_gives_back_the_unpruned_member_the_guard_restored_and_records_it():
    x, y = load_wine(return_X_y=True)
    rows = np.random.RandomState(0).permutation(len(y))
    fit, val = (x[rows[:100]], y[rows[:100]]), (x[rows[100:]], y[rows[100:]])
    forest = train(TreeOptions(n_estimators=20, random_state=0), *fit, "classification")
    options = PruneOptions(method="mdl", ensemble="greedy", members=1, choose_on="oob")
    off = prune(forest, options, fit, val)
    assert "accuracy_guard" not in [s["name"] for s in off.steps]  # 1.0: off
    out = prune(forest, replace(options, max_accuracy_drop=0.0), fit, val)
    names = [s["name"] for s in out.steps]
    assert names == ["mdl", "greedy", "accuracy_guard"]
    guard = out.steps[2]["parameters"]
    # the MDL-pruned member alone is worse than the forest on the choice rows;
    # a fixed member count is kept, so the guard gives the member its whole tree back
    assert guard["drop_before"] > 0 >= guard["drop_after"]
    assert (guard["members_added"], guard["members_restored"]) == (0, 1)
    kept = out.steps[1]["parameters"]["order"][0]
    assert out.forest.trees[0].n_nodes == forest.trees[kept].n_nodes
    assert off.forest.trees[0].n_nodes < forest.trees[kept].n_nodes
