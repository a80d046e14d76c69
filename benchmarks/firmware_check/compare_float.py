"""compare_float.py QEMU_OUTPUT REF_TXT: a float32 model's device outputs vs the host's.

Prints the largest absolute difference, how many elements are bit-exact and whether
every input's arg-max agrees; exit 1 when an output is missing or an arg-max differs.
Float outputs are not expected bit-exact: GCC contracts a * b + c into the FPU's fused
multiply-add on Cortex-M (one rounding instead of two), the x86-64 host build does not.
"""

import sys

import numpy as np


def load(path: str) -> np.ndarray:
    with open(path) as fh:
        rows = [[int(v, 16) for v in line.split()[1:]] for line in fh if line.startswith("O")]
    return np.array(rows, dtype=np.uint32).view(np.float32)


def main(device_path: str, ref_path: str) -> int:
    device, ref = load(device_path), load(ref_path)
    if device.shape != ref.shape:
        print(f"MISSING: {device.shape} outputs vs {ref.shape} on the host")
        return 1
    exact = int((device.view(np.uint32) == ref.view(np.uint32)).sum())
    same = int((device.argmax(1) == ref.argmax(1)).sum()) if ref.shape[1] > 1 else len(ref)
    print(
        f"max |difference| {float(np.max(np.abs(device - ref))):.3g}, {exact} of {ref.size} "
        f"elements bit-exact, arg-max equal on {same} of {len(ref)}"
    )
    return 0 if same == len(ref) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
