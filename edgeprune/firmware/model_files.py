"""The model's C files for TensorFlow Lite Micro, as text.

Every file and C symbol carries the model's C name ``<name>`` (``digits_cnn``;
:func:`check_name` says what is valid), so that two models link into one
firmware:

- ``model_<name>.h`` / ``model_<name>.cc``: the model bytes as a 16-byte
  aligned ``g_<name>_model_data[]`` and its length ``g_<name>_model_data_len``
  (TFLM reads the flatbuffer in place, and its allocator expects the buffer
  aligned);
- ``ops_<name>.h``: ``<name>_OpResolver``, a ``tflite::MicroMutableOpResolver``
  sized to exactly the number of distinct ops the model uses, and
  ``<name>_RegisterOps()``, which registers them (the calls planned by
  :mod:`edgeprune.firmware.resolver`);
- ``config_<name>.h``: ``k<Name>ArenaBytes`` and, per input and output, the
  shape, element count, byte count and quantization parameters
  (``k<Name>Input0Scale``, ...).

Every function here is pure.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from edgeprune.errors import BadInputError, UnsupportedModelError
from edgeprune.firmware import alt_memory
from edgeprune.firmware.resolver import RESOLVER_HEADER, ResolverCall, decode_notes
from edgeprune.tflite import ModelInfo, TensorInfo

_BYTES_PER_LINE = 12
# C99 and C++ compilers keep at least 63 significant characters of an internal
# identifier; the longest symbol built on the name (g_<name>_model_data_len) adds 17.
MAX_NAME_CHARS = 40
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*")


@dataclass(frozen=True)
class Names:
    """The file names and C names built on a model's C name (``digits_cnn``)."""

    name: str  # digits_cnn
    camel: str  # DigitsCnn: k<Camel>ArenaBytes, k<Camel>Labels
    array: str  # g_digits_cnn_model_data
    guard: str  # EDGEPRUNE_DIGITS_CNN

    @property
    def model_h(self) -> str:
        return f"model_{self.name}.h"

    @property
    def model_cc(self) -> str:
        return f"model_{self.name}.cc"

    @property
    def ops_h(self) -> str:
        return f"ops_{self.name}.h"

    @property
    def config_h(self) -> str:
        return f"config_{self.name}.h"

    @property
    def labels_h(self) -> str:
        return f"labels_{self.name}.h"

    @property
    def resolver(self) -> str:
        return f"{self.name}_OpResolver"

    @property
    def register(self) -> str:
        return f"{self.name}_RegisterOps"

    @property
    def arena(self) -> str:
        return f"k{self.camel}ArenaBytes"

    @property
    def labels_array(self) -> str:
        return f"k{self.camel}Labels"


def check_name(name: object) -> str:
    """Return ``name`` if it is a usable C name for a model, else raise.

    Usable: ASCII letters, digits and single ``_`` between them, starting with a
    letter, at most :data:`MAX_NAME_CHARS` characters (``__`` anywhere, or ``_``
    and a capital at the start, is reserved to the C++ implementation).

    Raises:
        BadInputError: ``name`` is not such a string; the message says why.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadInputError(
            f"firmware name {name!r} is not a C name: use ASCII letters, digits and "
            f"single underscores, starting with a letter (such as digits_cnn)"
        )
    if len(name) > MAX_NAME_CHARS:
        raise BadInputError(
            f"firmware name {name!r} is {len(name)} characters; use at most {MAX_NAME_CHARS}"
        )
    return name


def default_name(source: str) -> str:
    """A C name for a model file: its stem without folder or ``.tflite``, lowercased,
    every run of characters outside ``[A-Za-z0-9]`` one ``_``, edges trimmed,
    ``model_`` before a leading digit, cut to :data:`MAX_NAME_CHARS`; ``model``
    when nothing is left. Pure; raises nothing."""
    base = os.path.basename(os.fspath(source).replace("\\", "/").rstrip("/"))
    if base.lower().endswith(".tflite"):
        base = base[: -len(".tflite")]
    # ASCII only: C identifiers allow no other letters portably.
    stem = "_".join(w for w in re.split(r"[^A-Za-z0-9]+", base.lower()) if w)
    if stem[:1].isdigit():
        stem = "model_" + stem
    return stem[:MAX_NAME_CHARS].rstrip("_") or "model"


def names(name: str) -> Names:
    """The file and C names for the model C name ``name`` (checked: see :func:`check_name`)."""
    words = check_name(name).split("_")
    camel = ""
    for word in words:
        if camel and camel[-1].isdigit() and word[0].isdigit():
            camel += "_"  # keep v2_1 from reading as v21
        camel += word[0].upper() + word[1:]
    return Names(
        name=name, camel=camel, array=f"g_{name}_model_data", guard=f"EDGEPRUNE_{name.upper()}"
    )


def c_identifier(name: str) -> str:
    """The C identifier of the model array for model C name ``name``:
    ``"digits_cnn"`` gives ``"g_digits_cnn_model_data"``.

    Raises:
        BadInputError: ``name`` is not a C name (see :func:`check_name`).
    """
    return names(name).array


_HEX = [f"0x{b:02x}" for b in range(256)]


def comment_text(text: str) -> str:
    # A backslash ending a // comment would splice the next source line into it.
    return "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in text)


def float_literal(value: float, what: str) -> str:
    if not math.isfinite(value):
        raise UnsupportedModelError(f"{what} is {value}; a firmware constant must be finite")
    # 9 significant digits round-trip any float32.
    text = f"{value:.9g}"
    if not any(c in text for c in ".e"):
        text += ".0"
    return text + "f"


def header(source: str, model: bytes, digest: str, what: str) -> list[str]:
    """The comment lines that open every generated file: what it is, from which model."""
    return [
        f"// {what}",
        f"// Generated by edgeprune from {comment_text(source)}: do not edit.",
        f"// Model: {len(model)} bytes, SHA-256 {digest}",
    ]


def model_data_h(n: Names, head: list[str]) -> str:
    """``model_<name>.h``: the declarations of the model array and its length."""
    guard = f"{n.guard}_MODEL_H_"
    return "\n".join(
        [
            *head,
            "",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            "// The .tflite flatbuffer, aligned to 16 bytes: TFLM reads it in place.",
            f"extern const unsigned char {n.array}[];",
            f"extern const unsigned int {n.array}_len;",
            "",
            f"#endif  // {guard}",
            "",
        ]
    )


def model_data_cc(model: bytes, n: Names, head: list[str]) -> str:
    """``model_<name>.cc``: the model bytes as an aligned C array."""
    rows = [
        "    " + ", ".join(_HEX[b] for b in model[i : i + _BYTES_PER_LINE]) + ","
        for i in range(0, len(model), _BYTES_PER_LINE)
    ]
    return "\n".join(
        [
            *head,
            "",
            f'#include "{n.model_h}"',
            "",
            f"alignas(16) const unsigned char {n.array}[] = {{",
            *rows,
            "};",
            "",
            f"const unsigned int {n.array}_len = {len(model)};",
            "",
        ]
    )


def model_ops_h(calls: list[ResolverCall], n: Names, head: list[str]) -> str:
    """``ops_<name>.h``: the sized op resolver and the function that fills it with ``calls``."""
    guard = f"{n.guard}_OPS_H_"
    count = f"k{n.camel}OpCount"
    resolver = n.resolver
    register = n.register
    headers = sorted({c.kernel.header for c in calls if c.kernel})
    body = [
        line
        for c in calls
        for line in (
            f"  if (resolver.{c.text()} != kTfLiteOk) {{",
            "    return kTfLiteError;",
            "  }",
        )
    ]
    typed = [c for c in calls if c.kernel]
    note = (
        [
            "// Ops whose every instance has int8 activations and weights get TFLM's",
            "// int8-only kernel registration: with optimized kernels (CMSIS-NN, some",
            "// Xtensa) that links only the int8 kernel and saves flash; elsewhere TFLM",
            "// maps it to the generic kernel.",
        ]
        if typed
        else []
    )
    return "\n".join(
        [
            *head,
            "",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            f'#include "{RESOLVER_HEADER}"',
            *(f'#include "{h}"' for h in headers),
            "",
            "// The number of distinct ops in the model (builtin, and custom ops TFLite",
            "// Micro ships kernels for, such as its signal library's): the resolver holds exactly",
            f"// these, so adding another op to it fails until {count} is raised.",
            f"constexpr int {count} = {len(calls)};",
            f"using {resolver} = tflite::MicroMutableOpResolver<{count}>;",
            "",
            *note,
            *(["//"] if note else []),
            "// Usage:",
            f"//   static {resolver} op_resolver;",
            f"//   if ({register}(op_resolver) != kTfLiteOk) {{ /* too small or added twice */ }}",
            "//   tflite::MicroInterpreter interpreter(",
            f"//       tflite::GetModel({n.array}), op_resolver, arena, k{n.camel}ArenaBytes);",
            f"inline TfLiteStatus {register}({resolver}& resolver) {{",
            *body,
            "  return kTfLiteOk;",
            "}",
            "",
            f"#endif  // {guard}",
            "",
        ]
    )


def _tensor_lines(kind: str, position: int, t: TensorInfo, camel: str) -> list[str]:
    prefix = f"k{camel}{kind}{position}"
    shape = ", ".join(str(d) for d in t.shape)
    lines = [
        f'// {kind} {position} "{comment_text(t.name)}": {t.dtype}, shape ({shape})',
        f"constexpr int {prefix}Rank = {len(t.shape)};",
    ]
    if t.shape:
        lines.append(f"constexpr int {prefix}Dims[] = {{{shape}}};")
    lines += [
        f"constexpr int {prefix}Elements = {t.elements};",
        f"constexpr int {prefix}Bytes = {t.nbytes};",
    ]
    what = f"{kind.lower()} {position} ({t.name!r})"
    if not t.scales:
        lines.append("// Not quantized: no scale or zero point.")
    elif len(t.scales) == 1:
        zero_point = t.zero_points[0] if t.zero_points else 0
        lines += [
            "// real_value = scale * (quantized_value - zero_point)",
            f"constexpr float {prefix}Scale = {float_literal(t.scales[0], what + ' scale')};",
            f"constexpr int {prefix}ZeroPoint = {zero_point};",
        ]
    else:
        scales = ", ".join(float_literal(s, what + " scale") for s in t.scales)
        zero_points = ", ".join(str(z) for z in t.zero_points) or "0"
        lines += [
            f"// Quantized per channel along dimension {t.quantized_dimension}.",
            f"constexpr int {prefix}QuantizedDimension = {t.quantized_dimension};",
            f"constexpr float {prefix}Scales[] = {{{scales}}};",
            f"constexpr int {prefix}ZeroPoints[] = {{{zero_points}}};",
        ]
    return lines


def model_config_h(
    info: ModelInfo, arena_bytes: int | None, n: Names, head: list[str], alt=None
) -> str:
    """``config_<name>.h``: the arena size (or why it is missing), the alternate
    decompression block ``alt`` (:class:`~edgeprune.firmware.alt_memory.AltBlock`, None
    without one) and the I/O tensors.

    Raises:
        UnsupportedModelError: a quantization scale is not finite.
    """
    guard = f"{n.guard}_CONFIG_H_"
    arena = f"k{n.camel}ArenaBytes"
    if arena_bytes is None:
        arena_lines = [
            f"// {arena}: the tensor arena was not measured for this model. Find the",
            "// smallest arena it runs in (edgeprune measures it when a TFLite Micro",
            "// runner is available) and define the constant yourself.",
        ]
    else:
        arena_lines = [
            "// Tensor arena size measured for this model; declare the arena as",
            f"//   alignas(16) static uint8_t tensor_arena[{arena}];",
            f"constexpr int {arena} = {arena_bytes};",
        ]
    lines = [
        *head,
        "",
        f"#ifndef {guard}",
        f"#define {guard}",
        "",
        *arena_lines,
        *decode_notes(info),
        *alt_memory.config_lines(n.guard, alt),
        "",
        f"constexpr int k{n.camel}InputCount = {len(info.inputs)};",
        f"constexpr int k{n.camel}OutputCount = {len(info.outputs)};",
    ]
    for kind, tensors in (("Input", info.inputs), ("Output", info.outputs)):
        for position, tensor in enumerate(tensors):
            lines += ["", *_tensor_lines(kind, position, tensor, n.camel)]
    lines += ["", f"#endif  // {guard}", ""]
    return "\n".join(lines)


def check_arena(arena_bytes: int | None) -> None:
    """Raise :class:`BadInputError` unless ``arena_bytes`` is None or a positive C int."""
    if arena_bytes is None:
        return
    if isinstance(arena_bytes, bool) or not isinstance(arena_bytes, int) or arena_bytes <= 0:
        raise BadInputError(f"arena_bytes must be a positive integer or None, not {arena_bytes!r}")
    if arena_bytes > 2**31 - 1:
        raise BadInputError(f"arena_bytes {arena_bytes} does not fit a C int")
