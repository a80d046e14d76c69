"""Measure a set of int8 models on this machine and fit the host's XNNPACK cost model.

    .venv/bin/python benchmarks/calibrate_host.py            # print the fit only
    .venv/bin/python benchmarks/calibrate_host.py --write    # also update the shipped files

The set: the four MLPerf Tiny reference architectures (models/mlperf_tiny.py),
width variants of them, and the digits CNN, converted to full-integer int8 with
generated calibration data (the weights are untrained: XNNPACK's time does not
depend on their values). Each is timed with ``edgeprune measure`` semantics
(median of ``--runs`` invokes, XNNPACK, one thread), in ``--rounds``
interleaved rounds whose median is kept: a shared 2-core machine has slow
spells that one round would take for the model's speed and the cost model's
one scale on every MAC class, a cost per byte of activations and a fixed cost
per operator are fitted to them by
``edgeprune calibrate``, which prints the leave-one-out error.

``--write`` stores the measurements (``measurements.csv`` with per-model op
costs as ``.json``, no models) in ``targets/calibration/host_x86-64/`` and the
fitted constants in ``targets/latency/xnnpack_x86-64.toml``: what the ``host``
profile prints beside its measured latency. Run it on the machine whose
numbers you want; nothing here is downloaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import sys
import tempfile

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SET_DIR = os.path.join(ROOT, "targets", "calibration", "host_x86-64")
MODEL_OUT = os.path.join(ROOT, "targets", "latency", "xnnpack_x86-64.toml")
FIT = ("mac", "activation", "overhead")  # per-class rates would overfit 10 rows


def model_set():
    """(name, keras model, calibration samples) for every model of the set."""
    from edgeprune.models import digits_cnn
    from edgeprune.models import mlperf_tiny as mt

    def sample(shape, n_classes):
        return mt.synthetic_data(shape, n_classes, n=32)[0]

    out = []
    for name, (build, shape, n_classes) in mt.REFERENCE.items():
        out.append((name, build(), sample(shape, n_classes)))
    out.append(("mobilenet_v1_a050", mt.mobilenet_v1(alpha=0.5), sample((96, 96, 3), 2)))
    out.append(("mobilenet_v1_a025_64px", mt.mobilenet_v1((64, 64, 3)), sample((64, 64, 3), 2)))
    out.append(("resnet8_f8", mt.resnet8(filters=8), sample((32, 32, 3), 10)))
    out.append(("resnet8_f32", mt.resnet8(filters=32), sample((32, 32, 3), 10)))
    out.append(("autoencoder_128", mt.autoencoder((128,)), sample((128,), None)))
    out.append(("digits_cnn", digits_cnn.build(), sample((8, 8, 1), 10)))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=200, help="timed invokes per model")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds per model")
    ap.add_argument("--write", action="store_true", help="update the shipped calibration files")
    args = ap.parse_args()

    from edgeprune.adapters.converter import to_tflite
    from edgeprune.estimates import calibrate as cal
    from edgeprune.estimates.latency import load_cost_model
    from edgeprune.estimates.measurements import (
        load_measurements,
        measurement_row,
        write_measurements,
    )
    from edgeprune.estimates.opcost import model_cost
    from edgeprune.presentation.calibration import format_calibration
    from edgeprune.runners.host import measure_latency
    from edgeprune.target import load_target

    host = load_target("host")
    today = datetime.date.today().isoformat()
    work = SET_DIR if args.write else tempfile.mkdtemp(prefix="edgeprune-host-cal-")
    os.makedirs(work, exist_ok=True)
    rows = []
    models = []
    for name, model, samples in model_set():
        data = to_tflite(model, "int8", samples)
        cost = model_cost(data)
        with open(os.path.join(work, f"{name}.json"), "w") as fh:
            json.dump(dataclasses.replace(cost, path=f"{name}.tflite").to_dict(), fh, indent=1)
        models.append((name, data, cost))
    rounds: dict[str, list] = {name: [] for name, _, _ in models}
    for _ in range(args.rounds):
        for name, data, _ in models:
            rounds[name].append(
                measure_latency(data, host.kernels, host.latency.threads, runs=args.runs)
            )
    for name, _, cost in models:
        m = sorted(rounds[name], key=lambda r: r.p50_ms)[len(rounds[name]) // 2]
        ms = m.p50_ms
        print(
            f"{name:24s} {cost.macs:>12,} MACs {ms:9.4f} ms  (rounds: "
            f"{', '.join(f'{r.p50_ms:.4g}' for r in rounds[name])})",
            flush=True,
        )
        rows.append(
            measurement_row(
                f"{name}.json",
                ms,
                host.clock_hz,
                "xnnpack_x86-64",
                m.where,
                f"benchmarks/calibrate_host.py, {today}: median of {args.rounds} rounds, this one "
                f"{m.text}",
            )
        )
    csv_path = os.path.join(work, "measurements.csv")
    write_measurements(
        csv_path,
        rows,
        (
            f"The host's XNNPACK timings, measured by benchmarks/calibrate_host.py on {today}.\n"
            f"Untrained int8 models built from models/ (MLPerf Tiny reference architectures,\n"
            f"width variants, the digits CNN); the .json files are their op costs."
        ),
        "",
    )
    base = load_cost_model("xnnpack_cortex-a72")  # the shape of an XNNPACK model: one rate
    base = dataclasses.replace(base, id="xnnpack_x86-64", core="x86-64", derivation="")
    result = cal.calibrate(
        load_measurements(csv_path), base, FIT, f"host_x86-64 ({len(rows)} int8 models)"
    )
    print()
    print(format_calibration(result))
    if args.write:
        fitted = dataclasses.replace(
            result.model,
            derivation=(
                "Fitted on this project's reference host (AMD EPYC with AVX-512 VNNI, 2 cores) to "
                "int8 models only: float_factor and parallel_efficiency are the Cortex-A72 "
                "model's, not measured here. On another x86-64 machine, re-run "
                "benchmarks/calibrate_host.py --write, or `edgeprune measure` and "
                "`edgeprune calibrate`."
            ),
        )
        with open(MODEL_OUT, "w") as fh:
            fh.write(
                cal.cost_model_toml(
                    fitted,
                    (
                        "XNNPACK (ai-edge-litert's default delegate) on this project's x86-64 "
                        "host: fitted by\nbenchmarks/calibrate_host.py --write to "
                        "targets/calibration/host_x86-64/measurements.csv."
                    ),
                )
            )
        print(f"\nwrote {csv_path} and {MODEL_OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
