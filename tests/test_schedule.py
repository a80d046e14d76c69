import numpy as np
import pytest

from edgeprune.errors import ScheduleError
from edgeprune.recipe_options import PruneOptions
from edgeprune.schedule import _update_steps, plan_schedule, sparsity_at


def opts(**kw):
    base = dict(epochs=3, batch_size=10)
    base.update(kw)
    return PruneOptions(**base)


@pytest.mark.parametrize(
    "n_train,epochs,batch", [(1437, 10, 32), (100, 1, 10), (7, 2, 32), (5000, 4, 128)]
)
def test_derived_polynomial_schedule_ends_on_an_update_step(n_train, epochs, batch):
    plan = plan_schedule(opts(epochs=epochs, batch_size=batch), n_train)
    assert plan.derived
    assert plan.end_step <= plan.total_steps
    assert (plan.end_step - plan.begin_step) % plan.frequency == 0
    assert plan.last_update_step == plan.end_step
    assert plan.reached_sparsity == pytest.approx(0.75)


def test_constant_schedule_reaches_target_at_first_update():
    plan = plan_schedule(opts(schedule="constant", final_sparsity=0.6), 100)
    assert plan.end_step == -1
    assert plan.reached_sparsity == pytest.approx(0.6)
    assert plan.mask_updates >= 1


def test_frequency_longer_than_training_is_an_error_before_training():
    # 3 epochs x 30 batches = 90 steps; one mask update every 100 steps never happens.
    with pytest.raises(
        ScheduleError,
        match=r"never updates its masks.*90 steps.*lower "
        r"prune.frequency or raise prune.epochs",
    ):
        plan_schedule(opts(schedule="constant", frequency=100), 300)


def test_end_step_past_training_is_an_error():
    with pytest.raises(
        ScheduleError,
        match=r"ends at step 1000, but fine-tuning runs 90 steps"
        r".*lower prune.end_step or raise prune.epochs",
    ):
        plan_schedule(opts(begin_step=0, end_step=1000, frequency=10), 300)


def test_end_step_off_the_frequency_grid_is_an_error():
    with pytest.raises(ScheduleError, match=r"multiple of prune.frequency"):
        plan_schedule(opts(begin_step=0, end_step=55, frequency=10), 300)


def test_m_by_n_plan_ignores_the_schedule():
    plan = plan_schedule(opts(pattern="m_by_n", m_by_n=(2, 4)), 300)
    assert plan.kind == "m_by_n" and plan.reached_sparsity == 0.5


@pytest.mark.parametrize("total_steps", [9, 12, 25])
def test_step_model_matches_tfmot(total_steps):
    """Our simulation of tfmot's step counter predicts the sparsity tfmot reaches."""
    import tensorflow_model_optimization as tfmot

    from edgeprune.adapters import keras as ka

    keras = ka.keras
    ka.seed_everything(0)
    begin, end, freq = 0, 20, 5
    model = keras.Sequential(
        [
            keras.Input((16,)),
            tfmot.sparsity.keras.prune_low_magnitude(
                keras.layers.Dense(64),
                pruning_schedule=tfmot.sparsity.keras.PolynomialDecay(
                    0.0, 0.8, begin, end, power=1, frequency=freq
                ),
            ),
        ]
    )
    model.compile("sgd", "mse")
    x = np.random.default_rng(0).normal(size=(total_steps, 16)).astype("float32")
    model.fit(
        x,
        np.zeros((total_steps, 64), "float32"),
        batch_size=1,
        epochs=1,
        verbose=0,
        callbacks=[tfmot.sparsity.keras.UpdatePruningStep()],
    )
    kernel = tfmot.sparsity.keras.strip_pruning(model).layers[0].kernel.numpy()
    achieved = float(np.mean(kernel == 0))
    updates = _update_steps(begin, end, freq, total_steps)
    predicted = sparsity_at(
        "polynomial_decay", updates[-1], initial=0.0, final=0.8, power=1, begin=begin, end=end
    )
    assert achieved == pytest.approx(predicted, abs=1 / kernel.size)


def test_end_step_without_frequency_gets_a_dividing_frequency():
    plan = plan_schedule(opts(begin_step=0, end_step=100, epochs=4), 300)
    assert 100 % plan.frequency == 0 and plan.frequency <= 100 // 16
    assert plan.reached_sparsity == pytest.approx(0.75)


def test_constant_schedule_with_early_end_step_names_the_end_step():
    with pytest.raises(
        ScheduleError,
        match=r"first update \(step 10\) comes after "
        r"prune.end_step = 5",
    ):
        plan_schedule(opts(schedule="constant", end_step=5, frequency=10), 300)
    plan = plan_schedule(opts(schedule="constant", end_step=32), 300)
    assert plan.last_update_step <= 32 and plan.reached_sparsity == pytest.approx(0.75)
