#!/bin/bash
# build_lib.sh CORE: the TFLite Micro objects in objs_needed.txt for CORE (m4f|m7|m33|m55), built with
# TFLite Micro's own Makefile (release, -Os, cmsis_nn), archived as lib/libtflm_CORE_cmsisnn.a.
set -e
CORE=$1
case $CORE in
  m4f) ARCH=cortex-m4+fp ;;
  m7)  ARCH=cortex-m7+fp ;;
  m33) ARCH=cortex-m33 ;;
  m55) ARCH=cortex-m55 ;;
  *) echo "unknown core $CORE"; exit 2 ;;
esac
W=${W:-/work/fwcheck}
HERE=$(cd "$(dirname "$0")" && pwd)
cd $W/tflm
export PATH=$W/mkvenv/bin:$PATH
G=gen/cortex_m_generic_${ARCH}_release_cmsis_nn_gcc
ARGS="-f tensorflow/lite/micro/tools/make/Makefile TARGET=cortex_m_generic TARGET_ARCH=$ARCH OPTIMIZED_KERNEL_DIR=cmsis_nn BUILD_TYPE=release KERNEL_OPTIMIZATION_LEVEL=-Os THIRD_PARTY_KERNEL_OPTIMIZATION_LEVEL=-Os TARGET_TOOLCHAIN_ROOT=/usr/bin/"
OBJS=$(sed "s#^#$G/obj/#" ${OBJS_LIST:-$HERE/objs_needed.txt})
make $ARGS -j${JOBS:-2} $OBJS
mkdir -p $W/lib
rm -f $W/lib/libtflm_${CORE}_cmsisnn.a
arm-none-eabi-ar rcs $W/lib/libtflm_${CORE}_cmsisnn.a $OBJS
echo LIB_OK $CORE
