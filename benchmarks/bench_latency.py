"""Latency estimates against measurements: leave-one-out on the calibration sets, and the
held-out published results no fit has seen. Run: python benchmarks/bench_latency.py

Prints markdown tables. Needs no model file: the calibration sets ship their op counts.
The per-board table of the CMSIS-NN models (fit, held-out boards, targets) is
bench_latency_boards.py's; this script keeps the single-set calibrations (the 2020 MLPerf
Tiny v0.5 reference, pico-tflmicro's per-operator times) as `edgeprune calibrate` fits them.
"""

from __future__ import annotations

import os
import statistics

from edgeprune.estimates import calibrate as cal
from edgeprune.estimates.latency import load_cost_model
from edgeprune.estimates.measurements import load_measurements

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "targets", "calibration")


def loo(name: str, params: tuple[str, ...]) -> None:
    result = cal.calibrate(
        load_measurements(os.path.join(HERE, name, "measurements.csv")), params=params
    )
    a = result.accuracy
    print(f"\n### {name}: leave-one-out ({', '.join(params)})\n")
    print("| board | measurement | measured ms | left-out estimate ms | error |")
    print("|---|---|---:|---:|---:|")
    for r in result.rows:
        print(
            f"| {r.row.board} | {r.row.label} | {r.row.ms:.4g} | {r.loo_ms:.4g} | "
            f"{r.loo_error:+.1%} |"
        )
    print(f"\nmedian |error| {a.median_abs_error:.1%}, max {a.max_abs_error:.1%}, n = {a.n}")


def heldout() -> None:
    rows = load_measurements(os.path.join(HERE, "heldout", "measurements.csv"))
    print("\n### held out: published results no fit used\n")
    print("| board | model | cost model | measured ms | estimate ms | error |")
    print("|---|---|---|---:|---:|---:|")
    errors: dict[str, list[float]] = {}
    for r in rows:
        est = cal.predict_ms(load_cost_model(r.cost_model), r)
        err = (est - r.ms) / r.ms
        errors.setdefault(r.cost_model, []).append(abs(err))
        print(f"| {r.board} | {r.label} | {r.cost_model} | {r.ms:.4g} | {est:.4g} | {err:+.1%} |")
    print()
    for model, errs in errors.items():
        print(f"- {model}: median |error| {statistics.median(errs):.1%}, max {max(errs):.1%}")


if __name__ == "__main__":
    loo("mlperf_tiny_v0.5", cal.DEFAULT_FIT)
    loo("rp2040_person_detect", ("classes", "activation"))
    heldout()
