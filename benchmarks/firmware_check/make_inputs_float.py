"""make_inputs_float.py MODEL.tflite OUT_DIR N: inputs and the host's outputs for one float32 model.

Writes ``OUT_DIR/inputs_float.h`` (N seeded inputs, uniform in [-1, 7): the range of
TFLite Micro's sine examples, harmless elsewhere) and ``OUT_DIR/ref.txt``, the host
TFLite Micro interpreter's outputs as IEEE-754 bits, one ``O`` line per input, the
format ``main_float.cc`` prints. Floats are written with 9 significant digits, which
round-trip a float32 exactly.
"""

import sys

import numpy as np
from tflite_micro.python.tflite_micro import runtime


def main(model: str, out: str, n: int) -> None:
    interp = runtime.Interpreter.from_file(model)
    shape = interp.get_input_details(0)["shape"]
    xs = np.random.default_rng(0).uniform(-1, 7, size=(n, *shape[1:])).astype(np.float32)
    lines, rows = [], []
    for x in xs:
        interp.set_input(x.reshape(shape), 0)
        interp.invoke()
        y = interp.get_output(0).astype(np.float32).reshape(-1)
        lines.append("O " + " ".join(f"{v:08x}" for v in y.view(np.uint32)))
        rows.append("{" + ", ".join(f"{float(v):.9g}f" for v in x.reshape(-1)) + "}")
    size = int(np.prod(shape[1:]))
    with open(f"{out}/inputs_float.h", "w") as fh:
        fh.write(f"#define N_SAMPLES {n}\n#define SAMPLE_BYTES {size * 4}\n")
        fh.write(f"static const float g_inputs[{n}][{size}] = {{\n" + ",\n".join(rows) + "};\n")
    with open(f"{out}/ref.txt", "w") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
