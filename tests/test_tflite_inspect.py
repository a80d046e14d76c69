"""Tests for edgeprune.tflite: real converter output, hand-built flatbuffers, bad files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import flatbuffers  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ai_edge_litert import schema_py_generated as schema  # noqa: E402

from edgeprune.adapters.keras import keras  # noqa: E402
from edgeprune.errors import ModelLoadError  # noqa: E402
from edgeprune.presentation.inspect import format_model_info  # noqa: E402
from edgeprune.tflite import (  # noqa: E402
    ModelInfo,
    TFLiteFormatError,
    inspect_model,
    read_constant,
)

REPO = Path(__file__).resolve().parents[1]
MODES = ("float32", "dynamic", "float16", "int8")
ZEROED_FRACTION = 0.6
# Kernels zeroed in part before conversion, by layer name: layer names are set
# so tensor names do not depend on which Keras models were built before.
PRUNED = {"dense_a": ZEROED_FRACTION, "depthwise": 0.3}

# Ops each Keras model becomes. Flatten is a RESHAPE, GlobalAveragePooling2D a
# MEAN; the float16 model adds one DEQUANTIZE per float constant (every
# kernel and bias is stored as float16 and widened at load time).
EXPECTED_OPS = {
    "sequential": {
        "CONV_2D": 2,
        "MAX_POOL_2D": 1,
        "RESHAPE": 1,
        "FULLY_CONNECTED": 2,
        "SOFTMAX": 1,
    },
    "functional": {"DEPTHWISE_CONV_2D": 1, "CONV_2D": 1, "MEAN": 1, "FULLY_CONNECTED": 1},
}
FLOAT16_DEQUANTIZE_OPS = {"sequential": 8, "functional": 6}


# --- models built in code ----------------------------------------------------------------------


def _sequential() -> keras.Model:
    return keras.Sequential(
        [
            keras.layers.Input((16, 16, 3)),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv_a"),
            keras.layers.MaxPooling2D(2),
            # 2,304 weights: over the 1,024 below which dynamic-range
            # quantization leaves a tensor float32.
            keras.layers.Conv2D(16, 3, activation="relu", name="conv_b"),
            keras.layers.Flatten(),
            keras.layers.Dense(32, activation="relu", name="dense_a"),
            keras.layers.Dense(10, activation="softmax", name="dense_b"),
        ],
        name="seq",
    )


def _functional() -> keras.Model:
    inputs = keras.Input((8, 8, 4))
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu", name="depthwise")(inputs)
    x = keras.layers.Conv2D(8, 1, name="pointwise")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="head")(x), name="func")


def _set_weights(model: keras.Model, seed: int) -> None:
    """Give every weight a magnitude in [0.1, 1], then zero part of some kernels.

    Nonzero weights far from zero keep int8 rounding (scale = max / 127) and
    float16 from turning them into zeros, so the zero count of every converted
    model must equal the Keras count exactly.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        weights = [
            (rng.uniform(0.1, 1.0, w.shape) * rng.choice([-1.0, 1.0], w.shape)).astype(np.float32)
            for w in layer.get_weights()
        ]
        if layer.name in PRUNED:
            weights[0][rng.random(weights[0].shape) < PRUNED[layer.name]] = 0.0
        if weights:
            layer.set_weights(weights)


def _convert(model: keras.Model, mode: str) -> bytes:
    """Through edgeprune's own converter; int8 calibrates on 8 seeded uniform samples."""
    from edgeprune.adapters.converter import to_tflite

    shape = model.input_shape[1:]
    samples = np.random.default_rng(7).uniform(-1.0, 1.0, (8, *shape)).astype(np.float32)
    return to_tflite(model, mode, samples if mode == "int8" else None)


@pytest.fixture(scope="module")
def keras_models() -> dict[str, keras.Model]:
    models = {"sequential": _sequential(), "functional": _functional()}
    for seed, model in enumerate(models.values()):
        _set_weights(model, seed)
    return models


@pytest.fixture(scope="module")
def tflite_paths(keras_models, tmp_path_factory) -> dict[tuple[str, str], Path]:
    folder = tmp_path_factory.mktemp("tflite")
    paths = {}
    for name, model in keras_models.items():
        for mode in MODES:
            path = folder / f"{name}_{mode}.tflite"
            path.write_bytes(_convert(model, mode))
            paths[name, mode] = path
    return paths


@pytest.fixture(scope="module")
def infos(tflite_paths) -> dict[tuple[str, str], ModelInfo]:
    return {key: inspect_model(path) for key, path in tflite_paths.items()}


def _keras_kernels(model: keras.Model) -> list[np.ndarray]:
    return [layer.get_weights()[0] for layer in model.layers if layer.get_weights()]


def _by_name(info: ModelInfo, suffix: str):
    (tensor,) = [t for t in info.tensors if t.is_constant and t.name.endswith(suffix)]
    return tensor


# --- converter output --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["sequential", "functional"])
def test_op_counts_match_the_keras_layers(infos, name, mode):
    expected = dict(EXPECTED_OPS[name])
    if mode == "float16":
        expected["DEQUANTIZE"] = FLOAT16_DEQUANTIZE_OPS[name]
    info = infos[name, mode]
    assert info.op_counts == dict(sorted(expected.items()))
    assert list(info.op_counts) == sorted(info.op_counts)
    assert len(info.operators) == sum(expected.values())
    assert info.subgraphs == 1


def test_float32_io_keeps_keras_shapes_and_dynamic_batch(infos):
    info = infos["sequential", "float32"]
    (inp,), (out,) = info.inputs, info.outputs
    assert (inp.shape, inp.shape_signature, inp.dtype) == (
        (1, 16, 16, 3),
        (-1, 16, 16, 3),
        "float32",
    )
    assert (out.shape, out.dtype) == ((1, 10), "float32")
    assert inp.scales == inp.zero_points == ()
    assert not inp.is_constant and inp.nbytes == 16 * 16 * 3 * 4


def test_int8_model_has_quantized_int8_io(infos):
    info = infos["sequential", "int8"]
    (inp,), (out,) = info.inputs, info.outputs
    assert (inp.dtype, inp.shape, out.dtype, out.shape) == ("int8", (1, 16, 16, 3), "int8", (1, 10))
    assert len(inp.scales) == 1 and inp.scales[0] > 0
    assert len(inp.zero_points) == 1 and -128 <= inp.zero_points[0] <= 127
    # Softmax output in int8 is fixed by the kernel to scale 1/256, zero point -128.
    assert out.scales == (1 / 256,) and out.zero_points == (-128,)
    assert inp.nbytes == 16 * 16 * 3


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["sequential", "functional"])
def test_parameter_count_equals_keras_count_params(keras_models, infos, name, mode):
    # Holds in every mode because nothing is folded (no BatchNormalization)
    # and: int32 shape/axis constants (Flatten's RESHAPE, MEAN's axes) are
    # excluded; float16 kernels and biases are counted once as float16
    # constants, the DEQUANTIZE outputs being activations; int8 models count
    # int8 kernels plus int32 biases; dynamic-range models mix int8 and float32
    # kernels with float32 biases.
    assert infos[name, mode].parameter_count == keras_models[name].count_params()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", ["sequential", "functional"])
def test_weight_zero_count_matches_zeroed_keras_kernels(keras_models, infos, name, mode):
    kernels = _keras_kernels(keras_models[name])
    weights = infos[name, mode].weights
    zeros = sum(int(np.count_nonzero(k == 0)) for k in kernels)
    assert zeros > 0
    assert weights.tensors == len(kernels)
    assert weights.elements == sum(k.size for k in kernels)
    assert weights.zero_elements == zeros
    assert weights.zero_fraction == pytest.approx(zeros / weights.elements)


def test_dense_kernel_zero_fraction_is_the_zeroed_fraction(keras_models, infos):
    dense_kernel = keras_models["sequential"].get_layer("dense_a").get_weights()[0]
    expected = np.count_nonzero(dense_kernel == 0) / dense_kernel.size
    assert expected == pytest.approx(ZEROED_FRACTION, abs=0.03)
    for mode in MODES:
        (dense,) = [
            w
            for w in infos["sequential", mode].weights.per_tensor
            if w.name.endswith("dense_a/MatMul")
        ]
        assert dense.zero_fraction == expected, mode


def test_float16_weights_are_the_constants_behind_dequantize(infos):
    info = infos["sequential", "float16"]
    assert {w.dtype for w in info.weights.per_tensor} == {"float16"}
    producers = {t: op for op in info.operators for t in op.outputs}
    for op in info.operators:
        if op.opcode in {"CONV_2D", "FULLY_CONNECTED"}:
            source = producers[op.inputs[1]]
            assert source.opcode == "DEQUANTIZE"
            assert info.tensors[source.inputs[0]].dtype == "float16"
            assert not info.tensors[op.inputs[1]].is_constant


def test_dynamic_range_model_stores_large_filters_as_int8(infos):
    dtypes = {
        w.name.split("/")[1]: w.dtype for w in infos["sequential", "dynamic"].weights.per_tensor
    }
    assert dtypes == {
        "conv_a": "float32",
        "conv_b": "int8",
        "dense_a": "int8",
        "dense_b": "float32",
    }


def test_read_constant_returns_the_keras_kernel_in_tflite_layout(keras_models, tflite_paths, infos):
    kernel = keras_models["sequential"].get_layer("dense_a").get_weights()[0]  # (in, out)
    path = tflite_paths["sequential", "float32"]
    stored = read_constant(path, _by_name(infos["sequential", "float32"], "dense_a/MatMul"))
    np.testing.assert_array_equal(stored, kernel.T)  # FULLY_CONNECTED keeps (out, in)
    conv = keras_models["sequential"].get_layer("conv_a").get_weights()[0]  # (kh, kw, in, out)
    stored = read_constant(
        path.read_bytes(), _by_name(infos["sequential", "float32"], "conv_a/Conv2D")
    )
    np.testing.assert_array_equal(stored, conv.transpose(3, 0, 1, 2))  # CONV_2D: (out, kh, kw, in)

    f16 = infos["sequential", "float16"]
    stored = read_constant(tflite_paths["sequential", "float16"], _by_name(f16, "dense_a/MatMul"))
    assert stored.dtype == np.float16
    np.testing.assert_array_equal(stored, kernel.T.astype(np.float16))


def test_int8_kernel_is_per_channel_symmetric_and_dequantizes_to_keras(
    keras_models, tflite_paths, infos
):
    kernel = keras_models["sequential"].get_layer("dense_a").get_weights()[0].T
    tensor = _by_name(infos["sequential", "int8"], "dense_a/MatMul")
    assert tensor.quantized_dimension == 0 and len(tensor.scales) == kernel.shape[0]
    assert set(tensor.zero_points) == {0}
    stored = read_constant(tflite_paths["sequential", "int8"], tensor)
    assert stored.dtype == np.int8 and stored.shape == kernel.shape
    scales = np.asarray(tensor.scales, np.float32)[:, None]
    np.testing.assert_allclose(stored * scales, kernel, atol=float(scales.max()) / 2 + 1e-7)


def test_file_size_and_path_are_recorded(tflite_paths, infos):
    for key, path in tflite_paths.items():
        assert infos[key].file_bytes == len(path.read_bytes())
        assert infos[key].path == str(path)
    from_bytes = inspect_model(tflite_paths["functional", "int8"].read_bytes())
    assert from_bytes.path is None
    assert from_bytes.tensors == infos["functional", "int8"].tensors


def test_constant_bytes_sum_constant_buffers(infos):
    for info in infos.values():
        assert info.constant_bytes == sum(t.nbytes for t in info.tensors if t.is_constant)
        assert not info.has_offset_buffers
    # int8 kernels take a quarter of the float32 kernels' bytes.
    f32, i8 = infos["sequential", "float32"], infos["sequential", "int8"]
    assert f32.constant_bytes > 3 * i8.constant_bytes


def test_format_model_info_shows_summary_and_every_tensor(infos):
    info = infos["sequential", "int8"]
    text = format_model_info(info)
    assert f"file size        {info.file_bytes:,} B" in text
    assert f"parameters       {info.parameter_count:,}" in text
    assert f"({info.weights.zero_fraction:.1%})" in text
    assert "(?, 16, 16, 3)" in text and "0.00390625" in text and "-128" in text
    for opcode, count in info.op_counts.items():
        assert any(line.split() == [opcode, str(count)] for line in text.splitlines())
    tensor_rows = text.split("\nTensors\n")[1].splitlines()[2:]
    assert len(tensor_rows) == len(info.tensors)
    long_names = [t.name for t in info.tensors if len(t.name) > 40]
    assert long_names and all(name not in text for name in long_names)
    assert all(t.name[:37] + "..." in text for t in info.tensors if len(t.name) > 40)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "0 bytes, too short for a TFLite model"),
        (b"model = keras.Sequential()\n", "not a TFLite model: bytes 4:8 are b'l = '"),
        (bytes(np.random.default_rng(3).integers(0, 256, 512, np.uint8)), "not a TFLite model"),
        (b"\xff\xff\xff\x7fTFL3" + bytes(200), "damaged TFLite model: truncated"),
    ],
    ids=["empty", "text", "random", "identifier-but-garbage"],
)
def test_not_a_tflite_file_raises_format_error_naming_the_file(tmp_path, content, message):
    path = tmp_path / "model.tflite"
    path.write_bytes(content)
    with pytest.raises(TFLiteFormatError, match="model.tflite: ") as excinfo:
        inspect_model(path)
    assert message in str(excinfo.value)
    assert "\n" not in str(excinfo.value)
    assert isinstance(excinfo.value, ValueError)


def test_truncated_model_raises_format_error(tflite_paths):
    data = tflite_paths["sequential", "float32"].read_bytes()
    with pytest.raises(TFLiteFormatError, match=r"^<bytes>: damaged TFLite model: truncated"):
        inspect_model(data[: len(data) // 2])


def test_missing_file_raises_model_load_error_naming_it(tmp_path):
    with pytest.raises(ModelLoadError, match=r"absent.tflite does not exist; check the path$"):
        inspect_model(tmp_path / "absent.tflite")


def test_read_constant_of_an_activation_says_it_has_no_data(tflite_paths, infos):
    activation = infos["sequential", "float32"].inputs[0]
    with pytest.raises(ValueError, match="has no data in this file"):
        read_constant(tflite_paths["sequential", "float32"], activation)


# --- hand-built flatbuffers: layouts the converter does not produce here -----------------------

from tflite_build import OP, TYPE  # noqa: E402 - tests/ is on sys.path under pytest
from tflite_build import flatbuffer as _flatbuffer  # noqa: E402
from tflite_build import tensor as _tensor  # noqa: E402


def test_per_channel_zero_points_define_zero_weights_and_custom_ops_are_named():
    weights = np.array([[128, 1, 128, 128], [100, 100, 5, 100], [0, 0, 0, 7]], np.uint8)
    data = _flatbuffer(
        tensors=[
            _tensor("in", [1, 4], TYPE.UINT8, 0, [0.5], [128]),
            _tensor("w", [3, 4], TYPE.UINT8, 1, [0.1, 0.2, 0.3], [128, 100, 0], axis=0),
            _tensor("b", [3], TYPE.INT32, 2),
            _tensor("fc", [1, 3], TYPE.UINT8),
            _tensor("shape", [2], TYPE.INT32, 3),
            _tensor("out", [3, 1], TYPE.UINT8),
        ],
        ops=[
            (OP.FULLY_CONNECTED, None, [0, 1, 2], [3]),
            (OP.RESHAPE, None, [3, 4], [5]),
            (OP.CUSTOM, b"MyOp", [5, -1], [5]),
        ],
        buffers=[weights.tobytes(), np.arange(3, dtype=np.int32).tobytes(), b"\x03\0\0\0\1\0\0\0"],
    )
    info = inspect_model(data)
    assert info.op_counts == {"CUSTOM:MyOp": 1, "FULLY_CONNECTED": 1, "RESHAPE": 1}
    assert info.operators[2].inputs == (5, -1)
    # 3 zeros per row: 128 in row 0, 100 in row 1, 0 in row 2.
    assert (info.weights.tensors, info.weights.elements, info.weights.zero_elements) == (1, 12, 9)
    # The int32 bias counts as parameters, RESHAPE's int32 shape does not.
    assert info.parameter_count == 12 + 3
    assert info.constant_bytes == 12 + 12 + 8
    assert info.description == "hand-built"


def test_int4_filter_is_unpacked_low_nibble_first_and_greater_op_codes_are_named():
    values = np.array([0, -1, 7, -8, 0, 3], np.int8)
    packed = bytes(int(lo) & 0xF | (int(hi) & 0xF) << 4 for lo, hi in values.reshape(-1, 2))
    data = _flatbuffer(
        tensors=[
            _tensor("output_shape", [5], TYPE.INT32, 1),
            _tensor("filter", [2, 1, 1, 1, 3], TYPE.INT4, 2, [0.5, 0.25], [0, 0], axis=0),
            _tensor("in", [1, 1, 1, 1, 3], TYPE.FLOAT32),
            _tensor("bias", [2], TYPE.FLOAT32, 3),
            _tensor("out", [1, 1, 1, 1, 2], TYPE.FLOAT32),
        ],
        ops=[(OP.CONV_3D_TRANSPOSE, None, [0, 1, 2, 3], [4])],
        buffers=[np.ones(5, np.int32).tobytes(), packed, np.zeros(2, np.float32).tobytes()],
        graph_inputs=(2,),
    )
    info = inspect_model(data)
    assert OP.CONV_3D_TRANSPOSE > 127
    assert info.op_counts == {"CONV_3D_TRANSPOSE": 1}
    filt = info.tensors[1]
    assert (filt.dtype, filt.nbytes, filt.elements) == ("int4", 3, 6)
    np.testing.assert_array_equal(read_constant(data, filt), values.reshape(2, 1, 1, 1, 3))
    assert (info.weights.elements, info.weights.zero_elements) == (6, 2)
    # Filter (6 int4) + float32 bias (2); the int32 output shape is not a parameter.
    assert info.parameter_count == 8


def test_buffers_stored_after_the_flatbuffer_are_read_from_their_offset():
    kernel = np.array([[0.0, 1.5], [0.0, 0.0], [-2.0, 0.0]], np.float32)
    bias = np.array([0.25, 0.0, 1.0], np.float32)

    def build(offsets):
        return _flatbuffer(
            tensors=[
                _tensor("in", [1, 2], TYPE.FLOAT32),
                _tensor("w", [3, 2], TYPE.FLOAT32, 1),
                _tensor("b", [3], TYPE.FLOAT32, 2),
                _tensor("out", [1, 3], TYPE.FLOAT32),
            ],
            ops=[(OP.FULLY_CONNECTED, None, [0, 1, 2], [3])],
            buffers=[kernel.tobytes(), bias.tobytes()],
            offsets=offsets,
        )

    # A nonzero placeholder keeps the uint64 fields in the table, so the
    # flatbuffer's length does not change when the real offsets are written.
    head_bytes = len(build({1: 2, 2: 2}))
    start = -(-head_bytes // 16) * 16
    offsets = {1: start, 2: start + kernel.nbytes}
    head = build(offsets)
    assert len(head) == head_bytes
    data = head.ljust(start, b"\0") + kernel.tobytes() + bias.tobytes()

    info = inspect_model(data)
    assert info.has_offset_buffers
    assert [t.nbytes for t in info.tensors if t.is_constant] == [24, 12]
    assert (info.weights.elements, info.weights.zero_elements) == (6, 4)
    assert info.parameter_count == 9
    np.testing.assert_array_equal(read_constant(data, info.tensors[1]), kernel)
    with pytest.raises(TFLiteFormatError, match="lies past the end of the"):
        inspect_model(data[: start + 4])


def test_operator_with_undeclared_opcode_raises_format_error():
    model = schema.ModelT.InitFromPackedBuf(
        _flatbuffer(
            tensors=[_tensor("in", [1], TYPE.FLOAT32), _tensor("out", [1], TYPE.FLOAT32)],
            ops=[(OP.RELU, None, [0], [1])],
            buffers=[],
        )
    )
    model.subgraphs[0].operators[0].opcodeIndex = 5
    builder = flatbuffers.Builder(256)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    with pytest.raises(TFLiteFormatError, match="uses opcode 5, but only 1 are declared"):
        inspect_model(bytes(builder.Output()))


# --- import cost -------------------------------------------------------------------------------


def test_module_imports_fast_and_never_imports_tensorflow(tflite_paths):
    script = f"""
import json, sys, time
start = time.perf_counter()
import edgeprune.tflite as m
from edgeprune.presentation.inspect import format_model_info
import_seconds = time.perf_counter() - start
info = m.inspect_model({str(tflite_paths["sequential", "float16"])!r})
format_model_info(info)
m.read_constant(info.path, info.tensors[info.weights.per_tensor[0].index])
heavy = sorted(k for k in sys.modules
               if k.split(".")[0] in ("tensorflow", "tf_keras", "keras")
               or k == "ai_edge_litert.interpreter")
print(json.dumps({{"import_seconds": import_seconds, "heavy": heavy,
                  "parameters": info.parameter_count}}))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    assert report["parameters"] > 0
    assert report["import_seconds"] < 0.3
