#!/bin/bash
# build_prog.sh CORE FIRMWARE_DIR OUT_PREFIX [extra -D flags...]
#   OUT_PREFIX.elf: main.cc with the emitted headers and model_<name>.cc (unmodified), compiled with exactly the
#   flags TFLite Micro's Makefile uses for CORE (flags.sh), linked with CORE's linker script and startup.c
#   against the CORE library archive. INPUTS (env) is the folder holding inputs.h (default FIRMWARE_DIR/..).
set -e
CORE=$1; FW=$2; OUT=$3; shift 3
source "$(dirname "$0")/cores.sh"
[ -s $FLAGS_FILE ] || "$HERE/flags.sh" $CORE > $FLAGS_FILE
eval "CXXFLAGS=($(cat $FLAGS_FILE))"
ARCH=$(printf '%s\n' "${CXXFLAGS[@]}" | grep -E '^-m(cpu|fpu|thumb|float-abi|little)' | tr '\n' ' ')
INPUTS=${INPUTS:-$FW/..}
B=$(mktemp -d /tmp/fwcheck_obj.XXXXXX)
# fw.h: the folder's headers and C names (its files carry the model's C name, ops_<name>.h ...)
NAME=$(basename "$(ls $FW/ops_*.h | head -1)" .h); NAME=${NAME#ops_}
CAMEL=$(sed -n 's/^constexpr int k\(.*\)OpCount = .*/\1/p' $FW/ops_$NAME.h)
printf '#include "%s"\n' config_$NAME.h model_$NAME.h ops_$NAME.h > $B/fw.h
printf '#define %s %s\n' FW_RESOLVER ${NAME}_OpResolver FW_REGISTER ${NAME}_RegisterOps \
  FW_DATA g_${NAME}_model_data FW_ARENA k${CAMEL}ArenaBytes \
  FW_OUTPUT_BYTES k${CAMEL}Output0Bytes FW_OUTPUT_ELEMENTS k${CAMEL}Output0Elements >> $B/fw.h
arm-none-eabi-gcc $ARCH -Os -ffunction-sections -fdata-sections -Wall -c $HERE/startup.c -o $B/startup.o
arm-none-eabi-g++ "${CXXFLAGS[@]}" -I$FW -I$INPUTS -I$B "$@" -c ${SRC:-$HERE/main.cc} -o $B/main.o
arm-none-eabi-g++ "${CXXFLAGS[@]}" -I$FW "$@" -c $FW/model_$NAME.cc -o $B/model_data.o
arm-none-eabi-g++ $ARCH -nostartfiles -T $HERE/$LD -Wl,--fatal-warnings -Wl,--gc-sections \
  --specs=nano.specs --specs=nosys.specs -Wl,-Map=$OUT.map $B/startup.o $B/main.o $B/model_data.o $LIB -lm -o $OUT.elf
rm -rf $B
