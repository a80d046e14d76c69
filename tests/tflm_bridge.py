"""A stub TFLite Micro ``MicroInterpreter`` for firmware built with the host compiler, whose
``AllocateTensors()`` and ``Invoke()`` run the model in the real tflite-micro interpreter.

The firmware's C++ compiles against these headers as it would against TFLite
Micro's: ``inference_example.cc`` on :data:`INTERPRETER_H` (with the op resolver
and types of tests/test_firmware.py), the project templates' sources on
:data:`PROJECT_INTERPRETER_H` and :data:`PROJECT_SCHEMA_H` (with the stubs of
tests/stubs/tflm, whose tensors also carry their type and quantization, which
the worker's ``load`` answer fills in). ``AllocateTensors()`` sends the
model bytes the firmware embeds (the array of ``model_<name>.cc`` and its
``_len``, reached through the ``tflite::GetModel()`` pointer: the emitted array
itself is what runs) once, and the arena size each time, to a TFLite Micro worker
(``python -m edgeprune.tflm.worker``, its ``load`` and ``invoke`` requests,
:mod:`edgeprune.tflm.tensor_worker`); ``Invoke()`` sends the input tensors' bytes
and copies back the output tensors' bytes. The worker's pipes reach the program
as two file descriptors named in ``EDGEPRUNE_TFLM_FDS`` ("WRITE READ").

What this does not check: the op resolver. TFLite Micro's Python interpreter
registers every op itself; the firmware's ``<name>_RegisterOps()`` runs against
the stub resolver of tests/test_firmware.py, which checks the method names.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ENV = "EDGEPRUNE_TFLM_FDS"

_CLASS = """namespace tflite {
class MicroInterpreter {
 public:
  template <typename Resolver>
  MicroInterpreter(const Model* model, const Resolver& resolver, uint8_t*, size_t arena_bytes)
      : model_(model), arena_bytes_(arena_bytes), ops_(OPS) {}
  ~MicroInterpreter();
  TfLiteStatus AllocateTensors();
  size_t inputs_size() const { return inputs_; }
  TfLiteTensor* input(size_t index);
  TfLiteTensor* output(size_t index);
  TfLiteStatus Invoke();
 private:
  MicroInterpreter(const MicroInterpreter&);
  MicroInterpreter& operator=(const MicroInterpreter&);
  static const size_t kMaxTensors = 8;
  const Model* model_;
  size_t arena_bytes_;
  unsigned int ops_;
  size_t inputs_ = 0;
  size_t outputs_ = 0;
  TfLiteTensor tensors_[2 * kMaxTensors] = {};
};
}  // namespace tflite
"""

# On the op resolver and types of tests/test_firmware.py (stub_common.h): the
# example's tensors (data and bytes) and model; an interpreter header adds its class.
EXAMPLE_TYPES_H = """#pragma once
#include <stddef.h>
#include <stdint.h>
#include "stub_common.h"
typedef union { char* raw; int8_t* int8; uint8_t* uint8; int16_t* i16; float* f; } TfLitePtrUnion;
typedef struct { TfLitePtrUnion data; size_t bytes; } TfLiteTensor;
namespace tflite {
struct Model {};
inline const Model* GetModel(const void* data) { return static_cast<const Model*>(data); }
}  // namespace tflite
"""
# ops_ from the stub resolver's count.
INTERPRETER_H = EXAMPLE_TYPES_H + _CLASS.replace("OPS", "resolver.count")

# On the stubs of the project templates (tests/stubs/tflm: stub_tflm_common.h, whose
# tensors also carry their type and quantization, which the templates' app reads).
# Their schema_generated.h hands out one static Model; this one, earlier on the
# include path, keeps the array's address, as TFLite Micro's GetModel does.
PROJECT_SCHEMA_H = """#ifndef STUB_SCHEMA_GENERATED_H_
#define STUB_SCHEMA_GENERATED_H_
#include <stdint.h>
#define TFLITE_SCHEMA_VERSION (3)
namespace tflite {
struct Model {
  uint32_t version() const { return TFLITE_SCHEMA_VERSION; }
};
inline const Model* GetModel(const void* data) { return static_cast<const Model*>(data); }
}  // namespace tflite
#endif
"""
PROJECT_INTERPRETER_H = """#pragma once
#include "stub_tflm_common.h"
#include "tensorflow/lite/schema/schema_generated.h"
""" + _CLASS.replace("OPS", "sizeof(resolver) > 0")

# MODEL_H, MODEL_ARRAY and MODEL_LEN (-D) name the firmware's model header, array and length.
BRIDGE_CC = r"""#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <string>
#include "tensorflow/lite/micro/micro_interpreter.h"
#include MODEL_H

namespace {

bool g_model_sent = false;

int Fd(int which) {
  const char* fds = getenv("EDGEPRUNE_TFLM_FDS");
  int w = -1, r = -1;
  if (fds == nullptr || sscanf(fds, "%d %d", &w, &r) != 2) return -1;
  return which == 0 ? w : r;
}

void Hex(std::string* out, const unsigned char* data, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out->push_back(kDigits[data[i] >> 4]);
    out->push_back(kDigits[data[i] & 15]);
  }
}

// One request line out, one answer line back; an empty answer when the worker is gone.
std::string Ask(const std::string& request) {
  const std::string line = request + "\n";
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = write(Fd(0), line.data() + done, line.size() - done);
    if (n <= 0) return std::string();
    done += static_cast<size_t>(n);
  }
  std::string answer;
  char c = 0;
  while (read(Fd(1), &c, 1) == 1 && c != '\n') answer.push_back(c);
  return answer;
}

bool Ok(const std::string& answer) {
  if (answer.compare(0, 12, "{\"ok\": true,") == 0) return true;
  fprintf(stderr, "tflm: %s\n", answer.empty() ? "the worker is gone" : answer.c_str());
  return false;
}

// The numbers of the JSON list after "key": [.
size_t Numbers(const std::string& answer, const char* key, double* out, size_t most) {
  size_t at = answer.find(std::string("\"") + key + "\": [");
  if (at == std::string::npos) return 0;
  const char* p = answer.c_str() + answer.find('[', at) + 1;
  size_t count = 0;
  while (*p != ']' && count < most) {
    char* end = nullptr;
    out[count++] = strtod(p, &end);
    p = end;
    while (*p == ',' || *p == ' ') ++p;
  }
  return count;
}

#ifdef STUB_TFLM_COMMON_H_
// The project stubs' tensors also carry their type and quantization.
void Describe(const std::string& answer, TfLiteTensor* tensors, size_t count) {
  double scales[16] = {}, zeros[16] = {}, types[16] = {};
  Numbers(answer, "scales", scales, 16);
  Numbers(answer, "zero_points", zeros, 16);
  Numbers(answer, "types", types, 16);
  for (size_t i = 0; i < count && i < 16; ++i) {
    tensors[i].type = static_cast<TfLiteType>(static_cast<int>(types[i]));
    tensors[i].params.scale = static_cast<float>(scales[i]);
    tensors[i].params.zero_point = static_cast<int32_t>(zeros[i]);
  }
}
#endif

}  // namespace

tflite::MicroInterpreter::~MicroInterpreter() {
  for (size_t i = 0; i < 2 * kMaxTensors; ++i) free(tensors_[i].data.raw);
}

TfLiteStatus tflite::MicroInterpreter::AllocateTensors() {
  if (ops_ == 0) return kTfLiteError;
  const unsigned char* array = MODEL_ARRAY;
  if (static_cast<const void*>(model_) != static_cast<const void*>(array)) {
    fprintf(stderr, "tflm: the interpreter was not given the firmware's model array\n");
    return kTfLiteError;
  }
  std::string request = "{\"cmd\": \"load\", \"arena_bytes\": " + std::to_string(arena_bytes_);
  if (!g_model_sent) {
    request += ", \"model\": \"";
    Hex(&request, array, MODEL_LEN);
    request += "\"";
  }
  const std::string answer = Ask(request + "}");
  if (!Ok(answer)) return kTfLiteError;
  if (!g_model_sent) {
    const size_t at = answer.find("\"sha256\": \"") + 11;
    fprintf(stderr, "tflm model %s %u bytes\n", answer.substr(at, 64).c_str(),
            static_cast<unsigned>(MODEL_LEN));
    g_model_sent = true;
  }
  double sizes[kMaxTensors];
  inputs_ = Numbers(answer, "inputs", sizes, kMaxTensors);
  for (size_t i = 0; i < inputs_; ++i) {
    tensors_[i].bytes = static_cast<size_t>(sizes[i]);
    tensors_[i].data.raw = static_cast<char*>(calloc(tensors_[i].bytes, 1));
  }
  outputs_ = Numbers(answer, "outputs", sizes, kMaxTensors);
  for (size_t i = 0; i < outputs_; ++i) {
    TfLiteTensor* t = &tensors_[kMaxTensors + i];
    t->bytes = static_cast<size_t>(sizes[i]);
    t->data.raw = static_cast<char*>(calloc(t->bytes, 1));
  }
#ifdef STUB_TFLM_COMMON_H_
  TfLiteTensor described[2 * kMaxTensors] = {};
  Describe(answer, described, inputs_ + outputs_);
  for (size_t i = 0; i < inputs_ + outputs_; ++i) {
    TfLiteTensor* t = i < inputs_ ? &tensors_[i] : &tensors_[kMaxTensors + i - inputs_];
    t->type = described[i].type;
    t->params = described[i].params;
  }
#endif
  return kTfLiteOk;
}

TfLiteTensor* tflite::MicroInterpreter::input(size_t index) {
  return index < inputs_ ? &tensors_[index] : nullptr;
}

TfLiteTensor* tflite::MicroInterpreter::output(size_t index) {
  return index < outputs_ ? &tensors_[kMaxTensors + index] : nullptr;
}

TfLiteStatus tflite::MicroInterpreter::Invoke() {
  std::string request = "{\"cmd\": \"invoke\", \"inputs\": [";
  for (size_t i = 0; i < inputs_; ++i) {
    request += i ? ", \"" : "\"";
    Hex(&request, reinterpret_cast<const unsigned char*>(tensors_[i].data.raw), tensors_[i].bytes);
    request += "\"";
  }
  const std::string answer = Ask(request + "]}");
  if (!Ok(answer)) return kTfLiteError;
  size_t at = answer.find("\"outputs\": [") + 12;
  for (size_t i = 0; i < outputs_; ++i) {
    at = answer.find('"', at) + 1;  // the first digit of output i
    unsigned char* out = reinterpret_cast<unsigned char*>(tensors_[kMaxTensors + i].data.raw);
    for (size_t k = 0; k < tensors_[kMaxTensors + i].bytes; ++k) {
      const std::string pair = answer.substr(at + 2 * k, 2);
      out[k] = static_cast<unsigned char>(strtoul(pair.c_str(), nullptr, 16));
    }
    at += 2 * tensors_[kMaxTensors + i].bytes + 1;  // past its closing quote
  }
  return kTfLiteOk;
}
"""


class TflmWorker:
    """A TFLite Micro worker process whose pipes a host-built program talks to: pass
    :attr:`fds` and :attr:`env` to ``subprocess.run``; :meth:`log` is its stderr."""

    def __init__(self, folder: Path):
        empty = folder / "empty.tflite"
        empty.write_bytes(b"")
        self._log = folder / "worker.log"
        self._stderr = open(self._log, "wb")  # noqa: SIM115 - open for the worker's life
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeprune.tflm.worker", str(empty)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
        )
        self.fds = (self.proc.stdin.fileno(), self.proc.stdout.fileno())
        self.env = {**os.environ, ENV: f"{self.fds[0]} {self.fds[1]}"}

    @staticmethod
    def defines(name: str) -> list[str]:
        """The -D flags that name the firmware's model ``name`` for :data:`BRIDGE_CC`."""
        return [
            f'-DMODEL_H="model_{name}.h"',
            f"-DMODEL_ARRAY=g_{name}_model_data",
            f"-DMODEL_LEN=g_{name}_model_data_len",
        ]

    def run(self, exe: Path, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(exe)], capture_output=True, text=True, timeout=timeout,
            pass_fds=self.fds, env=self.env,
        )  # fmt: skip

    def ask(self, request: dict) -> dict:
        """One request from Python, as the bridge would send it (no program running)."""
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def log(self) -> str:
        return self._log.read_text(errors="replace")

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self._stderr.close()
