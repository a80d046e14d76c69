"""The host profile: latency measured on this machine with ai-edge-litert, and
the estimate's plumbing (op costs -> cost model -> ms) checked against it."""

from __future__ import annotations

import csv
import json
import os
import re

import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.estimates import calibrate as cal
from edgeprune.estimates.latency import load_cost_model
from edgeprune.estimates.measurements import COLUMNS, load_measurements
from edgeprune.target import load_target

HOST_SET = os.path.join(
    os.path.dirname(__file__), "..", "targets", "calibration", "host_x86-64", "measurements.csv"
)


def invoke(*args):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def host_models(tmp_path_factory):
    """Four int8 models whose MACs span 50x: MLPerf Tiny architectures, untrained."""
    from edgeprune.models import mlperf_tiny as mt

    from edgeprune.adapters.converter import to_tflite

    folder = tmp_path_factory.mktemp("host_models")
    specs = {
        "ds_cnn": mt.ds_cnn(),
        "resnet8": mt.resnet8(),
        "resnet8_f8": mt.resnet8(filters=8),
        "autoencoder": mt.autoencoder(),
    }
    shapes = {
        "ds_cnn": ((49, 10, 1), 12),
        "resnet8": ((32, 32, 3), 10),
        "resnet8_f8": ((32, 32, 3), 10),
        "autoencoder": ((640,), None),
    }
    paths = []
    for name, model in specs.items():
        x, _ = mt.synthetic_data(*shapes[name], n=16)
        path = folder / f"{name}.tflite"
        path.write_bytes(to_tflite(model, "int8", x))
        paths.append(str(path))
    return paths


@pytest.mark.slow
def test_measure_writes_rows_calibrate_reads(host_models, tmp_path):
    out = tmp_path / "host.csv"
    r = invoke("measure", *host_models[:2], "--out", str(out), "--runs", "20")
    assert r.exit_code == 0, r.output
    assert "wrote 2 rows" in r.output
    r = invoke("measure", *host_models[2:], "--out", str(out), "--runs", "20", "--append")
    assert r.exit_code == 0, r.output
    rows = load_measurements(str(out))
    assert [os.path.basename(r.model) for r in rows] == [os.path.basename(p) for p in host_models]
    assert {r.cost_model for r in rows} == {"xnnpack_x86-64"}
    assert all(r.ms > 0 and r.clock_hz > 0 and r.op is None for r in rows)
    assert all("median of 20 invokes" in r.source for r in rows)
    # a model with 50x the MACs of another is measurably slower
    by_name = {os.path.basename(r.model): r.ms for r in rows}
    assert by_name["resnet8.tflite"] > 2 * by_name["autoencoder.tflite"]

    # refusing to clobber, and refusing an MCU profile
    r = invoke("measure", host_models[0], "--out", str(out))
    assert r.exit_code == 1 and "--append" in r.output
    r = invoke("measure", host_models[0], "--target", "nano33ble")
    assert r.exit_code == 1 and "--target host" in r.output


@pytest.mark.slow
def test_estimate_fitted_here_predicts_a_fresh_measurement(host_models, tmp_path):
    """The plumbing against reality: fit on this machine's measurements of three
    models, then `check --target host` measures the fourth afresh and prints the
    estimate beside it. Loose bounds: a shared machine's timing is noisy."""
    csv_path = tmp_path / "fit.csv"
    train, held = [host_models[i] for i in (0, 1, 3)], host_models[2]
    assert invoke("measure", *train, "--out", str(csv_path), "--runs", "30").exit_code == 0
    model_path = tmp_path / "here.toml"
    r = invoke("calibrate", str(csv_path), "--fit", "mac,overhead", "--out", str(model_path))
    assert r.exit_code == 0, r.output
    fitted = load_cost_model(str(model_path))
    assert fitted.cycles_per_unit["conv"] > 0 and fitted.accuracy.n == 3

    report = tmp_path / "check.json"
    r = invoke(
        "check", held, "--target", "host", "--cost-model", str(model_path), "--report", str(report)
    )
    assert r.exit_code == 0, r.output
    result = json.loads(report.read_text())["check"]
    latency = next(x for x in result["rules"] if x["name"] == "latency")
    measured = result["evidence"]["latency_measured"]["p50_ms"]
    estimated = result["evidence"]["latency"]["ms"]
    assert latency["figure"] == pytest.approx(measured)  # the rule uses the measurement
    assert "MEASURED" in latency["evidence"] and "estimates" in latency["evidence"]
    print(
        f"held-out {os.path.basename(held)}: estimated {estimated:.4g} ms, measured "
        f"{measured:.4g} ms"
    )
    assert 0.5 <= estimated / measured <= 2.0
    assert load_target("host").budget.max_latency_ms is None  # reported, not judged
    assert latency["ok"] and latency["budget"] is None


def test_shipped_host_calibration_meets_the_target_and_matches_the_shipped_fit():
    rows = load_measurements(HOST_SET)
    with open(HOST_SET) as fh:
        header = next(csv.reader(ln for ln in fh if not ln.startswith("#")))
    assert header == list(COLUMNS)
    shipped = load_cost_model("xnnpack_x86-64")
    result = cal.calibrate(rows, shipped, ("mac", "activation", "overhead"))
    assert len(rows) == 10 and shipped.accuracy.n == 10
    assert result.accuracy.median_abs_error <= 0.20
    assert result.accuracy.max_abs_error <= 0.50
    # fitting the shipped constants again changes nothing
    assert result.model.cycles_per_unit["conv"] == pytest.approx(
        shipped.cycles_per_unit["conv"], rel=1e-4
    )
    assert result.model.cycles_per_activation_byte == pytest.approx(
        shipped.cycles_per_activation_byte, rel=1e-4
    )
    assert result.accuracy.median_abs_error == pytest.approx(
        shipped.accuracy.median_abs_error, rel=1e-4
    )


def test_host_profile_says_it_measures():
    r = invoke("targets", "show", "host")
    assert r.exit_code == 0
    assert re.search(r"latency\s+measured on this machine", r.output)
    assert "xnnpack_x86-64 (fitted; leave-one-out error median" in r.output
