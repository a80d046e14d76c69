"""What `calibrate` refuses and warns about (issue 15): a fit over the error
thresholds, float and integer rows mixed, rows named by full path, and zero or
missing times that are never rows."""

from __future__ import annotations

import json
import math
import os
import shutil

import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.estimates import calibrate as cal
from edgeprune.estimates.measurements import (
    CalibrationError,
    load_measurements,
    measurement_row,
)

MLPERF = os.path.join(os.path.dirname(__file__), "..", "targets", "calibration", "mlperf_tiny_v0.5")
HEADER = "model,op,ms,clock_hz,cost_model,board,source\n"
SHIPPED_MS = {"kws_ref": 181.917, "vww_ref": 600.601, "ic_ref": 704.225, "ad_ref": 10.052}


def _set(folder, ms=None, names=SHIPPED_MS, json_of=None) -> str:
    """A measurements CSV in ``folder`` over copies of the MLPerf op counts."""
    os.makedirs(folder, exist_ok=True)
    rows = []
    for name, shipped in names.items():
        src = os.path.join(MLPERF, f"{(json_of or {}).get(name, name)}.json")
        shutil.copy(src, os.path.join(folder, f"{name}.json"))
        value = (ms or {}).get(name, shipped)
        rows.append(f"{name}.json,,{value},120000000,cmsis-nn_cortex-m4f,B,s\n")
    path = os.path.join(folder, "m.csv")
    with open(path, "w") as fh:
        fh.write(HEADER + "".join(rows))
    return path


def _as_float(path: str) -> None:
    """Rewrite an op-cost file as the float32 model of the same shapes."""
    with open(path) as fh:
        body = json.load(fh)
    for op in body["ops"]:
        op["dtype"] = op["weight_dtype"] = "float32"
    with open(path, "w") as fh:
        json.dump(body, fh)


def test_the_shipped_fit_is_within_the_thresholds_and_warns_nothing(tmp_path):
    result = cal.calibrate_file(_set(str(tmp_path)), out=str(tmp_path / "fit.toml"))
    assert result.warnings == ()
    assert "WARNING" not in (tmp_path / "fit.toml").read_text()


def test_a_fit_over_the_thresholds_warns_on_stderr_and_in_the_file(tmp_path):
    # the image classifier measured 6x slower than it was: no two-constant fit follows it
    csv = _set(str(tmp_path), ms={"ic_ref": 704.225 * 6})
    out = tmp_path / "fit.toml"
    r = CliRunner().invoke(main, ["calibrate", csv, "--out", str(out)])
    assert r.exit_code == 0, r.output
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("edgeprune: warning: ")]
    assert len(warnings) == 2, r.stderr
    assert "median leave-one-out error is" in warnings[0] and "(over 25%)" in warnings[0]
    worst = max(cal.calibrate_file(csv).rows, key=lambda r: abs(r.loo_error))
    assert f"the fit misses {tmp_path / worst.row.model} by {worst.loo_error:+.0%}" in warnings[1]
    assert "(over 50%)" in warnings[1]
    assert "(over the warning thresholds: median 25%, max 50%" in r.stdout
    text = out.read_text()
    assert text.count("# WARNING: ") == 2 and "the fit misses" in text
    assert cal.load_cost_model(str(out)).accuracy.median_abs_error > cal.WARN_MEDIAN_ERROR


def test_float_and_integer_rows_are_refused_together_with_the_fix(tmp_path):
    csv = _set(
        str(tmp_path), names={**SHIPPED_MS, "kws_f32": 900.0}, json_of={"kws_f32": "kws_ref"}
    )
    _as_float(str(tmp_path / "kws_f32.json"))
    with pytest.raises(CalibrationError) as info:
        cal.calibrate(load_measurements(csv))
    assert str(info.value) == (
        f"the rows mix float models ({tmp_path / 'kws_f32.json'} (line 6)) and integer ones "
        f"({tmp_path / 'kws_ref.json'} (line 2) and 3 more), whose kernels run at other "
        f"rates; put each kind in its own measurements file and calibrate them apart"
    )


def test_a_float_set_alone_calibrates(tmp_path):
    csv = _set(str(tmp_path))
    for name in SHIPPED_MS:
        _as_float(str(tmp_path / f"{name}.json"))
    rows = load_measurements(csv)
    assert {r.kind for r in rows} == {"float"}
    assert cal.calibrate(rows).accuracy.n == 4


def test_quantize_ops_at_a_float_interface_leave_a_model_integer(tmp_path):
    csv = _set(str(tmp_path), names={"kws_ref": 181.917})
    path = tmp_path / "kws_ref.json"
    body = json.loads(path.read_text())
    body["ops"][0] = {**body["ops"][0], "op_class": "quantize", "dtype": "float32", "macs": 0}
    path.write_text(json.dumps(body))
    assert load_measurements(csv)[0].kind == "int"


def test_rows_are_named_by_full_path_not_base_name(tmp_path):
    """Two folders' kws_ref.json stay two rows in the table."""
    _set(str(tmp_path / "a"))
    _set(str(tmp_path / "b"))
    csv = tmp_path / "both.csv"
    rows = [
        f"{d}/{n}.json,,{ms},120000000,cmsis-nn_cortex-m4f,B,s\n"
        for d in "ab"
        for n, ms in SHIPPED_MS.items()
    ]
    csv.write_text(HEADER + "".join(rows))
    labels = [m.label for m in load_measurements(str(csv))]
    assert labels[0] == str(tmp_path / "a" / "kws_ref.json")
    assert labels[4] == str(tmp_path / "b" / "kws_ref.json")
    assert len(set(labels)) == 8


@pytest.mark.parametrize(
    "ms,message",
    [
        ("", "row 2: ms is missing; a zero or missing time is not a measurement"),
        ("0", "row 2: ms = 0; a zero or missing time is not a measurement"),
        ("-1", "row 2: ms = -1; a zero or missing time is not a measurement"),
        ("nan", "row 2: ms = nan; a zero or missing time is not a measurement"),
    ],
)
def test_zero_or_missing_times_in_a_file_are_refused_by_row(tmp_path, ms, message):
    csv = _set(str(tmp_path), names={"kws_ref": 1})
    with open(csv, "w") as fh:
        fh.write(HEADER + f"kws_ref.json,,{ms},120000000,cmsis-nn_cortex-m4f,B,s\n")
    with pytest.raises(CalibrationError, match=message):
        load_measurements(csv)


@pytest.mark.parametrize("ms", [0, 0.0, -2.5, math.nan, math.inf, None])
def test_no_row_is_ever_built_from_a_zero_or_missing_time(ms):
    with pytest.raises(CalibrationError, match="is not a measurement"):
        measurement_row("m.tflite", ms, 64_000_000, "cmsis-nn_cortex-m4f", "board", "s")
    assert measurement_row("m.tflite", 1.5, 64_000_000, "x", "b", "s")["ms"] == "1.5"
