import pytest

from edgeprune.errors import RecipeError
from edgeprune.recipe import Recipe, build_recipe, load_recipe, option_fields


def write(tmp_path, text):
    p = tmp_path / "r.toml"
    p.write_text(text)
    return p


def test_defaults_are_the_documented_default_run():
    r = Recipe()
    assert r.prune.final_sparsity == 0.75
    assert r.prune.schedule == "polynomial_decay"
    assert r.quantize.mode == "int8"
    assert r.seed == 0


def test_toml_values_reach_the_dataclasses(tmp_path):
    r = load_recipe(
        write(
            tmp_path,
            """
seed = 7
task = "regression"
[prune]
schedule = "constant"
final_sparsity = 0.5
pattern = "m_by_n"
m_by_n = "2:4"
exclude = ["Dense", "conv1"]
[quantize]
mode = "float16"
""",
        )
    )
    assert r.seed == 7 and r.task == "regression"
    assert r.prune.schedule == "constant" and r.prune.final_sparsity == 0.5
    assert r.prune.m_by_n == (2, 4)
    assert r.prune.exclude == ("Dense", "conv1")
    assert r.quantize.mode == "float16"


def test_overrides_win_over_the_file(tmp_path):
    path = write(tmp_path, "[prune]\nfinal_sparsity = 0.5\nepochs = 3\n")
    r = load_recipe(path, {"prune.final_sparsity": 0.9, "seed": 3})
    assert r.prune.final_sparsity == 0.9
    assert r.prune.epochs == 3
    assert r.seed == 3


def test_unknown_key_names_the_key_and_suggests(tmp_path):
    with pytest.raises(
        RecipeError,
        match=r"unknown key 'prune.final_sparsty'; did you mean "
        r"'final_sparsity'",
    ):
        load_recipe(write(tmp_path, "[prune]\nfinal_sparsty = 0.5\n"))


def test_unknown_section_is_an_error(tmp_path):
    with pytest.raises(RecipeError, match="unknown key 'prunning'"):
        load_recipe(write(tmp_path, "[prunning]\nepochs = 1\n"))


@pytest.mark.parametrize("value", [1.0, 1.5, -0.1])
def test_sparsity_outside_unit_interval_is_rejected(value):
    with pytest.raises(
        RecipeError,
        match=r"prune.final_sparsity = .* is (outside \[0.0, 1.0\)"
        r"|below its minimum)",
    ):
        build_recipe({"prune": {"final_sparsity": value}})


def test_wrong_types_and_choices_are_named():
    with pytest.raises(RecipeError, match="prune.epochs = 'ten' must be a whole number"):
        build_recipe({"prune": {"epochs": "ten"}})
    with pytest.raises(RecipeError, match="quantize.mode = 'int4' is not one of: int8"):
        build_recipe({"quantize": {"mode": "int4"}})
    with pytest.raises(RecipeError, match="m < n"):
        build_recipe({"prune": {"m_by_n": [4, 2]}})


def test_malformed_toml_is_one_line(tmp_path):
    with pytest.raises(RecipeError, match="not valid TOML") as info:
        load_recipe(write(tmp_path, "[prune\n"))
    assert "\n" not in str(info.value)


def test_every_option_has_a_distinct_flag():
    flags = {f"{s}.{f.name}" if s else f.name: f.metadata["flag"] for s, f in option_fields()}
    assert len(flags) == len(set(flags.values()))
    assert flags["prune.final_sparsity"] == "--sparsity"


def test_to_dict_round_trips():
    r = build_recipe({"prune": {"exclude": ["fc1"], "block_size": "1x4"}})
    assert build_recipe(r.to_dict()) == r


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_numbers_are_rejected(value):
    with pytest.raises(RecipeError, match="must be a finite number"):
        build_recipe({"prune": {"final_sparsity": value}})
    with pytest.raises(RecipeError, match="must be a finite number"):
        build_recipe({"prune": {"learning_rate": value}})


def test_nan_in_toml_is_rejected(tmp_path):
    with pytest.raises(RecipeError, match="prune.final_sparsity = nan must be a finite"):
        load_recipe(write(tmp_path, "[prune]\nfinal_sparsity = nan\n"))


def test_zero_power_and_learning_rate_are_rejected():
    with pytest.raises(RecipeError, match="prune.power = 0.0 must be above 0.0"):
        build_recipe({"prune": {"power": 0}})
    with pytest.raises(RecipeError, match="prune.learning_rate = 0.0 must be above 0.0"):
        build_recipe({"prune": {"learning_rate": 0}})


@pytest.mark.parametrize(
    "text,pair", [("2:4", (2, 4)), ("1X4", (1, 4)), ("1x8", (1, 8)), ([2, 4], (2, 4))]
)
def test_pairs_parse(text, pair):
    assert build_recipe({"prune": {"m_by_n": [1, 4], "block_size": text}}).prune.block_size == pair


@pytest.mark.parametrize("text", [[2, 4.9], "2:4:8", "a:b", "0x4"])
def test_bad_pairs_are_rejected(text):
    with pytest.raises(RecipeError, match="prune.block_size"):
        build_recipe({"prune": {"block_size": text}})


def test_seed_must_fit_32_bits():
    with pytest.raises(RecipeError, match="seed = 4294967296 is outside"):
        build_recipe({"seed": 2**32})


def test_non_utf8_and_deeply_nested_toml_are_one_line_recipe_errors(tmp_path):
    p = tmp_path / "r.toml"
    p.write_bytes(b"seed = 1\n# \xff\n")
    with pytest.raises(RecipeError, match="not valid TOML \\(byte 11 is not UTF-8\\)"):
        load_recipe(p)
    p.write_bytes(b"x = " + b"[" * 100_000 + b"]" * 100_000 + b"\n")
    with pytest.raises(RecipeError, match="nested too deeply to read") as info:
        load_recipe(p)
    assert "\n" not in str(info.value)


def test_huge_whole_numbers_and_control_characters_are_rejected():
    with pytest.raises(RecipeError, match=f"prune.epochs = {2**70} is above the largest"):
        build_recipe({"prune": {"epochs": 2**70}})
    with pytest.raises(RecipeError, match="prune.exclude = 'a\\\\x1bb' holds control characters"):
        build_recipe({"prune": {"exclude": ["a\x1bb"]}})
    assert build_recipe({"prune": {"epochs": 2**31 - 1}}).prune.epochs == 2**31 - 1


def test_the_readmes_recipe_example_runs_on_the_default_model(tmp_path):
    """The README's first TOML block is a recipe the built-in default accepts: every
    key known and every layer it names present (the old example named
    DepthwiseConv2D, which the default model does not have)."""
    import re
    from pathlib import Path

    from edgeprune.models import BUILTIN_MODELS

    from edgeprune.adapters.tfmot import plan_layers

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```toml\n(.*?)```", readme, re.S).group(1)
    (tmp_path / "r.toml").write_text(block)
    recipe = load_recipe(str(tmp_path / "r.toml"))
    model = BUILTIN_MODELS["digits_cnn"].build((8, 8, 1), 10)
    plans = {p.name: p for p in plan_layers(model, recipe.prune)}
    assert not plans["classifier"].pruned and plans["fc1"].pruned
