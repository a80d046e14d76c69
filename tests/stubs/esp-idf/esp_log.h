#pragma once
#include <stdio.h>
typedef enum { ESP_LOG_NONE = 0, ESP_LOG_INFO = 3 } esp_log_level_t;
inline void esp_log_level_set(const char*, esp_log_level_t) {}
#define ESP_LOGI(tag, format, ...) printf("I (%s) " format "\n", tag, __VA_ARGS__)
#define ESP_LOGE(tag, format, ...) printf("E (%s) " format "\n", tag, __VA_ARGS__)
