"""Latency estimates, cost-model files, and calibration by leave-one-out."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from edgeprune.estimates import calibrate as cal
from edgeprune.estimates.latency import (
    CostModel,
    CostModelError,
    estimate,
    list_cost_models,
    load_cost_model,
    parse_cost_model,
)
from edgeprune.estimates.measurements import CalibrationError, Measurement, load_measurements
from edgeprune.estimates.opcost import CLASSES, MAC_CLASSES, ModelCost, OpCost
from edgeprune.target import list_targets, load_target

MLPERF = os.path.join(
    os.path.dirname(__file__),
    "..",
    "targets",
    "calibration",
    "mlperf_tiny_v0.5",
    "measurements.csv",
)


def _op(index, cls, macs=0, elements=0, act=(0, 0), weights=0, dtype="int8"):
    return OpCost(
        index,
        "OP",
        f"layer{index}",
        cls,
        dtype,
        "int8",
        macs,
        elements,
        weights,
        act[0],
        act[1],
        "",
    )


def _model(**kw) -> CostModel:
    units = {c: (2.0 if c in MAC_CLASSES else 0.5) for c in CLASSES}
    base = dict(
        id="t",
        kernels="cmsis-nn",
        core="cortex-m4f",
        basis="fit",
        source="test",
        overhead_cycles=100.0,
        cycles_per_unit=units,
        cycles_per_activation_byte=3.0,
    )
    base.update(kw)
    return CostModel(**base)


def test_estimate_is_overhead_plus_throughput_over_the_clock():
    cost = ModelCost(
        None,
        (
            _op(0, "conv", macs=1000, elements=10, act=(50, 10)),
            _op(1, "softmax", elements=10, act=(10, 10)),
        ),
    )
    est = estimate(cost, _model(), 1_000_000, power_mw=20.0)
    conv = 100 + 1000 * 2.0 + 60 * 3.0
    soft = 100 + 10 * 0.5 + 20 * 3.0
    assert [o.cycles for o in est.ops] == [conv, soft]
    assert est.ms == pytest.approx((conv + soft) / 1e3)
    assert est.energy_uj == pytest.approx(est.ms * 20.0)  # mW x ms = uJ
    assert [o.index for o in est.top(1)] == [0]


def test_threads_divide_only_the_throughput_term():
    cost = ModelCost(None, (_op(0, "conv", macs=1000),))
    one = estimate(cost, _model(parallel_efficiency=0.5), 1_000_000, threads=1)
    four = estimate(cost, _model(parallel_efficiency=0.5), 1_000_000, threads=4)
    assert one.ops[0].cycles == 100 + 2000
    assert four.ops[0].cycles == pytest.approx(100 + 2000 / 2.5)


def test_float_ops_cost_the_float_factor():
    m = _model(float_factor=3.0, overhead_cycles=0.0, cycles_per_activation_byte=0.0)
    cost = ModelCost(None, (_op(0, "conv", macs=10, dtype="float32"),))
    assert estimate(cost, m, 1000).ops[0].cycles == 60


def test_every_shipped_cost_model_loads_and_every_target_has_one():
    ids = list_cost_models()
    for name in ids:
        m = load_cost_model(name)
        assert m.source and (m.derivation or m.basis == "fit"), name
        assert all(v >= 0 for v in m.cycles_per_unit.values())
    for t in map(load_target, list_targets()):
        assert t.latency.cost_model_id(t) in ids, t.id
        if t.latency.active_power_mw is not None:
            assert t.latency.power_source


@pytest.mark.parametrize(
    "change,message",
    [
        ({"cycles_per_unit": {"conv": 1.0}}, "lacks"),
        ({"overhead_cycles": -1}, "must be >= 0"),
        ({"bogus": 1}, "unknown key 'bogus'"),
        ({"basis": "guess"}, "is not one of"),
        ({"parallel_efficiency": 1.5}, "must be <= 1"),
    ],
)
def test_bad_cost_model_files_are_refused(change, message):
    data = {
        "kernels": "k",
        "core": "c",
        "basis": "fit",
        "source": "s",
        "overhead_cycles": 0,
        "cycles_per_unit": {c: 1.0 for c in CLASSES},
    }
    data.update(change)
    with pytest.raises(CostModelError, match=message):
        parse_cost_model(data, "x.toml", "x")


def _rows(model: CostModel, costs: list[ModelCost], clock: int = 100_000_000):
    rows = []
    for i, c in enumerate(costs):
        ms = estimate(c, model, clock).ms
        rows.append(
            Measurement(i + 1, f"m{i}.tflite", None, ms, clock, model.id, "board", "synthetic", c)
        )
    return rows


def test_calibration_recovers_the_constants_that_made_the_data():
    truth = _model(
        overhead_cycles=0.0,
        cycles_per_unit={c: (4.0 if c in MAC_CLASSES else 0.0) for c in CLASSES},
        cycles_per_activation_byte=9.0,
    )
    costs = [
        ModelCost(None, (_op(0, "conv", macs=m, act=(a, a)),))
        for m, a in ((1000, 10), (5000, 300), (200, 900), (7000, 7000))
    ]
    prior = replace(
        truth, cycles_per_unit={c: 1.0 for c in CLASSES}, cycles_per_activation_byte=0.0
    )
    result = cal.calibrate(_rows(truth, costs), prior, ("mac", "activation"), "synthetic")
    assert result.model.cycles_per_unit["conv"] == pytest.approx(4.0)
    assert result.model.cycles_per_activation_byte == pytest.approx(9.0)
    assert result.accuracy.max_abs_error < 1e-9  # exact data: every left-out row is exact
    assert result.model.basis == "fit" and "synthetic" in result.model.source


def test_fit_keeps_constants_non_negative():
    truth = _model(overhead_cycles=0.0, cycles_per_activation_byte=0.0)
    costs = [
        ModelCost(None, (_op(0, "conv", macs=m, act=(a, 0)),))
        for m, a in ((1000, 1), (2000, 5000), (3000, 2))
    ]
    rows = _rows(truth, costs)
    rows[1] = replace(rows[1], ms=rows[1].ms * 0.5)  # more activation bytes, less time
    fitted = cal.fit(rows, truth, ("mac", "activation"))
    assert fitted.cycles_per_activation_byte >= 0 and fitted.cycles_per_unit["conv"] > 0


def test_older_mlperf_set_still_calibrates_within_its_quoted_error():
    # TFLite Micro v2.3.1 (2020): no shipped model is fitted to it any more (see
    # test_latency_boards.py), but `edgeprune calibrate` must still fit it.
    rows = load_measurements(MLPERF)
    assert [r.board for r in rows] == ["NUCLEO-L4R5ZI"] * 4
    assert all(r.source.startswith("https://github.com/mlcommons/tiny_results_v0.5/") for r in rows)
    result = cal.calibrate(rows)
    assert result.accuracy.median_abs_error <= 0.20
    assert result.accuracy.max_abs_error <= 0.50


def _csv(tmp_path, body: str) -> str:
    path = tmp_path / "m.csv"
    path.write_text("# comment\nmodel,op,ms,clock_hz,cost_model,board,source\n" + body)
    return str(path)


@pytest.mark.parametrize(
    "body,message",
    [
        ("kws.json,,abc,1,x,b,s\n", "must be numbers"),
        ("kws.json,,-1,1,x,b,s\n", "zero or missing time is not a measurement"),
        ("kws.json,99,1,1,x,b,s\n", "not an operator index"),
        ("missing.json,,1,1,x,b,s\n", "cannot read the op costs"),
    ],
)
def test_bad_measurement_rows_name_the_row(tmp_path, body, message):
    import shutil

    shutil.copy(os.path.join(os.path.dirname(MLPERF), "kws_ref.json"), tmp_path / "kws.json")
    with pytest.raises(CalibrationError, match=message):
        load_measurements(_csv(tmp_path, body))


def test_missing_column_and_too_few_rows(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("model,ms\nx,1\n")
    with pytest.raises(CalibrationError, match="missing column"):
        load_measurements(str(path))
    rows = load_measurements(MLPERF)[:2]
    with pytest.raises(CalibrationError, match="cannot fit 2 parameters"):
        cal.calibrate(rows)


def test_written_cost_model_reads_back_identically(tmp_path):
    shipped = load_cost_model("cmsis-nn_cortex-m4f")
    path = tmp_path / "again.toml"
    path.write_text(cal.cost_model_toml(shipped, "header line"))
    again = load_cost_model(str(path))
    assert replace(again, id=shipped.id, path=shipped.path) == shipped
