"""The [sweep] recipe section: parsing, one-line errors, the space per target, apply."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.errors import BadInputError, RecipeError
from edgeprune.recipe import Recipe, build_recipe
from edgeprune.sweep.driver import sweep
from edgeprune.sweep.space import DIMENSIONS, parse_objectives, resolve_space


def _section(**values):
    return build_recipe({"sweep": values}).sweep


def test_defaults_when_the_section_is_absent():
    r = Recipe()
    assert (r.sweep.trials, r.sweep.objectives, r.sweep.dims) == (40, ("latency",), ())
    space = resolve_space(r.sweep, "tflm", "int8")
    assert space.searched == {
        "width": (0.25, 1.0),
        "importance": ("l1", "taylor"),
        "ranking": ("global", "uniform"),
        "epochs": (1, 8),
        "dense": ("per_channel", "per_tensor"),
    }
    assert space.fixed == {"sparsity": 0.0}  # no ota objective: no unstructured sparsity
    linux = resolve_space(r.sweep, "litert", "int8")
    assert linux.searched["quantize"] == ("int8", "dynamic", "float16")
    assert "dense" not in linux.searched
    ota = resolve_space(_section(objectives=["accuracy", "ota"]), "tflm", "int8")
    assert ota.searched["sparsity"] == (0.0, 0.9)


def test_the_section_round_trips_through_the_recipe_dict():
    s = _section(trials=5, objectives=["latency", "flash"], width=[0.5, 1.0], importance="l1")
    assert s.to_dict() == {
        "trials": 5,
        "objectives": ["latency", "flash"],
        "goal": "macs",
        "width": [0.5, 1.0],
        "importance": "l1",
    }
    assert build_recipe({"sweep": s.to_dict()}).sweep == s


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"width": []},
            r"sweep.width is an empty range; write it as \[low, high\], e.g. \[0.25, 1",
        ),
        ({"width": [0.9, 0.3]}, r"sweep.width = \[0.9, 0.3\] is inverted; write the low end"),
        ({"epochs": [8, 1]}, r"sweep.epochs = \[8, 1\] is inverted"),
        ({"width": [0.1, 0.5, 0.9]}, r"is not a range; write it as \[low, high\]"),
        ({"width": [0.0, 1.0]}, r"sweep.width: 0.0 is outside the allowed \[0.05, 1.0\]"),
        ({"epochs": [1.5, 3]}, "sweep.epochs: 1.5 must be a whole number"),
        ({"importance": []}, "sweep.importance is an empty list; give at least one of l1"),
        ({"importance": ["l1", "l3"]}, "sweep.importance: 'l3' is not one of l1, l2"),
        ({"ranking": ["global", "global"]}, "names a choice twice; name each once"),
        ({"widht": [0.5, 1.0]}, "unknown key 'sweep.widht'; known keys: trials"),
        ({"trials": 0}, "sweep.trials = 0 must be a whole number from 1"),
        ({"objectives": ["latency", "speed"]}, "unknown objective 'speed'; choose from latency"),
        ({"objectives": ["flash", "flash"]}, "names 'flash' twice"),
        ({"objectives": ["accuracy"]}, "names no cost to trade accuracy against"),
        ({"goal": "fit"}, "sweep.goal = 'fit' is not one of: macs, params"),
        ({"width": [0.5, 1.0], "reduction": [1.0, 4.0]}, "both set the structured cut; keep one"),
        ({"sparsity": [0.0, 0.8]}, 'sweep.sparsity saves no flash .* add "ota" to sweep.obj'),
    ],
)
def test_bad_sections_are_refused_in_one_line_naming_key_and_fix(values, message):
    with pytest.raises(RecipeError, match=message) as exc:
        build_recipe({"sweep": values})
    assert "\n" not in str(exc.value)


def test_target_dependent_refusals():
    with pytest.raises(RecipeError, match="TFLite Micro cannot run float16 models"):
        resolve_space(_section(quantize=["int8", "float16"]), "tflm", "int8")
    fixed = {k: d.default[0] for k, d in DIMENSIONS.items() if d.default and k != "sparsity"}
    with pytest.raises(RecipeError, match="fixes every dimension: nothing is left to search"):
        resolve_space(_section(**fixed), "litert", "int8")


def test_objectives_accept_a_comma_list_and_drop_the_quality_word():
    assert parse_objectives("accuracy, latency,ram") == ("latency", "ram")
    assert parse_objectives(["mse", "ota"]) == ("ota",)


def test_apply_sets_the_recipe_sections():
    space = resolve_space(_section(reduction=[1.0, 4.0], goal="params"), "tflm", "int8")
    assert "width" not in space.searched and space.canonical()["goal"] == "params"
    params = {
        "reduction": 2.5,
        "importance": "taylor",
        "ranking": "uniform",
        "epochs": 3,
        "dense": "per_tensor",
    }
    r = space.apply(Recipe(), params)
    s = r.structured
    assert (s.goal, s.reduction, s.importance, s.ranking, s.epochs) == (
        "params",
        2.5,
        "taylor",
        "uniform",
        0,  # the one fine-tuning is the tfmot stage's
    )
    assert (r.prune.epochs, r.prune.final_sparsity, r.quantize.dense) == (3, 0.0, "per_tensor")
    assert space.apply(Recipe(), {**params, "reduction": 1.0}).structured.goal == "none"
    wide = resolve_space(_section(width=[0.5, 1.0]), "tflm", "int8")
    assert wide.apply(Recipe(), {"width": 1.0}).structured.goal == "none"
    assert wide.apply(Recipe(), {"width": 0.5}).structured.width == 0.5


def test_sweep_without_a_target_is_a_usage_error_naming_the_fix():
    r = CliRunner().invoke(main, ["sweep"])
    assert r.exit_code == 2 and "--target is required: the sweep's constraints" in r.output
    with pytest.raises(BadInputError, match="a sweep needs a target: its budgets are the"):
        sweep(recipe=Recipe())


def test_compression_is_searched_only_when_asked_and_opens_sparsity():
    assert "compress" not in resolve_space(Recipe().sweep, "tflm", "int8").searched
    s = _section(compress=["none", "prune"])
    space = resolve_space(s, "tflm", "int8")
    assert space.searched["compress"] == ("none", "prune")
    # prune compression makes the zeros leave the flash: sparsity is searched with it
    assert space.searched["sparsity"] == (0.0, 0.9) and "sparsity" not in space.fixed
    lut = resolve_space(_section(compress="lut", clusters=[2, 16]), "tflm", "int8")
    assert lut.fixed["compress"] == "lut" and lut.searched["clusters"] == (2, 16)
    assert lut.fixed["sparsity"] == 0.0  # lut alone: sparsity saves nothing measured
    # the recipe's own [compress] opens sparsity too (the sweep leaves it fixed otherwise)
    assert resolve_space(Recipe().sweep, "tflm", "int8", "both").searched["sparsity"]
    assert build_recipe({"sweep": {"compress": "prune", "sparsity": [0.5, 0.9]}}).sweep


def test_a_trial_is_clustered_only_when_its_compression_encodes_clusters():
    space = resolve_space(_section(compress=["prune", "lut"], clusters=[2, 16]), "tflm", "int8")
    r = space.apply(Recipe(), {"compress": "lut", "clusters": 8, "sparsity": 0.5})
    assert (r.compress.method, r.cluster.clusters, r.prune.final_sparsity) == ("lut", 8, 0.5)
    r = space.apply(Recipe(), {"compress": "prune", "clusters": 8, "sparsity": 0.8})
    assert (r.compress.method, r.cluster.clusters, r.prune.final_sparsity) == ("prune", 0, 0.8)
    none = space.apply(Recipe(), {"compress": "none", "clusters": 8, "sparsity": 0.0})
    assert none.compress.method == "none" and none.cluster.clusters == 0


@pytest.mark.parametrize(
    ("values", "runtime", "mode", "message"),
    [
        (
            {"compress": ["none", "prune"]},
            "litert",
            "int8",
            "sweep.compress = 'prune' on a Linux target: the compressed model needs TFLite "
            "Micro's DECODE operator",
        ),
        (
            {"compress": ["prune", "none"], "quantize": ["int8", "float32"]},
            "tflm",
            "int8",
            "sweep.compress = 'prune' encodes int8 weights but the sweep may quantize to float32",
        ),
        ({"compress": "lut", "width": [0.5, 1.0]}, "tflm", "float32", "may quantize to float32"),
    ],
)
def test_compression_where_run_would_refuse_it_is_refused_once(values, runtime, mode, message):
    with pytest.raises(RecipeError, match=message) as exc:
        resolve_space(_section(**values), runtime, mode)
    assert "\n" not in str(exc.value)
    # "none" alone is no compression: any target takes it
    assert resolve_space(_section(compress="none", width=[0.5, 1.0]), runtime, mode)


def test_the_recipes_own_compression_on_a_linux_target_is_refused_naming_its_key():
    with pytest.raises(RecipeError, match="compress.method = 'prune' on a Linux target"):
        resolve_space(Recipe().sweep, "litert", "int8", "prune")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"compress": ["prune", "gzip"]}, "sweep.compress: 'gzip' is not one of none, prune"),
        ({"clusters": [1, 16]}, r"sweep.clusters: 1 is outside the allowed \[2, 128\]"),
        ({"clusters": [4, 200]}, r"sweep.clusters: 200 is outside the allowed \[2, 128\]"),
        (
            {"compress": ["none", "prune"], "clusters": [2, 8]},
            "sweep.clusters applies only to trials compressed with lut or both",
        ),
        ({"compress": "lut", "sparsity": [0.0, 0.8]}, "sweep.sparsity saves no flash"),
    ],
)
def test_bad_compression_dimensions_are_refused_in_one_line(values, message):
    with pytest.raises(RecipeError, match=message) as exc:
        build_recipe({"sweep": values})
    assert "\n" not in str(exc.value)
