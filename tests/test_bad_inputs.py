"""Every row of the bad-input registry (tests/bad_inputs.py) through the CLI, in
process and with ``-q``: its exit code, one ``edgeprune: error:`` line matching its message,
nothing written to the run folder; and docs/bad-inputs.md is the registry's
current rendering."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bad_inputs import REGISTRY, page
from bad_inputs_lib import BadInput, Files
from click.testing import CliRunner

from edgeprune.cli import main

DOC = Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Files:
    return Files(str(tmp_path_factory.mktemp("bad_inputs")))


def _listing(folder: str) -> list[str] | None:
    """The folder's files, or None when it does not exist (a refused run must not make it)."""
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else None


def _out_folders(argv: list[str]) -> list[str]:
    return [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--out"]


@pytest.mark.parametrize("bad", REGISTRY, ids=[f"{b.area}: {b.case}" for b in REGISTRY])
def test_bad_input_gives_its_exit_code_and_one_line_message(bad: BadInput, files: Files):
    argv = bad.argv(files)
    before = {out: _listing(out) for out in _out_folders(argv)}
    result = CliRunner().invoke(main, ["-q", *argv])  # -q: no progress lines on stderr
    assert result.exit_code == bad.exit_code, (argv, result.output)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    if bad.exit_code == 2:  # click's usage error: its own "Error:" line, last
        assert lines[-1].startswith("Error:") and bad.message in lines[-1], result.stderr
        return
    assert len(lines) == 1 and lines[0].startswith("edgeprune: error: "), result.stderr
    text = lines[0].removeprefix("edgeprune: error: ")
    assert bad.pattern().fullmatch(text), f"{text!r} does not match {bad.message!r}"
    if bad.exit_code == 1:
        for out, listing in before.items():
            assert _listing(out) == listing, f"{out} was written"


def test_the_registry_names_each_case_once_and_its_areas_have_cases():
    keys = [(b.area, b.case) for b in REGISTRY]
    assert len(keys) == len(set(keys))
    assert {"recipe", "data", "model", "profile", "tflite"} <= {b.area for b in REGISTRY}
    assert {1, 2, 3} <= {b.exit_code for b in REGISTRY}


def test_a_message_pattern_matches_only_its_message():
    bad = BadInput("a", "b", lambda f: [], 1, "x … is (a) file")
    assert bad.pattern().fullmatch("x /tmp/some path is (a) file")
    assert not bad.pattern().fullmatch("x /tmp is a file")  # parentheses are literal
    assert not bad.pattern().fullmatch("x /tmp is (a) file; and more")


def test_docs_bad_inputs_is_the_rendered_registry():
    assert DOC.read_text(encoding="utf-8") == page(), (
        "docs/bad-inputs.md is out of date: run `make bad-inputs-doc` and commit it"
    )
