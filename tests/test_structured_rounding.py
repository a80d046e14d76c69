"""Structured pruning rounds kept channel counts to the multiple a target's kernels
prefer (CMSIS-NN 4, ESP-NN 8), unless the recipe sets one; without a target, not at all."""

from __future__ import annotations

import re

import numpy as np
import pytest
from edgeprune.models import digits_cnn

from edgeprune.recipe import build_recipe
from edgeprune.stages.structured import channel_multiple
from edgeprune.structured.graph import analyze
from edgeprune.structured.importance import channel_scores, keras_macs, select
from edgeprune.structured.rounding import nearest_multiple, parts
from edgeprune.structured.rounds import StructuredOptions, prune_structured
from edgeprune.structured.surgery import rebuild, rebuild_tolerance, verify_rebuild
from edgeprune.target import (
    KERNEL_CHANNEL_MULTIPLE,
    KERNELS,
    TargetError,
    list_targets,
    load_target,
    parse_target,
)


def _widths(model) -> dict[str, int]:
    out = {}
    for layer in model.layers:
        cfg = layer.get_config()
        if "filters" in cfg or "units" in cfg:
            out[layer.name] = int(cfg.get("filters", cfg.get("units")))
    return out


def _digits():
    from edgeprune.adapters.keras import seed_everything

    seed_everything(0)
    return digits_cnn.build((8, 8, 1), 10)


# ------------------------------------------------------------------ the rounding function


@pytest.mark.parametrize(
    "kept,width,multiple,least,rounded",
    [
        (17, 64, 4, 1, 16),  # the 17: nearest multiple below
        (19, 64, 4, 1, 20),  # nearest multiple above
        (18, 64, 4, 1, 20),  # a tie keeps more
        (35, 64, 8, 1, 32),  # the 35 under ESP-NN
        (1, 64, 8, 1, 8),  # never 0: at least one multiple
        (0, 64, 8, 1, 8),
        (62, 64, 8, 1, 64),  # never above the original width
        (9, 10, 8, 1, 10),  # a width that is no multiple is itself allowed (tie: keep more)
        (7, 10, 8, 1, 8),
        (10, 10, 8, 1, 10),  # a layer left whole keeps its width
        (2, 3, 4, 1, 2),  # narrower than the multiple: as the ranking chose
        (3, 3, 4, 1, 3),
        (17, 64, 1, 1, 17),  # multiple 1: not rounded
        (17, 64, 8, 20, 24),  # never below the layer floor
        (5, 10, 8, 9, 9),  # the floor leaves no multiple below the width: the floor
        (17, 17, 4, 1, 17),
    ],
)
def test_nearest_multiple_edge_cases(kept, width, multiple, least, rounded):
    assert nearest_multiple(kept, width, multiple, least) == rounded


@pytest.mark.parametrize("multiple", [2, 4, 8, 16])
@pytest.mark.parametrize("width", [1, 3, 4, 10, 17, 64, 100])
def test_rounding_is_monotone_bounded_and_on_a_multiple(width, multiple):
    """Bisections over the amount removed rely on this: keeping more before
    rounding never keeps fewer after."""
    got = [nearest_multiple(k, width, multiple) for k in range(0, width + 1)]
    assert all(a <= b for a, b in zip(got, got[1:], strict=False))
    for k, g in zip(range(width + 1), got, strict=True):
        assert 1 <= g <= width or (k == 0 and width < multiple)
        assert g % multiple == 0 or g == width or width < multiple or g == k


# ------------------------------------------------------------------ selection on real graphs


def test_select_rounds_every_layer_and_stays_nested_as_the_amount_grows():
    model = _digits()
    graph = analyze(model)
    scores = channel_scores(model, graph, "l1")
    previous: set[int] = set()
    unrounded_off = 0
    for amount in np.linspace(0.0, 0.95, 40):
        plain = select(graph, scores, float(amount), "global", 0.1)
        rounded = select(graph, scores, float(amount), "global", 0.1, multiple=4)
        assert previous <= rounded  # removing more never puts a channel back
        previous = rounded
        widths = _widths(rebuild(model, graph, rounded))
        assert all(widths[p] % 4 == 0 for p in ("conv1", "conv2", "fc1")), widths
        unrounded_off += any(
            w % 4 for p, w in _widths(rebuild(model, graph, plain)).items() if p != "classifier"
        )
    assert unrounded_off > 10  # without rounding most amounts leave odd widths


def _concat_residual():
    """Two convolutions concatenated, then added to a third: one group whose
    producers carry different channels (a, b) or all of them (c)."""
    from edgeprune.adapters.keras import keras, seed_everything

    seed_everything(0)
    L = keras.layers
    inp = keras.Input((8, 8, 1))
    a = L.Conv2D(12, 3, padding="same", name="a")(inp)
    b = L.Conv2D(20, 3, padding="same", name="b")(inp)
    c = L.Conv2D(32, 3, padding="same", name="c")(inp)
    x = L.Add(name="add")([L.Concatenate(name="cat")([a, b]), c])
    x = L.ReLU(name="relu")(x)
    x = L.GlobalAveragePooling2D(name="gap")(x)
    out = L.Dense(10, name="out")(x)
    return keras.Model(inp, out, name="concat_residual")


def test_concatenated_producers_each_keep_a_multiple_and_the_rebuild_is_exact():
    model = _concat_residual()
    graph = analyze(model)
    assert sorted(len(p) for p in parts(graph)) == [12, 20]
    scores = channel_scores(model, graph, "l2")
    x = np.random.default_rng(0).random((16, 8, 8, 1)).astype(np.float32)
    for amount in (0.3, 0.55, 0.8):
        removed = select(graph, scores, amount, "global", 0.1, multiple=4)
        rebuilt = rebuild(model, graph, removed)
        w = _widths(rebuilt)
        assert w["a"] % 4 == 0 and w["b"] % 4 == 0 and w["c"] == w["a"] + w["b"]
        diff, scale = verify_rebuild(model, graph, removed, rebuilt, x)
        assert diff <= rebuild_tolerance(scale)


# ------------------------------------------------------------------ where the multiple comes from


def test_target_profiles_default_the_multiple_from_their_kernels_or_state_it():
    for target_id in list_targets():
        t = load_target(target_id)
        text = open(t.path, encoding="utf-8").read()
        stated = re.search(r"^channel_multiple = (\d+)", text, re.M)
        if stated:
            assert t.channel_multiple == int(stated.group(1))
            assert t.channel_multiple_source == "profile"
            # a stated multiple says why, in the comment just above it
            above = text[: stated.start()].rstrip("\n").splitlines()[-1]
            assert above.startswith("#"), target_id
        else:
            assert t.channel_multiple == KERNEL_CHANNEL_MULTIPLE[t.kernels]
            assert t.channel_multiple_source == f"{t.kernels} default"
    assert set(KERNEL_CHANNEL_MULTIPLE) == set(KERNELS)
    assert (KERNEL_CHANNEL_MULTIPLE["cmsis-nn"], KERNEL_CHANNEL_MULTIPLE["esp-nn"]) == (4, 8)
    assert load_target("nano33ble").channel_multiple == 4
    assert load_target("esp32s3").channel_multiple == 8
    assert load_target("rpi4").channel_multiple == 1


@pytest.mark.parametrize(
    "value,message",
    [
        (0, r"channel_multiple = 0 is out of range; it must be > 0 and <= 256"),
        (512, r"channel_multiple = 512 is out of range"),
        ("4", r"channel_multiple = '4' must be int"),
    ],
)
def test_bad_profile_multiple_is_named(value, message):
    data = dict(load_target("nano33ble").to_dict())
    toml = {
        k: data[k]
        for k in ("name", "kind", "core", "clock_hz", "flash_bytes", "ram_bytes", "runtime")
    }
    toml |= {"kernels": "cmsis-nn", "model_dtype": "int8", "channel_multiple": value}
    toml["reserve"] = data["reserve"]
    toml["arena_margin"] = data["arena_margin"]
    with pytest.raises(TargetError, match=message):
        parse_target(toml, "board.toml", "board")


def test_the_recipe_overrides_the_profile_and_no_target_means_no_rounding():
    default = build_recipe({})
    off = build_recipe({"structured": {"channel_multiple": 1}})
    nano = load_target("nano33ble")
    assert channel_multiple(default, nano) == (4, "cmsis-nn default (nano33ble)")
    assert channel_multiple(default, load_target("esp32s3")) == (8, "esp-nn default (esp32s3)")
    assert channel_multiple(default, load_target("pico")) == (1, "pico profile (channel_multiple)")
    assert channel_multiple(default, None) == (1, "no target")
    assert channel_multiple(off, load_target("esp32s3")) == (
        1,
        "recipe (structured.channel_multiple)",
    )
    from edgeprune.recipe import RecipeError

    with pytest.raises(RecipeError, match="structured.channel_multiple = 0"):
        build_recipe({"structured": {"channel_multiple": 0}})


# ------------------------------------------------------------------ goals and the fit search


@pytest.mark.parametrize("multiple", [1, 4, 8])
def test_mac_goal_is_met_by_the_rounded_model(multiple):
    model = _digits()
    res = prune_structured(
        model, StructuredOptions(goal="macs", target=2.0, channel_multiple=multiple)
    )
    assert res.macs == keras_macs(res.model) <= keras_macs(model) / 2
    widths = _widths(res.model)
    assert all(widths[p] % multiple == 0 for p in ("conv1", "conv2", "fc1")), widths
    if multiple == 1:
        assert any(widths[p] % 4 for p in ("conv1", "conv2", "fc1")), widths


def test_fill_puts_back_blocks_until_one_more_would_miss_the_goal():
    """Rounded widths move in steps of a multiple, so the bisection's first rounded
    removal under a goal can be well under it; the fill puts back whole blocks
    while the goal holds, and stops where any further block would break it."""
    from edgeprune.structured.rounding import blocks_to_restore
    from edgeprune.structured.rounds import _fill

    model = _digits()
    graph = analyze(model)
    scores = channel_scores(model, graph, "l1")
    goal = keras_macs(model) / 2
    removed = select(graph, scores, 0.8, "global", 0.1, multiple=4)

    def accept(m, _):
        return keras_macs(m) <= goal

    assert accept(rebuild(model, graph, removed), removed)
    filled = _fill(model, graph, scores, removed, 4, accept)
    assert filled < removed  # some blocks came back
    after = rebuild(model, graph, filled)
    assert keras_macs(after) <= goal < keras_macs(model)
    assert all(w % 4 == 0 for w in _widths(after).values() if w != 10), _widths(after)
    for _, narrower in blocks_to_restore(graph, scores, filled, 4):
        assert not accept(rebuild(model, graph, narrower), narrower)


def test_a_goal_the_multiple_puts_out_of_reach_is_said_not_hidden():
    """The digits CNN's first layer has 16 filters: with a multiple of 16 it cannot
    shrink, and a MAC goal of /20 is out of reach; the result says so and keeps
    the narrowest model the multiple allows."""
    model = _digits()
    res = prune_structured(model, StructuredOptions(goal="macs", target=20.0, channel_multiple=16))
    assert res.macs > keras_macs(model) / 20
    assert _widths(res.model) == {"conv1": 16, "conv2": 16, "fc1": 16, "classifier": 10}
    (note,) = [n for n in res.notes if "out of reach" in n]
    assert f"allow has {res.macs:,}" in note and "channel multiple (16)" in note


def test_fit_search_checks_only_rounded_candidates_and_keeps_one_within_budget():
    """``fits`` is the device check; here a parameter budget stands in for it. Every
    candidate it sees has rounded widths, the kept model is within the budget,
    and the next rounded step up is not."""
    model = _digits()
    budget = 9_000
    seen: list[dict[str, int]] = []

    def fits(candidate) -> bool:
        seen.append(_widths(candidate))
        return candidate.count_params() <= budget

    res = prune_structured(
        model, StructuredOptions(goal="fit", channel_multiple=8), fits=fits, log=lambda _: None
    )
    assert len(seen) > 3 and res.fit_trials[0] == (1.0, False)
    for widths in seen[1:]:  # the first check is the unpruned model
        assert all(widths[p] % 8 == 0 for p in ("conv1", "conv2", "fc1")), widths
    assert res.model.count_params() <= budget
    assert all(w % 8 == 0 for n, w in _widths(res.model).items() if n != "classifier")
    # the search also tried rounded candidates wider than the kept one that did not fit
    kept_width = res.rounds[-1].width
    assert any(not ok and w > kept_width for w, ok in res.fit_trials[1:])


def test_width_goal_note_names_the_rounding_and_odd_widths_are_listed():
    from edgeprune.adapters.keras import keras, seed_everything

    seed_everything(0)
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Conv2D(3, 3, padding="same", activation="relu", name="narrow"),
            L.Conv2D(10, 3, padding="same", activation="relu", name="odd"),
            L.Flatten(name="flatten"),
            L.Dense(32, activation="relu", name="fc"),
            L.Dense(10, activation="softmax", name="out"),
        ]
    )
    res = prune_structured(
        model, StructuredOptions(goal="width", target=0.7, channel_multiple=8, floor=0.1)
    )
    widths = _widths(res.model)
    assert widths["fc"] % 8 == 0 and widths["odd"] in (8, 10)
    note = next(n for n in res.notes if n.startswith("channel counts not multiples of 8"))
    assert "narrow" in note and "narrower than 8 to begin with" in note


# ------------------------------------------------------------ the stage, its report and summary


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    from edgeprune.adapters import keras as ka

    path = tmp_path_factory.mktemp("rounding") / "digits.keras"
    ka.save_model(_digits(), str(path))
    return str(path)


def _prune(digits_file, out, target, **structured):
    import edgeprune.pipeline as pipeline

    recipe = build_recipe(
        {
            "prune": {"epochs": 1},
            "structured": {"goal": "width", "width": 0.4, "epochs": 0, **structured},
        }
    )
    return pipeline.prune_only(digits_file, "digits", recipe, str(out), target)


@pytest.mark.parametrize(
    "target,own,multiple,source",
    [
        ("nano33ble", None, 4, "cmsis-nn default (nano33ble)"),
        ("esp32s3", None, 8, "esp-nn default (esp32s3)"),
        ("esp32s3", 1, 1, "recipe (structured.channel_multiple)"),
        (None, None, 1, "no target"),
    ],
)
def test_structured_stage_rounds_for_the_target_and_reports_who_chose(
    digits_file, tmp_path, target, own, multiple, source
):
    from edgeprune import report
    from edgeprune.presentation.summary import format_stage

    extra = {} if own is None else {"channel_multiple": own}
    result = _prune(digits_file, tmp_path / "run", target, **extra)
    entry = report.read(result.report_path).stages.prune.structured
    assert (entry.channel_multiple, entry.channel_multiple_source) == (multiple, source)
    kept = {name: after for name, (_, after) in entry.rounds[-1].widths.items()}
    assert all(w % multiple == 0 for w in kept.values()), kept
    if multiple == 1:  # width 0.4 of 16/32/64 channels leaves counts no SIMD width divides
        assert any(w % 4 for w in kept.values()), kept
    # the figures reported are those of the rounded model that was written
    from edgeprune.adapters import keras as ka

    written = ka.load_model(str(tmp_path / "run" / "structured.keras"))
    assert written.count_params() == entry.params_after
    assert {n: w for n, w in _widths(written).items() if n in kept} == kept
    text = format_stage(result)
    expected = (
        f"channel counts rounded to multiples of {multiple} ({source})"
        if multiple > 1
        else f"channel counts not rounded (multiple 1: {source})"
    )
    assert expected in text
