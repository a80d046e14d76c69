"""The registry of bad inputs: every class of bad input and fault, the command that
shows it, its exit code and its message. ``docs/bad-inputs.md`` is rendered from it
(``python -m tests.bad_inputs > docs/bad-inputs.md``, or ``make bad-inputs-doc``)
and ``tests/test_bad_inputs.py`` runs every case through the CLI and checks the
page is the current rendering, so neither can drift from the code.

A case's ``argv`` builds the command line from a :class:`Files` (which writes the
bad file and returns its path); the page renders the same builder with
:class:`DocFiles`, which returns readable placeholders instead. ``message`` is
the whole error line after ``edgeprune: error: ``, with ``…`` standing for any
text (a path, a library's own words); for exit code 2 (click's usage errors) it
is searched in click's ``Error:`` line.

To add a case: append a :class:`BadInput` to :data:`REGISTRY`, run ``make
bad-inputs-doc`` and commit both.
"""

from __future__ import annotations

import numpy as np

try:  # as tests/bad_inputs.py under pytest, or as the module tests.bad_inputs
    from bad_inputs_lib import BadInput, render, run_cmd, with_data, with_model, with_recipe
    from bad_inputs_more import FAULTS, MORE, device_faults
except ModuleNotFoundError:
    from tests.bad_inputs_lib import BadInput, render, run_cmd, with_data, with_model, with_recipe
    from tests.bad_inputs_more import FAULTS, MORE, device_faults


# ------------------------------------------------------------------ the registry

_INVERTED = "[sweep]\nwidth = [0.9, 0.3]\n"
_EMPTY = "[sweep]\nepochs = []\n"
_SPARSE = "[sweep]\nsparsity = [0.0, 0.8]\n"


REGISTRY: list[BadInput] = [
    # --- recipes and flags: refused before TensorFlow loads
    BadInput(
        "recipe",
        "unknown key",
        with_recipe("[prune]\nfinal_sparsty = 0.5\n"),
        1,
        "recipe …: unknown key 'prune.final_sparsty'; did you mean 'final_sparsity'?",
    ),
    BadInput(
        "recipe",
        "unknown section",
        with_recipe("[prunning]\nepochs = 1\n"),
        1,
        "recipe …: unknown key 'prunning'; did you mean 'prune'?",
    ),
    BadInput(
        "recipe",
        "a section that is not a table",
        with_recipe("prune = 3\n"),
        1,
        "recipe …: 'prune' must be a table ([prune])",
    ),
    BadInput(
        "recipe",
        "wrong type",
        with_recipe("seed = 'x'\n"),
        1,
        "seed = 'x' must be a whole number",
    ),
    BadInput(
        "recipe",
        "value out of range",
        with_recipe("[prune]\nfinal_sparsity = 1.0\n"),
        1,
        "prune.final_sparsity = 1.0 is outside [0.0, 1.0); choose a value from 0.0 up to, "
        "but not including, 1.0",
    ),
    BadInput(
        "recipe",
        "value below its minimum",
        with_recipe("[prune]\nepochs = 0\n"),
        1,
        "prune.epochs = 0 is below its minimum 1",
    ),
    BadInput(
        "recipe",
        "infinite number",
        with_recipe("[prune]\nlearning_rate = inf\n"),
        1,
        "prune.learning_rate = inf must be a finite number",
    ),
    BadInput(
        "recipe",
        "not one of the choices",
        with_recipe('[prune]\nschedule = "cubic"\n'),
        1,
        "prune.schedule = 'cubic' is not one of: polynomial_decay, constant",
    ),
    BadInput(
        "recipe",
        "malformed pair",
        with_recipe('[prune]\nm_by_n = "a:b"\n'),
        1,
        "prune.m_by_n = 'a:b' is not a pair of whole numbers; write it like 2:4 (m_by_n) "
        "or 1x4 (block_size)",
    ),
    BadInput(
        "recipe",
        "schedule ends before it begins",
        with_recipe("[prune]\nbegin_step = 50\nend_step = 10\n"),
        1,
        "prune.end_step = 10 must be after prune.begin_step = 50…",
    ),
    BadInput(
        "recipe",
        "not valid TOML",
        with_recipe("[prune\n"),
        1,
        "recipe …: not valid TOML (…); fix the syntax",
    ),
    BadInput(
        "recipe",
        "recipe file missing",
        lambda f: run_cmd(f, "--recipe", f.missing("recipe.toml")),
        1,
        "recipe …recipe.toml: no such file; check the path",
    ),
    BadInput(
        "recipe",
        "flag value not a finite number",
        lambda f: run_cmd(f, "--sparsity", "nan"),
        1,
        "prune.final_sparsity = nan must be a finite number",
    ),
    BadInput(
        "recipe",
        "flag value not one of the choices (click)",
        lambda f: run_cmd(f, "--quantize", "int3"),
        2,
        "Invalid value for '--quantize'",
    ),
    BadInput(
        "recipe",
        "--model without --data (click)",
        lambda f: run_cmd(f, "--model", "model.keras"),
        2,
        "--data is required with --model",
    ),
    # --- data sets
    BadInput(
        "data",
        "data file missing",
        lambda f: run_cmd(f, "--data", f.missing("data.npz")),
        1,
        "data file …data.npz does not exist; check the path",
    ),
    BadInput(
        "data",
        "unknown built-in data set",
        lambda f: run_cmd(f, "--data", "mnist"),
        1,
        "data 'mnist' is neither a built-in data set (…) nor an existing .npz file",
    ),
    BadInput(
        "data",
        "data is a folder",
        lambda f: run_cmd(f, "--data", f.folder()),
        1,
        "data … is a folder; pass an .npz file with x_train, y_train, x_test, y_test",
    ),
    BadInput(
        "data",
        "not an .npz archive",
        lambda f: run_cmd(f, "--data", f.text("x,y\n1,2\n", ".npz")),
        1,
        "data file … is not a readable .npz archive (…); save it with numpy.savez",
    ),
    BadInput(
        "data",
        "object arrays (pickle)",
        with_data(y_train=np.array([{}] * 64, dtype=object)),
        1,
        "data file …: array 'y_train' holds Python objects (pickled); save numeric arrays "
        "(float or integer) with numpy.savez",
    ),
    BadInput(
        "data",
        "required arrays missing",
        lambda f: run_cmd(f, "--data", f.npz(drop=("x_test", "y_test"))),
        1,
        "data file … lacks x_test, y_test; it needs x_train, y_train, x_test, y_test (optional: …)",
    ),
    BadInput(
        "data",
        "x and y lengths differ",
        with_data(y_train=np.zeros(10, np.int64)),
        1,
        "data file …: x_train has 64 rows but y_train has 10; they must match",
    ),
    BadInput(
        "data",
        "x_val without y_val",
        with_data(x_val=np.zeros((4, 8, 8, 1), np.float32)),
        1,
        "data file … has only one of x_val, y_val; give both or neither",
    ),
    BadInput(
        "data",
        "non-numeric array",
        with_data(y_train=np.array(["cat"] * 64)),
        1,
        "data file …: y_train has dtype <U3; it must be numeric",
    ),
    BadInput(
        "data",
        "no samples",
        with_data(x_train=np.zeros((0, 8, 8, 1), np.float32), y_train=np.zeros(0, np.int64)),
        1,
        "data file …: x_train is empty or a scalar; it needs one row per sample",
    ),
    BadInput(
        "data",
        "NaN or infinite values",
        with_data(x_test=np.full((16, 8, 8, 1), np.inf, np.float32)),
        1,
        "data file …: x_test holds 1024 NaN or infinite values; clean or impute them first",
    ),
    BadInput(
        "data",
        "non-integer labels for a built-in classifier",
        with_data(y_train=np.full(64, 1.5)),
        1,
        "the built-in digits_cnn is a classifier: it needs integer class labels (or one-hot "
        "rows) in y_train; pass your own model for other tasks",
    ),
    BadInput(
        "data",
        "test samples of another shape",
        with_data(x_test=np.zeros((16, 4, 4, 1), np.float32)),
        1,
        "x_test has samples of shape (4, 4, 1) but the model's input is (8, 8, 1); reshape "
        "the data or pass the matching model",
    ),
    # --- models
    BadInput(
        "model",
        "model file missing",
        with_model(lambda f: f.missing("model.keras")),
        1,
        "model …model.keras does not exist; check the path",
    ),
    BadInput(
        "model",
        "unknown extension",
        with_model(lambda f: f.text("hello", ".txt")),
        1,
        "… has extension '.txt'; pass a .keras…",
    ),
    BadInput(
        "model",
        "not a .keras archive",
        with_model(lambda f: f.text("hello", ".keras")),
        1,
        "… is not a Keras model (not a .keras zip archive)…",
    ),
    BadInput(
        "model",
        "not an HDF5 file",
        with_model(lambda f: f.text("hello", ".h5")),
        1,
        "… is not a Keras model (not an HDF5 file); pass a .keras, .h5 or SavedModel folder",
    ),
    BadInput(
        "model",
        "folder without saved_model.pb",
        with_model(lambda f: f.folder()),
        1,
        "… is not a SavedModel (no saved_model.pb)…",
    ),
    BadInput(
        "model",
        "built-in name given to a single stage",
        lambda f: ["prune", "digits_cnn", "--data", "digits", "--out", f.out()],
        1,
        "'digits_cnn' is a built-in model name, not a Keras model file; a single stage needs "
        "a .keras, .h5 or SavedModel path (the whole pipeline runs the built-in default)",
    ),
    BadInput(
        "model",
        "labels beyond the output layer",
        lambda f: run_cmd(f, "--model", f.keras_model(), "--data", f.npz(y_train=np.full(64, 12))),
        1,
        "y_train holds label 12 but the model's output layer has 10 units (labels 0..9); fix "
        "the labels or the output layer",
    ),
    # --- run folders
    BadInput(
        "run folder",
        "--out names a file",
        lambda f: ["run", "--out", f.text("keep", ".txt")],
        1,
        "output directory … is a file…",
    ),
    BadInput(
        "run folder",
        "--out cannot be written",
        lambda f: ["run", "--out", "/proc/edgeprune_out"],
        1,
        "output directory /proc/edgeprune_out cannot be written…",
    ),
    # --- sweep: refused before TensorFlow loads
    BadInput(
        "sweep",
        "without a target",
        lambda f: ["sweep", "--out", f.out()],
        2,
        "--target is required: the sweep's constraints are its budgets (see `edgeprune targets`)",
    ),
    BadInput(
        "sweep",
        "an inverted range",
        lambda f: [
            "sweep",
            "--target",
            "nano33ble",
            "--recipe",
            f.recipe(_INVERTED),
            "--out",
            f.out(),
        ],
        1,
        "sweep.width = [0.9, 0.3] is inverted; write the low end first: [0.3, 0.9]",
    ),
    BadInput(
        "sweep",
        "an empty range",
        lambda f: [
            "sweep",
            "--target",
            "nano33ble",
            "--recipe",
            f.recipe(_EMPTY),
            "--out",
            f.out(),
        ],
        1,
        "sweep.epochs is an empty range; write it as [low, high], e.g. [1, 8]",
    ),
    BadInput(
        "sweep",
        "unstructured sparsity without the ota objective",
        lambda f: [
            "sweep",
            "--target",
            "nano33ble",
            "--recipe",
            f.recipe(_SPARSE),
            "--out",
            f.out(),
        ],
        1,
        "sweep.sparsity saves no flash (the flatbuffer stores every zero weight), only "
        'over-the-air (gzip) bytes; add "ota" to sweep.objectives, offer "prune" in '
        "sweep.compress (the zeros then leave the flash), or remove it",
    ),
    BadInput(
        "sweep",
        "an unknown objective",
        lambda f: ["sweep", "--target", "nano33ble", "--objectives", "speed", "--out", f.out()],
        1,
        "sweep.objectives: unknown objective 'speed'; choose from latency, flash, ram, ota",
    ),
    BadInput(
        "sweep",
        "a malformed storage URL",
        lambda f: ["sweep", "--target", "nano33ble", "--storage", "not a url", "--out", f.out()],
        1,
        "storage URL 'not a url' is malformed: use sqlite:///PATH or "
        "postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
    ),
    BadInput(
        "sweep",
        "an unreachable PostgreSQL server",
        lambda f: [
            "sweep",
            "--target",
            "nano33ble",
            "--storage",
            "postgresql://me:pw@127.0.0.1:1/sweeps",
            "--study",
            "s",
            "--out",
            f.out(),
        ],
        1,
        "cannot reach the PostgreSQL server at 127.0.0.1:1 (…): start the server, or check "
        "the host and port in the storage URL",
    ),
    BadInput(
        "report",
        "a folder with no report",
        lambda f: ["report", f.folder()],
        1,
        "… has no report.json or sweep.json; name a folder that `edgeprune run` or "
        "`edgeprune sweep` wrote",
    ),
    # --- tree models (issue 17): refused before anything is written, TensorFlow never loaded
    BadInput(
        "trees",
        "a pickle without --unsafe-load",
        lambda f: run_cmd(f, "--model", f.text(b"never unpickled", ".pkl"), "--data", "wine"),
        1,
        "…: a pickle can run any code when loaded: save it with skops (skops.io.dump) or "
        "pass --unsafe-load if you trust this file",
    ),
    BadInput(
        "trees",
        "an estimator that is not a tree model",
        lambda f: run_cmd(f, "--model", f.text(_linear_skops(), ".skops"), "--data", "wine"),
        1,
        "… holds a sklearn.linear_model._logistic.LogisticRegression; edgeprune handles "
        "DecisionTreeClassifier, DecisionTreeRegressor, RandomForestClassifier, "
        "RandomForestRegressor, ExtraTreesClassifier, ExtraTreesRegressor",
    ),
    BadInput(
        "trees",
        "a model type edgeprune does not handle",
        lambda f: run_cmd(f, "--model", "gradient_boosting", "--data", "wine"),
        1,
        "model 'gradient_boosting' is neither a model file nor a built-in model; built-in Keras "
        "models: digits_cnn, ds_cnn, mobilenet_v1, resnet8, autoencoder; tree models: "
        "decision_tree, random_forest, extra_trees (or a fitted one as .skops or .json)",
    ),
    BadInput(
        "trees",
        "data with NaN",
        lambda f: run_cmd(f, "--model", "random_forest", "--data", f.npz(x_train=_with_nan())),
        1,
        "data file …: x_train holds 1 NaN or infinite value; clean or impute them first",
    ),
    BadInput(
        "trees",
        "categorical (text) columns",
        lambda f: run_cmd(
            f, "--model", "random_forest", "--data", f.npz(x_train=np.full((64, 3), "red"))
        ),
        1,
        "data file …: x_train has dtype <U3; it must be numeric",
    ),
    BadInput(
        "trees",
        "a target with no C compiler",
        lambda f: run_cmd(f, "--model", "random_forest", "--target", "esp32"),
        1,
        "core xtensa-lx6 has no C compiler packaged by Debian (Xtensa needs Espressif's "
        "xtensa-esp-elf-gcc); tree models cannot be sized for it here",
    ),
    BadInput(
        "trees",
        "the fit goal without a target",
        lambda f: run_cmd(
            f, "--model", "random_forest", "--recipe", f.recipe('[trees.prune]\ngoal = "fit"\n')
        ),
        1,
        'trees.prune.goal = "fit" keeps the most accurate model that fits a device: name the '
        "device (--target NAME)",
    ),
    BadInput(
        "trees",
        "a goal no pruning level meets",
        lambda f: run_cmd(
            f,
            "--model",
            "random_forest",
            "--recipe",
            f.recipe("[trees]\nn_estimators = 4\n[trees.prune]\nmax_nodes = 1\n"),
        ),
        3,
        "no pruned candidate meets at most 1 nodes: the smallest has … nodes in 1 members "
        "(4 candidates, 0 checked); loosen the budget or prune harder (another method, fewer "
        "members)",
    ),
    *MORE,
    *FAULTS,
    # --- firmware from a .tflite (issue 19): refused before anything is written
    BadInput(
        "tflite",
        "a firmware name that is not a C name",
        lambda f: ["firmware", f.tflite(), "--target", "nano33ble", "--name", "my-model"],
        1,
        "firmware name 'my-model' is not a C name: use ASCII letters, digits and single "
        "underscores, starting with a letter (such as digits_cnn)",
    ),
    BadInput(
        "tflite",
        "a labels file of another length than the output",
        lambda f: [
            "firmware",
            f.tflite(),
            "--target",
            "nano33ble",
            "--labels",
            f.text("a\nb\n", ".txt"),
        ],
        1,
        "labels file … hold 2 labels but the model's output has 10 values; give one label per "
        "output value, in order",
    ),
    BadInput(
        "tflite",
        "firmware from a Keras file",
        lambda f: ["firmware", f.keras_model(), "--target", "nano33ble"],
        1,
        "… is not a .tflite file; firmware is built from a converted int8 .tflite model (the "
        "pipeline converts a Keras model: run it for the target)",
    ),
    BadInput(
        "tflite",
        "run on a .tflite without a target",
        lambda f: ["run", "--model", f.tflite()],
        1,
        "… is a converted model, which run cannot prune or quantize again; for firmware use "
        "`edgeprune firmware … --target NAME`, for the budgets `edgeprune check … --target NAME`",
    ),
    # --- TFLite Micro weight compression ([compress], issue 18): refused before training
    BadInput(
        "compress",
        "compression for a Linux target",
        lambda f: run_cmd(f, "--target", "rpi4", "--compress", "prune"),
        1,
        "compress.method = 'prune' for rpi4, a Linux target: the compressed model needs "
        "TFLite Micro's DECODE operator, which LiteRT lacks; pass a TFLite Micro target "
        '(--target nano33ble) or set compress.method = "none"',
    ),
    BadInput(
        "compress",
        "compression without a target",
        lambda f: run_cmd(f, "--compress", "lut"),
        1,
        "compress.method = 'lut' without a target: the compressed model needs TFLite "
        "Micro's DECODE operator, which LiteRT lacks…",
    ),
    BadInput(
        "compress",
        "cluster count out of range",
        lambda f: run_cmd(f, "--compress", "lut", "--clusters", "200"),
        1,
        "cluster.clusters = 200 is outside [0, 128]",
    ),
    BadInput(
        "compress",
        "a cluster-preserving mode with nothing clustered",
        lambda f: run_cmd(f, "--quantize", "cqat"),
        1,
        "quantize.mode = 'cqat' preserves weight clusters but cluster.clusters = 0 clusters "
        "nothing; set cluster.clusters (2 to 128) or use pqat or int8",
    ),
    BadInput(
        "compress",
        "compressing a model that is not int8",
        lambda f: run_cmd(
            f, "--target", "nano33ble", "--compress", "prune", "--quantize", "float32"
        ),
        1,
        "compress.method = 'prune' encodes int8 weights but quantize.mode = 'float32'; "
        'use quantize.mode = "int8" or compress.method = "none"',
    ),
]


def _linear_skops() -> bytes:
    """A fitted LogisticRegression saved with skops: a model, but not a tree model."""
    import skops.io
    from sklearn.linear_model import LogisticRegression

    x = np.random.default_rng(0).random((20, 3))
    return skops.io.dumps(LogisticRegression().fit(x, np.arange(20) % 2))


def _with_nan() -> np.ndarray:
    x = np.random.default_rng(0).random((64, 8, 8, 1), dtype=np.float32)
    x[3, 2, 1, 0] = np.nan
    return x


def page() -> str:
    """docs/bad-inputs.md: the registry's tables, then the device faults'."""
    return render(REGISTRY) + device_faults()


if __name__ == "__main__":
    print(page(), end="")
