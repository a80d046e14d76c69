"""Fit each kernel class's instruction count as a linear function of its shape.

Reads the per-op tables ``run_counts.py`` wrote (``<core>.csv``), takes the
single-operator sweep rows, and for every core and kernel class fits

    instructions = a + b * work + c * out [+ d * patch + e * odd | rows | pixels | in]

by least squares on relative error (each row divided by its count), where
``work`` is MACs (conv, depthwise, fully connected) or elements (pooling window
reads, the others' output elements), ``out`` the output elements, ``patch``
the im2col elements of a convolution (MACs / output channels), ``odd`` the
MACs of its last output pixel when their number is odd, ``rows`` a
softmax's rows, ``pixels`` a pooling's output positions and ``in`` the input
elements (all inputs). On the Cortex-M55 (Helium, 16 int8 lanes) conv and depthwise
MACs are counted with their patch or channels rounded up to 16 (``LANES``). It prints, per
core and class, the coefficients, and the median and largest relative error over
the sweep and, as an out-of-sample check, over the same class's ops in the
reference models (MLPerf Tiny, digits), which the fit never saw.

Usage: ``python benchmarks/kernel_counts/fit.py DIR_WITH_CSVS [--json fit.json]``
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys

import numpy as np


def kernel_class(row: dict) -> str:
    """The CMSIS-NN code path an op takes, as far as its shape tells (the wrappers
    ``arm_convolve_wrapper_s8`` and ``arm_depthwise_conv_wrapper_s8`` choose by it)."""
    op, kernel = row["opcode"], row["kernel"]
    if op == "CONV_2D":
        size, stride = kernel.split()[:2]
        if size == "1x1":
            return "conv_1x1" if stride == "s1" else "conv_1x1_strided"
        return "conv"
    if op == "DEPTHWISE_CONV_2D":
        size, _, mult = kernel.split()[:3]
        if mult != "x1":  # arm_depthwise_conv_s8 has a path for multipliers of 4
            return "depthwise_mult4" if int(mult[1:]) % 4 == 0 else "depthwise_generic"
        return "depthwise_3x3" if size == "3x3" else "depthwise_opt"
    return {
        "FULLY_CONNECTED": "fully_connected",
        "MAX_POOL_2D": "max_pool",
        "AVERAGE_POOL_2D": "avg_pool",
    }.get(op, op.lower())


#: int8 lanes of a core's vector unit: Helium (MVE) processes 16 at a time, with
#: tail predication, so a channel or patch count is paid for as if rounded up to 16.
LANES = {"m55": 16}


def _padded(n: float, lanes: int) -> float:
    return math.ceil(n / lanes) * lanes if lanes > 1 else n


def features(row: dict, cls: str) -> dict[str, float]:
    """The terms each class is fitted on: work first, then output elements and more.

    On a core with vector lanes (``LANES``), a convolution's MACs count its patch
    (KH*KW*IC) rounded up to the lanes, a depthwise's its channels rounded up."""
    lanes = LANES.get(row["core"], 1)
    macs, out = float(row["macs"]), float(row["output_bytes"])
    oc = float(row["output_shape"].split("x")[-1]) if row["output_shape"] else 1.0
    pixels = out / oc
    if cls.startswith("conv"):
        patch = _padded(macs / out, lanes)  # per output pixel and channel
        macs = pixels * oc * patch
        # the DSP matrix kernels take output pixels in pairs: an odd one runs a slower tail
        return {"macs": macs, "out": out, "patch": macs / oc, "odd": (pixels % 2) * macs / pixels}
    if cls.startswith("depthwise"):
        return {"macs": macs / oc * _padded(oc, lanes), "out": out}
    if cls == "fully_connected":
        return {"macs": macs, "out": out}
    if cls in ("max_pool", "avg_pool"):
        return {"elements": float(row["elements"]), "out": out, "pixels": pixels}
    if cls == "softmax":
        return {"out": out, "rows": pixels}
    return {"out": out, "in": float(row["input_bytes"])}


def read_rows(folder: str) -> dict[str, list[dict]]:
    by_core = {}
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".csv") or name.endswith("_models.csv"):
            continue
        with open(os.path.join(folder, name)) as fh:
            rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
        for row in rows:
            by_core.setdefault(row["core"], []).append(row)
    return by_core


def fit_class(rows: list[dict], cls: str) -> tuple[list[str], np.ndarray]:
    names = list(features(rows[0], cls))[: max(1, len(rows) - 3)]  # 2 rows to spare
    x = np.array([[1.0] + [features(r, cls)[n] for n in names] for r in rows])
    y = np.array([float(r["instructions"]) for r in rows])
    w = 1.0 / np.maximum(y, 1.0)
    coef, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
    return ["a"] + names, coef


def predict(row: dict, cls: str, coef: np.ndarray) -> float:
    f = list(features(row, cls).values())[: len(coef) - 1]
    return float(coef[0] + sum(c * v for c, v in zip(coef[1:], f, strict=True)))


def errors(rows: list[dict], cls: str, coef: np.ndarray) -> list[float]:
    return [
        abs(predict(r, cls, coef) / float(r["instructions"]) - 1)
        for r in rows
        if float(r["instructions"]) > 0
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("--json", help="write the coefficients and errors here")
    args = ap.parse_args(argv)
    result = {}
    for core, rows in read_rows(args.folder).items():
        print(f"\n{core}: instructions = a + sum(coefficient x term), fitted on the sweep")
        print(f"{'class':17} {'n':>3} {'terms':52} {'med err':>7} {'max err':>7}  ref n/med/max")
        for cls in sorted({kernel_class(r) for r in rows}):
            sweep = [r for r in rows if r["group"] == "sweep" and kernel_class(r) == cls]
            ref = [r for r in rows if r["group"] != "sweep" and kernel_class(r) == cls]
            if len(sweep) < 3:
                continue
            terms, coef = fit_class(sweep, cls)
            err, ref_err = errors(sweep, cls, coef), errors(ref, cls, coef)
            text = " ".join(
                f"{c:.0f}" if t == "a" else f"{c:+.3g}*{t}"
                for t, c in zip(terms, coef, strict=True)
            )
            ref_text = f"{len(ref)}/{np.median(ref_err):.1%}/{max(ref_err):.1%}" if ref_err else "-"
            print(
                f"{cls:17} {len(sweep):3d} {text:52} {np.median(err):7.1%} {max(err):7.1%}  "
                f"{ref_text}"
            )
            result.setdefault(core, {})[cls] = {
                "terms": dict(zip(terms, map(float, coef), strict=True)),
                "sweep_ops": len(sweep),
                "sweep_median_rel_error": float(np.median(err)),
                "sweep_max_rel_error": float(max(err)),
                "reference_ops": len(ref),
                "reference_median_rel_error": float(np.median(ref_err)) if ref_err else None,
                "reference_max_rel_error": float(max(ref_err)) if ref_err else None,
            }
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
