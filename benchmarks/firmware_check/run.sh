#!/bin/bash
# run.sh CORE ELF: run ELF on CORE's QEMU machine; semihosting output to stdout, QEMU's exit code is main()'s
# (0 or 1). Add ICOUNT=1 for a deterministic instruction clock (-icount shift=0), and ARENA=N for an image
# built with -DARENA_MAX (the arena size goes on the semihosting command line).
CORE=$1; ELF=$2
source "$(dirname "$0")/cores.sh"
exec timeout ${TIMEOUT:-300} qemu-system-arm -M $MACHINE -nographic -monitor none -serial none \
  ${ICOUNT:+-icount shift=0} -semihosting-config enable=on,target=native -kernel $ELF ${ARENA:+-append $ARENA} 2>&1
