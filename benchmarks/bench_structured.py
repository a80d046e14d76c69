"""Structured pruning, before and after: params, MACs, int8 flash, exact TFLite Micro
arena and estimated latency on every device profile, for the four MLPerf Tiny
reference architectures and the digits CNN (with its accuracy).

Run: python benchmarks/bench_structured.py [--quick] [--json FILE]

The reference models train on generated data of their input shape
(``models.mlperf_tiny.synthetic_data``): their sizes, arenas and latencies are
real properties of the architectures, their accuracies mean nothing and are not
printed. The digits CNN trains on scikit-learn's bundled digits, and its test
accuracy is measured on the int8 models, dense and pruned.

Targets (issue 5): digits CNN >= 3x less int8 flash and >= 1.5x less arena than
the dense int8 model at no more than 1 point of accuracy lost; DS-CNN and
MobileNetV1 >= 2x fewer MACs with the rebuild verified. Exit code 1 when a
target is missed.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from edgeprune.models import digits_cnn, mlperf_tiny

from edgeprune.adapters import converter as convert
from edgeprune.adapters import keras as ka
from edgeprune.adapters.keras import sample_loss
from edgeprune.estimates.latency import estimate_latency
from edgeprune.estimates.opcost import model_cost
from edgeprune.runners.host import HostRunner
from edgeprune.structured.importance import keras_macs
from edgeprune.structured.rounds import StructuredOptions, prune_structured
from edgeprune.target import list_targets, load_target
from edgeprune.tflite import inspect_model
from edgeprune.tflm import probe as micro

# (goal, amount) per reference model: the 2x MAC goal of issue 5.
REFERENCE_GOALS = {
    "ds_cnn": ("macs", 2.0),
    "mobilenet_v1": ("macs", 2.0),
    "resnet8": ("macs", 2.0),
    "autoencoder": ("macs", 2.0),
}
DIGITS = dict(goal="width", target=0.4, rounds=2)
DIGITS_EPOCHS = 10  # fine-tuning epochs after each round


def int8_figures(model, calib: np.ndarray) -> dict:
    data = convert.to_tflite(model, "int8", calib)
    info = inspect_model(data)
    cost = model_cost(info)
    return {
        "tflite": data,
        "params": int(model.count_params()),
        "macs": int(cost.macs),
        "keras_macs": int(keras_macs(model)),
        "flash_bytes": len(data),
        "arena_bytes": int(micro.find_arena(data).required_bytes()),
        "latency_ms": {t: estimate_latency(cost, load_target(t)).ms for t in list_targets()},
    }


def reference(name: str, quick: bool, log) -> dict:
    build, shape, classes = mlperf_tiny.REFERENCE[name]
    n = 128 if quick else (384 if name == "mobilenet_v1" else 768)
    x, y = mlperf_tiny.synthetic_data(shape, classes, n=n, seed=0)
    ka.seed_everything(0)
    model = build(shape, classes)
    task = "regression" if classes is None else "classification"
    ka.compile_for(model, task, 1e-3, classes is not None)
    ka.fit(model, x, y, epochs=1 if quick else 3, batch_size=32, seed=0)
    mlperf_tiny.calibrate_batchnorm(model, x[:256])  # a few epochs leave them at 0 and 1
    goal, amount = REFERENCE_GOALS[name]
    t0 = time.perf_counter()
    res = prune_structured(
        model, StructuredOptions(goal=goal, target=amount), verify_x=x[:64], log=log
    )
    seconds = time.perf_counter() - t0
    calib = x[:64]
    before, after = int8_figures(model, calib), int8_figures(res.model, calib)
    (rnd,) = res.rounds
    return {
        "model": name,
        "goal": f"{goal} /{amount}",
        "before": before,
        "after": after,
        "rebuild_max_abs_diff": rnd.rebuild_max_abs_diff,
        "verify_samples": rnd.verify_samples,
        "width": rnd.width,
        "seconds": seconds,
        "data": f"generated {shape}, n={n}",
    }


def digits(quick: bool, log) -> dict:
    from edgeprune.data import load_dataset

    ds = load_dataset("digits")
    ka.seed_everything(0)
    model = digits_cnn.build(ds.x_train.shape[1:], 10)
    ka.compile_for(model, "classification", 2e-3, True)
    ka.fit(model, ds.x_train, ds.y_train, epochs=4 if quick else 20, batch_size=32, seed=0)

    def fine_tune(m):
        ka.compile_for(m, "classification", 1e-3, True)
        ka.fit(
            m, ds.x_train, ds.y_train, epochs=2 if quick else DIGITS_EPOCHS, batch_size=32, seed=0
        )

    opts = StructuredOptions(**DIGITS)
    res = prune_structured(
        model,
        opts,
        x=ds.x_train,
        y=ds.y_train,
        loss=sample_loss("classification", 10, True),
        fine_tune=fine_tune,
        verify_x=ds.x_test[:256],
        log=log,
    )
    rng = np.random.default_rng(0)
    calib = ds.x_train[rng.choice(len(ds.x_train), 200, replace=False)]
    out = {
        "model": "digits_cnn",
        "goal": f"width {DIGITS['target']} in {DIGITS['rounds']} "
        f"rounds, {DIGITS_EPOCHS} epochs each",
        "data": "sklearn digits (test split: 360 images)",
        "rebuild_max_abs_diff": max(r.rebuild_max_abs_diff for r in res.rounds),
        "verify_samples": res.rounds[0].verify_samples,
        "width": res.rounds[-1].width,
    }
    for side, m in (("before", model), ("after", res.model)):
        fig = int8_figures(m, calib)
        pred = HostRunner(fig["tflite"]).predict(ds.x_test).argmax(1)
        fig["int8_accuracy"] = float(np.mean(pred == ds.y_test))
        out[side] = fig
    return out


def ratio(row, key) -> float:
    return row["before"][key] / row["after"][key]


def print_tables(rows: list[dict]) -> None:
    print("\n### Size and memory, int8 (before -> after structured pruning)\n")
    print("| model | goal | params | MACs | int8 flash B | arena B | rebuild max abs diff |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        b, a = r["before"], r["after"]
        cells = [
            f"{b[k]:,} -> {a[k]:,} ({ratio(r, k):.2f}x)"
            for k in ("params", "macs", "flash_bytes", "arena_bytes")
        ]
        print(
            f"| {r['model']} | {r['goal']} | "
            + " | ".join(cells)
            + f" | {r['rebuild_max_abs_diff']:.2g} on {r['verify_samples']} |"
        )
    print(
        "\n### Estimated latency per device, ms (before -> after; ESTIMATES from each "
        "profile's cost model)\n"
    )
    print("| device | " + " | ".join(r["model"] for r in rows) + " |")
    print("|---|" + "---:|" * len(rows))
    for t in list_targets():
        cells = [
            f"{r['before']['latency_ms'][t]:.4g} -> {r['after']['latency_ms'][t]:.4g}" for r in rows
        ]
        print(f"| {t} | " + " | ".join(cells) + " |")
    d = next((r for r in rows if r["model"] == "digits_cnn"), None)
    if d:
        print(
            f"\ndigits CNN int8 test accuracy: {d['before']['int8_accuracy']:.4f} dense -> "
            f"{d['after']['int8_accuracy']:.4f} pruned "
            f"({(d['after']['int8_accuracy'] - d['before']['int8_accuracy']) * 100:+.2f} "
            f"points)"
        )


def targets_met(rows: list[dict]) -> list[str]:
    """The issue's targets, each as a line ending in ok or MISSED."""
    out = []
    by = {r["model"]: r for r in rows}
    if "digits_cnn" in by:
        d = by["digits_cnn"]
        lost = (d["before"]["int8_accuracy"] - d["after"]["int8_accuracy"]) * 100
        for text, ok in (
            (
                f"digits int8 flash {ratio(d, 'flash_bytes'):.2f}x less (>= 3x)",
                ratio(d, "flash_bytes") >= 3,
            ),
            (
                f"digits arena {ratio(d, 'arena_bytes'):.2f}x less (>= 1.5x)",
                ratio(d, "arena_bytes") >= 1.5,
            ),
            (f"digits accuracy lost {lost:.2f} points (<= 1)", lost <= 1.0),
        ):
            out.append(f"{text}: {'ok' if ok else 'MISSED'}")
    for name in ("ds_cnn", "mobilenet_v1"):
        if name in by:
            r = by[name]
            ok = ratio(r, "macs") >= 2 and r["rebuild_max_abs_diff"] < 1e-4
            out.append(
                f"{name} MACs {ratio(r, 'macs'):.2f}x fewer (>= 2x), rebuild verified "
                f"(max abs diff {r['rebuild_max_abs_diff']:.2g}): "
                f"{'ok' if ok else 'MISSED'}"
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: less training and data (targets may be missed)",
    )
    ap.add_argument("--models", default="digits_cnn,ds_cnn,mobilenet_v1,resnet8,autoencoder")
    ap.add_argument("--json", default=None, help="also write every figure here")
    args = ap.parse_args()
    log = print if not args.quick else (lambda _: None)
    rows = []
    for name in args.models.split(","):
        t0 = time.perf_counter()
        rows.append(
            digits(args.quick, log) if name == "digits_cnn" else reference(name, args.quick, log)
        )
        print(f"{name}: {time.perf_counter() - t0:.0f} s", flush=True)
    print_tables(rows)
    lines = targets_met(rows)
    print("\n" + "\n".join(f"- {line}" for line in lines))
    if args.json:
        for r in rows:
            for side in ("before", "after"):
                r[side].pop("tflite", None)
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 1 if any(line.endswith("MISSED") for line in lines) else 0


if __name__ == "__main__":
    raise SystemExit(main())
