#!/bin/bash
# bisect_arena.sh CORE FIRMWARE_DIR LO_FAIL HI_OK TAG: the smallest arena at which AllocateTensors and every
# Invoke succeed on CORE under QEMU with outputs bit-exact with the host (FIRMWARE_DIR/../ref.json).
# One image (-DARENA_MAX=HI_OK) is built; each try passes its arena size on the semihosting command line.
# Prints "SMALLEST_WORKING_ARENA TAG CORE = N (largest failing M)".
CORE=$1; FW=$2; lo=$3; hi=$4; TAG=$5
source "$(dirname "$0")/cores.sh"
REF=$FW/../ref.json
T=/tmp/fwcheck_bisect_${TAG}_$CORE
"$HERE/build_prog.sh" $CORE $FW $T -DARENA_MAX=$hi > $T.build 2>&1 || { echo "build failed:"; head -20 $T.build; exit 2; }
try() {
  ARENA=$1 "$HERE/run.sh" $CORE $T.elf > $T.txt 2>&1
  if python3 "$HERE/compare.py" $T.txt $REF > $T.json; then
    echo "ARENA $1 ok (used after alloc $(grep -o 'arena_used_after_alloc=[0-9]*' $T.txt | cut -d= -f2))"; return 0
  fi
  echo "ARENA $1 FAIL $(head -c 80 $T.txt | tr '\n' ' ')"; return 1
}
try $hi || { echo "HI_OK $hi does not work"; exit 1; }
while [ $((hi - lo)) -gt 1 ]; do
  mid=$(( (lo + hi) / 2 ))
  if try $mid; then hi=$mid; else lo=$mid; fi
done
echo "SMALLEST_WORKING_ARENA $TAG $CORE = $hi (largest failing $lo)"
