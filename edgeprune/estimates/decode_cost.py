"""What TFLite Micro's DECODE operator costs a device: flash for its kernel, time per invoke.

The figures are data (``targets/footprint/decode.toml``), measured once on a
Cortex-M4F (docs/tflm-compression.md): the DECODE kernel with all its
decoders (every decoder links when DECODE is registered), and the
instructions each decoder spends per decoded byte. Other cores borrow the
M4F's figures, and the basis says so. Decoding time is an estimate:
instructions per byte x decoded bytes x the core's cycles per instruction
(the constant its cost model was fitted with), at the target's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from edgeprune._toml import read_toml
from edgeprune.estimates.footprint import FootprintError

DECODE_OPCODE = "CUSTOM:TFLM_DECODE"
_PRUNE, _LUT = 2, 0  # the DECODE common header's byte 0 for each decoder


def _load() -> dict:
    path = str(resources.files("edgeprune.targets") / "footprint" / "decode.toml")
    data = read_toml(path, FootprintError, "DECODE cost table")
    for key in ("measured_on", "flash_bytes", "instructions_per_byte", "cycles_per_instruction"):
        if key not in data:
            raise FootprintError(f"DECODE cost table {path}: missing key '{key}'; fix the file")
    return data


TABLE = _load()


@dataclass(frozen=True)
class DecodeFlash:
    """Flash the DECODE kernel and its decoders add (0 when the model has no DECODE)."""

    bytes: int
    basis: str


def decode_flash(core: str, kernels: str, uses_decode: bool) -> DecodeFlash:
    """The DECODE kernel's flash on ``core`` with ``kernels`` when ``uses_decode``. Pure."""
    if not uses_decode:
        return DecodeFlash(0, "")
    parts = TABLE["flash_bytes"]
    where = TABLE["measured_on"]
    borrowed = "" if f"{kernels}_{core}" == where else f"; {core} not measured: {where}'s figure"
    detail = ", ".join(f"{k} {v:,}" for k, v in parts.items())
    return DecodeFlash(
        sum(parts.values()),
        f"measured on {where}, map file: {detail}; every decoder links with DECODE{borrowed}",
    )


@dataclass(frozen=True)
class DecodeTime:
    """The estimated time DECODE adds to each invoke, and what it rests on."""

    decoded_bytes: dict[str, int]  # decoder -> bytes decoded per invoke
    cycles: float
    ms: float
    basis: str


def decoded_bytes(model: bytes, info) -> dict[str, int]:
    """Bytes each decoder writes per invoke of ``model`` (``info``: its
    :class:`edgeprune.tflite.ModelInfo`): the outputs of its DECODE operators,
    by the decoder named in byte 0 of each ancillary tensor's header."""
    from edgeprune.tflite import read_constant

    tensors = {(t.subgraph, t.index): t for t in info.tensors}
    out: dict[str, int] = {}
    for op in info.operators:
        if op.opcode != DECODE_OPCODE:
            continue
        for k, output in enumerate(op.outputs):
            ancillary = tensors[op.subgraph, op.inputs[2 * k + 1]]
            kind = _decoder_of(read_constant(model, ancillary))
            out[kind] = out.get(kind, 0) + tensors[op.subgraph, output].nbytes
    return out


def _decoder_of(ancillary) -> str:
    first = int(ancillary.reshape(-1).view("uint8")[0])
    return {_PRUNE: "prune", _LUT: "lut"}.get(first, "huffman")


def decode_time(decoded: dict[str, int], core: str, clock_hz: int) -> DecodeTime:
    """Estimate DECODE's time per invoke for ``decoded`` bytes per decoder. Pure."""
    rates = TABLE["instructions_per_byte"]
    cpis = TABLE["cycles_per_instruction"]
    cpi = cpis.get(core, cpis["cortex-m4f"])
    worst = max(rates.values())
    instructions = sum(n * rates.get(kind, worst) for kind, n in decoded.items())
    cycles = instructions * cpi
    per = ", ".join(f"{n:,} B {k} x {rates.get(k, worst)} instr/B" for k, n in decoded.items())
    basis = (
        f"ESTIMATE: {per} (counted on {TABLE['measured_on']} under QEMU) x {cpi} cycles "
        f"per instruction ({core if core in cpis else 'cortex-m4f, standing in'}) at "
        f"{clock_hz / 1e6:g} MHz; no flash wait states modelled"
    )
    return DecodeTime(dict(decoded), cycles, cycles / clock_hz * 1e3, basis)


def with_decoding(latency, model: bytes, info, target):
    """``latency`` (a :class:`~edgeprune.estimates.latency.LatencyEstimate` of the
    model's other operators) plus the estimated time of its DECODE operators,
    one row per DECODE and a note saying what the figure rests on; unchanged
    when the model has none."""
    from dataclasses import replace

    from edgeprune.estimates.latency import OpEstimate

    decoded = decoded_bytes(model, info)
    if not decoded:
        return latency
    time = decode_time(decoded, target.core, target.clock_hz)
    total = sum(decoded.values())
    rows = tuple(
        OpEstimate(
            op.index,
            op.opcode,
            "",
            "decode",
            "",
            0,
            time.cycles * share / total,
            time.ms * share / total,
        )
        for op in info.operators
        if op.opcode == DECODE_OPCODE and op.subgraph == 0
        for share in (sum(t.nbytes for t in _outputs(info, op)),)
    )
    return replace(
        latency,
        ms=latency.ms + time.ms,
        ops=tuple(sorted((*latency.ops, *rows), key=lambda r: r.index)),
        energy_uj=None if latency.power_mw is None else (latency.ms + time.ms) * latency.power_mw,
        notes=(*latency.notes, f"DECODE {time.ms:.3g} ms: {time.basis}"),
    )


def _outputs(info, op):
    tensors = {(t.subgraph, t.index): t for t in info.tensors}
    return [tensors[op.subgraph, i] for i in op.outputs]
