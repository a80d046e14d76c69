"""Build the Arduino library's validation example for a Cortex-M4F, run it on QEMU
and answer `edgeprune validate --runner serial` from it.

The Arduino project of the ``nano33ble`` profile is rendered for RUN_DIR's
``final_int8.tflite`` (firmware files in the agreed layout, tests/firmware_layout.py);
``examples/<name>_validate/<name>_validate.ino`` and the library's ``src/*.cpp`` are
compiled unmodified with TFLite Micro's Cortex-M4F flags
(``/work/fwcheck/lib/flags_m4f.txt``) and linked with
``/work/fwcheck/lib/libtflm_m4f_cmsisnn.a``, the Arduino stand-in of
``/work/fwcheck/qemu/arduino_shim`` (Serial on QEMU's UART0) and an empty
``Chirale_TensorFlowLite.h`` (the library the real build pulls in). QEMU's mps2-an386
runs it with its UART on a pseudo-terminal, and ``edgeprune validate`` runs a copy of
RUN_DIR (validate writes into its folder) over it. OUT.json gets validate's output
and the toolchain. Not run in CI.

    .venv/bin/python benchmarks/project_check/check_validate.py RUN_DIR ARENA OUT.json
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
FWCHECK = Path("/work/fwcheck")
sys.path.insert(0, str(REPO / "tests"))

from firmware_layout import NAME, firmware  # noqa: E402

from edgeprune.firmware.projects import render_project  # noqa: E402
from edgeprune.target import load_target  # noqa: E402


def _run(cmd: list[str], **kw) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise SystemExit(" ".join(cmd) + "\n" + done.stdout + done.stderr)
    return done.stdout + done.stderr


def main(run_dir: str, arena: int, out_json: str) -> None:
    model = (Path(run_dir) / "final_int8.tflite").read_bytes()
    files = firmware(model, arena)
    target = load_target("nano33ble")
    board = next(b for b in target.sdk if b.sdk == "arduino")
    project = render_project(target, board, NAME, files)
    flags = shlex.split((FWCHECK / "lib" / "flags_m4f.txt").read_text())
    arch = [f for f in flags if re.match(r"-m(cpu|fpu|thumb|float-abi|little)", f)]
    shim = FWCHECK / "qemu" / "arduino_shim"
    fw = REPO / "benchmarks" / "firmware_check"
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        for rel, text in project.items():
            (t / "lib" / rel).parent.mkdir(parents=True, exist_ok=True)
            (t / "lib" / rel).write_text(text)
        (t / "port").mkdir()
        (t / "port" / "Chirale_TensorFlowLite.h").write_text("#pragma once\n")
        inc = [f"-I{t}/lib/src", f"-I{shim}", f"-I{t}/port"]
        sketch = t / "lib" / "examples" / f"{NAME}_validate" / f"{NAME}_validate.ino"
        objs = [f"{t}/startup.o"]
        _run(["arm-none-eabi-gcc", *arch, "-Os", "-c", str(fw / "startup.c"), "-o", objs[0]])
        sources = [*sorted((t / "lib" / "src").glob("*.cpp")), shim / "arduino_shim.cc"]
        for i, src in enumerate(sources):
            objs.append(f"{t}/{i}.o")
            _run(["arm-none-eabi-g++", *flags, *inc, "-c", str(src), "-o", objs[-1]])
        objs.append(f"{t}/sketch.o")
        _run(["arm-none-eabi-g++", *flags, *inc, "-include", "Arduino.h", "-x", "c++",
              "-c", str(sketch), "-o", objs[-1]])  # fmt: skip
        lib = str(FWCHECK / "lib" / "libtflm_m4f_cmsisnn.a")
        _run(["arm-none-eabi-g++", *arch, "-nostartfiles", "-T", str(fw / "mps2_an386.ld"),
              "-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs", *objs,
              lib, "-lm", "-o", f"{t}/app.elf"])  # fmt: skip
        qemu = subprocess.Popen(
            ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
             "-serial", "pty", "-kernel", f"{t}/app.elf"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            line = qemu.stdout.readline()
            pty = re.search(r"(/dev/pts/\d+)", line).group(1)
            time.sleep(1)
            run_copy = t / "run"
            shutil.copytree(run_dir, run_copy)
            started = time.monotonic()
            done = subprocess.run(
                [str(REPO / ".venv" / "bin" / "edgeprune"), "validate", str(run_copy),
                 "--runner", "serial", "--device", f"{pty}@115200"],
                capture_output=True, text=True, timeout=1800,
            )  # fmt: skip
            seconds = time.monotonic() - started
        finally:
            qemu.kill()
            qemu.wait()
    result = {
        "what": "edgeprune validate --runner serial against the Arduino library's "
        f"examples/{NAME}_validate sketch, built for a Cortex-M4F and run on QEMU mps2-an386",
        "run_dir": run_dir,
        "arena_bytes": arena,
        "exit_code": done.returncode,
        # the temporary folder's page and report paths left out
        "validate_output": [
            x
            for x in (done.stdout + done.stderr).splitlines()
            if x.strip() and not x.startswith(("edgeprune: page:", "edgeprune: report:"))
        ],
        "seconds": round(seconds, 1),
        "edgeprune_commit": _run(["git", "-C", str(REPO), "rev-parse", "HEAD"]).strip(),
        "tflite_micro": "90b983c2b3f1480642e040bbd2ddb37b998f3424",
        "cmsis_nn": "4ab83cc",
        "compiler": _run(["arm-none-eabi-g++", "--version"]).splitlines()[0],
        "qemu": _run(["qemu-system-arm", "--version"]).splitlines()[0],
    }
    Path(out_json).write_text(json.dumps(result, indent=1) + "\n")
    print("\n".join(result["validate_output"][-12:]))
    print(f"exit {done.returncode} in {seconds:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
