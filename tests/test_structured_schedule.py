"""Structured pruning schedules on the digits CNN: goals, rounds, the accuracy floor."""

from __future__ import annotations

import pytest

from edgeprune.adapters.keras import sample_loss
from edgeprune.errors import BadInputError
from edgeprune.structured.importance import keras_macs
from edgeprune.structured.rounds import StructuredOptions, prune_structured


def evaluate_accuracy(x, y):
    """``evaluate`` for classification: argmax accuracy on ``x``, ``y``."""
    import numpy as np

    from edgeprune.adapters.keras import predict
    from edgeprune.metrics import predicted_classes

    def run(model) -> float:
        return float(np.mean(predicted_classes(predict(model, x)) == y))

    return run


@pytest.fixture(scope="module")
def trained(digits):
    from edgeprune.models import digits_cnn

    from edgeprune.adapters import keras as ka

    ka.seed_everything(0)
    model = digits_cnn.build()
    ka.compile_for(model, "classification", 1e-3, True)
    ka.fit(model, digits.x_train, digits.y_train, epochs=8, batch_size=32, seed=0)
    return model


def _tools(digits):
    from edgeprune.adapters import keras as ka

    def fine_tune(model):
        ka.compile_for(model, "classification", 1e-3, True)
        ka.fit(model, digits.x_train, digits.y_train, epochs=2, batch_size=32, seed=0)

    return dict(
        x=digits.x_train,
        y=digits.y_train,
        loss=sample_loss("classification", 10, True),
        fine_tune=fine_tune,
        evaluate=evaluate_accuracy(digits.x_test, digits.y_test),
    )


def test_width_goal_halves_every_prunable_layer_and_keeps_accuracy(trained, digits):
    base = evaluate_accuracy(digits.x_test, digits.y_test)(trained)
    res = prune_structured(trained, StructuredOptions(goal="width", target=0.5), **_tools(digits))
    assert base > 0.9
    (only,) = res.rounds
    assert only.removed_channels == 56  # half of 16 + 32 + 64
    assert res.params < res.params_before / 3 and res.macs < res.macs_before / 3
    assert res.macs == keras_macs(res.model)
    assert {w[0] for w in only.widths} == {"conv1", "conv2", "fc1"}
    assert res.kept_whole == (("classifier", "a model output (classifier)"),)
    assert only.metric >= base - 0.02
    assert res.model.output_shape == trained.output_shape


def test_params_goal_in_rounds_reaches_the_reduction(trained, digits):
    res = prune_structured(
        trained,
        StructuredOptions(goal="params", target=3.0, rounds=2, importance="taylor"),
        **_tools(digits),
    )
    assert len(res.rounds) == 2
    assert res.rounds[0].params > res.rounds[1].params
    assert res.params <= res.params_before / 3.0
    # bisection lands close to the goal, not far past it
    assert res.params >= res.params_before / 3.0 * 0.85


def test_macs_goal_with_uniform_ranking(trained, digits):
    res = prune_structured(
        trained,
        StructuredOptions(goal="macs", target=2.0, ranking="uniform", importance="obd"),
        **_tools(digits),
    )
    assert res.macs <= res.macs_before / 2.0


def test_accuracy_floor_stops_and_keeps_the_last_good_model(trained, digits):
    res = prune_structured(
        trained,
        StructuredOptions(goal="width", target=0.1, rounds=2, min_accuracy=1.01),
        **_tools(digits),
    )
    assert res.rounds == () and res.model is trained
    assert "below the floor 1.01; kept the unpruned model" in res.stopped
    assert res.notes == ("no round met the accuracy floor: the model is unchanged",)


@pytest.mark.parametrize(
    "opts,message",
    [
        (StructuredOptions(goal="depth"), "unknown"),
        (StructuredOptions(goal="width", target=1.5), "must be in (0, 1]"),
        (StructuredOptions(goal="params", target=0.5), "must be >= 1"),
        (StructuredOptions(rounds=0), "at least 1"),
    ],
)
def test_bad_options_are_refused(trained, opts, message):
    with pytest.raises(BadInputError, match=message.replace("(", r"\(").replace("]", r"\]")):
        prune_structured(trained, opts)


def test_a_model_with_nothing_to_cut_says_why():
    from edgeprune.adapters.keras import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="only")])
    with pytest.raises(BadInputError, match="only: a model output"):
        prune_structured(model, StructuredOptions())


def test_fit_goal_keeps_the_widest_model_that_fits(trained, digits):
    """``fits`` stands in for the device check here (the pipeline test uses a
    real profile): the result fits, and the search's narrowest failure is wider."""
    limit = 12_000
    res = prune_structured(
        trained,
        StructuredOptions(goal="fit", rounds=1),
        fits=lambda m: m.count_params() <= limit,
        verify_x=digits.x_test[:64],
        **_tools(digits),
    )
    (only,) = res.rounds
    assert res.params <= limit
    fitting = [w for w, ok in res.fit_trials if ok]
    failing = [w for w, ok in res.fit_trials if not ok]
    assert res.fit_trials[0] == (1.0, False)
    assert only.width == max(fitting)
    assert 0 < min(failing) - only.width < 0.05  # bisection got close to the boundary
    assert only.rebuild_max_abs_diff is not None and only.verify_samples == 64


def test_fit_goal_removes_nothing_from_a_model_that_already_fits(trained, digits):
    res = prune_structured(trained, StructuredOptions(goal="fit"), fits=lambda m: True)
    assert res.rounds == () and res.model is trained
    assert "already fits" in res.notes[0]


def test_fit_goal_in_rounds_ends_fitting(trained, digits):
    limit = 12_000
    res = prune_structured(
        trained,
        StructuredOptions(goal="fit", rounds=2),
        fits=lambda m: m.count_params() <= limit,
        **_tools(digits),
    )
    assert len(res.rounds) == 2
    assert res.rounds[0].params > limit >= res.rounds[1].params


def test_fit_goal_without_a_device_is_refused(trained):
    with pytest.raises(BadInputError, match="needs a target device"):
        prune_structured(trained, StructuredOptions(goal="fit"))
