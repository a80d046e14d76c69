#!/bin/bash
# struct_sizes.sh: sizeof() of TFLite Micro's arena structures on this x86-64 host (g++) and on a Cortex-M
# (arm-none-eabi-g++), from TFLite Micro's headers (W/tflm). The figures go to targets/footprint/arena.toml.
set -e
W=${W:-/work/fwcheck}; HERE=$(cd "$(dirname "$0")" && pwd)
T=$W/tflm; D=$T/tensorflow/lite/micro/tools/make/downloads
INC="-I$T -I$D/flatbuffers/include -I$D/gemmlowp -I$D/ruy"
B=$(mktemp -d)
NAMES="TfLiteEvalTensor TfLiteTensor TfLiteAffineQuantization TfLiteNode NodeAndRegistration SubgraphAllocations ScratchBufferHandle ScratchBufferRequest SingleArenaBufferAllocator MicroAllocator GreedyMemoryPlanner RecordingMicroAllocator RecordingSingleArenaBufferAllocator AllocationInfo TfLiteIntArray void* alignof(TfLiteEvalTensor) alignof(TfLiteTensor) alignof(NodeAndRegistration)"
g++ -std=c++17 -DTF_LITE_STATIC_MEMORY -DHOST $INC $HERE/struct_sizes.cc -o $B/host
arm-none-eabi-g++ -std=c++17 -DTF_LITE_STATIC_MEMORY -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -fno-rtti -fno-exceptions \
  $INC -c $HERE/struct_sizes.cc -o $B/arm.o
arm-none-eabi-objcopy -O binary --only-section=.rodata $B/arm.o $B/arm.bin
OFF=$(arm-none-eabi-readelf -s $B/arm.o | awk '/g_sizes/ {print $2}')
python3 - "$B/arm.bin" "$OFF" "$($B/host)" $NAMES <<'PY'
import struct, sys
data, off, host, names = open(sys.argv[1], "rb").read(), int(sys.argv[2], 16), sys.argv[3].split(), sys.argv[4:]
arm = struct.unpack_from(f"<{len(names)}I", data, off)
for name, h, a in zip(names, host, arm):
    print(f"{name:40s} host64 {h:>4}  arm32 {a:>4}")
PY
rm -rf $B
