#!/bin/bash
# measure.sh NAME LDSCRIPT CORELIB (or 'own': NAME's objs_core.txt objects, built by build.sh): the program with and without AddDecode(), linked against CORELIB and
# NAME's decode objects; prints text+data of both, the delta, and each decode object's flash from the map.
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/decode_flash}   # objects, programs, maps
NAME=$1; LD=$2; CORELIB=$3
G=$OUT/gen/$NAME; O=$G/prog; mkdir -p $O
FW=${FW:-$HERE/../../firmware_check}   # startup.c and the mps2/mps3 linker scripts
MAPSIZE=${MAPSIZE:-/work/shared/firmware-check/mapsize.py}
if [ "$CORELIB" = own ]; then
  CORELIB=$G/libcore.a; rm -f $CORELIB
  # objs_comp.txt (the decompression code -DUSE_TFLM_COMPRESSION needs) when build.sh built it
  arm-none-eabi-ar rcs $CORELIB $(cat $HERE/objs_core.txt $HERE/objs_comp.txt | sed "s#^#$G/obj/#" | while read o; do [ -f $o ] && echo $o; done)
fi
eval "CXXFLAGS=($(cat $G/flags.txt))"
ARCH=$(printf '%s\n' "${CXXFLAGS[@]}" | grep -E '^-m(cpu|fpu|thumb|float-abi|little)' | tr '\n' ' ')
rm -f $O/libdecode.a; arm-none-eabi-ar rcs $O/libdecode.a $(sed "s#^#$G/obj/#" $HERE/objs_decode.txt)
arm-none-eabi-gcc $ARCH -Os -ffunction-sections -fdata-sections -Wall -c $FW/startup.c -o $O/startup.o
arm-none-eabi-g++ "${CXXFLAGS[@]}" -c $HERE/model.cc -o $O/model.o
for v in without with; do
  D=""; [ $v = with ] && D=-DWITH_DECODE
  arm-none-eabi-g++ "${CXXFLAGS[@]}" $D -c $HERE/main_decode.cc -o $O/main_$v.o
  arm-none-eabi-g++ $ARCH -nostartfiles -T $FW/$LD -Wl,--fatal-warnings -Wl,--gc-sections \
    --specs=nano.specs --specs=nosys.specs -Wl,-Map=$O/$v.map $O/startup.o $O/main_$v.o $O/model.o \
    $O/libdecode.a $CORELIB -lm -o $O/$v.elf
done
arm-none-eabi-size $O/without.elf $O/with.elf
python3 - $O $NAME $MAPSIZE <<'PY'
import json, subprocess, sys
o, name = sys.argv[1:3]
def td(p):
    t, d, *_ = subprocess.run(["arm-none-eabi-size", p], capture_output=True, text=True).stdout.splitlines()[1].split()
    return int(t) + int(d)
def objs(m):
    out = subprocess.run(["python3", sys.argv[3], m, "400"], capture_output=True, text=True).stdout
    return {l.split()[1]: int(l.split()[0]) for l in out.splitlines() if l.startswith("    ") and ":" in l}
a, b = td(o + "/without.elf"), td(o + "/with.elf")
w, wo = objs(o + "/with.map"), objs(o + "/without.map")
names = {"decode": "decode.o", "decode_state": "decode_state.o", "lut": "decode_state_lut.o", "prune": "decode_state_prune.o", "huffman": "decode_state_huffman.o"}
parts = {k: w.get("libdecode.a:" + v, 0) for k, v in names.items()}
rest = {k: w.get(k, 0) - wo.get(k, 0) for k in set(w) | set(wo) if not k.startswith("libdecode") and w.get(k, 0) != wo.get(k, 0)}
print(json.dumps({"build": name, "without_bytes": a, "with_bytes": b, "delta_bytes": b - a, "parts": parts, "parts_sum": sum(parts.values()), "other_delta": rest}))
PY
