"""The arena computed for a 32-bit device, against arenas bisected on real Cortex-M builds.

``targets/footprint/arena_measured.csv`` holds the smallest arena with which
TFLite Micro with CMSIS-NN allocated and ran each model bit-exactly under QEMU
on a Cortex-M4F, M7, M33 and M55 (method: benchmarks/firmware_check/README.md).
CI has no ARM toolchain: these tests rebuild the same models, measure the
host's arena here and check that edgeprune's device arena covers every
measured figure and stays within 10 % + 256 B of it.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import sys
from types import SimpleNamespace as NS

import pytest

from edgeprune.estimates import device_arena as da
from edgeprune.target import list_targets, load_target

ROOT = os.path.join(os.path.dirname(__file__), "..")
MEASURED = os.path.join(ROOT, "targets", "footprint", "arena_measured.csv")
# A profile of each measured core, with CMSIS-NN kernels.
CORE_TARGET = {
    "cortex-m4f": "nano33ble",
    "cortex-m7": "stm32f746g_disco",
    "cortex-m33": "pico2",
    "cortex-m55": "alif_e7",
}


def _rows() -> list[dict]:
    with open(MEASURED, newline="") as f:
        return list(csv.DictReader(line for line in f if line.strip() and not line.startswith("#")))


def _make_models():
    sys.path.insert(0, os.path.join(ROOT, "benchmarks", "firmware_check"))
    try:
        import make_models
    finally:
        sys.path.pop(0)
    return make_models


def _check_model(name: str) -> None:
    from edgeprune.tflite.parse import inspect_model
    from edgeprune.tflm import probe

    data = _make_models().int8_model(name)
    host = probe.find_arena(data).required_bytes()
    info = inspect_model(data)
    rows = [r for r in _rows() if r["model"] == name]
    assert {r["core"] for r in rows} == set(CORE_TARGET), rows
    for row in rows:
        # the model rebuilt here is the one measured: same arena on this host
        assert host == int(row["host_arena_bytes"]), (name, row)
        device = da.device_arena(info, host, load_target(CORE_TARGET[row["core"]]))
        smallest = int(row["smallest_arena_bytes"])
        assert smallest <= device.bytes <= smallest * 1.10 + 256, (name, row, device)


@pytest.mark.parametrize("name", ["digits_cnn", "digits_cnn_w50"])
def test_device_arena_covers_the_arena_measured_on_every_cortex_m(name):
    _check_model(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ds_cnn", "mobilenet_v1", "resnet8", "autoencoder"])
def test_device_arena_covers_the_mlperf_tiny_arenas_measured_on_every_cortex_m(name):
    _check_model(name)


def test_measured_table_has_every_model_on_every_core_with_its_sources():
    rows = _rows()
    models = {"digits_cnn", "digits_cnn_w50", "ds_cnn", "mobilenet_v1", "resnet8", "autoencoder"}
    assert {(r["model"], r["core"]) for r in rows} == {(m, c) for m in models for c in CORE_TARGET}
    for r in rows:
        assert int(r["largest_failing_bytes"]) == int(r["smallest_arena_bytes"]) - 1  # to the byte
    head = open(MEASURED).read().split("\n\n")[0]
    for fact in ("90b983c", "4ab83cc", "arm-none-eabi-gcc 12.2.1", "QEMU 7.2"):
        assert fact in head


# ------------------------------------------------------------------ the rules


def _conv(**kw):
    base = dict(
        in_h=8, in_w=8, in_c=16, k_h=3, k_w=3, out_w=8, out_c=32,
        stride_w=1, pad_h=1, pad_w=1, dilated=False,
    )  # fmt: skip
    base.update(kw)
    return da._Conv(**base)


def test_conv_scratch_is_cmsis_nn_im2col_per_extension():
    # 3x3x16 = 144 columns: DSP keeps two int16 columns, Helium four 16-lane blocks
    assert da.conv_scratch(_conv(), "dsp") == 2 * 144 * 2
    assert da.conv_scratch(_conv(), "mve") == 4 * 9 * 16
    # columns are padded to a multiple of 4 on DSP (3x3x1 = 9 -> 12)
    assert da.conv_scratch(_conv(in_c=1), "dsp") == 2 * 12 * 2
    # a 1x1 stride-1 convolution without padding needs none
    assert da.conv_scratch(_conv(k_h=1, k_w=1, pad_h=0, pad_w=0), "dsp") == 0
    assert da.conv_scratch(_conv(k_h=1, k_w=1, pad_h=0, pad_w=0), "mve") == 0


def test_depthwise_scratch_is_zero_for_the_3x3_fast_path_except_on_helium():
    dw = _conv(in_c=64, out_c=64)
    assert da.depthwise_scratch(dw, "dsp") == 0  # arm_depthwise_conv_3x3_s8
    assert da.depthwise_scratch(dw, "plain") == 0
    assert da.depthwise_scratch(dw, "mve") == 4 * 124 * 9
    five = _conv(in_c=64, out_c=64, k_h=5, k_w=5, pad_h=2, pad_w=2)
    assert da.depthwise_scratch(five, "dsp") == 64 * 25 * 2
    assert da.depthwise_scratch(_conv(in_c=8, out_c=16), "dsp") == 0  # channel multiplier 2


def _tensor(index, shape, dtype="int8", scales=(0.1,), constant=False):
    return NS(
        subgraph=0, index=index, shape=shape, dtype=dtype, scales=scales, is_constant=constant
    )


def _op(opcode, inputs, outputs, **options):
    return NS(
        subgraph=0, opcode=opcode, inputs=inputs, outputs=outputs, options=tuple(options.items())
    )


def test_kernel_buffers_take_the_largest_per_operator_and_helium_kernel_sums():
    tensors = [
        _tensor(0, (1, 4, 4, 32)),
        _tensor(1, (1, 1, 1, 32)),
        _tensor(2, (1, 32)),
        _tensor(3, (10, 32), constant=True),
        _tensor(4, (10,), dtype="int32", constant=True),
        _tensor(5, (1, 10)),
    ]
    ops = [
        _op("AVERAGE_POOL_2D", (0,), (1,)),
        _op("RESHAPE", (1,), (2,)),
        _op("FULLY_CONNECTED", (2, 3, 4), (5,)),
    ]
    info = NS(tensors=tensors, operators=ops)
    dsp = da.kernel_buffers(info, "dsp")
    assert dsp.scratch == {0: 32 * 4} and dsp.scratch_count == 1 and dsp.persistent_bytes == 0
    mve = da.kernel_buffers(info, "mve")
    assert mve.scratch == {} and mve.persistent_bytes == 48  # 10 int32 sums, 16-aligned
    svdf = NS(tensors=tensors, operators=[_op("SVDF", (2, 3), (5,))])
    assert da.kernel_buffers(svdf, "dsp").unmodeled == ("SVDF",)


def test_persistent_saving_counts_tensors_operators_inputs_outputs_and_allocators():
    io = [_tensor(0, (1, 8)), _tensor(1, (1, 10))]
    info = NS(tensors=[None] * 17, operators=[None] * 7, inputs=io[:1], outputs=io[1:])
    # 17 x (24-12) + 7 x (64-32) + 2 x (64-32) + 2 x (24-12) + (424-116)
    assert da.persistent_saving(info) == 204 + 224 + 64 + 24 + 308


def test_kernels_without_rules_keep_the_host_figure_with_the_old_margin():
    info = NS(tensors=[], operators=[], inputs=[], outputs=[])
    device = da.device_arena(info, 10_000, load_target("esp32"))
    assert device.bytes == 10_000 + 1_000 + 1_024
    assert "no rule for esp-nn kernels on xtensa-lx6" in device.basis


def test_reference_kernels_get_only_the_32_bit_saving():
    target = dataclasses.replace(load_target("nano33ble"), kernels="reference")
    io = [_tensor(0, (1, 8)), _tensor(1, (1, 10))]
    info = NS(tensors=[None] * 3, operators=[None], inputs=io[:1], outputs=io[1:])
    device = da.device_arena(info, 10_000, target)
    assert device.computed_bytes == 10_000 - da.persistent_saving(info)
    assert "reference" in device.basis and "for cortex-m4f" in device.basis


@pytest.mark.parametrize("name", [n for n in list_targets() if load_target(n).runtime == "tflm"])
def test_every_tflm_profile_gets_a_device_arena(name):
    target = load_target(name)
    info = NS(tensors=[], operators=[], inputs=[], outputs=[])
    device = da.device_arena(info, 10_000, target)
    assert device.bytes > 0 and target.core in device.basis or "no rule" in device.basis
    if target.kernels == "cmsis-nn":
        assert target.core in da.TABLE.extension, f"{name}: add {target.core} to arena.toml"


def test_arena_table_refuses_an_unknown_key(tmp_path):
    bad = tmp_path / "arena.toml"
    text = open(da.arena_table_path()).read().replace("eval_tensor = 24", "eval_tensors = 24")
    bad.write_text(text)
    with pytest.raises(da.ArenaTableError, match=r"unknown key 'structs.host64.eval_tensors'"):
        da.load_arena_table(bad)
