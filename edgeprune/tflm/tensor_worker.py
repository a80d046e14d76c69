"""The raw-tensor half of the TFLite Micro worker (:mod:`edgeprune.tflm.worker`): firmware
built for the host hands the model bytes it embeds and the bytes of its input tensors
to a real TFLite Micro interpreter, and gets its output tensors' bytes back.

The firmware tests build ``inference_example.cc`` with the host compiler against a
stub ``MicroInterpreter`` whose ``AllocateTensors()`` and ``Invoke()`` are these two
requests, so that the label the example prints comes from its own quantize,
dequantize and argmax code on outputs computed by TFLite Micro's kernels:

``load``    the model (``model``: its bytes in hex; left out, the worker keeps the
            model it has) in a fresh interpreter with an arena of ``arena_bytes``.
            Answers the byte size of each input and output tensor and the model's
            SHA-256, so the caller can check which bytes ran.
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


def _tensor_counts(model: bytes) -> tuple[int, int]:
    from ai_edge_litert import schema_py_generated as schema

    graph = schema.Model.GetRootAs(model, 0).Subgraphs(0)
    return (graph.InputsLength(), graph.OutputsLength()) if graph is not None else (0, 0)


def _nbytes(detail: dict) -> int:
    return (
        int(np.prod([int(d) for d in detail["shape"]], dtype=np.int64))
        * np.dtype(detail["dtype"]).itemsize
    )


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
        return {
            "ok": True,
            "inputs": [_nbytes(d) for d in self.inputs],
            "outputs": [_nbytes(interpreter.get_output_details(i)) for i in range(outputs)],
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
