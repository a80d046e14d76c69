#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
inline int64_t k_uptime_ticks(void) { return 0; }
inline uint64_t k_ticks_to_us_floor64(uint64_t ticks) { return ticks * 100u; }
// The example's loop sleeps after each run: end the host program there.
inline int32_t k_msleep(int32_t) { exit(0); }
inline void k_yield(void) {}
