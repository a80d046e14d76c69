#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#define PICO_ERROR_TIMEOUT (-1)
inline bool stdio_init_all(void) { return true; }
// The example's loop sleeps after each run: end the host program there.
inline void sleep_ms(uint32_t) { exit(0); }
inline uint64_t time_us_64(void) { return 0; }
inline int getchar_timeout_us(uint32_t) { return PICO_ERROR_TIMEOUT; }
inline void putchar_raw(int c) { putchar(c); }
inline void stdio_flush(void) { fflush(stdout); }
