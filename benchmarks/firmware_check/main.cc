// Runs an edgeprune-emitted firmware folder (included unmodified) on a bare-metal Cortex-M under QEMU and prints,
// over semihosting, the arena figures and one line of int8 outputs per input of inputs.h.
//   -DARENA=N     arena size instead of the emitted k<Name>ArenaBytes
//   -DARENA_MAX=N the arena size is the last word of the semihosting command line (qemu -append N), at most
//                 N: one image serves a whole bisection
//   -DRECORD      use TFLite Micro's RecordingMicroAllocator and print its per-category figures (adds its own
//                 bookkeeping to the arena tail: for the breakdown only, never for the bisection)
#include <stdint.h>
#include <string.h>

#include "inputs.h"
#include "fw.h"  // written by build_prog.sh: the folder's headers and C names (FW_*)
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/recording_micro_allocator.h"
#include "tensorflow/lite/schema/schema_generated.h"

extern "C" void sh_puts(const char* s);
extern "C" int semihost_call(int op, void* arg);

#ifdef ARENA_MAX
alignas(16) static uint8_t g_arena[ARENA_MAX];
static long g_arena_bytes = 0;
#define ARENA g_arena_bytes
static long arena_from_cmdline() {
  static char line[256];
  struct { char* buf; int len; } block = {line, (int)sizeof(line)};
  if (semihost_call(0x15, &block) != 0) return 0;  // SYS_GET_CMDLINE
  long v = 0;
  for (int i = 0; i < block.len && line[i]; ++i) {
    if (line[i] == ' ') v = 0;
    else if (line[i] >= '0' && line[i] <= '9') v = v * 10 + (line[i] - '0');
  }
  return v > 0 && v <= ARENA_MAX ? v : 0;
}
#else
#ifndef ARENA
#define ARENA FW_ARENA
#endif
alignas(16) static uint8_t g_arena[ARENA];
#endif

static char* put_int(char* p, long v) {
  char tmp[16];
  int n = 0;
  bool neg = v < 0;
  unsigned long u = neg ? -(unsigned long)v : (unsigned long)v;
  do { tmp[n++] = char('0' + u % 10); u /= 10; } while (u);
  if (neg) *p++ = '-';
  while (n) *p++ = tmp[--n];
  return p;
}
static void say(const char* label, long v) {
  char buf[96];
  char* p = buf;
  for (const char* s = label; *s; ++s) *p++ = *s;
  p = put_int(p, v);
  *p++ = '\n';
  *p = 0;
  sh_puts(buf);
}

#ifdef RECORD
static void say_recorded(tflite::RecordingMicroAllocator* a, tflite::RecordedAllocationType t, const char* name) {
  tflite::RecordedAllocation r = a->GetRecordedAllocation(t);
  char label[64];
  char* p = label;
  for (const char* s = name; *s; ++s) *p++ = *s;
  *p = 0;
  char key[80];
  strcpy(key, label); strcat(key, "_used=");
  say(key, (long)r.used_bytes);
  strcpy(key, label); strcat(key, "_count=");
  say(key, (long)r.count);
}
#endif

static char g_line[8192];

int main() {
#ifdef ARENA_MAX
  g_arena_bytes = arena_from_cmdline();
  if (g_arena_bytes == 0) {
    sh_puts("NO_ARENA_SIZE: pass it with qemu -append N\n");
    return 7;
  }
#endif
  static FW_RESOLVER op_resolver;
  if (FW_REGISTER(op_resolver) != kTfLiteOk) {
    sh_puts("RESOLVER_FAIL\n");
    return 3;
  }
#ifdef RECORD
  static tflite::RecordingMicroAllocator* allocator = tflite::RecordingMicroAllocator::Create(g_arena, ARENA);
  static tflite::MicroInterpreter interpreter(tflite::GetModel(FW_DATA), op_resolver, allocator);
#else
  static tflite::MicroInterpreter interpreter(tflite::GetModel(FW_DATA), op_resolver, g_arena, ARENA);
#endif
  if (interpreter.AllocateTensors() != kTfLiteOk) {
    say("ALLOC_FAIL arena=", ARENA);
    return 2;
  }
  TfLiteTensor* input = interpreter.input(0);
  TfLiteTensor* output = interpreter.output(0);
  say("arena_bytes=", ARENA);
  say("input_bytes=", (long)input->bytes);
  say("output_bytes=", (long)output->bytes);
  say("arena_used_after_alloc=", (long)interpreter.arena_used_bytes());
#ifdef RECORD
  const tflite::RecordingSingleArenaBufferAllocator* m = allocator->GetSimpleMemoryAllocator();
  say("head=", (long)m->GetNonPersistentUsedBytes());
  say("tail=", (long)m->GetPersistentUsedBytes());
  say_recorded(allocator, tflite::RecordedAllocationType::kTfLiteEvalTensorData, "eval_tensors");
  say_recorded(allocator, tflite::RecordedAllocationType::kPersistentTfLiteTensorData, "persistent_tensors");
  say_recorded(allocator, tflite::RecordedAllocationType::kPersistentTfLiteTensorQuantizationData, "quantization");
  say_recorded(allocator, tflite::RecordedAllocationType::kPersistentBufferData, "persistent_buffers");
  say_recorded(allocator, tflite::RecordedAllocationType::kTfLiteTensorVariableBufferData, "variable_buffers");
  say_recorded(allocator, tflite::RecordedAllocationType::kNodeAndRegistrationArray, "node_and_registrations");
  say_recorded(allocator, tflite::RecordedAllocationType::kOpData, "op_data");
#endif
  if ((int)input->bytes != SAMPLE_BYTES || (int)output->bytes != FW_OUTPUT_BYTES ||
      input->type != kTfLiteInt8 || output->type != kTfLiteInt8) {
    sh_puts("TENSOR_MISMATCH\n");
    return 6;
  }
  for (int i = 0; i < N_SAMPLES; ++i) {
    memcpy(input->data.int8, g_inputs[i], SAMPLE_BYTES);
    if (interpreter.Invoke() != kTfLiteOk) {
      say("INVOKE_FAIL sample=", i);
      return 4;
    }
    char* p = g_line;
    *p++ = 'O'; *p++ = ' ';
    p = put_int(p, i);
    for (int k = 0; k < FW_OUTPUT_ELEMENTS; ++k) {
      *p++ = ' ';
      p = put_int(p, output->data.int8[k]);
    }
    *p++ = '\n';
    *p = 0;
    sh_puts(g_line);
  }
  say("arena_used_after_invoke=", (long)interpreter.arena_used_bytes());
  sh_puts("DONE\n");
  return 0;
}
