"""Model files are loaded without running the code they carry unless the user trusts them."""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner

from edgeprune.adapters import keras as ka
from edgeprune.adapters import model_config as mc
from edgeprune.cli import main
from edgeprune.errors import ModelLoadError, UnsupportedModelError
from edgeprune.recipe import Recipe

FORMATS = ("lam.keras", "lam.h5", "lam_savedmodel")


def _writes_marker(x, marker="MARKER"):
    with open(marker, "w") as fh:
        fh.write("ran")
    return x * 2.0


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A Lambda model whose function writes a marker file, in each format; the
    marker is removed after saving (building the model calls the function)."""
    from edgeprune.adapters.keras import keras

    d = tmp_path_factory.mktemp("safe")
    marker = str(d / "MARKER")

    def fn(x, marker=marker):
        return _writes_marker(x, marker)

    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            L.Lambda(fn, name="lambda_1"),
            L.Flatten(),
            L.Dense(10, activation="softmax"),
        ]
    )
    model.save(d / "lam.keras")
    model.save(d / "lam.h5")
    model.save(d / "lam_savedmodel", save_format="tf")
    plain = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(10)])
    plain.save(d / "plain.keras")
    os.remove(marker)
    return d


@pytest.fixture()
def marker(files):
    path = files / "MARKER"
    if path.exists():
        path.unlink()
    yield path
    if path.exists():
        path.unlink()


@pytest.mark.parametrize("name", FORMATS)
def test_lambda_is_refused_without_running_its_code(files, marker, name):
    with pytest.raises(mc.UnsafeModelError) as info:
        ka.load_user_model(files / name)
    message = str(info.value)
    assert "layer 'lambda_1' (Lambda) holds Python code that would run on load" in message
    assert "--unsafe-load" in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("name", FORMATS)
def test_unsafe_load_runs_the_code_and_loads(files, marker, name):
    model, _ = ka.load_user_model(files / name, unsafe_load=True)
    assert marker.exists()
    assert ka.predict(model, np.zeros((2, 8, 8, 1), np.float32)).shape == (2, 10)


def test_cli_refuses_lambda_with_exit_1_and_one_line(files, marker, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(
        main, ["prune", str(files / "lam.h5"), "--data", "digits", "--out", str(out)]
    )
    assert r.exit_code == 1
    lines = r.output.strip().splitlines()
    assert lines[-1].startswith("edgeprune: error: model ")
    assert "layer 'lambda_1' (Lambda)" in lines[-1] and "--unsafe-load" in lines[-1]
    assert not marker.exists()
    assert not out.exists()


def test_recipe_key_and_flag_set_unsafe_load(tmp_path):
    from edgeprune.recipe import load_recipe
    from edgeprune.recipe_flags import recipe_from

    path = tmp_path / "r.toml"
    path.write_text("unsafe_load = true\n")
    assert load_recipe(path).unsafe_load is True
    assert Recipe().unsafe_load is False
    # an absent flag leaves the recipe's value; the flag sets it
    assert recipe_from(str(path), {"unsafe_load": False}).unsafe_load is True
    assert recipe_from(None, {"unsafe_load": True}).unsafe_load is True
    path.write_text('unsafe_load = "yes"\n')
    with pytest.raises(ValueError, match="unsafe_load = 'yes' must be true or false"):
        load_recipe(path)


def _rezip(src, dst, **members):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.namelist():
            data = members.get(item.replace(".", "_"), zin.read(item))
            zout.writestr(item, data)


@pytest.mark.parametrize("member", ["config.json", "metadata.json"])
def test_keras_zip_whose_json_is_a_list_is_a_load_error(files, tmp_path, member):
    bad = tmp_path / "list.keras"
    _rezip(files / "plain.keras", bad, **{member.replace(".", "_"): b"[1, 2]"})
    with pytest.raises(ModelLoadError, match=f"{member} holds a JSON list, not an object"):
        ka.load_user_model(bad)


def test_custom_module_is_refused_before_import(files, tmp_path):
    with zipfile.ZipFile(files / "plain.keras") as z:
        config = json.loads(z.read("config.json"))
    layer = config["config"]["layers"][1]
    layer["module"] = "antigravity"  # importing it would open a web browser
    bad = tmp_path / "custom.keras"
    _rezip(files / "plain.keras", bad, config_json=json.dumps(config).encode())
    with pytest.raises(mc.UnsafeModelError) as info:
        ka.load_user_model(bad)
    assert f"layer '{layer['config']['name']}' (Flatten) uses the class Flatten from module" in str(
        info.value
    )
    assert "'antigravity'" in str(info.value)


def test_savedmodel_without_keras_metadata_is_refused(files, tmp_path):
    import shutil

    folder = tmp_path / "bare"
    shutil.copytree(files / "lam_savedmodel", folder)
    (folder / "keras_metadata.pb").unlink()
    with pytest.raises(mc.UnsafeModelError, match="keras_metadata.pb is missing or unreadable"):
        ka.load_user_model(folder)


def _file(config) -> mc.ModelFile:
    return mc.ModelFile(None, "Sequential", (config,))


@pytest.mark.parametrize(
    "config,found",
    [
        (
            {
                "class_name": "Dense",
                "config": {
                    "name": "d",
                    "activation": {"class_name": "__lambda__", "config": {"code": "x"}},
                },
            },
            "layer 'd' (Dense) holds a Python lambda",
        ),
        (
            {"class_name": "Dense", "config": {"name": "d", "output_shape_type": "lambda"}},
            "layer 'd' (Dense) holds Python code",
        ),
        (
            {
                "class_name": "Dense",
                "config": {
                    "name": "d",
                    "kernel_initializer": {
                        "class_name": "Init",
                        "config": {},
                        "registered_name": "Custom>Init",
                    },
                },
            },
            "layer 'd' (Dense) uses the custom class Custom>Init",
        ),
        (
            {
                "class_name": "Dense",
                "config": {"name": "d", "x": "4wEAAAAAAAAAAAAAAAIAAAADAAAA8wwAAACXAHwA"},
            },
            "layer 'd' (Dense) holds serialized Python bytecode",
        ),
    ],
)
def test_scan_finds_code_anywhere_in_the_config(config, found):
    with pytest.raises(mc.UnsafeModelError, match=found.replace("(", r"\(").replace(")", r"\)")):
        mc.refuse_code("m.keras", _file(config))


def test_scan_accepts_keras_tfmot_and_tf_op_layers():
    config = {
        "module": "keras",
        "class_name": "Sequential",
        "config": {
            "name": "s",
            "layers": [
                {
                    "module": "tf_keras.src.layers.core.tf_op_layer",
                    "class_name": "TFOpLambda",
                    "config": {"name": "tf.nn.relu", "function": "nn.relu"},
                },
                {
                    "module": "tensorflow_model_optimization.python.core.sparsity",
                    "class_name": "PruneLowMagnitude",
                    "registered_name": "PruneLowMagnitude",
                    "config": {
                        "name": "p",
                        "layer": {
                            "module": "keras.layers",
                            "class_name": "Dense",
                            "config": {"name": "d"},
                        },
                    },
                },
            ],
        },
    }
    mc.refuse_code("m.keras", _file(config))


def test_deeply_nested_config_is_refused_not_a_recursion_error():
    config: dict = {"class_name": "Dense", "config": {"name": "d"}}
    inner = config["config"]
    for _ in range(500):
        inner["x"] = {}
        inner = inner["x"]
    with pytest.raises(mc.UnsafeModelError, match="nested too deeply"):
        mc.refuse_code("m.keras", _file(config))


def test_keras3_custom_class_keeps_the_rebuild_message():
    config = {
        "class_name": "Scale",
        "config": {"name": "s"},
        "module": None,
        "registered_name": "Custom>Scale",
    }
    with pytest.raises(
        UnsupportedModelError, match="it uses the custom class Scale, which tf_keras"
    ):
        mc.refuse_code("m.keras", _file(config), ka._keras3_custom("m.keras"))


@pytest.mark.slow
def test_trusted_lambda_model_runs_through_the_pipeline(files, marker, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--model", str(files / "lam.keras"), "--data", "digits", "--unsafe-load"]
    quick = ["--epochs", "1", "--calibration-samples", "20", "--out", str(out)]
    r = CliRunner().invoke(main, args + quick)
    assert r.exit_code == 0, r.output
    assert marker.exists()
    assert json.loads((out / "report.json").read_text())["recipe"]["unsafe_load"] is True
