#include <stdint.h>
extern const uint8_t g_model[256];
alignas(16) const uint8_t g_model[256] = {1};
