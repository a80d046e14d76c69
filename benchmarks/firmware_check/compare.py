"""compare.py QEMU_OUTPUT REF_JSON: device int8 outputs vs the host TFLite Micro interpreter's.

Prints one JSON object; exit code 0 only when every sample is present and bit-exact.
"""

import json
import sys


def main(argv: list[str]) -> int:
    ref = json.load(open(argv[1]))["outputs"]
    dev, info = {}, {}
    for line in open(argv[0], errors="replace"):
        parts = line.split()
        if parts and parts[0] == "O":
            dev[int(parts[1])] = [int(v) for v in parts[2:]]
        elif "=" in line and " " not in line.strip():
            key, value = line.strip().split("=", 1)
            info[key] = value
    n = len(ref)
    missing = [i for i in range(n) if i not in dev]
    differing = [i for i in range(n) if i in dev and dev[i] != ref[i]]
    same_length = [i for i in range(n) if i in dev and len(dev[i]) == len(ref[i])]
    lsb = [max(abs(a - b) for a, b in zip(dev[i], ref[i], strict=True)) for i in same_length]
    result = {
        "info": info,
        "samples": n,
        "missing": len(missing),
        "samples_bit_exact": n - len(missing) - len(differing),
        "samples_differing": differing[:20],
        "max_lsb_diff": max(lsb) if lsb else None,
        "done": "DONE" in open(argv[0], errors="replace").read(),
    }
    print(json.dumps(result))
    return 0 if result["done"] and not missing and not differing else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
