"""Print targets/footprint/decode.toml's [build.*] tables from run_all.sh's JSON lines.

Usage: python gen_toml.py results.jsonl
"""

import json
import sys

KEYS = {  # run_all.sh's build name -> <kernels>_<core> as targets/footprint/tflm.toml names it
    "m0plus_cmsisnn": "cmsis-nn_cortex-m0plus",
    "m4f_cmsisnn": "cmsis-nn_cortex-m4f",
    "m4f_reference": "reference_cortex-m4f",
    "m7_cmsisnn": "cmsis-nn_cortex-m7",
    "m33_cmsisnn": "cmsis-nn_cortex-m33",
    "m55_cmsisnn": "cmsis-nn_cortex-m55",
}


def main(path: str) -> None:
    rows = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row["build"] in KEYS:
                rows[KEYS[row["build"]]] = row
    for key in (k for k in KEYS.values() if k in rows):
        row = rows[key]
        parts = ", ".join(f"{k} = {v}" for k, v in row["parts"].items())
        print(f"[build.{key}]\nprogram_delta_bytes = {row['delta_bytes']}")
        print(f"flash_bytes = {{ {parts} }}\n")


if __name__ == "__main__":
    main(sys.argv[1])
