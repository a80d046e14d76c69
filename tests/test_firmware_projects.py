"""Tests for edgeprune.firmware.projects and the profiles' [sdk] table.

Every template of every shipped target is rendered from the digits CNN's
firmware files in the agreed layout (model_<name>.h/.cc, ops_<name>.h,
config_<name>.h, labels_<name>.h, the validation harness), then:

- its C/C++ sources are compiled with the host g++ against the stub SDK and
  TFLite Micro headers in tests/stubs/ (see its README), in both builds (the
  inference example and the validation harness), and linked;
- the inference example runs on the host with the model array it embeds in
  the tflite-micro interpreter (the bridge of tests/tflm_bridge.py, whose
  headers come first on the include path), and must print the label, index and
  score the host runner (LiteRT) gives for the sample, as the app formats them;
  the two-models test keeps tests/stubs' marking interpreter (the bridge runs
  one model a program);
- its build files are parsed and checked for the fields its SDK requires and
  the pinned TFLite Micro port.

What this does not prove: that the SDK's own build (arduino-cli, pio, idf.py,
west) succeeds; no SDK is installed here. The pico-sdk's own build was run
once by hand and recorded in benchmarks/project_check/pico_sdk_build.json;
a test checks that record against the pinned port.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from firmware_layout import LABELS, NAME, firmware  # noqa: E402 - tests/ is on sys.path
from tflm_bridge import (  # noqa: E402
    BRIDGE_CC,
    PROJECT_INTERPRETER_H,
    PROJECT_SCHEMA_H,
    TflmWorker,
)

from edgeprune.errors import BadInputError  # noqa: E402
from edgeprune.firmware import projects  # noqa: E402
from edgeprune.target import (  # noqa: E402
    SDKS,
    SdkBoard,
    TargetError,
    list_targets,
    load_target,
    parse_target,
)
from edgeprune.tflite import inspect_model  # noqa: E402

CXX = shutil.which("g++")
needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++) on PATH")
CXXFLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wpedantic", "-Wconversion"]
STUBS = Path(__file__).parent / "stubs"
ARENA = 6144
PICO_SDK_BUILD = Path(__file__).parents[1] / "benchmarks" / "project_check" / "pico_sdk_build.json"

# The shipped target that stands for each SDK in the compile tests; every
# target's projects are rendered and checked in test_every_target_gets_its_projects.
SDK_TARGETS = {
    "arduino": "nano33ble",
    "platformio": "esp32",
    "esp-idf": "esp32s3",
    "pico-sdk": "pico",
    "zephyr": "stm32f746g_disco",
}


def test_every_sdk_is_compiled_by_a_test():
    from edgeprune.firmware.projects_layout import LAYOUTS

    assert set(SDK_TARGETS) == set(SDKS) == set(LAYOUTS) == set(projects.PORTS)
    for sdk, target in SDK_TARGETS.items():
        assert sdk in [b.sdk for b in load_target(target).sdk]


# --- the firmware files in the agreed layout ----------------------------------------------------


@pytest.fixture(scope="module")
def firmware_files(int8_model) -> dict[str, str]:
    return firmware(int8_model, ARENA)


@pytest.fixture(scope="module")
def sample(digits) -> np.ndarray:
    return np.asarray(digits.x_test[0], dtype=np.float32).reshape(-1)


@pytest.fixture(scope="module")
def tflm(tmp_path_factory):
    """One TFLite Micro worker for the templates' programs (tests/tflm_bridge.py)."""
    worker = TflmWorker(tmp_path_factory.mktemp("tflm"))
    yield worker
    worker.close()


def _host_expected(int8_model: bytes, sample: np.ndarray) -> tuple[int, str]:
    """The index and score (three decimals, as the app rounds them) that the host
    runner (LiteRT) gives for ``sample``: what a template's example must print
    when its model runs in TFLite Micro."""
    from edgeprune.runners.host import HostRunner

    out = inspect_model(int8_model).outputs[0]
    raw = HostRunner(int8_model).run(sample.reshape(1, 8, 8, 1)).raw.reshape(-1)
    scores = (raw.astype(np.int64) - out.zero_points[0]).astype(np.float32) * np.float32(
        out.scales[0]
    )
    index = int(scores.argmax())  # the first of equal scores, as the app's strict >
    milli = int(np.float32(scores[index]) * np.float32(1000.0) + np.float32(0.5))
    return index, f"{milli // 1000}.{milli % 1000:03d}"


def _quantized_sum(sample: np.ndarray, scale: float, zero_point: int) -> int:
    # lroundf (half away from zero) in float32, as the example does.
    x = (sample.astype(np.float32) / np.float32(scale)).astype(np.float32)
    q = np.sign(x) * np.floor(np.abs(x) + np.float32(0.5)) + zero_point
    return int(np.clip(q, -128, 127).astype(np.int8).view(np.uint8).astype(np.int64).sum())


def _expected(int8_model: bytes, sample: np.ndarray) -> tuple[int, str]:
    info = inspect_model(int8_model)
    inp, out = info.inputs[0], info.outputs[0]
    n_out = int(np.prod(out.shape))
    index = _quantized_sum(sample, inp.scales[0], inp.zero_points[0]) % n_out
    score = np.float32(127 - out.zero_points[0]) * np.float32(out.scales[0])
    milli = int(np.float32(score) * np.float32(1000.0) + np.float32(0.5))
    return index, f"{milli // 1000}.{milli % 1000:03d}"


def _stub_defines(int8_model: bytes) -> list[str]:
    info = inspect_model(int8_model)
    inp, out = info.inputs[0], info.outputs[0]
    assert inp.dtype == out.dtype == "int8"
    return [
        f"-DSTUB_IN_BYTES={int(np.prod(inp.shape))}",
        f"-DSTUB_OUT_BYTES={int(np.prod(out.shape))}",
        f"-DSTUB_IN_SCALE={inp.scales[0]!r}f",
        f"-DSTUB_IN_ZERO={inp.zero_points[0]}",
        f"-DSTUB_OUT_SCALE={out.scales[0]!r}f",
        f"-DSTUB_OUT_ZERO={out.zero_points[0]}",
    ]


def _stub_resolver(root: Path, ops_text: str) -> None:
    """A MicroMutableOpResolver<N> with the methods ops_<name>.h calls, refusing more than N."""
    micro = root / "tensorflow" / "lite" / "micro"
    (micro / "kernels").mkdir(parents=True, exist_ok=True)
    methods = sorted(set(re.findall(r"resolver\.(Add\w+)\(", ops_text)))
    body = "\n".join(
        f"  TfLiteStatus {m}(const TFLMRegistration& = {{}}) {{ return ++count_ <= N ? "
        f"kTfLiteOk : kTfLiteError; }}"
        for m in methods
    )
    (micro / "micro_mutable_op_resolver.h").write_text(
        '#pragma once\n#include "stub_tflm_common.h"\nnamespace tflite {\n'
        f"template <unsigned N> class MicroMutableOpResolver {{\n public:\n{body}\n"
        " private:\n  unsigned count_ = 0;\n};\n}  // namespace tflite\n"
    )
    regs = sorted(set(re.findall(r"tflite::(Register_\w+)\(\)", ops_text)))
    decls = "".join(f'inline TFLMRegistration {r}() {{ return {{"{r}"}}; }}\n' for r in regs)
    (micro / "kernels" / "stub_registrations.h").write_text(
        f'#pragma once\n#include "stub_tflm_common.h"\nnamespace tflite {{\n{decls}}}\n'
    )
    for header in set(re.findall(r'#include "tensorflow/lite/micro/kernels/(\w+)\.h"', ops_text)):
        (micro / "kernels" / f"{header}.h").write_text(
            '#pragma once\n#include "tensorflow/lite/micro/kernels/stub_registrations.h"\n'
        )


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def _build(tmp: Path, sources: list[Path], includes: list[Path], *flags: str) -> Path:
    if includes and includes[0] == tmp / "bridge":  # on the TFLite Micro bridge: link it in
        sources = [*sources, tmp / "bridge" / "bridge.cc"]
        flags = (*TflmWorker.defines(NAME), *flags)
    exe = tmp / f"prog{len(list(tmp.glob('prog*')))}"
    cmd = [CXX, *CXXFLAGS, *flags]
    for inc in includes:
        cmd += ["-I", str(inc)]
    cmd += [str(s) for s in sources] + ["-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert build.returncode == 0, " ".join(cmd) + "\n" + build.stderr
    return exe


def _run(exe: Path) -> str:
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


# --- rendering every target ---------------------------------------------------------------------


@pytest.mark.parametrize("target_id", list_targets())
def test_every_target_gets_its_projects(firmware_files, target_id):
    target = load_target(target_id)
    out = projects.render_projects(target, NAME, firmware_files)
    sdks = {path.split("/")[1] for path in out}
    assert sdks == {b.sdk for b in target.sdk}
    if target.kind == "linux":
        assert out == {}
    for board in target.sdk:
        readme = out[f"projects/{board.sdk}/README.md"]
        port = projects.PORTS[board.sdk]
        assert port.version in readme and board.board.split(":")[-1] in readme
        # every model file travels into the project unchanged
        copied = [p for p in out if p.startswith(f"projects/{board.sdk}/")]
        copied_files = [f for f in firmware_files if f in projects.HARNESS_FILES]
        copied_files += [f"{p}_{NAME}.{e}" for p, e in (("model", "h"), ("model", "cc"))]
        copied_files += [f"{p}_{NAME}.h" for p in ("ops", "config", "labels")]
        for file in copied_files:
            text = firmware_files[file]
            base = file[:-3] + ".cpp" if board.sdk == "arduino" and file.endswith(".cc") else file
            hits = [p for p in copied if p.endswith("/" + base)]
            assert len(hits) == 1, (board.sdk, file, hits)
            assert out[hits[0]] == text
        assert not any("@{" in text for text in out.values())


def test_render_is_deterministic_and_names_no_absolute_path(firmware_files, sample):
    target = load_target("esp32")
    a = projects.render_projects(target, NAME, firmware_files, sample, "digits test image 0")
    b = projects.render_projects(target, NAME, firmware_files, sample, "digits test image 0")
    assert a == b
    assert not any(str(Path.cwd()) in text or "/tmp/" in text for text in a.values())


def test_write_project_writes_the_rendered_files_and_nothing_for_linux(firmware_files, tmp_path):
    written = projects.write_project(tmp_path / "fw", load_target("pico"), NAME, firmware_files)
    rendered = projects.render_projects(load_target("pico"), NAME, firmware_files)
    assert set(written) == set(rendered)
    for rel, path in written.items():
        assert Path(path).read_text() == rendered[rel]
    assert projects.write_project(tmp_path / "l", load_target("rpi4"), NAME, firmware_files) == {}
    assert not (tmp_path / "l" / "projects").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("9lives", "is not a C identifier starting with a letter"),
        ("digits-cnn", "is not a C identifier"),
        ("a__b", "has '__'"),
        ("x" * 60, "over 53 characters"),
    ],
)
def test_bad_names_are_refused(firmware_files, name, message):
    with pytest.raises(BadInputError, match=message):
        projects.render_projects(load_target("pico"), name, firmware_files)


def test_missing_harness_or_arena_is_refused_naming_the_file(firmware_files, int8_model):
    partial = {k: v for k, v in firmware_files.items() if k != "validation_harness.cc"}
    with pytest.raises(BadInputError, match="lack validation_harness.cc"):
        projects.render_projects(load_target("pico"), NAME, partial)
    no_arena = firmware(int8_model, None)
    no_arena.update({f: firmware_files[f] for f in projects.HARNESS_FILES})
    with pytest.raises(BadInputError, match="measured arena constant"):
        projects.render_projects(load_target("pico"), NAME, no_arena)


def test_a_sample_of_the_wrong_size_or_not_finite_is_refused(firmware_files, sample):
    with pytest.raises(BadInputError, match="has 3 values; the model's input takes 64"):
        projects.render_projects(load_target("pico"), NAME, firmware_files, [1.0, 2.0, 3.0])
    bad = sample.copy()
    bad[5] = np.nan
    with pytest.raises(BadInputError, match="NaN or infinity"):
        projects.render_projects(load_target("pico"), NAME, firmware_files, bad)


@needs_cxx
def test_without_labels_the_example_prints_indices(firmware_files, int8_model, tflm, tmp_path):
    files = {k: v for k, v in firmware_files.items() if not k.startswith("labels_")}
    root, out = _project(tmp_path, "pico-sdk", files, None)
    assert '#include "labels_' not in out[f"{NAME}_app.cc"]
    assert "zeros (no sample was given)" in out[f"{NAME}_sample.h"]
    cmake = (root / "CMakeLists.txt").read_text()
    listed = re.search(r"add_executable\(\S+\s+([^)]*)\)", cmake).group(1).split()
    exe = _build(
        tmp_path,
        [root / s for s in listed],
        _includes(tmp_path, "pico-sdk", root),
        "-DEDGEPRUNE_VALIDATION=0",
    )
    text = _run_bridged(tflm, exe)
    zeros = np.zeros(64, np.float32)
    index, score = _host_expected(int8_model, zeros)
    assert f"index {index} score {score}" in text.splitlines() and "label" not in text


# --- compiling and running each template on the host -------------------------------------------


def _project(tmp_path: Path, sdk: str, files, sample) -> tuple[Path, dict[str, str]]:
    target = load_target(SDK_TARGETS[sdk])
    board = next(b for b in target.sdk if b.sdk == sdk)
    out = projects.render_project(target, board, NAME, files, sample, "digits test image 0")
    root = tmp_path / sdk
    _write(root, out)
    _stub_resolver(tmp_path / "resolver", files[f"ops_{NAME}.h"])
    return root, out


def _includes(tmp_path: Path, sdk: str, *dirs: Path) -> list[Path]:
    """The include path of a template's build: the TFLite Micro bridge's headers
    first (they shadow the stub interpreter and schema of tests/stubs/tflm), the
    template's folders, the stub TFLite Micro, op resolver and SDK."""
    bridge = tmp_path / "bridge"
    for header, text in {
        "tensorflow/lite/micro/micro_interpreter.h": PROJECT_INTERPRETER_H,
        "tensorflow/lite/schema/schema_generated.h": PROJECT_SCHEMA_H,
    }.items():
        (bridge / header).parent.mkdir(parents=True, exist_ok=True)
        (bridge / header).write_text(text)
    (bridge / "bridge.cc").write_text(BRIDGE_CC)
    return [bridge, *dirs, STUBS / "tflm", tmp_path / "resolver", STUBS / sdk]


def _run_bridged(tflm, exe: Path) -> str:
    run = tflm.run(exe, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr + tflm.log()[-2000:]
    return run.stdout


def _check_output(text: str, int8_model: bytes, sample: np.ndarray) -> None:
    """The label, index and score the host runner gives, as the app prints them."""
    index, score = _host_expected(int8_model, sample)
    assert f"label {LABELS[index]} (index {index}) score {score}" in text, text
    assert f"output[{index}] = {score}" in text


@needs_cxx
def test_arduino_library_examples_compile_and_the_inference_example_runs(
    firmware_files, sample, int8_model, tflm, tmp_path
):
    root, out = _project(tmp_path, "arduino", firmware_files, sample)
    src = root / "src"
    library = sorted(src.glob("*.cpp"))
    assert {p.name for p in library} == {
        f"model_{NAME}.cpp",
        f"{NAME}_app.cpp",
        "validation_harness.cpp",
    }
    (tmp_path / "driver.cc").write_text("#include <Arduino.h>\nint main() { setup(); loop(); }\n")
    inc = _includes(tmp_path, "arduino", src)
    flags = ["-include", "Arduino.h"]
    for example, runs in (("inference", True), ("validate", False)):
        ino = root / "examples" / f"{NAME}_{example}" / f"{NAME}_{example}.ino"
        exe = _build(
            tmp_path, [*library, tmp_path / "driver.cc"], inc, *flags, "-x", "c++", str(ino)
        )
        if runs:
            _check_output(_run_bridged(tflm, exe), int8_model, sample)


@needs_cxx
def test_platformio_main_compiles_both_envs_and_runs_the_example(
    firmware_files, sample, int8_model, tflm, tmp_path
):
    root, _ = _project(tmp_path, "platformio", firmware_files, sample)
    src = root / "src"
    sources = sorted(src.glob("*.cc"))
    (tmp_path / "driver.cc").write_text("#include <Arduino.h>\nint main() { setup(); loop(); }\n")
    inc = _includes(tmp_path, "arduino", src)
    exe = _build(tmp_path, [*sources, tmp_path / "driver.cc"], inc)
    _check_output(_run_bridged(tflm, exe), int8_model, sample)
    _build(tmp_path, [*sources, tmp_path / "driver.cc"], inc, "-DEDGEPRUNE_VALIDATION=1")


@needs_cxx
def test_esp_idf_app_compiles_with_and_without_the_harness_and_runs(
    firmware_files, sample, int8_model, tflm, tmp_path
):
    root, _ = _project(tmp_path, "esp-idf", firmware_files, sample)
    component = root / "components" / NAME
    (tmp_path / "driver.cc").write_text(
        'extern "C" void app_main(void);\nint main() { app_main(); }\n'
    )
    sources = [component / f"model_{NAME}.cc", component / f"{NAME}_app.cc", root / "main/main.cc"]
    inc = _includes(tmp_path, "esp-idf", component)
    exe = _build(tmp_path, [*sources, tmp_path / "driver.cc"], inc)
    text = _run_bridged(tflm, exe)
    _check_output(text, int8_model, sample)
    assert f"I ({NAME}) took 0 us" in text
    option = f"-DCONFIG_EDGEPRUNE_{NAME.upper()}_VALIDATION=1"
    harness = component / "validation_harness.cc"
    _build(tmp_path, [*sources, harness, tmp_path / "driver.cc"], inc, option)


@needs_cxx
def test_pico_sdk_app_compiles_with_and_without_the_harness_and_runs(
    firmware_files, sample, int8_model, tflm, tmp_path
):
    root, _ = _project(tmp_path, "pico-sdk", firmware_files, sample)
    cmake = (root / "CMakeLists.txt").read_text()
    listed = re.search(r"add_executable\(\S+\s+([^)]*)\)", cmake).group(1).split()
    sources = [root / s for s in listed]
    inc = _includes(tmp_path, "pico-sdk", root)
    exe = _build(tmp_path, sources, inc, "-DEDGEPRUNE_VALIDATION=0")
    _check_output(_run_bridged(tflm, exe), int8_model, sample)
    _build(tmp_path, sources, inc, "-DEDGEPRUNE_VALIDATION=1")


@needs_cxx
def test_zephyr_app_and_module_compile_with_and_without_the_harness_and_run(
    firmware_files, sample, int8_model, tflm, tmp_path
):
    root, _ = _project(tmp_path, "zephyr", firmware_files, sample)
    module = (root / "module/CMakeLists.txt").read_text()
    listed = re.search(r"zephyr_library_sources\(([^)]*)\)", module).group(1).split()
    harness = re.search(r"zephyr_library_sources_ifdef\(\w+ ([^)]*)\)", module).group(1).split()
    sources = [root / "module" / s for s in listed] + [root / "app/src/main.cc"]
    inc = _includes(tmp_path, "zephyr", root / "module/src")
    _check_output(_run_bridged(tflm, _build(tmp_path, sources, inc)), int8_model, sample)
    option = f"-DCONFIG_EDGEPRUNE_{NAME.upper()}_VALIDATION=1"
    _build(tmp_path, [*sources, *(root / "module" / h for h in harness)], inc, option)


# --- build files: the fields each SDK requires, and the pinned ports ----------------------------


def _rendered(sdk: str, files, target_id: str | None = None) -> dict[str, str]:
    target = load_target(target_id or SDK_TARGETS[sdk])
    board = next(b for b in target.sdk if b.sdk == sdk)
    return projects.render_project(target, board, NAME, files)


def _cmake_calls(text: str) -> list[tuple[str, list[str]]]:
    """Every ``command(args...)`` of a CMake file, comments removed, args split as CMake does."""
    import shlex

    code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    calls = []
    for match in re.finditer(r"(?m)^\s*(\w+)\s*\(", code):
        depth, i = 1, match.end()
        while depth:
            depth += {"(": 1, ")": -1}.get(code[i], 0)
            i += 1
        calls.append((match.group(1).lower(), shlex.split(code[match.end() : i - 1])))
    return calls


def _args(calls, name: str) -> list[list[str]]:
    return [args for command, args in calls if command == name]


def test_arduino_library_properties_has_every_field_the_library_spec_requires(firmware_files):
    out = _rendered("arduino", firmware_files)
    props = dict(line.split("=", 1) for line in out["library.properties"].splitlines() if line)
    required = ["name", "version", "author", "maintainer", "sentence", "paragraph", "category"]
    assert set(required + ["url", "architectures"]) <= set(props)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9 _.-]*", props["name"]) and props["name"] == NAME
    assert re.fullmatch(r"\d+\.\d+\.\d+", props["version"])
    assert props["category"] in {
        "Display",
        "Communication",
        "Signal Input/Output",
        "Sensors",
        "Device Control",
        "Timing",
        "Data Storage",
        "Data Processing",
        "Other",
    }
    assert props["architectures"] == "mbed_nano"  # arduino:mbed_nano:nano33ble
    port = projects.PORTS["arduino"]
    assert (
        props["depends"]
        == f"{port.name} ({'='}{port.version})"
        == "Chirale_TensorFLowLite (=2.0.0)"
    )
    assert props["includes"] == f"{NAME}.h" and f"src/{NAME}.h" in out
    assert f"#include <{port.header}>" in out[f"src/{NAME}.h"]
    sketches = [p for p in out if p.endswith(".ino")]
    assert sorted(sketches) == [
        f"examples/{NAME}_inference/{NAME}_inference.ino",
        f"examples/{NAME}_validate/{NAME}_validate.ino",
    ]
    # The Arduino builder compiles .c/.cpp/.S only: no .cc may be left in the library.
    assert not [p for p in out if p.endswith(".cc")]


@pytest.mark.parametrize(
    ("target_id", "platform"),
    [("esp32", "espressif32 @ 6.10.0"), ("nano33ble", "nordicnrf52 @ 10.11.0")],
)
def test_platformio_ini_has_the_board_the_library_and_a_validation_env(
    firmware_files, target_id, platform
):
    out = _rendered("platformio", firmware_files, target_id)
    ini = configparser.ConfigParser(interpolation=None)
    ini.read_string(out["platformio.ini"])
    board = next(b for b in load_target(target_id).sdk if b.sdk == "platformio").board
    env = board.split(":")[1]
    assert set(ini.sections()) == {"platformio", "env", f"env:{env}", f"env:{env}_validate"}
    assert ini["platformio"]["default_envs"] == env
    assert ini[f"env:{env}"]["platform"] == platform
    assert ini[f"env:{env}"]["board"] == env
    assert ini["env"]["framework"] == "arduino"
    port = projects.PORTS["platformio"]
    assert ini["env"]["lib_deps"] == port.url and re.search(r"\.git#[0-9a-f]{40}$", port.url)
    validate = ini[f"env:{env}_validate"]
    assert validate["extends"] == f"env:{env}"
    assert validate["build_flags"].split() == ["${env.build_flags}", "-DEDGEPRUNE_VALIDATION=1"]
    assert "src/main.cc" in out and "#if EDGEPRUNE_VALIDATION" in out["src/main.cc"]
    assert f"Platform: `{platform}`; version {platform.split(' @ ')[1]}." in out["README.md"]


def test_every_platformio_board_of_the_shipped_targets_has_a_pinned_platform():
    """A profile added with a PlatformIO platform edgeprune has not pinned fails here."""
    from edgeprune.firmware.projects_layout import PLATFORMIO_PLATFORM_VERSIONS
    from edgeprune.target import list_targets

    platforms = {
        board.board.split(":")[0]
        for target_id in list_targets()
        for board in load_target(target_id).sdk
        if board.sdk == "platformio"
    }
    assert platforms and platforms <= set(PLATFORMIO_PLATFORM_VERSIONS)


def test_esp_idf_component_depends_on_pinned_esp_tflite_micro_and_lists_its_sources(
    firmware_files,
):
    yaml = pytest.importorskip("yaml")
    out = _rendered("esp-idf", firmware_files)
    component = f"components/{NAME}"
    manifest = yaml.safe_load(out[f"{component}/idf_component.yml"])
    assert manifest["dependencies"]["espressif/esp-tflite-micro"] == {"version": "==1.3.4"}
    assert manifest["dependencies"]["idf"]["version"] == ">=5.0"
    top = _cmake_calls(out["CMakeLists.txt"])
    names = [c for c, _ in top]
    assert names.index("include") < names.index("project")
    assert _args(top, "include") == [["$ENV{IDF_PATH}/tools/cmake/project.cmake"]]
    assert _args(top, "project") == [[NAME]]
    calls = _cmake_calls(out[f"{component}/CMakeLists.txt"])
    srcs = [*_args(calls, "set")[0][1:], *_args(calls, "list")[0][2:]]
    assert all(f"{component}/{s}" in out for s in srcs) and len(srcs) == 3
    (register,) = _args(calls, "idf_component_register")
    assert register[register.index("REQUIRES") + 1] == "esp-tflite-micro"
    (main,) = _args(_cmake_calls(out["main/CMakeLists.txt"]), "idf_component_register")
    assert NAME in main[main.index("REQUIRES") + 1 :] and "main/main.cc" in out
    option = f"EDGEPRUNE_{NAME.upper()}_VALIDATION"
    assert f"config {option}\n" in out[f"{component}/Kconfig"]
    assert f"CONFIG_{option}" in out[f"{component}/CMakeLists.txt"]
    assert f"CONFIG_{option}" in out["main/main.cc"]
    assert 'CONFIG_IDF_TARGET="esp32s3"' in out["sdkconfig.defaults"]


def test_pico_sdk_cmake_imports_the_sdk_first_and_fetches_pico_tflmicro_at_its_commit(
    firmware_files,
):
    out = _rendered("pico-sdk", firmware_files)
    calls = _cmake_calls(out["CMakeLists.txt"])
    names = [c for c, _ in calls]
    assert ["include", "pico_sdk_import.cmake"] == ["include", *_args(calls, "include")[0]]
    assert names.index("include") < names.index("project") < names.index("pico_sdk_init")
    assert ["PICO_BOARD", "pico", "CACHE", "STRING", "Board type"] in _args(calls, "set")
    (fetch,) = _args(calls, "fetchcontent_declare")
    assert fetch[fetch.index("GIT_TAG") + 1] == projects.PORTS["pico-sdk"].version
    assert re.fullmatch(r"[0-9a-f]{40}", projects.PORTS["pico-sdk"].version)
    assert fetch[fetch.index("GIT_REPOSITORY") + 1].endswith("raspberrypi/pico-tflmicro.git")
    (executable,) = _args(calls, "add_executable")
    assert all(s in out for s in executable[1:])
    (link,) = _args(calls, "target_link_libraries")
    assert {"pico_stdlib", "pico-tflmicro"} <= set(link)
    assert _args(calls, "option")[0][0] == "EDGEPRUNE_VALIDATION"
    assert "pico_add_extra_outputs" in names and "pico_enable_stdio_usb" in names
    assert "external/pico_sdk_import.cmake" in out["pico_sdk_import.cmake"]
    # CMake 3.30+ warns about FetchContent_Populate(name) unless CMP0169 is OLD (seen
    # with cmake 3.31; benchmarks/project_check/pico_sdk_build.json).
    assert ["SET", "CMP0169", "OLD"] in _args(calls, "cmake_policy")
    assert names.index("cmake_policy") < names.index("fetchcontent_populate")


def test_the_recorded_pico_sdk_build_used_the_pinned_port_and_both_options_built(firmware_files):
    record = json.loads(PICO_SDK_BUILD.read_text())
    assert record["revisions"]["pico-tflmicro"]["commit"] == projects.PORTS["pico-sdk"].version
    boards = {s.board for t in ("pico", "pico2") for s in load_target(t).sdk if s.sdk == "pico-sdk"}
    assert "pico" in {b["PICO_BOARD"] for b in record["builds"]} <= boards
    for build in record["builds"]:
        model = build["model"]
        for option in ("default", "validation"):
            result = build[option]
            assert result["success"] and result["warnings"]["in_template_sources"] == 0
            sections = result["elf_size"]["sections_A"]
            assert sections[".rodata"] > model["bytes"] and sections[".bss"] > model["arena_bytes"]
    readme = _rendered("pico-sdk", firmware_files)["README.md"]
    assert PICO_SDK_BUILD.name in readme and "2.1.0" in readme


def test_zephyr_module_yml_points_at_its_cmake_and_kconfig_and_the_app_uses_only_known_symbols(
    firmware_files,
):
    yaml = pytest.importorskip("yaml")
    out = _rendered("zephyr", firmware_files)
    module = yaml.safe_load(out["module/zephyr/module.yml"])
    assert module["name"] == f"edgeprune-{NAME}"
    assert os.path.normpath(f"module/{module['build']['cmake']}/CMakeLists.txt") in out
    assert f"module/{module['build']['kconfig']}" in out
    calls = _cmake_calls(out["module/CMakeLists.txt"])
    sources = _args(calls, "zephyr_library_sources")[0]
    sources += _args(calls, "zephyr_library_sources_ifdef")[0][1:]
    assert all(f"module/{s}" in out for s in sources)
    kconfig = out["module/Kconfig"]
    defined = set(re.findall(r"^config (\w+)$", kconfig, re.M))
    assert defined == {f"EDGEPRUNE_{NAME.upper()}", f"EDGEPRUNE_{NAME.upper()}_VALIDATION"}
    zephyr_symbols = {
        "CPP",
        "STD_CPP17",
        "REQUIRES_FULL_LIBCPP",
        "TENSORFLOW_LITE_MICRO",
        "TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS",
        "MAIN_STACK_SIZE",
        "BOOT_BANNER",
    }
    for conf in ("app/prj.conf", "app/validation.conf"):
        used = set(re.findall(r"^CONFIG_(\w+)=", out[conf], re.M))
        assert used and used <= defined | zephyr_symbols, conf
    assert "CONFIG_TENSORFLOW_LITE_MICRO_CMSIS_NN_KERNELS=y" in out["app/prj.conf"]  # cmsis-nn
    app = _cmake_calls(out["app/CMakeLists.txt"])
    assert ["ZEPHYR_EXTRA_MODULES", "${CMAKE_CURRENT_SOURCE_DIR}/../module"] == _args(app, "list")[
        0
    ][1:]
    assert _args(app, "find_package")[0][:2] == ["Zephyr", "REQUIRED"]
    assert ["app", "PRIVATE", "src/main.cc"] == _args(app, "target_sources")[0]
    assert "module.yml" in out["README.md"] and "**v4.1.0**" in out["README.md"]
    # the tflite-micro revision Zephyr v4.1.0's submanifests/optional.yaml pins
    assert (
        "`submanifests/optional.yaml`: 8d404de73acf7687831e16d88e86e4f73cfddf8e)"
        in (out["README.md"])
    )


# --- the profiles' [sdk] table ------------------------------------------------------------------

PROFILE = {
    "name": "Test board",
    "kind": "mcu",
    "core": "cortex-m33",
    "clock_hz": 150_000_000,
    "flash_bytes": 4_000_000,
    "ram_bytes": 520_000,
    "runtime": "tflm",
    "kernels": "cmsis-nn",
    "model_dtype": "int8",
    "reserve": {"flash_bytes": 100_000, "ram_bytes": 50_000},
    "arena_margin": {"fraction": 0.1, "bytes": 1024, "reason": "scratch buffers"},
}


def test_sdk_table_keeps_the_file_order_and_each_board_id():
    data = {**PROFILE, "sdk": {"pico-sdk": "pico2", "zephyr": "rpi_pico2/rp2350a/m33"}}
    target = parse_target(data, "t.toml", "t")
    assert target.sdk == (
        SdkBoard("pico-sdk", "pico2"),
        SdkBoard("zephyr", "rpi_pico2/rp2350a/m33"),
    )
    assert parse_target(PROFILE, "t.toml", "t").sdk == ()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"sdk": {"stm32cube": "x"}}, "sdk.stm32cube is not an SDK edgeprune writes projects for; "
         "allowed: arduino, esp-idf, pico-sdk, platformio, zephyr"),
        ({"sdk": {"zephy": "x"}}, "did you mean 'zephyr'?"),
        ({"sdk": {"arduino": "nano33ble"}}, "sdk.arduino = 'nano33ble' is not a board id of "
         "arduino (one word such as 'arduino:mbed_nano:nano33ble')"),
        ({"sdk": {"platformio": "esp32dev"}}, "such as 'espressif32:esp32dev'"),
        ({"sdk": {"zephyr": 'a"; rm'}}, "is not a board id of zephyr"),
        ({"sdk": {"esp-idf": "esp32"}}, "sdk.esp-idf builds for xtensa-lx6, xtensa-lx7, not "
         "core = 'cortex-m33'"),
        ({"sdk": "zephyr"}, "sdk must be a table of SDK = board id"),
        ({"sdk": {"zephyr": 3}}, "is not a board id of zephyr"),
    ],
)  # fmt: skip
def test_bad_sdk_tables_are_refused_naming_key_value_and_fix(changes, message):
    with pytest.raises(TargetError, match=re.escape(message)):
        parse_target({**PROFILE, **changes}, "t.toml", "t")


def test_a_linux_target_with_an_sdk_table_is_refused():
    rpi = {k: v for k, v in PROFILE.items() if k != "reserve"}
    rpi.update(
        kind="linux", runtime="litert", core="cortex-a72", kernels="xnnpack", model_dtype="any"
    )
    with pytest.raises(TargetError, match=r"\[sdk\] is for kind = 'mcu' only"):
        parse_target({**rpi, "sdk": {"zephyr": "rpi_4b"}}, "t.toml", "t")


def test_an_unknown_key_lists_the_sdk_table_among_the_allowed():
    with pytest.raises(TargetError, match=r"allowed: .*\[sdk\]"):
        parse_target({**PROFILE, "zzz": 1}, "t.toml", "t")


@pytest.mark.parametrize("target_id", list_targets())
def test_every_mcu_profile_names_its_sdks_and_says_why(target_id):
    target = load_target(target_id)
    text = Path(target.path).read_text()
    if target.kind == "linux":
        assert target.sdk == () and "[sdk]" not in text
        return
    assert target.sdk, f"{target_id} names no SDK"
    comment = text.split("[sdk]\n", 1)[1].split("\n" + target.sdk[0].sdk, 1)[0]
    assert comment.count("# ") >= 3, f"{target_id}: say why these SDKs, in a comment"


@needs_cxx
def test_two_models_example_code_links_into_one_program(int8_model, sample, tmp_path):
    """Every symbol of the example code carries the model's name: two models'
    projects compile into one firmware and each runs its own model."""
    sources, includes = [], [STUBS / "tflm", tmp_path / "resolver", STUBS / "pico-sdk"]
    for name in ("digits_a", "digits_b"):
        files = firmware(int8_model, ARENA, name)
        out = projects.render_project(
            load_target("pico"), SdkBoard("pico-sdk", "pico"), name, files, sample
        )
        _write(tmp_path / name, {k: v for k, v in out.items() if not k.endswith(".txt")})
        _stub_resolver(tmp_path / "resolver", files[f"ops_{name}.h"])
        sources += [tmp_path / name / f"model_{name}.cc", tmp_path / name / f"{name}_app.cc"]
        includes.append(tmp_path / name)
    (tmp_path / "both.cc").write_text(
        '#include <stdio.h>\n#include "digits_a_app.h"\n#include "digits_a_sample.h"\n'
        '#include "digits_b_app.h"\n#include "digits_b_sample.h"\n'
        'static void Print(const char* line) { printf("%s\\n", line); }\n'
        "int main() {\n"
        "  if (digits_a_app::Setup() || digits_b_app::Setup()) return 1;\n"
        "  if (digits_a_app::Run(digits_a_app::kSample, digits_a_app::kSampleCount)) return 2;\n"
        "  if (digits_b_app::Run(digits_b_app::kSample, digits_b_app::kSampleCount)) return 3;\n"
        "  digits_a_app::PrintResult(Print);\n  digits_b_app::PrintResult(Print);\n"
        "  return digits_a_app::Interpreter() != digits_b_app::Interpreter() ? 0 : 4;\n}\n"
    )
    exe = _build(tmp_path, [*sources, tmp_path / "both.cc"], includes, *_stub_defines(int8_model))
    text = _run(exe)
    index, score = _expected(int8_model, sample)
    assert text.count(f"label {LABELS[index]} (index {index}) score {score}") == 2, text


def test_targets_show_lists_the_sdks_and_board_ids():
    from edgeprune.presentation.targets import format_target

    text = format_target(load_target("nano33ble"))
    assert (
        "  SDKs            arduino (board arduino:mbed_nano:nano33ble), "
        "platformio (board nordicnrf52:nano33ble)\n" in text
    )
    assert "SDKs" not in format_target(load_target("rpi4"))


def test_the_sample_note_stays_one_comment_line(firmware_files, sample):
    out = projects.render_projects(
        load_target("pico"), NAME, firmware_files, sample, 'digit "0"\nint x = 1; \\'
    )
    header = out[f"projects/pico-sdk/{NAME}_sample.h"]
    assert '// The input the example runs: digit "0"?int x = 1; ?\n' in header
