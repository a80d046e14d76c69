"""Quantized leaves ([trees.prune] leaves = "quantized", the default of a run): the
soft vote kept, each leaf's class fractions in 256ths, a byte per class in the C,
whose integer sums are the model's exactly."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from test_trees_votes import _forest, _stump  # tests/ is on sys.path

from edgeprune.errors import BadInputError
from edgeprune.trees import cexport
from edgeprune.trees.model import Tree, from_sklearn
from edgeprune.trees.prune import PruneOptions, prune
from edgeprune.trees.prune_ensemble import LEAF_SCALE, quantize_leaves, vote_leaves
from edgeprune.trees.recipe import PRUNE_DEFAULTS, parse_section

GCC = shutil.which("gcc") is not None
ARM_GCC = shutil.which("arm-none-eabi-gcc") is not None


def _units(tree: Tree, node: int) -> list[int]:
    return (tree.value[node] * LEAF_SCALE).astype(int).tolist()


def test_fractions_round_to_256ths_by_largest_remainder_first_class_on_ties():
    tree = quantize_leaves(_forest(_stump([0.4, 0.6], [1.0, 0.0]))).trees[0]
    # 102.4 and 153.6: floor 102 + 153 = 255, the larger remainder (0.6) gets the unit
    assert _units(tree, 1) == [102, 154]
    assert tree.value[2].tolist() == [1.0, 0.0]  # a pure leaf stays one-hot
    assert tree.value[0].tolist() == [0.5, 0.5]  # internal nodes keep their values
    thirds = quantize_leaves(_forest(_stump([1 / 3] * 3, [0.2, 0.3, 0.5]))).trees[0]
    assert _units(thirds, 1) == [86, 85, 85]  # equal remainders: the first class
    assert _units(thirds, 2) == [51, 77, 128]  # 51.2, 76.8, 128: the 0.8 gets it
    for node in (1, 2):
        assert sum(_units(thirds, node)) == LEAF_SCALE  # every leaf still weighs one vote


def test_quantized_leaves_keep_the_soft_vote_where_votes_lose_it():
    # two members lean to class 1 at 0.6, one is sure of class 0: the soft vote sums
    # [1.8, 1.2] (class 0), the majority says class 1
    lean, sure = _stump([0.4, 0.6], [0.4, 0.6]), _stump([1.0, 0.0], [1.0, 0.0])
    forest = _forest(lean, lean, sure)
    x = np.array([[0.0], [1.0]], dtype=np.float32)
    assert forest.predict(x).tolist() == [0, 0]
    assert vote_leaves(forest).predict(x).tolist() == [1, 1]
    quantized = quantize_leaves(forest)
    assert quantized.predict(x).tolist() == [0, 0]
    assert quantized.meta["leaf_scale"] == LEAF_SCALE


def test_the_c_stores_a_byte_per_class_and_adds_256_for_a_pure_leaf():
    forest = quantize_leaves(_forest(_stump([0.4, 0.6], [1.0, 0.0]), _stump([0.5, 0.5], [0, 1.0])))
    c = cexport.generate(forest, "m")["m_model.c"]
    assert "static const uint8_t m_leaf_value[4] = {\n    102, 154, 128, 128\n}" in c
    assert "out[leaf] += 256u;" in c
    h = cexport.generate(forest, "m")["m_model.h"]
    assert "typedef uint32_t m_score_t;" in h and "summed x 256, not divided" in h
    # the same rows with dtype int16 (no 65535ths: the bytes are already whole numbers)
    assert "uint8_t m_leaf_value[4]" in cexport.generate(forest, "m", "int16")["m_model.c"]


def test_a_scale_that_outlived_its_leaves_is_not_trusted():
    forest = _forest(_stump([0.4, 0.6], [1.0, 0.0]), _stump([0.3, 0.7], [0, 1.0]))
    stale = replace(forest, meta={"leaf_scale": LEAF_SCALE})  # 0.3 is no whole 256th
    c = cexport.generate(stale, "m")["m_model.c"]
    assert "static const float m_leaf_value" in c and "256u" not in c
    # pruning again drops the scale (its leaves change) unless it quantizes again
    x, y = np.array([[0.0], [1.0]] * 4), np.array([0, 1] * 4)
    again = prune(quantize_leaves(forest), PruneOptions(method="reduced_error"), val_data=(x, y))
    assert "leaf_scale" not in again.forest.meta


@pytest.mark.skipif(not GCC, reason="needs gcc (Debian: build-essential)")
@pytest.mark.parametrize("dtype", ["float", "int16"])
def test_the_host_c_of_quantized_leaves_equals_the_model_even_on_ties(dtype):
    from edgeprune.trees.hostrun import compare

    x, y = load_wine(return_X_y=True)
    fitted = RandomForestClassifier(n_estimators=6, max_depth=3, random_state=1).fit(x, y)
    quantized = quantize_leaves(from_sklearn(fitted))
    totals = sum(t.value[t.apply(x)] for t in quantized.trees)
    assert (totals % 1 != 0).any()  # impure leaves: rows of bytes are summed
    # and a hand-made tie: two pure members of different classes sum 256 each
    tie = quantize_leaves(_forest(_stump([0, 1.0], [0, 1.0]), _stump([1.0, 0], [1.0, 0])))
    assert tie.predict(np.zeros((1, 1))).tolist() == [0]
    assert compare(tie, np.zeros((1, 1), np.float32)).n_equal == 1
    agreement = compare(quantized, x, dtype=dtype)
    assert (agreement.n_equal, agreement.n) == (len(x), len(x))


@pytest.mark.skipif(not ARM_GCC, reason="needs arm-none-eabi-gcc (Debian: gcc-arm-none-eabi)")
def test_quantized_rows_take_less_flash_than_fractions_and_more_than_votes():
    from edgeprune.trees.compile import compiled_size

    x, y = load_wine(return_X_y=True)
    shallow = RandomForestClassifier(n_estimators=12, max_depth=3, random_state=0)
    forest = from_sklearn(shallow.fit(x, y))  # impure leaves: rows of fractions
    flash = {
        how: compiled_size(cexport.generate(f, "m"), "m_predict", "cortex-m4f").flash_bytes
        for how, f in (
            ("fractions", forest),
            ("quantized", quantize_leaves(forest)),
            ("votes", vote_leaves(forest)),
        )
    }
    assert flash["votes"] < flash["quantized"] < flash["fractions"]


@pytest.mark.parametrize(
    "leaves, change, what",
    [("votes", vote_leaves, "votes"), ("quantized", quantize_leaves, "fractions")],
)
def test_a_regressor_keeps_its_leaf_values(leaves, change, what):
    x, y = load_wine(return_X_y=True)
    forest = from_sklearn(RandomForestRegressor(n_estimators=3, random_state=0).fit(x, y * 1.5))
    with pytest.raises(BadInputError, match=f"values, not class {what}"):
        change(forest)
    out = prune(forest, PruneOptions(method="none", leaves=leaves))
    assert out.steps == () and out.forest.trees[0].value is forest.trees[0].value


def test_the_quantized_step_records_its_validation_cost_and_is_the_default():
    x, y = load_wine(return_X_y=True)
    forest = from_sklearn(RandomForestClassifier(n_estimators=12, random_state=0).fit(x, y))
    val = (x[1::2], y[1::2])
    out = prune(forest, PruneOptions(method="reduced_error", leaves="quantized"), val_data=val)
    assert [s["name"] for s in out.steps] == ["reduced_error", "quantized"]
    step = out.steps[-1]
    assert step["parameters"] == {"leaf_scale": LEAF_SCALE}
    assert step["validation_after"] == pytest.approx(np.mean(out.forest.predict(val[0]) == val[1]))
    assert out.forest.meta["leaf_scale"] == LEAF_SCALE
    assert PRUNE_DEFAULTS["leaves"] == "quantized"
    assert parse_section({}).prune_options().leaves == "quantized"


def test_a_single_tree_stores_one_entry_per_class_whatever_its_leaves():
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_wine(return_X_y=True)
    tree = from_sklearn(DecisionTreeClassifier(max_depth=3, random_state=0).fit(x, y))
    leaves = tree.trees[0].value[tree.trees[0].left == -1]
    assert len(np.unique(leaves, axis=0)) > 3  # impure leaves, each its own fractions
    c = {
        how: cexport.generate(f, "m")["m_model.c"]
        for how, f in (
            ("fractions", tree),
            ("votes", vote_leaves(tree)),
            ("q", quantize_leaves(tree)),
        )
    }
    assert "static const uint8_t m_leaf_value[3] =" in c["fractions"]  # wine's 3 classes
    assert c["fractions"] == c["votes"] == c["q"]  # the lone tree predicts its leaf's class
