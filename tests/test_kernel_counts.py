"""The measured kernel instruction tables (targets/latency/kernel_counts/) and the
scripts that make and read them (benchmarks/kernel_counts/): the tables are whole
and consistent, fit.json is the fit of the committed tables, and the scripts turn
a profiling run's output into rows and kernel classes as CMSIS-NN dispatches."""

import csv
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name):
    path = os.path.join(ROOT, "benchmarks", "kernel_counts", f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"kernel_counts_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fit, run_counts = _script("fit"), _script("run_counts")

TABLES = os.path.join(ROOT, "targets", "latency", "kernel_counts")


def _rows(name):
    with open(os.path.join(TABLES, name)) as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


@pytest.mark.parametrize("core", sorted(run_counts.CORES))
def test_every_core_has_a_table_whose_ops_add_up_to_its_models(core):
    with open(os.path.join(TABLES, f"{core}.csv")) as fh:
        header = "".join(line for line in fh if line.startswith("#"))
    assert "TFLite Micro 90b983c2b, CMSIS-NN 4ab83cc" in header and "QEMU emulator" in header
    ops, models = _rows(f"{core}.csv"), _rows(f"{core}_models.csv")
    assert {r["group"] for r in ops} >= {"sweep", "mlperf_ref", "reference", "digits"}
    assert all(int(r["instructions"]) > 0 for r in ops)
    for model in models:
        mine = [r for r in ops if r["model"] == model["model"]]
        assert len(mine) == int(model["ops"])
        # each op's figure is rounded on its own: at most 1 instruction apart per op
        total = sum(int(r["instructions"]) for r in mine)
        assert abs(total - int(model["kernel_instructions"])) <= len(mine)


def test_fit_json_is_the_fit_of_the_committed_tables():
    with open(os.path.join(TABLES, "fit.json")) as fh:
        shipped = json.load(fh)
    for core, rows in fit.read_rows(TABLES).items():
        for cls, entry in shipped[core].items():
            sweep = [r for r in rows if r["group"] == "sweep" and fit.kernel_class(r) == cls]
            terms, coef = fit.fit_class(sweep, cls)
            assert dict(zip(terms, coef, strict=True)) == pytest.approx(entry["terms"], rel=1e-6)
            assert max(fit.errors(sweep, cls, coef)) == pytest.approx(
                entry["sweep_max_rel_error"], rel=1e-6
            )


def _op(opcode, kernel, core="m4f", out="1x8x8x16", macs=9216):
    return {
        "core": core,
        "opcode": opcode,
        "kernel": kernel,
        "output_shape": out,
        "macs": macs,
        "output_bytes": 1024,
        "elements": 1024,
        "input_bytes": 64,
    }


@pytest.mark.parametrize(
    "opcode, kernel, cls",
    [
        ("CONV_2D", "1x1 s1 16->32", "conv_1x1"),
        ("CONV_2D", "1x1 s2 16->32", "conv_1x1_strided"),
        ("CONV_2D", "10x4 s2 1->64", "conv"),
        ("DEPTHWISE_CONV_2D", "3x3 s2 x1 64", "depthwise_3x3"),
        ("DEPTHWISE_CONV_2D", "5x1 s1 x1 128", "depthwise_opt"),
        ("DEPTHWISE_CONV_2D", "3x3 s2 x8 8", "depthwise_mult4"),
        ("DEPTHWISE_CONV_2D", "3x3 s1 x2 64", "depthwise_generic"),
        ("AVERAGE_POOL_2D", "2x2 s2", "avg_pool"),
        ("SOFTMAX", "", "softmax"),
    ],
)
def test_kernel_class_follows_cmsis_nn_dispatch(opcode, kernel, cls):
    assert fit.kernel_class(_op(opcode, kernel)) == cls


def test_helium_pays_for_whole_lanes():
    # 3x3 conv 1 -> 16 on 8x8: a 9-element patch is one 16-lane vector on the M55
    m4f = fit.features(_op("CONV_2D", "3x3 s1 1->16"), "conv")
    m55 = fit.features(_op("CONV_2D", "3x3 s1 1->16", core="m55"), "conv")
    assert m4f["macs"] == 9216 and m55["macs"] == 9216 * 16 / 9


RUN = """CAL instructions=4000000 ticks=100000
OVERHEAD ticks_per_64=48
MODEL m ops=2 repeats=8 arena_used=900 invoke_ticks=1000
OP m 0 3 400
OP m 1 22 560
FAIL other invoke
END failures=1
"""


def test_a_profiling_run_becomes_instructions_per_op():
    manifest = {
        "m": {
            "group": "sweep",
            "ops": [
                {k: 1 for k in run_counts.FIELDS[4:14]} | {"index": 0, "opcode": "CONV_2D"},
                {k: 1 for k in run_counts.FIELDS[4:14]} | {"index": 1, "opcode": "RESHAPE"},
            ],
        }
    }
    rows, models = run_counts.rows_for("m4f", manifest, RUN)
    # 40 instructions per tick; 400 ticks over 8 invokes, less 0.75 tick of trampoline
    assert [r["instructions"] for r in rows] == [(50 - 0.75) * 40, (70 - 0.75) * 40]
    assert [r["opcode"] for r in rows] == ["CONV_2D", "RESHAPE"]
    assert models[0]["invoke_instructions"] == 5000
    # the 40 ticks the kernels did not take, per invoke and op, plus the trampoline
    assert models[0]["interpreter_instructions_per_op"] == 5 / 2 * 40 + 30


def test_an_unfinished_run_is_refused():
    with pytest.raises(RuntimeError, match="did not finish"):
        run_counts.parse(RUN.replace("END failures=1\n", ""))
