"""Structured pruning inside the pipeline: the stage, its report, the fit goal
against a real device profile, and its combination with the tfmot stage."""

from __future__ import annotations

import json

import pytest

import edgeprune.pipeline as pipeline
from edgeprune.recipe import build_recipe


def _recipe(**structured):
    return build_recipe(
        {
            "train": {"epochs": 6},
            "prune": {"epochs": 2},
            "quantize": {"calibration_samples": 50},
            "structured": {"epochs": 2, **structured},
        }
    )


@pytest.fixture(scope="module")
def width_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("structured") / "width"
    return pipeline.run(recipe=_recipe(goal="width", width=0.5), out=str(out))


def test_width_stage_shrinks_the_model_and_the_tfmot_stage_follows_it(width_run):
    from edgeprune.adapters import keras as ka

    r = width_run.report
    st = r.stages.structured
    assert list(r.to_dict()["stages"])[:3] == ["baseline", "structured", "prune"]
    assert st.params_after < st.params_before / 3
    (only,) = st.rounds
    assert only.width == pytest.approx(0.5, abs=0.01)
    assert only.rebuild_max_abs_diff < 1e-4 and only.verify_samples == 256
    assert st.metric_split == "test"  # the digits split has no x_val
    sizes = width_run.sizes
    assert sizes["structured"].bytes < sizes["baseline"].bytes / 3
    assert sizes["structured"].parameter_count == st.params_after
    # the tfmot stage pruned the narrower model: its layers have the new widths
    narrowed = ka.load_model(width_run.structured.keras.path)
    fc1 = next(lay for lay in width_run.prune.layers if lay.name == "fc1")
    assert fc1.weights == narrowed.get_layer("fc1").get_weights()[0].size
    assert sizes["pruned"].bytes == sizes["structured"].bytes  # zeros are stored
    assert sizes["final"].bytes < sizes["baseline"].bytes / 8  # int8 of a 4x smaller model
    assert any("Structured pruning removed whole channels" in n for n in r.notes)
    with open(width_run.report_path) as fh:
        written = json.load(fh)
    assert written["artifacts"]["structured.keras"]["stage"] == "structured"
    assert written["artifacts"]["structured_float32.tflite"]["stage"] == "structured"
    acc = {k: e.figures["accuracy"] for k, e in r.stages.evaluate.items()}
    assert acc["structured"] > acc["baseline"] - 0.05


def test_summary_prints_the_structured_stage(width_run):
    from edgeprune.presentation.summary import format_run

    text = format_run(width_run)
    assert "structured pruning: goal width 0.5, l1 importance" in text
    assert "rebuild verified on 256 samples" in text
    assert "structured_float32.tflite" in text


@pytest.mark.slow
def test_fit_goal_keeps_the_widest_model_that_passes_the_device(tmp_path):
    """A latency budget the dense digits CNN misses on the nano33ble profile: the
    stage keeps the widest candidate whose int8 model passes, and the final
    check of the whole pipeline (after the tfmot stage) passes too."""
    recipe = build_recipe({**_recipe(goal="fit").to_dict(), "budget": {"max_latency_ms": 15.0}})
    result = pipeline.run(recipe=recipe, out=str(tmp_path / "fit"), target="nano33ble")
    fit = result.report.stages.structured.fit
    cands = fit.candidates
    assert fit.target == "nano33ble" and cands[0].width == 1.0 and not cands[0].ok
    assert cands[0].rules["latency"].figure > 15.0
    assert cands[0].rules["latency"].basis == "estimate"
    widest = max((c for c in cands if c.ok), key=lambda c: c.width)
    narrowest_bad = min((c for c in cands if not c.ok), key=lambda c: c.width)
    assert widest.width < narrowest_bad.width < widest.width + 0.05
    assert result.report.stages.structured.rounds[-1].width == widest.width
    assert result.check.ok
    latency = next(r for r in result.check.rules if r.name == "latency")
    assert latency.figure <= 15.0


@pytest.mark.slow
def test_fit_goal_on_a_model_that_already_fits_removes_nothing(tmp_path):
    result = pipeline.run(recipe=_recipe(goal="fit"), out=str(tmp_path / "fits"), target="esp32s3")
    st = result.report.stages.structured
    assert st.rounds == () and st.params_after == st.params_before
    assert "already fits" in st.notes[0]
    assert [c.ok for c in st.fit.candidates] == [True]


@pytest.mark.parametrize(
    "name,data,shape",
    [
        ("kws_synthetic", "ds_cnn", (49, 10, 1)),
        ("vww_synthetic", "mobilenet_v1", (96, 96, 3)),
        ("ic_synthetic", "resnet8", (32, 32, 3)),
        ("ad_synthetic", "autoencoder", (640,)),
    ],
)
def test_generated_datasets_have_their_models_shapes_and_are_stable(name, data, shape):
    from edgeprune.models import BUILTIN_MODELS

    from edgeprune.data import load_dataset

    ds = load_dataset(name)
    assert BUILTIN_MODELS[data].dataset == name
    assert ds.x_train.shape[1:] == shape and len(ds.x_test) > 0
    assert ds.sha256 == load_dataset(name).sha256
    if name == "ad_synthetic":
        assert BUILTIN_MODELS[data].task == "regression"
        assert (ds.y_train == ds.x_train).all()


@pytest.mark.slow
def test_builtin_reference_model_runs_with_a_mac_goal(tmp_path):
    """The DS-CNN reference on its generated data, through the whole pipeline
    with a 2x MAC goal and Taylor importance; the structured stage reports a
    verified rebuild and the final int8 model has the reduced MAC count."""
    from edgeprune.estimates.opcost import model_cost
    from edgeprune.tflite import inspect_model

    recipe = build_recipe(
        {
            "train": {"epochs": 1},
            "prune": {"epochs": 1},
            "quantize": {"calibration_samples": 32},
            "structured": {
                "goal": "macs",
                "reduction": 2.0,
                "epochs": 1,
                "importance": "taylor",
                "samples": 32,
            },
        }
    )
    result = pipeline.run("ds_cnn", recipe=recipe, out=str(tmp_path / "kws"))
    st = result.report.stages.structured
    assert result.report.inputs.data_name == "kws_synthetic"
    assert st.macs_before == 2_656_768 and st.macs_reduction >= 2.0
    assert st.rounds[0].rebuild_max_abs_diff < 1e-4
    final = model_cost(inspect_model(result.quantize.tflite.data)).macs
    assert final == st.macs_after


def test_regression_rounds_report_mse_not_its_negative():
    """The schedule maximises its metric, so regression rounds carry -MSE; the
    report and the summary give the MSE itself."""
    from edgeprune.presentation.summary import structured_lines
    from edgeprune.stages.structured import structured_entry
    from edgeprune.structured.rounds import RoundResult, StructuredResult

    rounds = (RoundResult(1, 10, 500, 900, -0.25, (("dense1", 64, 32),), 0.5, 1e-7, 64),)
    entry = structured_entry(
        StructuredResult(None, 1000, 2000, rounds, ()),
        _recipe(goal="width", width=0.5),
        "test",
        "mse",
        None,
        1.0,
    )
    assert entry.rounds[0].metric == 0.25 and entry.metric_name == "mse"
    text = "\n".join(structured_lines(entry))
    assert "test mse 0.25" in text and "widths: dense1 64->32" in text
    assert "params 1,000 -> 500 (2.00x), MACs 2,000 -> 900 (2.22x)" in text
