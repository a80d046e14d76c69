#!/bin/bash
# run_all.sh: the DECODE kernel's flash on every build tflm.toml measured (docs/tflm-compression.md,
# "DECODE kernel flash on every measured build"); one JSON line per build on stdout.
# W: folder with tflm/ (TFLite Micro 90b983c with its downloads) and mkvenv/; LIBS: the prebuilt
# libtflm_{m4f,m7,m33,m55}_cmsisnn.a of benchmarks/firmware_check/build_lib.sh.
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
LIBS=${LIBS:-/work/fwcheck/lib}
COMP=${COMP:-0}   # 1: every object compiled with -DUSE_TFLM_COMPRESSION (own core objects too)
for b in "m4f_cmsisnn cortex-m4+fp cmsis_nn mps2_an386.ld" "m7_cmsisnn cortex-m7+fp cmsis_nn mps2_an500.ld" \
         "m33_cmsisnn cortex-m33 cmsis_nn mps2_an505.ld" "m55_cmsisnn cortex-m55 cmsis_nn mps3_an547.ld" \
         "m0plus_cmsisnn cortex-m0plus cmsis_nn mps2_an386.ld" "m4f_reference cortex-m4+fp none mps2_an386.ld"; do
  set -- $b
  N=$1; [ "$COMP" = 1 ] && N=${1}_comp
  LIB=$LIBS/libtflm_${1%_cmsisnn}_cmsisnn.a; LISTS="objs_decode.txt"
  if [ "$COMP" = 1 ] || [ ! -f "$LIB" ] || [ "$3" = none ]; then LIB=own; LISTS="objs_core.txt objs_decode.txt"; fi
  [ "$COMP" = 1 ] && LISTS="$LISTS objs_comp.txt"
  "$HERE/build.sh" $N $2 $3 $COMP $LISTS >&2
  "$HERE/measure.sh" $N $4 $LIB | tail -1
done
