"""The TFLite Micro footprint table: data in targets/footprint/, validated on load."""

from __future__ import annotations

import copy
import tomllib

import pytest

from edgeprune.estimates import footprint
from edgeprune.estimates.footprint import FootprintError, load_footprint, parse_footprint
from edgeprune.target import list_targets, load_target


@pytest.fixture(scope="module")
def shipped() -> dict:
    with open(footprint.footprint_path(), "rb") as fh:
        return tomllib.load(fh)


def test_the_shipped_table_loads_into_what_the_budget_check_reads():
    table = load_footprint()
    assert table.builds == footprint.MEASURED
    assert footprint.STATIC_RAM_BYTES == 444
    assert ("cortex-m4f", "cmsis-nn") in table.builds
    assert table.builds["cortex-m4f", "cmsis-nn"].ops["CONCATENATION"] == (None, 3104)
    assert table.stand_ins[("xtensa-lx7", "esp-nn")] == ("cortex-m4f", "cmsis-nn")
    assert table.fallback == ("cortex-m4f", "cmsis-nn")


TFLM_TARGETS = [t for t in list_targets() if load_target(t).runtime == "tflm"]


@pytest.mark.parametrize("target_id", TFLM_TARGETS)
def test_every_tflm_target_has_a_measurement_or_a_named_stand_in(target_id):
    target = load_target(target_id)
    key = (target.core, target.kernels)
    assert key in footprint.MEASURED or key in footprint.STAND_INS, (
        f"{target_id} ({target.kernels} on {target.core}) would silently get the fallback; "
        f"measure it or name its stand-in in targets/footprint/tflm.toml"
    )


def _broken(shipped: dict, edit) -> dict:
    data = copy.deepcopy(shipped)
    edit(data)
    return data


M4F = "cmsis-nn_cortex-m4f"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(flash_bytes=1), r"unknown key 'flash_bytes'"),
        (lambda d: d.pop("static_ram_bytes"), r"missing key 'static_ram_bytes'"),
        (lambda d: d.update(static_ram_bytes=-4), r"static_ram_bytes = -4 must be a positive"),
        (
            lambda d: d["build"][M4F]["ops"]["ADD"].update(int8_bytes="7616"),
            rf"build\.{M4F}\.ops\.ADD\.int8_bytes = '7616' must be a positive whole number",
        ),
        (
            lambda d: d["build"][M4F]["ops"]["ADD"].update(int8=1),
            rf"unknown key 'build\.{M4F}\.ops\.ADD\.int8'",
        ),
        (
            lambda d: d["build"][M4F]["ops"]["ADD"].pop("generic_bytes"),
            rf"missing key 'build\.{M4F}\.ops\.ADD\.generic_bytes'",
        ),
        (
            lambda d: d["build"][M4F].pop("interpreter_bytes"),
            rf"missing key 'build\.{M4F}\.interpreter_bytes'",
        ),
        (
            lambda d: d["build"][M4F].update(core="cortex-m7"),
            rf"build\.{M4F} says kernels = 'cmsis-nn', core = 'cortex-m7'",
        ),
        (
            lambda d: d["build"][M4F]["ops"].pop("SOFTMAX"),
            rf"build\.{M4F}\.ops lacks SOFTMAX, one of the kws_ops",
        ),
        (
            lambda d: d["stand_ins"].update({"esp-nn_xtensa-lx7": "esp-nn_xtensa-lx6"}),
            r"stand_ins\.esp-nn_xtensa-lx7 = 'esp-nn_xtensa-lx6' is not a measured build",
        ),
        (lambda d: d.update(fallback="cortexm4f"), r"fallback = 'cortexm4f' must name a build"),
    ],
)
def test_a_broken_table_is_refused_naming_the_key(shipped, edit, message):
    with pytest.raises(FootprintError, match=message) as caught:
        parse_footprint(_broken(shipped, edit), "tflm.toml")
    assert str(caught.value).startswith("footprint table tflm.toml: ")
    assert "\n" not in str(caught.value)


def test_a_missing_or_unparsable_file_is_one_line(tmp_path):
    with pytest.raises(FootprintError, match=r"no such file"):
        load_footprint(tmp_path / "absent.toml")
    (tmp_path / "bad.toml").write_text("static_ram_bytes = = 4\n")
    with pytest.raises(FootprintError, match=r"not valid TOML"):
        load_footprint(tmp_path / "bad.toml")
