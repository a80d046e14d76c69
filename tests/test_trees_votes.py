"""Leaves as votes ([trees.prune] leaves = "votes"), the pruning a plain `run` applies
by default (leaves quantized: tests/test_trees_quantized.py), the built-in data sets'
feature names in a tree report, and the tree validation printout naming its baseline
the unpruned model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier

from edgeprune.errors import RecipeError
from edgeprune.trees import cexport
from edgeprune.trees.model import CLASSIFICATION, Forest, Tree, from_sklearn
from edgeprune.trees.prune import ENSEMBLE_FLOOR, PruneOptions, default_size, prune
from edgeprune.trees.prune_ensemble import vote_leaves
from edgeprune.trees.recipe import PRUNE_DEFAULTS, parse_section

GCC = shutil.which("gcc") is not None


def _stump(left_value, right_value) -> Tree:
    """x[0] <= 0.5 goes left; two leaves with the given class fractions (the root's
    are even over the classes)."""
    k = len(left_value)
    return Tree(
        left=np.array([1, -1, -1], dtype=np.int32),
        right=np.array([2, -1, -1], dtype=np.int32),
        feature=np.array([0, -2, -2], dtype=np.int32),
        threshold=np.array([0.5, -2.0, -2.0]),
        value=np.array([[1 / k] * k, left_value, right_value], dtype=np.float64),
        n_samples=np.array([10, 5, 5]),
        impurity=np.array([0.5, 0.3, 0.3]),
        weight=np.array([10.0, 5.0, 5.0]),
    )


def _forest(*trees) -> Forest:
    """A classifier of ``trees``, classes 0 .. k-1."""
    k = trees[0].value.shape[1]
    return Forest(CLASSIFICATION, tuple(trees), 1, tuple(range(k)), "random_forest")


def test_vote_leaves_turn_fractions_into_the_majority_class_first_on_ties():
    voted = vote_leaves(_forest(_stump([0.4, 0.6], [0.5, 0.5])))
    tree = voted.trees[0]
    assert tree.value[1].tolist() == [0.0, 1.0]
    assert tree.value[2].tolist() == [1.0, 0.0]  # a tie goes to the first class, as argmax
    assert tree.value[0].tolist() == [0.5, 0.5]  # internal nodes keep their values
    assert tree.threshold.tolist() == [0.5, -2.0, -2.0]


def test_a_forest_votes_by_majority_where_the_soft_vote_differed():
    # two members lean to class 1 at 0.6, one is sure of class 0: the soft vote sums
    # [1.8, 1.2] (class 0), the majority says class 1
    lean, sure = _stump([0.4, 0.6], [0.4, 0.6]), _stump([1.0, 0.0], [1.0, 0.0])
    forest = _forest(lean, lean, sure)
    x = np.array([[0.0], [1.0]], dtype=np.float32)
    assert forest.predict(x).tolist() == [0, 0]
    assert vote_leaves(forest).predict(x).tolist() == [1, 1]


def test_a_single_tree_predicts_the_same_after_voting():
    x, y = load_wine(return_X_y=True)
    from sklearn.tree import DecisionTreeClassifier

    tree = from_sklearn(DecisionTreeClassifier(random_state=0).fit(x[::2], y[::2]))
    assert np.array_equal(vote_leaves(tree).predict(x), tree.predict(x))


def test_the_votes_step_records_its_validation_cost():
    x, y = load_wine(return_X_y=True)
    forest = from_sklearn(RandomForestClassifier(n_estimators=12, random_state=0).fit(x, y))
    out = prune(forest, PruneOptions(method="none", leaves="votes"), val_data=(x[1::2], y[1::2]))
    (step,) = out.steps
    assert step["name"] == "votes" and step["nodes_before"] == step["nodes_after"]
    voted = vote_leaves(forest)
    assert step["validation_after"] == pytest.approx(np.mean(voted.predict(x[1::2]) == y[1::2]))
    assert np.array_equal(out.forest.predict(x), voted.predict(x))


def test_the_c_of_a_voted_forest_holds_no_fraction_rows():
    x, y = load_wine(return_X_y=True)
    shallow = RandomForestClassifier(n_estimators=12, max_depth=3, random_state=0)
    forest = from_sklearn(shallow.fit(x, y))  # impure leaves: rows of fractions
    soft = cexport.generate(forest, "m")["m_model.c"]
    hard = cexport.generate(vote_leaves(forest), "m")["m_model.c"]
    assert "m_leaf_value[1] = {\n    0\n}" in hard  # the empty table's one placeholder
    assert "m_leaf_value[1] =" not in soft
    assert len(hard) < len(soft)


@pytest.mark.skipif(not GCC, reason="needs gcc (Debian: build-essential)")
def test_the_host_c_of_a_voted_forest_equals_its_predictions_even_on_ties():
    from edgeprune.trees.hostrun import compare

    x, y = load_wine(return_X_y=True)
    fitted = RandomForestClassifier(n_estimators=4, max_depth=2, random_state=1).fit(x, y)
    voted = vote_leaves(from_sklearn(fitted))
    totals = sum(t.value[t.apply(x)] for t in voted.trees)
    assert (np.sort(totals, axis=1)[:, -1] == np.sort(totals, axis=1)[:, -2]).any()  # ties
    agreement = compare(voted, x)
    assert (agreement.n_equal, agreement.n) == (len(x), len(x))


def test_leaves_is_a_checked_recipe_key():
    with pytest.raises(RecipeError, match="trees.prune.leaves is 'soft'; use one of fractions"):
        parse_section({"prune": {"leaves": "soft"}})
    assert parse_section({"prune": {"leaves": "fractions"}}).prune_options().leaves == "fractions"


def test_a_plain_run_prunes_by_the_defaults_and_a_set_key_overrides_only_itself():
    assert parse_section({}).prune_options() == PruneOptions(**PRUNE_DEFAULTS)
    assert PRUNE_DEFAULTS["method"] != "none"
    ccp = parse_section({"prune": {"method": "ccp"}}).prune_options()
    assert (ccp.method, ccp.ensemble, ccp.leaves) == ("ccp", "greedy", "quantized")
    assert parse_section({"prune": {"members": 5}}).prune_options().members == 5
    section = parse_section({"prune": {"ensemble": "none"}})
    assert parse_section(section.to_dict()) == section  # the round trip keeps only set keys


def test_the_default_member_count_keeps_at_least_the_floor():
    scores = [1.0] * 100  # a single lucky member scores as the whole forest on validation
    assert default_size(scores, 100) == int(np.ceil(ENSEMBLE_FLOOR * 100)) - 1
    assert default_size([0.5] * 9 + [0.9], 10) == 9  # only the whole reaches its own score


def test_built_in_sets_name_their_features():
    from sklearn import datasets

    from edgeprune.data import load_dataset

    for name in ("wine", "breast_cancer"):
        expected = getattr(datasets, f"load_{name}")().feature_names
        assert load_dataset(name).feature_names == tuple(expected)
    digits = load_dataset("digits").feature_names
    assert len(digits) == 64 and digits[:2] == ("pixel_0_0", "pixel_0_1")


@pytest.mark.skipif(not GCC, reason="needs gcc (Debian: build-essential)")
def test_a_tree_run_reports_names_and_validates_against_the_unpruned_model(tmp_path):
    from edgeprune.presentation.html import refresh_run_html
    from edgeprune.presentation.validation import TREE_MODEL, format_result
    from edgeprune.recipe import build_recipe
    from edgeprune.trees import pipeline
    from edgeprune.trees.run_stages import PRUNED_JSON
    from edgeprune.trees.validate import validate_tree_run

    assert TREE_MODEL == PRUNED_JSON
    recipe = build_recipe({})  # the defaults: 100 trees pruned to 25 members
    out = str(tmp_path / "run")
    result = pipeline.run(model="random_forest", data="wine", recipe=recipe, out=out, page=False)
    trees = result.report.trees
    assert trees.feature_names == list(load_wine().feature_names)
    assert [s["name"] for s in trees.steps] == ["reduced_error", "greedy", "quantized"]
    refresh_run_html(out)
    page = (tmp_path / "run" / "report.html").read_text()
    top = int(np.argmax(trees.pruned.importance["permutation_mean"]))
    assert load_wine().feature_names[trees.pruned.importance["features"][top]] in page
    from edgeprune.trees.summary import format_tree_run

    rows = format_tree_run(result).splitlines()
    assert any(r.startswith("unpruned ") for r in rows) and not any("baseline" in r for r in rows)
    text = format_result(validate_tree_run(out, "host"))
    assert "unpruned model" in text and "float baseline" not in text
