"""A run folder holds one model's run: `run` refuses a folder that holds another
model's run unless --force (issue 15: `run --target` silently replaced build/<target>)."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from edgeprune.cli import main
from edgeprune.run_folder import OtherModelError, previous_model, refuse_other_model

SHA_A, SHA_B = "a" * 64, "b" * 64


def _report(folder, model: str, sha: str | None = None) -> None:
    os.makedirs(folder, exist_ok=True)
    inputs = {"model": model, **({"model_sha256": sha} if sha else {})}
    with open(os.path.join(folder, "report.json"), "w") as fh:
        json.dump({"schema_version": 0, "inputs": inputs}, fh)


@pytest.mark.parametrize(
    "old, new",
    [
        (("builtin:digits_cnn", None), ("builtin:digits_cnn", None)),  # the same built-in
        (("/m/model.keras", SHA_A), ("/m/model.keras", SHA_B)),  # edited in place, re-run
        (("/m/model.keras", SHA_A), ("/copy/model.keras", SHA_A)),  # the same bytes moved
    ],
)
def test_the_same_model_runs_again_into_its_folder(tmp_path, old, new):
    _report(tmp_path, *old)
    refuse_other_model(tmp_path, *new)


@pytest.mark.parametrize(
    "old, new, shown",
    [
        (("builtin:digits_cnn", None), ("builtin:ds_cnn", None), "the built-in digits_cnn"),
        (("builtin:digits_cnn", None), ("/m/kws.keras", SHA_A), "the built-in digits_cnn"),
        (("/m/a/model.keras", SHA_A), ("/m/b/model.keras", SHA_B), "/m/a/model.keras"),
    ],
)
def test_another_model_is_refused_naming_it_and_the_fix(tmp_path, old, new, shown):
    _report(tmp_path, *old)
    with pytest.raises(OtherModelError) as info:
        refuse_other_model(tmp_path, *new)
    assert str(info.value) == (
        f"{tmp_path} holds the run of another model ({shown}), which this run would "
        f"replace; choose another output folder (--out) or pass --force to replace it"
    )
    refuse_other_model(tmp_path, *new, force=True)


@pytest.mark.parametrize("body", [None, "{", "[1]", '{"inputs": {"model": 3}}', '{"model": "x"}'])
def test_a_folder_without_a_readable_run_report_is_no_other_model(tmp_path, body):
    if body is not None:
        (tmp_path / "report.json").write_text(body)
    assert previous_model(tmp_path) is None
    refuse_other_model(tmp_path, "builtin:digits_cnn", None)


def test_run_target_refuses_a_build_folder_of_another_model_before_any_work(tmp_path, monkeypatch):
    """`run --target nano33ble` into build/nano33ble holding another model's run: one
    line naming it, exit 1, the folder as it was (no training, no conversion)."""
    monkeypatch.chdir(tmp_path)
    folder = os.path.join("build", "nano33ble")
    _report(folder, "/home/me/kws.keras", SHA_A)
    (tmp_path / folder / "final_int8.tflite").write_bytes(b"theirs")
    before = sorted(os.listdir(folder))
    r = CliRunner().invoke(main, ["run", "--target", "nano33ble"])
    assert r.exit_code == 1, r.output
    assert r.stderr.strip().splitlines() == [
        f"edgeprune: error: {folder} holds the run of another model (/home/me/kws.keras), "
        f"which this run would replace; choose another output folder (--out) or pass "
        f"--force to replace it"
    ]
    assert sorted(os.listdir(folder)) == before
    assert (tmp_path / folder / "final_int8.tflite").read_bytes() == b"theirs"
