#pragma once
#include <stddef.h>
#include <stdint.h>
#include "freertos/FreeRTOS.h"
typedef int esp_err_t;
#define ESP_OK 0
typedef enum { UART_NUM_0 = 0 } uart_port_t;
typedef void* QueueHandle_t;
inline esp_err_t uart_driver_install(uart_port_t, int, int, int, QueueHandle_t*, int) { return ESP_OK; }
inline int uart_read_bytes(uart_port_t, void*, uint32_t, TickType_t) { return 0; }
inline int uart_write_bytes(uart_port_t, const void*, size_t size) { return static_cast<int>(size); }
