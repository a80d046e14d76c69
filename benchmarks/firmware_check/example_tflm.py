"""Run the emitted ``inference_example.cc`` on real TensorFlow Lite Micro and compare
its labels with the host runner's.

    .venv/bin/python benchmarks/firmware_check/example_tflm.py RUN_DIR OUT.json [N] [CORE]

RUN_DIR is a run folder of a model on a built-in classification data set (the
digits CNN: ``edgeprune run --target nano33ble``), holding ``final_int8.tflite``
and its ``report.json``. For each of the first N (default 50) test samples the
firmware folder is rendered as ``edgeprune firmware`` writes it, with that
sample as the example's compiled-in input; ``inference_example.cc`` and
``model_<name>.cc`` are compiled, unmodified, with the exact flags of the
TFLite Micro library of CORE (default ``m4f``: Cortex-M4F, CMSIS-NN; see
README.md: ``$W/lib/libtflm_CORE_cmsisnn.a`` and ``flags_CORE.txt``), the
example also under ``-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror``,
linked with ``startup.c`` and run on the core's QEMU machine. Its printf goes
out over semihosting (``-DINFERENCE_EXAMPLE_PRINTF``). The printed label and
score are compared with edgeprune's host runner (LiteRT) on the same sample;
OUT.json gets every row, the agreement, the image's flash size and the
toolchain versions. Not run in CI (no ARM toolchain, no TFLite Micro source).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
W = os.environ.get("W", "/work/fwcheck")
CORES = {"m4f": ("mps2-an386", "mps2_an386.ld")}
STRICT = ["-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wconversion", "-Werror"]
TFLM_COMMIT = "90b983c2b3f1480642e040bbd2ddb37b998f3424"  # README.md: the tree in $W/tflm
CMSIS_NN_COMMIT = "4ab83cc"

# printf over ARM semihosting (startup.c's sh_puts); newlib-nano formats floats
# with -u _printf_float.
_SHIM_H = 'extern "C" int ep_printf(const char* format, ...);\n'
_SHIM_CC = """#include <stdarg.h>
#include <stdio.h>
extern "C" void sh_puts(const char* s);
extern "C" int ep_printf(const char* format, ...) {
  char line[256];
  va_list args;
  va_start(args, format);
  const int n = vsnprintf(line, sizeof line, format, args);
  va_end(args);
  sh_puts(line);
  return n;
}
"""


def _flags(core: str) -> list[str]:
    """The TFLite Micro Makefile's flags for ``core`` (a bash array in flags_CORE.txt)."""
    path = os.path.join(W, "lib", f"flags_{core}.txt")
    script = f'eval "A=($(cat {shlex.quote(path)}))"; printf "%s\\0" "${{A[@]}}"'
    out = subprocess.run(["bash", "-c", script], capture_output=True, check=True).stdout
    return [f.decode() for f in out.split(b"\0") if f]


def _run(cmd: list[str], allow_fail: bool = False, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0 and not allow_fail:
        sys.exit(f"failed: {' '.join(cmd[:3])} ...\n{result.stderr[-3000:]}")
    return result


def main(argv: list[str]) -> int:
    run_dir, out_json = argv[0], argv[1]
    count = int(argv[2]) if len(argv) > 2 else 50
    core = argv[3] if len(argv) > 3 else "m4f"
    machine, ld = CORES[core]
    import numpy as np

    from edgeprune.data import load_dataset
    from edgeprune.firmware.emit import EXAMPLE_CC, render
    from edgeprune.runners.host import HostRunner
    from edgeprune.stages.firmware import build_firmware, builtin_facts

    model_path = os.path.join(run_dir, "final_int8.tflite")
    model = open(model_path, "rb").read()
    report = json.load(open(os.path.join(run_dir, "report.json")))
    dataset = report["inputs"]["data"]["name"]
    ds = load_dataset(dataset)
    cxx = _flags(core)
    arch = [
        f for f in cxx if f.startswith(("-mcpu", "-mfpu", "-mthumb", "-mfloat-abi", "-mlittle"))
    ]
    lib = os.path.join(W, "lib", f"libtflm_{core}_cmsisnn.a")
    # The strict warnings judge the example's own code: TFLite Micro's and its third
    # parties' headers (flatbuffers warns under -Wconversion) are system headers for it.
    system = ["-isystem" + f[2:] if f.startswith("-I" + W) else f for f in cxx]
    with tempfile.TemporaryDirectory(dir=os.environ.get("KEEP_TMP")) as tmp:
        build = build_firmware(model_path, "nano33ble", out=tmp)  # the arena, name, labels
        name, arena = build.firmware.name, build.check.evidence.arena_bytes
        fw = os.path.join(tmp, "firmware")
        with open(os.path.join(tmp, "shim.h"), "w") as fh:
            fh.write(_SHIM_H)
        with open(os.path.join(tmp, "shim.cc"), "w") as fh:
            fh.write(_SHIM_CC)
        gcc = ["arm-none-eabi-gcc", *arch, "-Os", "-ffunction-sections", "-fdata-sections"]
        _run([*gcc, "-c", os.path.join(HERE, "startup.c"), "-o", f"{tmp}/startup.o"])
        _run(["arm-none-eabi-g++", *cxx, "-c", f"{tmp}/shim.cc", "-o", f"{tmp}/shim.o"])
        _run(
            [
                "arm-none-eabi-g++",
                *cxx,
                "-I",
                fw,
                "-c",
                f"{fw}/model_{name}.cc",
                "-o",
                f"{tmp}/model.o",
            ]
        )
        host = HostRunner(model).run(ds.x_test[:count]).outputs
        rows = []
        for i in range(count):
            facts = builtin_facts(dataset, "classification", ds.x_test[i:], ds.y_test[i:])
            files = render(model, "final_int8.tflite", arena, name=name, facts=facts)
            with open(f"{fw}/{EXAMPLE_CC}", "w") as fh:
                fh.write(files[EXAMPLE_CC])
            example = [
                "arm-none-eabi-g++", *system, *STRICT, "-I", fw, "-include", f"{tmp}/shim.h",
                "-DINFERENCE_EXAMPLE_PRINTF=ep_printf", "-c", f"{fw}/{EXAMPLE_CC}",
                "-o", f"{tmp}/example.o",
            ]  # fmt: skip
            _run(example)
            elf = f"{tmp}/example.elf"
            _run([
                "arm-none-eabi-g++", *arch, "-nostartfiles", "-T", os.path.join(HERE, ld),
                "-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs",
                "-u", "_printf_float", f"{tmp}/startup.o", f"{tmp}/shim.o", f"{tmp}/example.o",
                f"{tmp}/model.o", lib, "-lm", "-o", elf,
            ])  # fmt: skip
            qemu = [
                "qemu-system-arm", "-M", machine, "-nographic", "-monitor", "none",
                "-serial", "none", "-semihosting-config", "enable=on,target=native", "-kernel", elf,
            ]  # fmt: skip
            result = _run(qemu, timeout=120, allow_fail=True)
            printed = (result.stdout + result.stderr).strip()  # semihosting: QEMU's stderr
            line = printed.splitlines()[-1] if printed else ""
            parts = line.split()
            ok = result.returncode == 0 and len(parts) == 4 and parts[0] == "label"
            label, score = (parts[1], parts[3]) if ok else ("", "")
            host_label = facts.labels[int(np.argmax(host[i]))]
            rows.append(
                {
                    "index": i,
                    "true_label": facts.labels[int(ds.y_test[i])],
                    "host_label": host_label,
                    "host_score": f"{float(host[i].max()):.4f}",
                    "device_label": label,
                    "device_score": score,
                    "device_exit": result.returncode,
                }
            )
            print(i, line, "host", host_label, f"{float(host[i].max()):.4f}", flush=True)
        size = _run(["arm-none-eabi-size", "-A", elf]).stdout
        sections = {
            p[0]: int(p[1])
            for p in (ln.split() for ln in size.splitlines())
            if len(p) >= 2 and p[1].isdigit()
        }
    same_label = sum(r["device_label"] == r["host_label"] for r in rows)
    same_score = sum(r["device_score"] == r["host_score"] for r in rows)
    doc = {
        "what": "inference_example.cc of edgeprune firmware, built unmodified against TFLite Micro "
        "with CMSIS-NN and run under QEMU, one build per test sample compiled in; labels "
        "and scores as printed, against edgeprune's host runner (LiteRT) on the same sample",
        "model": {
            "source": report["inputs"]["model"],
            "data": dataset,
            "sha256": hashlib.sha256(model).hexdigest(),
            "bytes": len(model),
            "c_name": name,
            "arena_bytes": arena,
        },
        "toolchain": {
            "edgeprune": _run(["git", "-C", HERE, "rev-parse", "HEAD"]).stdout.strip(),
            "tflite_micro": TFLM_COMMIT,
            "cmsis_nn": CMSIS_NN_COMMIT,
            "compiler": _run(["arm-none-eabi-g++", "--version"]).stdout.splitlines()[0],
            "qemu": _run(["qemu-system-arm", "--version"]).stdout.splitlines()[0],
            "machine": machine,
            "core": core,
            "example_flags": STRICT,
        },
        "samples": count,
        "same_label_as_host": same_label,
        "same_printed_score_as_host": same_score,
        "true_label": sum(r["device_label"] == r["true_label"] for r in rows),
        "image_flash_bytes": sections.get(".text", 0)
        + sections.get(".rodata", 0)
        + sections.get(".data", 0),
        "rows": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(out_json)), exist_ok=True)
    with open(out_json, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print(f"{same_label}/{count} labels as the host; {same_score}/{count} scores as printed")
    return 0 if same_label == count else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
