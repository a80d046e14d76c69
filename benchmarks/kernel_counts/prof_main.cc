// Per-operator instruction counts of TFLite Micro kernels on a bare-metal Cortex-M under
// `qemu-system-arm -icount shift=0`, printed through semihosting.
//
// The models are edgeprune's emitted firmware folders, included unmodified:
// prof_models.h (written by run_counts.py) includes each folder's model_<name>.h and
// ops_<name>.h, and prof_models.inc lists each as PROF_MODEL(c_name, array, "name").
// Each model is run with the resolver its ops_<name>.h fills.
//
// Timing. TFLite Micro's own per-op profiling (ScopedMicroProfiler in
// MicroInterpreterGraph::InvokeSubgraph) is compiled out of release builds
// (TF_LITE_STRIP_ERROR_STRINGS), which are the builds we want to count. So the
// profiler is installed one level down: after the emitted Register*Ops call, every
// registration the model uses has its `invoke` pointer replaced by a trampoline that
// brackets the real kernel with MicroProfilerInterface::BeginEvent/EndEvent. The
// library is not modified; what is counted is exactly the kernel's Invoke (the
// interpreter's loop between ops is the difference between INVOKE and the sum of OPs).
//
// Clock. SysTick on the processor clock. Under -icount shift=0 QEMU advances its
// virtual clock by 1 ns per executed instruction, and SysTick counts that clock at the
// machine's CPU frequency: 25 MHz on mps2-an386 and -an500 (40 instructions per
// tick), 20 MHz on mps2-an505 (50), 32 MHz on mps3-an547 (31.25). The program
// measures instructions per tick itself with a loop of known length (CAL line), so no
// frequency is assumed; REPEATS timed invokes average the tick's rounding. The 24-bit
// counter's wraps are caught by COUNTFLAG, read at every tick read.
#include <stdint.h>
#include <string.h>

#include <array>
#include <new>
#include <utility>

#include "tensorflow/lite/micro/micro_common.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_op_resolver.h"
#include "tensorflow/lite/micro/micro_profiler_interface.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/compiler/mlir/lite/schema/schema_utils.h"

// The emitted model_data.h and model_ops.h of every model (written by run_counts.py).
#include "prof_models.h"

extern "C" void sh_puts(const char* s);

#ifndef ARENA_BYTES
#define ARENA_BYTES (512 * 1024)
#endif
#ifndef REPEATS
#define REPEATS 8
#endif

namespace {

alignas(16) uint8_t g_arena[ARENA_BYTES];
alignas(16) uint8_t g_interpreter_storage[sizeof(tflite::MicroInterpreter)];

// ---- clock -----------------------------------------------------------------
volatile uint32_t* const kSystCsr = reinterpret_cast<volatile uint32_t*>(0xE000E010);
volatile uint32_t* const kSystRvr = reinterpret_cast<volatile uint32_t*>(0xE000E014);
volatile uint32_t* const kSystCvr = reinterpret_cast<volatile uint32_t*>(0xE000E018);
constexpr uint32_t kCountFlag = 1u << 16;
uint32_t g_wraps = 0;

void ClockStart() {
  *kSystRvr = 0xFFFFFFu;
  *kSystCvr = 0;          // any write clears the counter and COUNTFLAG
  *kSystCsr = 0x5;        // CLKSOURCE = processor clock, ENABLE, no interrupt
  // The first reload (0 -> 0xFFFFFF) sets COUNTFLAG without a full period having
  // passed: wait for it and clear the flag, so that only true wraps are counted.
  while (*kSystCvr == 0) {
  }
  (void)*kSystCsr;
  g_wraps = 0;
}

inline uint64_t Now() {
  uint32_t v = *kSystCvr;
  if (*kSystCsr & kCountFlag) {  // wrapped since the last read: v may be either side
    ++g_wraps;
    v = *kSystCvr;
  }
  return (static_cast<uint64_t>(g_wraps) << 24) + (0xFFFFFFu - v);
}

// ---- output ----------------------------------------------------------------
char* PutU(char* p, uint64_t v) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  while (n) *p++ = tmp[--n];
  return p;
}
char* PutS(char* p, const char* s) {
  while (*s) *p++ = *s++;
  return p;
}
struct Line {
  char buf[160];
  char* p = buf;
  Line& s(const char* t) { p = PutS(p, t); return *this; }
  Line& u(uint64_t v) { p = PutU(p, v); return *this; }
  void end() { *p++ = '\n'; *p = 0; sh_puts(buf); }
};

// ---- profiler ----------------------------------------------------------------
constexpr int kMaxOps = 512;

// A MicroProfilerInterface whose events are the model's operators in execution
// order (one subgraph, no control flow: the k-th event of an invoke is op k).
class OpProfiler : public tflite::MicroProfilerInterface {
 public:
  void StartInvoke() { next_ = 0; }
  uint32_t BeginEvent(const char* tag) override {
    (void)tag;
    uint32_t handle = next_++;
    start_ = Now();
    return handle;
  }
  void EndEvent(uint32_t handle) override {
    uint64_t end = Now();
    if (handle < kMaxOps) ticks_[handle] += end - start_;
  }
  void Clear() { memset(ticks_, 0, sizeof(ticks_)); next_ = 0; }
  uint32_t ops() const { return next_; }
  uint64_t ticks(int i) const { return ticks_[i]; }

 private:
  uint64_t ticks_[kMaxOps] = {};
  uint64_t start_ = 0;
  uint32_t next_ = 0;
};
OpProfiler g_profiler;
bool g_profiling = false;

using InvokeFn = TfLiteStatus (*)(TfLiteContext*, TfLiteNode*);
constexpr int kMaxSlots = 32;
InvokeFn g_original[kMaxSlots];

template <int I>
TfLiteStatus Trampoline(TfLiteContext* context, TfLiteNode* node) {
  if (!g_profiling) return g_original[I](context, node);
  uint32_t handle = g_profiler.BeginEvent("op");
  TfLiteStatus status = g_original[I](context, node);
  g_profiler.EndEvent(handle);
  return status;
}
template <int... I>
constexpr std::array<InvokeFn, sizeof...(I)> MakeTrampolines(std::integer_sequence<int, I...>) {
  return {&Trampoline<I>...};
}
constexpr auto kTrampolines = MakeTrampolines(std::make_integer_sequence<int, kMaxSlots>{});

// Points every registration the model's operators resolve to at a trampoline. (Only
// codes that operators use: a file may list op codes no operator uses, which the
// emitted resolver rightly leaves out.)
bool Instrument(const tflite::Model* model, const tflite::MicroOpResolver& resolver) {
  int slots = 0;
  const auto* codes = model->operator_codes();
  const auto* operators = model->subgraphs()->Get(0)->operators();
  for (unsigned i = 0; operators && i < operators->size(); ++i) {
    const tflite::OperatorCode* opcode = codes->Get(operators->Get(i)->opcode_index());
    tflite::BuiltinOperator code = tflite::GetBuiltinCode(opcode);
    const TFLMRegistration* found = code == tflite::BuiltinOperator_CUSTOM
                                        ? resolver.FindOp(opcode->custom_code()->c_str())
                                        : resolver.FindOp(code);
    if (found == nullptr) return false;
    auto* reg = const_cast<TFLMRegistration*>(found);
    bool done = false;
    for (int s = 0; s < slots; ++s) done |= reg->invoke == kTrampolines[s];
    if (done) continue;
    if (slots == kMaxSlots) return false;
    g_original[slots] = reg->invoke;
    reg->invoke = kTrampolines[slots++];
  }
  return true;
}

uint32_t g_seed = 12345;
void FillInputs(tflite::MicroInterpreter& interpreter) {
  for (size_t i = 0; i < interpreter.inputs_size(); ++i) {
    TfLiteTensor* t = interpreter.input(i);
    if (t->type == kTfLiteFloat32) {
      // Random bytes as floats would be NaNs and 1e38s, which take the float
      // kernels' (and expf's) special paths: draw from [-2, 2) instead.
      for (size_t k = 0; k < t->bytes / 4; ++k) {
        g_seed = g_seed * 1664525u + 1013904223u;
        t->data.f[k] = static_cast<float>(g_seed >> 8) / 4194304.0f - 2.0f;
      }
      continue;
    }
    for (size_t b = 0; b < t->bytes; ++b) {
      g_seed = g_seed * 1664525u + 1013904223u;
      t->data.uint8[b] = static_cast<uint8_t>(g_seed >> 24);
    }
  }
}

int Profile(const char* name, const unsigned char* data, tflite::MicroOpResolver& resolver) {
  const tflite::Model* model = tflite::GetModel(data);
  if (!Instrument(model, resolver)) {
    Line().s("FAIL ").s(name).s(" instrument").end();
    return 1;
  }
  auto* interpreter = new (g_interpreter_storage)
      tflite::MicroInterpreter(model, resolver, g_arena, ARENA_BYTES);
  int rc = 0;
  if (interpreter->AllocateTensors() != kTfLiteOk) {
    Line().s("FAIL ").s(name).s(" allocate arena=").u(ARENA_BYTES).end();
    rc = 2;
  } else {
    FillInputs(*interpreter);
    g_profiling = false;
    if (interpreter->Invoke() != kTfLiteOk) rc = 3;  // warm-up: first-invoke work stays out
    g_profiler.Clear();
    uint64_t total = 0;
    uint32_t ops = 0;
    for (int r = 0; r < REPEATS && rc == 0; ++r) {
      FillInputs(*interpreter);
      g_profiler.StartInvoke();
      g_profiling = true;
      uint64_t t0 = Now();
      if (interpreter->Invoke() != kTfLiteOk) rc = 3;
      total += Now() - t0;
      g_profiling = false;
      ops = g_profiler.ops();
    }
    if (rc == 3) {
      Line().s("FAIL ").s(name).s(" invoke").end();
    } else {
      Line().s("MODEL ").s(name).s(" ops=").u(ops).s(" repeats=").u(REPEATS)
          .s(" arena_used=").u(interpreter->arena_used_bytes()).s(" invoke_ticks=").u(total).end();
      const auto* operators = model->subgraphs()->Get(0)->operators();
      for (uint32_t i = 0; i < ops && i < static_cast<uint32_t>(kMaxOps); ++i) {
        int code = static_cast<int>(tflite::GetBuiltinCode(
            model->operator_codes()->Get(operators->Get(i)->opcode_index())));
        Line().s("OP ").s(name).s(" ").u(i).s(" ").u(code).s(" ").u(g_profiler.ticks(i)).end();
      }
    }
  }
  interpreter->~MicroInterpreter();
  return rc;
}

// Instructions per tick: a loop of 2 instructions per iteration, timed at two lengths.
void Calibrate() {
  uint64_t ticks[2];
  const uint32_t lengths[2] = {1000000u, 3000000u};
  for (int k = 0; k < 2; ++k) {
    uint32_t n = lengths[k];
    uint64_t t0 = Now();
    __asm__ volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
    ticks[k] = Now() - t0;
  }
  // 2 * (3,000,000 - 1,000,000) instructions between the two.
  Line().s("CAL instructions=4000000 ticks=").u(ticks[1] - ticks[0]).end();
  // The trampoline's own cost: BeginEvent/EndEvent around nothing.
  g_profiler.Clear();
  for (int r = 0; r < 64; ++r) g_profiler.EndEvent(g_profiler.BeginEvent("empty"));
  uint64_t sum = 0;
  for (int r = 0; r < 64; ++r) sum += g_profiler.ticks(r);
  Line().s("OVERHEAD ticks_per_64=").u(sum).end();
  g_profiler.Clear();
}

#define PROF_MODEL(Name, array, name)                             \
  int Run_##Name() {                                              \
    static Name##_OpResolver resolver;                            \
    if (Name##_RegisterOps(resolver) != kTfLiteOk) {              \
      Line().s("FAIL ").s(name).s(" resolver").end();             \
      return 1;                                                   \
    }                                                             \
    return Profile(name, array, resolver);                        \
  }
#include "prof_models.inc"
#undef PROF_MODEL

#define PROF_MODEL(Name, array, name) Run_##Name,
int (*const kRuns[])() = {
#include "prof_models.inc"
};
#undef PROF_MODEL

}  // namespace

int main() {
  ClockStart();
  Calibrate();
  int failures = 0;
  for (auto run : kRuns) failures += run() != 0;
  Line().s("END failures=").u(failures).end();
  return failures ? 1 : 0;
}
