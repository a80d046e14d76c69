@{head}
//
// One model, end to end, for any SDK: the interpreter in a static arena of
// @{arena} bytes, the float input quantized with the input tensor's own scale
// and zero point, the output dequantized with the output tensor's, and the
// result printed through a function the board provides. The SDK's entry point
// (setup(), app_main(), main()) calls these; nothing here knows the SDK.
#ifndef @{guard}_APP_H_
#define @{guard}_APP_H_

#include <stddef.h>
#include <stdint.h>

#include "tensorflow/lite/micro/micro_interpreter.h"

namespace @{name}_app {

// Where text goes (Serial, printf, printk): one call per line, without newline.
typedef void (*PrintLine)(const char* line);

// Registers the model's ops and allocates its tensors in the static arena.
// Returns nullptr on success, else what failed. Calling it again does nothing.
const char* Setup();

// The interpreter Setup() built, or nullptr before it succeeded.
tflite::MicroInterpreter* Interpreter();

// Quantizes `count` floats into input 0 (int8, uint8 or float32 tensors),
// invokes the model and dequantizes output 0. Returns nullptr on success,
// else what failed (not set up, wrong count, unsupported type, Invoke failed).
const char* Run(const float* input, size_t count);

// After Run(): the number of output values, value `i` dequantized (read from
// the output tensor, so valid until the next Run()), and the
// index of the largest (the first of equals).
size_t OutputCount();
float Output(size_t i);
size_t TopIndex();

// The name of output `i` from labels_@{name}.h, or nullptr when the model's
// labels are not known (or `i` is out of range).
const char* Label(size_t i);

// Prints the last result: "label <name> (index i) score s" when labels are
// known, else "index i score s", then up to 16 output values.
void PrintResult(PrintLine print);

}  // namespace @{name}_app

#endif  // @{guard}_APP_H_
