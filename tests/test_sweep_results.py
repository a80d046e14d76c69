"""sweep.json, results.csv and the printed front from hand-made trials (no optuna, no TF)."""

from __future__ import annotations

import csv
import io
import json

import pytest

from edgeprune.errors import BadInputError
from edgeprune.sweep.results import (
    format_front,
    reference_from_run,
    results_csv,
    sweep_document,
    write_results,
)


def _trial(number, accuracy, latency, feasible=True, state="COMPLETE", error=None):
    complete = state == "COMPLETE"
    return {
        "number": number,
        "state": state,
        "params": {"width": 0.5, "importance": "l1"},
        "values": {"accuracy": accuracy, "latency_ms": latency, "flash_bytes": 190000}
        if complete
        else None,
        "feasible": feasible if complete else None,
        "failed_rules": [] if feasible or not complete else ["latency"],
        "error": error,
        "folder": f"trials/{number:04d}" if complete else None,
        "seconds": 5.0,
        "fine_tune_seconds": 3.0 if complete else None,
        "retry_of": None,
    }


HEADER = {
    "study": "digits_cnn_nano33ble",
    "storage": "study.db",
    "identity": {"objectives": ["accuracy", "latency_ms"]},
    "budgets": {"latency_ms": 12.0},
    "reference": {"label": "run --structured fit", "values": {"accuracy": 0.96, "latency_ms": 9.5}},
    "export_command": "edgeprune sweep export {number} --sweep sw --out build/t{number}",
}
TRIALS = [
    _trial(0, 0.97, 8.0),
    _trial(1, 0.99, 20.0, feasible=False),
    _trial(2, 0.95, 4.0),
    _trial(3, 0.94, 6.0),
    _trial(4, None, None, state="FAIL", error="writing x failed (No space left on device)"),
]


def test_document_follows_the_contract_and_computes_the_front(tmp_path):
    doc = sweep_document(HEADER, TRIALS)
    assert doc["schema"] == "edgeprune-sweep/1"
    assert doc["metric"] == {"name": "accuracy", "direction": "maximize"}
    assert doc["objectives"][1] == {
        "key": "latency_ms",
        "label": "latency (estimate)",
        "unit": "ms",
        "direction": "minimize",
    }
    assert doc["front"] == [0, 2]  # 1 is over budget, 3 is dominated by 2, 4 failed
    write_results(str(tmp_path), doc)
    assert json.loads((tmp_path / "sweep.json").read_text()) == doc
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_results_csv_has_one_row_per_trial_with_every_column():
    rows = list(csv.DictReader(io.StringIO(results_csv(TRIALS))))
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert rows[1]["feasible"] == "false" and rows[1]["failed_rules"] == "latency"
    assert rows[4]["state"] == "FAIL" and "No space left" in rows[4]["error"]
    assert rows[0]["width"] == "0.5" and rows[0]["latency_ms"] == "8" and rows[4]["folder"] == ""


def test_printed_front_shows_each_front_trial_its_export_and_the_reference():
    text = format_front(sweep_document(HEADER, TRIALS))
    lines = text.splitlines()
    assert lines[0] == (
        "Pareto front of digits_cnn_nano33ble (2 of 4 complete trials: 3 feasible, 1 failed):"
    )
    assert lines[1].split()[:5] == ["trial", "accuracy", "(max)", "latency", "(estimate)"]
    assert lines[3].startswith("0 ") and lines[3].endswith("--out build/t0")  # most accurate first
    assert lines[4].startswith("2 ") and "4.00 ms" in lines[4]
    assert lines[5] == "reference (run --structured fit): accuracy 0.9600, latency_ms 9.50 ms"
    empty = format_front(sweep_document({**HEADER, "reference": None}, TRIALS[1:2]))
    assert "no feasible trial yet: every trial missed a budget or failed" in empty


def test_reference_from_a_run_folder(tmp_path):
    report = {
        "recipe": {"structured": {"goal": "fit"}},
        "sizes": {"final": {"gzip_bytes": 12000}},
        "stages": {
            "evaluate": {"final": {"accuracy": 0.97, "macro_f1": 0.96}},
            "check": {
                "rules": [{"name": "latency", "figure": 9.5}, {"name": "flash", "figure": 4}]
            },
        },
    }
    (tmp_path / "report.json").write_text(json.dumps(report))
    ref = reference_from_run(str(tmp_path))
    assert ref == {
        "label": "run --structured fit",
        "values": {
            "accuracy": 0.97,
            "macro_f1": 0.96,
            "latency_ms": 9.5,
            "flash_bytes": 4,
            "ram_bytes": None,
            "gzip_bytes": 12000,
        },
    }
    with pytest.raises(BadInputError, match="holds no run report with a device check"):
        reference_from_run(str(tmp_path / "missing"))


def test_a_repeated_point_is_found_and_listed_once_on_the_front():
    import optuna

    from edgeprune.sweep.study import _same_params

    width = optuna.distributions.FloatDistribution(0.25, 1.0, step=0.05)
    study = optuna.create_study(directions=["maximize", "minimize"])
    study.add_trial(
        optuna.trial.create_trial(
            params={"width": 0.5},
            distributions={"width": width},
            values=[0.9, 5.0],
            user_attrs={"constraints": [0.0] * 5},
        )
    )
    study.enqueue_trial({"width": 0.5})
    again = study.ask()
    again.suggest_float("width", 0.25, 1.0, step=0.05)
    assert _same_params(again).number == 0
    study.enqueue_trial({"width": 0.75})
    new = study.ask()
    new.suggest_float("width", 0.25, 1.0, step=0.05)
    assert _same_params(new) is None
    repeat = {**_trial(5, 0.97, 8.0), "duplicate_of": 0}
    assert sweep_document(HEADER, [*TRIALS, repeat])["front"] == [0, 2]


def test_export_reads_sweep_json_through_the_one_checked_reader(tmp_path):
    """A damaged or foreign sweep.json is refused by export with the messages the
    sweep's page gives (one reader, sweep.results.read_sweep)."""
    from edgeprune.sweep.export import export_trial

    (tmp_path / "sweep.json").write_text('{"schema": "edgeprune-sweep/0", "trials": []}')
    with pytest.raises(BadInputError, match="has sweep schema edgeprune-sweep/0; this edgeprune"):
        export_trial(0, str(tmp_path), str(tmp_path / "out"))
    (tmp_path / "sweep.json").write_text("{not json")
    with pytest.raises(BadInputError, match="is not readable JSON"):
        export_trial(0, str(tmp_path), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
