#ifndef STUB_ARDUINO_H_
#define STUB_ARDUINO_H_
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#define F_CPU 64000000ul
class StubSerial {
 public:
  void begin(unsigned long) {}
  explicit operator bool() const { return true; }
  size_t println(const char* text) { return static_cast<size_t>(printf("%s\n", text)); }
  size_t print(const char* text) { return static_cast<size_t>(printf("%s", text)); }
  size_t print(unsigned long value) { return static_cast<size_t>(printf("%lu", value)); }
  size_t write(const uint8_t* data, size_t size) { return fwrite(data, 1, size, stdout); }
  int available() { return 0; }
  int read() { return -1; }
};
inline StubSerial Serial;
inline unsigned long micros() { return 0; }
inline void delay(unsigned long) {}
void setup();
void loop();
#endif
