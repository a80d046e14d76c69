// Runs an edgeprune-emitted firmware folder (included unmodified) whose model is float32 on a bare-metal Cortex-M
// under QEMU and prints each output's IEEE-754 bits, one line per input of inputs_float.h (make_inputs_float.py),
// so that compare_float.py can set them beside the host TFLite Micro's.
//   -DARENA_MAX=N   the arena size is the last word of the semihosting command line (as main.cc)
// Build: SRC=main_float.cc INPUTS=DIR build_prog.sh CORE FIRMWARE_DIR OUT (its fw.h names the model)
#include <stdint.h>
#include <string.h>
#include "inputs_float.h"
#include "fw.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
extern "C" void sh_puts(const char* s);
extern "C" int semihost_call(int op, void* arg);
#ifdef ARENA_MAX
alignas(16) static uint8_t g_arena[ARENA_MAX];
static long arena_from_cmdline() {
  static char line[256];
  struct { char* buf; int len; } block = {line, (int)sizeof(line)};
  if (semihost_call(0x15, &block) != 0) return 0;
  long v = 0;
  for (int i = 0; i < block.len && line[i]; ++i) {
    if (line[i] == ' ') v = 0; else if (line[i] >= '0' && line[i] <= '9') v = v * 10 + (line[i] - '0');
  }
  return v > 0 && v <= ARENA_MAX ? v : 0;
}
#define ARENA arena_from_cmdline()
#else
#define ARENA FW_ARENA
alignas(16) static uint8_t g_arena[ARENA];
#endif
static char* put_hex(char* p, uint32_t v) {
  for (int s = 28; s >= 0; s -= 4) *p++ = "0123456789abcdef"[(v >> s) & 15];
  return p;
}
static char g_line[4096];
int main() {
  static FW_RESOLVER op_resolver;
  if (FW_REGISTER(op_resolver) != kTfLiteOk) { sh_puts("RESOLVER_FAIL\n"); return 3; }
  long arena = ARENA;
  static tflite::MicroInterpreter interpreter(tflite::GetModel(FW_DATA), op_resolver, g_arena, arena);
  if (interpreter.AllocateTensors() != kTfLiteOk) { sh_puts("ALLOC_FAIL\n"); return 2; }
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  if (input->type != kTfLiteFloat32 || output->type != kTfLiteFloat32 || (int)input->bytes != SAMPLE_BYTES) {
    sh_puts("TENSOR_MISMATCH\n"); return 6;
  }
  for (int i = 0; i < N_SAMPLES; ++i) {
    memcpy(input->data.f, g_inputs[i], SAMPLE_BYTES);
    if (interpreter.Invoke() != kTfLiteOk) { sh_puts("INVOKE_FAIL\n"); return 4; }
    char* p = g_line; *p++ = 'O';
    for (size_t k = 0; k < output->bytes / 4; ++k) { uint32_t b; memcpy(&b, &output->data.f[k], 4); *p++ = ' '; p = put_hex(p, b); }
    *p++ = '\n'; *p = 0; sh_puts(g_line);
  }
  sh_puts("DONE\n");
  return 0;
}
