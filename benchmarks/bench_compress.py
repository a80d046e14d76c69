"""TFLite Micro weight compression (DECODE), end to end: flash, arena and accuracy of the
digits CNN dense vs pruned vs prune-compressed vs LUT vs both vs structured + prune, on
nano33ble (Cortex-M4F, CMSIS-NN); and the MLPerf Tiny reference architectures (sizes
and arenas only).

Run: python benchmarks/bench_compress.py [--quick] [--json FILE]

The 75 %-sparse prune row also prints where the bytes of both models go
(``compress_breakdown.py``) and the smallest the compressed model could be if
DECODE cost nothing but its data: the bound for the 2.2x target.

Digits: every row is one ``edgeprune run --target nano33ble`` (same seed, so the same
baseline), its figures taken from the run's device check: model bytes, runtime flash
(measured table, an estimate per model), the DECODE kernel's measured 6,228 B when the
model decodes, the target arena (from the smallest working host arena), and the int8
test accuracy the run measured (compressed models are verified bit-exact against the
dense int8 model on the whole test set, so they score the same). The "dense int8"
row is the unpruned baseline converted to int8 and checked the same way.

MLPerf Tiny: untrained weights (generated data), BatchNorm calibrated, every Conv2D,
DepthwiseConv2D and Dense kernel magnitude-pruned to 75 % in numpy, int8, then
``compress_model(..., "prune")`` verified bit-exact on 20 generated inputs.

The issue's targets are printed with met/missed; exit code 0 either way (a missed
target is a finding, written in the README with its reason).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time

import numpy as np
from compress_breakdown import report as byte_report

from edgeprune import pipeline
from edgeprune.adapters import converter as convert
from edgeprune.adapters import keras as ka
from edgeprune.artifacts import Flatbuffer
from edgeprune.compress import compress_model, verify
from edgeprune.data import load_dataset
from edgeprune.errors import BudgetError, QualityError
from edgeprune.recipe import build_recipe
from edgeprune.stages.check import check_flatbuffer
from edgeprune.target import load_target

TARGET = "nano33ble"
ROWS = {  # name -> recipe sections on top of the base recipe
    "pruned 75 %, dense int8": {},
    "pruned 75 %, prune": {"compress": {"method": "prune"}},
    "pruned 75 %, 4 clusters, lut": {"compress": {"method": "lut"}, "cluster": {"clusters": 4}},
    "pruned 75 %, 4 clusters, both": {"compress": {"method": "both"}, "cluster": {"clusters": 4}},
    "structured 0.5 + pruned 75 %, dense int8": {"structured": {"goal": "width", "width": 0.5}},
    "structured 0.5 + pruned 75 %, prune": {
        "structured": {"goal": "width", "width": 0.5},
        "compress": {"method": "prune"},
    },
    "structured 0.5 + pruned 75 %, 4 clusters, both": {
        "structured": {"goal": "width", "width": 0.5},
        "compress": {"method": "both"},
        "cluster": {"clusters": 4},
    },
}


def _recipe(quick: bool, extra: dict):
    base = {"train": {"epochs": 3 if quick else 20}, "prune": {"epochs": 2 if quick else 6}}
    base["quantize"] = {"calibration_samples": 50 if quick else 200}
    return build_recipe({**base, **extra})


def _figures(check) -> dict:
    ev = check.evidence
    return {
        "model_bytes": ev.model_bytes,
        "runtime_bytes": ev.runtime_flash_bytes,
        "decode_bytes": ev.decode_flash_bytes,
        "flash_bytes": ev.model_bytes + ev.runtime_flash_bytes + ev.decode_flash_bytes,
        "arena_bytes": ev.arena_bytes,
        "latency_ms_estimate": round(ev.latency.ms, 3),
    }


def digits_rows(quick: bool, root: str) -> list[dict]:
    rows = []
    target = load_target(TARGET)
    for name, extra in ROWS.items():
        t0 = time.perf_counter()
        out = os.path.join(root, str(len(rows)))
        try:
            result = pipeline.run(recipe=_recipe(quick, extra), out=out, target=TARGET, page=False)
        except (BudgetError, QualityError) as exc:  # reported, not hidden: the row says so
            result = exc.result
        final = next(e for e in result.evaluations if e.stage == "final")
        rows.append(
            {
                "name": name,
                "file": os.path.basename(result.check.evidence.model_path),
                "fits": result.check.ok,
                "accuracy": final.metrics["accuracy"],
                **_figures(result.check),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        if not rows[1:]:  # the first run: also its unpruned baseline, as int8
            ds = load_dataset("digits")
            model = ka.load_model(os.path.join(out, "baseline.keras"))
            data = convert.to_tflite(model, "int8", ds.x_train[:200])
            check = check_flatbuffer(Flatbuffer.of(data, "baseline_int8.tflite", "int8"), target)
            accuracy = _int8_accuracy(data, ds)
            rows.insert(
                0,
                {
                    "name": "dense int8 (unpruned baseline)",
                    "file": "baseline_int8.tflite",
                    "fits": check.ok,
                    "accuracy": accuracy,
                    **_figures(check),
                    "seconds": 0.0,
                },
            )
        if name == "pruned 75 %, prune" and result.compress.tflite is not None:
            # where the compressed model's bytes go, against the 2.2x target
            rows[-1]["bytes"] = byte_report(
                result.quantize.tflite.data, result.compress.tflite.data
            )
        print(f"  {name}: {rows[-1]['flash_bytes']:,} B, {rows[-1]['seconds']} s", flush=True)
    return rows


def _int8_accuracy(data: bytes, ds) -> float:
    from edgeprune.tflm import probe

    arena = probe.find_arena(data).required_bytes()
    raw = probe.run_detailed(data, ds.x_test, arena).raw
    return float((raw.reshape(len(ds.x_test), -1).argmax(1) == ds.y_test).mean())


def _prune_kernels(model, sparsity: float) -> None:
    for layer in model.layers:
        if type(layer).__name__ not in ("Conv2D", "DepthwiseConv2D", "Dense"):
            continue
        weights = layer.get_weights()
        kernel = weights[0]
        cut = np.quantile(np.abs(kernel), sparsity)
        kernel[np.abs(kernel) <= cut] = 0
        layer.set_weights([kernel, *weights[1:]])


def mlperf_rows() -> list[dict]:
    from edgeprune.models import mlperf_tiny

    rows = []
    for name, (builder, shape, classes) in mlperf_tiny.REFERENCE.items():
        ka.seed_everything(0)
        model = builder(shape) if classes is None else builder(shape, classes)
        x, _ = mlperf_tiny.synthetic_data(shape, classes, n=256, seed=0)
        mlperf_tiny.calibrate_batchnorm(model, x[:128])
        _prune_kernels(model, 0.75)
        dense = convert.to_tflite(model, "int8", x[:100])
        result = compress_model(dense, "prune")
        checked = verify(dense, result.model, x[:20], decoders=result.decoders)
        rows.append(
            {
                "name": name,
                "dense_bytes": result.dense_bytes,
                "prune_bytes": result.model_bytes,
                "ratio": round(result.ratio, 2),
                "tensors": f"{sum(1 for t in result.tensors if t.method)} / {len(result.tensors)}",
                "arena_dense": checked.dense_arena_bytes,
                "arena_compressed": checked.compressed_arena_bytes,
                "arena_with_alt": checked.compressed_arena_with_alt_bytes,
                "alt_bytes": checked.alt_decompression_bytes,
            }
        )
        print(f"  {name}: {rows[-1]}", flush=True)
    return rows


def targets(rows: list[dict]) -> list[tuple[str, bool, str]]:
    dense = rows[0]
    pruned = next(r for r in rows if r["name"] == "pruned 75 %, dense int8")
    prune = next(r for r in rows if r["name"] == "pruned 75 %, prune")
    ok_rows = [r for r in rows[1:] if dense["accuracy"] - r["accuracy"] <= 0.01]
    best = min(ok_rows, key=lambda r: r["flash_bytes"]) if ok_rows else None
    out = []
    if best is None:
        out.append(("flash (model + runtime) >= 4x smaller at <= 1 point lost", False, "no row"))
    else:
        ratio = dense["flash_bytes"] / best["flash_bytes"]
        arena = best["arena_bytes"] - dense["arena_bytes"]
        out.append(
            (
                "flash (model + runtime) >= 4x smaller than dense int8 at <= 1 point lost",
                ratio >= 4,
                f"{ratio:.2f}x ({best['name']}: {best['flash_bytes']:,} vs "
                f"{dense['flash_bytes']:,} B; the runtime alone is {best['runtime_bytes']:,} B "
                f"+ DECODE {best['decode_bytes']:,} B); model alone "
                f"{dense['model_bytes'] / best['model_bytes']:.2f}x; arena {arena:+,} B vs "
                f"dense int8; accuracy {best['accuracy'] - dense['accuracy']:+.3f}",
            )
        )
    ratio = pruned["model_bytes"] / prune["model_bytes"]
    out.append(
        (
            "prune compression alone, 75 % sparse: model >= 2.2x smaller, bit-exact",
            ratio >= 2.2,
            f"{ratio:.2f}x ({pruned['model_bytes']:,} -> {prune['model_bytes']:,} B)",
        )
    )
    return out


def _print_digits(rows: list[dict]) -> None:
    head = ("row", "model B", "runtime+DECODE B", "flash B", "arena B", "acc", "est. ms", "fits")
    print(" | ".join(head))
    for r in rows:
        print(
            f"{r['name']} | {r['model_bytes']:,} | {r['runtime_bytes']:,} + "
            f"{r['decode_bytes']:,} | {r['flash_bytes']:,} | {r['arena_bytes']:,} | "
            f"{r['accuracy']:.3f} | {r['latency_ms_estimate']:.3g} | {r['fits']}"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the tests' short training")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--skip-mlperf", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        rows = digits_rows(args.quick, root)
    print(f"\ndigits CNN on {TARGET} ({'quick' if args.quick else 'full'} recipe)")
    _print_digits(rows)
    met = targets(rows)
    for text, ok, how in met:
        print(f"{'MET' if ok else 'MISSED'}: {text}: {how}")
    for r in rows:
        if r.get("bytes"):
            print(f"\nwhere the bytes go: {r['name']} (benchmarks/compress_breakdown.py)")
            print(r["bytes"])
    mlperf = [] if args.skip_mlperf else mlperf_rows()
    if mlperf:
        print("\nMLPerf Tiny, 75 % magnitude-pruned, prune compression (sizes, host arenas)")
        for r in mlperf:
            print(" | ".join(str(v) for v in r.values()))
    if args.json:
        body = {"digits": rows, "targets": [dataclasses.asdict(_T(*t)) for t in met]}
        body["mlperf_tiny"] = mlperf
        with open(args.json, "w") as fh:
            json.dump(body, fh, indent=2)
    return 0


@dataclasses.dataclass
class _T:
    target: str
    met: bool
    figures: str


if __name__ == "__main__":
    raise SystemExit(main())
