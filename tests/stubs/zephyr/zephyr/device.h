#pragma once
struct device {
  const char* name;
};
inline const struct device stub_console = {"stub_console"};
#define DT_CHOSEN(node) 0
#define DEVICE_DT_GET(node) (&stub_console)
inline bool device_is_ready(const struct device* dev) { return dev != nullptr; }
