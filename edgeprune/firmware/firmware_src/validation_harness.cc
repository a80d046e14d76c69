// edgeprune validation harness: see validation_harness.h.
#include "validation_harness.h"

#include <string.h>

namespace edgeprune {
namespace {

uint32_t ReadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

uint8_t* PutU16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  return p + 2;
}

uint8_t* PutU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
  return p + 4;
}

uint8_t* PutU64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
  return p + 8;
}

}  // namespace

uint32_t Crc32(const uint8_t* data, size_t size, uint32_t crc) {
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) {
    crc ^= data[i];
    for (int bit = 0; bit < 8; ++bit) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

ValidationHarness::ValidationHarness(tflite::MicroInterpreter* interpreter,
                                     const uint8_t* model, uint32_t model_bytes,
                                     uint32_t arena_bytes, uint32_t clock_hz,
                                     Transport transport)
    : interpreter_(interpreter),
      model_crc32_(Crc32(model, model_bytes)),
      model_bytes_(model_bytes),
      arena_bytes_(arena_bytes),
      clock_hz_(clock_hz),
      transport_(transport),
      filled_(0) {}

void ValidationHarness::Receive(uint8_t byte) {
  if (filled_ == 0 && byte != EP_SYNC0) return;
  if (filled_ == 1 && byte != EP_SYNC1) {
    filled_ = byte == EP_SYNC0 ? 1 : 0;
    return;
  }
  frame_[filled_++] = byte;
  if (filled_ < 5) return;
  const uint16_t size = static_cast<uint16_t>(frame_[2] | (frame_[3] << 8));
  if (size > EP_MAX_PAYLOAD) {
    filled_ = 0;
    Error(EP_ERR_LENGTH, "frame longer than EP_MAX_PAYLOAD");
    return;
  }
  if (filled_ < 5u + size + 4u) return;
  filled_ = 0;
  if (Crc32(frame_ + 2, 3u + size) != ReadU32(frame_ + 5 + size)) {
    Error(EP_ERR_CRC, "frame CRC mismatch; resend");
    return;
  }
  Handle(frame_[4], frame_ + 5, size);
}

void ValidationHarness::Handle(uint8_t type, const uint8_t* payload, uint16_t size) {
  TfLiteTensor* input = interpreter_->input(0);
  TfLiteTensor* output = interpreter_->output(0);
  uint8_t body[EP_MAX_PAYLOAD];
  switch (type) {
    case EP_HELLO: {
      uint8_t* p = body;
      *p++ = EP_VERSION;
      p = PutU32(p, model_crc32_);
      p = PutU32(p, model_bytes_);
      p = PutU32(p, arena_bytes_);
      p = PutU32(p, static_cast<uint32_t>(input->bytes));
      p = PutU32(p, static_cast<uint32_t>(output->bytes));
      p = PutU32(p, clock_hz_);
      p = PutU16(p, EP_MAX_PAYLOAD);
      Reply(EP_HELLO | EP_REPLY, body, static_cast<uint16_t>(p - body));
      return;
    }
    case EP_SET_INPUT: {
      if (size < 4) return Error(EP_ERR_LENGTH, "SET_INPUT needs an offset");
      const uint32_t offset = ReadU32(payload);
      const uint32_t count = size - 4u;
      if (offset > input->bytes || count > input->bytes - offset) {
        return Error(EP_ERR_RANGE, "input offset or count out of range");
      }
      memcpy(reinterpret_cast<uint8_t*>(input->data.raw) + offset, payload + 4, count);
      body[0] = EP_STATUS_OK;
      Reply(EP_SET_INPUT | EP_REPLY, body, 1);
      return;
    }
    case EP_INVOKE: {
      const uint64_t start = transport_.cycles(transport_.context);
      const TfLiteStatus status = interpreter_->Invoke();
      const uint64_t cycles = transport_.cycles(transport_.context) - start;
      if (status != kTfLiteOk) return Error(EP_ERR_INVOKE, "Invoke() failed");
      body[0] = EP_STATUS_OK;
      PutU64(body + 1, cycles);
      Reply(EP_INVOKE | EP_REPLY, body, EP_INVOKED_BYTES);
      return;
    }
    case EP_GET_OUTPUT: {
      if (size != 6) return Error(EP_ERR_LENGTH, "GET_OUTPUT needs an offset and a count");
      const uint32_t offset = ReadU32(payload);
      const uint16_t count = static_cast<uint16_t>(payload[4] | (payload[5] << 8));
      if (count > EP_MAX_PAYLOAD - 1 || offset > output->bytes ||
          count > output->bytes - offset) {
        return Error(EP_ERR_RANGE, "output offset or count out of range");
      }
      body[0] = EP_STATUS_OK;
      memcpy(body + 1, reinterpret_cast<const uint8_t*>(output->data.raw) + offset, count);
      Reply(EP_GET_OUTPUT | EP_REPLY, body, static_cast<uint16_t>(count + 1));
      return;
    }
    default:
      Error(EP_ERR_TYPE, "unknown message type");
  }
}

void ValidationHarness::Reply(uint8_t type, const uint8_t* payload, uint16_t size) {
  uint8_t* p = reply_;
  *p++ = EP_SYNC0;
  *p++ = EP_SYNC1;
  p = PutU16(p, size);
  *p++ = type;
  memcpy(p, payload, size);
  p += size;
  p = PutU32(p, Crc32(reply_ + 2, 3u + size));
  transport_.write(transport_.context, reply_, static_cast<size_t>(p - reply_));
}

void ValidationHarness::Error(uint8_t code, const char* message) {
  uint8_t body[64];
  body[0] = code;
  size_t n = strlen(message);
  if (n > sizeof(body) - 1) n = sizeof(body) - 1;
  memcpy(body + 1, message, n);
  Reply(EP_ERROR, body, static_cast<uint16_t>(n + 1));
}

}  // namespace edgeprune
