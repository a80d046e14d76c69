"""The DECODE half of the TFLite Micro worker (:mod:`edgeprune.tflm.worker`): compress a model
with TFLite Micro's own Python modules, and probe which decoders its interpreter runs.

Runs only inside the worker process, like everything that imports
``tflite_micro``: importing any of its compression modules loads the native
runtime, and the flatbuffer alignment step is native code too. Requests:

``compress``  the worker's model with the tensors of a plan (a JSON file):
              ``prune`` tensors carry our encoding (:mod:`edgeprune.compress.prune_format`)
              in files, ``lut`` tensors are encoded here by TFLite Micro's
              ``LutCompressor``. DECODE operators go in with TFLite Micro's
              ``decode_insert`` and the model is aligned by its
              ``tflite_flatbuffer_align`` wrapper, the steps of its
              ``compress.compress``; tensors that must stay constant
              (``constant_inputs``) or share a buffer with an uncompressed
              tensor are skipped and named.
``decoder``   build a one-operator model whose DECODE decodes a known int8 tensor
              with the named decoder, run it, and say whether the values came back.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np

DECODERS = ("lut", "prune", "huffman")
# A known tensor: zeros where pruned, eight distinct values in all (a 3-bit LUT).
_PROBE_VALUES = np.array([0, 3, 0, 0, -7, 0, 0, 0, 1, 0, 0, 2, 0, 5, 0, -128], np.int8)
_DCM_BYTES = 16


def _modules():
    from tflite_micro.tensorflow.lite.micro.compression import (
        compressor,
        constant_inputs,
        decode_insert,
        lut,
        model_editor,
        spec,
    )

    return compressor, constant_inputs, decode_insert, lut, model_editor, spec


def _align(model: bytes, directory: Path) -> bytes:
    """TFLite Micro's alignment pass (``force_align`` of the schema, which Python's
    flatbuffers ignores): every buffer's data on a 16-byte boundary."""
    from tflite_micro.tensorflow.lite.micro.tools import tflite_flatbuffer_align_wrapper

    source, target = directory / "unaligned.tflite", directory / "aligned.tflite"
    source.write_bytes(model)
    tflite_flatbuffer_align_wrapper.align_tflite_model(str(source), str(target))
    aligned = target.read_bytes()
    source.unlink()
    target.unlink()
    return aligned


def compress(model: bytes, request: dict) -> dict:
    try:
        return _compress(model, request)
    except Exception as exc:  # noqa: BLE001 - reported to the client, which names the tensor
        return {"ok": False, "stage": "compress", "error": f"{type(exc).__name__}: {exc}"}


def _compress(model: bytes, request: dict) -> dict:
    compressor, constant_inputs, decode_insert, lut, model_editor, spec = _modules()
    plan = json.loads(Path(request["plan"]).read_text())
    edited = model_editor.read(model)
    results, skipped, sizes = {}, [], []
    for item in plan["tensors"]:
        key = (int(item["subgraph"]), int(item["tensor"]))
        subgraph = edited.subgraphs[key[0]]
        tensor = subgraph.tensors[key[1]]
        uses = constant_inputs.find_uses(subgraph, tensor)
        if uses:
            why = "must stay constant: " + "; ".join(u.describe() for u in uses)
            skipped.append({"subgraph": key[0], "tensor": key[1], "why": why})
            continue
        if item["method"] == "prune":
            encoded = Path(item["encoded"]).read_bytes()
            ancillary = Path(item["ancillary"]).read_bytes()
            result = compressor.CompressionResult(encoded, ancillary)
        else:
            axis = item.get("axis")
            mode = spec.PerTensor() if axis is None else spec.PerChannel(axis=int(axis))
            method = spec.LookUpTableCompression(index_bitwidth=int(item["bitwidth"]), mode=mode)
            try:
                result = lut.LutCompressor().compress(tensor, method)
            except compressor.CompressionError as exc:
                skipped.append({"subgraph": key[0], "tensor": key[1], "why": str(exc)})
                continue
        results[key] = result
        sizes.append(
            {
                "subgraph": key[0],
                "tensor": key[1],
                "encoded_bytes": len(result.encoded_data),
                "ancillary_bytes": len(result.ancillary_data),
            }
        )
    encoded_tensors = {key: edited.subgraphs[key[0]].tensors[key[1]] for key in results}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        decode_insert.insert_decode_operators(edited, results)
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    for key, tensor in encoded_tensors.items():
        written = (
            tensor.buffer is not None and bytes(tensor.buffer.data) == results[key].encoded_data
        )
        if tensor.dtype != schema.TensorType.UINT8 or not written:  # decode_insert passed it by
            skipped.append({"subgraph": key[0], "tensor": key[1], "why": _warning_for(caught)})
            sizes = [s for s in sizes if (s["subgraph"], s["tensor"]) != key]
            continue
        # decode_insert sets the wrapper's quantization to None, but the
        # backing TensorT keeps the scales and zero points, which then
        # travel twice (the decoded copy has them): clear the encoded
        # tensor's, which DECODE never reads.
        tensor._fb.quantization = None
    out = Path(request["out"])
    out.write_bytes(_align(bytes(edited.build()), out.parent) if results else model)
    return {"ok": True, "skipped": skipped, "sizes": sizes, "compressed": len(results)}


def _warning_for(caught) -> str:
    texts = [str(w.message) for w in caught]
    return texts[0] if texts else "decode_insert left it uncompressed"


def _probe_model(decoder: str, values: np.ndarray, zero_points: list, axis: int) -> bytes:
    """A model whose one RESHAPE reads ``values`` (int8) through a DECODE of ``decoder``;
    with ``zero_points``, the tensor is quantized (scale 1) along ``axis``."""
    compressor, _, decode_insert, lut, model_editor, spec = _modules()
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    kind = schema.TensorType
    quantization = None
    if zero_points:
        quantization = model_editor.Quantization(
            scales=[1.0] * len(zero_points), zero_points=[int(z) for z in zero_points], axis=axis
        )
    dims = np.array(values.shape, np.int32)
    weights = model_editor.Tensor(
        shape=values.shape, dtype=kind.INT8, data=values, name="w", quantization=quantization
    )
    shape = model_editor.Tensor(shape=(len(dims),), dtype=kind.INT32, data=dims, name="shape")
    out = model_editor.Tensor(shape=values.shape, dtype=kind.INT8, name="out")
    reshape = model_editor.Operator(
        opcode=schema.BuiltinOperator.RESHAPE, inputs=[weights, shape], outputs=[out]
    )
    graph = model_editor.Subgraph(
        tensors=[weights, out, shape], operators=[reshape], inputs=[], outputs=[out]
    )
    model = model_editor.Model(subgraphs=[graph])
    if decoder == "lut":
        method = spec.LookUpTableCompression(index_bitwidth=3, mode=spec.PerTensor())
        result = lut.LutCompressor().compress(weights, method)
    elif decoder == "prune":
        from edgeprune.compress import prune_format

        zps = prune_format.ZeroPoints(tuple(zero_points) or (0,), axis)
        result = compressor.CompressionResult(*prune_format.encode(values, zps))
    else:  # no Huffman encoder exists in Python: a header whose version the decoder refuses
        header = bytearray(_DCM_BYTES)
        header[0], header[1] = 1, 1
        result = compressor.CompressionResult(bytes(16), bytes(header))
    decode_insert.insert_decode_operators(model, {(0, 0): result})
    return bytes(model.build())


def decoder(request: dict, load, invoke) -> dict:
    """Run the probe model of ``request["decoder"]``; ``load``/``invoke`` are the worker's.

    The tensor is the built-in probe tensor, or int8 ``values`` from an ``.npy``
    file with optional per-channel ``zero_points`` along ``axis``.
    """
    name = request["decoder"]
    if name not in DECODERS:
        return {"ok": False, "stage": "request", "error": f"unknown decoder {name!r}"}
    expected = np.load(request["values"]) if request.get("values") else _PROBE_VALUES
    try:
        model = _probe_model(
            name, expected, request.get("zero_points") or [], int(request.get("axis", 0))
        )
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "stage": "model", "error": f"{type(exc).__name__}: {exc}"}
    interpreter = load(model, 16 * 1024 + 2 * expected.nbytes)
    invoke(interpreter)
    got = np.asarray(interpreter.get_output(0)).reshape(-1)
    return {"ok": True, "decodes": bool(np.array_equal(got, expected.reshape(-1)))}
