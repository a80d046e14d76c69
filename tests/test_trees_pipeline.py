"""The tree run as a library: the [trees] recipe, inputs checked before anything is
written, the tree budget rules on hand-set evidence, the run's report read back as
typed entries, the splits that choose and measure, the feature drop, and a failure
part way leaving nothing behind. End to end through the CLI: test_trees_cli.py."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest

from edgeprune import report
from edgeprune.errors import BadInputError, BudgetError, DataError, RecipeError
from edgeprune.estimates.latency import LatencyEstimate
from edgeprune.recipe import build_recipe, load_recipe
from edgeprune.target import load_target
from edgeprune.trees import check as tree_check
from edgeprune.trees import pipeline
from edgeprune.trees.recipe import parse_section

ARM = shutil.which("arm-none-eabi-gcc") is not None
REQUIRED = os.environ.get("EDGEPRUNE_REQUIRE_ARM_GCC") == "1"  # .ci/run: fail, do not skip
needs_arm = pytest.mark.skipif(
    not (ARM or REQUIRED), reason="needs arm-none-eabi-gcc (Debian: gcc-arm-none-eabi)"
)
SMALL = {"trees": {"n_estimators": 8}}


def _recipe(**sections):
    values = {**SMALL, **sections}
    return build_recipe(values)


def _npz(path, **arrays):
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    data = {"x_train": x[:400], "y_train": y[:400], "x_test": x[400:], "y_test": y[400:]}
    data.update(arrays)
    np.savez(path, **data)
    return str(path)


# ---------------------------------------------------------------- the recipe


def test_trees_section_maps_onto_tree_and_prune_options_and_reads_back_its_own_dict():
    recipe = _recipe(
        trees={
            "kind": "extra_trees",
            "n_estimators": 7,
            "max_features": "none",
            "keep_features": 5,
            "prune": {"method": "ccp", "ccp_rule": "1se", "ensemble": "greedy", "goal": "fit"},
        },
        seed=3,
    )
    options = recipe.trees.tree_options(None, recipe.seed)
    assert (options.kind, options.n_estimators, options.max_features) == ("extra_trees", 7, None)
    assert options.random_state == 3  # the recipe's seed unless [trees] sets random_state
    assert recipe.trees.tree_options("decision_tree", 0).kind == "decision_tree"  # --model wins
    prune = recipe.trees.prune_options()
    assert (prune.method, prune.ccp_rule, prune.ensemble) == ("ccp", "1se", "greedy")
    assert recipe.trees.goal == "fit" and recipe.trees.keep_features == 5
    assert build_recipe(recipe.to_dict()) == recipe


@pytest.mark.parametrize(
    "table, message",
    [
        ({"n_estimator": 5}, "unknown key 'trees.n_estimator'; did you mean 'n_estimators'?"),
        ({"prune": {"methd": "ccp"}}, "unknown key 'trees.prune.methd'; did you mean 'method'?"),
        ({"n_estimators": 0}, "trees.n_estimators is 0; use a whole number >= 1"),
        ({"prune": {"method": "cart"}}, "trees.prune.method is 'cart'; use one of none, pre,"),
        ({"prune": {"goal": "small"}}, "trees.prune.goal is 'small'; use one of none, fit"),
        ({"keep_features": 0}, "trees.keep_features is 0; use a feature count >= 1"),
        ({"dtype": "int8"}, "trees.dtype is 'int8'; use one of auto, float, int16"),
        ({"validation_fraction": 1.5}, "trees.validation_fraction is 1.5; use a number in (0, 1)"),
        ({"prune": 3}, "'trees.prune' must be a table ([trees.prune])"),
    ],
)
def test_a_bad_trees_key_or_value_is_refused_naming_it(table, message):
    with pytest.raises(RecipeError) as err:
        parse_section(table)
    assert message in str(err.value)


def test_a_recipe_file_with_trees_tables_loads(tmp_path):
    path = tmp_path / "r.toml"
    path.write_text('[trees]\nmax_depth = 4\n[trees.prune]\nmethod = "mdl"\n')
    recipe = load_recipe(path)
    assert recipe.trees.tree_options(None, 0).max_depth == 4
    assert recipe.trees.prune_options().method == "mdl"


# ---------------------------------------------------------------- inputs


def test_task_is_inferred_from_the_labels_unless_named():
    assert pipeline.infer_task(np.array([0, 1, 1]), "auto") == "classification"
    assert pipeline.infer_task(np.array([0.0, 2.0, 1.0]), "auto") == "classification"
    assert pipeline.infer_task(np.array([0.5, 2.0, 1.0]), "auto") == "regression"
    assert pipeline.infer_task(np.arange(1000.0), "auto") == "regression"  # too many values
    assert pipeline.infer_task(np.array([0, 1]), "regression") == "regression"


def test_tree_models_are_told_from_keras_models_by_name_or_suffix():
    assert pipeline.is_tree_model("random_forest") and pipeline.is_tree_model("m.SKOPS")
    assert pipeline.is_tree_model("a/b.json") and pipeline.is_tree_model("m.pkl")
    assert not pipeline.is_tree_model("digits_cnn") and not pipeline.is_tree_model("m.keras")
    assert not pipeline.is_tree_model(None)


def test_inputs_hold_out_validation_from_x_train_and_keep_the_test_split_apart(tmp_path):
    inp = pipeline.resolve_inputs(None, "breast_cancer", _recipe(), str(tmp_path / "o"), None)
    assert inp.task == "classification" and inp.kind == "random_forest"
    assert len(inp.val[1]) == round(0.2 * 455) and len(inp.fit[1]) == 455 - len(inp.val[1])
    assert len(inp.test[1]) == 114  # breast cancer's fixed 20 % test split
    fit_rows = {r.tobytes() for r in inp.fit[0].astype(np.float32)}
    assert not any(r.tobytes() in fit_rows for r in inp.val[0].astype(np.float32))
    assert not os.path.exists(tmp_path / "o")  # nothing written


def test_data_with_its_own_x_val_is_used_as_the_validation_split(tmp_path):
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    path = _npz(tmp_path / "d.npz", x_val=x[300:400], y_val=y[300:400])
    inp = pipeline.resolve_inputs(None, path, _recipe(), str(tmp_path / "o"), None)
    assert inp.val_split == "validation (x_val of the data)"
    assert len(inp.fit[1]) == 400 and len(inp.val[1]) == 100


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x_train": np.full((400, 30), np.nan)}, "NaN or infinite"),
        ({"x_train": np.array([["a"] * 30] * 400)}, "must be numeric"),
    ],
)
def test_data_trees_cannot_take_is_refused_before_anything_is_written(tmp_path, arrays, message):
    path = _npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        pipeline.resolve_inputs(None, path, _recipe(), str(tmp_path / "o"), None)
    assert not os.path.exists(tmp_path / "o")


def test_a_pickle_is_refused_unread_without_unsafe_load(tmp_path):
    model = tmp_path / "m.pkl"
    model.write_bytes(b"\x80\x04 never unpickled")
    with pytest.raises(BadInputError, match="a pickle can run any code when loaded"):
        pipeline.resolve_inputs(str(model), "breast_cancer", _recipe(), str(tmp_path / "o"), None)


def test_an_estimator_that_is_not_a_tree_model_is_refused_naming_the_handled_ones(tmp_path):
    import skops.io
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    x, y = load_breast_cancer(return_X_y=True)
    model = tmp_path / "lr.skops"
    skops.io.dump(LogisticRegression(max_iter=50).fit(x[:100], y[:100]), model)
    with pytest.raises(BadInputError) as err:
        pipeline.resolve_inputs(str(model), "breast_cancer", _recipe(), str(tmp_path / "o"), None)
    text = str(err.value)
    assert "LogisticRegression" in text and "RandomForestClassifier" in text


def test_a_user_model_must_read_the_data_s_features_and_cannot_be_refitted(tmp_path):
    from sklearn.tree import DecisionTreeClassifier

    from edgeprune.trees.load import save_json
    from edgeprune.trees.model import from_sklearn

    rng = np.random.default_rng(0)
    model = tmp_path / "m.json"
    save_json(
        from_sklearn(DecisionTreeClassifier().fit(rng.random((50, 4)), rng.integers(0, 2, 50))),
        str(model),
    )
    with pytest.raises(DataError, match="reads 4 features but the data has 30"):
        pipeline.resolve_inputs(str(model), "breast_cancer", _recipe(), str(tmp_path / "o"), None)
    recipe = _recipe(trees={"keep_features": 3})
    with pytest.raises(RecipeError, match="trees.keep_features refits the model"):
        pipeline.resolve_inputs(str(model), "breast_cancer", recipe, str(tmp_path / "o"), None)


def test_the_fit_goal_without_a_target_is_refused():
    recipe = _recipe(trees={"prune": {"method": "ccp", "goal": "fit"}})
    with pytest.raises(RecipeError, match=r"name the device \(--target NAME\)"):
        pipeline.resolve_inputs(None, "wine", recipe, None, None)


def test_a_target_without_a_c_compiler_is_refused_naming_what_to_install():
    from edgeprune.trees.compile import CompilerMissingError

    with pytest.raises(CompilerMissingError, match="xtensa-esp-elf-gcc"):
        pipeline.resolve_inputs(None, "wine", _recipe(), None, "esp32")


# ---------------------------------------------------------------- the rules


def _evidence(flash: int, ram: int, stack: int = 24, ms: float = 0.01):
    est = LatencyEstimate(
        "nucleo_l4r5zi",
        "tree-walk",
        "derived",
        "counted",
        120_000_000,
        1,
        ms,
        None,
        None,
        (),
        error_band=1.0,
        error_band_basis="not on a board",
    )
    return tree_check.TreeEvidence(
        "firmware/edgeprune_model.c",
        flash,
        ram,
        stack,
        "arm-none-eabi-gcc 12.2.1",
        ("-Os",),
        "cortex-m4f",
        {".text": flash},
        {},
        ("empty model subtracted",),
        est,
        57,
        3,
        "float",
    )


def test_tree_flash_and_ram_are_the_compiled_figures_plus_the_target_s_reserve():
    target = load_target("nucleo_l4r5zi")
    result = tree_check.evaluate(_evidence(1000, 200), target)
    flash, ram, latency = result.rules
    assert flash.figure == 1000 + target.reserve.flash_bytes
    assert ram.figure == 200 + target.reserve.ram_bytes
    assert "arm-none-eabi-gcc 12.2.1" in flash.evidence and "24 B stack" in ram.evidence
    assert result.ok and not latency.judged  # no latency budget unless one is set


def test_a_tree_over_a_budget_fails_that_rule_and_latency_is_judged_with_its_band():
    target = load_target("nucleo_l4r5zi")
    budget = tree_check.effective_budget(
        target, {"max_flash_bytes": target.reserve.flash_bytes + 999, "max_latency_ms": 0.015}
    )
    result = tree_check.evaluate(_evidence(1000, 200, ms=0.01), target, budget)
    by_name = {r.name: r for r in result.rules}
    assert not result.ok and not by_name["flash"].ok and by_name["ram"].ok
    assert by_name["latency"].figure == pytest.approx(0.02) and not by_name["latency"].ok
    assert "ESTIMATE" in by_name["latency"].evidence
    entry = report.CheckEntry.from_dict(json.loads(json.dumps(result.to_dict())))
    assert entry.rule("flash").figure == by_name["flash"].figure
    assert entry.evidence["kind"] == "tree" and entry.evidence["flash_bytes"] == 1000


# ---------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("trees") / "run"
    recipe = _recipe(trees={"n_estimators": 8, "prune": {"method": "ccp", "ensemble": "greedy"}})
    return pipeline.run("random_forest", "breast_cancer", recipe, str(out), page=False)


def test_the_report_reads_back_as_typed_tree_entries(plain_run):
    read = report.read(plain_run.report_path)
    assert isinstance(read, report.TreeReport)
    with open(plain_run.report_path) as fh:
        assert json.loads(json.dumps(read.to_dict())) == json.load(fh)
    trees = read.trees
    assert trees.baseline.complexity["nodes"] == plain_run.baseline.n_nodes
    assert trees.pruned.complexity["nodes"] == plain_run.pruned.n_nodes
    assert [s["name"] for s in trees.steps] == ["ccp", "greedy", "quantized"]
    assert trees.agreement["n_equal"] == trees.agreement["n"] == 114
    imp = trees.baseline.importance
    assert len(imp["impurity"]) == len(imp["permutation_mean"]) == 30
    assert abs(sum(imp["impurity"]) - 1) < 1e-9
    assert read.inputs.model == "builtin:random_forest" and read.stages.check is None


def test_the_test_quality_in_the_report_is_the_model_s_on_the_test_split(plain_run):
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    x, y = load_breast_cancer(return_X_y=True)
    _, x_test, _, y_test = train_test_split(
        x.astype(np.float32), y, test_size=0.2, random_state=0, stratify=y
    )
    accuracy = float(np.mean(plain_run.pruned.predict(x_test) == y_test))
    assert plain_run.report.trees.pruned.test["accuracy"] == pytest.approx(accuracy)


def test_every_written_file_is_listed_with_its_hash_and_the_models_read_back(plain_run):
    from edgeprune.artifacts import sha256_file
    from edgeprune.trees.load import load_model

    listed = plain_run.report.artifacts
    for name in ("baseline_trees.json", "pruned_trees.json", "firmware/edgeprune_model.c"):
        path = os.path.join(plain_run.out_dir, name)
        assert listed[name]["sha256"] == sha256_file(path)
    again = load_model(os.path.join(plain_run.out_dir, "pruned_trees.json"))
    assert again.n_nodes == plain_run.pruned.n_nodes


def test_a_damaged_tree_report_is_refused_as_incomplete(plain_run, tmp_path):
    body = json.loads(open(plain_run.report_path).read())
    del body["trees"]["pruned"]["complexity"]["nodes"]
    path = tmp_path / "report.json"
    path.write_text(json.dumps(body))
    with pytest.raises(BadInputError, match="not a complete edgeprune report"):
        report.read(path)


def test_feature_drop_refits_on_the_kept_features_and_the_c_reads_only_them(tmp_path):
    recipe = _recipe(trees={"n_estimators": 8, "keep_features": 4})
    result = pipeline.run("random_forest", "breast_cancer", recipe, str(tmp_path / "o"), page=False)
    drop = result.report.trees.feature_drop
    assert len(drop["kept"]) == 4 and result.pruned.meta["features"] == drop["kept"]
    assert drop["n_features_before"] == 30 and "test_after" in drop
    header = open(os.path.join(result.out_dir, "firmware", "edgeprune_model.h")).read()
    assert "#define EDGEPRUNE_N_FEATURES 4" in header
    assert result.report.trees.agreement["n_equal"] == 114


def test_a_failure_part_way_removes_every_file_the_run_wrote(tmp_path, monkeypatch):
    from edgeprune.trees import run_stages

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(run_stages.report, "write_run", broken)
    out = tmp_path / "o"
    with pytest.raises(OSError, match="disk full"):
        pipeline.run("decision_tree", "wine", _recipe(), str(out), page=False)
    assert not out.exists() or os.listdir(out) == []


@needs_arm
def test_a_pruned_model_over_the_budget_writes_its_report_then_fails(tmp_path):
    recipe = replace(_recipe(), budget=replace(_recipe().budget, max_flash_bytes=262_144 + 10))
    with pytest.raises(BudgetError, match="does not fit nucleo_l4r5zi: flash over budget") as err:
        pipeline.run(
            "random_forest", "wine", recipe, str(tmp_path / "o"), "nucleo_l4r5zi", page=False
        )
    written = report.read(os.path.join(tmp_path, "o", "report.json"))
    assert written.stages.check is not None and not written.stages.check.ok
    assert err.value.result.check.rules[0].figure > 262_154


def test_a_regressor_is_trained_measured_and_its_c_agrees_within_the_stated_tolerance(tmp_path):
    from edgeprune.trees.validate import validate_tree_run

    rng = np.random.default_rng(0)
    x = rng.random((300, 5)).astype(np.float32)
    y = 3 * x[:, 0] - 2 * x[:, 1] ** 2 + 0.05 * rng.standard_normal(300)
    path = tmp_path / "reg.npz"
    np.savez(path, x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])
    recipe = _recipe(trees={"n_estimators": 6, "prune": {"method": "ccp"}})
    result = pipeline.run("random_forest", str(path), recipe, str(tmp_path / "o"), page=False)
    trees = result.report.trees
    assert trees.task == "regression" and set(trees.pruned.test) == {"mse", "mae"}
    assert trees.pruned.validation["metric"] == "mse"
    assert trees.agreement["n_equal"] == trees.agreement["n"] == 60
    assert 0 < trees.agreement["tolerance"] < 1e-5
    checked = validate_tree_run(str(tmp_path / "o"), "host", data=str(path))
    assert checked.agreement["agreement"] == 1.0 and "mse" in checked.metrics
    assert {r.name for r in checked.rules} == {"mse", "agreement"}


def _fitted_tree():
    from sklearn.datasets import load_wine
    from sklearn.model_selection import train_test_split
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_wine(return_X_y=True)
    x_train, _, y_train, _ = train_test_split(
        x.astype(np.float32), y, test_size=0.2, random_state=0, stratify=y
    )
    return DecisionTreeClassifier(random_state=0).fit(x_train, y_train)


def test_a_skops_model_and_a_trusted_pickle_are_read_pruned_and_exported(tmp_path):
    import joblib
    import skops.io

    fitted = _fitted_tree()
    skops.io.dump(fitted, tmp_path / "tree.skops")
    joblib.dump(fitted, tmp_path / "tree.joblib")
    recipe = _recipe(trees={"prune": {"method": "reduced_error"}})
    for name, extra in (("tree.skops", {}), ("tree.joblib", {"unsafe_load": True})):
        r = replace(recipe, **extra)
        result = pipeline.run(str(tmp_path / name), "wine", r, str(tmp_path / name[5:]), page=False)
        assert result.baseline.n_nodes == fitted.tree_.node_count
        assert result.report.trees.source == str(tmp_path / name)
        assert result.report.trees.steps[0]["name"] == "reduced_error"
        assert result.report.inputs.model_sha256 is not None
        assert result.report.trees.agreement["n_equal"] == 36


def test_pre_pruning_refits_on_the_training_split_and_records_the_chosen_limits(tmp_path):
    from edgeprune.trees.prune import validation_metric

    recipe = _recipe(trees={"prune": {"method": "pre"}})
    result = pipeline.run("decision_tree", "breast_cancer", recipe, str(tmp_path / "o"), page=False)
    step = result.report.trees.steps[0]
    assert step["name"] == "pre" and step["parameters"]["candidates"] == 45
    assert {"max_depth", "min_samples_leaf", "min_impurity_decrease"} <= set(step["parameters"])
    inp = pipeline.resolve_inputs("decision_tree", "breast_cancer", recipe, None, None)
    assert result.pruned.trees[0].n_samples[0] == len(inp.fit[1])  # fitted without validation
    assert step["validation_after"] == validation_metric(result.pruned, *inp.val)
    assert step["validation_after"] >= step["validation_before"]
