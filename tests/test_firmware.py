"""Tests for edgeprune.firmware: C array round trip, op resolver, config constants, atomic writes.

The generated C++ is compiled with the system compiler. TFLite Micro's own
headers are not available here, so ``ops_<name>.h`` is compiled against stub
headers written by the test: a ``MicroMutableOpResolver<N>`` that, like the
real one, refuses more than N ops or the same op twice, and counts and logs
the calls it gets.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from ai_edge_litert import schema_py_generated as schema  # noqa: E402
from tflite_build import signal_window_model  # noqa: E402 - tests/ is on sys.path under pytest

from edgeprune.artifacts import ArtifactWriteError  # noqa: E402
from edgeprune.errors import BadInputError, UnsupportedModelError  # noqa: E402
from edgeprune.firmware import emit as firmware  # noqa: E402
from edgeprune.firmware import model_files, resolver  # noqa: E402
from edgeprune.firmware.emit import (  # noqa: E402
    RESOLVER_METHODS,
    Names,
    c_identifier,
    check_name,
    default_name,
    names,
    render,
    resolver_calls,
    write_firmware,
)
from edgeprune.tflite import inspect_model  # noqa: E402

CXX = shutil.which("g++") or shutil.which("c++")
needs_cxx = pytest.mark.skipif(CXX is None, reason="no C++ compiler (g++ or c++) on PATH")
CXXFLAGS = ["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"]

INT8_NAME = "final_int8.tflite"
FLOAT_NAME = "final_float32.tflite"
N8 = names("final_int8")  # render's default name: the file's stem
# Ops the shared tiny CNN (tests/conftest.py) becomes: Flatten is a RESHAPE.
MODEL_OPS = {"CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"}


@pytest.fixture(scope="module")
def int8_files(int8_model) -> dict[str, str]:
    return render(int8_model, INT8_NAME, 6144)


# --- helpers -----------------------------------------------------------------------------------


def _compile_and_run(tmp: Path, sources: list[str], *args: str, include: Path | None = None) -> str:
    exe = tmp / "prog"
    cmd = [CXX, *CXXFLAGS, "-I", str(tmp)]
    if include is not None:
        cmd += ["-I", str(include)]
    build = subprocess.run(
        [*cmd, *(str(tmp / s) for s in sources), "-o", str(exe)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def _save(tmp: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)


def _n(files: dict[str, str]) -> Names:
    """The names of the rendered ``files``, from the name of their ops_<name>.h."""
    return names(next(f[4:-2] for f in files if f.startswith("ops_")))


# --- identifiers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("digits_cnn.tflite", "digits_cnn"),
        ("runs/mcu/kws.tflite", "kws"),
        ("My Model-v2.1.tflite", "my_model_v2_1"),
        ("3layers.tflite", "model_3layers"),
        ("int.tflite", "int"),
        ("class", "class"),
        ("__weird__name__.TFLITE", "weird_name"),
        ("modèle_ü.tflite", "mod_le"),
        ("", "model"),
        ("...tflite", "model"),
        ("a" * 50 + "_b.tflite", "a" * 40),
    ],
)
def test_default_name_sanitizes_file_names(source, expected):
    name = default_name(source)
    assert name == expected
    assert check_name(name) == name  # always usable
    ident = c_identifier(name)
    assert ident == f"g_{expected}_model_data"
    assert "__" not in ident  # reserved to the C++ implementation


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("digits_cnn", ("DigitsCnn", "g_digits_cnn_model_data", "digits_cnn_OpResolver")),
        ("kws", ("Kws", "g_kws_model_data", "kws_OpResolver")),
        ("net2_1", ("Net2_1", "g_net2_1_model_data", "net2_1_OpResolver")),
        ("KWS", ("KWS", "g_KWS_model_data", "KWS_OpResolver")),
    ],
)
def test_names_prefix_every_file_and_symbol(name, expected):
    n = names(name)
    assert (n.camel, n.array, n.resolver) == expected
    assert (n.model_h, n.model_cc, n.ops_h, n.config_h, n.labels_h) == (
        f"model_{name}.h",
        f"model_{name}.cc",
        f"ops_{name}.h",
        f"config_{name}.h",
        f"labels_{name}.h",
    )
    assert (n.register, n.arena, n.labels_array) == (
        f"{name}_RegisterOps",
        f"k{expected[0]}ArenaBytes",
        f"k{expected[0]}Labels",
    )


@pytest.mark.parametrize(
    "name", ["", "_x", "x_", "a__b", "9lives", "digits-cnn", "naïve", "a b", "a" * 41, 7]
)
def test_a_name_that_is_not_a_c_name_is_refused(int8_model, name):
    with pytest.raises(BadInputError, match="firmware name") as err:
        render(int8_model, INT8_NAME, 1024, name=name)
    assert "\n" not in str(err.value)


@needs_cxx
@pytest.mark.parametrize("name", ["3net-v2_1.tflite", "int.tflite", "naïve model.tflite", ""])
def test_awkward_names_give_compilable_headers(int8_model, tmp_path, name):
    files = render(int8_model, name, 1024)
    _stub_tflm(tmp_path / "stub", files)
    _save(tmp_path, files)
    n = _n(files)
    assert n.name == default_name(name)
    (tmp_path / "main.cc").write_text(
        f'#include "{n.model_h}"\n#include "{n.ops_h}"\n#include "{n.config_h}"\n'
        f"int main() {{ {n.resolver} r; return {n.register}(r) == kTfLiteOk &&\n"
        f"  {n.arena} == 1024 && {n.array}_len > 0 ? 0 : 1; }}\n"
    )
    _compile_and_run(tmp_path, ["main.cc", n.model_cc], include=tmp_path / "stub")


@needs_cxx
def test_two_models_link_into_one_program(int8_model, float_model, tmp_path):
    """Every symbol carries the name: two models' files compile and link together."""
    a = render(int8_model, INT8_NAME, 2048, name="kws")
    b = render(float_model, FLOAT_NAME, 4096, name="vww")
    _stub_tflm(tmp_path / "stub", a)
    _save(tmp_path, {f: t for f, t in {**a, **b}.items() if "/" not in f})
    ka, kb = names("kws"), names("vww")
    (tmp_path / "main.cc").write_text(
        "".join(f'#include "{h}"\n' for n in (ka, kb) for h in (n.model_h, n.ops_h, n.config_h))
        + f"int main() {{ {ka.resolver} ra; {kb.resolver} rb;\n"
        f"  return {ka.register}(ra) == kTfLiteOk && {kb.register}(rb) == kTfLiteOk &&\n"
        f"  {ka.arena} == 2048 && {kb.arena} == 4096 && {ka.array}_len == {len(int8_model)}u &&\n"
        f"  {kb.array}_len == {len(float_model)}u ? 0 : 1; }}\n"
    )
    _compile_and_run(tmp_path, ["main.cc", ka.model_cc, kb.model_cc], include=tmp_path / "stub")


# --- model_data --------------------------------------------------------------------------------


@needs_cxx
@pytest.mark.parametrize("kind", ["int8", "float32"])
def test_model_data_compiles_and_round_trips_byte_for_byte(int8_model, float_model, tmp_path, kind):
    model, name = (int8_model, INT8_NAME) if kind == "int8" else (float_model, FLOAT_NAME)
    files = render(model, name, None)
    n = _n(files)
    _save(tmp_path, {n.model_h: files[n.model_h], n.model_cc: files[n.model_cc]})
    ident = n.array
    (tmp_path / "main.cc").write_text(
        f"""#include <cstdint>
#include <cstdio>
#include "{n.model_h}"
int main(int argc, char** argv) {{
  if (argc != 2) return 2;
  std::FILE* out = std::fopen(argv[1], "wb");
  if (out == nullptr) return 3;
  if (std::fwrite({ident}, 1, {ident}_len, out) != {ident}_len) return 4;
  std::fclose(out);
  std::printf("len=%u\\n", {ident}_len);
  const std::uintptr_t address = reinterpret_cast<std::uintptr_t>({ident});
  std::printf("aligned=%d\\n", static_cast<int>(address % 16 == 0));
  return 0;
}}
"""
    )
    dumped = tmp_path / "dumped.tflite"
    out = _compile_and_run(tmp_path, ["main.cc", n.model_cc], str(dumped))
    assert dumped.read_bytes() == model
    assert f"len={len(model)}\n" in out
    assert "aligned=1\n" in out


def test_model_data_layout_and_header_comment(int8_model, int8_files):
    import hashlib

    cc = int8_files[N8.model_cc]
    rows = re.findall(r"^    ((?:0x[0-9a-f]{2}, )*0x[0-9a-f]{2}),$", cc, re.M)
    assert all(len(r.split(", ")) == 12 for r in rows[:-1])
    assert 1 <= len(rows[-1].split(", ")) <= 12
    assert sum(len(r.split(", ")) for r in rows) == len(int8_model)
    assert "alignas(16) const unsigned char g_final_int8_model_data[] = {" in cc
    assert f"const unsigned int g_final_int8_model_data_len = {len(int8_model)};" in cc
    digest = hashlib.sha256(int8_model).hexdigest()
    for text in int8_files.values():
        assert f"// Generated by edgeprune from {INT8_NAME}: do not edit." in text
        assert f"// Model: {len(int8_model)} bytes, SHA-256 {digest}" in text
    header = int8_files[N8.model_h]
    assert "#ifndef EDGEPRUNE_FINAL_INT8_MODEL_H_" in header
    assert "extern const unsigned char g_final_int8_model_data[];" in header
    assert "extern const unsigned int g_final_int8_model_data_len;" in header


# --- model_ops ---------------------------------------------------------------------------------


def _stub_tflm(root: Path, files: dict[str, str]) -> None:
    """Stub TFLM headers: the resolver of the table's methods, and each kernel header used."""
    micro = root / "tensorflow" / "lite" / "micro"
    (micro / "kernels").mkdir(parents=True, exist_ok=True)
    (root / "stub_common.h").write_text(
        """#ifndef STUB_COMMON_H_
#define STUB_COMMON_H_
typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
namespace tflite {
struct TFLMRegistration { const char* kernel; };
}
#endif
"""
    )
    methods = []
    for opcode, method in RESOLVER_METHODS.items():
        methods.append(
            f'  TfLiteStatus {method}(const TFLMRegistration& r = TFLMRegistration{{"{opcode}"}})'
            f' {{ return Add("{method}", r); }}'
        )
    for name, method in resolver.CUSTOM_METHODS.items():  # AddWindow() and the like
        methods.append(
            f'  TfLiteStatus {method}() {{ return Add("{method}", TFLMRegistration{{"{name}"}}); }}'
        )
    (micro / "micro_mutable_op_resolver.h").write_text(
        """#ifndef STUB_MICRO_MUTABLE_OP_RESOLVER_H_
#define STUB_MICRO_MUTABLE_OP_RESOLVER_H_
#include <cstdio>
#include <cstring>
#include "stub_common.h"
namespace tflite {
template <unsigned int tOpCount>
class MicroMutableOpResolver {
 public:
  unsigned int count = 0;
"""
        + "\n".join(methods)
        + """
 private:
  const char* added_[tOpCount > 0 ? tOpCount : 1] = {};
  TfLiteStatus Add(const char* method, const TFLMRegistration& r) {
    for (unsigned int i = 0; i < count; ++i) {
      if (std::strcmp(added_[i], method) == 0) return kTfLiteError;  // added twice
    }
    if (count >= tOpCount) return kTfLiteError;  // resolver too small
    added_[count++] = method;
    std::printf("%s %s\\n", method, r.kernel);
    return kTfLiteOk;
  }
};
}  // namespace tflite
#endif
"""
    )
    # Each kernel header declares only its own registrations, so a missing
    # #include in ops_<name>.h fails to compile.
    by_header: dict[str, list[str]] = {}
    for kernels in resolver._TYPED_KERNELS.values():
        for k in kernels:
            by_header.setdefault(k.header, []).append(k.registration)
    for header, registrations in by_header.items():
        guard = "STUB_" + re.sub(r"\W", "_", header).upper()
        body = "\n".join(
            f"inline TFLMRegistration {r}() "
            f'{{ return TFLMRegistration{{"{r.removeprefix("Register_")}"}}; }}'
            for r in registrations
        )
        path = root / header
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f'#ifndef {guard}\n#define {guard}\n#include "stub_common.h"\nnamespace tflite {{\n'
            f"{body}\n}}  // namespace tflite\n#endif\n"
        )


def _run_resolver(tmp_path: Path, files: dict[str, str]) -> tuple[int, list[str]]:
    """Register the ops of ops_<name>.h in the stub resolver; (status, log lines)."""
    _stub_tflm(tmp_path / "stub", files)
    n = _n(files)
    _save(tmp_path, {n.ops_h: files[n.ops_h]})
    (tmp_path / "main.cc").write_text(
        f"""#include <cstdio>
#include "{n.ops_h}"
int main() {{
  {n.resolver} resolver;
  const TfLiteStatus status = {n.register}(resolver);
  std::printf("status=%d count=%u n=%d\\n", static_cast<int>(status), resolver.count,
              k{n.camel}OpCount);
  return 0;
}}
"""
    )
    out = _compile_and_run(tmp_path, ["main.cc"], include=tmp_path / "stub").splitlines()
    status = re.fullmatch(r"status=(\d+) count=(\d+) n=(\d+)", out[-1])
    assert status, out
    assert int(status.group(2)) <= int(status.group(3))
    return int(status.group(1)), out[:-1]


def test_resolver_registers_exactly_the_distinct_ops(int8_model, float_model):
    for model in (int8_model, float_model):
        info = inspect_model(model)
        assert set(info.op_counts) == MODEL_OPS
        calls = resolver_calls(info)
        assert len(calls) == len(info.op_counts)
        methods = [c.split("(")[0] for c in calls]
        assert methods == sorted(RESOLVER_METHODS[op] for op in info.op_counts)


def test_int8_model_gets_int8_only_kernels(int8_model, int8_files):
    assert resolver_calls(inspect_model(int8_model)) == [
        "AddConv2D(tflite::Register_CONV_2D_INT8())",
        "AddFullyConnected(tflite::Register_FULLY_CONNECTED_INT8())",
        "AddMaxPool2D(tflite::Register_MAX_POOL_2D_INT8())",
        "AddReshape()",
        "AddSoftmax(tflite::Register_SOFTMAX_INT8())",
    ]
    ops_h = int8_files[N8.ops_h]
    assert "constexpr int kFinalInt8OpCount = 5;" in ops_h
    assert (
        "using final_int8_OpResolver = tflite::MicroMutableOpResolver<kFinalInt8OpCount>;" in ops_h
    )
    assert "inline TfLiteStatus final_int8_RegisterOps(final_int8_OpResolver& resolver) {" in ops_h
    for header in ("conv.h", "fully_connected.h", "pooling.h", "softmax.h"):
        assert f'#include "tensorflow/lite/micro/kernels/{header}"' in ops_h
    assert (
        "  if (resolver.AddConv2D(tflite::Register_CONV_2D_INT8()) != kTfLiteOk) {\n"
        "    return kTfLiteError;\n"
        "  }\n"
    ) in ops_h


def test_float_model_gets_generic_kernels(float_model):
    files = render(float_model, FLOAT_NAME, None)
    calls = resolver_calls(inspect_model(float_model))
    assert calls == [
        "AddConv2D()",
        "AddFullyConnected()",
        "AddMaxPool2D()",
        "AddReshape()",
        "AddSoftmax()",
    ]
    ops_h = files[names("final_float32").ops_h]
    assert "Register_" not in ops_h.split("inline TfLiteStatus")[1]
    assert "kernels/" not in ops_h


def test_float_io_int8_model_gets_int8_kernels_inside(int8_float_io_model):
    info = inspect_model(int8_float_io_model)
    assert set(info.op_counts) == MODEL_OPS | {"QUANTIZE", "DEQUANTIZE"}
    assert resolver_calls(info) == [
        "AddConv2D(tflite::Register_CONV_2D_INT8())",
        "AddDequantize()",
        "AddFullyConnected(tflite::Register_FULLY_CONNECTED_INT8())",
        "AddMaxPool2D(tflite::Register_MAX_POOL_2D_INT8())",
        "AddQuantize()",
        "AddReshape()",
        "AddSoftmax(tflite::Register_SOFTMAX_INT8())",
    ]


def test_mixed_types_fall_back_to_the_generic_kernel(int8_model):
    # One float FULLY_CONNECTED beside an int8 one: a single registration
    # serves both, so it must be the generic kernel.
    info = inspect_model(int8_model)
    fc = next(op for op in info.operators if op.opcode == "FULLY_CONNECTED")
    tensors = list(info.tensors)
    tensors[fc.inputs[1]] = dataclasses.replace(tensors[fc.inputs[1]], dtype="int4")
    changed = dataclasses.replace(info, tensors=tuple(tensors))
    assert "AddFullyConnected()" in resolver_calls(changed)
    assert "AddConv2D(tflite::Register_CONV_2D_INT8())" in resolver_calls(changed)


@needs_cxx
@pytest.mark.parametrize("kind", ["int8", "int8_float_io", "float32"])
def test_model_ops_compiles_and_registers_n_ops(
    int8_model, int8_float_io_model, float_model, tmp_path, kind
):
    model = {"int8": int8_model, "int8_float_io": int8_float_io_model, "float32": float_model}[kind]
    name = f"final_{kind}.tflite"
    files = render(model, name, None)
    status, log = _run_resolver(tmp_path, files)
    assert status == 0
    expected = resolver_calls(inspect_model(model))
    assert len(log) == len(expected) == len(inspect_model(model).op_counts)
    for line, call in zip(log, expected, strict=True):
        method, kernel = line.split()
        assert call.startswith(method + "(")
        if "Register_" in call:
            assert call == f"{method}(tflite::Register_{kernel}())"
        else:
            assert kernel in RESOLVER_METHODS  # the method's default (generic) kernel


@needs_cxx
def test_tflite_micro_custom_kernels_compile_and_register_by_name(tmp_path):
    files = render(signal_window_model(), "window.tflite", None)
    status, log = _run_resolver(tmp_path, files)
    assert (status, log) == (0, ["AddWindow SignalWindow"])


@needs_cxx
def test_stub_resolver_catches_a_wrong_op_count(int8_files, tmp_path):
    # Guards the test itself: a resolver one op too small must fail.
    files = dict(int8_files)
    files[N8.ops_h] = files[N8.ops_h].replace("kFinalInt8OpCount = 5;", "kFinalInt8OpCount = 4;")
    status, log = _run_resolver(tmp_path, files)
    assert status == 1
    assert len(log) == 4


def test_custom_and_unknown_ops_are_refused_by_name(int8_model):
    info = inspect_model(int8_model)
    counts = {**info.op_counts, "CUSTOM:MyFancyOp": 1, "DENSIFY": 1}
    with pytest.raises(UnsupportedModelError) as err:
        resolver_calls(dataclasses.replace(info, op_counts=counts))
    message = str(err.value)
    assert "custom op 'MyFancyOp'" in message
    assert "DENSIFY (no MicroMutableOpResolver method)" in message
    assert "\n" not in message


def test_resolver_table_names_real_builtin_ops():
    builtins = {k for k in vars(schema.BuiltinOperator) if k.isupper()}
    assert set(RESOLVER_METHODS) <= builtins
    methods = [*RESOLVER_METHODS.values(), *resolver.CUSTOM_METHODS.values()]
    assert all(re.fullmatch(r"Add[A-Z][A-Za-z0-9]*", m) for m in methods)
    assert len(set(methods)) == len(methods)
    assert set(resolver._TYPED_KERNELS) <= set(RESOLVER_METHODS)


# --- model_config ------------------------------------------------------------------------------


@needs_cxx
@pytest.mark.parametrize("kind", ["int8", "float32"])
def test_model_config_constants_match_the_model(int8_model, float_model, tmp_path, kind):
    model, name, arena = (
        (int8_model, INT8_NAME, 6144) if kind == "int8" else (float_model, FLOAT_NAME, None)
    )
    info = inspect_model(model)
    files = render(model, name, arena)
    n = _n(files)
    camel = n.camel
    _save(tmp_path, {n.config_h: files[n.config_h]})
    prints = []
    if arena is not None:
        prints.append(f'std::printf("arena=%d\\n", k{camel}ArenaBytes);')
    prints.append(f'std::printf("counts=%d %d\\n", k{camel}InputCount, k{camel}OutputCount);')
    for kind_name, tensors in (("Input", info.inputs), ("Output", info.outputs)):
        for i, t in enumerate(tensors):
            p = f"k{camel}{kind_name}{i}"
            prints += [
                f'std::printf("{p} rank=%d elements=%d bytes=%d dims=", {p}Rank, {p}Elements, '
                f"{p}Bytes);",
                f'for (int d : {p}Dims) std::printf("%d,", d);',
                'std::printf("\\n");',
            ]
            if t.scales:
                prints.append(
                    f'std::printf("{p} scale=%.9g zero_point=%d\\n", {p}Scale, {p}ZeroPoint);'
                )
    (tmp_path / "main.cc").write_text(
        f'#include <cstdio>\n#include "{n.config_h}"\nint main() {{\n'
        + "\n".join(prints)
        + "\nreturn 0;\n}\n"
    )
    out = _compile_and_run(tmp_path, ["main.cc"])
    if arena is None:
        assert "ArenaBytes =" not in files[n.config_h]
        assert "not measured" in files[n.config_h]
    else:
        assert f"arena={arena}\n" in out
    assert f"counts={len(info.inputs)} {len(info.outputs)}\n" in out
    for kind_name, tensors in (("Input", info.inputs), ("Output", info.outputs)):
        for i, t in enumerate(tensors):
            p = f"k{camel}{kind_name}{i}"
            dims = "".join(f"{d}," for d in t.shape)
            assert (
                f"{p} rank={len(t.shape)} elements={t.elements} bytes={t.nbytes} dims={dims}\n"
                in out
            )
            line = re.search(rf"^{p} scale=(\S+) zero_point=(-?\d+)$", out, re.M)
            if kind == "float32":
                assert line is None and not t.scales
                continue
            assert t.dtype == "int8"
            assert np.float32(float(line.group(1))) == np.float32(t.scales[0])
            assert int(line.group(2)) == t.zero_points[0]


def test_config_scale_literals_round_trip_float32(int8_model, int8_files):
    info = inspect_model(int8_model)
    text = int8_files[N8.config_h]
    for kind_name, tensors in (("Input", info.inputs), ("Output", info.outputs)):
        for i, t in enumerate(tensors):
            literal = re.search(rf"kFinalInt8{kind_name}{i}Scale = (\S+)f;", text).group(1)
            assert np.float32(literal) == np.float32(t.scales[0])
            assert f'// {kind_name} {i} "{t.name}": int8, shape (' in text
    assert model_files.float_literal(2.0, "x") == "2.0f"
    assert model_files.float_literal(1e-20, "x") == "1e-20f"
    assert model_files.float_literal(float(np.float32(0.1)), "x") == "0.100000001f"
    with pytest.raises(UnsupportedModelError, match="must be finite"):
        model_files.float_literal(float("nan"), "input 0 scale")


@pytest.mark.parametrize("arena", [0, -5, 1.5, True, "1024", 2**31])
def test_bad_arena_size_is_refused(int8_model, arena):
    with pytest.raises(BadInputError, match="arena_bytes"):
        render(int8_model, INT8_NAME, arena)


# --- determinism and writing -------------------------------------------------------------------


def test_render_is_deterministic(int8_model, float_model):
    assert render(int8_model, INT8_NAME, 4096) == render(int8_model, INT8_NAME, 4096)
    a = render(float_model, "/tmp/a/" + FLOAT_NAME, None)
    b = render(float_model, "/elsewhere/" + FLOAT_NAME, None)
    assert a == b  # folders never reach the output
    n = names("final_float32")
    assert set(a) == {n.model_h, n.model_cc, n.ops_h, n.config_h}


def test_write_firmware_writes_the_rendered_files(int8_model, int8_files, tmp_path):
    folder = tmp_path / "out" / "firmware"
    result = write_firmware(int8_model, INT8_NAME, str(folder), 6144)
    assert result.folder == str(folder)
    assert result.identifier == "g_final_int8_model_data"
    assert result.name == "final_int8" and result.example is None
    assert result.op_count == 5
    assert result.ops == tuple(resolver_calls(inspect_model(int8_model)))
    assert set(result.files) == set(int8_files)
    for name, path in result.files.items():
        assert Path(path) == folder / name
        assert Path(path).read_text() == int8_files[name]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["firmware"]


def test_write_firmware_replaces_an_existing_folder(int8_model, tmp_path):
    folder = tmp_path / "firmware"
    folder.mkdir()
    (folder / "stale.txt").write_text("old")
    write_firmware(int8_model, INT8_NAME, folder, None)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [N8.config_h, N8.model_cc, N8.model_h, N8.ops_h]
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["firmware"]


def _fail_on_second_write(monkeypatch):
    real = firmware._write_text
    calls = []

    def flaky(path, text):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, text)

    monkeypatch.setattr(firmware, "_write_text", flaky)


def test_failed_write_leaves_no_folder_and_no_temp_folder(int8_model, tmp_path, monkeypatch):
    _fail_on_second_write(monkeypatch)
    with pytest.raises(ArtifactWriteError, match="No space left on device"):
        write_firmware(int8_model, INT8_NAME, tmp_path / "firmware", None)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_the_previous_folder(int8_model, tmp_path, monkeypatch):
    folder = tmp_path / "firmware"
    folder.mkdir()
    (folder / N8.model_cc).write_text("previous")
    _fail_on_second_write(monkeypatch)
    with pytest.raises(ArtifactWriteError):
        write_firmware(int8_model, INT8_NAME, folder, None)
    assert [p.name for p in tmp_path.iterdir()] == ["firmware"]
    assert [p.name for p in folder.iterdir()] == [N8.model_cc]
    assert (folder / N8.model_cc).read_text() == "previous"


def test_unsupported_model_writes_nothing(tmp_path):
    with pytest.raises(ValueError, match="not a TFLite model"):
        write_firmware(b"\0" * 64, "junk.tflite", tmp_path / "firmware", None)
    assert list(tmp_path.iterdir()) == []


def test_folder_that_is_a_file_is_refused(int8_model, tmp_path):
    (tmp_path / "firmware").write_text("")
    with pytest.raises(BadInputError, match="is a file"):
        write_firmware(int8_model, INT8_NAME, tmp_path / "firmware", None)


# ------------------------------------------------------------ build_firmware


def test_build_firmware_writes_the_folder_with_the_measured_arena(int8_model, tmp_path):
    from edgeprune.stages.firmware import build_firmware

    model = tmp_path / "final_int8.tflite"
    model.write_bytes(int8_model)
    build = build_firmware(str(model), "nano33ble", str(tmp_path / "fw"))
    arena = build.check.evidence.arena_bytes
    assert build.check.ok and arena > 0 and build.check.evidence.arena_min_bytes > 0
    assert "for cortex-m4f" in build.check.evidence.arena_basis  # computed for the device
    # final_int8 names a stage, not a model: the folder's name is the default
    n = names(default_name(tmp_path.name))
    assert build.firmware.name == n.name != "final_int8"
    config = (tmp_path / "fw" / "firmware" / n.config_h).read_text()
    assert re.search(rf"\b{arena}\b", config), config
    assert (tmp_path / "fw" / "firmware" / n.model_cc).exists()
    assert {os.path.basename(a.path) for a in build.firmware.files} >= {
        n.config_h,
        n.model_cc,
    }


@pytest.mark.parametrize("target", ["nano33ble", "pico", "esp32s3", "nucleo_l4r5zi"])
def test_build_firmware_adds_a_project_for_each_sdk_of_the_target(int8_model, tmp_path, target):
    from edgeprune.stages.firmware import build_firmware
    from edgeprune.target import load_target

    model = tmp_path / "digits.tflite"
    model.write_bytes(int8_model)
    build = build_firmware(str(model), target, str(tmp_path / "fw"))
    projects = tmp_path / "fw" / "firmware" / "projects"
    sdks = {board.sdk for board in load_target(target).sdk}
    assert sdks and {p.name for p in projects.iterdir()} == sdks
    recorded = {os.path.relpath(a.path, tmp_path / "fw") for a in build.firmware.files}
    on_disk = {os.path.relpath(p, tmp_path / "fw") for p in projects.rglob("*") if p.is_file()}
    assert on_disk and on_disk <= recorded  # every project file is a recorded artifact
    # the project's sources name this model's symbols, so they build against its files
    sources = "".join(p.read_text() for p in projects.rglob("*.c*") if p.is_file())
    assert "g_digits_model_data" in sources


def test_firmware_command_refuses_a_linux_target_and_exits_3_over_budget(int8_model, tmp_path):
    from click.testing import CliRunner

    from edgeprune.cli import main

    model = tmp_path / "m.tflite"
    model.write_bytes(int8_model)
    r = CliRunner().invoke(main, ["firmware", str(model), "--target", "rpi4"])
    assert r.exit_code == 1 and "rpi4 runs LiteRT on Linux" in r.stderr
    assert not (tmp_path / "firmware").exists()
    r = CliRunner().invoke(
        main, ["firmware", str(model), "--target", "nano33ble", "--max-flash-bytes", "1000"]
    )
    assert r.exit_code == 3, r.output
    assert "flash over budget; firmware/ is written" in r.stderr
    assert (tmp_path / "firmware" / "model_m.h").exists()


def test_firmware_into_another_models_run_folder_is_refused_unless_forced(int8_model, tmp_path):
    """`firmware m.tflite --out RUN` where RUN's report lists other bytes: its firmware/
    would not match the run's report (issue 15's follow-up); one line, exit 1, nothing
    written; --force writes it; the run's own model is accepted."""
    import hashlib
    import json

    from click.testing import CliRunner

    from edgeprune.cli import main

    model = tmp_path / "m.tflite"
    model.write_bytes(int8_model)
    run = tmp_path / "run"
    run.mkdir()
    listed = {"final_int8.tflite": {"stage": "quantize", "sha256": "c" * 64}}
    (run / "report.json").write_text(json.dumps({"inputs": {}, "artifacts": listed}))
    before = sorted(os.listdir(run))
    r = CliRunner().invoke(main, ["firmware", str(model), "--target", "nano33ble", "--out", run])
    assert r.exit_code == 1, r.output
    assert r.stderr.strip().splitlines() == [
        f"edgeprune: error: {run} holds the run of another model than m.tflite; its firmware/ "
        f"would not match that run's report; choose another folder (--out) or pass --force "
        f"to write it there"
    ]
    assert sorted(os.listdir(run)) == before
    r = CliRunner().invoke(
        main, ["firmware", str(model), "--target", "nano33ble", "--out", run, "--force"]
    )
    assert r.exit_code == 0, r.output
    assert (run / "firmware" / "model_m.h").exists()
    listed["final_int8.tflite"]["sha256"] = hashlib.sha256(int8_model).hexdigest()
    (run / "report.json").write_text(json.dumps({"inputs": {}, "artifacts": listed}))
    r = CliRunner().invoke(main, ["firmware", str(model), "--target", "nano33ble", "--out", run])
    assert r.exit_code == 0, r.output
