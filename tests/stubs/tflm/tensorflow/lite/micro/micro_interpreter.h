#ifndef STUB_MICRO_INTERPRETER_H_
#define STUB_MICRO_INTERPRETER_H_
// See tests/stubs/README.md: one int8 input, one int8 output; Invoke() marks
// output index (sum of input bytes) % output size.
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "stub_tflm_common.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifndef STUB_IN_BYTES
#define STUB_IN_BYTES 4
#endif
#ifndef STUB_OUT_BYTES
#define STUB_OUT_BYTES 2
#endif
#ifndef STUB_IN_SCALE
#define STUB_IN_SCALE 1.0f
#endif
#ifndef STUB_IN_ZERO
#define STUB_IN_ZERO 0
#endif
#ifndef STUB_OUT_SCALE
#define STUB_OUT_SCALE 0.00390625f
#endif
#ifndef STUB_OUT_ZERO
#define STUB_OUT_ZERO (-128)
#endif

namespace tflite {
namespace stub {
inline int8_t input_bytes[STUB_IN_BYTES];
inline int8_t output_bytes[STUB_OUT_BYTES];
inline TfLiteTensor input = {kTfLiteInt8, {input_bytes}, {STUB_IN_SCALE, STUB_IN_ZERO},
                             STUB_IN_BYTES};
inline TfLiteTensor output = {kTfLiteInt8, {output_bytes}, {STUB_OUT_SCALE, STUB_OUT_ZERO},
                              STUB_OUT_BYTES};
}  // namespace stub

class MicroInterpreter {
 public:
  template <typename Resolver>
  MicroInterpreter(const Model* model, const Resolver&, uint8_t* arena, size_t arena_bytes)
      : ok_(model != nullptr && arena != nullptr && arena_bytes > 0) {}
  TfLiteStatus AllocateTensors() { return ok_ ? kTfLiteOk : kTfLiteError; }
  TfLiteTensor* input(size_t) { return &stub::input; }
  TfLiteTensor* output(size_t) { return &stub::output; }
  TfLiteStatus Invoke() {
    unsigned long sum = 0;
    for (size_t i = 0; i < STUB_IN_BYTES; ++i) sum += static_cast<uint8_t>(stub::input_bytes[i]);
    for (size_t i = 0; i < STUB_OUT_BYTES; ++i) stub::output_bytes[i] = -128;
    stub::output_bytes[sum % STUB_OUT_BYTES] = 127;
    printf("stub: input byte sum %lu\n", sum);
    return kTfLiteOk;
  }

 private:
  bool ok_;
};
}  // namespace tflite
#endif
