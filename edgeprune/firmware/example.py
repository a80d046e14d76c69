"""``inference_example.cc``: one input through the model, end to end, on the device.

The example takes one float input (a test sample compiled in when one is
known, else zeros), quantizes it with the input's scale and zero point from
``config_<name>.h``, invokes the interpreter, dequantizes the first output and
prints the label with the highest score (a classifier) or the output values
(any other model). It uses only the names of the other firmware files, so it
builds wherever they build; ``-DINFERENCE_EXAMPLE_NO_MAIN`` leaves ``main()``
out so that a board's own entry point (``setup()``, ``app_main()``) calls
``RunInferenceExample()``, and ``INFERENCE_EXAMPLE_PRINTF`` replaces
``printf``. Every function here is pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgeprune.firmware import alt_memory
from edgeprune.firmware.model_files import Names, comment_text, float_literal
from edgeprune.tflite import ModelInfo, TensorInfo

EXAMPLE_CC = "inference_example.cc"

# The C type and range of each tensor type the example converts to and from floats.
_QUANTIZED = {"int8": ("int8_t", -128, 127), "uint8": ("uint8_t", 0, 255)}
_QUANTIZED["int16"] = ("int16_t", -32768, 32767)
_UNION = {"int8": "int8", "uint8": "uint8", "int16": "i16", "float32": "f"}
# Ops whose output is a probability per class: a model ending in one is a classifier.
_CLASS_SCORES = {"SOFTMAX", "LOGISTIC"}
_PASS_THROUGH = {"DEQUANTIZE", "QUANTIZE", "RESHAPE", "SQUEEZE"}
# A regression output of more values is shown by its first ones only.
PRINTED_VALUES = 16
_PER_LINE = 8
# A compiled-in sample costs 4 bytes of flash a value: larger inputs get zeros.
MAX_SAMPLE_VALUES = 4096


@dataclass(frozen=True)
class ExampleInput:
    """The float input the example runs: ``values`` (the model input's elements, in
    order) and ``note``, the comment saying what they are (``test sample 0 of digits,
    true label "0"``)."""

    values: tuple[float, ...]
    note: str


def example_unsupported(info: ModelInfo) -> str | None:
    """Why the example cannot be generated for this model, or None when it can."""
    if not info.inputs or not info.outputs:
        return "the model has no input or no output"
    for kind, t in (("input", info.inputs[0]), ("output", info.outputs[0])):
        if t.dtype not in _UNION:
            return (
                f"its first {kind} is {t.dtype} (the example converts int8, uint8, int16, float32)"
            )
        if t.dtype != "float32" and len(t.scales) != 1:
            return f"its first {kind} is {t.dtype} without one scale and zero point"
    return None


def is_classifier(info: ModelInfo) -> bool:
    """True when the first output comes from a SOFTMAX or LOGISTIC (through
    DEQUANTIZE, QUANTIZE, RESHAPE or SQUEEZE): the output is a score per class."""
    producer = {tensor: op for op in info.operators if op.subgraph == 0 for tensor in op.outputs}
    index = info.outputs[0].index if info.outputs else -1
    for _ in range(8):  # a short chain: no loop on a damaged graph
        op = producer.get(index)
        if op is None:
            return False
        if op.opcode in _CLASS_SCORES:
            return True
        if op.opcode not in _PASS_THROUGH or not op.inputs:
            return False
        index = op.inputs[0]
    return False


def _floats(values: tuple[float, ...], what: str) -> list[str]:
    text = [float_literal(v, what) for v in values]
    return [
        "    " + ", ".join(text[i : i + _PER_LINE]) + "," for i in range(0, len(text), _PER_LINE)
    ]


def _to_input(t: TensorInfo, prefix: str) -> list[str]:
    """The function that turns one float into the input's type."""
    if t.dtype == "float32":
        return ["float ToInput(float x) { return x; }"]
    ctype, low, high = _QUANTIZED[t.dtype]
    return [
        "// real = scale * (q - zero_point), so q = x / scale + zero_point, rounded half",
        "// to even (rintf in the default rounding mode, as numpy.round in edgeprune's",
        "// host runner, so both feed the model the same bytes) and clamped.",
        f"{ctype} ToInput(float x) {{",
        f"  const float q = rintf(x / {prefix}Scale + static_cast<float>({prefix}ZeroPoint));",
        f"  return static_cast<{ctype}>(fminf(fmaxf(q, {low}.0f), {high}.0f));",
        "}",
    ]


def _from_output(t: TensorInfo, prefix: str) -> list[str]:
    """The function that reads output value ``i`` as a float."""
    field = _UNION[t.dtype]
    if t.dtype == "float32":
        return [
            "float OutputValue(const TfLiteTensor* output, int i) {",
            f"  return output->data.{field}[i];",
            "}",
        ]
    return [
        "float OutputValue(const TfLiteTensor* output, int i) {",
        f"  const int q = output->data.{field}[i];",
        f"  return static_cast<float>(q - {prefix}ZeroPoint) * {prefix}Scale;",
        "}",
    ]


def _report(n: Names, out: str, classifier: bool, labels: bool, elements: int) -> list[str]:
    """The lines of ``RunInferenceExample()`` that print the result."""
    if classifier:
        name = f"{n.labels_array}[best]" if labels else "best"
        fmt = "label %s" if labels else "class %d"
        return [
            "  int best = 0;",
            "  float best_score = OutputValue(output, 0);",
            f"  for (int i = 1; i < {out}Elements; ++i) {{",
            "    const float score = OutputValue(output, i);",
            "    if (score > best_score) {",
            "      best = i;",
            "      best_score = score;",
            "    }",
            "  }",
            f'  INFERENCE_EXAMPLE_PRINTF("{fmt} score %.4f\\n", {name},',
            "                           static_cast<double>(best_score));",
        ]
    shown = min(elements, PRINTED_VALUES)
    lines = [
        f"  for (int i = 0; i < {shown}; ++i) {{",
        "    const double value = static_cast<double>(OutputValue(output, i));",
        '    INFERENCE_EXAMPLE_PRINTF("output[%d] %.6f\\n", i, value);',
        "  }",
    ]
    if elements > shown:
        lines.append(f'  INFERENCE_EXAMPLE_PRINTF("... {elements - shown} more values\\n");')
    return lines


def inference_example_cc(
    info: ModelInfo,
    n: Names,
    head: list[str],
    sample: ExampleInput | None,
    labels: bool,
    classifier: bool,
) -> str:
    """``inference_example.cc`` for a model whose :func:`example_unsupported` is None;
    ``labels``: ``labels_<name>.h`` exists; ``classifier``: print the best label (else
    the output values). ``sample`` must have the input's element count.

    Raises:
        ValueError: ``sample`` has another element count than the input.
        UnsupportedModelError: a scale or a sample value is not finite.
    """
    t_in, t_out = info.inputs[0], info.outputs[0]
    inp, out = f"k{n.camel}Input0", f"k{n.camel}Output0"
    if sample is not None and len(sample.values) != t_in.elements:
        raise ValueError(f"the example input has {len(sample.values)} values, not {t_in.elements}")
    if sample is not None and len(sample.values) > MAX_SAMPLE_VALUES:
        data = ["    0.0f,"]
        note = (
            f"zeros: {sample.note} has {len(sample.values)} values, {4 * len(sample.values)} "
            f"bytes of flash as floats; put your own input here"
        )
    elif sample is None:
        data = ["    0.0f,"]
        note = "zeros: no test sample is known for this model; put your own input here"
    else:
        data = _floats(sample.values, "an example input value")
        note = sample.note
    include = [n.config_h, *([n.labels_h] if labels else []), n.model_h, n.ops_h]
    what = "the label with the highest score" if classifier else "the output values"
    others = (
        [
            "  // Inputs after the first get zeros.",
            "  for (size_t k = 1; k < interpreter.inputs_size(); ++k) {",
            "    TfLiteTensor* other = interpreter.input(k);",
            "    memset(other->data.raw, 0, other->bytes);",
            "  }",
        ]
        if len(info.inputs) > 1
        else []
    )
    return "\n".join(
        [
            *head,
            "//",
            "// One inference end to end: the float input below is converted with the",
            f"// input's scale and zero point ({n.config_h}), the model runs, and the first",
            f"// output is converted back to floats; prints {what}.",
            f"// Build it with {n.model_cc} and the TensorFlow Lite Micro library.",
            "// -DINFERENCE_EXAMPLE_NO_MAIN leaves main() out: call RunInferenceExample() from",
            "// your own entry point. -DINFERENCE_EXAMPLE_PRINTF=my_printf prints elsewhere",
            "// (printing a float with newlib-nano's printf needs -u _printf_float).",
            "#include <math.h>",
            "#include <stddef.h>",
            "#include <stdint.h>",
            "#include <stdio.h>",
            "#include <string.h>",
            "",
            *(f'#include "{h}"' for h in include),
            '#include "tensorflow/lite/micro/micro_interpreter.h"',
            "",
            "#ifndef INFERENCE_EXAMPLE_PRINTF",
            "#define INFERENCE_EXAMPLE_PRINTF printf",
            "#endif",
            "",
            "int RunInferenceExample();",
            "",
            "namespace {",
            "",
            f"// The input: {comment_text(note)}.",
            f"constexpr float kExampleInput[{inp}Elements] = {{",
            *data,
            "};",
            "",
            f"alignas(16) uint8_t g_arena[{n.arena}];",
            "",
            *_to_input(t_in, inp),
            "",
            *_from_output(t_out, out),
            "",
            "}  // namespace",
            "",
            "int RunInferenceExample() {",
            f"  {n.resolver} resolver;",
            f"  if ({n.register}(resolver) != kTfLiteOk) {{",
            '    INFERENCE_EXAMPLE_PRINTF("op registration failed\\n");',
            "    return 1;",
            "  }",
            "  tflite::MicroInterpreter interpreter(",
            f"      tflite::GetModel({n.array}), resolver, g_arena, {n.arena});",
            *alt_memory.setup_lines(
                n.guard,
                "interpreter",
                'INFERENCE_EXAMPLE_PRINTF("SetDecompressionMemory failed\\n"); return 1;',
            ),
            "  if (interpreter.AllocateTensors() != kTfLiteOk) {",
            f'    INFERENCE_EXAMPLE_PRINTF("AllocateTensors failed: {n.arena} too small?\\n");',
            "    return 1;",
            "  }",
            "  TfLiteTensor* input = interpreter.input(0);",
            f"  for (int i = 0; i < {inp}Elements; ++i) {{",
            f"    input->data.{_UNION[t_in.dtype]}[i] = ToInput(kExampleInput[i]);",
            "  }",
            *others,
            "  if (interpreter.Invoke() != kTfLiteOk) {",
            '    INFERENCE_EXAMPLE_PRINTF("Invoke failed\\n");',
            "    return 1;",
            "  }",
            "  const TfLiteTensor* output = interpreter.output(0);",
            *_report(n, out, classifier, labels, t_out.elements),
            "  return 0;",
            "}",
            "",
            "#ifndef INFERENCE_EXAMPLE_NO_MAIN",
            "int main() { return RunInferenceExample(); }",
            "#endif",
            "",
        ]
    )
