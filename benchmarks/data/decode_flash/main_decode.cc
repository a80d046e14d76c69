// Flash of TFLite Micro's DECODE kernel: the interpreter program of docs/tflm-flash-measurement.md (b),
// with (-DWITH_DECODE) and without MicroMutableOpResolver::AddDecode().
#include <stdint.h>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern const uint8_t g_model[256];
alignas(16) static uint8_t g_arena[2048];

int main() {
  static tflite::MicroMutableOpResolver<6> resolver;
#ifdef WITH_DECODE
  if (resolver.AddDecode() != kTfLiteOk) return 3;
#endif
  static tflite::MicroInterpreter interpreter(tflite::GetModel(g_model), resolver, g_arena, sizeof(g_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return 2;
  if (interpreter.Invoke() != kTfLiteOk) return 4;
  return 0;
}
