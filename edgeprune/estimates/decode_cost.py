"""What TFLite Micro's DECODE operator costs a device: flash for its kernel, time per invoke.

The figures are data (``targets/footprint/decode.toml``), measured per build
(docs/tflm-compression.md, "DECODE kernel flash on every measured build"): the
DECODE kernel with all its decoders (every decoder links when DECODE is
registered) on the same cores and kernel libraries as the other kernels'
flash (``targets/footprint/tflm.toml``). A target reads its own build's
figure; a build without one (ESP-NN on Xtensa, any core not measured)
borrows a stand-in's and the basis says which and from where. Decoding time
is an estimate: instructions per byte counted on one core x decoded bytes x
the core's cycles per instruction (the constant its cost model was fitted
with), at the target's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from edgeprune._toml import read_toml
from edgeprune.estimates.footprint import FootprintError

DECODE_OPCODE = "CUSTOM:TFLM_DECODE"
_PRUNE, _LUT = 2, 0  # the DECODE common header's byte 0 for each decoder
_TOP_KEYS = ("fallback", "stand_ins", "build", "instructions_counted_on")
_TOP_KEYS += ("instructions_per_byte", "cycles_per_instruction")
_PARTS = ("decode", "decode_state", "lut", "prune", "huffman")


def parse_decode_table(data: dict, path: str) -> dict:
    """Check a DECODE cost table (``decode.toml``'s contents): every key present,
    every build with all five parts in bytes, and every stand-in, the fallback and
    the build instructions were counted on a measured build. Returns ``data``.

    Raises:
        FootprintError: naming the file, the key and the fix.
    """

    def fail(problem: str) -> FootprintError:
        return FootprintError(f"DECODE cost table {path}: {problem}; fix the file")

    for key in _TOP_KEYS:
        if key not in data:
            raise fail(f"missing key '{key}'")
    builds = data["build"]
    if not builds:
        raise fail("build holds no measured build")
    for name, build in builds.items():
        parts = build.get("flash_bytes", {})
        if sorted(parts) != sorted(_PARTS) or not all(
            isinstance(v, int) and v >= 0 for v in parts.values()
        ):
            raise fail(f"build.{name}.flash_bytes must give bytes for {', '.join(_PARTS)}")
        if not isinstance(build.get("program_delta_bytes"), int):
            raise fail(f"build.{name}.program_delta_bytes must be a number of bytes")
    refs = {f"stand_ins.{k}": v for k, v in data["stand_ins"].items()}
    refs["fallback"] = data["fallback"]
    refs["instructions_counted_on"] = data["instructions_counted_on"]
    for key, build in refs.items():
        if build not in builds:
            raise fail(f"{key} = {build!r} is not a measured build; measured: {', '.join(builds)}")
    return data


def _load() -> dict:
    path = str(resources.files("edgeprune.targets") / "footprint" / "decode.toml")
    return parse_decode_table(read_toml(path, FootprintError, "DECODE cost table"), path)


TABLE = _load()


@dataclass(frozen=True)
class DecodeFlash:
    """Flash the DECODE kernel and its decoders add (0 when the model has no DECODE)."""

    bytes: int
    basis: str
    build: str = ""  # the measured build the figure comes from
    borrowed: bool = False  # the target's own build was not measured


def decode_flash(core: str, kernels: str, uses_decode: bool) -> DecodeFlash:
    """The DECODE kernel's flash on ``core`` with ``kernels`` when ``uses_decode``:
    the target's own measured build, else its stand-in (or the fallback), saying so. Pure."""
    if not uses_decode:
        return DecodeFlash(0, "")
    own = f"{kernels}_{core}"
    borrowed = own not in TABLE["build"]
    used = TABLE["stand_ins"].get(own, TABLE["fallback"]) if borrowed else own
    build = TABLE["build"][used]
    parts = build["flash_bytes"]
    detail = ", ".join(f"{k} {v:,}" for k, v in parts.items())
    where = (
        f"{own} not measured: {used}'s figure borrowed (targets/footprint/decode.toml)"
        if borrowed
        else f"measured on {used}"
    )
    return DecodeFlash(
        sum(parts.values()),
        f"{where}, map file: {detail}; every decoder links with DECODE; an "
        f"interpreter-only program grows {build['program_delta_bytes']:,} B with AddDecode()",
        used,
        borrowed,
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
        f"ESTIMATE: {per} (counted on {TABLE['instructions_counted_on']} under QEMU) x {cpi} "
        f"cycles per instruction ({core if core in cpis else 'cortex-m4f, standing in'}) at "
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
