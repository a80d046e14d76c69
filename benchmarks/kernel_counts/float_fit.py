"""Set the float tables of the shipped TFLite Micro cost models from counted float kernels.

TFLite Micro runs a float32 model with its reference float kernels on every core
(CMSIS-NN and ESP-NN optimise integer kernels only). ``make_models.py --dtype
float32`` and ``run_counts.py --suffix _float`` count those kernels under QEMU
(``targets/latency/kernel_counts/<core>_float.csv``); this script fits each
class's float shape (:func:`edgeprune.estimates.boardfit.kernel_shape`: per
unit of work, per output, per call, in instructions) and writes it into each
cost model as ``float_cycles_per_unit`` / ``_per_output`` / ``_per_op``, times
that core's cycles per instruction: the ratio of the model's integer rates to
the integer counts' shape, the constant the board fit set. Copies
(``data_movement``) keep the integer per-byte rate (float RESHAPE copies at the
same rate per byte; float PAD's reference loop costs about 10x more).

Cores with no count (the M0+ without an FPU, the Xtensa cores: no QEMU machine
or toolchain here) get the Cortex-M4F's float counts times a stated factor and a
wide band, in ``float_basis``. Run after ``bench_latency_boards.py --write``,
which rewrites the integer constants.

Usage: ``.venv/bin/python benchmarks/kernel_counts/float_fit.py [--write]``
"""

from __future__ import annotations

import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

from edgeprune.estimates.boardfit import kernel_shape  # noqa: E402
from edgeprune.estimates.latency import FLOAT_TABLES, latency_dir, load_cost_model  # noqa: E402

COUNTS = os.path.join(ROOT, "targets", "latency", "kernel_counts")
#: cost model -> (its float counts, the integer counts its shape was fitted to)
MEASURED = {
    "cmsis-nn_cortex-m4f": ("m4f", "m4f"),
    "cmsis-nn_cortex-m7": ("m7", "m4f"),
    "cmsis-nn_cortex-m33": ("m33", "m4f"),
    "cmsis-nn_cortex-m55": ("m55", "m55"),
}
#: cost model -> cycles per Cortex-M4F float-kernel instruction, and why
DERIVED = {
    "cmsis-nn_cortex-m0plus": (
        4.0,
        "no FPU: every float add and multiply is a software routine (the RP2040's ROM "
        "floating point, about 50-70 cycles each, against 1-3 on an M4F FPU) and Thumb-1 "
        "needs more instructions for the same index arithmetic; derived, not measured: "
        "error band +-100 % or more",
    ),
    "esp-nn_xtensa-lx6": (
        1.2,
        "the ESP32's single-precision FPU runs the same reference loops; taken at the "
        "M4F's cycles per instruction; derived, not measured (no Xtensa toolchain or "
        "emulator here): error band +-100 %",
    ),
    "esp-nn_xtensa-lx7": (
        1.2,
        "the ESP32-S3's single-precision FPU runs the same reference loops (ESP-NN's SIMD "
        "serves int8 only); taken at the M4F's cycles per instruction; derived, not "
        "measured (no Xtensa toolchain or emulator here): error band +-100 %",
    ),
}
COPIES = "copies (RESHAPE, PAD, ...) at the integer rate per byte (float PAD runs ~10x that)"


def _csv(name: str) -> str:
    return os.path.join(COUNTS, f"{name}.csv")


def _float_shape(counts: str) -> tuple[dict, dict, dict]:
    units, per_output, per_op = kernel_shape(_csv(f"{counts}_float"))
    for table in (units, per_output, per_op):
        table.pop("data_movement", None)
    return units, per_output, per_op


def tables(model_id: str) -> tuple[dict[str, dict[str, float]], str]:
    """The float tables of ``model_id`` in cycles, and its ``float_basis``."""
    model = load_cost_model(model_id)
    if model_id in MEASURED:
        counts, integer = MEASURED[model_id]
        int_units = kernel_shape(_csv(integer))[0]
        ratios = [model.cycles_per_unit[c] / u for c, u in int_units.items() if u > 0]
        scale = statistics.median(ratios)
        basis = (
            f"TFLite Micro's reference float kernels counted under QEMU "
            f"(kernel_counts/{counts}_float.csv) x {scale:.4g} cycles per instruction, the "
            f"integer fit's; {COPIES}; the float code's own cycles per instruction is not "
            f"measured on a board: the fit's error band does not cover it"
        )
        units, per_output, per_op = _float_shape(counts)
    else:
        scale, why = DERIVED[model_id]
        basis = (
            f"the Cortex-M4F's counted reference float kernels (kernel_counts/m4f_float.csv) "
            f"x {scale:g} cycles per instruction: {why}; {COPIES}"
        )
        units, per_output, per_op = _float_shape("m4f")
    scaled = [{c: v * scale for c, v in t.items()} for t in (units, per_output, per_op)]
    return dict(zip(FLOAT_TABLES, scaled, strict=True)), basis


def rewrite(text: str, float_tables: dict[str, dict[str, float]], basis: str) -> str:
    """``text`` (a cost model's TOML) with its float keys and tables replaced."""
    text = re.sub(r"\n\[float_cycles_per_\w+\]\n(?:[^\n\[]+\n)*", "\n", text)
    text = re.sub(r"^float_basis = .*\n", "", text, flags=re.M)
    line = 'float_basis = "' + basis.replace("\\", "\\\\").replace('"', '\\"') + '"\n'
    text = re.sub(r"^(float_factor = .*\n)", lambda m: line + m.group(1), text, flags=re.M)
    text = text.rstrip("\n") + "\n"
    for key, table in float_tables.items():
        text += f"\n[{key}]\n" + "".join(f"{c} = {v:.6g}\n" for c, v in table.items())
    return text


def main(argv: list[str]) -> int:
    for model_id in (*MEASURED, *DERIVED):
        float_tables, basis = tables(model_id)
        conv = float_tables["float_cycles_per_unit"]
        print(
            f"{model_id:24s} conv {conv['conv']:.4g}  1x1 {conv['conv_1x1']:.4g}  "
            f"dw {conv['depthwise']:.4g}  fc {conv['fully_connected']:.4g}  "
            f"add {conv['elementwise']:.4g}  softmax {conv['softmax']:.4g} cycles/unit"
        )
        if "--write" in argv:
            path = os.path.join(latency_dir(), f"{model_id}.toml")
            with open(path) as fh:
                text = rewrite(fh.read(), float_tables, basis)
            with open(path, "w") as fh:
                fh.write(text)
            load_cost_model(model_id)  # still valid
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
