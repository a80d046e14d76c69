"""The raw-tensor half of the TFLite Micro worker (:mod:`edgeprune.tflm.worker`): firmware
built for the host hands the model bytes it embeds and the bytes of its input tensors
to a real TFLite Micro interpreter, and gets its output tensors' bytes back.

The firmware tests build ``inference_example.cc`` with the host compiler against a
stub ``MicroInterpreter`` whose ``AllocateTensors()`` and ``Invoke()`` are these two
requests, so that the label the example prints comes from its own quantize,
dequantize and argmax code on outputs computed by TFLite Micro's kernels:

``load``    the model (``model``: its bytes in hex; left out, the worker keeps the
            model it has) in a fresh interpreter with an arena of ``arena_bytes``.
            Answers the byte size of each input and output tensor (``inputs``,
            ``outputs``), then for the inputs and outputs in that order their
            ``types`` (TFLite's C ``TfLiteType`` numbers), ``scales`` and
            ``zero_points`` (the first; 0 and 0 when not quantized), and the
            model's SHA-256, so the caller can check which bytes ran.
``invoke``  ``inputs``: the bytes of every input tensor, in hex; answers ``outputs``,
            the bytes of every output tensor, in hex.

Runs only inside the worker process, like everything that runs ``tflite_micro``:
``load``/``invoke`` are the worker's own functions, passed in, so this module
never imports it.
"""

from __future__ import annotations

import hashlib

import numpy as np

COMMANDS = ("load", "invoke")
# TfLiteType (tensorflow/lite/core/c/c_api_types.h) of the numpy dtypes TFLite Micro uses.
_TFLITE_TYPES = {"float32": 1, "int32": 2, "uint8": 3, "int64": 4, "bool": 6, "int16": 7}
_TFLITE_TYPES["int8"] = 9


def _tensor_counts(model: bytes) -> tuple[int, int]:
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    return (graph.InputsLength(), graph.OutputsLength()) if graph is not None else (0, 0)


def _nbytes(detail: dict) -> int:
    return (
        int(np.prod([int(d) for d in detail["shape"]], dtype=np.int64))
        * np.dtype(detail["dtype"]).itemsize
    )


def first_quantization(detail: dict) -> tuple[float, int]:
    """The first scale and zero point of a tensor's TFLM details; (0.0, 0) when it
    has none (a float or an index tensor)."""
    q = detail.get("quantization_parameters") or {}
    scales, zero_points = q.get("scales"), q.get("zero_points")
    if scales is None or len(scales) == 0:
        return 0.0, 0
    return float(scales[0]), int(zero_points[0]) if zero_points is not None else 0


class TensorSession:
    """The worker's model and the interpreter of the last ``load``, between requests."""

    def __init__(self, model: bytes):
        self.model = model
        self.interpreter = None
        self.inputs: list[dict] = []
        self.output_count = 0

    def handle(self, request: dict, load, invoke, refusal) -> dict:
        """Answer a ``load`` or ``invoke`` request; ``load``, ``invoke`` and ``refusal``
        (LiteRT's flatbuffer verifier) are the worker's. A failure of TFLite Micro
        raises the worker's own failure from ``load``/``invoke``."""
        if request["cmd"] == "load":
            return self._load(request, load, refusal)
        return self._invoke(request, invoke)

    def _load(self, request: dict, load, refusal) -> dict:
        self.interpreter = None  # a firmware's new MicroInterpreter: the old one is gone
        if "model" in request:
            self.model = bytes.fromhex(request["model"])
            verdict = refusal(self.model)  # TFLite Micro itself does not verify it
            if verdict:
                return {"ok": False, "stage": "verify", "error": verdict}
        interpreter = load(self.model, int(request["arena_bytes"]))
        inputs, outputs = _tensor_counts(self.model)
        self.interpreter = interpreter
        self.inputs = [interpreter.get_input_details(i) for i in range(inputs)]
        self.output_count = outputs
        out = [interpreter.get_output_details(i) for i in range(outputs)]
        quantization = [first_quantization(d) for d in self.inputs + out]
        return {
            "ok": True,
            "inputs": [_nbytes(d) for d in self.inputs],
            "outputs": [_nbytes(d) for d in out],
            "types": [_TFLITE_TYPES.get(np.dtype(d["dtype"]).name, 0) for d in self.inputs + out],
            "scales": [q[0] for q in quantization],
            "zero_points": [q[1] for q in quantization],
            "sha256": hashlib.sha256(self.model).hexdigest(),
        }

    def _invoke(self, request: dict, invoke) -> dict:
        if self.interpreter is None:
            return {"ok": False, "stage": "request", "error": "invoke before a load"}
        data = request.get("inputs") or []
        if len(data) != len(self.inputs):
            return {
                "ok": False,
                "stage": "input",
                "error": f"{len(data)} inputs sent, the model has {len(self.inputs)}",
            }
        for i, (text, detail) in enumerate(zip(data, self.inputs, strict=True)):
            raw = bytes.fromhex(text)
            if len(raw) != _nbytes(detail):
                return {
                    "ok": False,
                    "stage": "input",
                    "error": f"input {i} has {len(raw)} bytes, the model's {_nbytes(detail)}",
                }
            shape = tuple(int(d) for d in detail["shape"])
            array = np.frombuffer(raw, np.dtype(detail["dtype"])).reshape(shape)
            self.interpreter.set_input(array, i)
        invoke(self.interpreter)
        outputs = [
            np.ascontiguousarray(self.interpreter.get_output(i)).tobytes().hex()
            for i in range(self.output_count)
        ]
        return {"ok": True, "outputs": outputs}
