"""Structured pruning: channel groups, surgery, importance criteria, selection."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import build_tiny
from edgeprune.models import digits_cnn
from edgeprune.models import mlperf_tiny as mt

from edgeprune.estimates.opcost import ModelCost
from edgeprune.structured.graph import analyze
from edgeprune.structured.importance import (
    ImportanceError,
    channel_scores,
    keras_macs,
    select,
)
from edgeprune.structured.surgery import rebuild

REFERENCE_COUNTS = os.path.join(
    os.path.dirname(__file__), "..", "targets", "calibration", "mlperf_tiny_v0.5"
)


def _seeded(build, *args, **kwargs):
    from edgeprune.adapters.keras import seed_everything

    seed_everything(0)
    return build(*args, **kwargs)


def _reference(name):
    build, shape, n_classes = mt.REFERENCE[name]
    model = _seeded(build)
    _randomize_batchnorm(model)  # gamma and beta; the statistics come from data:
    mt.calibrate_batchnorm(model, mt.synthetic_data(shape, n_classes, n=32, seed=4)[0])
    x, _ = mt.synthetic_data(shape, n_classes, n=8, seed=3)
    return model, x


def _randomize_batchnorm(model, seed=1):
    """Untrained BatchNormalization is the identity; give it statistics so that
    slicing the wrong entries would show."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.__class__.__name__ == "BatchNormalization":
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights(
                [
                    rng.uniform(0.5, 1.5, gamma.shape),
                    rng.normal(0, 0.1, beta.shape),
                    rng.normal(0, 0.1, mean.shape),
                    rng.uniform(0.5, 1.5, var.shape),
                ]
            )


def _all_models():
    out = {name: _reference(name) for name in mt.REFERENCE}
    out["digits_cnn"] = (
        _seeded(digits_cnn.build),
        np.random.default_rng(0).random((8, 8, 8, 1)).astype(np.float32),
    )
    for kind in ("sequential", "residual", "depthwise", "autoencoder"):
        out[f"tiny_{kind}"] = (
            build_tiny(kind),
            np.random.default_rng(0).random((8, 8, 8, 1)).astype(np.float32),
        )
    out["concat"] = (
        _concat_model(),
        np.random.default_rng(0).random((8, 8, 8, 1)).astype(np.float32),
    )
    return out


def _concat_model():
    from edgeprune.adapters.keras import keras, seed_everything

    seed_everything(0)
    L = keras.layers
    inp = keras.Input((8, 8, 1))
    a = L.Conv2D(6, 3, padding="same", activation="relu", name="a")(inp)
    b = L.Conv2D(4, 3, padding="same", name="b")(inp)
    b = L.BatchNormalization(name="b_bn")(b)
    b = L.ReLU(name="b_relu")(b)
    x = L.Concatenate(name="cat")([a, b])
    x = L.Conv2D(8, 1, activation="relu", name="mix")(x)
    x = L.MaxPooling2D(name="pool")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(12, activation="relu", name="fc")(x)
    out = L.Dense(10, activation="softmax", name="out")(x)
    return keras.Model(inp, out, name="concat")


@pytest.fixture(scope="module")
def models():
    return _all_models()


def _kill(model, graph, roots):
    """Make the channels ``roots`` carry exactly zero everywhere: zero their
    producers' kernel slices and biases, depthwise slices, and BatchNorm gamma and beta."""
    for name, use in graph.uses.items():
        positions = [i for i, a in enumerate(use.output) if a >= 0 and graph.root(a) in roots]
        if not positions:
            continue
        layer = model.get_layer(name)
        weights = layer.get_weights()
        if not weights:
            continue
        cls = use.class_name
        if cls == "BatchNormalization":
            weights[0][positions] = 0
            weights[1][positions] = 0
        elif cls in ("DepthwiseConv2D",):
            weights[0][..., positions, :] = 0
            weights[1][positions] = 0
        else:  # a producer
            weights[0][..., positions] = 0
            weights[1][positions] = 0
        layer.set_weights(weights)


ALL = [
    "ds_cnn",
    "mobilenet_v1",
    "resnet8",
    "autoencoder",
    "digits_cnn",
    "tiny_sequential",
    "tiny_residual",
    "tiny_depthwise",
    "tiny_autoencoder",
    "concat",
]


def _group(graph, producer):
    """The channel group whose producers include ``producer``."""
    return next(g for g in graph.groups if producer in g.producers)


@pytest.mark.parametrize("name", ALL)
def test_rebuild_with_every_channel_kept_is_exact(models, name):
    model, x = models[name]
    graph = analyze(model)
    new = rebuild(model, graph, set())
    assert new is not model and new.count_params() == model.count_params()
    np.testing.assert_array_equal(new.predict(x, verbose=0), model.predict(x, verbose=0))


@pytest.mark.parametrize("name", ALL)
def test_cutting_dead_channels_changes_no_output(models, name):
    """Channels made to carry zero contribute nothing: removing them (a third of
    every prunable group) must leave every output as it was, which exercises
    the slicing of every consumer: Flatten rows, concat offsets, residual adds."""
    from edgeprune.adapters.keras import keras

    model, x = models[name]
    model = keras.models.clone_model(model)
    model.set_weights(models[name][0].get_weights())
    graph = analyze(model)
    removed = set()
    for g in graph.prunable_groups:
        removed.update(g.channels[1::3])
    assert removed
    _kill(model, graph, removed)
    new = rebuild(model, graph, removed)
    assert new.count_params() < model.count_params()
    np.testing.assert_allclose(
        new.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("name", ALL)
def test_rebuild_of_live_channels_matches_the_masked_original(models, name):
    """Removing live channels equals zeroing every weight that reads them, which
    is what the pipeline verifies each round; a rebuild that cut other channels
    than the ones masked is caught."""
    from edgeprune.structured.surgery import rebuild_tolerance, verify_rebuild

    model, x = models[name]
    graph = analyze(model)
    removed = set()
    for g in graph.prunable_groups:
        removed.update(g.channels[::2])
    new = rebuild(model, graph, removed)
    out = new.predict(x, verbose=0)
    assert out.std(axis=0).max() > 1e-4, "outputs that ignore the input would prove nothing"
    diff, scale = verify_rebuild(model, graph, removed, new, x)
    assert diff <= rebuild_tolerance(scale)
    other = set()  # as many channels per group, others first: the same shapes
    for g in graph.prunable_groups:
        cut = g.channels[::2]
        other.update(([c for c in g.channels if c not in cut] + cut)[: len(cut)])
    wrong = rebuild(model, graph, other)
    assert wrong.count_params() == new.count_params() and other != removed
    diff, scale = verify_rebuild(model, graph, removed, wrong, x)
    assert diff > rebuild_tolerance(scale)


def test_groups_follow_residual_adds_and_stop_at_outputs(models):
    graph = analyze(models["resnet8"][0])
    groups = {tuple(sorted(g.producers)): g for g in graph.groups}
    assert set(groups) == {
        ("conv1", "s1_conv2"),
        ("s1_conv1",),
        ("s2_conv1",),
        ("s2_conv2", "s2_shortcut"),
        ("s3_conv1",),
        ("s3_conv2", "s3_shortcut"),
        ("classifier",),
    }
    assert groups[("conv1", "s1_conv2")].size == 16
    assert "s1_add" in groups[("conv1", "s1_conv2")].layers
    assert not groups[("classifier",)].prunable
    assert groups[("classifier",)].reason == "a model output (classifier)"
    # depthwise layers follow the channels of the pointwise conv before them
    ds = analyze(models["ds_cnn"][0])
    assert "dw2" in _group(ds, "pw1").layers and "pw2" in _group(ds, "pw1").layers


def test_concatenate_keeps_offsets(models):
    model, _ = models["concat"]
    graph = analyze(model)
    a, b = _group(graph, "a"), _group(graph, "b")
    assert a is not b and a.size == 6 and b.size == 4
    removed = {b.channels[0], a.channels[5]}
    masks = graph.keep_masks(removed)
    (cat_in,), _ = masks["mix"]
    assert cat_in.tolist() == [True] * 5 + [False] + [False] + [True] * 3


def test_layers_that_cannot_be_cut_are_named():
    from edgeprune.adapters.keras import keras

    L = keras.layers
    inp = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, name="c1")(inp)
    x = L.LayerNormalization(name="ln")(x)
    x = L.Conv2D(8, 3, name="c2")(x)
    x = L.Flatten()(x)
    out = L.Dense(3, name="out")(x)
    graph = analyze(keras.Model(inp, out))
    assert graph.blocked == {"ln": "normalizes across the channels"}
    assert not _group(graph, "c1").prunable
    assert _group(graph, "c1").reason == "reaches ln (normalizes across the channels)"
    assert _group(graph, "c2").prunable
    # a grouped convolution is left whole, named as such; the conv after it is free
    inp = keras.Input((8, 8, 4))
    x = L.Conv2D(8, 3, groups=2, name="grouped")(inp)
    x = L.Conv2D(4, 1, name="after")(x)
    out = L.Dense(2, name="out")(L.Flatten()(x))
    graph = analyze(keras.Model(inp, out))
    assert graph.blocked == {"grouped": "grouped convolution or depth multiplier"}
    assert "grouped" not in graph.atoms and _group(graph, "after").prunable


def test_keras_macs_equal_the_converted_models_counts(models):
    files = {
        "ds_cnn": "kws_ref",
        "mobilenet_v1": "vww_ref",
        "resnet8": "ic_ref",
        "autoencoder": "ad_ref",
    }
    for name, ref in files.items():
        with open(os.path.join(REFERENCE_COUNTS, ref + ".json")) as fh:
            assert keras_macs(models[name][0]) == ModelCost.from_dict(json.load(fh)).macs


def _loss(y_true, y_pred):
    import tensorflow as tf

    return tf.keras.losses.sparse_categorical_crossentropy(y_true, y_pred)


def test_weight_criteria_rank_a_zeroed_channel_last(models):
    from edgeprune.adapters.keras import keras

    model = keras.models.clone_model(models["digits_cnn"][0])
    graph = analyze(model)
    weights = model.get_layer("conv2").get_weights()
    weights[0][..., 7] *= 1e-3
    model.get_layer("conv2").set_weights(weights)
    root = graph.root(graph.atoms["conv2"][7])
    for criterion in ("l1", "l2"):
        scores = channel_scores(model, graph, criterion)
        group = _group(graph, "conv2").channels
        assert min(group, key=scores.get) == root


def test_taylor_is_activation_times_gradient(models):
    """The kernel-gate identity the implementation uses, checked against a
    direct activation x gradient computation on a split model."""
    import tensorflow as tf

    from edgeprune.adapters.keras import keras

    model = models["tiny_sequential"][0]
    x = np.random.default_rng(1).random((6, 8, 8, 1)).astype(np.float32)
    y = np.arange(6) % 10
    graph = analyze(model)
    scores = channel_scores(model, graph, "taylor", x, y, _loss)
    head = keras.Sequential(model.layers[1:])
    expected = np.zeros(8)
    for i in range(6):
        a = model.layers[0](x[i : i + 1])
        with tf.GradientTape() as tape:
            tape.watch(a)
            value = tf.reduce_sum(_loss(y[i : i + 1], head(a)))
        g = tape.gradient(value, a)
        expected += np.abs((a * g).numpy().reshape(-1, 8).sum(axis=0))
    ours = [scores[graph.root(a)] for a in graph.atoms["conv"]]
    np.testing.assert_allclose(ours, expected / 6, rtol=1e-4, atol=1e-9)


def test_data_scores_of_a_reloaded_model_come_from_the_memo_and_change_with_its_weights(
    models, tmp_path, monkeypatch
):
    """A sweep's trials reload one baseline: the second scoring of the same
    architecture, weights and samples does no gradient work and returns the
    same scores; a changed weight, other samples or another loss are scored afresh."""
    from edgeprune.adapters.keras import keras, sample_loss
    from edgeprune.structured import importance

    model = keras.models.clone_model(models["tiny_sequential"][0])
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(2).random((6, 8, 8, 1)).astype(np.float32)
    y = np.arange(6) % 10
    loss = sample_loss("classification", 10, True)
    assert sample_loss("classification", 10, True) is loss
    computed = []
    real = importance._gradient_scores
    monkeypatch.setattr(
        importance, "_gradient_scores", lambda *a: computed.append(a[-1]) or real(*a)
    )
    first = channel_scores(model, analyze(model), "taylor", x, y, loss)
    assert channel_scores(again, analyze(again), "taylor", x, y, loss) == first
    assert computed == ["taylor"]
    weights = again.get_layer("conv").get_weights()
    weights[0][..., 0] *= 2.0
    again.get_layer("conv").set_weights(weights)
    changed = channel_scores(again, analyze(again), "taylor", x, y, loss)
    channel_scores(model, analyze(model), "taylor", x[::-1].copy(), y, loss)
    channel_scores(model, analyze(model), "taylor", x, y, sample_loss("classification", 10, False))
    channel_scores(model, analyze(model), "obd", x, y, loss)
    assert computed == ["taylor"] * 4 + ["obd"]
    assert changed != first


def test_obd_is_zero_for_a_dead_channel_and_positive_elsewhere(models):
    from edgeprune.adapters.keras import keras

    model = keras.models.clone_model(models["digits_cnn"][0])
    graph = analyze(model)
    dead = graph.root(graph.atoms["fc1"][3])
    _kill(model, graph, {dead})
    x = np.random.default_rng(1).random((16, 8, 8, 1)).astype(np.float32)
    scores = channel_scores(model, graph, "obd", x, np.arange(16) % 10, _loss)
    fc1 = [scores[graph.root(a)] for a in graph.atoms["fc1"]]
    assert fc1[3] == 0.0
    assert all(v >= 0 for v in scores.values()) and sum(v > 0 for v in fc1) >= 32


def test_bn_scale_reads_gamma_and_refuses_models_without_batchnorm(models):
    model = models["resnet8"][0]
    graph = analyze(model)
    scores = channel_scores(model, graph, "bn_scale")
    root = graph.root(graph.atoms["s1_conv1"][2])
    gamma = model.get_layer("s1_conv1_bn").get_weights()[0][2]
    assert scores[root] == pytest.approx(abs(gamma))
    with pytest.raises(ImportanceError, match="conv1 has none"):
        channel_scores(models["digits_cnn"][0], analyze(models["digits_cnn"][0]), "bn_scale")
    with pytest.raises(ImportanceError, match="needs training data"):
        channel_scores(model, graph, "taylor")
    with pytest.raises(ImportanceError, match="unknown importance"):
        channel_scores(model, graph, "random")


def test_select_global_respects_the_floor_and_uniform_cuts_each_group_alike(models):
    model = models["mobilenet_v1"][0]
    graph = analyze(model)
    scores = channel_scores(model, graph, "l1")
    total = sum(g.size for g in graph.prunable_groups)
    removed = select(graph, scores, 0.8, "global", floor=0.25)
    for g in graph.prunable_groups:
        kept = sum(r not in removed for r in g.channels)
        assert kept >= max(1, int(np.ceil(0.25 * g.size)))
    assert len(removed) <= round(0.8 * total)
    uniform = select(graph, scores, 0.5, "uniform")
    for g in graph.prunable_groups:
        assert sum(r in uniform for r in g.channels) == round(0.5 * g.size)
    # the lowest-scored channels go first
    low = select(graph, scores, 0.1, "uniform")
    for g in graph.prunable_groups:
        cut = [scores[r] for r in g.channels if r in low]
        kept = [scores[r] for r in g.channels if r not in low]
        if cut:
            assert max(cut) <= min(kept)
