#!/bin/bash
# build.sh NAME TARGET_ARCH KERNEL_DIR(cmsis_nn|none) COMP(0|1) OBJLIST...: objects with TFLM's Makefile into $OUT/gen/NAME/
set -e
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-/tmp/decode_flash}   # objects, programs, maps
NAME=$1; ARCH=$2; KD=$3; COMP=$4; shift 4
W=${W:-/work/fwcheck}   # holds tflm/ (TFLite Micro 90b983c + downloads) and mkvenv/
cd $W/tflm; export PATH=$W/mkvenv/bin:$PATH
ARGS="-f tensorflow/lite/micro/tools/make/Makefile TARGET=cortex_m_generic TARGET_ARCH=$ARCH BUILD_TYPE=release KERNEL_OPTIMIZATION_LEVEL=-Os THIRD_PARTY_KERNEL_OPTIMIZATION_LEVEL=-Os TARGET_TOOLCHAIN_ROOT=/usr/bin/ GENDIR=$OUT/gen/$NAME/"
DEF=""
[ "$KD" != none ] && ARGS="$ARGS OPTIMIZED_KERNEL_DIR=$KD" && DEF="-DCMSIS_NN"
# ADDITIONAL_DEFINES as the Makefile computes it (OPTIMIZED_KERNEL_DIR, OPTIMIZE_KERNELS_FOR default), plus the define when asked
if [ "$COMP" = 1 ]; then ARGS="$ARGS ADDITIONAL_DEFINES=\"$DEF -DKERNELS_OPTIMIZED_FOR_SPEED -DUSE_TFLM_COMPRESSION\""; fi
OBJS=$(cd $HERE && cat "$@" | sed "s#^#$OUT/gen/$NAME/obj/#")
eval nice -n 5 make $ARGS -j${JOBS:-2} $OBJS
# the exact g++ flags for a core object (for main.cc)
eval make -n -B $ARGS $OUT/gen/$NAME/obj/core/tensorflow/lite/micro/micro_interpreter.o 2>/dev/null | grep 'arm-none-eabi-g++' | grep micro_interpreter.cc | head -1 \
 | sed -e 's/^.*arm-none-eabi-g++ //' -e 's/ -c tensorflow.*$//' -e 's/ -MD / /' -e 's# -I\([^/ ]\)# -I'$W'/tflm/\1#g' -e 's#-I\.\([ /]\)#-I'$W'/tflm\1#g' > $OUT/gen/$NAME/flags.txt
echo BUILD_OK $NAME
