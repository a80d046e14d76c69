"""The second half of the bad-input registry (device profiles, .tflite files, tools);
:mod:`bad_inputs` joins it to the first. Split only to keep each file readable."""

from __future__ import annotations

import numpy as np

try:  # as tests/bad_inputs_more.py under pytest, or as tests.bad_inputs_more
    from bad_inputs_lib import BadInput, run_cmd, with_data, with_model, with_recipe
    from tflite_build import ethos_u_model
except ModuleNotFoundError:
    from tests.bad_inputs_lib import BadInput, run_cmd, with_data, with_model, with_recipe
    from tests.tflite_build import ethos_u_model

_SAFE = (
    "rebuild it without Lambda layers, or pass --unsafe-load (recipe: unsafe_load = true) "
    "if you trust the file"
)

MORE: list[BadInput] = [
    # --- device profiles
    BadInput(
        "profile",
        "unknown target",
        lambda f: ["targets", "show", "arduino"],
        1,
        "unknown target 'arduino'; known targets: …",
    ),
    BadInput(
        "profile",
        "value out of range",
        lambda f: ["targets", "show", f.profile("max_ram_bytes = 262_144", "max_ram_bytes = -1")],
        1,
        "…: budget.max_ram_bytes = -1 is out of range; it must be > 0 and <= 1,099,511,627,776",
    ),
    BadInput(
        "profile",
        "unknown key",
        lambda f: ["targets", "show", f.profile("clock_hz =", "clock_mhz =")],
        1,
        "…: unknown key 'clock_mhz'; did you mean 'clock_hz'?",
    ),
    BadInput(
        "profile",
        "wrong type",
        lambda f: ["targets", "show", f.profile("clock_hz = 64_000_000", 'clock_hz = "64 MHz"')],
        1,
        "…: clock_hz = '64 MHz' must be int",
    ),
    BadInput(
        "profile",
        "an alternate decompression block that is not a size",
        lambda f: [
            "targets",
            "show",
            f.profile(
                'platformio = "nordicnrf52:nano33ble"',
                'platformio = "nordicnrf52:nano33ble"\n\n[alt_decompression]\nbytes = -1\n'
                'region = "dtcm"\nin_ram_bytes = true',
            ),
        ],
        1,
        "…: alt_decompression.bytes = -1 must be a whole number of bytes above 0 (…); fix it "
        "or remove the [alt_decompression] table",
    ),
    BadInput(
        "profile",
        "an SDK edgeprune writes no project for",
        lambda f: [
            "targets",
            "show",
            f.profile('arduino = "arduino:mbed_nano:nano33ble"', 'stm32cube = "x"'),
        ],
        1,
        "…: sdk.stm32cube is not an SDK edgeprune writes projects for; allowed: arduino, "
        "esp-idf, pico-sdk, platformio, zephyr",
    ),
    BadInput(
        "profile",
        "a board id that is not the SDK's form",
        lambda f: [
            "targets",
            "show",
            f.profile('arduino = "arduino:mbed_nano:nano33ble"', 'arduino = "nano33ble"'),
        ],
        1,
        "…: sdk.arduino = 'nano33ble' is not a board id of arduino (one word such as "
        "'arduino:mbed_nano:nano33ble'); use the id arduino knows the board by",
    ),
    BadInput(
        "profile",
        "a quantization mode TFLite Micro cannot run",
        lambda f: run_cmd(f, "--target", "nano33ble", "--quantize", "float16"),
        1,
        "TFLite Micro on nano33ble runs int8 and float32 models but quantize.mode = 'float16' "
        "makes float16 weights, which its DEQUANTIZE cannot read; use quantize.mode = "
        '"int8" (the dtype its cmsis-nn kernels are optimised for) or "float32"',
    ),
    # --- .tflite files (inspect, cost, check)
    BadInput(
        "tflite",
        "file missing",
        lambda f: ["inspect", f.missing("model.tflite")],
        1,
        "…model.tflite does not exist; check the path",
    ),
    BadInput(
        "tflite",
        "too short for a flatbuffer",
        lambda f: ["inspect", f.text("hello", ".tflite")],
        1,
        "…: 5 bytes, too short for a TFLite model; pass a complete .tflite flatbuffer",
    ),
    BadInput(
        "tflite",
        "not a TFLite flatbuffer",
        lambda f: ["cost", f.text(b"not a flatbuffer at all", ".tflite")],
        1,
        "… not a TFLite model…",
    ),
    BadInput(
        "tflite",
        "a folder (click)",
        lambda f: ["inspect", f.folder()],
        2,
        "is a directory",
    ),
    BadInput(
        "tflite",
        "truncated model",
        lambda f: ["inspect", f.truncated_tflite()],
        1,
        "…; pass a complete .tflite flatbuffer",
    ),
    BadInput(
        "tflite",
        "hybrid (dynamic-range) model for a TFLite Micro device",
        lambda f: ["check", f.tflite("dynamic"), "--target", "nano33ble"],
        1,
        "… is a mixed model (float32 tensor … read by FULLY_CONNECTED at operator … beside an int8 "
        "input) but "
        "TFLite Micro on nano33ble runs integer-only or float32 models, not float activations "
        'with int8 weights; convert with quantize.mode = "int8"',
    ),
    BadInput(
        "tflite",
        "a model Vela compiled for an Ethos-U NPU, on a board without one",
        lambda f: ["check", f.text(ethos_u_model(), "_vela.tflite"), "--target", "nano33ble"],
        1,
        "… was compiled by Arm's Vela for an Ethos-U NPU (ethos-u at operator 0): TFLite Micro "
        "runs that part only on the NPU, and nano33ble has no Ethos-U; pass the model as it was "
        "before Vela compiled it",
    ),
    BadInput(
        "tflite",
        "a cost model for another core",
        lambda f: ["cost", f.tflite(), "--target", "nano33ble", "--cost-model", "xnnpack_x86-64"],
        1,
        "cost model xnnpack_x86-64 is for xnnpack on x86-64, but nano33ble runs cmsis-nn on "
        "cortex-m4f; choose a cost model for cmsis-nn_cortex-m4f or pass --force-cost-model "
        "(recipe: [budget] force_cost_model = true) to use it anyway",
    ),
    # --- budgets and tools
    BadInput(
        "calibration",
        "a measurement of 0 ms",
        lambda f: [
            "calibrate",
            f.text(
                "model,op,ms,clock_hz,cost_model,board,source\n"
                "kws_ref.json,,0,80000000,cmsis-nn_cortex-m4f,B,me\n",
                ".csv",
            ),
        ],
        1,
        "… row 2: ms = 0; a zero or missing time is not a measurement (a cycle counter that does "
        "not run, or a run that timed nothing): measure again or delete the row",
    ),
    BadInput(
        "budget",
        "model over the flash budget",
        lambda f: ["check", f.tflite(), "--target", "nano33ble", "--max-flash-bytes", "1000"],
        3,
        "… does not fit nano33ble: flash…",
    ),
    BadInput(
        "validation",
        "a folder that is not a run folder",
        lambda f: ["validate", f.folder()],
        1,
        "… has no report.json; validate a run folder written by `edgeprune run` (make <target> "
        "writes build/<target>)",
    ),
    BadInput(
        "tools",
        "calibration rows without the needed columns",
        lambda f: ["calibrate", f.text("a,b\n1,2\n", ".csv")],
        1,
        "…: missing column model, op, ms, clock_hz, cost_model, board, source; the header must "
        "name model, op, ms, clock_hz, cost_model, board, source",
    ),
    BadInput(
        "tools",
        "measure on a microcontroller profile",
        lambda f: ["measure", f.tflite(), "--target", "nano33ble"],
        1,
        "nano33ble runs TFLite Micro on a microcontroller; `measure` times LiteRT on this "
        "machine: use --target host (or a Linux profile)",
    ),
    BadInput(
        "tools",
        "cost for an unknown target",
        lambda f: ["cost", f.tflite(), "--target", "arduino"],
        1,
        "unknown target 'arduino'; known targets: …",
    ),
    BadInput(
        "tools",
        "fleet folder missing",
        lambda f: ["fleet", f.missing("build")],
        1,
        "cannot read the build folder …build (No such file or directory); run `make "
        "all-targets` or name the folder it wrote",
    ),
    BadInput(
        "tools",
        "calibration file missing",
        lambda f: ["calibrate", f.missing("rows.csv")],
        1,
        "…rows.csv cannot be read (No such file or directory)",
    ),
    BadInput(
        "tools",
        "fleet folder without builds",
        lambda f: ["fleet", f.folder()],
        1,
        "… holds no device build (no NAME.exit, no NAME/report.json); run `make all-targets` "
        "or name the targets",
    ),
]

# Issue 14: what the outside fault campaign found, each now a named error.
FAULTS: list[BadInput] = [
    BadInput(
        "recipe",
        "not UTF-8",
        lambda f: run_cmd(f, "--recipe", f.text(b"seed = 0\n# \xff\n", ".toml")),
        1,
        "recipe …: not valid TOML (byte … is not UTF-8); save it as UTF-8 text",
    ),
    BadInput(
        "recipe",
        "nested too deeply",
        lambda f: run_cmd(f, "--recipe", f.text("a = " + "[" * 100000 + "]" * 100000, ".toml")),
        1,
        "recipe …: not valid TOML (nested too deeply to read); flatten its tables and arrays",
    ),
    BadInput(
        "recipe",
        "whole number beyond any use",
        with_recipe("[prune]\nepochs = 1180591620717411303424\n"),
        1,
        "…prune.epochs = 1180591620717411303424 is above the largest allowed value 2147483647",
    ),
    BadInput(
        "recipe",
        "control characters in a string",
        with_recipe('[prune]\nexclude = ["a\\u001bb"]\n'),
        1,
        "…prune.exclude = … holds control characters; use plain text",
    ),
    BadInput(
        "data",
        "scalar labels",
        with_data(y_train=np.array(3)),
        1,
        "data file …: y_train is empty or a scalar; it needs one row per sample",
    ),
    BadInput(
        "data",
        "finite in float64, infinite in float32",
        with_data(x_train=np.full((64, 8, 8, 1), 1e300)),
        1,
        "data file …: x_train holds 4096 values beyond float32's range (about 3.4e38), which "
        "overflow to infinity in float32, the dtype it is trained in; scale or clip the data",
    ),
    BadInput(
        "data",
        "header declares 256 GiB",
        lambda f: run_cmd(f, "--data", f.huge_npz()),
        1,
        "data file …: array 'x_train' declares shape (65536, 1048576) of float32 "
        "(274,877,906,944 bytes) but holds 16; the file is corrupt or truncated: save it again "
        "with numpy.savez",
    ),
    BadInput(
        "data",
        "complex numbers",
        with_data(x_train=np.zeros((64, 8, 8, 1), np.complex64)),
        1,
        "data file …: x_train holds complex numbers; pass real values (…)",
    ),
    BadInput(
        "data",
        "one test sample",
        with_data(x_test=np.zeros((1, 8, 8, 1), np.float32), y_test=np.array([0])),
        1,
        "data file …: x_test has 1 sample; accuracy on 1 sample is meaningless: give at least 2 "
        "test samples",
    ),
    BadInput(
        "data",
        "fractional labels for a classifier",
        lambda f: run_cmd(f, "--model", f.keras_model(), "--data", f.npz(y_train=np.full(64, 1.5))),
        1,
        "y_train holds the non-integer label 1.5 but the model's output layer has "
        "10 units, a classifier: labels must be integer class ids 0..9",
    ),
    BadInput(
        "data",
        "not a regular file",
        lambda f: run_cmd(f, "--data", "/dev/zero"),
        1,
        "data /dev/zero is not a regular file; pass an .npz file",
    ),
    BadInput(
        "model",
        "Lambda layer in a .h5 file (code on load)",
        with_model(lambda f: f.lambda_model(".h5")),
        1,
        "model …: layer 'double' (Lambda) holds Python code that would run on load; " + _SAFE,
    ),
    BadInput(
        "model",
        "Lambda layer in a .keras file",
        with_model(lambda f: f.lambda_model(".keras")),
        1,
        "model …: layer 'double' (Lambda) holds Python code that would run on load; " + _SAFE,
    ),
    BadInput(
        "model",
        "Lambda layer in a SavedModel",
        with_model(lambda f: f.lambda_model("")),
        1,
        "model …: layer 'double' (Lambda) holds Python code that would run on load; " + _SAFE,
    ),
    BadInput(
        "model",
        "config.json is a list",
        with_model(lambda f: f.keras_with_json("config.json", "[]")),
        1,
        "…: config.json holds a JSON list, not an object; re-save the model with "
        "model.save('model.keras')",
    ),
    BadInput(
        "model",
        "recurrent layer not unrolled",
        lambda f: run_cmd(
            f,
            "--model",
            f.recurrent_model(),
            "--data",
            f.npz(
                x_train=np.zeros((64, 8, 8), np.float32), x_test=np.zeros((16, 8, 8), np.float32)
            ),
        ),
        1,
        "layer lstm is a LSTM that is not unrolled, which the TFLite converter cannot convert "
        "(TensorListReserve); rebuild it with LSTM(..., unroll=True) and a fixed sequence "
        "length (…), copy the weights over, and pass that model",
    ),
    BadInput(
        "run folder",
        "another edgeprune process holds it",
        lambda f: ["run", "--out", f.held_folder()],
        1,
        "run folder … is in use by another edgeprune process (pid …, edgeprune run, started …); "
        "wait for it to finish or choose another output folder",
    ),
    BadInput(
        "profile",
        "infinite latency budget",
        lambda f: [
            "targets",
            "show",
            f.profile(
                "max_ram_bytes = 262_144  # all of it: the figure includes the reserve",
                "max_latency_ms = inf",
            ),
        ],
        1,
        "…: budget.max_latency_ms = inf is out of range; it must be > 0.0 and <= 86,400,000",
    ),
    BadInput(
        "profile",
        "RAM beyond any device",
        lambda f: [
            "targets",
            "show",
            f.profile("ram_bytes = 262_144", "ram_bytes = 2_000_000_000_000_000_000_000"),
        ],
        1,
        "…: ram_bytes = 2000000000000000000000 is out of range; it must be > 0 and <= "
        "1,099,511,627,776",
    ),
    BadInput(
        "profile",
        "control characters in the name",
        lambda f: ["targets", "show", f.profile('name = "Arduino', 'name = "\\u001b[2JArduino')],
        1,
        "…: name = … holds control characters; use plain text",
    ),
]

_DAMAGED = "; the file is damaged or was not written by the TFLite converter — re-convert the model"
_OP = "operator 0 (CONV_2D) of subgraph 0"
# benchmarks/tflite_mutants.py's hand-made damage (what LiteRT's loader refuses) and
# what the verifier says of it; every reader of a .tflite (inspect, cost, check,
# firmware, validate) refuses it the same way.
_MUTANTS = {
    "stride 0": f"{_OP} has strideW 0 (must be at least 1)",
    "negative dilation": f"{_OP} has dilationHFactor -1 (must be at least 1)",
    "padding 99": f"{_OP} has padding 99 (SAME or VALID)",
    "fused activation 99": f"{_OP} has fused activation 99 (unknown)",
    "conv options missing": f"{_OP} has options NONE, not Conv2DOptions",
    "no inputs": "subgraph 0 has no input tensor",
    "no outputs": "subgraph 0 has no output tensor",
    "no operators": "subgraph 0 has no operator",
    "no subgraphs": "the model has no subgraph",
    "schema 99": "schema version 99, not 3",
    "root table emptied": "the root table is empty (no schema version, no subgraph)",
    "NaN weight scale": "tensor 4 (…) of subgraph 0 has quantization scale nan (must be > 0)",
    "weights with no data": f"{_OP} reads tensor 4 (…) of subgraph 0, which holds no data and "
    "no earlier operator writes",
    "bias zero point 2": "tensor 3 (…) of subgraph 0 (int32, 4 scales) has zero point 2; "
    "TFLite's quantization spec fixes it at 0",
    "signature key past the end": "the key of signature 0 runs past the end of the file",
    "huge dimension": "tensor 0 (…) of subgraph 0 declares shape [1, 1073741824, 8, 1], "
    "8,589,934,592 bytes (over the 2,147,483,648 a tensor of a TFLite model can hold)",
    "unknown builtin 250": "operator 0 (UNKNOWN_BUILTIN_250) of subgraph 0 has an unknown "
    "builtin code",
}
_COMMAND = {"stride 0": ["check", "--target", "nano33ble"], "NaN weight scale": ["cost"]}

FAULTS += [
    BadInput(
        "tflite",
        name,
        lambda f, name=name: [*_COMMAND.get(name, ["inspect"]), f.mutant(name)],
        1,
        "…: " + problem + _DAMAGED,
    )
    for name, problem in _MUTANTS.items()
]
FAULTS += [
    BadInput(
        "tflite",
        "operator index out of range",
        lambda f: ["inspect", f.mutant("opcode index 99")],
        1,
        "…: damaged TFLite model: operator 0 of subgraph 0 uses opcode 99, but only 3 are "
        "declared; pass a complete .tflite flatbuffer",
    ),
    BadInput(
        "tflite",
        "not a regular file",
        lambda f: ["inspect", "/dev/zero"],
        1,
        "model /dev/zero is not a regular file; pass a .tflite file",
    ),
    BadInput(
        "tflite",
        "over the size cap",
        lambda f: ["inspect", f.text(b"\0" * (2 << 20), ".tflite"), "--max-model-mb", "1"],
        1,
        "model … is 2.0 MiB, over the 1 MiB limit for a .tflite; raise the limit with "
        "--max-model-mb if the file is right",
    ),
]


def device_faults() -> str:
    """The page's device-fault tables, from the cases ``tests/test_device_faults.py``
    asserts (fault, samples completed, words of the error) and the fault kinds of
    :mod:`edgeprune.runners.faulty`."""
    try:
        from test_device_faults import SERIAL_CASES, SSH_CASES
    except ModuleNotFoundError:
        from tests.test_device_faults import SERIAL_CASES, SSH_CASES
    from edgeprune.runners import faulty

    lines = [
        "",
        "## device faults",
        "",
        "A board that fails during `edgeprune validate` ends the run with exit 5, after",
        "report.json is written with the samples completed so far (`partial: true`):",
        "`edgeprune: error: validation on <runner> is partial: <what failed>; the partial",
        "results are in report.json`. Each row is a case `tests/test_device_faults.py`",
        "runs (6 samples, the fault after the samples shown) and the words its error",
        "must hold; `benchmarks/campaign_devices.py` runs each kind at several samples.",
    ]
    for runner, cases, kinds in (
        ("serial", SERIAL_CASES, faulty.SERIAL),
        ("ssh", SSH_CASES, faulty.SSH),
    ):
        lines += ["", f"### {runner}", "", "| fault | the board | completed | exit | error holds |"]
        lines.append("|---|---|---|---|---|")
        for fault, completed, words in cases:
            kind = fault.partition("@")[0]
            cells = [f"`{kind}`", kinds[kind], str(completed), "5", words]
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


FAULTS += [
    BadInput(
        "tflite",
        f"over the size cap ({command})",
        lambda f, command=command: [
            command,
            f.text(b"\0" * (2 << 20), ".tflite"),
            *(["--target", "nano33ble"] if command == "firmware" else []),
            "--max-model-mb",
            "1",
        ],
        1,
        "model … is 2.0 MiB, over the 1 MiB limit for a .tflite; raise the limit with "
        "--max-model-mb if the file is right",
    )
    for command in ("firmware", "measure")
]
FAULTS.append(
    BadInput(
        "tflite",
        "firmware into another model's run folder",
        lambda f: ["firmware", f.tflite(), "--target", "nano33ble", "--out", f.other_run_folder()],
        1,
        "… holds the run of another model than …; its firmware/ would not match that run's "
        "report; choose another folder (--out) or pass --force to write it there",
    )
)
# Found by the campaign of this repository (benchmarks/campaign.py) after the fixes above.
FAULTS += [
    BadInput(
        "recipe",
        "a FIFO or device as the recipe",
        lambda f: run_cmd(f, "--recipe", f.fifo()),
        1,
        "recipe …: not a regular file; pass a TOML file",
    ),
    BadInput(
        "recipe",
        "block larger than any kernel",
        with_recipe('[prune]\nblock_size = "1x1099511627776"\n'),
        1,
        "prune.block_size = '1x1099511627776' is larger than any kernel dimension; each number "
        "must be at most 65536",
    ),
    BadInput(
        "recipe",
        "empty string",
        with_recipe('[validate]\nremote_python = ""\n'),
        1,
        "validate.remote_python is empty; give it a value or leave it out (the default is "
        "'python3')",
    ),
    BadInput(
        "model",
        "no layer with weights",
        with_model(lambda f: f.empty_model()),
        1,
        "… has no layer with weights (0 layers); there is nothing to prune or quantize: pass "
        "the trained model",
    ),
    BadInput(
        "tflite",
        "check on a folder",
        lambda f: ["check", f.folder(), "--target", "nano33ble"],
        1,
        "… is a folder; pass a .tflite file",
    ),
]
FAULTS += [
    BadInput(
        "profile",
        "a folder as the profile",
        lambda f: ["targets", "show", f.folder(".toml")],
        1,
        "target file …: is a folder, not a TOML file",
    ),
]
