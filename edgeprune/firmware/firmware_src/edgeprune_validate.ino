${head}
//
// Flash this sketch, then on the host:
//   edgeprune validate <run folder> --device /dev/ttyACM0   (the board's port)
// It needs the TensorFlow Lite Micro library for Arduino (Arduino_TensorFlowLite
// or Chirale_TensorFlowLite). The harness keeps two frame buffers of
// EP_MAX_PAYLOAD + 9 bytes and uses about 1 KB of stack while answering.
#include <Arduino.h>
#include <TensorFlowLite.h>

#include "${config_h}"
#include "${model_h}"
#include "${ops_h}"
#include "validation_harness.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

namespace {

alignas(16) uint8_t g_arena[k${camel}ArenaBytes];
${resolver} g_resolver;
edgeprune::ValidationHarness* g_harness = nullptr;

void WriteSerial(void*, const uint8_t* data, size_t size) { Serial.write(data, size); }

// Cycles: the DWT cycle counter where the core has one, else micros() x clock.
uint64_t Cycles(void*) {
  static uint32_t last = 0;
  static uint64_t high = 0;
#if defined(DWT_CTRL_CYCCNTENA_Msk)
  const uint32_t now = DWT->CYCCNT;
  if (now < last) high += 1ull << 32;
  last = now;
  return high | now;
#else
  const uint32_t now = micros();
  if (now < last) high += 1ull << 32;
  last = now;
  return (high | now) * (F_CPU / 1000000ull);
#endif
}

void Halt(const char* why) {
  for (;;) {
    Serial.println(why);
    delay(1000);
  }
}

}  // namespace

void setup() {
  Serial.begin(115200);
  while (!Serial) {
  }
#if defined(DWT_CTRL_CYCCNTENA_Msk)
  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
  DWT->CYCCNT = 0;
  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
#endif
  if (${register}(g_resolver) != kTfLiteOk) Halt("op resolver too small");
  static tflite::MicroInterpreter interpreter(
      tflite::GetModel(${array}), g_resolver, g_arena, k${camel}ArenaBytes);
${alt_memory}
  if (interpreter.AllocateTensors() != kTfLiteOk) Halt("arena too small");
  static edgeprune::ValidationHarness harness(
      &interpreter, ${array}, ${array}_len, k${camel}ArenaBytes, F_CPU,
      edgeprune::Transport{WriteSerial, Cycles, nullptr});
  g_harness = &harness;
}

void loop() {
  while (Serial.available() > 0) {
    g_harness->Receive(static_cast<uint8_t>(Serial.read()));
  }
}
