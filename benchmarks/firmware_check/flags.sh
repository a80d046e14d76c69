#!/bin/bash
# flags.sh CORE: print the exact g++ flags TFLite Micro's Makefile compiles micro_interpreter.cc with for CORE.
W=/work/fwcheck
case $1 in m4f) A=cortex-m4+fp ;; m7) A=cortex-m7+fp ;; m33) A=cortex-m33 ;; m55) A=cortex-m55 ;; esac
cd $W/tflm; export PATH=$W/mkvenv/bin:$PATH
G=gen/cortex_m_generic_${A}_release_cmsis_nn_gcc
make -n -B -f tensorflow/lite/micro/tools/make/Makefile TARGET=cortex_m_generic TARGET_ARCH=$A OPTIMIZED_KERNEL_DIR=cmsis_nn BUILD_TYPE=release KERNEL_OPTIMIZATION_LEVEL=-Os THIRD_PARTY_KERNEL_OPTIMIZATION_LEVEL=-Os TARGET_TOOLCHAIN_ROOT=/usr/bin/ $G/obj/core/tensorflow/lite/micro/micro_interpreter.o 2>/dev/null \
 | grep 'arm-none-eabi-g++' | grep 'micro_interpreter.cc' | head -1 \
 | sed -e 's/^.*arm-none-eabi-g++ //' -e 's/ -c tensorflow.*$//' -e 's/ -MD / /' -e 's# -I\([^/ ]\)# -I'$W'/tflm/\1#g' -e 's#-I\.\([ /]\)#-I'$W'/tflm\1#g'
