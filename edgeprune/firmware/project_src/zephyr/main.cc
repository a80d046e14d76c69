@{head}
//
// The inference example (prints the label and score every 5 s), or with
// CONFIG_EDGEPRUNE_@{NAME}_VALIDATION (validation.conf) the edgeprune validate
// harness on the zephyr,console UART.
#include <stddef.h>
#include <stdint.h>
#include <zephyr/kernel.h>
#include <zephyr/sys/printk.h>

#include "@{name}_app.h"
#include "@{name}_sample.h"

#if defined(CONFIG_EDGEPRUNE_@{NAME}_VALIDATION)
#include <zephyr/device.h>
#include <zephyr/drivers/uart.h>
#include <zephyr/timing/timing.h>

#include "config_@{name}.h"
#include "model_@{name}.h"
#include "validation_harness.h"
#endif

namespace {

void PrintLine(const char* line) { printk("%s\n", line); }

#if defined(CONFIG_EDGEPRUNE_@{NAME}_VALIDATION)
const struct device* const g_uart = DEVICE_DT_GET(DT_CHOSEN(zephyr_console));

void WriteUart(void*, const uint8_t* data, size_t size) {
  for (size_t i = 0; i < size; ++i) uart_poll_out(g_uart, data[i]);
}

// Zephyr's timing functions (the DWT cycle counter on Cortex-M), summed so the
// count never wraps.
uint64_t Cycles(void*) {
  static timing_t last;
  static uint64_t total = 0;
  static bool started = false;
  timing_t now = timing_counter_get();
  if (started) total += timing_cycles_get(&last, &now);
  started = true;
  last = now;
  return total;
}
#endif

}  // namespace

int main(void) {
  const char* error = @{name}_app::Setup();
  if (error != nullptr) {
    PrintLine(error);
    return 0;
  }
#if defined(CONFIG_EDGEPRUNE_@{NAME}_VALIDATION)
  if (!device_is_ready(g_uart)) return 0;
  timing_init();
  timing_start();
  static edgeprune::ValidationHarness harness(
      @{name}_app::Interpreter(), @{array}, @{array}_len, @{arena},
      static_cast<uint32_t>(timing_freq_get()),
      edgeprune::Transport{WriteUart, Cycles, nullptr});
  for (;;) {
    unsigned char c;
    if (uart_poll_in(g_uart, &c) == 0) {
      harness.Receive(c);
    } else {
      k_yield();
    }
  }
#else
  for (;;) {
    const int64_t start = k_uptime_ticks();
    error = @{name}_app::Run(@{name}_app::kSample, @{name}_app::kSampleCount);
    const uint64_t took = k_ticks_to_us_floor64(static_cast<uint64_t>(k_uptime_ticks() - start));
    if (error != nullptr) {
      PrintLine(error);
    } else {
      @{name}_app::PrintResult(PrintLine);
      printk("took %llu us\n", static_cast<unsigned long long>(took));
    }
    k_msleep(5000);
  }
#endif
  return 0;
}
