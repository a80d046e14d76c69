@{head}
#include "@{name}_app.h"

#include <math.h>
#include <stdio.h>

#include "config_@{name}.h"
#include "model_@{name}.h"
#include "ops_@{name}.h"
#include "tensorflow/lite/schema/schema_generated.h"
@{labels_include}
namespace @{name}_app {
namespace {

alignas(16) uint8_t g_arena[@{arena}];
tflite::MicroInterpreter* g_interpreter = nullptr;
size_t g_output_count = 0;  // set by a successful Run()

// Three decimals without printf's %f, which newlib-nano (Arduino mbed,
// pico-sdk) leaves out unless the float printf is linked in.
void FormatFixed(float value, char* text, size_t size) {
  if (value != value) {
    snprintf(text, size, "nan");
    return;
  }
  const bool negative = value < 0.0f;
  const float magnitude = negative ? -value : value;
  if (magnitude >= 4.0e6f) {
    snprintf(text, size, "%s>4e6", negative ? "-" : "");
    return;
  }
  const unsigned long milli = static_cast<unsigned long>(magnitude * 1000.0f + 0.5f);
  snprintf(text, size, "%s%lu.%03lu", negative ? "-" : "", milli / 1000ul, milli % 1000ul);
}

long Clamp(long value, long low, long high) {
  return value < low ? low : (value > high ? high : value);
}

}  // namespace

const char* Setup() {
  if (g_interpreter != nullptr) return nullptr;
  static @{resolver} resolver;
  if (@{register}(resolver) != kTfLiteOk) return "op resolver too small";
  const tflite::Model* model = tflite::GetModel(@{array});
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    return "the model's schema version is not this TFLite Micro's";
  }
  static tflite::MicroInterpreter interpreter(model, resolver, g_arena, @{arena});
@{alt_memory}
  if (interpreter.AllocateTensors() != kTfLiteOk) return "AllocateTensors failed: arena too small";
  g_interpreter = &interpreter;
  return nullptr;
}

tflite::MicroInterpreter* Interpreter() { return g_interpreter; }

const char* Run(const float* input, size_t count) {
  if (g_interpreter == nullptr) return "Run before Setup";
  g_output_count = 0;
  TfLiteTensor* in = g_interpreter->input(0);
  const float in_scale = in->params.scale;
  const long in_zero = static_cast<long>(in->params.zero_point);
  if (in->type == kTfLiteInt8) {
    if (count != in->bytes) return "input count is not the model's input size";
    for (size_t i = 0; i < count; ++i) {
      const long q = lroundf(input[i] / in_scale) + in_zero;
      in->data.int8[i] = static_cast<int8_t>(Clamp(q, -128, 127));
    }
  } else if (in->type == kTfLiteUInt8) {
    if (count != in->bytes) return "input count is not the model's input size";
    for (size_t i = 0; i < count; ++i) {
      const long q = lroundf(input[i] / in_scale) + in_zero;
      in->data.uint8[i] = static_cast<uint8_t>(Clamp(q, 0, 255));
    }
  } else if (in->type == kTfLiteFloat32) {
    if (count != in->bytes / sizeof(float)) return "input count is not the model's input size";
    for (size_t i = 0; i < count; ++i) in->data.f[i] = input[i];
  } else {
    return "input type is not int8, uint8 or float32";
  }
  if (g_interpreter->Invoke() != kTfLiteOk) return "Invoke failed";
  const TfLiteTensor* out = g_interpreter->output(0);
  if (out->type == kTfLiteInt8 || out->type == kTfLiteUInt8) {
    g_output_count = out->bytes;
  } else if (out->type == kTfLiteFloat32) {
    g_output_count = out->bytes / sizeof(float);
  } else {
    g_output_count = 0;
    return "output type is not int8, uint8 or float32";
  }
  return nullptr;
}

size_t OutputCount() { return g_output_count; }

// Dequantized from the output tensor itself: no copy of the outputs is kept.
float Output(size_t i) {
  if (g_interpreter == nullptr || i >= g_output_count) return 0.0f;
  const TfLiteTensor* out = g_interpreter->output(0);
  const long zero = static_cast<long>(out->params.zero_point);
  if (out->type == kTfLiteInt8) {
    return static_cast<float>(static_cast<long>(out->data.int8[i]) - zero) * out->params.scale;
  }
  if (out->type == kTfLiteUInt8) {
    return static_cast<float>(static_cast<long>(out->data.uint8[i]) - zero) * out->params.scale;
  }
  return out->data.f[i];
}

size_t TopIndex() {
  size_t top = 0;
  float best = Output(0);
  for (size_t i = 1; i < g_output_count; ++i) {
    const float value = Output(i);
    if (value > best) {
      best = value;
      top = i;
    }
  }
  return top;
}

const char* Label(size_t i) {
@{label_body}
}

void PrintResult(PrintLine print) {
  char line[96];
  char score[24];
  if (g_output_count == 0) {
    print("no result: Run() has not succeeded");
    return;
  }
  const size_t top = TopIndex();
  FormatFixed(Output(top), score, sizeof score);
  const char* label = Label(top);
  if (label != nullptr) {
    snprintf(line, sizeof line, "label %s (index %u) score %s", label,
             static_cast<unsigned>(top), score);
  } else {
    snprintf(line, sizeof line, "index %u score %s", static_cast<unsigned>(top), score);
  }
  print(line);
  for (size_t i = 0; i < g_output_count && i < 16; ++i) {
    FormatFixed(Output(i), score, sizeof score);
    snprintf(line, sizeof line, "  output[%u] = %s", static_cast<unsigned>(i), score);
    print(line);
  }
}

}  // namespace @{name}_app
