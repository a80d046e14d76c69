"""The prune and strip stages on tiny models of each shape."""

import numpy as np
import pytest
from conftest import small_recipe

from edgeprune.adapters import keras as ka
from edgeprune.adapters import tfmot as pr
from edgeprune.errors import RecipeError
from edgeprune.schedule import plan_schedule


def run_prune(model, digits, opts, task="classification", probabilities=True):
    plans = pr.plan_layers(model, opts)
    plan = plan_schedule(opts, len(digits.x_train))
    wrapped = pr.wrap(model, plans, plan, opts)
    pr.fine_tune(
        wrapped,
        digits.x_train,
        digits.y_train,
        task=task,
        probabilities=probabilities,
        opts=opts,
        seed=0,
    )
    stripped = pr.strip(wrapped)
    return wrapped, stripped, plans


@pytest.mark.parametrize("kind", ["sequential", "residual", "depthwise"])
def test_strip_keeps_outputs_exact_and_reaches_sparsity(kind, trained_models, digits):
    model = trained_models[kind]
    before = [w.copy() for w in model.get_weights()]
    opts = small_recipe(final_sparsity=0.6).prune
    wrapped, stripped, plans = run_prune(model, digits, opts, probabilities=kind != "residual")
    check = pr.verify_strip(wrapped, stripped, digits.x_test)
    assert check.equal and check.max_abs_diff == 0.0 and check.samples == 360
    layers = pr.measure_sparsity(stripped, plans, opts)
    pr.check_sparsity(layers)
    for s in layers:
        if s.pruned:
            assert s.achieved == pytest.approx(0.6, abs=1.5 / s.weights)
    # the input model is untouched: pruning works on a copy
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not any("prune_low_magnitude" in layer.name for layer in stripped.layers)


@pytest.mark.parametrize("kind", ["sequential", "residual"])
def test_wrap_copies_every_weight_and_shares_no_layer(kind, trained_models, digits):
    """Before fine-tuning, the wrapped copy computes what the model computes
    (its masks are all ones), and no layer or variable of it is the model's."""
    model = trained_models[kind]
    opts = small_recipe(final_sparsity=0.6).prune
    plans = pr.plan_layers(model, opts)
    wrapped = pr.wrap(model, plans, plan_schedule(opts, len(digits.x_train)), opts)
    assert any(type(layer).__name__ == "PruneLowMagnitude" for layer in wrapped.layers)
    np.testing.assert_array_equal(
        wrapped(digits.x_test[:32], training=False).numpy(),
        model(digits.x_test[:32], training=False).numpy(),
    )
    ours = {id(v) for v in model.weights} | {id(layer) for layer in model.layers}
    theirs = {id(v) for v in wrapped.weights} | {id(layer) for layer in wrapped.layers}
    theirs |= {id(getattr(layer, "layer", None)) for layer in wrapped.layers}
    assert not ours & theirs


def test_a_schedule_that_zeroes_nothing_fine_tunes_to_the_same_weights_unwrapped(
    trained_models, digits
):
    """The prune stage fine-tunes a plain copy when the schedule prunes nothing
    (the sweep's default): the weights must be the ones tfmot's all-ones masks give."""
    model = trained_models["sequential"]
    opts = small_recipe(final_sparsity=0.0, epochs=1).prune
    assert pr.prunes_nothing(opts)
    assert not pr.prunes_nothing(small_recipe(final_sparsity=0.1).prune)
    assert not pr.prunes_nothing(small_recipe(final_sparsity=0.0, pattern="m_by_n").prune)
    _, stripped, _ = run_prune(model, digits, opts)
    plain = ka.clone(model)
    pr.fine_tune(
        plain,
        digits.x_train,
        digits.y_train,
        task="classification",
        probabilities=True,
        opts=opts,
        seed=0,
    )
    for a, b in zip(stripped.get_weights(), plain.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_depthwise_kernel_is_named_as_skipped(trained_models):
    plans = {p.name: p for p in pr.plan_layers(trained_models["depthwise"], small_recipe().prune)}
    assert not plans["dw"].pruned
    assert (
        plans["dw"].reason == "tfmot does not prune the depthwise_kernel of DepthwiseConv2D layers"
    )
    assert plans["stem"].pruned and plans["pw"].pruned and plans["out"].pruned


def test_include_and_exclude_by_name_and_type(trained_models):
    model = trained_models["sequential"]
    plans = pr.plan_layers(model, small_recipe(exclude=["Dense"]).prune)
    assert {p.name for p in plans if p.pruned} == {"conv"}
    assert {p.reason for p in plans if not p.pruned} == {"excluded by prune.exclude"}
    plans = pr.plan_layers(model, small_recipe(include=["hidden"]).prune)
    assert {p.name for p in plans if p.pruned} == {"hidden"}
    with pytest.raises(RecipeError, match="prune.exclude names nosuch, which is neither"):
        pr.plan_layers(model, small_recipe(exclude=["nosuch"]).prune)
    with pytest.raises(
        RecipeError,
        match="prune.include names Conv3D, which is neither a "
        "layer name nor a layer type of this model",
    ):
        pr.plan_layers(model, small_recipe(include=["Conv3D"]).prune)


def test_pruning_nothing_is_an_error_not_a_silent_no_op(trained_models):
    model = trained_models["sequential"]
    with pytest.raises(
        RecipeError,
        match=r"no layer would be pruned \(conv: not in "
        r"prune.include; hidden: not in prune.include",
    ):
        pr.plan_layers(model, small_recipe(include=["flatten"]).prune)
    # sparsity 0 asks for nothing, so nothing pruned is fine
    plans = pr.plan_layers(model, small_recipe(final_sparsity=0.0, include=["flatten"]).prune)
    assert not any(p.pruned for p in plans)


def test_m_by_n_gives_two_zeros_in_every_four(trained_models, digits):
    model = trained_models["sequential"]
    opts = small_recipe(pattern="m_by_n", m_by_n="2:4").prune
    wrapped, stripped, plans = run_prune(model, digits, opts)
    reasons = {p.name: p.reason for p in plans}
    # the first conv sees 1 input channel: 2:4 cannot apply and it is named
    assert "needs input channels in multiples of 4; this kernel has 1" in reasons["conv"]
    kernel = stripped.get_layer("hidden").kernel.numpy()  # (128, 16): groups along inputs
    groups = (kernel.T.reshape(16, -1, 4) == 0).sum(axis=-1)
    assert np.all(groups >= 2)
    layers = {s.name: s for s in pr.measure_sparsity(stripped, plans, opts)}
    assert layers["hidden"].requested == 0.5 and layers["hidden"].ok


def test_block_sparsity_zeroes_whole_blocks_of_dense_kernels(trained_models, digits):
    model = trained_models["sequential"]
    opts = small_recipe(pattern="block", block_size="1x4", final_sparsity=0.5).prune
    _, stripped, plans = run_prune(model, digits, opts)
    reasons = {p.name: p.reason for p in plans}
    assert reasons["conv"] == "block sparsity needs a 2-D kernel (Dense)"
    assert reasons["out"].startswith("kernel 16x10 does not divide into 1x4 blocks")
    kernel = stripped.get_layer("hidden").kernel.numpy()
    blocks = (kernel.reshape(kernel.shape[0], -1, 4) == 0).sum(axis=-1)
    assert set(np.unique(blocks)) <= {0, 4}  # a block is all zero or not touched
    assert np.mean(kernel == 0) == pytest.approx(0.5, abs=4 / kernel.size)


def test_shortfall_in_a_pruned_layer_is_reported():
    s = pr.LayerSparsity("fc", "Dense", 1000, 100, 0.75, 0.1, True, "", False)
    with pytest.raises(
        pr.VerificationError, match="layer fc reached sparsity 0.100, below the requested 0.750"
    ):
        pr.check_sparsity([s])


def test_strip_mismatch_raises(trained_models, digits):
    a = trained_models["sequential"]
    b = ka.clone(a)
    w = b.get_weights()
    w[-1] = w[-1] + 1.0
    b.set_weights(w)
    with pytest.raises(pr.VerificationError, match="stripping the pruning wrappers changed"):
        pr.verify_strip(a, b, digits.x_test[:10])


def test_recurrent_layers_are_listed_as_left_dense_not_silently_skipped():
    L = ka.keras.layers
    model = ka.keras.Sequential(
        [ka.keras.Input((8, 8)), L.LSTM(4, unroll=True, name="lstm"), L.Dense(10, name="fc")]
    )
    plans = {p.name: p for p in pr.plan_layers(model, small_recipe().prune)}
    assert plans["lstm"].kernel_shape == (8, 16) and not plans["lstm"].pruned
    assert plans["lstm"].reason == "edgeprune leaves recurrent layers (LSTM) dense"
    assert plans["fc"].pruned
