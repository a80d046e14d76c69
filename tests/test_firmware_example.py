"""Tests for the inference example, the labels header and `edgeprune firmware` on any .tflite.

The example is compiled with the host compiler under -Wall -Wextra -Wpedantic
-Wshadow -Wconversion -Werror against stub TFLite Micro headers (the op
resolver of tests/test_firmware.py and an interpreter written here). For the
digits test images, the stub interpreter's Invoke() looks the input bytes the
example wrote up in a table of the host runner's (LiteRT) quantized inputs and
outputs: an input the example quantized differently finds no entry and fails,
and the label it prints comes from its own dequantize, argmax and labels code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from test_firmware import _stub_tflm  # noqa: E402 - tests/ is on sys.path under pytest

from edgeprune.cli import main  # noqa: E402
from edgeprune.errors import BadInputError  # noqa: E402
from edgeprune.firmware.emit import EXAMPLE_CC, ExampleInput, ModelFacts, names, render  # noqa: E402
from edgeprune.firmware.labels import c_string, read_labels  # noqa: E402
from edgeprune.runners.host import HostRunner, quantize  # noqa: E402
from edgeprune.tflite import inspect_model  # noqa: E402

CXX = shutil.which("g++") or shutil.which("c++")
needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++ or c++) on PATH")
# What the issue asks the example to compile under; C++11, the oldest standard of
# the SDKs' toolchains (Arduino cores), so that nothing newer slips in.
STRICT = ["-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion", "-Werror"]
DIGITS = tuple(str(d) for d in range(10))
FIRST = 50  # test images the example is run on

# The TFLite Micro interpreter as far as the example uses it; the tensors and
# Invoke() are defined by each test's board.cc.
_INTERPRETER_H = """#pragma once
#include <stddef.h>
#include <stdint.h>
#include "stub_common.h"
typedef union { char* raw; int8_t* int8; uint8_t* uint8; int16_t* i16; float* f; } TfLitePtrUnion;
typedef struct { TfLitePtrUnion data; size_t bytes; } TfLiteTensor;
namespace tflite {
struct Model {};
inline const Model* GetModel(const void* data) { return static_cast<const Model*>(data); }
class MicroInterpreter {
 public:
  template <typename Resolver>
  MicroInterpreter(const Model*, const Resolver& resolver, uint8_t*, size_t arena_bytes)
      : arena_bytes_(arena_bytes), ops_(resolver.count) {}
  TfLiteStatus AllocateTensors() { return arena_bytes_ > 0 && ops_ > 0 ? kTfLiteOk : kTfLiteError; }
  size_t inputs_size() const { return 1; }
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  TfLiteStatus Invoke();
 private:
  size_t arena_bytes_;
  unsigned int ops_;
};
}  // namespace tflite
"""

# Invoke() answers an input found in the table with the host runner's output for
# it (and says which entry on stderr); any other input fails.
_LOOKUP_BOARD = """#include <stdio.h>
#include <string.h>
#include "tensorflow/lite/micro/micro_interpreter.h"
static unsigned char in_mem[IN_BYTES], out_mem[OUT_BYTES];
static TfLiteTensor in_t = {{(char*)in_mem}, IN_BYTES}, out_t = {{(char*)out_mem}, OUT_BYTES};
static const unsigned char kIn[COUNT][IN_BYTES] = {IN_TABLE};
static const unsigned char kOut[COUNT][OUT_BYTES] = {OUT_TABLE};
TfLiteTensor* tflite::MicroInterpreter::input(size_t) { return &in_t; }
TfLiteTensor* tflite::MicroInterpreter::output(size_t) { return &out_t; }
TfLiteStatus tflite::MicroInterpreter::Invoke() {
  for (int i = 0; i < COUNT; ++i) {
    if (memcmp(in_mem, kIn[i], IN_BYTES) == 0) {
      memcpy(out_mem, kOut[i], OUT_BYTES);
      fprintf(stderr, "entry %d\\n", i);
      return kTfLiteOk;
    }
  }
  fprintf(stderr, "no host output for this input\\n");
  return kTfLiteError;
}
"""


def _table(rows: np.ndarray) -> str:
    return ", ".join("{" + ", ".join(str(b) for b in row.tobytes()) + "}" for row in rows)


def _board(tmp: Path, inputs: np.ndarray, outputs: np.ndarray) -> Path:
    """board.o: the stub interpreter's tensors and a lookup Invoke() over the table."""
    src = _LOOKUP_BOARD
    for key, value in {
        "IN_BYTES": str(inputs[0].nbytes),
        "OUT_BYTES": str(outputs[0].nbytes),
        "COUNT": str(len(inputs)),
        "IN_TABLE": _table(inputs),
        "OUT_TABLE": _table(outputs),
    }.items():
        src = src.replace(key, value)
    (tmp / "board.cc").write_text(src)
    return _compile(tmp, "board.cc", [])


def _stub(tmp: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    _stub_tflm(tmp / "stub", files)
    (tmp / "stub" / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").write_text(
        _INTERPRETER_H
    )


def _compile(tmp: Path, source: str, flags: list[str], out: str | None = None) -> Path:
    obj = tmp / (out or Path(source).with_suffix(".o").name)
    cmd = [CXX, *flags, "-I", str(tmp), "-I", str(tmp / "stub"), "-c", str(tmp / source)]
    build = subprocess.run([*cmd, "-o", str(obj)], capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    return obj


def _link_and_run(
    tmp: Path, objects: list[Path], exe: str = "example"
) -> subprocess.CompletedProcess:
    link = subprocess.run(
        [CXX, *map(str, objects), "-lm", "-o", str(tmp / exe)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert link.returncode == 0, link.stderr
    return subprocess.run([str(tmp / exe)], capture_output=True, text=True, timeout=30)


def _digits_facts(digits, i: int) -> ModelFacts:
    x = digits.x_test[i]
    note = f'test sample {i} of digits, true label "{digits.y_test[i]}"'
    return ModelFacts(
        labels=DIGITS,
        labels_note="Labels of the built-in data set digits.",
        task="classification",
        sample=ExampleInput(tuple(float(v) for v in x.reshape(-1)), note),
    )


# ---------------------------------------------------------------- the example on the host


@needs_cxx
def test_the_example_prints_the_host_runners_label_for_the_first_50_digits(
    int8_model, digits, tmp_path
):
    """Each of the first 50 test images, compiled in as the example's input: the
    example's quantized input is byte for byte the host runner's (its table entry
    for that image is found), and the label and score it prints are the host
    runner's argmax and dequantized score."""
    x = digits.x_test[:FIRST]
    run = HostRunner(int8_model).run(x)
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_content=int8_model).get_input_details()[0]
    inputs = np.stack([quantize(x[i : i + 1], detail)[0] for i in range(FIRST)])
    assert len({row.tobytes() for row in inputs}) == FIRST  # every entry tells one image
    files = render(int8_model, "digits.tflite", 4096, facts=_digits_facts(digits, 0))
    n = names("digits")
    _stub(tmp_path, files)
    board = _board(tmp_path, inputs, run.raw)
    model = _compile(tmp_path, n.model_cc, STRICT)
    expected = run.outputs.argmax(1)
    agree = 0
    for i in range(FIRST):
        text = render(int8_model, "digits.tflite", 4096, facts=_digits_facts(digits, i))
        (tmp_path / f"example_{i}.cc").write_text(text[EXAMPLE_CC])
        obj = _compile(tmp_path, f"example_{i}.cc", STRICT)
        result = _link_and_run(tmp_path, [obj, board, model])
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stderr == f"entry {i}\n"  # its own image's bytes, as the host quantized
        *registered, last = result.stdout.splitlines()  # the stub resolver logs each op
        assert len(registered) == len(inspect_model(int8_model).op_counts)
        label, score = last.split()[1::2]
        assert last == f"label {label} score {score}"
        assert label == DIGITS[expected[i]]
        assert score == f"{float(run.outputs[i].max()):.4f}"  # both print the exact float
        agree += int(label == str(digits.y_test[i]))
    assert agree >= FIRST // 2  # the model is trained: most labels are the true ones


@needs_cxx
def test_a_sample_quantized_otherwise_finds_no_host_output(int8_model, digits, tmp_path):
    """Guards the test above: an input one LSB off the host's is not in the table."""
    x = digits.x_test[:1]
    run = HostRunner(int8_model).run(x)
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_content=int8_model).get_input_details()[0]
    inputs = quantize(x, detail)
    inputs[0].reshape(-1)[20] += 1
    files = render(int8_model, "digits.tflite", 4096, facts=_digits_facts(digits, 0))
    _stub(tmp_path, files)
    objects = [
        _compile(tmp_path, EXAMPLE_CC, STRICT),
        _board(tmp_path, inputs, run.raw),
        _compile(tmp_path, "model_digits.cc", STRICT),
    ]
    result = _link_and_run(tmp_path, objects)
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "Invoke failed"


@needs_cxx
@pytest.mark.parametrize("kind", ["int8", "int8_float_io", "float32"])
def test_the_example_compiles_warning_free_for_every_interface(
    int8_model, int8_float_io_model, float_model, digits, tmp_path, kind
):
    """int8 and float32 inputs and outputs: strict flags, C++11, and it runs (the
    stub answers its own quantized input with a fixed output)."""
    model = {"int8": int8_model, "int8_float_io": int8_float_io_model, "float32": float_model}
    files = render(model[kind], "m.tflite", 8192, facts=_digits_facts(digits, 3))
    info = inspect_model(model[kind])
    text = files[EXAMPLE_CC]
    if info.inputs[0].dtype == "float32":
        assert "float ToInput(float x) { return x; }" in text
        dtype = np.float32
    else:
        assert "rintf(x / kMInput0Scale + static_cast<float>(kMInput0ZeroPoint))" in text
        dtype = np.int8
    _stub(tmp_path, files)
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_content=model[kind]).get_input_details()[0]
    inputs = quantize(digits.x_test[3:4], detail).astype(dtype)
    run = HostRunner(model[kind]).run(digits.x_test[3:4])
    objects = [
        _compile(tmp_path, EXAMPLE_CC, STRICT),
        _board(tmp_path, inputs, run.raw),
        _compile(tmp_path, "model_m.cc", STRICT),
    ]
    result = _link_and_run(tmp_path, objects)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith(f"label {run.outputs[0].argmax()} score ")
    # without main(), for a board's own entry point
    obj = _compile(tmp_path, EXAMPLE_CC, [*STRICT, "-DINFERENCE_EXAMPLE_NO_MAIN"], "lib.o")
    symbols = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True).stdout
    assert " T RunInferenceExample()" in symbols and " T main" not in symbols


@needs_cxx
def test_a_regression_example_prints_the_dequantized_values(int8_model, digits, tmp_path):
    facts = ModelFacts(task="regression")
    files = render(int8_model, "ae.tflite", 4096, facts=facts)
    assert "zeros: no test sample is known for this model" in files[EXAMPLE_CC]
    assert "labels_ae.h" not in files
    _stub(tmp_path, files)
    zeros = np.zeros((1, 8, 8, 1), np.float32)
    from ai_edge_litert.interpreter import Interpreter

    detail = Interpreter(model_content=int8_model).get_input_details()[0]
    raw = np.arange(-64, 96, 16, dtype=np.int8).reshape(1, 10)  # any output will do
    objects = [
        _compile(tmp_path, EXAMPLE_CC, STRICT),
        _board(tmp_path, quantize(zeros, detail), raw),
        _compile(tmp_path, "model_ae.cc", STRICT),
    ]
    result = _link_and_run(tmp_path, objects)
    assert result.returncode == 0, result.stdout + result.stderr
    out = inspect_model(int8_model).outputs[0]
    expected = (raw[0].astype(np.float32) - out.zero_points[0]) * np.float32(out.scales[0])
    lines = result.stdout.splitlines()[-10:]
    assert [line.split()[0] for line in lines] == [f"output[{i}]" for i in range(10)]
    np.testing.assert_allclose([float(line.split()[1]) for line in lines], expected, atol=1e-6)


def test_a_large_input_gets_zeros_instead_of_a_compiled_in_sample(int8_model):
    """A sample over 4096 values would cost its size in flash four times over."""
    from edgeprune.firmware import example

    info = inspect_model(int8_model)
    n = names("m")
    big = ExampleInput(tuple([0.5] * 64), "test sample 0 of x")
    real = example.inference_example_cc(info, n, [], big, False, True)
    assert "0.5f" in real
    old = example.MAX_SAMPLE_VALUES
    try:
        example.MAX_SAMPLE_VALUES = 63
        text = example.inference_example_cc(info, n, [], big, False, True)
    finally:
        example.MAX_SAMPLE_VALUES = old
    assert "0.5f" not in text
    assert "zeros: test sample 0 of x has 64 values, 256 bytes of flash" in text


def test_the_example_is_left_out_without_an_arena(int8_model):
    assert EXAMPLE_CC not in render(int8_model, "m.tflite", None)
    assert EXAMPLE_CC in render(int8_model, "m.tflite", 1024)


def test_a_model_without_softmax_prints_values_and_with_labels_a_label(int8_model):
    from edgeprune.firmware.example import is_classifier

    assert is_classifier(inspect_model(int8_model))  # its head is a SOFTMAX
    text = render(int8_model, "m.tflite", 1024)[EXAMPLE_CC]
    assert 'INFERENCE_EXAMPLE_PRINTF("class %d score %.4f\\n", best,' in text
    text = render(int8_model, "m.tflite", 1024, facts=ModelFacts(labels=DIGITS))[EXAMPLE_CC]
    assert 'INFERENCE_EXAMPLE_PRINTF("label %s score %.4f\\n", kMLabels[best],' in text
    text = render(int8_model, "m.tflite", 1024, facts=ModelFacts(task="regression"))[EXAMPLE_CC]
    assert "output[%d] %.6f" in text


# ---------------------------------------------------------------- labels


@needs_cxx
def test_labels_reach_c_byte_for_byte(int8_model, tmp_path):
    labels = (
        'say "hi"',
        "back\\slash",
        "what??=",
        "naïve",
        "tab\there",
        "a\\",
        "?",
        "7",
        "x",
        "ünï",
    )
    files = render(int8_model, "m.tflite", None, facts=ModelFacts(labels=labels))
    header = files["labels_m.h"]
    assert "constexpr int kMLabelCount = 10;" in header
    (tmp_path / "labels_m.h").write_text(header)
    (tmp_path / "main.cc").write_text(
        '#include <stdio.h>\n#include "labels_m.h"\n'
        'int main() { for (int i = 0; i < kMLabelCount; ++i) printf("%s\\n", kMLabels[i]); }\n'
    )
    obj = _compile(
        tmp_path, "main.cc", ["-std=c++11", "-Wall", "-Wextra", "-Werror", "-Wtrigraphs"]
    )
    result = subprocess.run(
        [CXX, str(obj), "-o", str(tmp_path / "p")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = subprocess.run([str(tmp_path / "p")], capture_output=True, timeout=30).stdout
    assert out == "".join(f"{label}\n" for label in labels).encode("utf-8")


def test_c_string_escapes_what_c_would_read_otherwise():
    assert c_string('a"b') == '"a\\"b"'
    assert c_string("??=") == '"\\?\\?="'
    assert c_string("é1") == '"\\303\\2511"'  # octal escapes stop after 3 digits


def test_labels_of_another_count_are_refused_naming_both(int8_model):
    with pytest.raises(BadInputError) as err:
        render(int8_model, "m.tflite", None, facts=ModelFacts(labels=("a", "b")))
    assert str(err.value) == (
        "the labels hold 2 labels but the model's output has 10 values; give one label "
        "per output value, in order"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"a\n\nb\n", "has a blank line 2 before its last label"),
        (b"\n\n", "holds no label"),
        (b"\xff\xfe", "is not UTF-8 text (byte 0)"),
    ],
)
def test_bad_labels_files_are_refused(tmp_path, content, message):
    path = tmp_path / "labels.txt"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match=re.escape(message)):
        read_labels(path)


def test_labels_file_reading_strips_and_ignores_trailing_blank_lines(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_bytes(b"\xef\xbb\xbf cat \r\ndog\r\n\r\n")
    assert read_labels(path) == ("cat", "dog")
    with pytest.raises(BadInputError, match="cannot read labels file"):
        read_labels(tmp_path / "missing.txt")


def test_builtin_data_sets_name_their_classes():
    from edgeprune.models import mlperf_tiny

    from edgeprune.data import BUILTIN_DATASETS
    from edgeprune.firmware.labels import label_names

    assert label_names("digits") == DIGITS
    for dataset, model in (
        ("kws_synthetic", "ds_cnn"),
        ("vww_synthetic", "mobilenet_v1"),
        ("ic_synthetic", "resnet8"),
    ):
        assert len(label_names(dataset)) == mlperf_tiny.REFERENCE[model][2]
    assert label_names("ad_synthetic") is None  # regression
    from sklearn import datasets

    for name in ("breast_cancer", "wine"):  # as scikit-learn names their targets
        names_ = tuple(str(t) for t in getattr(datasets, f"load_{name}")().target_names)
        assert label_names(name) == names_
    assert set(BUILTIN_DATASETS) == {"digits", "ad_synthetic"} | {
        d for d in BUILTIN_DATASETS if label_names(d)
    }


# ---------------------------------------------------------------- the firmware command


def _run_folder(tmp_path: Path, model: bytes) -> Path:
    """A run folder as the pipeline leaves it: final_int8.tflite and a report that
    lists its bytes and says it is the built-in digits CNN on digits."""
    import hashlib

    run = tmp_path / "run"
    run.mkdir()
    (run / "final_int8.tflite").write_bytes(model)
    report = {
        "inputs": {
            "model": "builtin:digits_cnn",
            "data": {"name": "digits"},
            "task": "classification",
        },
        "artifacts": {
            "final_int8.tflite": {"stage": "quantize", "sha256": hashlib.sha256(model).hexdigest()}
        },
    }
    (run / "report.json").write_text(json.dumps(report))
    return run


def test_firmware_of_a_runs_model_is_named_labelled_and_sampled_by_the_run(
    int8_model, digits, tmp_path
):
    run = _run_folder(tmp_path, int8_model)
    r = CliRunner().invoke(main, ["firmware", str(run / "final_int8.tflite"), "--target", "pico"])
    assert r.exit_code == 0, r.output
    fw = run / "firmware"
    assert {"model_digits_cnn.h", "labels_digits_cnn.h", EXAMPLE_CC} <= set(os.listdir(fw))
    assert not list(fw.glob("*final_int8*"))
    example = (fw / EXAMPLE_CC).read_text()
    assert f'// The input: test sample 0 of digits, true label "{digits.y_test[0]}".' in example
    from edgeprune.firmware.model_files import float_literal

    row = ", ".join(float_literal(float(v), "x") for v in digits.x_test[0].reshape(-1)[:8])
    assert f"\n    {row},\n" in example
    assert (
        'kDigitsCnnLabels[kDigitsCnnLabelCount] = {\n    "0",'
        in (fw / "labels_digits_cnn.h").read_text()
    )


def test_firmware_name_and_labels_options(int8_model, tmp_path):
    model = tmp_path / "final_int8.tflite"
    model.write_bytes(int8_model)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"digit {d}\n" for d in range(10)))
    r = CliRunner().invoke(
        main,
        ["firmware", str(model), "--target", "nano33ble", "--name", "kws2", "--labels", labels],
    )
    assert r.exit_code == 0, r.output
    fw = tmp_path / "firmware"
    header = (fw / "labels_kws2.h").read_text()
    assert '    "digit 9",\n};' in header and "// Labels from labels.txt." in header
    assert "kws2_OpResolver resolver;" in (fw / EXAMPLE_CC).read_text()
    sketch = (fw / "edgeprune_validate" / "edgeprune_validate.ino").read_text()
    assert '#include "ops_kws2.h"' in sketch and "kws2_RegisterOps(g_resolver)" in sketch
    assert "inference_example.cc" not in os.listdir(fw / "edgeprune_validate")  # its own main()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "my-model"], "firmware name 'my-model' is not a C name: use ASCII letters"),
        (["--labels", "three.txt"], "labels file three.txt hold 3 labels but the model's output "),
        (["--labels", "none.txt"], "cannot read labels file none.txt: No such file or directory"),
    ],
)
def test_bad_firmware_arguments_write_nothing(int8_model, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    Path("m.tflite").write_bytes(int8_model)
    Path("three.txt").write_text("a\nb\nc\n")
    r = CliRunner().invoke(main, ["firmware", "m.tflite", "--target", "nano33ble", *args])
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith(f"edgeprune: error: {message}")
    assert len(r.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(tmp_path)) == ["m.tflite", "three.txt"]


def test_firmware_refuses_a_file_that_is_not_a_tflite(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"\x89HDF")
    r = CliRunner().invoke(main, ["firmware", str(tmp_path / "m.h5"), "--target", "nano33ble"])
    assert r.exit_code == 1
    assert "m.h5 is not a .tflite file; firmware is built from a converted int8" in r.stderr


_NO_TF = """
import sys, time
from edgeprune.cli import main
began = time.perf_counter()
try:
    main(sys.argv[1:], standalone_mode=False)
    code = 0
except SystemExit as exc:
    code = exc.code
print(code, "tensorflow" in sys.modules, "tf_keras" in sys.modules, time.perf_counter() - began)
"""


def _no_tf(*args: str, cwd: Path) -> tuple[int, bool, bool, float, str]:
    r = subprocess.run(
        [sys.executable, "-c", _NO_TF, *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )
    code, tf, keras, seconds = r.stdout.split()[-4:]
    return int(code), tf == "True", keras == "True", float(seconds), r.stderr


def test_firmware_never_imports_tensorflow(int8_model, tmp_path):
    (tmp_path / "m.tflite").write_bytes(int8_model)
    code, tf, keras, _, err = _no_tf("firmware", "m.tflite", "--target", "nano33ble", cwd=tmp_path)
    assert (code, tf, keras) == (0, False, False), err
    assert (tmp_path / "firmware" / "model_m.h").exists()


def test_run_on_a_tflite_refuses_at_once_or_builds_the_firmware(int8_model, tmp_path):
    """`run --model X.tflite` has nothing to prune: without --target it says where to go,
    before TensorFlow loads; with --target it builds the firmware as `firmware` does."""
    (tmp_path / "m.tflite").write_bytes(int8_model)
    code, tf, _, _, err = _no_tf("run", "--model", "m.tflite", cwd=tmp_path)
    assert (code, tf) == (1, False)
    assert err.strip() == (
        "edgeprune: error: m.tflite is a converted model, which run cannot prune or quantize "
        "again; for firmware use `edgeprune firmware m.tflite --target NAME`, for the budgets "
        "`edgeprune check m.tflite --target NAME`"
    )
    assert os.listdir(tmp_path) == ["m.tflite"]
    code, tf, _, _, err = _no_tf(
        "run", "--model", "m.tflite", "--target", "nano33ble", "--name", "kws", cwd=tmp_path
    )
    assert (code, tf) == (0, False), err
    assert (tmp_path / "firmware" / "ops_kws.h").exists()


def test_run_with_a_bad_firmware_name_is_refused_before_training(tmp_path):
    r = CliRunner().invoke(
        main, ["run", "--target", "nano33ble", "--name", "9lives", "--out", str(tmp_path / "b")]
    )
    assert r.exit_code == 1, r.output
    assert r.stderr.startswith("edgeprune: error: firmware name '9lives' is not a C name")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    ("model_path", "source", "expected"),
    [
        ("runs/x/final_int8.tflite", "builtin:ds_cnn", "ds_cnn"),
        ("runs/x/final_int8.tflite", "/home/me/Keyword Spotter.keras", "keyword_spotter"),
        ("runs/x/final_int8.tflite", "/home/me/saved_model_v2/", "saved_model_v2"),
        ("build/nano33ble/final_int8.tflite", None, "nano33ble"),
        ("exp/42/pruned_float32.tflite", None, "model_42"),
        ("models/person-detect.tflite", None, "person_detect"),
    ],
)
def test_the_default_firmware_name_is_the_models_never_a_stages(model_path, source, expected):
    from edgeprune.stages.firmware import default_name as firmware_name

    assert firmware_name(model_path, source) == expected


def test_a_sweeps_baseline_gives_way_to_the_model_it_was_trained_from(tmp_path):
    """A sweep's trials run on <sweep>/baseline/baseline.keras; its baseline.json
    names the model (a built-in's name or a file)."""
    from edgeprune.stages.firmware import default_name as firmware_name

    baseline = tmp_path / "sw" / "baseline"
    baseline.mkdir(parents=True)
    keras = str(baseline / "baseline.keras")
    assert firmware_name("t/0000/final_int8.tflite", keras) == "baseline"  # no baseline.json
    (baseline / "baseline.json").write_text(json.dumps({"key": {"model": "digits_cnn"}}))
    assert firmware_name("t/0000/final_int8.tflite", keras) == "digits_cnn"
    (baseline / "baseline.json").write_text(json.dumps({"key": {"model": "/m/kws-v2.keras"}}))
    assert firmware_name("t/0000/final_int8.tflite", keras) == "kws_v2"
