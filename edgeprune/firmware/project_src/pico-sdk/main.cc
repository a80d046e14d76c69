@{head}
//
// The inference example (prints the label and score on USB stdio every 5 s),
// or with EDGEPRUNE_VALIDATION=1 (-DEDGEPRUNE_VALIDATION=ON) the edgeprune
// validate harness on USB stdio.
#include <stdint.h>
#include <stdio.h>

#include "@{name}_app.h"
#include "@{name}_sample.h"
#include "hardware/clocks.h"
#include "config_@{name}.h"
#include "model_@{name}.h"
#include "pico/stdio_usb.h"
#include "pico/stdlib.h"
#include "validation_harness.h"

namespace {

void PrintLine(const char* line) { printf("%s\n", line); }

// putchar_raw: no CR/LF translation, the frames are binary.
void WriteUsb(void*, const uint8_t* data, size_t size) {
  for (size_t i = 0; i < size; ++i) putchar_raw(data[i]);
  stdio_flush();
}

// The RP2040's M0+ has no cycle counter: microseconds times the clock.
uint64_t Cycles(void*) { return time_us_64() * (clock_get_hz(clk_sys) / 1000000u); }

}  // namespace

int main() {
  stdio_init_all();
  while (!stdio_usb_connected()) sleep_ms(100);
  const char* error = @{name}_app::Setup();
  if (error != nullptr) {
    for (;;) {
      PrintLine(error);
      sleep_ms(1000);
    }
  }
#if EDGEPRUNE_VALIDATION
  static edgeprune::ValidationHarness harness(
      @{name}_app::Interpreter(), @{array}, @{array}_len, @{arena},
      static_cast<uint32_t>(clock_get_hz(clk_sys)),
      edgeprune::Transport{WriteUsb, Cycles, nullptr});
  for (;;) {
    const int c = getchar_timeout_us(1000);
    if (c != PICO_ERROR_TIMEOUT) harness.Receive(static_cast<uint8_t>(c));
  }
#else
  (void)WriteUsb;
  (void)Cycles;
  for (;;) {
    const uint64_t start = time_us_64();
    error = @{name}_app::Run(@{name}_app::kSample, @{name}_app::kSampleCount);
    const uint64_t took = time_us_64() - start;
    if (error != nullptr) {
      PrintLine(error);
    } else {
      @{name}_app::PrintResult(PrintLine);
      printf("took %lu us\n", static_cast<unsigned long>(took));
    }
    sleep_ms(5000);
  }
#endif
}
