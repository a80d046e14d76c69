// edgeprune validation harness for TensorFlow Lite Micro: answers the framed
// serial protocol of edgeprune/protocol.py (edgeprune_protocol.h) so that
// `edgeprune validate --runner serial` can run the model on this board.
//
// The board feeds every byte it receives to Receive() and provides a
// transport: a function that writes bytes to the UART and one that reads a
// cycle counter (DWT->CYCCNT on Cortex-M, or microseconds times the clock).
// No heap, no exceptions; one frame buffer of EP_MAX_PAYLOAD + 9 bytes.
#ifndef EDGEPRUNE_VALIDATION_HARNESS_H_
#define EDGEPRUNE_VALIDATION_HARNESS_H_

#include <stddef.h>
#include <stdint.h>

#include "edgeprune_protocol.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

namespace edgeprune {

struct Transport {
  void (*write)(void* context, const uint8_t* data, size_t size);
  uint64_t (*cycles)(void* context);
  void* context;
};

// CRC-32 (IEEE 802.3, as zlib.crc32), continued from `crc`.
uint32_t Crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

class ValidationHarness {
 public:
  // `interpreter` must have allocated its tensors; `model` is the flatbuffer
  // it runs (its CRC-32 identifies the model to the host).
  ValidationHarness(tflite::MicroInterpreter* interpreter, const uint8_t* model,
                    uint32_t model_bytes, uint32_t arena_bytes, uint32_t clock_hz,
                    Transport transport);

  // Feed one received byte; a complete request is answered at once.
  void Receive(uint8_t byte);

  uint32_t model_crc32() const { return model_crc32_; }

 private:
  static constexpr size_t kFrameBytes = 2 + 3 + EP_MAX_PAYLOAD + 4;

  void Handle(uint8_t type, const uint8_t* payload, uint16_t size);
  void Reply(uint8_t type, const uint8_t* payload, uint16_t size);
  void Error(uint8_t code, const char* message);

  tflite::MicroInterpreter* interpreter_;
  uint32_t model_crc32_;
  uint32_t model_bytes_;
  uint32_t arena_bytes_;
  uint32_t clock_hz_;
  Transport transport_;
  uint8_t frame_[kFrameBytes];
  size_t filled_;
  uint8_t reply_[kFrameBytes];
};

}  // namespace edgeprune

#endif  // EDGEPRUNE_VALIDATION_HARNESS_H_
