"""Run the project templates' inference code on a Cortex-M4F under QEMU against real
TensorFlow Lite Micro with CMSIS-NN, and compare its labels with the host runner.

Every SDK template's example calls the same ``<name>_app.cc`` (Setup, Run: quantize
with the input tensor's scale, invoke, dequantize, TopIndex, PrintResult). This
script renders the Arduino project of the ``nano33ble`` profile for MODEL (firmware
files in the agreed layout, as tests/firmware_layout.py builds them from main's
emitter), compiles that library's ``.cpp`` files unmodified with the flags TFLite
Micro's Makefile uses for the Cortex-M4F (``/work/fwcheck/lib/flags_m4f.txt``), plus
``-Wall -Wextra -Wshadow -Wconversion -Werror`` on the template code, links a
driver that runs the first COUNT digits test images through ``Run()`` with
``/work/fwcheck/lib/libtflm_m4f_cmsisnn.a`` (benchmarks/firmware_check/build_lib.sh),
runs it on QEMU's mps2-an386 and writes OUT.json: the labels the board printed, the
host runner's (LiteRT without default delegates), how many agree, and the
toolchain. Not run in CI (no ARM toolchain or TFLite Micro source there).

    .venv/bin/python benchmarks/project_check/check_app.py MODEL.tflite ARENA OUT.json [COUNT]

KEEP_DIR=<folder> builds in that folder and keeps it (sources, objects, app.elf).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FWCHECK = Path("/work/fwcheck")
sys.path.insert(0, str(REPO / "tests"))

from firmware_layout import firmware  # noqa: E402

from edgeprune.data import load_dataset  # noqa: E402
from edgeprune.firmware.projects import render_project  # noqa: E402
from edgeprune.runners.host import HostRunner  # noqa: E402
from edgeprune.target import load_target  # noqa: E402

NAME = "digits_cnn"
DRIVER = """#include <stdio.h>
#include "digits_cnn_app.h"
#include "images.h"
extern "C" void sh_puts(const char* s);
static void Print(const char* line) { sh_puts(line); sh_puts("\\n"); }
int main() {
  const char* error = digits_cnn_app::Setup();
  if (error != nullptr) { Print(error); return 2; }
  char line[48];
  for (int i = 0; i < kImageCount; ++i) {
    error = digits_cnn_app::Run(kImages[i], kImageValues);
    if (error != nullptr) { Print(error); return 3; }
    const unsigned top = static_cast<unsigned>(digits_cnn_app::TopIndex());
    snprintf(line, sizeof line, "IMG %d TOP %u", i, top);
    Print(line);
    if (i == 0) digits_cnn_app::PrintResult(Print);
  }
  return 0;
}
"""


def _run(cmd: list[str], **kw) -> str:
    """stdout and stderr of ``cmd`` (QEMU writes semihosting output to stderr)."""
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise SystemExit(" ".join(cmd) + "\n" + done.stdout + done.stderr)
    return done.stdout + done.stderr


def main(model_path: str, arena: int, out_json: str, count: int = 50) -> None:
    model = Path(model_path).read_bytes()
    files = firmware(model, arena)
    target = load_target("nano33ble")
    board = next(b for b in target.sdk if b.sdk == "arduino")
    project = render_project(target, board, NAME, files)
    images = load_dataset("digits").x_test[:count].astype(np.float32).reshape(count, -1)
    flags = shlex.split((FWCHECK / "lib" / "flags_m4f.txt").read_text())
    arch = [f for f in flags if re.match(r"-m(cpu|fpu|thumb|float-abi|little)", f)]
    # TFLite Micro's headers are third-party: warnings there are not the template's.
    system = ["-isystem" + f[2:] if f.startswith("-I") else f for f in flags]
    strict = ["-Wall", "-Wextra", "-Wshadow", "-Wconversion", "-Werror"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = os.environ.get("KEEP_DIR", tmp)
        t = Path(tmp)
        for rel, text in project.items():
            if rel.startswith("src/"):
                (t / rel[4:]).write_text(text)
        rows = ",\n".join("{" + ", ".join(f"{float(v)!r}f" for v in img) + "}" for img in images)
        (t / "images.h").write_text(
            f"constexpr int kImageCount = {count};\nconstexpr unsigned kImageValues = "
            f"{images.shape[1]};\nconstexpr float kImages[{count}][{images.shape[1]}] = "
            f"{{\n{rows}}};\n"
        )
        (t / "driver.cc").write_text(DRIVER)
        fw = REPO / "benchmarks" / "firmware_check"
        objs = []
        _run(["arm-none-eabi-gcc", *arch, "-Os", "-c", str(fw / "startup.c"), "-o", f"{t}/s.o"])
        objs.append(f"{t}/s.o")
        for src in sorted(t.glob("*.cpp")) + [t / "driver.cc"]:
            extra = strict if src.name.startswith(NAME + "_app") else []
            _run(["arm-none-eabi-g++", *system, *extra, f"-I{t}", "-c", str(src), "-o", f"{src}.o"])
            objs.append(f"{src}.o")
        _run(
            ["arm-none-eabi-g++", *arch, "-nostartfiles", "-T", str(fw / "mps2_an386.ld"),
             "-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs", *objs,
             str(FWCHECK / "lib" / "libtflm_m4f_cmsisnn.a"), "-lm", "-o", f"{t}/app.elf"]
        )  # fmt: skip
        printed = _run(
            ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
             "-serial", "none", "-semihosting-config", "enable=on,target=native",
             "-kernel", f"{t}/app.elf"], timeout=300,
        )  # fmt: skip
    board_top = [int(m) for m in re.findall(r"^IMG \d+ TOP (\d+)$", printed, re.M)]
    if len(board_top) != count:
        raise SystemExit(f"the board printed {len(board_top)} of {count} results:\n{printed}")
    host_top = HostRunner(model).predict(images.reshape(count, 8, 8, 1)).argmax(axis=1).tolist()
    result = {
        "what": "labels printed by the project templates' inference code (<name>_app.cc) "
        "on a Cortex-M4F (QEMU mps2-an386, TFLite Micro + CMSIS-NN) vs the host runner",
        "model": {"file": model_path, "bytes": len(model),
                  "sha256": hashlib.sha256(model).hexdigest(), "arena_bytes": arena},
        "images": f"digits test set, first {count}",
        "agree": sum(a == b for a, b in zip(board_top, host_top, strict=True)),
        "count": count,
        "board_labels": board_top,
        "host_labels": host_top,
        "first_result": printed.split("IMG 1 ")[0].splitlines()[1:],
        "edgeprune_commit": _run(["git", "-C", str(REPO), "rev-parse", "HEAD"]).strip(),
        "tflite_micro": "90b983c2b3f1480642e040bbd2ddb37b998f3424",
        "cmsis_nn": "4ab83cc",
        "compiler": _run(["arm-none-eabi-g++", "--version"]).splitlines()[0],
        "qemu": _run(["qemu-system-arm", "--version"]).splitlines()[0],
        "flags_extra_on_template_code": strict,
    }  # fmt: skip
    Path(out_json).write_text(json.dumps(result, indent=1) + "\n")
    print(f"{result['agree']}/{count} labels agree")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3], *(int(a) for a in sys.argv[4:5]))
