"""Tests for the inference example, the labels header and `edgeprune firmware` on any .tflite.

The example is compiled with the host compiler under -Wall -Wextra -Wpedantic
-Wshadow -Wconversion -Werror (C++11) against stub TFLite Micro headers: the op
resolver of tests/test_firmware.py and the interpreter of tests/tflm_bridge.py,
whose AllocateTensors() and Invoke() hand the model array the firmware embeds,
the arena size and the input tensor's bytes to a tflite-micro worker process
(the pip ``tflite_micro`` interpreter) and copy its output tensor's bytes back.
So the label the example prints comes from its own quantize, dequantize, argmax
and labels code on outputs computed by TFLite Micro's kernels; the tests compare
it with the host runner (LiteRT) on the first 50 digits test images.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402
from test_firmware import _stub_tflm  # noqa: E402 - tests/ is on sys.path under pytest
from tflm_bridge import BRIDGE_CC, INTERPRETER_H, TflmWorker  # noqa: E402

from edgeprune.cli import main  # noqa: E402
from edgeprune.errors import BadInputError  # noqa: E402
from edgeprune.firmware.emit import EXAMPLE_CC, ExampleInput, ModelFacts, names, render  # noqa: E402
from edgeprune.firmware.labels import c_string, read_labels  # noqa: E402
from edgeprune.runners.host import HostRunner  # noqa: E402
from edgeprune.tflite import inspect_model  # noqa: E402

CXX = shutil.which("g++") or shutil.which("c++")
needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++ or c++) on PATH")
# What the issue asks the example to compile under; C++11, the oldest standard of
# the SDKs' toolchains (Arduino cores), so that nothing newer slips in.
STRICT = ["-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion", "-Werror"]
DIGITS = tuple(str(d) for d in range(10))
FIRST = 50  # test images the example is run on
ARENA = 16384  # bytes: the tiny models' arenas in TFLite Micro on this 64-bit host, and more


@pytest.fixture(scope="module")
def tflm(tmp_path_factory):
    """One TFLite Micro worker for the module's host-built programs."""
    worker = TflmWorker(tmp_path_factory.mktemp("tflm"))
    yield worker
    worker.close()


def _stub(tmp: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)
    _stub_tflm(tmp / "stub", files)
    (tmp / "stub" / "tensorflow" / "lite" / "micro" / "micro_interpreter.h").write_text(
        INTERPRETER_H
    )


def _compile(tmp: Path, source: str, flags: list[str], out: str | None = None) -> Path:
    obj = tmp / (out or Path(source).with_suffix(".o").name)
    cmd = [CXX, *flags, "-I", str(tmp), "-I", str(tmp / "stub"), "-c", str(tmp / source)]
    build = subprocess.run([*cmd, "-o", str(obj)], capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    return obj


def _build(tmp: Path, name: str, sources: list[str], flags: list[str] = ()) -> Path:
    """The program of ``sources`` (compiled under STRICT), the model's array and the
    bridge to the TFLite Micro worker, linked as ``tmp/program``."""
    (tmp / "bridge.cc").write_text(BRIDGE_CC)
    objects = [_compile(tmp, s, [*STRICT, *flags]) for s in [*sources, f"model_{name}.cc"]]
    objects.append(_compile(tmp, "bridge.cc", [*STRICT, *TflmWorker.defines(name)]))
    exe = tmp / "program"
    link = subprocess.run(
        [CXX, *map(str, objects), "-lm", "-o", str(exe)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert link.returncode == 0, link.stderr
    return exe


def _digits_facts(digits, i: int) -> ModelFacts:
    x = digits.x_test[i]
    note = f'test sample {i} of digits, true label "{digits.y_test[i]}"'
    return ModelFacts(
        labels=DIGITS,
        labels_note="Labels of the built-in data set digits.",
        task="classification",
        sample=ExampleInput(tuple(float(v) for v in x.reshape(-1)), note),
    )


def _label_line(scores: np.ndarray) -> str:
    """What the example prints for these dequantized scores."""
    return f"label {DIGITS[scores.argmax()]} score {float(scores.max()):.4f}"


def _model_line(model: bytes) -> str:
    return f"tflm model {hashlib.sha256(model).hexdigest()} {len(model)} bytes"


# ---------------------------------------------------------------- the example on the host


def _unity(tmp: Path, n, count: int) -> str:
    """One translation unit holding ``example_<i>.cc`` for i < ``count``, each in a
    namespace of its own, and a main() that runs them in order: one build for all the
    samples. The files' own #includes are guarded, so they are included once, first."""
    example = (tmp / "example_0.cc").read_text()
    headers = re.findall(r"^#include [<\"].*[>\"]$", example, re.M)
    lines = [*headers, ""]
    for i in range(count):
        lines += [f"namespace sample_{i} {{", f'#include "example_{i}.cc"', "}"]
    lines.append("int main() {")
    for i in range(count):
        lines.append(f'  printf("sample {i}\\n");')
        lines.append(f"  if (sample_{i}::RunInferenceExample() != 0) return 1;")
    lines += ["  return 0;", "}", ""]
    return "\n".join(lines)


@needs_cxx
def test_the_example_prints_the_host_runners_labels_for_the_first_50_digits(
    int8_model, digits, tflm, tmp_path
):
    """The first 50 test images, each compiled in as the example's input, all in one
    program: the emitted array runs in TFLite Micro, and the label and score each
    example prints are the host runner's (LiteRT) argmax and dequantized score."""
    x = digits.x_test[:FIRST]
    run = HostRunner(int8_model).run(x)
    n = names("digits")
    for i in range(FIRST):
        files = render(int8_model, "digits.tflite", ARENA, facts=_digits_facts(digits, i))
        (tmp_path / f"example_{i}.cc").write_text(files[EXAMPLE_CC])
    _stub(tmp_path, {f: t for f, t in files.items() if f != EXAMPLE_CC})
    (tmp_path / "unity.cc").write_text(_unity(tmp_path, n, FIRST))
    exe = _build(tmp_path, "digits", ["unity.cc"], ["-DINFERENCE_EXAMPLE_NO_MAIN"])
    result = tflm.run(exe)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr + tflm.log()[-2000:]
    assert result.stderr.splitlines() == [_model_line(int8_model)]  # sent once, as emitted
    chunks = re.split(r"^sample \d+$", result.stdout, flags=re.M)[1:]
    printed = [chunk.strip().splitlines()[-1] for chunk in chunks]
    assert len(printed) == FIRST
    ops = len(inspect_model(int8_model).op_counts)
    assert result.stdout.count("\n") == FIRST * (ops + 2)  # marker, registrations, label
    differ = [i for i in range(FIRST) if printed[i] != _label_line(run.outputs[i])]
    if differ:
        # TFLite Micro's reference kernels and LiteRT's may round apart: where they
        # do, the example must print what TFLite Micro's own Python interpreter gives.
        from edgeprune.runners.tflm import TflmRunner

        micro = TflmRunner(int8_model, ARENA).run(x[differ]).outputs
        wrong = [
            f"sample {i} (true label {digits.y_test[i]}): the example printed "
            f"{printed[i]!r}; LiteRT scores {np.array2string(run.outputs[i], precision=4)}; "
            f"TFLM (Python) scores {np.array2string(micro[k], precision=4)}"
            for k, i in enumerate(differ)
            if printed[i] != _label_line(micro[k])
        ]
        assert not wrong, "\n".join(wrong)
        warnings.warn(
            f"samples {differ}: TFLite Micro and LiteRT round apart; the example printed "
            f"TFLite Micro's own Python output",
            stacklevel=1,
        )
    agree = sum(line.split()[1] == str(digits.y_test[i]) for i, line in enumerate(printed))
    assert agree >= FIRST // 2  # the model is trained: most labels are the true ones


@needs_cxx
def test_an_arena_too_small_for_tflite_micro_fails_allocation(int8_model, digits, tflm, tmp_path):
    """Guards the test above: the arena the example declares is the one TFLite Micro
    gets, so a too-small one fails in AllocateTensors() as on the device."""
    files = render(int8_model, "digits.tflite", 512, facts=_digits_facts(digits, 0))
    _stub(tmp_path, files)
    result = tflm.run(_build(tmp_path, "digits", [EXAMPLE_CC]))
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "AllocateTensors failed: kDigitsArenaBytes too small?"
    assert '"stage": "allocate"' in result.stderr


@needs_cxx
@pytest.mark.parametrize("kind", ["int8", "int8_float_io", "float32"])
def test_the_example_compiles_warning_free_and_runs_for_every_interface(
    int8_model, int8_float_io_model, float_model, digits, tflm, tmp_path, kind
):
    """int8 and float32 inputs and outputs: strict flags, C++11, and in TFLite Micro
    it prints the host runner's label for its sample."""
    model = {"int8": int8_model, "int8_float_io": int8_float_io_model, "float32": float_model}
    files = render(model[kind], "m.tflite", ARENA, facts=_digits_facts(digits, 3))
    info = inspect_model(model[kind])
    text = files[EXAMPLE_CC]
    if info.inputs[0].dtype == "float32":
        assert "float ToInput(float x) { return x; }" in text
    else:
        assert "rintf(x / kMInput0Scale + static_cast<float>(kMInput0ZeroPoint))" in text
    _stub(tmp_path, files)
    result = tflm.run(_build(tmp_path, "m", [EXAMPLE_CC]))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.splitlines() == [_model_line(model[kind])]
    host = HostRunner(model[kind]).run(digits.x_test[3:4]).outputs[0]
    label, score = result.stdout.splitlines()[-1].split()[1::2]
    assert label == DIGITS[host.argmax()]
    assert abs(float(score) - float(host.max())) <= 1e-4  # float kernels may round apart
    # without main(), for a board's own entry point
    obj = _compile(tmp_path, EXAMPLE_CC, [*STRICT, "-DINFERENCE_EXAMPLE_NO_MAIN"], "lib.o")
    symbols = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True).stdout
    assert " T RunInferenceExample()" in symbols and " T main" not in symbols


@needs_cxx
def test_a_regression_example_prints_the_dequantized_values(int8_model, tflm, tmp_path):
    """Zeros in (no sample is known), every output value printed as the host runner
    dequantizes it."""
    files = render(int8_model, "ae.tflite", ARENA, facts=ModelFacts(task="regression"))
    assert "zeros: no test sample is known for this model" in files[EXAMPLE_CC]
    assert "labels_ae.h" not in files
    _stub(tmp_path, files)
    result = tflm.run(_build(tmp_path, "ae", [EXAMPLE_CC]))
    assert result.returncode == 0, result.stdout + result.stderr
    expected = HostRunner(int8_model).run(np.zeros((1, 8, 8, 1), np.float32)).outputs[0]
    lines = result.stdout.splitlines()[-10:]
    assert [line.split()[0] for line in lines] == [f"output[{i}]" for i in range(10)]
    assert [line.split()[1] for line in lines] == [f"{v:.6f}" for v in expected.astype(float)]


def test_the_workers_tensor_requests_name_what_is_wrong(int8_model, tmp_path):
    worker = TflmWorker(tmp_path)
    try:
        assert worker.ask({"cmd": "invoke", "inputs": []})["error"] == "invoke before a load"
        loaded = worker.ask({"cmd": "load", "arena_bytes": ARENA, "model": int8_model.hex()})
        info = inspect_model(int8_model)
        assert loaded == {
            "ok": True,
            "inputs": [64],  # 8x8x1 int8
            "outputs": [10],
            "types": [9, 9],  # kTfLiteInt8
            "scales": [t.scales[0] for t in (info.inputs[0], info.outputs[0])],
            "zero_points": [t.zero_points[0] for t in (info.inputs[0], info.outputs[0])],
            "sha256": hashlib.sha256(int8_model).hexdigest(),
        }
        short = worker.ask({"cmd": "invoke", "inputs": ["00" * 63]})
        assert short["error"] == "input 0 has 63 bytes, the model's 64"
        assert worker.ask({"cmd": "invoke", "inputs": []})["error"] == (
            "0 inputs sent, the model has 1"
        )
        answer = worker.ask({"cmd": "invoke", "inputs": ["00" * 64]})
        assert answer["ok"] and len(bytes.fromhex(answer["outputs"][0])) == 10
        damaged = worker.ask({"cmd": "load", "arena_bytes": ARENA, "model": "00" * 64})
        assert damaged["stage"] == "verify"
    finally:
        worker.close()


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
    # The orders of MLPerf Tiny's reference training code (cited in labels.py).
    kws = "Down Go Left No Off On Right Stop Up Yes Silence Unknown".lower().split()
    assert label_names("kws_synthetic") == tuple(kws)
    assert label_names("vww_synthetic").index("person") == 1  # kPersonIndex = 1
    assert label_names("ic_synthetic")[:3] == ("airplane", "automobile", "bird")
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
    # the validation sketch is the Arduino library's example (nano33ble builds with Arduino)
    library = fw / "projects" / "arduino"
    sketch = (library / "examples" / "kws2_validate" / "kws2_validate.ino").read_text()
    assert "#include <kws2.h>" in sketch and "kws2_app::Setup()" in sketch
    assert (library / "src" / "ops_kws2.h").exists()
    assert not (fw / "edgeprune_validate").exists()


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
