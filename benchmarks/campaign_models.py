"""The campaign's hostile and unusual models, and the runs that load them.

``python campaign_models.py OUTDIR`` builds the models with tf_keras (and,
with ``--keras3``, the Keras 3 ones in a process of their own, since one
process cannot hold both Keras versions); :func:`model_cases` calls it and
returns one ``edgeprune run --model FILE --data digits`` case per file.

A Lambda layer whose code writes a marker file is saved as ``.keras``,
``.h5`` and a SavedModel (and as a Keras 3 file): the marker appearing when
edgeprune loads the model is a code execution. Building the model runs the
Lambda too, so every marker is removed before the campaign starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile

from campaign_cli import Case

HERE = os.path.dirname(os.path.abspath(__file__))
MARKERS = ("keras", "h5", "savedmodel", "keras3")
RUN_FAST = ["--epochs", "1", "--batch-size", "32", "--calibration-samples", "8"]


def _marker_lambda(keras, marker: str):
    # A real lambda (marshalled bytecode in .h5 and SavedModel, source-less in .keras)
    # whose only literal is the marker path, so it needs nothing from this module.
    code = f"lambda t: (__import__('pathlib').Path({marker!r}).write_text('ran'), t)[1]"
    return keras.layers.Lambda(eval(code), name="marker_lambda")  # noqa: S307


def build_tf_keras(outdir: str) -> None:
    """Write the tf_keras models (and one int8 .tflite for the file cases)."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import numpy as np

    from edgeprune.adapters.converter import to_tflite
    from edgeprune.adapters.keras import keras

    L = keras.layers

    def head(x, units=10):
        return L.Dense(units, activation="softmax", name="out")(L.Flatten()(x))

    def seq(*layers, name="m"):
        return keras.Sequential([keras.Input((8, 8, 1)), *layers], name=name)

    good = seq(L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(10, activation="softmax"))
    good.save(os.path.join(outdir, "good.keras"))
    x = np.random.default_rng(0).random((16, 8, 8, 1), dtype=np.float32)
    with open(os.path.join(outdir, "good_int8.tflite"), "wb") as fh:
        fh.write(to_tflite(good, "int8", x))

    for fmt in ("keras", "h5", "savedmodel"):
        marker = os.path.join(outdir, f"marker_{fmt}")
        model = seq(_marker_lambda(keras, marker), L.Flatten(), L.Dense(10, activation="softmax"))
        path = os.path.join(outdir, "lambda" + ("" if fmt == "savedmodel" else f".{fmt}"))
        model.save(path, save_format="tf" if fmt == "savedmodel" else None)

    class Scale(L.Layer):
        def call(self, t):
            return t * 2.0

    custom = seq(Scale(name="scale"), L.Flatten(), L.Dense(10, activation="softmax"))
    custom.save(os.path.join(outdir, "custom_layer.keras"))
    custom.save(os.path.join(outdir, "custom_layer.h5"))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.flat, self.dense = L.Flatten(), L.Dense(10)

        def call(self, t):
            return self.dense(self.flat(t))

    sub = Sub()
    sub(x[:1])
    sub.save(os.path.join(outdir, "subclassed_savedmodel"), save_format="tf")

    inner = seq(L.Conv2D(4, 3, activation="relu"), name="inner")
    inp = keras.Input((8, 8, 1))
    keras.Model(inp, head(inner(inp))).save(os.path.join(outdir, "nested.keras"))
    for rnn in (L.LSTM, L.GRU):
        model = seq(L.Reshape((8, 8)), rnn(8), L.Dense(10, activation="softmax"))
        model.save(os.path.join(outdir, f"{rnn.__name__.lower()}.keras"))
    a, b = keras.Input((8, 8, 1)), keras.Input((8, 8, 1))
    two = keras.Model([a, b], head(L.Concatenate()([a, b])))
    two.save(os.path.join(outdir, "two_inputs.keras"))
    huge = seq(L.Flatten(), L.Dense(100_000, activation="relu"), L.Dense(10))
    huge.save(os.path.join(outdir, "huge_dense.keras"))
    keras.Sequential([keras.Input((8, 8, 1))]).save(os.path.join(outdir, "empty.keras"))

    saved = os.path.join(outdir, "no_variables_savedmodel")
    good.save(saved, save_format="tf")
    shutil.rmtree(os.path.join(saved, "variables"))


def build_keras3(outdir: str) -> None:
    """Keras 3 files: a plain CNN (rebuilt as tf_keras) and one with the marker Lambda."""
    import keras

    L = keras.layers
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), L.Conv2D(4, 3), L.Flatten(), L.Dense(10, activation="softmax")]
    )
    model.save(os.path.join(outdir, "keras3.keras"))
    marker = os.path.join(outdir, "marker_keras3")
    lam = keras.Sequential(
        [keras.Input((8, 8, 1)), _marker_lambda(keras, marker), L.Flatten(), L.Dense(10)]
    )
    lam.save(os.path.join(outdir, "keras3_lambda.keras"))


def _rewrite_zip(src: str, dst: str, replace: dict) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            if item.filename not in replace:
                zout.writestr(item, zin.read(item.filename))
        for name, data in replace.items():
            if callable(data):
                with zout.open(name, "w", force_zip64=True) as fh:
                    data(fh)
            else:
                zout.writestr(name, data)


def _bomb(fh) -> None:
    # 1 GiB of JSON whitespace around an object: about 1 MB once deflated.
    fh.write(b"{")
    block = b" " * 2**24
    for _ in range(64):
        fh.write(block)
    fh.write(b"}")


def build_broken(outdir: str) -> None:
    """Files that are models only by name: from good.keras, and from nothing."""
    good = os.path.join(outdir, "good.keras")
    _rewrite_zip(good, os.path.join(outdir, "config_list.keras"), {"config.json": "[1, 2]"})
    _rewrite_zip(good, os.path.join(outdir, "metadata_list.keras"), {"metadata.json": "[]"})
    _rewrite_zip(good, os.path.join(outdir, "config_bomb.keras"), {"config.json": _bomb})
    deep = "[" * 100000 + "]" * 100000
    _rewrite_zip(good, os.path.join(outdir, "config_deep.keras"), {"config.json": deep})
    with open(good, "rb") as fh:
        data = fh.read()
    with open(os.path.join(outdir, "truncated.keras"), "wb") as fh:
        fh.write(data[: len(data) // 2])
    with open(os.path.join(outdir, "text_renamed.h5"), "w") as fh:
        fh.write(json.dumps({"this": "is not a model"}))
    with open(os.path.join(outdir, "png_renamed.keras"), "wb") as fh:
        fh.write(b"\x89PNG\r\n\x1a\n" + bytes(64))


def build_all(outdir: str, log) -> None:
    """Build every model file in ``outdir`` (two subprocesses), then remove the markers."""
    os.makedirs(outdir, exist_ok=True)
    for flag in ("--tf-keras", "--keras3"):
        env = {**os.environ, "TF_USE_LEGACY_KERAS": "1" if flag == "--tf-keras" else "0"}
        env["TF_CPP_MIN_LOG_LEVEL"] = "3"
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), flag, outdir],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if proc.returncode:
            log(f"building models ({flag}) failed: {proc.stderr.strip().splitlines()[-1:]}")
    if os.path.exists(os.path.join(outdir, "good.keras")):
        build_broken(outdir)
    for m in MARKERS:
        if os.path.exists(os.path.join(outdir, f"marker_{m}")):
            os.remove(os.path.join(outdir, f"marker_{m}"))


# (file, what it is, exit codes a correct edgeprune may give, seconds allowed)
MODEL_FILES = (
    ("lambda.keras", "Lambda writing a file, .keras", (1,), 120),
    ("lambda.h5", "Lambda writing a file, .h5", (1,), 120),
    ("lambda", "Lambda writing a file, SavedModel", (1,), 120),
    ("keras3_lambda.keras", "Lambda writing a file, Keras 3 .keras", (1,), 120),
    ("custom_layer.keras", "custom layer class, .keras", (1,), 120),
    ("custom_layer.h5", "custom layer class, .h5", (1,), 120),
    ("subclassed_savedmodel", "subclassed model, SavedModel", (1,), 120),
    ("nested.keras", "a model nested in a model", (0, 1), 300),
    ("lstm.keras", "LSTM (recurrent)", (1,), 300),
    ("gru.keras", "GRU (recurrent)", (1,), 300),
    ("keras3.keras", "Keras 3 file, standard layers", (0,), 300),
    ("two_inputs.keras", "two inputs", (0, 1), 300),
    ("empty.keras", "no layers", (1,), 120),
    ("config_list.keras", ".keras whose config.json is a list", (1,), 120),
    ("metadata_list.keras", ".keras whose metadata.json is a list", (1,), 120),
    ("config_bomb.keras", ".keras whose config.json inflates to 1 GiB", (1,), 120),
    ("config_deep.keras", ".keras whose config.json nests 100000 deep", (1,), 120),
    ("truncated.keras", "truncated .keras zip", (1,), 120),
    ("text_renamed.h5", "a JSON file renamed .h5", (1,), 120),
    ("png_renamed.keras", "a PNG renamed .keras", (1,), 120),
    ("no_variables_savedmodel", "SavedModel without variables/", (1,), 120),
)


def model_cases(workdir: str, log=print, quick: bool = False) -> list[Case]:
    """Build the models, then one run case per file (missing files are reported as such)."""
    folder = os.path.join(workdir, "models")
    build_all(folder, log)
    cases = []
    for name, what, expect, timeout in MODEL_FILES:
        path = os.path.join(folder, name)
        if quick and timeout > 120:
            continue
        if not os.path.exists(path):
            log(f"model {name} was not built; case '{what}' left out")
            continue
        out = os.path.join(workdir, f"out_model_{len(cases):02d}")
        marker = None
        if "lambda" in name:
            fmt = "keras3" if name.startswith("keras3") else name.partition(".")[2] or "savedmodel"
            marker = os.path.join(folder, f"marker_{fmt}")
        argv = ["run", "--model", path, "--data", "digits", "--out", out, *RUN_FAST]
        cases.append(Case("model", what, argv, expect, timeout, out=out, marker=marker))
    huge = os.path.join(folder, "huge_dense.keras")
    if os.path.exists(huge) and not quick:
        out = os.path.join(workdir, "out_model_huge")
        argv = ["run", "--model", huge, "--data", "digits", "--target", "nano33ble"]
        cases.append(
            Case(
                "model",
                "7.4 M parameters for a 1 MB device",
                [*argv, "--out", out, *RUN_FAST],
                (1, 3),
                600,
                out=out,
            )
        )
    return cases


if __name__ == "__main__":
    flag, target = sys.argv[1], sys.argv[2]
    if flag == "--keras3":
        build_keras3(target)
    else:
        build_tf_keras(target)
