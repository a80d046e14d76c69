"""The text ``edgeprune inspect`` prints for a :class:`ModelInfo`."""

from __future__ import annotations

from collections.abc import Sequence

from edgeprune.presentation.table import table
from edgeprune.tflite.info import ModelInfo, TensorInfo

_NAME_WIDTH = 40


def _short(name: str, width: int = _NAME_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 3] + "..."


def _bytes_text(nbytes: int) -> str:
    """``1,234 B (1.2 KiB)``: exact bytes, and a binary unit from 1 KiB up."""
    if nbytes < 1024:
        return f"{nbytes:,} B"
    exponent = min((nbytes.bit_length() - 1) // 10, 4)
    unit = ("KiB", "MiB", "GiB", "TiB")[exponent - 1]
    return f"{nbytes:,} B ({nbytes / 1024**exponent:.1f} {unit})"


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _shape(tensor: TensorInfo) -> str:
    dims = tensor.shape_signature if tensor.shape_signature is not None else tensor.shape
    return "(" + ", ".join("?" if d < 0 else str(d) for d in dims) + ")"


def _quant(tensor: TensorInfo) -> tuple[str, str]:
    if not tensor.scales:
        return "-", "-"
    if len(tensor.scales) == 1:
        return f"{tensor.scales[0]:.6g}", str(tensor.zero_points[0] if tensor.zero_points else 0)
    per_channel = f"{len(tensor.scales)} ch, dim {tensor.quantized_dimension}"
    return per_channel, per_channel


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: str = "") -> list[str]:
    """Aligned text columns, indented two spaces; column k is right-aligned when
    ``right[k] == 'r'``."""

    aligned = table([list(headers), *map(list, rows)], {k for k, c in enumerate(right) if c == "r"})
    return ["  " + line for line in aligned]


def _io_rows(tensors: Sequence[TensorInfo]) -> list[list[str]]:
    return [[str(t.index), _short(t.name), _shape(t), t.dtype, *_quant(t)] for t in tensors]


def format_model_info(info: ModelInfo) -> str:
    """Render ``info`` as the multi-line text ``edgeprune inspect`` prints (no trailing newline).

    Shapes show dynamic dimensions as ``?``; names longer than 40 characters
    are cut. Has no side effects and raises nothing.
    """
    weights = info.weights
    lines = [
        f"Model: {info.path or '<bytes>'}",
        f"  file size        {_bytes_text(info.file_bytes)}",
        f"  schema version   {info.version}",
    ]
    if info.description:
        lines.append(f"  description      {info.description}")
    lines += [
        f"  subgraphs        {info.subgraphs}",
        f"  operators        {len(info.operators)}",
        f"  tensors          {len(info.tensors)}",
        f"  parameters       {info.parameter_count:,}",
        f"  constant bytes   {_bytes_text(info.constant_bytes)}",
        f"  weights          {_plural(weights.tensors, 'tensor')}, {weights.elements:,} elements, "
        f"{weights.zero_elements:,} zero ({weights.zero_fraction:.1%})",
    ]
    if info.has_offset_buffers:
        lines.append("  buffers          some data stored after the flatbuffer (offset/size)")

    io_headers = ["index", "name", "shape", "dtype", "scale", "zero point"]
    for title, tensors in (("Inputs", info.inputs), ("Outputs", info.outputs)):
        lines += ["", f"{title} (subgraph 0)"]
        lines += _table(io_headers, _io_rows(tensors), "r") if tensors else ["  (none)"]

    lines += ["", "Operators"]
    if info.op_counts:
        lines += _table(["op", "count"], [[k, str(v)] for k, v in info.op_counts.items()], "lr")
    else:
        lines.append("  (none)")

    if weights.per_tensor:
        lines += ["", "Weight tensors"]
        rows = [
            [
                str(w.index),
                _short(w.name),
                w.dtype,
                f"{w.elements:,}",
                f"{w.zero_elements:,}",
                f"{w.zero_fraction:.1%}",
            ]
            for w in weights.per_tensor
        ]
        lines += _table(["index", "name", "dtype", "elements", "zeros", "zero %"], rows, "rlllrrr")

    multi = info.subgraphs > 1
    headers = (["sg"] if multi else []) + ["index", "name", "shape", "dtype", "bytes", "const"]
    rows = [
        ([str(t.subgraph)] if multi else [])
        + [
            str(t.index),
            _short(t.name),
            _shape(t),
            t.dtype,
            f"{t.nbytes:,}",
            "yes" if t.is_constant else "",
        ]
        for t in info.tensors
    ]
    lines += ["", "Tensors"]
    lines += _table(headers, rows, ("r" if multi else "") + "rlllr") if rows else ["  (none)"]
    return "\n".join(lines)
