"""Run a ``.tflite`` model on this host with ai-edge-litert (LiteRT).

The interpreter uses ``BUILTIN_WITHOUT_DEFAULT_DELEGATES``: the reference
built-in kernels without XNNPACK, which is what TFLite Micro is closest to.
Inputs are quantized and outputs dequantized with the model's own scales, so
callers always pass and receive float32 arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

from edgeprune.errors import EdgepruneError, clip, signal_name
from edgeprune.estimates.latency import LatencyMeasurement


class RunnerError(EdgepruneError, RuntimeError):
    """A runner could not load or run the model."""


@dataclass(frozen=True)
class HostRunner:
    """Runs one model; ``batch_size`` samples per invoke when the model allows it."""

    model: bytes
    batch_size: int = 256
    num_threads: int = 1

    name = "host"

    def _interpreter(self) -> Interpreter:
        return Interpreter(
            model_content=self.model,
            num_threads=self.num_threads,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Float32 outputs for float32 inputs ``x`` (first axis is the batch)."""
        it = self._interpreter()
        inp = it.get_input_details()[0]
        batch = self.batch_size
        sig = inp.get("shape_signature")
        if sig is None or len(sig) == 0 or sig[0] != -1:
            batch = 1  # fixed batch dimension: one sample per invoke
        outs = []
        current = None
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch]
            if current != len(chunk):
                # the data's own shape: dynamic dimensions (-1) take it as given
                it.resize_tensor_input(inp["index"], [len(chunk), *chunk.shape[1:]])
                it.allocate_tensors()
                current = len(chunk)
                inp = it.get_input_details()[0]
                out = it.get_output_details()[0]
            it.set_tensor(inp["index"], quantize(chunk, inp))
            it.invoke()
            outs.append(dequantize(it.get_tensor(out["index"]), out))
        return np.concatenate(outs).astype(np.float32)

    def run(self, x: np.ndarray):
        """One invoke per sample, each timed: a :class:`~edgeprune.runners.RunOutput`.

        Ctrl-C stops the loop and returns the samples done so far, marked partial.
        """
        import time

        from edgeprune.runners import RunOutput, sample_progress

        it = self._interpreter()
        inp = it.get_input_details()[0]
        shape = [1, *x.shape[1:]]
        if list(inp["shape"]) != shape:
            it.resize_tensor_input(inp["index"], shape)
        it.allocate_tensors()
        inp, out = it.get_input_details()[0], it.get_output_details()[0]
        raws, times, error = [], [], ""
        try:
            with sample_progress("host", len(x)) as bar:
                for i in range(len(x)):
                    it.set_tensor(inp["index"], quantize(x[i : i + 1], inp))
                    began = time.perf_counter_ns()
                    it.invoke()
                    times.append((time.perf_counter_ns() - began) / 1e6)
                    raws.append(it.get_tensor(out["index"]).copy())
                    bar.advance()
        except KeyboardInterrupt:
            error = f"interrupted after {len(raws)} of {len(x)} samples"
        raw = np.concatenate(raws) if raws else np.zeros((0, *out["shape"][1:]), out["dtype"])
        return RunOutput(
            dequantize(raw, out),
            raw,
            np.asarray(times),
            "host wall clock (time.perf_counter_ns) around invoke(), LiteRT "
            "reference kernels, 1 thread, one sample per invoke",
            _litert_where(),
            bool(error),
            error,
        )


def quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    if scale == 0:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    q = np.round(x / scale + zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)


def tensor_detail(tensor) -> dict:
    """A tensor of :func:`~edgeprune.tflite.inspect_model` as the LiteRT
    detail :func:`quantize` and :func:`dequantize` take (per-tensor scale and zero
    point): for runners that talk to a device instead of holding an interpreter."""
    scale = float(tensor.scales[0]) if tensor.scales else 0.0
    zero = int(tensor.zero_points[0]) if tensor.zero_points else 0
    return {"dtype": np.dtype(tensor.dtype), "quantization": (scale, zero)}


def dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    if np.dtype(detail["dtype"]).kind == "f":
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    if scale == 0:
        return y.astype(np.float32)
    return (y.astype(np.float32) - zero_point) * scale


_PEAK_SCRIPT = r"""
import sys
import numpy as np
from ai_edge_litert.interpreter import Interpreter, OpResolverType

def status():  # current and peak resident set, bytes (Linux)
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return tuple(int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM"))

rss0, hwm0 = status()
data = open(sys.argv[1], "rb").read()
resolver = (OpResolverType.BUILTIN if sys.argv[2] == "xnnpack"
            else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
it = Interpreter(model_content=data, num_threads=1, experimental_op_resolver_type=resolver)
it.allocate_tensors()
for d in it.get_input_details():
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
it.invoke()
rss1, hwm1 = status()
print(max(rss1 - rss0, hwm1 - hwm0))
"""


def peak_memory_bytes(model: bytes, kernels: str = "xnnpack") -> int:
    """Memory the LiteRT interpreter adds for ``model``: load, allocate and one invoke
    in a fresh process, as the larger of the growth of its resident set and of its
    peak resident set (Linux ``/proc/self/status``, KiB granularity). It counts the
    model bytes, the tensors and the interpreter code pages first touched, as a
    process on the device would. ``kernels="xnnpack"`` measures with LiteRT's default
    XNNPACK delegate (what a Raspberry Pi runs), anything else with the built-in
    reference kernels."""
    import subprocess
    import sys
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".tflite") as fh:
        fh.write(model)
        fh.flush()
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK_SCRIPT, fh.name, kernels],
            capture_output=True,
            text=True,
            timeout=300,
        )
    if proc.returncode != 0:
        raise RunnerError(f"the model does not load and run in LiteRT ({_failure(proc)})")
    return int(proc.stdout.strip().splitlines()[-1])


def _failure(proc) -> str:
    """Why a LiteRT child failed: its signal when one killed it, and its telling
    stderr line (an error, never an INFO banner such as XNNPACK's)."""
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    words = ("unresolved", "Unresolved", "Failed", "failed", "Error", "error")
    telling = [ln for ln in lines if not ln.startswith("INFO:") and any(k in ln for k in words)]
    said = clip(telling[-1], 200) if telling else ""
    if proc.returncode < 0:
        return f"LiteRT crashed ({signal_name(proc.returncode)})" + (f": {said}" if said else "")
    return said or f"exit code {proc.returncode}, no error message"


def measure_latency(
    model: bytes,
    kernels: str = "xnnpack",
    threads: int = 1,
    runs: int = 50,
    warmup: int = 5,
    seed: int = 0,
) -> LatencyMeasurement:
    """Time ``model`` on this host in ai-edge-litert, one sample per invoke.

    ``kernels="xnnpack"`` uses LiteRT's default XNNPACK delegate, anything else
    the built-in kernels. Inputs are seeded random values of each input's dtype
    (latency does not depend on them for these kernels). The clock is
    ``time.perf_counter_ns`` around ``invoke()`` alone.

    Raises:
        RunnerError: the model does not load or run in LiteRT.
    """
    import time

    resolver = (
        OpResolverType.BUILTIN
        if kernels == "xnnpack"
        else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    )
    try:
        it = Interpreter(
            model_content=model, num_threads=threads, experimental_op_resolver_type=resolver
        )
        it.allocate_tensors()
        rng = np.random.default_rng(seed)
        for d in it.get_input_details():
            dtype = np.dtype(d["dtype"])
            if dtype.kind == "f":
                value = rng.standard_normal(d["shape"]).astype(dtype)
            else:
                info = np.iinfo(dtype)
                value = rng.integers(info.min, info.max, d["shape"], endpoint=True, dtype=dtype)
            it.set_tensor(d["index"], value)
        for _ in range(warmup):
            it.invoke()
        times = []
        for _ in range(runs):
            start = time.perf_counter_ns()
            it.invoke()
            times.append((time.perf_counter_ns() - start) / 1e6)
    except (RuntimeError, ValueError) as exc:
        raise RunnerError(f"the model does not load and run in LiteRT ({exc})") from None
    t = np.asarray(times)
    return LatencyMeasurement(
        runs,
        warmup,
        threads,
        kernels,
        float(np.median(t)),
        float(np.percentile(t, 90)),
        float(t.min()),
        float(t.max()),
        _litert_where(),
    )


def _litert_where() -> str:
    return f"ai-edge-litert {package_version('ai-edge-litert')} on {machine_name()}"


def package_version(dist: str) -> str:
    """The installed version of the distribution ``dist``, for "where" sentences."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "(version unknown)"


def machine_name() -> str:
    """This machine's CPU model and core count, from /proc/cpuinfo where there is one."""
    import os
    import platform

    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{model or platform.processor() or platform.machine()}, {os.cpu_count()} cores"
