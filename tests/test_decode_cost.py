"""The DECODE kernel's flash: each target reads its own measured build, or says whose it borrows."""

from __future__ import annotations

import copy

import pytest

from edgeprune.estimates import footprint
from edgeprune.estimates.decode_cost import TABLE, decode_flash, parse_decode_table
from edgeprune.estimates.footprint import FootprintError
from edgeprune.target import list_targets, load_target

TFLM_TARGETS = [t for t in list_targets() if load_target(t).runtime == "tflm"]


def test_decode_is_measured_on_every_build_the_other_kernels_were():
    kernel_builds = {f"{kernels}_{core}" for core, kernels in footprint.MEASURED}
    assert set(TABLE["build"]) == kernel_builds
    # the builds are measured, not copies of one figure
    assert len({sum(b["flash_bytes"].values()) for b in TABLE["build"].values()}) > 1


@pytest.mark.parametrize("target_id", TFLM_TARGETS)
def test_a_target_reads_its_own_build_or_names_the_one_it_borrows(target_id):
    target = load_target(target_id)
    own = f"{target.kernels}_{target.core}"
    flash = decode_flash(target.core, target.kernels, True)
    assert flash.bytes == sum(TABLE["build"][flash.build]["flash_bytes"].values())
    if (target.core, target.kernels) in footprint.MEASURED:
        assert (flash.build, flash.borrowed) == (own, False)
        assert flash.basis.startswith(f"measured on {own}, map file: decode ")
    else:
        assert flash.borrowed and flash.build == TABLE["stand_ins"][own]
        assert f"{own} not measured: {flash.build}'s figure borrowed" in flash.basis


def test_the_m0plus_and_the_m4f_read_different_figures():
    m0, m4 = (decode_flash(c, "cmsis-nn", True) for c in ("cortex-m0plus", "cortex-m4f"))
    assert (m0.build, m4.build) == ("cmsis-nn_cortex-m0plus", "cmsis-nn_cortex-m4f")
    assert m0.bytes != m4.bytes


def test_an_unmeasured_core_borrows_the_fallback_and_says_so():
    flash = decode_flash("riscv32-hazard3", "reference", True)
    assert flash.borrowed and flash.build == TABLE["fallback"]
    assert "reference_riscv32-hazard3 not measured" in flash.basis
    assert decode_flash("cortex-m4f", "cmsis-nn", False).bytes == 0


def test_a_stand_in_that_was_not_measured_is_refused():
    bad = copy.deepcopy(TABLE)
    bad["stand_ins"]["esp-nn_xtensa-lx6"] = "esp-nn_xtensa-lx7"
    with pytest.raises(FootprintError, match="stand_ins.esp-nn_xtensa-lx6 .* not a measured build"):
        parse_decode_table(bad, "decode.toml")
    bad = copy.deepcopy(TABLE)
    del bad["build"]["cmsis-nn_cortex-m7"]["flash_bytes"]["lut"]
    with pytest.raises(FootprintError, match="cmsis-nn_cortex-m7.flash_bytes must give bytes"):
        parse_decode_table(bad, "decode.toml")
