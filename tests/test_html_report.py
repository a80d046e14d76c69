"""report.html: a run folder's page from report.json alone, a sweep folder's from sweep.json
alone; self-contained (nothing outside the file), every section present or saying why not,
every number the one the JSON holds; `edgeprune report DIR`; rendered in headless Chromium.

The run report comes from one real `run --target nano33ble` with a structured goal,
validated on the host and TFLite Micro runners; the sweep.json is made by hand to the
contract (schema edgeprune-sweep/1) that `edgeprune sweep` writes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from html import escape
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner
from conftest import small_recipe

from edgeprune import report
from edgeprune.cli import main
from edgeprune.presentation import html, plots
from edgeprune.presentation.page import num
from edgeprune.rules.result import format_quantity

RUN_SECTIONS = ("run", "sizes", "layers", "quality", "confusion", "budgets", "operators")
RUN_FIGURES = (
    "size-by-stage",
    "layer-sparsity",
    "kept-width",
    "quality-by-stage",
    "confusion",
    "budget-use",
    "op-latency",
    "validation-latency",
)


# ---------------------------------------------------------------- reading a page


class Page(HTMLParser):
    """What a test needs of a page: every tag with its attributes, the tables of each
    section as rows of cell text, the missing-data notes and the figures' texts."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.missing: dict[str, str] = {}
        self.figure_text: dict[str, str] = {}
        self._section = self._figure = None
        self._cell: list[str] | None = None
        self._note: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "section":
            self._section = a["id"]
        elif tag == "table":
            self.tables.setdefault(self._section, []).append([])
        elif tag == "tr":
            self.tables[self._section][-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "p" and a.get("class") == "missing":
            self._note = []
        elif tag == "svg":
            self._figure = a["aria-label"]
            self.figure_text[self._figure] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.tables[self._section][-1][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "p" and self._note is not None:
            self.missing[self._section] = "".join(self._note)
            self._note = None
        elif tag == "svg":
            self._figure = None

    def handle_data(self, data):
        for sink in (self._cell, self._note):
            if sink is not None:
                sink.append(data)
        if self._figure:
            self.figure_text[self._figure] += data + " "

    def rows(self, section: str, index: int = 0) -> dict[str, list[str]]:
        """A section's table as first cell -> the row's cells."""
        return {r[0]: r for r in self.tables[section][index][1:]}

    @property
    def sections(self) -> list[str]:
        return [a["id"] for t, a in self.tags if t == "section"]

    @property
    def figures(self) -> list[str]:
        return [a["aria-label"] for t, a in self.tags if t == "svg"]


def assert_self_contained(text: str) -> None:
    """No script, nothing fetched: every reference is an #anchor or a data: URI."""
    page = Page(text)
    assert not [a for t, a in page.tags if t in ("script", "iframe", "object", "embed", "link")]
    for tag, attrs in page.tags:
        for name in ("src", "href", "xlink:href", "action", "poster"):
            value = attrs.get(name)
            assert value is None or value.startswith(("#", "data:")), (tag, name, value)
    lowered = text.lower()
    for scheme in ("http:", "https:", "file:", "ftp:", "//cdn", "@import"):
        assert scheme not in lowered, scheme
    assert lowered.count("url(") == lowered.count("url(#")
    ids = [a["id"] for _, a in page.tags if "id" in a]
    assert len(ids) == len(set(ids)), "an id appears twice"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """A real run for nano33ble with a structured goal, validated on two runners."""
    from edgeprune import pipeline
    from edgeprune.recipe import build_recipe
    from edgeprune.recipe_options import ValidateOptions
    from edgeprune.stages.validate import validate_run

    out = tmp_path_factory.mktemp("html") / "nano33ble"
    values = small_recipe().to_dict()
    values["structured"].update(goal="width", width=0.75, rounds=1, epochs=0)
    pipeline.run(recipe=build_recipe(values), out=str(out), target="nano33ble")
    for runner in ("host", "tflm"):
        validate_run(str(out), "nano33ble", runner, options=ValidateOptions(samples=20))
    return out


@pytest.fixture(scope="module")
def full_page(full_run):
    return Page((full_run / "report.html").read_text())


@pytest.fixture(scope="module")
def full_report(full_run):
    return report.read(full_run / "report.json")


def _trial(number, width, accuracy, latency_ms, flash, feasible=True, failed=(), state="COMPLETE"):
    values = {
        "accuracy": accuracy,
        "macro_f1": None if accuracy is None else accuracy - 0.01,
        "latency_ms": latency_ms,
        "flash_bytes": flash,
        "ram_bytes": None if flash is None else flash // 5,
        "gzip_bytes": None if flash is None else flash // 20,
    }
    return {
        "number": number,
        "state": state,
        "params": {"width": width, "importance": "l1"},
        "values": values,
        "feasible": feasible,
        "failed_rules": list(failed),
        "error": "writing trials/0006/final_int8.tflite failed (No space left on device)"
        if state == "FAIL"
        else None,
        "folder": f"trials/{number:04d}",
        "seconds": 20.0 + number,
        "fine_tune_seconds": 15.0,
    }


def sweep_doc() -> dict:
    """A sweep.json as contract 2 spells it: five complete trials (two on the front, one
    over the latency budget), one failed, one running, a reference point."""
    return {
        "schema": "edgeprune-sweep/1",
        "study": "digits_cnn_nano33ble",
        "storage": "postgresql://edgeprune:***@10.0.0.5:5432/sweeps",
        "identity": {
            "model": "digits_cnn",
            "model_sha256": "a" * 64,
            "data_sha256": "b" * 64,
            "target": "nano33ble",
            "space": {"width": [0.25, 1.0], "importance": ["l1", "taylor"]},
            "objectives": ["accuracy", "latency_ms"],
        },
        "metric": {"name": "accuracy", "direction": "maximize"},
        "objectives": [
            {"key": "accuracy", "label": "accuracy", "unit": "", "direction": "maximize"},
            {
                "key": "latency_ms",
                "label": "latency (estimate)",
                "unit": "ms",
                "direction": "minimize",
            },
        ],
        "budgets": {"latency_ms": 12.0, "flash_bytes": 1048576, "ram_bytes": 262144},
        "reference": {
            "label": "run --structured fit",
            "values": {"accuracy": 0.9, "latency_ms": 9.5, "flash_bytes": 380000},
        },
        "trials": [
            _trial(0, 0.25, 0.84, 5.0, 325000),
            _trial(1, 0.5, 0.89, 7.6, 350000),
            _trial(2, 0.5, 0.86, 8.1, 350000),
            _trial(3, 0.75, 0.92, 9.9, 375000),
            _trial(4, 1.0, 0.95, 12.6, 400000, feasible=False, failed=["latency"]),
            # (values and feasible may be null, not only their figures, until it completes)
            {**_trial(5, 0.6, None, None, None, state="RUNNING"), "values": None, "feasible": None},
            _trial(6, 0.3, None, None, None, feasible=False, state="FAIL"),
        ],
        "front": [0, 1, 3],
        "export_command": "edgeprune sweep export {number} --sweep sweeps/digits_cnn_nano33ble "
        "--out build/trial{number}",
    }


def write_sweep(folder, doc: dict) -> str:
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "sweep.json"), "w") as fh:
        json.dump(doc, fh)
    return str(folder)


@pytest.fixture
def sweep_page(tmp_path):
    path = html.write_sweep_html(write_sweep(tmp_path / "sweep", sweep_doc()))
    with open(path) as fh:
        return fh.read()


def _copy_with(full_run, tmp_path, change) -> str:
    """A copy of the run folder whose report.json went through ``change(dict)``."""
    folder = tmp_path / "run"
    shutil.copytree(full_run, folder)
    body = json.loads((folder / "report.json").read_text())
    change(body)
    (folder / "report.json").write_text(json.dumps(body))
    return str(folder)


# ---------------------------------------------------------------- run pages


def test_run_writes_a_self_contained_page_beside_report_json(full_run, full_report):
    text = (full_run / "report.html").read_text()
    assert_self_contained(text)
    assert "report.html" not in full_report.artifacts  # a view of report.json, not an artifact
    assert full_report.written and full_report.written.endswith("+00:00")


def test_full_run_page_has_every_section_and_figure(full_page):
    assert list(full_page.sections) == [*RUN_SECTIONS, "validation"]
    assert full_page.figures == list(RUN_FIGURES)
    assert full_page.missing == {}
    for name, text in full_page.figure_text.items():
        assert len(text.split()) >= 3, name  # titled, axes labelled: text kept as text


def test_sizes_and_quality_shown_are_report_json_figures(full_run, full_page, full_report):
    sizes = full_page.rows("sizes")
    assert list(sizes) == ["baseline", "structured", "pruned", "final"]
    for stage, s in full_report.sizes.items():
        assert sizes[stage][3:5] == [f"{s.bytes:,}", f"{s.gzip_bytes:,}"]
    quality = full_page.rows("quality")
    for stage, e in full_report.stages.evaluate.items():
        shown = [num(e.figures[k]) for k in ("accuracy", "macro_f1", "agreement")]
        assert quality[stage][2:5] == shown
    text = (full_run / "report.html").read_text()
    assert any("Only the gzip size changes" in n for n in full_report.notes)
    for note in full_report.notes:  # unstructured sparsity saves only gzip, as size_notes say
        assert f'<p class="note">{escape(note)}</p>' in text


def test_layers_show_achieved_sparsity_and_the_structured_widths(full_page, full_report):
    sparsity = full_page.rows("layers", 0)
    for layer in full_report.stages.prune.layers:
        assert sparsity[layer["name"]][5] == f"{layer['achieved']:.3f}"
    widths = full_page.rows("layers", 1)
    for name, (before, after) in full_report.stages.structured.rounds[-1].widths.items():
        assert widths[name][1:3] == [f"{before:,}", f"{after:,}"]


def test_budgets_show_each_rule_with_headroom_and_the_latency_estimate_band(full_page, full_report):
    check = full_report.stages.check
    rows = full_page.rows("budgets")
    for r in check.rules:
        figure, budget, headroom, result = rows[r.name][1:5]
        assert r.name == "latency" or figure == format_quantity(r.figure, r.unit)
        if r.budget is None:
            assert (budget, result) == ("not set", "no budget set")
        else:
            assert budget == format_quantity(r.budget, r.unit)
            assert headroom == format_quantity(r.headroom, r.unit)
            assert result == ("PASS" if r.ok else "FAIL")
    band, ms = check.evidence["latency"]["error_band"], check.evidence["latency"]["ms"]
    assert rows["latency"][1] == f"{format_quantity(ms, 'ms')} estimate ±{band:.0%}"


def test_a_latency_over_budget_shows_the_estimate_its_band_and_the_figure_judged(
    full_run, full_report, tmp_path
):
    latency = full_report.stages.check.evidence["latency"]
    judged = latency["ms"] * (1 + latency["error_band"])  # what the rule checks with a budget

    def over_budget(body):
        rule = next(r for r in body["stages"]["check"]["rules"] if r["name"] == "latency")
        rule.update(figure=judged, budget=1.0, headroom=1.0 - judged, ok=False)
        body["stages"]["check"]["ok"] = False

    page = Page(open(html.write_run_html(_copy_with(full_run, tmp_path, over_budget))).read())
    row = page.rows("budgets")["latency"]
    assert row[1:5] == [
        f"{format_quantity(latency['ms'], 'ms')} estimate ±{latency['error_band']:.0%}; "
        f"judged at {format_quantity(judged, 'ms')}",
        "1 ms",
        format_quantity(1.0 - judged, "ms"),
        "FAIL",
    ]
    share = f"{latency['ms'] / 1.0:.0%} ±{latency['error_band']:.0%} (FAIL)"
    assert share in " ".join(page.figure_text["budget-use"].split())
    assert "latency (estimate)" in page.figure_text["budget-use"]


def test_operators_are_the_most_expensive_estimated_ones(full_page, full_report):
    ops = full_report.stages.check.evidence["latency"]["ops"]
    rows = full_page.tables["operators"][0][1:]
    expected = sorted(ops, key=lambda o: -o["ms"])[: len(rows)]
    assert [(r[1], r[6]) for r in rows] == [(o["opcode"], num(o["ms"], 3)) for o in expected]
    assert "estimate" in full_page.figure_text["op-latency"]


def test_validation_shows_each_runner_and_its_percentiles(full_page, full_report):
    rows = full_page.rows("validation")
    assert set(rows) == {"host", "tflm"}
    for runner, v in full_report.validation.items():
        assert rows[runner][1] == "20 of 20"
        assert rows[runner][2] == num(v.metrics["accuracy"])
        assert rows[runner][5:9] == [num(v.latency_ms[p], 3) for p in ("p50", "p90", "p99", "max")]


def test_sections_without_their_data_say_why(full_run, tmp_path):
    def strip(body):
        body["stages"].pop("check")
        body["stages"].pop("structured")
        body.pop("target")
        body.pop("validation")

    page = Page(open(html.write_run_html(_copy_with(full_run, tmp_path, strip))).read())
    assert page.sections == [*RUN_SECTIONS, "validation"]
    assert page.missing == {
        "budgets": "This run had no target, so no device check ran.",
        "operators": "This run had no target, so no latency was estimated.",
        "validation": "No validation results: `edgeprune validate FOLDER` adds them.",
        "layers": "No structured pruning in this report (structured.goal none).",
    }
    assert not {"budget-use", "op-latency", "kept-width", "validation-latency"} & set(page.figures)


def test_regression_report_shows_mse_and_no_confusion_matrix(full_run, tmp_path):
    def regression(body):
        body["inputs"]["task"] = "regression"
        for e in body["stages"]["evaluate"].values():
            for k in ("accuracy", "macro_f1", "confusion_matrix", "agreement"):
                e.pop(k)
            e.update(mse=0.25, mae=0.5, mse_vs_baseline=0.01)

    page = Page(open(html.write_run_html(_copy_with(full_run, tmp_path, regression))).read())
    assert page.missing["confusion"] == "A regression model has no confusion matrix."
    assert page.tables["quality"][0][0][2:5] == ["MSE", "MAE", "MSE vs baseline"]
    assert page.rows("quality")["final"][2:5] == ["0.25", "0.5", "0.01"]


def test_a_page_that_fails_to_render_is_a_warning_and_leaves_no_stale_page(
    full_run, tmp_path, monkeypatch, caplog
):
    folder = _copy_with(full_run, tmp_path, lambda body: None)

    def broken(*args):
        raise ZeroDivisionError("a plot bug")

    monkeypatch.setattr(plots, "size_by_stage", broken)
    with caplog.at_level(logging.WARNING, logger="edgeprune"):
        assert html.refresh_run_html(folder) is None
    assert not os.path.exists(os.path.join(folder, "report.html"))
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "report.html was not written (ZeroDivisionError: a plot bug); the run's files and "
        f"report.json are complete; rebuild the page with `edgeprune report {folder}`"
    ]


def test_validate_with_a_broken_page_keeps_its_result_and_exit_code(
    full_run, tmp_path, monkeypatch
):
    folder = _copy_with(full_run, tmp_path, lambda body: body.pop("validation"))
    monkeypatch.setattr(plots, "confusion", lambda *a: 1 / 0)
    r = CliRunner().invoke(main, ["validate", folder, "--runner", "host", "--samples", "8"])
    assert r.exit_code == 0, r.output
    assert "host" in report.read(os.path.join(folder, "report.json")).validation
    assert not os.path.exists(os.path.join(folder, "report.html"))  # the old one went too
    assert "edgeprune: warning: report.html was not written (ZeroDivisionError" in r.output


# ---------------------------------------------------------------- sweep pages


def test_sweep_page_is_self_contained_with_its_sections(sweep_page):
    assert_self_contained(sweep_page)
    page = Page(sweep_page)
    assert page.sections == ["sweep", "tradeoffs", "front", "infeasible", "failed", "trials"]
    assert page.figures == ["tradeoff-latency-ms"]
    assert page.missing == {}


def test_sweep_plot_draws_front_budget_infeasible_and_reference(sweep_page):
    text = Page(sweep_page).figure_text["tradeoff-latency-ms"]
    for shown in (
        "accuracy vs latency (estimate)",
        "latency (estimate) (ms), lower is better",
        "Pareto front",
        "infeasible: latency over budget",
        "budget 12 ms",
        "reference: run --structured fit",
        "#0",
        "#3",
    ):
        assert shown in " ".join(text.split()), shown


def test_sweep_front_table_lists_each_point_with_its_export_command(sweep_page):
    doc = sweep_doc()
    rows = Page(sweep_page).tables["front"][0]
    assert rows[0] == [
        "trial",
        "parameters",
        "accuracy",
        "latency (estimate) (ms)",
        "export command",
    ]
    assert [r[0] for r in rows[1:]] == ["3", "1", "0", "run --structured fit"]  # best first
    for r in rows[1:4]:
        n = int(r[0])
        assert r[2:4] == [num(doc["trials"][n]["values"][k]) for k in ("accuracy", "latency_ms")]
        assert r[4] == doc["export_command"].format(number=n)
    assert rows[4][2:4] == ["0.9", "9.5"]  # the reference point, for comparison


def test_sweep_infeasible_and_failed_trials_are_listed_apart(sweep_page):
    page = Page(sweep_page)
    assert [(r[0], r[2]) for r in page.tables["infeasible"][0][1:]] == [("4", "latency")]
    assert page.rows("failed")["6"][2] == (
        "writing trials/0006/final_int8.tflite failed (No space left on device)"
    )
    states = {r[0]: r[1] for r in page.tables["trials"][0][1:]}
    assert states == {"0": "COMPLETE", "1": "COMPLETE", "2": "COMPLETE", "3": "COMPLETE"} | {
        "4": "COMPLETE",
        "5": "RUNNING",
        "6": "FAIL",
    }


def test_sweep_with_no_completed_trial_says_so(tmp_path):
    doc = sweep_doc()
    doc["trials"] = [t for t in doc["trials"] if t["state"] != "COMPLETE"]
    doc["front"] = []
    page = Page(open(html.write_sweep_html(write_sweep(tmp_path, doc))).read())
    assert page.missing == {
        "tradeoffs": "No trial has completed yet.",
        "front": "No feasible trial yet, so the front is empty.",
        "infeasible": "Every completed trial met the device's budgets.",
    }
    assert page.figures == []


def test_sweep_with_two_costs_draws_one_figure_each_in_kib_for_bytes(tmp_path):
    doc = sweep_doc()
    doc["objectives"].append(
        {"key": "flash_bytes", "label": "flash", "unit": "bytes", "direction": "minimize"}
    )
    page = Page(open(html.write_sweep_html(write_sweep(tmp_path, doc))).read())
    assert page.figures == ["tradeoff-latency-ms", "tradeoff-flash-bytes"]
    assert "flash (KiB), lower is better" in " ".join(
        page.figure_text["tradeoff-flash-bytes"].split()
    )
    assert "budget 1,024 KiB" in " ".join(page.figure_text["tradeoff-flash-bytes"].split())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda d: d.update(schema="edgeprune-sweep/9"),
            "has sweep schema edgeprune-sweep/9; "
            "this edgeprune reads edgeprune-sweep/1; re-run the sweep",
        ),
        (
            lambda d: d.pop("schema"),
            "is not an edgeprune sweep.json (it names no schema); name a sweep folder or "
            "re-run the sweep",
        ),
        (
            lambda d: d["trials"][0].pop("params"),
            "is not a complete edgeprune sweep (trials[0].params missing); re-run the sweep",
        ),
    ],
)
def test_sweep_json_of_another_schema_or_incomplete_is_refused(tmp_path, change, message):
    doc = sweep_doc()
    change(doc)
    folder = write_sweep(tmp_path, doc)
    r = CliRunner().invoke(main, ["report", folder])
    assert r.exit_code == 1
    assert r.output == f"edgeprune: error: {folder}/sweep.json {message}\n"
    assert sorted(os.listdir(folder)) == ["sweep.json"]


def test_a_sweep_page_that_fails_is_a_warning_and_leaves_no_stale_page(
    tmp_path, monkeypatch, caplog
):
    folder = write_sweep(tmp_path, sweep_doc())
    assert html.refresh_sweep_html(folder) == f"{folder}/report.html"
    monkeypatch.setattr(plots, "tradeoff", lambda *a: 1 / 0)
    with caplog.at_level(logging.WARNING, logger="edgeprune"):
        assert html.refresh_sweep_html(folder) is None
    assert os.listdir(folder) == ["sweep.json"]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        "report.html was not written (ZeroDivisionError: division by zero); the sweep's "
        f"study and sweep.json are complete; rebuild the page with `edgeprune report {folder}`"
    ]


def test_sweep_json_that_is_not_json_is_refused_in_one_line(tmp_path):
    (tmp_path / "sweep.json").write_text("{bad")
    r = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert (r.exit_code, r.output) == (
        1,
        f"edgeprune: error: {tmp_path}/sweep.json is not readable JSON (Expecting property "
        "name enclosed in double quotes: line 1 column 2 (char 1)); re-run the sweep\n",
    )


# ---------------------------------------------------------------- edgeprune report


def test_report_command_rebuilds_a_run_page_and_a_sweep_page(full_run, tmp_path):
    folder = _copy_with(full_run, tmp_path, lambda body: None)
    os.unlink(os.path.join(folder, "report.html"))
    r = CliRunner().invoke(main, ["report", folder])
    assert (r.exit_code, r.output) == (0, f"{folder}/report.html\n")
    assert Page(open(f"{folder}/report.html").read()).sections[:2] == ["run", "sizes"]
    sweep = write_sweep(tmp_path / "sweep", sweep_doc())
    r = CliRunner().invoke(main, ["report", sweep])
    assert (r.exit_code, r.output) == (0, f"{sweep}/report.html\n")


def test_report_command_on_a_folder_with_neither_file_writes_nothing(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    r = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert r.exit_code == 1
    assert r.output == (
        f"edgeprune: error: {tmp_path} has no report.json or sweep.json; name a folder that "
        "`edgeprune run` or `edgeprune sweep` wrote\n"
    )
    assert os.listdir(tmp_path) == ["notes.txt"]
    r = CliRunner().invoke(main, ["report", str(tmp_path / "gone")])
    assert (r.exit_code, r.output) == (
        1,
        f"edgeprune: error: {tmp_path}/gone does not exist; name a run folder or a sweep folder\n",
    )


# ---------------------------------------------------------------- in headless Chromium

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (never a downloaded browser). Skips without
    it, unless EDGEPRUNE_REQUIRE_CHROMIUM=1 (what .ci/run sets), where it fails."""
    if not os.access(CHROMIUM, os.X_OK):
        if os.environ.get("EDGEPRUNE_REQUIRE_CHROMIUM"):
            pytest.fail(f"EDGEPRUNE_REQUIRE_CHROMIUM is set but {CHROMIUM} is missing")
        pytest.skip(f"no {CHROMIUM} here (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def render_in_chromium(browser, path) -> dict:
    """Load ``path`` as file://; the console errors, page errors, every request and every
    failed one, and each figure's rendered size."""
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    seen = {"errors": [], "requests": [], "failed": []}
    page.on("console", lambda m: m.type == "error" and seen["errors"].append(m.text))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("requestfailed", lambda r: seen["failed"].append(r.url))
    url = f"file://{os.path.abspath(path)}"
    page.goto(url, wait_until="load")
    boxes = [
        (el.get_attribute("aria-label"), el.bounding_box()) for el in page.query_selector_all("svg")
    ]
    seen["figures"] = {name: (box["width"], box["height"]) for name, box in boxes}
    seen["images"] = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
    seen["url"] = url
    seen["overflow"] = page.evaluate("document.documentElement.scrollWidth > innerWidth")
    page.close()
    return seen


def _assert_clean(seen: dict, figures) -> None:
    assert seen["errors"] == [] and seen["failed"] == []
    assert seen["requests"] == [seen["url"]]  # the page itself, nothing else
    assert list(seen["figures"]) == list(figures)
    assert all(w > 100 and h > 100 for w, h in seen["figures"].values()), seen["figures"]
    assert all(n > 0 for n in seen["images"])
    assert not seen["overflow"]  # readable at 1000 px: wide tables scroll inside the page


def test_run_page_renders_in_chromium_with_every_figure(browser, full_run):
    _assert_clean(render_in_chromium(browser, full_run / "report.html"), RUN_FIGURES)


def test_sweep_page_renders_in_chromium_with_every_figure(browser, tmp_path):
    doc = sweep_doc()
    doc["objectives"].append(
        {"key": "flash_bytes", "label": "flash", "unit": "bytes", "direction": "minimize"}
    )
    path = html.write_sweep_html(write_sweep(tmp_path, doc))
    _assert_clean(
        render_in_chromium(browser, path), ["tradeoff-latency-ms", "tradeoff-flash-bytes"]
    )


def test_report_command_refuses_a_folder_another_process_writes(full_run, tmp_path):
    from edgeprune import run_folder

    folder = _copy_with(full_run, tmp_path, lambda body: None)
    before = os.path.getmtime(os.path.join(folder, "report.html"))
    with run_folder.hold(folder, "run"):
        r = CliRunner().invoke(main, ["report", folder])
    assert r.exit_code == 1
    assert r.output.startswith(f"edgeprune: error: run folder {folder} is in use by another ")
    assert os.path.getmtime(os.path.join(folder, "report.html")) == before
