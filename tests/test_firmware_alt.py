"""The firmware passes the target's alternate decompression memory to the interpreter.

A compressed model on a target with ``[alt_decompression]`` was checked with its
decoded weights outside the arena; config_<name>.h defines the block and every
place that constructs the MicroInterpreter passes it (SetDecompressionMemory,
before AllocateTensors). Compiled against stub headers here; built against TFLite
Micro 90b983c and run on a Cortex-M4F under QEMU by hand (docs/tflm-compression.md,
the alternate decompression memory's section), which CI cannot repeat.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from test_firmware import _stub_tflm  # tests/ is on sys.path under pytest
from tflm_bridge import EXAMPLE_TYPES_H

from edgeprune.compress import compress_model
from edgeprune.firmware.emit import EXAMPLE_CC, render
from edgeprune.stages.check import decoded_memory
from edgeprune.target import load_target, parse_target, targets_dir

CXX = shutil.which("g++") or shutil.which("c++")
needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++ or c++) on PATH")
STRICT = ["-std=c++11", "-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion", "-Werror"]
TFLM = Path(os.environ.get("TFLM_ROOT", "/work/fwcheck/tflm"))
MACRO = "EDGEPRUNE_DIGITS_ALT_DECOMPRESSION_BYTES"

# A stub of TFLite Micro's interpreter, as far as the example uses it (the tensors
# and Invoke() are the test board's):
EXAMPLE_INTERPRETER_H = (
    EXAMPLE_TYPES_H
    + """namespace tflite {
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
)

# The same with the alternate decompression memory: SetDecompressionMemory() prints
# the block it got, AllocateTensors() whether it came first.
_ALLOCATE = (
    "  TfLiteStatus AllocateTensors() { return arena_bytes_ > 0 && ops_ > 0 ? kTfLiteOk "
    ": kTfLiteError; }"
)
_WITH_ALT = """  using Region = MicroContext::AlternateMemoryRegion;
  TfLiteStatus SetDecompressionMemory(const Region* r, size_t n) {
    const int aligned = reinterpret_cast<uintptr_t>(r[0].address) % 16 == 0 ? 1 : 0;
    printf("alt %lu bytes in %lu region(s), aligned %d\\n",
           static_cast<unsigned long>(r[0].bytes), static_cast<unsigned long>(n), aligned);
    alt_ = true;
    return kTfLiteOk;
  }
  TfLiteStatus AllocateTensors() {
    printf("allocate, alt set %d\\n", alt_ && arena_bytes_ > 0 && ops_ > 0 ? 1 : 0);
    return kTfLiteOk;
  }
  bool alt_ = false;"""
_CONTEXT = """#include <stdio.h>
namespace tflite {
class MicroContext {
 public:
  struct AlternateMemoryRegion { void* address; size_t bytes; };
};
}  // namespace tflite
"""
assert _ALLOCATE in EXAMPLE_INTERPRETER_H, "the example's stub interpreter changed"
_INTERPRETER_H = EXAMPLE_INTERPRETER_H.replace(
    '#include "stub_common.h"', '#include "stub_common.h"\n' + _CONTEXT
).replace(_ALLOCATE, _WITH_ALT)

_BOARD = """#include "tensorflow/lite/micro/micro_interpreter.h"
static char in_mem[4096], out_mem[64];
static TfLiteTensor in_t = {{in_mem}, sizeof in_mem}, out_t = {{out_mem}, 10};
TfLiteTensor* tflite::MicroInterpreter::input(size_t) { return &in_t; }
TfLiteTensor* tflite::MicroInterpreter::output(size_t) { return &out_t; }
TfLiteStatus tflite::MicroInterpreter::Invoke() { return kTfLiteOk; }
"""


def _target(alt: dict | None, name: str = "alt"):
    from edgeprune._toml import read_toml
    from edgeprune.target import TargetError

    data = read_toml(f"{targets_dir()}/nano33ble.toml", TargetError, "target")
    if alt is not None:
        data["alt_decompression"] = alt
    return parse_target(data, f"{name}.toml", name)


ALT = {"bytes": 65_536, "region": "SRAM2", "in_ram_bytes": False, "section": ".alt_bss"}


@pytest.fixture(scope="module")
def compressed(run_dir) -> bytes:
    return compress_model((run_dir / "final_int8.tflite").read_bytes(), "prune").model


def _files(model: bytes, target) -> dict[str, str]:
    from edgeprune.firmware.emit import ModelFacts

    return render(model, "digits.tflite", 6144, "digits", ModelFacts(target=target))


def test_the_config_header_defines_the_block_the_check_measured_with(compressed):
    target = _target(ALT)
    config = _files(compressed, target)["config_digits.h"]
    block = decoded_memory(compressed, target)[1]
    assert block > 0
    assert f"#define {MACRO} {block}\n" in config
    assert '_ALT_DECOMPRESSION_ATTR __attribute__((section(".alt_bss")))' in config
    assert "in SRAM2 (a region of its own)" in config


def test_no_block_without_decode_or_without_the_profiles_table(compressed, run_dir):
    dense = (run_dir / "final_int8.tflite").read_bytes()
    assert MACRO not in _files(dense, _target(ALT))["config_digits.h"]
    assert MACRO not in _files(compressed, load_target("nano33ble"))["config_digits.h"]
    assert MACRO not in _files(compressed, None)["config_digits.h"]


def test_every_interpreter_the_firmware_constructs_gets_the_block_before_allocating(compressed):
    files = _files(compressed, _target(ALT))
    sites = {
        EXAMPLE_CC: files[EXAMPLE_CC],
        **{p: t for p, t in files.items() if p.endswith("digits_app.cc")},
    }
    # the example and at least one SDK project's app (its validation build included)
    assert len(sites) >= 2, sorted(files)
    for where, text in sites.items():
        at = text.index(f"#ifdef {MACRO}")
        assert text.index("SetDecompressionMemory(alt_regions, 1)", at) < text.index(
            "AllocateTensors()", at
        ), where


@needs_cxx
def test_the_example_passes_the_block_and_compiles_warning_free(compressed, tmp_path):
    files = _files(compressed, _target(ALT))
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    _stub_tflm(tmp_path / "stub", files)
    (tmp_path / "stub/tensorflow/lite/micro/micro_interpreter.h").write_text(_INTERPRETER_H)
    (tmp_path / "board.cc").write_text(_BOARD)
    objects = []
    for source in (EXAMPLE_CC, "board.cc", "model_digits.cc"):
        obj = tmp_path / (source + ".o")
        cmd = [CXX, *STRICT, "-I", str(tmp_path), "-I", str(tmp_path / "stub"), "-c", source]
        built = subprocess.run([*cmd, "-o", str(obj)], cwd=tmp_path, capture_output=True, text=True)
        assert built.returncode == 0, built.stderr
        objects.append(str(obj))
    sections = subprocess.run(["objdump", "-h", objects[0]], capture_output=True, text=True)
    assert ".alt_bss" in sections.stdout  # the attribute placed the block
    exe = tmp_path / "example"
    subprocess.run([CXX, *objects, "-lm", "-o", str(exe)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30).stdout
    block = decoded_memory(compressed, _target(ALT))[1]
    assert f"alt {block} bytes in 1 region(s), aligned 1\n" in out
    assert "allocate, alt set 1\n" in out
