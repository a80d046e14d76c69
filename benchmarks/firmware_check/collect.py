"""collect.py MODELS_DIR OUT_CSV: the measured table, from measure_all.sh's per-model results.

One row per model and core: the smallest working arena bisected to the byte on
the QEMU machine, the largest failing one, and this host's (64-bit) figures
for the same file (host.json, from edgeprune's find_arena).
"""

import csv
import json
import os
import sys

CORES = {"m4f": ("cortex-m4f", "mps2-an386"), "m7": ("cortex-m7", "mps2-an500"),
         "m33": ("cortex-m33", "mps2-an505"), "m55": ("cortex-m55", "mps3-an547")}  # fmt: skip
MODELS = ("digits_cnn", "digits_cnn_w50", "ds_cnn", "mobilenet_v1", "resnet8", "autoencoder")
HEADER = """\
# Smallest working TFLite Micro arena, bisected to the byte: AllocateTensors and every
# Invoke succeed with outputs bit-exact with the host's TFLite Micro interpreter
# (benchmarks/firmware_check/README.md). The emitted firmware/ folder, unmodified.
# TFLite Micro 90b983c2b3f1480642e040bbd2ddb37b998f3424,
# CMSIS-NN 4ab83cc3cc98fb85ed6dafb55e8ca02f1628dcae; release build, -Os,
# KERNELS_OPTIMIZED_FOR_SPEED; arm-none-eabi-gcc 12.2.1 20221205 (Debian 12),
# newlib-nano; QEMU 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18).
# host_arena_bytes: edgeprune's figure on this x86-64 host (tflite-micro Python
# package, 64-bit, reference kernels, recording allocator: max of the smallest
# working multiple of 16 and the recorded total); the test rebuilds each model
# and checks that it still gets this figure.
"""


def main(argv: list[str]) -> int:
    models_dir, out = argv
    rows = []
    for model in MODELS:
        host = json.load(open(os.path.join(models_dir, model, "host.json")))
        for short, (core, machine) in CORES.items():
            path = os.path.join(models_dir, model, f"arena_{short}.csv")
            if not os.path.exists(path):
                continue
            name, _, smallest, failing = open(path).read().strip().split(",")
            rows.append([model, core, machine, smallest, failing, host["host_bytes"],
                         host["host_min_arena_bytes"]])  # fmt: skip
    with open(out, "w", newline="") as f:
        f.write(HEADER + "\n")
        w = csv.writer(f, lineterminator="\n")
        w.writerow(
            ["model", "core", "qemu_machine", "smallest_arena_bytes"]
            + ["largest_failing_bytes", "host_arena_bytes", "host_smallest_arena_bytes"]
        )
        w.writerows(rows)
    print(f"{len(rows)} rows -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
