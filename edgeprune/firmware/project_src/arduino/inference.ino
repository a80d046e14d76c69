// Runs the model on the sample input (@{name}_sample.h) and prints the label
// and score on Serial at 115200 baud, then again every 5 s with the time one
// run took (quantize, invoke, dequantize).

namespace {

void PrintLine(const char* line) { Serial.println(line); }

}  // namespace

void setup() {
  Serial.begin(115200);
  while (!Serial) {
  }
  const char* error = @{name}_app::Setup();
  if (error != nullptr) {
    for (;;) {
      Serial.println(error);
      delay(1000);
    }
  }
}

void loop() {
  const unsigned long start = micros();
  const char* error = @{name}_app::Run(@{name}_app::kSample, @{name}_app::kSampleCount);
  const unsigned long took = micros() - start;
  if (error != nullptr) {
    Serial.println(error);
  } else {
    @{name}_app::PrintResult(PrintLine);
    Serial.print("took ");
    Serial.print(took);
    Serial.println(" us");
  }
  delay(5000);
}
