"""inputs.h and the host's reference outputs for one int8 model.

    .venv/bin/python make_inputs.py MODEL.tflite OUT_DIR N_RANDOM [N_DIGITS]

Writes OUT_DIR/inputs.h (N_DIGITS digits test images, quantized as the model's
input says, then N_RANDOM seeded random int8 inputs) and OUT_DIR/ref.json (the
host TFLite Micro interpreter's outputs for them), which compare.py checks the
device's outputs against.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np


def main(argv: list[str]) -> int:
    from tflite_micro.python.tflite_micro import runtime

    model_path, out, n_rand = argv[0], argv[1], int(argv[2])
    n_digits = int(argv[3]) if len(argv) > 3 else 0
    interp = runtime.Interpreter.from_file(model_path, arena_size=1 << 24)
    ind = interp.get_input_details(0)
    shape = tuple(ind["shape"])
    parts, labels = [], []
    if n_digits:
        from edgeprune.data import load_dataset

        ds = load_dataset("digits")
        q = ind["quantization_parameters"]
        scale, zp = q["scales"][0], q["zero_points"][0]
        x = ds.x_test[:n_digits]
        parts.append(
            np.clip(np.round(x / scale + zp), -128, 127).astype(np.int8).reshape(-1, *shape[1:])
        )
        labels += ds.y_test[:n_digits].tolist()
    rng = np.random.default_rng(0)
    parts.append(rng.integers(-128, 128, size=(n_rand, *shape[1:])).astype(np.int8))
    labels += [-1] * n_rand
    q = np.concatenate(parts)
    outs = []
    for i in range(len(q)):
        interp.set_input(q[i : i + 1].reshape(shape), 0)
        interp.invoke()
        outs.append(interp.get_output(0).reshape(-1).astype(int).tolist())
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "inputs.h"), "w") as f:
        f.write(f"#define N_SAMPLES {len(q)}\n#define SAMPLE_BYTES {q[0].size}\n")
        f.write("static const signed char g_inputs[N_SAMPLES][SAMPLE_BYTES] = {\n")
        for row in q:
            f.write("  {" + ",".join(str(int(v)) for v in row.reshape(-1)) + "},\n")
        f.write("};\n")
    with open(os.path.join(out, "ref.json"), "w") as f:
        json.dump({"labels": labels, "outputs": outs}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
