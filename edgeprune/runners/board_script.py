"""edgeprune's board-side runner: run a .tflite model for `edgeprune validate --runner ssh`.

This file is copied as is to a Linux board (a Raspberry Pi) and run there by
the board's own Python:

    python3 board_script.py MODEL.tflite [--kernels xnnpack|reference] [--threads N]

It needs only the standard library, numpy and one TFLite interpreter, the
first of ``tflite_runtime``, ``ai_edge_litert`` and ``tensorflow`` that
imports. It imports nothing of edgeprune and runs on Python 3.7 or newer.

It speaks frames on stdin and stdout: a 4-byte big-endian length, a JSON
header of that length, an 8-byte big-endian length and that many payload
bytes. Anything the interpreter prints goes to stderr, never into the frames.

* On start it sends ``hello``: the interpreter and its version, Python, numpy,
  the board, the SHA-256 of the model file as it arrived, the input and output
  tensors, the kernels and threads, and the time of one warm-up invoke.
* ``batch`` (header ``n``; payload ``n`` input tensors, C order, the input's
  own dtype, already quantized): for each sample one ``result`` frame (header
  ``index`` and ``ms``, the board's ``time.perf_counter`` around ``invoke()``;
  payload the output tensor exactly as the interpreter left it).
* ``bye`` ends the run. A problem is one ``error`` frame, then exit status 2.
"""

import hashlib
import json
import os
import platform
import struct
import sys
import time

HEAD = struct.Struct(">I")
BODY = struct.Struct(">Q")
MAX_HEADER = 1 << 20


class Stop(Exception):
    """Something the host must hear about; ends the script."""


def read_exact(stream, n):
    parts, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError("the host closed the connection")
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def read_frame(stream):
    (size,) = HEAD.unpack(read_exact(stream, HEAD.size))
    if size > MAX_HEADER:
        raise Stop(f"a frame header of {size} bytes: the stream is out of step")
    header = json.loads(read_exact(stream, size).decode("utf-8"))
    (length,) = BODY.unpack(read_exact(stream, BODY.size))
    return header, read_exact(stream, length)


def write_frame(stream, header, payload=b""):
    text = json.dumps(header).encode("utf-8")
    stream.write(HEAD.pack(len(text)) + text + BODY.pack(len(payload)) + payload)
    stream.flush()


def load_interpreter():
    """(Interpreter class, OpResolverType or None, runtime name and version)."""
    tried = []
    for module, package in (
        ("tflite_runtime.interpreter", "tflite_runtime"),
        ("ai_edge_litert.interpreter", "ai_edge_litert"),
        ("tensorflow.lite.python.interpreter", "tensorflow"),
    ):
        try:
            mod = __import__(module, fromlist=["Interpreter"])
        except Exception as exc:  # ImportError, or a runtime built for another numpy
            tried.append(f"{package} ({str(exc).splitlines()[0][:80]})")
            continue
        version = getattr(sys.modules.get(package), "__version__", "")
        if not version:
            try:
                from importlib.metadata import version as dist_version

                version = dist_version(package.replace("_", "-"))
            except Exception:
                version = "version unknown"
        return mod.Interpreter, getattr(mod, "OpResolverType", None), package + " " + version
    raise Stop(
        "no TFLite interpreter imports on this board: tried "
        + "; ".join(tried)
        + "; install one (pip install tflite-runtime, or ai-edge-litert)"
    )


def board_name():
    for path in ("/proc/device-tree/model", "/sys/firmware/devicetree/base/model"):
        try:
            with open(path, "rb") as fh:
                name = fh.read().rstrip(b"\0\n").decode("utf-8", "replace")
            if name:
                return name
        except OSError:
            pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def tensor_info(detail):
    scale, zero_point = detail.get("quantization", (0.0, 0))
    return {
        "shape": [int(d) for d in detail["shape"]],
        "dtype": str(detail["dtype"].__name__),
        "scale": float(scale),
        "zero_point": int(zero_point),
    }


def main(argv):
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--kernels", choices=("xnnpack", "reference"), default="xnnpack")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    # The frames own the real stdout; fd 1 now points at stderr, so whatever the
    # interpreter's native code prints cannot land inside a frame.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    source = sys.stdin.buffer
    try:
        try:
            import numpy as np
        except ImportError:
            raise Stop("numpy does not import on this board; pip install numpy") from None
        with open(args.model, "rb") as fh:
            model = fh.read()
        interpreter_class, resolvers, runtime = load_interpreter()
        options = {"model_content": model, "num_threads": args.threads}
        kernels = "the runtime's default kernels"
        if resolvers is not None:
            if args.kernels == "reference":
                options["experimental_op_resolver_type"] = (
                    resolvers.BUILTIN_WITHOUT_DEFAULT_DELEGATES
                )
                kernels = "built-in kernels without delegates"
            else:
                options["experimental_op_resolver_type"] = resolvers.BUILTIN
                kernels = "built-in kernels with the default delegate (XNNPACK)"
        try:
            try:
                it = interpreter_class(**options)
            except TypeError:  # a runtime older than the op resolver choice (TF < 2.5)
                options.pop("experimental_op_resolver_type", None)
                kernels = "the runtime's default kernels (it offers no choice)"
                it = interpreter_class(**options)
            inp = it.get_input_details()[0]
            if inp["shape"][0] != 1:
                it.resize_tensor_input(inp["index"], [1] + list(inp["shape"][1:]))
            it.allocate_tensors()
            inp, outp = it.get_input_details()[0], it.get_output_details()[0]
            it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))
            began = time.perf_counter()
            it.invoke()
            warmup_ms = (time.perf_counter() - began) * 1e3
        except (RuntimeError, ValueError) as exc:
            raise Stop(f"{runtime} cannot run the model: {str(exc).splitlines()[0]}") from None
        write_frame(
            out,
            {
                "op": "hello",
                "runtime": runtime,
                "kernels": kernels,
                "threads": args.threads,
                "python": platform.python_version(),
                "numpy": np.__version__,
                "board": board_name(),
                "machine": platform.machine(),
                "cores": os.cpu_count(),
                "sha256": hashlib.sha256(model).hexdigest(),
                "input": tensor_info(inp),
                "output": tensor_info(outp),
                "warmup_ms": warmup_ms,
            },
        )
        shape, dtype = list(inp["shape"]), np.dtype(inp["dtype"])
        per_sample = int(np.prod(shape)) * dtype.itemsize
        index = 0
        while True:
            header, payload = read_frame(source)
            if header.get("op") == "bye":
                return 0
            if header.get("op") != "batch":
                raise Stop(f"unknown request {header.get('op')!r}")
            n = int(header["n"])
            if len(payload) != n * per_sample:
                raise Stop(
                    f"a batch of {n} samples needs {n * per_sample} bytes of "
                    f"{dtype.name} input, got {len(payload)}"
                )
            samples = np.frombuffer(payload, dtype).reshape([n] + shape[1:])
            for k in range(n):
                it.set_tensor(inp["index"], samples[k : k + 1])
                began = time.perf_counter()
                it.invoke()
                ms = (time.perf_counter() - began) * 1e3
                result = it.get_tensor(outp["index"])
                write_frame(out, {"op": "result", "index": index, "ms": ms}, result.tobytes())
                index += 1
    except EOFError:
        return 0  # the host went away (Ctrl-C on its side): nothing to say to anyone
    except Exception as exc:  # every failure reaches the host as one line
        message = str(exc) if isinstance(exc, Stop) else f"{type(exc).__name__}: {exc}"
        try:
            write_frame(out, {"op": "error", "message": message})
        except OSError:
            pass
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
