"""Training tree models and reading users' models: options validated, bad data refused,
every format read back exactly, and nothing that can run code loaded unasked."""

from __future__ import annotations

import json
import os
import pickle

import joblib
import numpy as np
import pytest
import skops.io
from sklearn import ensemble, linear_model, tree
from sklearn.datasets import load_breast_cancer, load_wine

from edgeprune.errors import (
    BadInputError,
    DataError,
    InvalidModelError,
    ModelLoadError,
    RecipeError,
    UnsupportedModelError,
)
from edgeprune.trees.load import UnsafeModelError, from_json, load_model, save_json, to_json
from edgeprune.trees.model import from_sklearn
from edgeprune.trees.train import TreeOptions, check_xy, train, validation_split


@pytest.fixture(scope="module")
def wine():
    return load_wine(return_X_y=True)


@pytest.mark.parametrize("kind", ["decision_tree", "random_forest", "extra_trees"])
@pytest.mark.parametrize("task", ["classification", "regression"])
def test_train_equals_the_scikit_learn_estimator_it_describes(kind, task, wine):
    x, y = wine
    target = y if task == "classification" else x[:, 0] + y
    options = TreeOptions(kind=kind, n_estimators=5, max_depth=4, random_state=3)
    forest = train(options, x, target, task)
    classes = {
        ("decision_tree", "classification"): tree.DecisionTreeClassifier,
        ("decision_tree", "regression"): tree.DecisionTreeRegressor,
        ("random_forest", "classification"): ensemble.RandomForestClassifier,
        ("random_forest", "regression"): ensemble.RandomForestRegressor,
        ("extra_trees", "classification"): ensemble.ExtraTreesClassifier,
        ("extra_trees", "regression"): ensemble.ExtraTreesRegressor,
    }
    extra = {} if kind == "decision_tree" else {"n_estimators": 5}
    est = classes[(kind, task)](max_depth=4, random_state=3, max_features="sqrt", **extra)
    est.fit(x, target)
    assert forest.kind == kind and forest.task == task
    assert forest.n_members == (1 if kind == "decision_tree" else 5)
    assert forest.depth <= 4
    assert np.array_equal(forest.predict(x), est.predict(x))
    assert forest.meta["options"]["max_depth"] == 4


def test_train_flattens_samples_with_more_dimensions():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 2, 3))
    y = (x[:, 0, 0] > 0).astype(int)
    forest = train(TreeOptions(kind="decision_tree"), x, y, "classification")
    assert forest.n_features == 6
    assert np.array_equal(forest.predict(x.reshape(60, 6)), y)


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("kind", "gradient_boosting", "use one of decision_tree, random_forest, extra_trees"),
        ("n_estimators", 0, "trees.n_estimators is 0; use a whole number >= 1"),
        ("max_depth", 2.5, "trees.max_depth is 2.5"),
        ("min_samples_leaf", True, "trees.min_samples_leaf is True"),
        ("min_impurity_decrease", -0.1, "use a number >= 0"),
        ("max_features", "all", 'use "sqrt", "log2", a fraction in (0, 1]'),
        ("max_features", 1.5, "trees.max_features is 1.5"),
    ],
)
def test_bad_tree_options_are_refused_naming_the_key(field, value, words):
    with pytest.raises(RecipeError, match="^trees") as err:
        TreeOptions(**{field: value})
    assert words in str(err.value) and "\n" not in str(err.value)


def test_nan_features_are_refused_with_the_column_and_the_fix(wine):
    x, y = wine
    x = x.copy()
    x[5, 3] = np.nan
    with pytest.raises(DataError, match=r"1 NaN or infinite values \(first in column 3\); impute"):
        train(TreeOptions(kind="decision_tree"), x, y, "classification")


def test_categorical_columns_are_refused():
    x = np.array([["red", 1], ["blue", 2]], dtype=object)
    with pytest.raises(DataError, match="categorical or text columns.*encode categories"):
        check_xy(x, [0, 1], "classification")


def test_other_bad_data_is_refused():
    with pytest.raises(DataError, match="3 feature rows but 2 labels"):
        check_xy(np.zeros((3, 2)), [0, 1], "classification")
    with pytest.raises(DataError, match="single class"):
        train(TreeOptions(kind="decision_tree"), np.zeros((4, 2)), [1, 1, 1, 1], "classification")
    with pytest.raises(DataError, match="task is 'ranking'"):
        check_xy(np.zeros((3, 2)), [0, 1, 0], "ranking")


def test_validation_split_is_stratified_deterministic_and_disjoint(wine):
    x, y = wine
    a = validation_split(x, y, "classification", 0.2, seed=1)
    b = validation_split(x, y, "classification", 0.2, seed=1)
    x_fit, y_fit, x_val, y_val = a
    assert all(np.array_equal(p, q) for p, q in zip(a, b, strict=True))
    assert len(x_val) == round(len(x) * 0.2) and len(x_fit) + len(x_val) == len(x)
    full = np.bincount(y) / len(y)
    assert np.allclose(np.bincount(y_val) / len(y_val), full, atol=0.03)
    rows = {tuple(r) for r in x_fit}
    assert not any(tuple(r) in rows for r in x_val)
    with pytest.raises(DataError, match="use a number in"):
        validation_split(x, y, "classification", 1.0)


# ---------------------------------------------------------------- reading users' models


@pytest.fixture(scope="module")
def forest_model(wine):
    x, y = wine
    return ensemble.RandomForestClassifier(6, max_depth=5, random_state=0).fit(x, y)


def test_json_round_trip_is_exact(tmp_path, wine, forest_model):
    x, _ = wine
    forest = from_sklearn(forest_model)
    path = str(tmp_path / "model.json")
    save_json(forest, path)
    back = load_model(path)
    for a, b in zip(forest.trees, back.trees, strict=True):
        for name in ("left", "right", "feature", "threshold", "value", "weight", "n_samples"):
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert back.classes == forest.classes and back.kind == "random_forest"
    assert np.array_equal(back.predict(x), forest_model.predict(x))
    assert [p for p in os.listdir(tmp_path)] == ["model.json"]  # no temporary left


def test_regression_json_round_trip(tmp_path, wine):
    x, y = wine
    est = tree.DecisionTreeRegressor(max_depth=5, random_state=0).fit(x, x[:, 1])
    path = str(tmp_path / "r.json")
    save_json(from_sklearn(est), path)
    assert np.array_equal(load_model(path).predict(x), est.predict(x))


@pytest.mark.parametrize(
    "damage, words",
    [
        (lambda d: d.update(schema="other/2"), "schema is not 'edgeprune-trees/1'"),
        (lambda d: d.update(task="ranking"), "task 'ranking'"),
        (lambda d: d["trees"][0]["left"].__setitem__(0, 999), "child index is out of range"),
        (lambda d: d["trees"][0]["left"].__setitem__(0, 0), "child index is out of range"),
        (lambda d: d["trees"][0]["feature"].__setitem__(0, 40), "split feature is outside 0..12"),
        (lambda d: d["trees"][0]["value"].pop(), "arrays are not all|value has shape"),
        (lambda d: d["trees"][0].pop("threshold"), "lacks one of"),
        (lambda d: d["trees"][0]["threshold"].__setitem__(0, "x"), "threshold is not an array"),
        (lambda d: d.update(classes=[1]), "two or more classes"),
    ],
)
def test_damaged_json_is_refused_naming_the_rule(tmp_path, forest_model, damage, words):
    d = to_json(from_sklearn(forest_model))
    damage(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(InvalidModelError, match=words) as err:
        load_model(str(path))
    assert "\n" not in str(err.value)


def test_json_with_a_shared_node_is_refused(forest_model):
    d = to_json(from_sklearn(forest_model))
    t = d["trees"][0]
    t["right"][0] = t["left"][0]  # both children of the root are the same subtree
    with pytest.raises(InvalidModelError, match="reached twice"):
        from_json(d)


def test_skops_file_is_read(tmp_path, wine, forest_model):
    x, _ = wine
    path = str(tmp_path / "model.skops")
    skops.io.dump(forest_model, path)
    forest = load_model(path)
    assert np.array_equal(forest.predict(x), forest_model.predict(x))
    assert forest.meta["params"]["n_estimators"] == 6


def test_skops_file_of_another_estimator_is_refused_by_name(tmp_path, wine):
    x, y = wine
    path = str(tmp_path / "linear.skops")
    skops.io.dump(linear_model.Ridge().fit(x, y), path)
    with pytest.raises(UnsupportedModelError) as err:
        load_model(path)
    message = str(err.value)
    assert "sklearn.linear_model._ridge.Ridge" in message
    assert "edgeprune handles DecisionTreeClassifier, DecisionTreeRegressor" in message


def test_pickle_is_refused_without_unsafe_load_and_says_why(tmp_path, wine, forest_model):
    x, _ = wine
    for name in ("model.pkl", "model.joblib"):
        path = str(tmp_path / name)
        joblib.dump(forest_model, path)
        with pytest.raises(UnsafeModelError) as err:
            load_model(path)
        assert str(err.value) == (
            f"{path}: a pickle can run any code when loaded: save it with skops "
            "(skops.io.dump) or pass --unsafe-load if you trust this file"
        )
        assert np.array_equal(
            load_model(path, unsafe_load=True).predict(x), forest_model.predict(x)
        )


class _RunsCode:
    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_refused_pickle_is_never_opened(tmp_path):
    """The refusal comes before unpickling: a pickle that would create a folder does not."""
    marker = tmp_path / "was-run"
    payload = _RunsCode()
    payload.marker = str(marker)
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafeModelError):
        load_model(str(path))
    assert not marker.exists()


def test_unsafe_pickle_of_another_type_is_refused_by_name(tmp_path):
    x, y = load_breast_cancer(return_X_y=True)
    path = str(tmp_path / "lr.pkl")
    joblib.dump(linear_model.LogisticRegression(max_iter=50).fit(x[:, :3], y), path)
    with pytest.raises(
        UnsupportedModelError, match="holds a LogisticRegression; edgeprune handles"
    ):
        load_model(path, unsafe_load=True)


def test_missing_unknown_and_multi_output_models_are_refused(tmp_path, wine):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(str(tmp_path / "none.json"))
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"\.onnx is none of them"):
        load_model(str(other))
    x, y = wine
    multi = tree.DecisionTreeRegressor(max_depth=2).fit(x, np.stack([y, y], axis=1))
    path = str(tmp_path / "multi.skops")
    skops.io.dump(multi, path)
    with pytest.raises(UnsupportedModelError, match="multi-output trees are not handled"):
        load_model(path)
    broken = tmp_path / "broken.skops"
    broken.write_bytes(b"not a zip")
    with pytest.raises(InvalidModelError, match="is not a skops file"):
        load_model(str(broken))
    assert issubclass(UnsafeModelError, BadInputError)
