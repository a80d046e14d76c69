"""No wrong refusals (issue 15): models TFLite Micro runs pass ``check``, and a refusal
names the operator, tensor or rule and the fix.

The models are built here (hand-made flatbuffers in ``tflite_build``, an int8 LSTM
through edgeprune's converter), never the fetched example models themselves:
``benchmarks/example_models.py`` runs those.
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from tflite_build import (  # noqa: E402 - tests/ is on sys.path under pytest
    OP,
    TYPE,
    ethos_u_model,
    flatbuffer,
    signal_window_model,
    tensor,
)

from edgeprune.artifacts import Flatbuffer  # noqa: E402
from edgeprune.firmware.emit import render, resolver_calls  # noqa: E402
from edgeprune.firmware.resolver import CUSTOM_METHODS  # noqa: E402
from edgeprune.rules import budget  # noqa: E402
from edgeprune.stages.check import TargetMismatchError, check_flatbuffer, model_dtype  # noqa: E402
from edgeprune.target import load_target  # noqa: E402
from edgeprune.tflite import TFLiteInvalidError, inspect_model  # noqa: E402


def _model(data: bytes, name: str) -> Flatbuffer:
    return Flatbuffer.of(data, f"/models/{name}", "")


def _refusal(data: bytes, name: str, target: str) -> str:
    with pytest.raises(TargetMismatchError) as err:
        check_flatbuffer(_model(data, name), load_target(target))
    message = str(err.value)
    assert "\n" not in message
    return message


# --- TFLite Micro's own custom kernels ---------------------------------------------------------


def test_signal_window_model_passes_check_and_its_resolver_adds_the_window():
    data = signal_window_model()
    result = check_flatbuffer(_model(data, "window.tflite"), load_target("nano33ble"))
    ops = next(p for p in result.preconditions if p.name == "ops")
    assert ops.ok and ops.evidence == "loaded in TFLite Micro: CUSTOM:SignalWindow x1"
    assert resolver_calls(inspect_model(data)) == ["AddWindow()"]
    ops_h = render(data, "window.tflite", None)["ops_window.h"]
    assert "constexpr int kWindowOpCount = 1;" in ops_h
    assert "  if (resolver.AddWindow() != kTfLiteOk) {" in ops_h


def test_every_signal_kernel_tflite_micro_ships_has_its_resolver_method():
    # micro_mutable_op_resolver.h at the pinned commit: Add<Name>() registers "Signal<Name>".
    signal = {k: v for k, v in CUSTOM_METHODS.items() if k.startswith("Signal")}
    assert signal == {f"Signal{m.removeprefix('Add')}": m for m in signal.values()}
    assert set(signal) >= {
        "SignalWindow",
        "SignalRfft",
        "SignalIrfft",
        "SignalEnergy",
        "SignalFilterBank",
        "SignalFilterBankSquareRoot",
        "SignalFilterBankSpectralSubtraction",
        "SignalFilterBankLog",
        "SignalPCAN",
        "SignalFramer",
        "SignalOverlapAdd",
        "SignalStacker",
        "SignalDelay",
        "SignalFftAutoScale",
    }


def test_an_unknown_custom_op_is_refused_naming_it_and_the_fix():
    data = signal_window_model()
    renamed = data.replace(b"SignalWindow", b"SignalWandow")
    message = _refusal(renamed, "wandow.tflite", "nano33ble")
    assert message.startswith(
        "TFLite Micro cannot run wandow.tflite on nano33ble: CUSTOM:SignalWandow at operator 0"
    )
    assert message.endswith("; replace those layers or choose a Linux target")
    with pytest.raises(Exception, match="custom op 'SignalWandow'.*AddCustom"):
        resolver_calls(inspect_model(renamed))


# --- models compiled by Vela for an Ethos-U NPU ------------------------------------------------


def test_vela_scratch_tensors_are_not_read_as_missing_data():
    assert inspect_model(ethos_u_model()).op_counts == {"CUSTOM:ethos-u": 1}
    # Any other op reading a tensor that holds no data is still refused.
    with pytest.raises(TFLiteInvalidError, match="reads tensor 3 .* which holds no data"):
        inspect_model(ethos_u_model(b"NotEthos"))


def test_vela_model_on_a_target_without_the_npu_says_to_pass_the_uncompiled_model():
    for target in ("nano33ble", "rpi4"):
        assert _refusal(ethos_u_model(), "vela.tflite", target) == (
            "vela.tflite was compiled by Arm's Vela for an Ethos-U NPU (ethos-u at operator 0):"
            f" TFLite Micro runs that part only on the NPU, and {target} has no Ethos-U; pass "
            "the model as it was before Vela compiled it"
        )


def test_vela_model_on_the_ethos_u_target_says_what_to_check_instead():
    assert load_target("alif_e7").npu == "ethos-u55-256"
    message = _refusal(ethos_u_model(), "vela.tflite", "alif_e7")
    assert message == (
        "vela.tflite was compiled by Arm's Vela for an Ethos-U NPU (ethos-u at operator 0): "
        "TFLite Micro runs that part only on the NPU, so edgeprune cannot load or measure it "
        "on this host; for the ethos-u55-256 of alif_e7, check Vela's summary report (its "
        "<model>_summary_<system>.csv: SRAM and flash used, NPU cycles) against the NPU's "
        "SRAM, or check the model as it was before Vela compiled it"
    )
    assert "Linux" not in message
    assert resolver_calls(inspect_model(ethos_u_model())) == ["AddEthosU()"]


# --- encodings of older converters that TFLite Micro runs ---------------------------------------


def test_int16_activation_with_an_offset_zero_point_is_read_and_run():
    # keyword_scrambled: a logistic's int16 output at scale 1/65536, zero point -32768,
    # requantized to int8 by QUANTIZE, which honours the zero point.
    data = flatbuffer(
        tensors=[
            tensor("probability", [1, 4], TYPE.INT16, 0, [1 / 65536], [-32768]),
            tensor("out", [1, 4], TYPE.INT8, 0, [1 / 256], [-128]),
        ],
        ops=[(OP.QUANTIZE, None, [0], [1])],
        buffers=[],
    )
    assert inspect_model(data).op_counts == {"QUANTIZE": 1}
    result = check_flatbuffer(_model(data, "quantize.tflite"), load_target("nucleo_l4r5zi"))
    assert all(p.ok for p in result.preconditions)


def _fc_with_bias(bias_shape, bias_scales, axis):
    return flatbuffer(
        tensors=[
            tensor("in", [1, 4], TYPE.INT8, 0, [0.5], [0]),
            tensor("w", [2, 4], TYPE.INT8, 1, [0.1, 0.2], [0, 0], axis=0),
            tensor("b", bias_shape, TYPE.INT32, 2, bias_scales, [0] * len(bias_scales), axis),
            tensor("out", [1, 2], TYPE.INT8, 0, [0.5], [0]),
        ],
        ops=[(OP.FULLY_CONNECTED, None, [0, 1, 2], [3])],
        buffers=[bytes(8), np.zeros(int(np.prod(bias_shape)), "<i4").tobytes()],
    )


def test_per_channel_bias_with_the_filters_quantized_dimension_is_accepted():
    # person_detect: a [8] bias with 8 scales and quantized dimension 3 (the filter's).
    assert inspect_model(_fc_with_bias([2], [0.05, 0.1], axis=3)).op_counts == {
        "FULLY_CONNECTED": 1
    }
    # Scales that do not line up with any dimension are still refused.
    with pytest.raises(TFLiteInvalidError, match=r"has 3 scales along dimension 3 of shape \[2\]"):
        inspect_model(_fc_with_bias([2], [0.05, 0.1, 0.2], axis=3))


# --- dtypes ------------------------------------------------------------------------------------


def test_a_mixed_refusal_names_the_float_tensor_and_its_operator():
    facts = budget.Support(
        "m.tflite",
        "mixed",
        False,
        {"FULLY_CONNECTED": 1},
        first_float="float32 tensor 7 ('fc/BiasAdd') written by FULLY_CONNECTED at operator 2",
    )
    r = budget.dtype_precondition(facts, load_target("nano33ble"))
    assert not r.ok and r.evidence == (
        "m.tflite is a mixed model (float32 tensor 7 ('fc/BiasAdd') written by "
        "FULLY_CONNECTED at operator 2) but TFLite Micro on nano33ble runs integer-only or "
        "float32 models, not float activations with int8 weights; convert with "
        'quantize.mode = "int8"'
    )


@pytest.fixture(scope="module")
def int8_lstm() -> bytes:
    """A tf_keras LSTM converted to int8 by edgeprune's converter: an
    UNIDIRECTIONAL_SEQUENCE_LSTM with the converter's empty float placeholders."""
    from edgeprune.adapters.converter import to_tflite
    from edgeprune.adapters.keras import keras, seed_everything

    seed_everything(0)
    inp = keras.Input((6, 4), batch_size=1)
    x = keras.layers.LSTM(8, name="lstm")(inp)
    out = keras.layers.Dense(3, name="head")(x)
    data = np.random.default_rng(0).random((8, 6, 4), dtype=np.float32)
    return to_tflite(keras.Model(inp, out), "int8", data)


@pytest.mark.slow
def test_int8_lstm_with_empty_float_placeholders_is_int8_and_fits(int8_lstm):
    info = inspect_model(int8_lstm)
    placeholders = [t for t in info.tensors if t.dtype == "float32"]
    assert placeholders and all(t.elements == 0 for t in placeholders)  # the case under test
    assert model_dtype(info) == "int8"
    result = check_flatbuffer(_model(int8_lstm, "lstm_int8.tflite"), load_target("nucleo_l4r5zi"))
    assert [(p.name, p.ok) for p in result.preconditions] == [("dtype", True), ("ops", True)]
    assert "AddUnidirectionalSequenceLSTM()" in resolver_calls(info)
