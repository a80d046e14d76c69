#pragma once
#include <stdio.h>
#include <stdlib.h>
#include "freertos/FreeRTOS.h"
// The example's loop sleeps after each run: end the host program there.
inline void vTaskDelay(TickType_t) { exit(0); }
