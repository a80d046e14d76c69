"""Latency estimates per board against published TFLite Micro / CMSIS-NN results.

Run: python benchmarks/bench_latency_boards.py            (prints markdown tables)
     python benchmarks/bench_latency_boards.py --write    (re-fits and rewrites the
     CMSIS-NN cost models of targets/latency/ from the committed data first)

The fit set is targets/calibration/mlperf_tiny/measurements.csv (leave-one-out per row);
EK-RA6M4 and EK-RA8D1 (targets/calibration/heldout/) never enter it and are reported as
held out. Needs no model file: the calibration sets ship their op counts.
"""

from __future__ import annotations

import os
import statistics
import sys

from edgeprune.estimates import boardfit
from edgeprune.estimates.calibrate import cost_model_toml
from edgeprune.estimates.latency import latency_dir, load_cost_model
from edgeprune.estimates.measurements import load_measurements

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "targets", "calibration")
FIT_SET = os.path.join(HERE, "mlperf_tiny", "measurements.csv")
HELD_OUT = os.path.join(HERE, "heldout", "measurements.csv")
OLDER = os.path.join(HERE, "mlperf_tiny_v0.5", "measurements.csv")
TARGETS = {"EK-RA6M4": 0.25, "EK-RA8D1": 0.40}  # median |error| to reach, held out
FITTED_TARGET = 0.15

ICOUNT = os.path.join(HERE, "..", "latency", "kernel_counts", "{core}.csv")  # m4f, m55
INTERPRETER_INSTRUCTIONS_PER_OP = 125  # kernel_counts/m4f_models.csv: 121-147 per op
SHAPE = (
    "Per-operator cycles = cycles per instruction x the instructions of CMSIS-NN's kernel "
    "for that class and shape, fitted (edgeprune.estimates.boardfit.kernel_shape) to the "
    "instruction counts of 383 operators of 177 models run under QEMU with -icount "
    "(targets/latency/kernel_counts/m4f.csv: current TFLite Micro + CMSIS-NN, Cortex-M4 "
    "build): per MAC, per output element and per call for the convolutions (1x1 fast "
    "path, im2col, depthwise), fully connected and the recurrent ops (SVDF, LSTM: per "
    "gate output; 7 SVDF and 1 LSTM counted, so that class is thin), per element and per "
    "call for pooling, element-wise, softmax, quantize and reductions, per byte written "
    "and per call for copies, plus 125 instructions of interpreter dispatch per "
    "operator. Classes without counts borrow a kernel's: transpose conv the im2col conv, "
    "batch matmul fully connected, activation and other the element-wise add. One "
    "constant per "
    "core is fitted (cycles per instruction, wait states included) to published MLPerf "
    "Tiny latencies (targets/calibration/mlperf_tiny/: v1.0 microTVM + CMSIS-NN, the same "
    "kernel calls as TFLite Micro's CMSIS-NN build without its dispatch) by "
    "edgeprune.estimates.boardfit. The EK-RA6M4 and EK-RA8D1 results never enter a fit "
    "(targets/calibration/heldout/, benchmarks/bench_latency_boards.py)."
)
COREMARK = "CoreMark/MHz: Cortex-M4 3.40, Cortex-M7 5.01, Cortex-M33 4.02, Cortex-M55 4.2"
DERIVED = {
    # id: (base, core, scalar ratio, MAC ratio, error band, derivation)
    "cmsis-nn_cortex-m7": (
        "cmsis-nn_cortex-m4f",
        "cortex-m7",
        3.40 / 5.01,
        1.0,
        0.5,
        "The Cortex-M4F fit scaled by CoreMark/MHz (M4 3.40 / M7 5.01): the M7 runs the same "
        f"DSP-extension kernels, dual-issue. {COREMARK}. No published TFLite Micro result on "
        "a Cortex-M7 exists in MLPerf Tiny, so the band is the default for an unchecked model.",
    ),
}


M55 = (
    "CMSIS-NN's Helium (MVE) kernels counted instruction by instruction under QEMU "
    "(targets/latency/kernel_counts/m55.csv: the same 383 operators built for a "
    "Cortex-M55, mps3-an547 machine), each class fitted as for the Cortex-M4F "
    "(edgeprune.estimates.boardfit.kernel_shape), times the cycles per instruction "
    "fitted for the Cortex-M33 (the M55's scalar pipeline is of the same class; no "
    "published CMSIS-NN result on a Cortex-M55 exists to fit its own). Ethos-U55 "
    "offload is not modelled. Held out: MLPerf Tiny v1.2 Renesas EK-RA8D1 (Cortex-M85, "
    "Helium, TFLite Micro + CMSIS-NN; see benchmarks/README.md): its largest error, 55 % "
    "(KWS, high), sets the error band, nothing else."
)


def counted(core: str, like: str) -> object:
    """Cost model ``like`` with the shape of ``core``'s kernel counts (in instructions)."""
    from dataclasses import replace

    units, per_output, per_op = boardfit.kernel_shape(ICOUNT.format(core=core))
    return replace(
        load_cost_model(like),
        cycles_per_unit=units,
        cycles_per_output=per_output,
        cycles_per_op=per_op,
        overhead_cycles=INTERPRETER_INSTRUCTIONS_PER_OP,
        cycles_per_activation_byte=0.0,
        cycles_per_weight_byte=0.0,
        float_factor=1.0,
    )


def icount_bases(ids) -> dict:
    """The cost models the fit starts from: the Cortex-M4 build's counts, for every core."""
    from dataclasses import replace

    m4 = counted("m4f", "cmsis-nn_cortex-m4f")
    return {
        i: replace(
            load_cost_model(i),
            cycles_per_unit=m4.cycles_per_unit,
            cycles_per_output=m4.cycles_per_output,
            cycles_per_op=m4.cycles_per_op,
            overhead_cycles=m4.overhead_cycles,
            cycles_per_activation_byte=0.0,
            cycles_per_weight_byte=0.0,
            float_factor=1.0,
        )
        for i in ids
    }


def write_models(fit: boardfit.BoardFit) -> None:
    """Rewrite the fitted and derived CMSIS-NN cost models in targets/latency/."""
    from dataclasses import replace

    models = {i: replace(m, derivation=SHAPE) for i, m in fit.models.items()}
    for model_id, (base, core, scalar, mac, band, text) in DERIVED.items():
        derived = boardfit.derive(models[base], model_id, core, scalar, mac)
        source = f"derived: {base} x {scalar:.4g}, MAC classes x {mac:.4g} more"
        models[model_id] = replace(derived, source=source, derivation=text, stated_error_band=band)
    m33 = "cmsis-nn_cortex-m33"
    m55 = boardfit.scaled(
        counted("m55", "cmsis-nn_cortex-m55"), fit.core_scales[m33], fit.group_scales
    )
    source = f"derived: Cortex-M55 kernel instruction counts x {m33}'s cycles per instruction"
    models["cmsis-nn_cortex-m55"] = replace(
        m55, basis="derived", source=source, derivation=M55, accuracy=None, stated_error_band=0.55
    )
    for model_id, model in models.items():
        header = (
            f"CMSIS-NN on a {model.core}: written by benchmarks/bench_latency_boards.py --write.\n"
            "Re-fit with your own measurements: `edgeprune calibrate`."
        )
        text = cost_model_toml(model, header)
        if model.stated_error_band is not None:
            text = text.replace(
                "\n[cycles_per_unit]",
                f"error_band = {model.stated_error_band:g}\n\n[cycles_per_unit]",
            )
        with open(os.path.join(latency_dir(), f"{model_id}.toml"), "w") as fh:
            fh.write(text)


def table(title: str, rows: list[tuple]) -> dict[str, list[float]]:
    print(f"\n### {title}\n")
    print("| board | model | cost model | measured ms | estimate ms | error |")
    print("|---|---|---|---:|---:|---:|")
    errors: dict[str, list[float]] = {}
    for board, label, model, ms, est in rows:
        err = (est - ms) / ms
        errors.setdefault(board, []).append(abs(err))
        print(f"| {board} | {label} | {model} | {ms:.4g} | {est:.4g} | {err:+.1%} |")
    return errors


def _name(row) -> str:
    return os.path.basename(row.model)  # the table is read anywhere: no local path


def judged(path: str, fitted_points: bool = False) -> list[tuple]:
    """Rows of ``path`` with their estimates; a row marked "(fitted point)" in its source is
    the one measurement a derived model was scaled to, so it is listed apart (it cannot err)."""
    out = []
    for r in load_measurements(path):
        if ("(fitted point)" in (r.source or "")) != fitted_points:
            continue
        est = boardfit.predict_ms(load_cost_model(r.cost_model), r)
        out.append((r.board, _name(r), r.cost_model, r.ms, est))
    return out


def main(argv: list[str]) -> int:
    rows = load_measurements(FIT_SET)
    name = "MLPerf Tiny v1.0 CMSIS-NN"
    if "--write" in argv:  # from the instruction counts, not from the shipped files
        bases = icount_bases({r.cost_model for r in rows})
        write_models(boardfit.fit_boards(rows, bases, set_name=name))
    fit = boardfit.fit_boards(rows, set_name=name)
    rows = [(r.row.board, _name(r.row), r.row.cost_model, r.row.ms, r.loo_ms) for r in fit.rows]
    fitted = table("fitted boards: leave-one-out (each row predicted by a fit without it)", rows)
    held = table("held out: published results no fit used", judged(HELD_OUT))
    table(
        "fitted points: the one measurement a derived model was scaled to (not a check)",
        judged(HELD_OUT, fitted_points=True),
    )
    table("older stack, not fitted: TFLite Micro v2.3.1 (2020), MLPerf Tiny v0.5", judged(OLDER))
    print("\n### per board: median |error| (target)\n")
    ok = True
    for board, errs in {**fitted, **held}.items():
        target = TARGETS.get(board.split()[0], FITTED_TARGET if board in fitted else None)
        med = statistics.median(errs)
        verdict = "" if target is None else (" met" if med <= target else " NOT MET")
        ok &= target is None or med <= target
        limit = "" if target is None else f" (<= {target:.0%}{verdict})"
        print(f"- {board}: {med:.1%}, max {max(errs):.1%}, n = {len(errs)}{limit}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
