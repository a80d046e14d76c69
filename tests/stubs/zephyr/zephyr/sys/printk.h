#pragma once
#include <stdarg.h>
#include <stdio.h>
__attribute__((format(printf, 1, 2))) inline void printk(const char* format, ...) {
  va_list args;
  va_start(args, format);
  vprintf(format, args);
  va_end(args);
}
