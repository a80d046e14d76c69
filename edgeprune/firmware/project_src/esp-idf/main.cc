@{head}
//
// The inference example (prints the label and score every 5 s), or with
// CONFIG_EDGEPRUNE_@{NAME}_VALIDATION the edgeprune validate harness on UART0.
#include <stddef.h>
#include <stdint.h>

#include "@{name}_app.h"
#include "@{name}_sample.h"
#include "esp_log.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "sdkconfig.h"

#if CONFIG_EDGEPRUNE_@{NAME}_VALIDATION
#include "driver/uart.h"
#include "esp_cpu.h"
#include "config_@{name}.h"
#include "model_@{name}.h"
#include "validation_harness.h"
#endif

namespace {

const char* const kTag = "@{name}";

#if CONFIG_EDGEPRUNE_@{NAME}_VALIDATION
void WriteUart(void*, const uint8_t* data, size_t size) {
  uart_write_bytes(UART_NUM_0, data, size);
}

// The CPU's 32-bit cycle counter, extended to 64 bits.
uint64_t Cycles(void*) {
  static uint32_t last = 0;
  static uint64_t high = 0;
  const uint32_t now = static_cast<uint32_t>(esp_cpu_get_cycle_count());
  if (now < last) high += 1ull << 32;
  last = now;
  return high | now;
}
#else
void PrintLine(const char* line) { ESP_LOGI(kTag, "%s", line); }
#endif

}  // namespace

extern "C" void app_main(void) {
  const char* error = @{name}_app::Setup();
  if (error != nullptr) {
    ESP_LOGE(kTag, "%s", error);
    return;
  }
#if CONFIG_EDGEPRUNE_@{NAME}_VALIDATION
  esp_log_level_set("*", ESP_LOG_NONE);  // the UART carries frames only
  if (uart_driver_install(UART_NUM_0, 2048, 0, 0, nullptr, 0) != ESP_OK) return;
  static edgeprune::ValidationHarness harness(
      @{name}_app::Interpreter(), @{array}, @{array}_len, @{arena},
      static_cast<uint32_t>(CONFIG_ESP_DEFAULT_CPU_FREQ_MHZ) * 1000000u,
      edgeprune::Transport{WriteUart, Cycles, nullptr});
  uint8_t buffer[256];
  for (;;) {
    const int n = uart_read_bytes(UART_NUM_0, buffer, sizeof buffer, pdMS_TO_TICKS(20));
    for (int i = 0; i < n; ++i) harness.Receive(buffer[i]);
  }
#else
  for (;;) {
    const int64_t start = esp_timer_get_time();
    error = @{name}_app::Run(@{name}_app::kSample, @{name}_app::kSampleCount);
    const int64_t took = esp_timer_get_time() - start;
    if (error != nullptr) {
      ESP_LOGE(kTag, "%s", error);
    } else {
      @{name}_app::PrintResult(PrintLine);
      ESP_LOGI(kTag, "took %lld us", static_cast<long long>(took));
    }
    vTaskDelay(pdMS_TO_TICKS(5000));
  }
#endif
}
