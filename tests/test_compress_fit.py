"""The structured goal fit with ``[compress]``: a candidate width is judged by the model
the compress stage would ship (edgeprune.stages.compress.would_ship), not by the dense
int8 model. Budgets are set between the dense and the compressed figures measured
here, so that judging the wrong model gives the wrong answer."""

from __future__ import annotations

import os

import pytest

from edgeprune.adapters import keras as ka
from edgeprune.recipe import build_recipe
from edgeprune.stages.inputs import resolve_inputs
from edgeprune.stages.structured import _fit_check
from edgeprune.target import load_target

TARGET = "nano33ble"


@pytest.fixture(scope="module")
def baseline(run_dir):
    """The trained full-width digits CNN of the shared run (not yet pruned)."""
    return ka.load_model(os.path.join(run_dir, "baseline.keras"))


@pytest.fixture(scope="module")
def measured(tmp_path_factory, baseline):
    """The full-width candidate judged dense and with prune compression, no budget set."""
    tmp = tmp_path_factory.mktemp("fit")
    return _judge(tmp, baseline, "none"), _judge(tmp, baseline, "prune")


def _judge(tmp_path, model, method: str, clusters: int = 0, **budget):
    recipe = build_recipe(
        {
            "compress": {"method": method},
            "cluster": {"clusters": clusters},
            "budget": budget,
            "prune": {"final_sparsity": 0.75},
        }
    )
    inp = resolve_inputs(None, None, recipe, str(tmp_path / "fit"))
    trials = []
    ok = _fit_check(inp, load_target(TARGET), trials)(model)
    (candidate,) = trials
    assert candidate.ok == ok
    return candidate


def test_fit_judges_a_width_by_the_compressed_model_that_would_ship(tmp_path, baseline, measured):
    dense, shipped = measured
    dense_flash, flash = dense.rules["flash"].figure, shipped.rules["flash"].figure
    dense_ram, ram = dense.rules["ram"].figure, shipped.rules["ram"].figure
    # prune compression of the 75 % sparse weights: less flash, more RAM (decoded weights)
    assert flash < dense_flash - 6_228 and ram > dense_ram
    # a flash budget only the compressed model meets: the width is not rejected
    between = (flash + dense_flash) // 2
    fits = _judge(tmp_path, baseline, "prune", max_flash_bytes=between)
    assert fits.ok and fits.rules["flash"].figure == flash <= between < dense_flash
    # a RAM budget only the dense model meets, while the compressed one ships: rejected
    between = (ram + dense_ram) // 2
    over = _judge(tmp_path, baseline, "prune", max_ram_bytes=between)
    assert not over.ok and over.rules["ram"].figure == ram > between
    assert over.rules["flash"].figure == flash  # the compressed flash, not the dense


def test_lut_is_judged_on_the_clustered_weights_and_dense_when_nothing_clusters(
    tmp_path, baseline, measured
):
    dense, prune = measured
    # lut on weights nobody clustered finds nothing worth encoding: the dense model ships
    lut = _judge(tmp_path, baseline, "lut")
    assert lut.rules["flash"].figure == dense.rules["flash"].figure
    assert lut.rules["ram"].figure == dense.rules["ram"].figure
    # clustered to 4 values (zero one of them) as the quantize stage will: 2-bit indices
    clustered = _judge(tmp_path, baseline, "lut", clusters=4)
    assert clustered.rules["flash"].figure < prune.rules["flash"].figure


@pytest.mark.slow
def test_run_structured_fit_keeps_the_full_width_that_fits_only_compressed(
    tmp_path, run_dir, measured
):
    """A flash budget between the full-width model's dense and compressed figures:
    judged dense, the fit would remove channels; judged by what ships, nothing is
    removed, the compressed model ships, and the run's final check passes."""
    from edgeprune import pipeline

    dense, shipped = measured
    budget = (shipped.rules["flash"].figure + dense.rules["flash"].figure) // 2
    recipe = build_recipe(
        {
            "train": {"epochs": 3},
            "prune": {"epochs": 2, "final_sparsity": 0.75},
            "quantize": {"calibration_samples": 50},
            "structured": {"goal": "fit", "epochs": 1},
            "compress": {"method": "prune"},
            "budget": {"max_flash_bytes": budget},
        }
    )
    model = os.path.join(run_dir, "baseline.keras")
    out = str(tmp_path / "r")
    result = pipeline.run(model=model, data="digits", recipe=recipe, out=out, target=TARGET)
    st = result.report.stages.structured
    assert st.rounds == () and "already fits" in st.notes[0]
    (candidate,) = st.fit.candidates
    assert candidate.ok and candidate.rules["flash"].figure <= budget < dense.rules["flash"].figure
    assert result.compress.tflite is not None and result.check.ok
