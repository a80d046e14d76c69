"""Where the bytes of a dense int8 ``.tflite`` and of its DECODE-compressed version go.

Run: python benchmarks/compress_breakdown.py DENSE.tflite COMPRESSED.tflite

Every figure is read from the two files (the schema's object API): the data of
each constant tensor (for a prune-compressed kernel: bit mask, stored values,
the 16-byte DECODE header), the other constant data, the metadata buffers,
quantization parameters (scales 4 B and zero points 8 B per channel), tensor
names, signature and description strings; "structure" is the rest (tensor,
operator and buffer tables, vtables, shapes, offsets, 16-byte alignment).
:func:`ceiling` says how small prune compression could make the model if every
DECODE cost nothing but its data: the bound a 2.2x target is measured against.
``bench_compress.py`` prints this for its 75 %-sparse digits CNN.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

# The DECODE common metadata header that starts every ancillary tensor.
DCM_BYTES = 16


def _string_bytes(raw) -> int:
    """A flatbuffer string: 4-byte length, the bytes, a NUL, padded to 4."""
    return 0 if raw is None else (4 + len(raw) + 1 + 3) // 4 * 4


def _quant_bytes(q) -> int:
    if q is None:
        return 0
    out = 0
    for field, size in (("scale", 4), ("zeroPoint", 8), ("min", 4), ("max", 4)):
        values = getattr(q, field)
        out += 0 if values is None else 4 + len(values) * size
    return out


def breakdown(data: bytes) -> dict:
    """Bytes of one model by kind. ``kernels`` maps each int8 weight tensor's name to
    ``{"dense": n}`` or, compressed, ``{"mask", "values", "header"}``."""
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    graph = model.subgraphs[0]
    tensors = graph.tensors

    def buffer_bytes(index: int) -> int:
        buf = model.buffers[index] if index else None
        return 0 if buf is None or buf.data is None else len(buf.data)

    # DECODE's inputs: (encoded, ancillary) -> the decoded tensor's name
    decode = {}
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if code.customCode == b"TFLM_DECODE":
            for k in range(0, len(op.inputs), 2):
                decode[int(op.inputs[k])] = int(op.inputs[k + 1])
    ancillary = set(decode.values())
    out = {"kernels": {}, "other_data": 0, "quantization": 0, "names": 0, "decode_names": 0}
    for i, t in enumerate(tensors):
        size = buffer_bytes(t.buffer)
        name = t.name.decode()
        out["quantization"] += _quant_bytes(t.quantization)
        key = "decode_names" if name.endswith(("_ancillary", "_decoded")) else "names"
        out[key] += _string_bytes(t.name)
        if i in decode:
            anc = buffer_bytes(tensors[decode[i]].buffer)
            out["kernels"][name] = {"mask": size, "values": anc - DCM_BYTES, "header": DCM_BYTES}
        elif i in ancillary:
            continue
        elif t.type == schema.TensorType.INT8 and size:
            out["kernels"][name] = {"dense": size}
        else:
            out["other_data"] += size
    meta = model.metadata if model.metadata is not None else []
    out["metadata"] = sum(buffer_bytes(m.buffer) for m in meta)
    strings = 0
    for sig in model.signatureDefs or []:
        strings += _string_bytes(sig.signatureKey)
        strings += sum(_string_bytes(m.name) for m in (sig.inputs or []) + (sig.outputs or []))
    out["signature_and_description"] = strings + _string_bytes(model.description)
    out["decode_operators"] = len(decode)
    out["total"] = len(data)
    known = sum(sum(k.values()) for k in out["kernels"].values())
    known += sum(out[k] for k in ("other_data", "quantization", "names", "decode_names"))
    out["structure"] = len(data) - known - out["metadata"] - out["signature_and_description"]
    return out


def prune_bytes(elements: int, kept: int) -> int:
    """An int8 tensor in TFLite Micro's prune encoding: mask, values, header."""
    return math.ceil(elements / 8) + kept + DCM_BYTES


def ceiling(dense: bytes, counts: dict[str, tuple[int, int]]) -> int:
    """The smallest the prune-compressed model could be if DECODE added nothing but
    its data: the dense model with each kernel of ``counts`` (name -> ``(elements,
    kept)``) replaced by its prune encoding."""
    info = breakdown(dense)
    total = info["total"]
    for name, (n, kept) in counts.items():
        total += prune_bytes(n, kept) - info["kernels"][name]["dense"]
    return total


def kernel_counts(data: bytes) -> dict[str, tuple[int, int]]:
    """(elements, non-zero elements) of each int8 weight tensor of a dense model."""
    from edgeprune.tflite import inspect_model, read_constant

    out = {}
    for t in inspect_model(data).tensors:
        if t.is_constant and t.dtype == "int8":
            values = read_constant(data, t)
            out[t.name] = (int(values.size), int(np.count_nonzero(values)))
    return out


def table(dense: bytes, compressed: bytes) -> list[tuple[str, int, int]]:
    """Rows ``(what, dense bytes, compressed bytes)``, the last one the totals."""
    d, c = breakdown(dense), breakdown(compressed)
    rows = []
    for name, parts in d["kernels"].items():
        now = c["kernels"].get(name, {})
        how = "+".join(f"{k} {v:,}" for k, v in now.items() if k != "dense") or "dense"
        rows.append((f"kernel {name} ({how})", parts["dense"], sum(now.values())))
    for key in ("other_data", "metadata", "quantization", "names", "decode_names"):
        rows.append((key.replace("_", " "), d[key], c[key]))
    rows.append(
        (
            "signature and description",
            d["signature_and_description"],
            c["signature_and_description"],
        )
    )
    rows.append(("structure (tables, shapes, offsets, alignment)", d["structure"], c["structure"]))
    rows.append(("total", d["total"], c["total"]))
    return rows


def report(dense: bytes, compressed: bytes, target: float = 2.2) -> str:
    """The table and the ceiling, as text."""
    lines = ["what | dense B | compressed B"]
    lines += [f"{w} | {a:,} | {b:,}" for w, a, b in table(dense, compressed)]
    counts = kernel_counts(dense)
    done = [k for k, v in breakdown(compressed)["kernels"].items() if "dense" not in v]
    bound = ceiling(dense, {k: counts[k] for k in done})
    every = ceiling(dense, counts)
    allowed = math.floor(len(dense) / target)
    summary = (
        f"ratio {len(dense) / len(compressed):.3f}x; {target}x needs <= {allowed:,} B; "
        f"with DECODE costing only its data: {bound:,} B ({len(dense) / bound:.3f}x), "
        f"every int8 kernel compressed: {every:,} B ({len(dense) / every:.4f}x)"
    )
    return "\n".join([*lines, summary])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dense")
    parser.add_argument("compressed")
    args = parser.parse_args(argv)
    with open(args.dense, "rb") as a, open(args.compressed, "rb") as b:
        print(report(a.read(), b.read()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
