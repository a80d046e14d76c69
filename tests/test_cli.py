"""The command line end to end, and every bad-input case on its message and exit code."""

from __future__ import annotations

import ast
import inspect as pyinspect
import json
import os
import subprocess
import sys
import textwrap

import click
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import build_tiny, train_tiny

from edgeprune.artifacts import sha256_file
from edgeprune.cli import main

QUICK = ["--train-epochs", "4", "--epochs", "2", "--calibration-samples", "50"]


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "default"
    result = invoke("run", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out, result


def test_default_run_meets_the_accuracy_bar_at_75_percent(default_run):
    out, result = default_run
    report = json.loads((out / "report.json").read_text())
    final = report["stages"]["evaluate"]["final"]
    assert final["accuracy"] >= 0.95
    assert report["stages"]["prune"]["overall_sparsity"] == pytest.approx(0.75, abs=0.002)
    assert report["sizes"]["final"]["zero_weight_fraction"] == pytest.approx(0.75, abs=0.002)
    assert report["stages"]["quantize"]["mode"] == "int8"
    assert report["stages"]["strip"]["equal"] is True
    assert "final_int8.tflite" in result.output and "accuracy" in result.output


def test_report_hashes_every_artifact_and_records_versions(default_run):
    out, _ = default_run
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 2
    assert report["seed"] == 0
    assert report["recipe"]["prune"]["final_sparsity"] == 0.75
    for lib in ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert"):
        assert report["versions"][lib]
    names = set(report["artifacts"])
    assert {
        "baseline.keras",
        "baseline_float32.tflite",
        "pruned.keras",
        "pruned_float32.tflite",
        "final_int8.tflite",
    } <= names
    for name, entry in report["artifacts"].items():
        assert entry["sha256"] == sha256_file(out / name)
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no temporary leftovers


def test_flatbuffer_size_is_reported_dense(default_run):
    """Unstructured sparsity must not be reported as a flash saving."""
    out, _ = default_run
    report = json.loads((out / "report.json").read_text())
    base, pruned = report["sizes"]["baseline"], report["sizes"]["pruned"]
    assert pruned["bytes"] == os.path.getsize(out / "pruned_float32.tflite")
    assert abs(pruned["bytes"] - base["bytes"]) < 0.01 * base["bytes"]
    assert pruned["gzip_bytes"] < 0.6 * base["gzip_bytes"]
    assert "does not shrink the flatbuffer" in report["notes"][0]


def test_rerun_reuses_cached_baseline_with_identical_metrics(default_run, tmp_path):
    out, _ = default_run
    first = json.loads((out / "report.json").read_text())
    result = invoke("run", "--out", str(out))
    assert result.exit_code == 0, result.output
    second = json.loads((out / "report.json").read_text())
    assert second["stages"]["baseline"]["cached"] is True
    assert second["stages"]["evaluate"] == first["stages"]["evaluate"]
    # the cached file is not rewritten, so it stays a valid cache for the next run
    assert second["artifacts"]["baseline.keras"] == first["artifacts"]["baseline.keras"]


def test_same_seed_same_metrics_from_scratch(tmp_path):
    runs = []
    for name in ("a", "b"):
        result = invoke("run", "--out", str(tmp_path / name), *QUICK)
        assert result.exit_code == 0, result.output
        runs.append(json.loads((tmp_path / name / "report.json").read_text()))
    assert runs[0]["stages"]["evaluate"] == runs[1]["stages"]["evaluate"]
    assert (
        runs[0]["artifacts"]["final_int8.tflite"]["sha256"]
        == runs[1]["artifacts"]["final_int8.tflite"]["sha256"]
    )


@pytest.mark.parametrize(
    "args,sparsity",
    [
        (["--pattern", "m_by_n", "--m-by-n", "2:4"], 0.5),
        (["--pattern", "block", "--block-size", "1x4"], 0.75),
        (["--schedule", "constant"], 0.75),
    ],
)
def test_default_model_other_patterns_keep_accuracy(args, sparsity, default_run, tmp_path):
    import shutil

    (tmp_path / "run").mkdir()
    for name in ("baseline.keras", "baseline.json"):  # reuse the cached baseline
        shutil.copy(default_run[0] / name, tmp_path / "run" / name)
    result = invoke("run", "--out", str(tmp_path / "run"), *args)
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["stages"]["baseline"]["cached"] is True
    assert report["stages"]["evaluate"]["final"]["accuracy"] >= 0.95
    pruned = [s for s in report["stages"]["prune"]["layers"] if s["pruned"]]
    assert pruned and all(s["achieved"] >= sparsity - 0.01 for s in pruned)
    for s in report["stages"]["prune"]["layers"]:
        assert s["pruned"] or s["reason"]  # every layer left dense says why


# ------------------------------------------------------------------ inspect and help


@pytest.fixture(scope="module")
def residual_model(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("models") / "residual.keras"
    train_tiny(build_tiny("residual"), digits, epochs=6).save(path)
    return str(path)


def test_subprocess_run_with_user_model_data_and_recipe(residual_model, digits_npz, tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        '[prune]\nfinal_sparsity = 0.5\nepochs = 2\nexclude = ["logits"]\n'
        '[quantize]\nmode = "dynamic"\n'
    )
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeprune",
            "run",
            "--model",
            residual_model,
            "--data",
            digits_npz,
            "--recipe",
            str(recipe),
            "--out",
            str(out),
            "--sparsity",
            "0.6",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["recipe"]["prune"]["final_sparsity"] == 0.6  # the flag wins
    assert report["recipe"]["quantize"]["mode"] == "dynamic"
    layers = {s["name"]: s for s in report["stages"]["prune"]["layers"]}
    assert layers["logits"]["reason"] == "excluded by prune.exclude"
    assert layers["branch"]["achieved"] == pytest.approx(0.6, abs=0.01)
    assert (out / "final_dynamic.tflite").exists()
    assert "I0000" not in proc.stderr  # TensorFlow's native chatter is filtered


def test_stage_commands_chain_prune_then_quantize(residual_model, digits_npz, tmp_path):
    out = tmp_path / "staged"
    r = invoke(
        "prune",
        residual_model,
        "--data",
        digits_npz,
        "--out",
        str(out),
        "--epochs",
        "2",
        "--sparsity",
        "0.5",
    )
    assert r.exit_code == 0, r.output
    r = invoke(
        "quantize",
        str(out / "pruned.keras"),
        "--data",
        digits_npz,
        "--out",
        str(out),
        "--calibration-samples",
        "40",
    )
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert {"prune", "quantize"} <= set(report["stages"])
    assert {"pruned.keras", "final_int8.tflite"} <= set(report["artifacts"])
    assert report["sizes"]["final"]["zero_weight_fraction"] >= 0.45
    assert (
        report["stages"]["quantize"]["input"]["sha256"]
        == report["artifacts"]["pruned.keras"]["sha256"]
    )
    assert report["stages"]["quantize"]["check"]["ok"] is True
    assert (
        report["stages"]["evaluate"]["final"]["agreement_reference"] == "input model pruned.keras"
    )
    # pruning again makes the quantized model stale: it is dropped, file and entries
    r = invoke(
        "prune",
        residual_model,
        "--data",
        digits_npz,
        "--out",
        str(out),
        "--epochs",
        "2",
        "--sparsity",
        "0.8",
        "--seed",
        "5",
    )
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert "quantize" not in report["stages"] and "final" not in report["sizes"]
    assert "final" not in report["stages"]["evaluate"]
    assert not (out / "final_int8.tflite").exists()
    assert report["seed"] == 5 and report["stages"]["prune"]["seed"] == 5
    assert report["stages"]["prune"]["recipe"]["prune"]["final_sparsity"] == 0.8
    assert set(report["artifacts"]) == {"pruned.keras", "pruned_float32.tflite"}


def test_prune_command_runs_structured_pruning_first(residual_model, digits_npz, tmp_path):
    """A residual model (its Add ties both branches' channels) through the prune
    command with a MAC goal: structured.keras, then tfmot on it; a later prune
    without the goal drops the stale structured artifacts."""
    out = tmp_path / "staged"
    r = invoke(
        "prune",
        residual_model,
        "--data",
        digits_npz,
        "--out",
        str(out),
        "--epochs",
        "1",
        "--sparsity",
        "0.5",
        "--structured",
        "macs",
        "--reduction",
        "2",
        "--structured-epochs",
        "1",
        "--importance",
        "taylor",
        "--importance-samples",
        "32",
    )
    assert r.exit_code == 0, r.output
    assert "structured pruning: goal macs /2.0, taylor importance" in r.output
    report = json.loads((out / "report.json").read_text())
    st = report["stages"]["prune"]["structured"]
    assert st["macs_reduction"] >= 2.0 and st["rounds"][0]["rebuild_max_abs_diff"] < 1e-4
    assert report["sizes"]["structured"]["bytes"] < report["sizes"]["pruned"]["bytes"] * 1.01
    assert {"structured.keras", "structured_float32.tflite", "pruned.keras"} <= set(
        report["artifacts"]
    )
    r = invoke(
        "prune",
        residual_model,
        "--data",
        digits_npz,
        "--out",
        str(out),
        "--epochs",
        "1",
        "--sparsity",
        "0.5",
    )
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert "structured" not in report["sizes"] and not (out / "structured.keras").exists()


def test_stage_commands_on_a_run_folder_keep_what_produced_their_input(default_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(default_run[0], run)
    # quantizing the run's baseline: the baseline entries stay (they made the input),
    # the run's prune and int8 results go, the input file is never deleted
    for mode in ("float16", "dynamic"):
        r = invoke(
            "quantize", str(run / "baseline.keras"), "--data", "digits", "--quantize", mode
        )  # no --out: a run folder's artifact writes back into that folder
        assert r.exit_code == 0, r.output
    report = json.loads((run / "report.json").read_text())
    assert set(report["artifacts"]) == {
        "baseline.keras",
        "baseline.json",
        "baseline_float32.tflite",
        "final_dynamic.tflite",
    }
    assert (run / "baseline.keras").exists() and not (run / "final_float16.tflite").exists()
    assert not (run / "pruned.keras").exists() and not (run / "final_int8.tflite").exists()
    assert set(report["stages"]) == {"baseline", "quantize", "evaluate"}
    assert (
        report["stages"]["quantize"]["input"]["sha256"]
        == report["artifacts"]["baseline.keras"]["sha256"]
    )
    assert report["stages"]["baseline"]["input"]["model"] == "builtin:digits_cnn"
    assert report["sizes"].keys() == {"baseline", "final"}


def test_a_stage_never_overwrites_its_input(default_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(default_run[0], run)
    before = (run / "pruned.keras").read_bytes()
    r = CliRunner().invoke(
        main, ["prune", str(run / "pruned.keras"), "--data", "digits", "--out", str(run)]
    )
    assert r.exit_code == 1
    assert "would be overwritten by this stage's pruned.keras; choose another output" in r.stderr
    assert (run / "pruned.keras").read_bytes() == before


def test_stage_commands_refuse_builtin_model_names(tmp_path):
    r = CliRunner().invoke(
        main, ["quantize", "digits_cnn", "--data", "digits", "--out", str(tmp_path / "q")]
    )
    assert r.exit_code == 1
    assert "'digits_cnn' is a built-in model name, not a Keras model file" in r.stderr
    assert not (tmp_path / "q").exists()


@pytest.fixture(scope="module")
def autoencoder_files(tmp_path_factory, digits):
    d = tmp_path_factory.mktemp("ae")
    train_tiny(build_tiny("autoencoder"), digits, regression=True).save(d / "ae.keras")
    # calibration samples that are all black: int8 ranges fit nothing real
    np.savez(
        d / "ae_bad_calib.npz",
        x_train=digits.x_train,
        y_train=digits.x_train,
        x_test=digits.x_test,
        y_test=digits.x_test,
        x_calib=np.zeros((10, 8, 8, 1), np.float32),
    )
    return d


def test_quantization_over_budget_exits_4_after_writing(autoencoder_files, tmp_path):
    d, out = autoencoder_files, tmp_path / "ae"
    result = invoke(
        "run",
        "--model",
        str(d / "ae.keras"),
        "--data",
        str(d / "ae_bad_calib.npz"),
        "--out",
        str(out),
        "--epochs",
        "1",
    )
    assert result.exit_code == 4, result.output
    assert (
        "quantization budget: The relative MSE increase from quantization does not fit "
        "the quantization budget." in result.stdout
    )
    assert "FAILED" in result.stdout
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("edgeprune: error:")]
    assert len(errors) == 1 and "over the budget 0.25 (quantize.max_mse_increase)" in errors[0]
    report = json.loads((out / "report.json").read_text())
    check = report["stages"]["quantize"]["check"]
    assert check["ok"] is False and check["figure"] > 0.25
    assert report["stages"]["quantize"]["calibration_source"] == "x_calib"
    assert (out / "final_int8.tflite").exists()


def test_rerun_removes_stale_artifacts_and_a_failed_rerun_leaves_no_report(
    default_run, tmp_path, monkeypatch
):
    import shutil

    from edgeprune import pipeline
    from edgeprune.errors import VerificationError

    run = tmp_path / "run"
    shutil.copytree(default_run[0], run)
    report = json.loads((run / "report.json").read_text())
    (run / "final_float16.tflite").write_bytes(b"from an earlier run")
    report["artifacts"]["final_float16.tflite"] = {
        "stage": "quantize",
        "path": "final_float16.tflite",
    }
    (run / "report.json").write_text(json.dumps(report))
    result = invoke("run", "--out", str(run))
    assert result.exit_code == 0, result.output
    assert not (run / "final_float16.tflite").exists()
    assert "final_float16.tflite" not in json.loads((run / "report.json").read_text())["artifacts"]

    def broken(*args, **kwargs):
        raise VerificationError("simulated failure after the baseline stage")

    monkeypatch.setattr(pipeline, "prune_stage", broken)
    result = CliRunner().invoke(main, ["run", "--out", str(run)])
    assert result.exit_code == 1
    assert not (run / "report.json").exists()  # it would describe files now replaced


# ------------------------------------------------------------------ user models


def test_inspect_prints_ops_without_tensorflow(default_run):
    out, _ = default_run
    code = (
        "import sys; from edgeprune.cli import main\n"
        "try:\n main(['inspect', sys.argv[1]])\n"
        "except SystemExit as e: assert e.code == 0\n"
        "assert not [m for m in sys.modules if m.startswith(('tensorflow', 'tf_keras'))]\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(out / "final_int8.tflite")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "CONV_2D" in proc.stdout and "FULLY_CONNECTED" in proc.stdout


def test_inspect_errors_are_one_line(tmp_path):
    garbage = tmp_path / "g.tflite"
    garbage.write_bytes(b"not a flatbuffer at all")
    unreadable = tmp_path / "mem.tflite"
    unreadable.symlink_to("/proc/self/mem")
    for path, message in (
        (garbage, "not a TFLite model"),
        (unreadable, "cannot be read (Input/output error)"),
        (tmp_path / "missing.tflite", "does not exist"),
    ):
        r = CliRunner().invoke(main, ["inspect", str(path)])
        assert r.exit_code == 1, r.output
        assert r.stderr.startswith("edgeprune: error: ") and message in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_inspect_json_has_the_weight_zero_fraction(default_run):
    r = invoke("inspect", "--json", str(default_run[0] / "final_int8.tflite"))
    body = json.loads(r.stdout)
    assert body["weights"]["zero_fraction"] == pytest.approx(0.75, abs=0.002)
    assert body["file_bytes"] == os.path.getsize(default_run[0] / "final_int8.tflite")


def test_help_does_not_import_tensorflow():
    code = (
        "import sys; from edgeprune.cli import main\n"
        "try:\n main(['--help'])\n"
        "except SystemExit as e: assert e.code == 0\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "run" in proc.stdout and "inspect" in proc.stdout


# ------------------------------------------------------------------ bad input


KERAS3_MODELS = """
import sys, keras
from sklearn.datasets import load_digits
d = sys.argv[1]
keras.utils.set_random_seed(0)
L = keras.layers
inp = keras.Input((8, 8, 1))
x = L.Conv2D(8, 3, padding="same", name="stem")(inp)
x = L.BatchNormalization(name="bn")(x)
x = L.ReLU()(x)
y = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
x = L.Add()([x, y])
x = L.Flatten()(x)
model = keras.Model(inp, L.Dense(10, activation="softmax", name="out")(x))
digits = load_digits()
model.compile("adam", "sparse_categorical_crossentropy")
model.fit((digits.images / 16.0)[..., None], digits.target, epochs=5, verbose=0)
model.save(d + "/keras3.keras")

@keras.saving.register_keras_serializable()
class Scale(L.Layer):
    def call(self, x):
        return 2.0 * x

keras.Sequential([keras.Input((8, 8, 1)), Scale(), L.Flatten(), L.Dense(10)]).save(
    d + "/keras3_custom.keras")

class Sub(keras.Model):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.flat = L.Flatten()
        self.dense = L.Dense(10)
    def call(self, x):
        return self.dense(self.flat(x))

sub = Sub()
sub(keras.ops.zeros((1, 8, 8, 1)))
sub.save(d + "/keras3_sub.keras")
"""


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, digits):
    d = tmp_path_factory.mktemp("bad")
    (d / "garbage.keras").write_bytes(b"this is not a zip file")
    (d / "garbage.h5").write_bytes(b"\x00" * 64)
    (d / "notes.txt").write_text("hello")
    (d / "a_file").write_text("I am a file")
    (d / "typo.toml").write_text("[prune]\nfinal_sparsty = 0.5\n")
    (d / "dense.toml").write_text("[prune]\nfinal_sparsity = 1.0\n")
    rng = np.random.default_rng(0)
    np.savez(d / "missing.npz", x_train=digits.x_train, y_train=digits.y_train)
    np.savez(
        d / "wrong_shape.npz",
        x_train=rng.random((20, 28, 28, 1)),
        y_train=rng.integers(0, 10, 20),
        x_test=rng.random((20, 28, 28, 1)),
        y_test=rng.integers(0, 10, 20),
    )
    y = digits.y_train.copy()
    y[3] = 12
    np.savez(
        d / "labels.npz",
        x_train=digits.x_train,
        y_train=y,
        x_test=digits.x_test,
        y_test=digits.y_test,
    )
    good = build_tiny("sequential")
    good.save(d / "good.keras")
    build_tiny("autoencoder").save(d / "good_ae.keras")
    np.savez(
        d / "ae.npz",
        x_train=digits.x_train,
        y_train=digits.x_train,
        x_test=digits.x_test,
        y_test=digits.x_test,
    )
    x_nan = digits.x_train.copy()
    x_nan[5, 1, 1, 0] = np.nan
    np.savez(
        d / "nan.npz",
        x_train=x_nan,
        y_train=digits.y_train,
        x_test=digits.x_test,
        y_test=digits.y_test,
    )
    from edgeprune.adapters.keras import keras as k2

    k2.Sequential(
        [k2.Input((8, 8, 1)), k2.layers.Flatten(), k2.layers.Dense(1, activation="sigmoid")]
    ).save(d / "sigmoid.keras")
    np.savez(
        d / "tri.npz",
        x_train=digits.x_train,
        y_train=digits.y_train % 3,
        x_test=digits.x_test,
        y_test=digits.y_test % 3,
    )
    (d / "broken_savedmodel").mkdir()
    (d / "broken_savedmodel" / "saved_model.pb").write_bytes(b"\x08\x01garbage")
    # Keras 3 models, saved by the keras 3 package that TensorFlow installs.
    subprocess.run(
        [sys.executable, "-c", KERAS3_MODELS, str(d)],
        check=True,
        capture_output=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "0"},
    )
    # A subclassed tf_keras model, as a SavedModel and as a .keras file.
    from edgeprune.adapters.keras import keras

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat = keras.layers.Flatten()
            self.dense = keras.layers.Dense(10)

        def call(self, x):
            return self.dense(self.flat(x))

    sub = Sub()
    sub(np.zeros((1, 8, 8, 1), np.float32))
    sub.save(d / "sub_savedmodel")
    sub.save(d / "sub.keras")
    return d


BAD = {
    "missing model": (["--model", "{d}/nope.keras"], 1, "nope.keras does not exist"),
    "model is a folder without saved_model.pb": (
        ["--model", "{d}"],
        1,
        r"is not a SavedModel \(no saved_model.pb\)",
    ),
    "broken SavedModel": (
        ["--model", "{d}/broken_savedmodel"],
        1,
        r"could not be loaded \(.*\); re-save it",
    ),
    "garbage .keras": (
        ["--model", "{d}/garbage.keras"],
        1,
        r"is not a Keras model \(not a "
        r"\.keras zip archive\)",
    ),
    "garbage .h5": (["--model", "{d}/garbage.h5"], 1, r"is not a Keras model \(not an HDF5"),
    "wrong extension": (["--model", "{d}/notes.txt"], 1, "has extension '.txt'; pass a .keras"),
    "keras 3 custom layer": (
        ["--model", "{d}/keras3_custom.keras"],
        1,
        "is a Keras 3 model that edgeprune cannot rebuild for tfmot "
        "\\(it uses the custom class Scale, which tf_keras does not "
        "have\\); rebuild the same architecture with `import "
        "tf_keras as keras`, copy the weights over",
    ),
    "keras 3 subclassed": (
        ["--model", "{d}/keras3_sub.keras"],
        1,
        "is a subclassed model \\(Sub\\); tfmot can prune only",
    ),
    "subclassed savedmodel": (
        ["--model", "{d}/sub_savedmodel"],
        1,
        "is a subclassed model .*rebuild it with keras.Sequential",
    ),
    "subclassed .keras": (["--model", "{d}/sub.keras"], 1, "is a subclassed model \\(Sub\\)"),
    "shape mismatch": (
        ["--model", "{d}/good.keras", "--data", "{d}/wrong_shape.npz"],
        1,
        "x_train has samples of shape \\(28, 28, 1\\) but the model's input is \\(8, 8, 1\\)",
    ),
    "labels out of range": (
        ["--model", "{d}/good.keras", "--data", "{d}/labels.npz"],
        1,
        "y_train holds label 12 but the model's output layer has 10 units",
    ),
    "npz missing keys": (
        ["--model", "{d}/good.keras", "--data", "{d}/missing.npz"],
        1,
        "lacks x_test, y_test",
    ),
    "recipe unknown key": (
        ["--recipe", "{d}/typo.toml"],
        1,
        "unknown key 'prune.final_sparsty'; did you mean 'final_sparsity'",
    ),
    "recipe sparsity 1.0": (
        ["--recipe", "{d}/dense.toml"],
        1,
        "prune.final_sparsity = 1.0 is outside \\[0.0, 1.0\\)",
    ),
    "flag sparsity -0.5": (["--sparsity", "-0.5"], 1, "prune.final_sparsity = -0.5 is below"),
    "out is a file": (["--out", "{d}/a_file"], 1, "output directory .*a_file is a file"),
    "out not writable": (
        ["--out", "/proc/edgeprune_out"],
        1,
        "output directory /proc/edgeprune_out cannot be written",
    ),
    "sparsity nan": (["--sparsity", "nan"], 1, "prune.final_sparsity = nan must be a finite"),
    "nan in data": (
        ["--model", "{d}/good.keras", "--data", "{d}/nan.npz"],
        1,
        "x_train holds 1 NaN or infinite value",
    ),
    "include names no layer": (["--include", "flatten"], 1, "no layer would be pruned"),
    "sigmoid with labels 0..2": (
        ["--model", "{d}/sigmoid.keras", "--data", "{d}/tri.npz"],
        1,
        "y_train holds label 2 but the model's output layer has 1 unit",
    ),
    "schedule cannot finish": (["--frequency", "1000"], 1, "never updates its masks"),
    "structured fit without a target": (
        ["--structured", "fit"],
        1,
        'structured.goal = "fit" needs a target device',
    ),
    "structured floor on regression": (
        [
            "--model",
            "{d}/good_ae.keras",
            "--data",
            "{d}/ae.npz",
            "--structured",
            "width",
            "--min-accuracy",
            "0.9",
        ],
        1,
        "structured.min_accuracy applies to classification",
    ),
    "structured width 0": (
        ["--structured", "width", "--width", "0"],
        1,
        "structured.width = 0.0 must be above 0.0",
    ),
    "bn_scale without batchnorm": (
        ["--structured", "width", "--importance", "bn_scale"],
        1,
        "importance bn_scale needs BatchNormalization",
    ),
    "model without data": (["--model", "{d}/good.keras"], 2, "--data is required with --model"),
    "bad choice": (["--quantize", "int3"], 2, "Invalid value for '--quantize'"),
}


def test_keras3_model_is_rebuilt_as_tf_keras_and_checked(bad_files, tmp_path):
    out = tmp_path / "k3"
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--model",
            str(bad_files / "keras3.keras"),
            "--data",
            "digits",
            "--out",
            str(out),
            "--epochs",
            "1",
            "--calibration-samples",
            "20",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    conversion = report["inputs"]["converted_from_keras3"]
    assert conversion["keras_version"].startswith("3.")
    assert conversion["max_abs_diff"] <= 1e-5 and conversion["samples"] > 0
    layers = {s["name"]: s for s in report["stages"]["prune"]["layers"]}
    assert layers["stem"]["pruned"] and not layers["dw"]["pruned"]
    assert report["stages"]["evaluate"]["baseline"]["accuracy"] > 0.8  # it was trained


def test_unreadable_model_file(tmp_path):
    # /proc/self/mem refuses reads at offset 0 even to root: a real unreadable file
    path = tmp_path / "locked.keras"
    path.symlink_to("/proc/self/mem")
    result = CliRunner().invoke(
        main, ["run", "--model", str(path), "--data", "digits", "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 1, result.output
    assert (
        "locked.keras cannot be read (Input/output error); check its permissions" in result.stderr
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_with_exit_code_and_no_artifact(case, bad_files, tmp_path):
    args, code, message = BAD[case]
    args = [a.format(d=bad_files) for a in args]
    out = tmp_path / "out"
    if "--out" not in args:
        args += ["--out", str(out)]
    if "--model" not in args and "--data" not in args:
        args += ["--train-epochs", "1"]
    elif "--data" not in args and case != "model without data":
        args += ["--data", "digits"]
    before = (bad_files / "a_file").read_bytes()
    result = CliRunner().invoke(main, ["run", *args])
    assert result.exit_code == code, result.output
    assert (bad_files / "a_file").read_bytes() == before  # "out is a file" left alone
    assert "Traceback" not in result.output
    import re

    if code == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("edgeprune: error: ")
        assert re.search(message, lines[0]), lines[0]
    else:
        assert re.search(message, result.stderr), result.stderr
    assert not out.exists() or not os.listdir(out)


# ------------------------------------------------------------------ the CLI's shape


def _commands(group, prefix=()):
    for name, cmd in group.commands.items():
        yield " ".join((*prefix, name)), cmd
        if isinstance(cmd, click.Group):
            yield from _commands(cmd, (*prefix, name))


def test_every_command_body_is_at_most_30_lines():
    """A command parses, calls one library function and maps errors: the body,
    from the first statement after the docstring to the last, stays short."""
    lengths = {}
    for name, cmd in _commands(main):
        source = textwrap.dedent(
            "".join(pyinspect.getsourcelines(pyinspect.unwrap(cmd.callback))[0])
        )
        fn = ast.parse(source).body[0]
        body = fn.body[1:] if ast.get_docstring(fn) is not None else fn.body
        lengths[name] = body[-1].end_lineno - body[0].lineno + 1
    assert {"run", "validate", "fleet", "targets show"} <= set(lengths)
    assert not {n: k for n, k in lengths.items() if k > 30}, lengths


# ------------------------------------------------------------------ fleet


@pytest.fixture(scope="module")
def finished_report(run_dir):
    """A real run's report (the session's digits run, read through the report module)."""
    from edgeprune import report

    return report.read(run_dir / "report.json")


def _build(folder, name, code, finished, check_ok=True, report=True, figures=None):
    """What `make all-targets` leaves for one target: NAME.exit and (unless the
    build died first) NAME/report.json: a real run's report with a device check
    of known figures (``figures``: name, ok, figure, budget, unit) and a final
    accuracy of 0.9722."""
    import dataclasses

    from edgeprune import report as rp

    (folder / f"{name}.exit").write_text(f"{code}\n")
    if not report:
        return
    rules = tuple(
        rp.RuleResult(n, f"{n} rule", ok, figure, budget, unit, f"budget.{n}", "test")
        for n, ok, figure, budget, unit in figures
        or [
            ("flash", check_ok, 120_000, 1_048_576, "B"),
            ("ram", True, 30_000, 262_144, "B"),
            ("latency", True, 31.66, 100.0, "ms"),
        ]
    )
    check = rp.CheckEntry(name, check_ok, {}, (), rules, {"latency_measured": None})
    final = finished.stages.evaluate["final"]
    final = dataclasses.replace(final, figures={**final.figures, "accuracy": 0.9722})
    stages = dataclasses.replace(
        finished.stages, check=check, evaluate={**finished.stages.evaluate, "final": final}
    )
    (folder / name).mkdir()
    rp.write(folder / name / "report.json", dataclasses.replace(finished, stages=stages))


def _fleet(*args):
    r = CliRunner().invoke(main, ["fleet", *map(str, args)])
    rows = {line.split()[0]: line for line in r.stdout.splitlines()[2:]}
    return r, rows


def test_fleet_table_passes_every_good_build(tmp_path, finished_report):
    _build(tmp_path, "nano33ble", 0, finished_report)
    _build(tmp_path, "esp32s3", 0, finished_report)
    r, rows = _fleet(tmp_path, "nano33ble", "esp32s3")
    assert r.exit_code == 0 and r.stderr == "", r.output
    assert r.stdout.startswith("target") and "flash or storage (used / budget)" in r.stdout
    assert rows["nano33ble"].endswith("PASS") and "120,000 B / 1,048,576 B" in rows["nano33ble"]
    assert "31.66 ms / 100 ms (est.)" in rows["nano33ble"] and "0.9722" in rows["nano33ble"]


def test_fleet_reports_a_latency_without_budget_and_linux_sizes_in_mib(tmp_path, finished_report):
    """No latency budget: the estimate is shown, 'no budget set', and the build passes;
    a Linux build's storage and RAM are MiB beside the capacity; no cell is a dash."""
    builds = {
        "nano33ble": [
            ("flash", True, 120_000, 1_048_576, "B"),
            ("ram", True, 30_000, 262_144, "B"),
            ("arena", True, 7_255, None, "B"),
            ("latency", True, 431.2, None, "ms"),
        ],
        "rpi4": [
            ("storage", True, 0.04324, 8192.0, "MiB"),
            ("ram", True, 3.2, 1024.0, "MiB"),
            ("latency", True, 0.6195, None, "ms"),
        ],
    }
    for name, figures in builds.items():
        _build(tmp_path, name, 0, finished_report, figures=figures)
    r, rows = _fleet(tmp_path, "nano33ble", "rpi4")
    assert r.exit_code == 0 and r.stderr == "", r.output
    assert "431.2 ms (est.), no budget set" in rows["nano33ble"] and rows["nano33ble"].endswith(
        "PASS"
    )
    assert "0.04324 MiB / 8,192 MiB" in rows["rpi4"] and "3.2 MiB / 1,024 MiB" in rows["rpi4"]
    assert "0.6195 ms (est.), no budget set" in rows["rpi4"] and rows["rpi4"].endswith("PASS")
    assert " - " not in r.stdout


def test_fleet_reports_a_failed_build_as_error_and_exits_1(tmp_path, finished_report):
    _build(tmp_path, "nano33ble", 0, finished_report)
    _build(tmp_path, "pico", 1, finished_report, report=False)
    r, rows = _fleet(tmp_path, "nano33ble", "pico")
    assert r.exit_code == 1, r.output
    assert rows["nano33ble"].endswith("PASS")
    assert "ERROR (exit 1, see pico.log)" in rows["pico"] and "no report" in rows["pico"]
    assert r.stderr == (
        f"edgeprune: error: 1 of 2 targets did not pass: pico (exit 1); see "
        f"{tmp_path}/<target>.log\n"
    )


def test_fleet_exits_3_when_a_device_is_over_budget_even_beside_an_error(tmp_path, finished_report):
    _build(tmp_path, "nano33ble", 3, finished_report, check_ok=False)
    _build(tmp_path, "pico", 1, finished_report, report=False)
    r, rows = _fleet(tmp_path, "nano33ble", "pico")
    assert r.exit_code == 3, r.output
    assert rows["nano33ble"].endswith("FAIL") and "ERROR" in rows["pico"]


def test_fleet_finds_the_builds_without_names_and_refuses_an_empty_folder(
    tmp_path, finished_report
):
    _build(tmp_path, "pico", 0, finished_report)
    _build(tmp_path, "esp32s3", 1, finished_report, report=False)
    (tmp_path / "notes").mkdir()  # neither an .exit nor a report: not a build
    r, rows = _fleet(tmp_path)
    assert r.exit_code == 1 and list(rows) == ["esp32s3", "pico"], r.output
    empty = tmp_path / "notes"
    r, _ = _fleet(empty)
    assert r.exit_code == 1 and "holds no device build" in r.stderr


def test_make_all_targets_ends_with_the_fleet_command():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run(["make", "-n", "-C", root, "all-targets"], capture_output=True, text=True)
    assert "/edgeprune fleet build alif_e7 " in out.stdout, out.stdout


def test_make_target_builds_a_tree_model_with_model_and_the_default_without():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def dry(*args):
        done = subprocess.run(["make", "-n", "-C", root, *args], capture_output=True, text=True)
        lines = done.stdout.replace("\\\n", " ").splitlines()  # join continued lines
        return next(line for line in lines if "edgeprune run" in line)

    default = dry("nucleo_l4r5zi")
    assert "run --target nucleo_l4r5zi --out build/nucleo_l4r5zi" in default
    assert "--model" not in default
    tree = dry("nucleo_l4r5zi", "MODEL=random_forest", "RECIPE=r.toml")
    assert "run --target nucleo_l4r5zi --model random_forest" in tree and "--out" not in tree
    assert "--recipe r.toml" in tree


def test_a_warning_says_so_on_stderr(capsys):
    from edgeprune.cli import _setup_logging, log

    saved = log.handlers[:], log.level, log.propagate
    try:
        _setup_logging(0)
        log.info("progress")
        log.warning("y_train holds only class 0")
    finally:
        log.handlers[:], log.level, log.propagate = saved[0], saved[1], saved[2]
    assert capsys.readouterr().err.splitlines() == [
        "edgeprune: progress",
        "edgeprune: warning: y_train holds only class 0",
    ]


def test_quoted_text_is_cut_at_a_word_and_says_so():
    from edgeprune.errors import clip

    assert clip("short  text\nhere") == "short text here"
    words = "the converter failed because the operator is not supported " * 10
    cut = clip(words, 100)
    assert len(cut) <= 100 and cut.endswith("…") and words.startswith(cut[:-1])
    assert words[len(cut) - 1] == " "  # cut before a space: no word is split
    assert clip("x" * 500, 50) == "x" * 49 + "…"  # one long word: cut where it must be
