#!/bin/bash
# measure_all.sh MODELS_DIR CORE [MODEL ...]: for each MODELS_DIR/MODEL (holding firmware/, inputs.h, ref.json,
# host.json with the host's smallest arena), bisect the smallest working arena on CORE and write one CSV row
# (model,core,smallest,largest_failing) to MODELS_DIR/MODEL/arena_CORE.csv; also a RecordingMicroAllocator
# breakdown at a generous arena to MODELS_DIR/MODEL/record_CORE.txt.
M=$1; CORE=$2; shift 2
HERE=$(cd "$(dirname "$0")" && pwd)
for model in "${@:-digits_cnn digits_cnn_w50 ds_cnn mobilenet_v1 resnet8 autoencoder}"; do
  for name in $model; do
    host=$(python3 -c "import json; print(json.load(open('$M/$name/host.json'))['host_bytes'])")
    hi=$(( host * 2 + 4096 ))
    out=$("$HERE/bisect_arena.sh" $CORE $M/$name/firmware 0 $hi ${name} | tail -1)
    echo "$out"
    smallest=$(echo "$out" | sed -n 's/.*= \([0-9]*\) (largest failing \([0-9]*\)).*/\1/p')
    failing=$(echo "$out" | sed -n 's/.*= \([0-9]*\) (largest failing \([0-9]*\)).*/\2/p')
    echo "$name,$CORE,$smallest,$failing" > $M/$name/arena_$CORE.csv
    T=/tmp/fwcheck_record_${name}_$CORE
    "$HERE/build_prog.sh" $CORE $M/$name/firmware $T -DARENA_MAX=$hi -DRECORD > $T.build 2>&1 \
      && ARENA=$hi "$HERE/run.sh" $CORE $T.elf 2>&1 | grep -v '^O ' > $M/$name/record_$CORE.txt
  done
done
