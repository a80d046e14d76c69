"""Worker process for :mod:`edgeprune.tflm.probe`: the only module that imports ``tflite_micro``.

TFLite Micro can abort or segfault its process on a damaged model or a
too-small arena, so ``edgeprune.tflm.probe`` never loads it itself: it starts
``python -m edgeprune.tflm.worker MODEL_PATH`` and sends requests, one JSON
object a line on stdin; the worker answers one JSON object a line on the
stdout it started with. Native code writes to file descriptor 2 (TFLM's own
messages and ``print_allocations()``); anything native code writes to fd 1
is sent there too, so it cannot corrupt the answers. The parent reads fd 2
after each answer, or after the worker died, for TFLM's last words.

Requests (``cmd``):

``probe``  load the model with ``arena_bytes``; optionally fill the inputs
           (``"random"`` seeded by ``seed``, or ``"zeros"``), invoke once and
           call ``print_allocations()``.
``op``     the same for a model cut down to one operator (``subgraph``,
           ``operator``) with zero inputs: does TFLM register, prepare and
           run this operator on its own tensors?
``run``    float32 samples from the ``.npy`` file ``x`` through the model one
           invoke at a time; dequantized float32 outputs go to ``.npy`` ``y``.
``compress``, ``decoder``  DECODE compression of the model, and which DECODE
           decoders this interpreter runs (:mod:`edgeprune.tflm.decode_worker`;
           ``decoder`` needs no model: the worker may start with an empty file).
``take``   take the model at ``path`` instead (``verified``: its bytes passed
           the verifier before): a worker kept between models
           (:func:`edgeprune.tflm.client.keep_workers`) is not started again.
``load``, ``invoke``  the model's raw tensors, for firmware built for the host
           (:mod:`edgeprune.tflm.tensor_worker`; ``load`` may carry the model).

Answers: ``{"ok": true, ...}`` or ``{"ok": false, "stage": ..., "error": ...}``
where ``stage`` is ``"model"`` (the cut-down model could not be built),
``"allocate"`` (TFLM could not register, prepare or allocate), ``"input"``,
``"invoke"``, or ``"verify"`` (LiteRT's flatbuffer verifier refused the model,
which TFLite Micro then never loads). This module must never import TensorFlow.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from edgeprune.tflm import decode_worker, tensor_worker

# Ops that run other subgraphs: their cut-down model keeps every subgraph.
_CONTROL_FLOW = frozenset({"IF", "WHILE", "CALL_ONCE", "CALL"})
# Metadata that names tensors of subgraph 0 by index, wrong once the graph is cut.
_INDEXED_METADATA = frozenset({"OfflineMemoryAllocation"})
_BUFFER_ALIGNMENT = 16  # the converter aligns constant data to 16 bytes; so do we
# Address space of a worker: the largest arena the probes ask for (1 GiB) plus
# Python, numpy and TFLite Micro (about 150 MB mapped) and room for the inputs.
MEMORY_LIMIT_BYTES = 3 * 2**30


class _Failure(Exception):
    def __init__(self, stage: str, error: BaseException | str):
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        super().__init__(text)
        self.stage = stage


def _schema():
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _input_count(model: bytes) -> int:
    graph = _schema().Model.GetRootAs(model, 0).Subgraphs(0)
    return graph.InputsLength() if graph is not None else 0


def load_interpreter(model: bytes, arena_bytes: int, alt_decompression_bytes: int = 0):
    """A TFLite Micro interpreter for ``model`` with an arena of ``arena_bytes``, in THIS
    process: only for code that already runs in a process of its own (this worker,
    the emulated board), as TFLM may abort or segfault it. With
    ``alt_decompression_bytes``, DECODE writes decoded tensors to a separate
    block of that size instead of the arena.

    Raises:
        RuntimeError: TFLM could not register, prepare or allocate the model.
    """
    from tflite_micro import runtime

    return runtime.Interpreter.from_bytes(
        model,
        arena_size=int(arena_bytes),
        alt_decompression_memory_size=int(alt_decompression_bytes),
    )


def _load(model: bytes, arena_bytes: int, alt_decompression_bytes: int = 0):
    try:
        return load_interpreter(model, arena_bytes, alt_decompression_bytes)
    except Exception as exc:  # noqa: BLE001 - TFLM reports every failure as RuntimeError
        raise _Failure("allocate", exc) from None


def _fill(interpreter, count: int, how: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for i in range(count):
        try:
            detail = interpreter.get_input_details(i)
            dtype = np.dtype(detail["dtype"])
            shape = tuple(int(d) for d in detail["shape"])
            scales = (detail.get("quantization_parameters") or {}).get("scales")
            quantized = scales is not None and len(scales) > 0
            if how == "zeros" or dtype.kind not in "fiu":
                data = np.zeros(shape, dtype)
            elif dtype.kind == "f":
                data = rng.uniform(-1.0, 1.0, shape).astype(dtype)
            elif not quantized:
                # An integer input without a scale is an index (Embedding, GATHER):
                # random values would read out of bounds and blame the op.
                data = np.zeros(shape, dtype)
            else:
                info = np.iinfo(dtype)
                data = rng.integers(info.min, info.max, shape, endpoint=True, dtype=dtype)
            interpreter.set_input(data, i)
        except Exception as exc:  # noqa: BLE001
            raise _Failure("input", exc) from None


def _invoke(interpreter) -> None:
    try:
        interpreter.invoke()
    except Exception as exc:  # noqa: BLE001
        raise _Failure("invoke", exc) from None


def probe(model: bytes, request: dict) -> dict:
    interpreter = _load(model, request["arena_bytes"], request.get("alt_decompression_bytes", 0))
    if request.get("invoke", True):
        _fill(
            interpreter,
            _input_count(model),
            request.get("inputs", "random"),
            int(request.get("seed", 0)),
        )
        _invoke(interpreter)
    if request.get("record"):
        sys.stderr.flush()
        interpreter.print_allocations()
    return {"ok": True}


class _IsolatedModel:
    """Cuts a model down to one operator, keeping the unpacked model between requests."""

    def __init__(self, model: bytes):
        self.model = model
        self._unpacked = None

    def cut(self, subgraph: int, operator: int) -> bytes:
        import copy

        import flatbuffers

        schema = _schema()
        if self._unpacked is None:
            self._unpacked = schema.ModelT.InitFromPackedBuf(self.model, 0)
        source = self._unpacked
        graph = source.subgraphs[subgraph]
        op = copy.copy(graph.operators[operator])
        code = source.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if k.isupper()}
        control_flow = names.get(builtin) in _CONTROL_FLOW

        inputs = [int(t) for t in (op.inputs if op.inputs is not None else [])]
        outputs = [int(t) for t in (op.outputs if op.outputs is not None else [])]
        intermediates = [int(t) for t in (op.intermediates if op.intermediates is not None else [])]
        order = list(dict.fromkeys(t for t in inputs + outputs + intermediates if t >= 0))
        remap = {old: new for new, old in enumerate(order)}

        def has_data(tensor) -> bool:
            buffer = source.buffers[tensor.buffer] if tensor.buffer > 0 else None
            return buffer is not None and (buffer.data is not None or buffer.offset > 1)

        cut = schema.SubGraphT()
        cut.name = graph.name
        cut.tensors = [copy.copy(graph.tensors[t]) for t in order]
        op.inputs = [remap[t] if t >= 0 else -1 for t in inputs]
        op.outputs = [remap[t] for t in outputs]
        if op.intermediates is not None:
            op.intermediates = [remap[t] for t in intermediates]
        cut.operators = [op]
        cut.inputs = [
            remap[t]
            for t in dict.fromkeys(inputs)
            if t >= 0
            and t not in outputs
            and not graph.tensors[t].isVariable
            and not has_data(graph.tensors[t])
        ]
        cut.outputs = [remap[t] for t in outputs]

        model = copy.copy(source)
        model.signatureDefs = None
        model.metadata = [
            m
            for m in (source.metadata or [])
            if (m.name or b"").decode("utf-8", "replace") not in _INDEXED_METADATA
        ]
        if control_flow:
            model.subgraphs = [cut, *source.subgraphs[1:]]
            keep = None
        else:
            model.subgraphs = [cut]
            keep = {t.buffer for t in cut.tensors} | {m.buffer for m in model.metadata}
        model.buffers = [
            _AlignedBuffer(b, keep is None or j in keep) for j, b in enumerate(source.buffers or [])
        ]
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())


class _AlignedBuffer:
    """A BufferT whose data is packed 16-byte aligned; dropped when ``keep`` is false."""

    def __init__(self, buffer, keep: bool):
        self.data = buffer.data if keep else None
        self.offset = buffer.offset
        self.size = buffer.size

    def Pack(self, builder):  # noqa: N802 - the flatbuffers object API's name
        schema = _schema()
        vector = None
        if self.data is not None:
            raw = np.asarray(self.data, dtype=np.uint8).tobytes()
            builder.StartVector(1, len(raw), _BUFFER_ALIGNMENT)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head : builder.head + len(raw)] = raw
            builder.vectorNumElems = len(raw)
            vector = builder.EndVector()
        schema.BufferStart(builder)
        if vector is not None:
            schema.BufferAddData(builder, vector)
        schema.BufferAddOffset(builder, self.offset)
        schema.BufferAddSize(builder, self.size)
        return schema.BufferEnd(builder)


def check_op(isolated: _IsolatedModel, request: dict) -> dict:
    try:
        model = isolated.cut(int(request["subgraph"]), int(request["operator"]))
    except Exception as exc:  # noqa: BLE001 - a model we cannot cut is reported, not fatal
        raise _Failure("model", exc) from None
    interpreter = _load(model, request["arena_bytes"])
    _fill(interpreter, _input_count(model), "zeros", 0)
    _invoke(interpreter)
    return {"ok": True}


# Same rule as edgeprune.runners.host.quantize/dequantize, on TFLM's tensor details.
_scale = tensor_worker.first_quantization


def _quantize(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = _scale(detail)
    if dtype.kind == "f" or scale == 0:
        return x.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def _dequantize(y: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero_point = _scale(detail)
    if np.dtype(detail["dtype"]).kind == "f" or scale == 0:
        return y.astype(np.float32)
    return (y.astype(np.float32) - zero_point) * scale


def run(model: bytes, request: dict) -> dict:
    x = np.load(request["x"])
    interpreter = _load(model, request["arena_bytes"], request.get("alt_decompression_bytes", 0))
    inp = interpreter.get_input_details(0)
    out = interpreter.get_output_details(0)
    shape = tuple(int(d) for d in inp["shape"])
    batch = shape[0] if len(shape) > 1 else 1
    if int(np.prod(shape)) != batch * int(np.prod(x.shape[1:], dtype=np.int64)):
        raise _Failure(
            "input", f"samples of shape {x.shape[1:]} do not fit the model's input of shape {shape}"
        )
    count = len(x)
    if count % batch:
        x = np.concatenate([x, np.zeros((batch - count % batch, *x.shape[1:]), x.dtype)])
    outputs, raws, times = [], [], []
    for start in range(0, len(x), batch):
        try:
            interpreter.set_input(_quantize(x[start : start + batch], inp).reshape(shape), 0)
        except Exception as exc:  # noqa: BLE001
            raise _Failure("input", exc) from None
        began = time.perf_counter_ns()
        _invoke(interpreter)
        times.append((time.perf_counter_ns() - began) / 1e6)
        raw = interpreter.get_output(0)
        y = _dequantize(raw, out)
        outputs.append(y.reshape(batch, *y.shape[1:]) if y.ndim else y.reshape(batch))
        raws.append(raw.reshape(batch, *raw.shape[1:]) if raw.ndim else raw.reshape(batch))
    y = np.concatenate(outputs)[:count].astype(np.float32)
    np.save(request["y"], y)
    if request.get("raw"):
        np.save(request["raw"], np.concatenate(raws)[:count])
    if request.get("times"):  # one time per invoke (a batch, when the model's batch is > 1)
        np.save(request["times"], np.asarray(times))
    return {"ok": True, "shape": list(y.shape)}


def limit_memory(limit_bytes: int = MEMORY_LIMIT_BYTES) -> None:
    """Cap this process's address space, so that a model whose declared sizes slip
    past the checks fails to allocate (a failed reply, or a crash the client
    names) instead of growing the worker to many GB. No-op where unsupported."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit_bytes = min(limit_bytes, hard)
        if soft == resource.RLIM_INFINITY or soft > limit_bytes:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))
    except (ImportError, ValueError, OSError):
        pass


def flatbuffer_refusal(model: bytes) -> str:
    """LiteRT's flatbuffer verifier on ``model``: its message if it refuses, else "".

    TFLite Micro does not verify the flatbuffer (too large for a
    microcontroller); LiteRT's loader does, in native code, so it runs here
    where a crash takes only this process. Other load failures (an op LiteRT
    lacks but TFLite Micro has) are not refusals.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    try:  # without XNNPACK: only the loader, nothing prepared or allocated
        Interpreter(
            model_content=model,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
    except ValueError as exc:
        if "not a valid Flatbuffer" in str(exc):
            return str(exc)
    except Exception:  # noqa: BLE001, S110 - not the verifier's verdict
        pass
    return ""


def main(argv: list[str]) -> int:
    limit_memory()
    answers = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # native writes to stdout join TFLM's chatter on fd 2
    sys.stdout = sys.stderr
    model = Path(argv[0]).read_bytes()
    refusal = "" if "--verified" in argv[1:] or not model else flatbuffer_refusal(model)
    isolated = _IsolatedModel(model)
    tensors = tensor_worker.TensorSession(model)
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            if request["cmd"] == "take":  # a kept worker takes the next model
                model = Path(request["path"]).read_bytes()
                verified = request.get("verified") or not model
                refusal = "" if verified else flatbuffer_refusal(model)
                isolated = _IsolatedModel(model)
                tensors = tensor_worker.TensorSession(model)
                answer = {"ok": not refusal, "stage": "verify" if refusal else "take"}
                answer.update({"error": refusal} if refusal else {})
            elif refusal:
                answer = {"ok": False, "stage": "verify", "error": refusal}
            elif request["cmd"] == "probe":
                answer = probe(model, request)
            elif request["cmd"] == "op":
                answer = check_op(isolated, request)
            elif request["cmd"] == "run":
                answer = run(model, request)
            elif request["cmd"] == "compress":
                answer = decode_worker.compress(model, request)
            elif request["cmd"] == "decoder":
                answer = decode_worker.decoder(request, _load, _invoke)
            elif request["cmd"] in tensor_worker.COMMANDS:
                answer = tensors.handle(request, _load, _invoke, flatbuffer_refusal)
            else:
                answer = {"ok": False, "stage": "request", "error": f"unknown {request['cmd']!r}"}
        except _Failure as failure:
            answer = {"ok": False, "stage": failure.stage, "error": str(failure)}
        sys.stderr.flush()
        answers.write(json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
