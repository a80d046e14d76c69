"""The library API end to end on user models of each shape and format."""

import errno
import json
import os
import shutil
from dataclasses import replace

import numpy as np
import pytest
from conftest import small_recipe

import edgeprune.pipeline as pipeline


def save(model, path):
    model.save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def autoencoder_npz(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("ae") / "ae.npz"
    np.savez(
        path,
        x_train=digits.x_train,
        y_train=digits.x_train,
        x_test=digits.x_test,
        y_test=digits.x_test,
        x_calib=digits.x_train[:32],
    )
    return str(path)


def test_autoencoder_is_regression_with_mse(trained_models, autoencoder_npz, tmp_path):
    model = save(trained_models["autoencoder"], tmp_path / "ae.keras")
    result = pipeline.run(
        model, autoencoder_npz, small_recipe(final_sparsity=0.5), str(tmp_path / "run")
    )
    assert result.task == "regression"
    final = result.report.stages.evaluate["final"].figures
    base = result.report.stages.evaluate["baseline"].figures
    assert set(final) >= {"mse", "mae", "mse_vs_baseline", "max_abs_diff_vs_baseline"}
    assert final["mse"] < 2 * base["mse"] + 0.01
    assert result.quality.name == "mse" and result.quality.key == "quantize.max_mse_increase"
    assert result.quantize.calibration_source == "x_calib"
    assert result.quantize.calibration_samples == 32


def test_depthwise_h5_model_names_the_skipped_depthwise_kernel(
    trained_models, digits_npz, tmp_path
):
    model = save(trained_models["depthwise"], tmp_path / "dw.h5")
    result = pipeline.run(
        model, digits_npz, small_recipe(final_sparsity=0.5), str(tmp_path / "run")
    )
    skipped = result.report.stages.prune.skipped_layers
    assert skipped == {"dw": "tfmot does not prune the depthwise_kernel of DepthwiseConv2D layers"}
    layers = {s.name: s for s in result.prune.layers}
    assert layers["dw"].requested == 0.0 and layers["pw"].achieved == pytest.approx(0.5, 0.02)
    assert result.report.stages.evaluate["final"].figures["accuracy"] > 0.5


@pytest.mark.parametrize("mode", ["float16", "float32"])
def test_savedmodel_input_and_float_modes(trained_models, digits_npz, tmp_path, mode):
    model = save(trained_models["sequential"], tmp_path / "seq_savedmodel")
    recipe = small_recipe(schedule="constant", final_sparsity=0.5)

    recipe = replace(recipe, quantize=replace(recipe.quantize, mode=mode))
    result = pipeline.run(model, digits_npz, recipe, str(tmp_path / "run"))
    assert result.sizes["final"].path == f"final_{mode}.tflite"
    assert result.sizes["final"].zero_weight_fraction == pytest.approx(
        result.prune.overall_sparsity, abs=0.01
    )
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["stages"]["quantize"]["calibration_samples"] == 0
    assert report["inputs"]["model"].endswith("seq_savedmodel")


def test_binary_logit_model_uses_a_probability_threshold(digits, tmp_path):
    from edgeprune.adapters import keras as ka

    ka.seed_everything(0)
    keras = ka.keras
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(1, name="logit"),
        ]
    )
    y_train, y_test = (digits.y_train >= 5).astype(int), (digits.y_test >= 5).astype(int)
    model.compile("adam", keras.losses.BinaryCrossentropy(from_logits=True))
    model.fit(digits.x_train, y_train, epochs=5, verbose=0)
    data = tmp_path / "binary.npz"
    np.savez(data, x_train=digits.x_train, y_train=y_train, x_test=digits.x_test, y_test=y_test)
    result = pipeline.run(
        save(model, tmp_path / "binary.keras"),
        str(data),
        small_recipe(final_sparsity=0.5),
        str(tmp_path / "run"),
    )
    assert result.task == "classification" and result.report.inputs.n_classes == 2
    logits = ka.predict(model, digits.x_test)[:, 0]
    assert np.any((logits >= 0) & (logits < 0.5))  # where a 0.5 cut on logits would err
    predicted = (logits >= 0).astype(int)
    cm = [[int(np.sum((y_test == t) & (predicted == p))) for p in (0, 1)] for t in (0, 1)]
    assert result.report.stages.evaluate["baseline"].figures["confusion_matrix"] == cm
    assert result.report.stages.evaluate["final"].figures["accuracy"] > 0.8


def test_quantize_strips_a_model_saved_with_pruning_wrappers(trained_models, digits_npz, tmp_path):
    import tensorflow_model_optimization as tfmot

    wrapped = tfmot.sparsity.keras.prune_low_magnitude(trained_models["sequential"])
    path = save(wrapped, tmp_path / "wrapped.keras")
    result = pipeline.quantize_only(path, digits_npz, small_recipe(), str(tmp_path / "q"))
    report = json.loads((tmp_path / "q" / "report.json").read_text())
    assert report["inputs"]["stripped_pruning_wrappers_on_load"] is True
    assert "VAR_HANDLE" not in result.sizes["final"].ops  # no variable ops: it was stripped
    assert result.evaluations[0].agreement["agreement"] >= 0.95


def test_model_with_dynamic_spatial_input_is_evaluated_at_the_data_shape(digits_npz, tmp_path):
    from edgeprune.adapters import keras as ka

    ka.seed_everything(0)
    keras = ka.keras
    inp = keras.Input((None, None, 1))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inp)
    x = keras.layers.GlobalMaxPooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(10, activation="softmax", name="out")(x))
    result = pipeline.run(
        save(model, tmp_path / "dyn.keras"),
        digits_npz,
        small_recipe(final_sparsity=0.5),
        str(tmp_path / "run"),
    )
    assert {e.stage for e in result.evaluations} == {"baseline", "pruned", "final"}
    assert result.report.stages.quantize.check.ok and result.quality.ok


def test_separable_conv_prunes_its_pointwise_kernel(digits_npz, tmp_path):
    from edgeprune.adapters import keras as ka

    ka.seed_everything(0)
    keras = ka.keras
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Conv2D(8, 3, name="conv"),
            keras.layers.SeparableConv2D(16, 3, name="sep"),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax", name="out"),
        ]
    )
    result = pipeline.run(
        save(model, tmp_path / "sep.keras"),
        digits_npz,
        small_recipe(final_sparsity=0.5),
        str(tmp_path / "run"),
    )
    layers = {s.name: s for s in result.prune.layers}
    assert layers["sep"].pruned and layers["sep"].weights == 8 * 16
    assert layers["sep"].achieved == pytest.approx(0.5, abs=1 / 128)


def test_nested_model_is_refused_not_silently_skipped(tmp_path, digits_npz):
    from edgeprune.adapters import keras as ka
    from edgeprune.errors import UnsupportedModelError

    keras = ka.keras
    inp = keras.Input((8, 8, 1))
    backbone = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(16)], name="backbone"
    )
    model = keras.Model(inp, keras.layers.Dense(10, name="head")(backbone(inp)))
    with pytest.raises(UnsupportedModelError, match="contains the nested model.s. backbone"):
        pipeline.run(
            save(model, tmp_path / "nested.keras"),
            digits_npz,
            small_recipe(),
            str(tmp_path / "run"),
        )
    assert not (tmp_path / "run").exists()


def test_builtin_model_on_float_targets_says_it_is_a_classifier(tmp_path, digits):
    from edgeprune.errors import DataError

    data = tmp_path / "ae.npz"
    np.savez(
        data,
        x_train=digits.x_train,
        y_train=digits.x_train,
        x_test=digits.x_test,
        y_test=digits.x_test,
    )
    with pytest.raises(DataError, match="the built-in digits_cnn is a classifier"):
        pipeline.run(None, str(data), small_recipe(), str(tmp_path / "run"))


# ---------------------------------------------------------------- no half-written runs


def _listing(folder):
    return sorted(
        os.path.relpath(os.path.join(root, name), folder)
        for root, _, names in os.walk(folder)
        for name in names
    )


def test_recurrent_model_is_refused_before_anything_is_written(tmp_path):
    from edgeprune.adapters import keras as ka
    from edgeprune.errors import UnsupportedModelError

    keras = ka.keras
    data = tmp_path / "seq.npz"
    x = np.random.default_rng(0).random((40, 6, 4), dtype=np.float32)
    y = np.arange(40) % 3
    np.savez(data, x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    model = keras.Sequential(
        [keras.Input((6, 4)), keras.layers.LSTM(8, name="rnn"), keras.layers.Dense(3, "softmax")]
    )
    with pytest.raises(UnsupportedModelError) as err:
        pipeline.run(save(model, tmp_path / "lstm.keras"), str(data), small_recipe(), "unused")
    assert str(err.value).startswith("layer rnn is a LSTM that is not unrolled")
    assert "rebuild it with LSTM(..., unroll=True) and a fixed sequence length" in str(err.value)
    out = tmp_path / "run"
    with pytest.raises(UnsupportedModelError, match="layer rnn is a LSTM"):
        pipeline.quantize_only(str(tmp_path / "lstm.keras"), str(data), small_recipe(), str(out))
    assert not out.exists() and not os.path.exists("unused")


@pytest.fixture
def previous_run(run_dir, tmp_path):
    """A copy of a finished run folder (built-in digits CNN), plus a user's own file."""
    folder = tmp_path / "run"
    shutil.copytree(run_dir, folder)
    (folder / "notes.txt").write_text("mine")
    return folder


def test_run_failing_after_its_writes_leaves_no_artifact(previous_run, monkeypatch):
    from edgeprune import artifacts

    written = []
    write_bytes = artifacts.write_bytes_atomic

    def disk_full(path, data):
        if os.path.basename(path) != "report.json":
            return write_bytes(path, data)
        written.extend(os.listdir(previous_run))
        with artifacts.atomic_path(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(artifacts, "write_bytes_atomic", disk_full)  # report.json's writer
    with pytest.raises(artifacts.ArtifactWriteError) as err:
        pipeline.run(None, "digits", small_recipe(), str(previous_run), target="nano33ble")
    report = previous_run / "report.json"
    assert str(err.value) == (
        f"writing {report} failed (No space left on device); check free space "
        f"and permissions of {previous_run}"
    )
    # baseline, pruned and final models and firmware/ were written, then removed with
    # the old run's files
    assert {"baseline.keras", "pruned.keras", "final_int8.tflite", "firmware"} <= set(written)
    assert _listing(previous_run) == ["notes.txt"] and os.listdir(previous_run) == ["notes.txt"]


def test_stage_command_failing_after_its_write_keeps_the_stages_before_it(
    previous_run, monkeypatch
):
    from edgeprune import report
    from edgeprune.errors import DataError

    def broken(*args, **kwargs):
        raise DataError("evaluation failed")

    before = report.read(previous_run / "report.json")
    assert before.stages.quantize is not None
    (previous_run / ".final_int8.tflite.k3x_9abz.tmp").write_bytes(b"half")  # a kill -9's
    monkeypatch.setattr(pipeline, "evaluate_stage", broken)  # after final_int8.tflite
    with pytest.raises(DataError, match="evaluation failed"):
        pipeline.quantize_only(
            str(previous_run / "pruned.keras"), "digits", small_recipe(), str(previous_run)
        )
    after = report.read(previous_run / "report.json")
    for stage in ("baseline", "prune"):  # kept, now saying what they ran on (as merges do)
        kept, old = getattr(after.stages, stage), getattr(before.stages, stage)
        assert replace(kept, input=None, seed=None, recipe=None) == old
        assert kept.input == before.inputs.to_dict()
    assert after.stages.quantize is None
    assert set(after.sizes) == {"baseline", "pruned"}
    listed = {n: a["sha256"] for n, a in after.artifacts.items()}
    assert "final_int8.tflite" not in listed and "pruned.keras" in listed
    # the leftover of a killed write is gone, and so is the final model this command wrote
    assert _listing(previous_run) == sorted([*listed, "notes.txt", "report.json"])
    from edgeprune.artifacts import sha256_file

    assert all(sha256_file(previous_run / n) == sha for n, sha in listed.items())


def test_model_the_converter_refuses_leaves_the_previous_run_untouched(
    previous_run, monkeypatch, trained_models, digits_npz
):
    from edgeprune.adapters import converter

    def refuses(model, mode, *args, **kwargs):
        raise converter.ConversionError(f"the TFLite converter failed in {mode} mode: no")

    before = {name: (previous_run / name).read_bytes() for name in _listing(previous_run)}
    monkeypatch.setattr(converter, "to_tflite", refuses)
    model = save(trained_models["sequential"], previous_run.parent / "seq.keras")
    with pytest.raises(converter.ConversionError, match="failed in float32 mode"):
        pipeline.run(model, digits_npz, small_recipe(), str(previous_run), force=True)
    assert {name: (previous_run / name).read_bytes() for name in _listing(previous_run)} == before


@pytest.mark.parametrize("meta", ["[1, 2]", "{", '"key"', "\xff"])
def test_damaged_baseline_cache_is_retrained_not_an_error(tmp_path, meta):
    from edgeprune import artifacts
    from edgeprune.stages.baseline import _load_cached_baseline

    out = artifacts.RunDir(str(tmp_path))
    (tmp_path / artifacts.BASELINE_KERAS).write_bytes(b"model")
    (tmp_path / artifacts.BASELINE_META).write_bytes(meta.encode("latin-1"))
    assert _load_cached_baseline(out, {"model": "digits_cnn"}) is None


def test_ctrl_c_during_a_run_removes_what_it_wrote_and_the_folder_it_made(
    tmp_path, monkeypatch, trained_models, digits_npz
):
    written = []

    journal = []

    def interrupted(inp, model):
        written.extend(os.listdir(inp.out.path))
        journal.extend(open(os.path.join(inp.out.path, ".edgeprune.lock")).read().splitlines())
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "prune_stage", interrupted)
    model = save(trained_models["sequential"], tmp_path / "seq.keras")
    with pytest.raises(KeyboardInterrupt):
        pipeline.run(model, digits_npz, small_recipe(), str(tmp_path / "new" / "run"))
    assert {"baseline.keras", "baseline_float32.tflite"} <= set(written)
    assert os.listdir(tmp_path) == ["seq.keras"]
    # what a kill -9 (no cleanup in process) would leave for the next run to remove
    assert journal[0].startswith(f"pid {os.getpid()}, run, started ")
    assert journal[1:] == [
        f"may write {name}"
        for name in (
            "baseline.keras",
            "baseline_float32.tflite",
            "final_int8.tflite",
            "pruned.keras",
            "pruned_float32.tflite",
        )
    ]
