# Sourced: per-core QEMU machine and linker script for CORE (m4f|m7|m33|m55).
case $CORE in
  m4f) MACHINE=mps2-an386; LD=mps2_an386.ld ;;
  m7)  MACHINE=mps2-an500; LD=mps2_an500.ld ;;
  m33) MACHINE=mps2-an505; LD=mps2_an505.ld ;;
  m55) MACHINE=mps3-an547; LD=mps3_an547.ld ;;
  *) echo "unknown core '$CORE' (m4f|m7|m33|m55)" >&2; exit 2 ;;
esac
W=${W:-/work/fwcheck}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB=${LIB:-$W/lib/libtflm_${CORE}_cmsisnn.a}
FLAGS_FILE=$W/lib/flags_${CORE}.txt
