// Answers `edgeprune validate --runner serial --device <port>` on Serial at
// 115200 baud: the host sends inputs, the board runs them and sends the
// outputs and cycle counts back. The harness keeps two frame buffers of
// EP_MAX_PAYLOAD + 9 bytes and uses about 1 KB of stack while answering.

namespace {

edgeprune::ValidationHarness* g_harness = nullptr;

void WriteSerial(void*, const uint8_t* data, size_t size) { Serial.write(data, size); }

// Cycles: the DWT cycle counter where the core has one, else micros() x clock.
uint64_t Cycles(void*) {
  static uint32_t last = 0;
  static uint64_t high = 0;
#if defined(DWT_CTRL_CYCCNTENA_Msk)
  const uint32_t now = DWT->CYCCNT;
  if (now < last) high += 1ull << 32;
  last = now;
  return high | now;
#else
  const uint32_t now = static_cast<uint32_t>(micros());
  if (now < last) high += 1ull << 32;
  last = now;
  return (high | now) * (F_CPU / 1000000ull);
#endif
}

void Halt(const char* why) {
  for (;;) {
    Serial.println(why);
    delay(1000);
  }
}

}  // namespace

void setup() {
  Serial.begin(115200);
  while (!Serial) {
  }
#if defined(DWT_CTRL_CYCCNTENA_Msk)
  CoreDebug->DEMCR |= CoreDebug_DEMCR_TRCENA_Msk;
  DWT->CYCCNT = 0;
  DWT->CTRL |= DWT_CTRL_CYCCNTENA_Msk;
#endif
  const char* error = @{name}_app::Setup();
  if (error != nullptr) Halt(error);
  static edgeprune::ValidationHarness harness(
      @{name}_app::Interpreter(), @{array}, @{array}_len, @{arena}, F_CPU,
      edgeprune::Transport{WriteSerial, Cycles, nullptr});
  g_harness = &harness;
}

void loop() {
  while (Serial.available() > 0) {
    g_harness->Receive(static_cast<uint8_t>(Serial.read()));
  }
}
