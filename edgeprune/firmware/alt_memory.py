"""Alternate decompression memory in the firmware: where DECODE writes decoded weights.

A compressed model's DECODE operators write the weights they decode into the
tensor arena, unless the application gave the interpreter a block of its own
(``MicroInterpreter::SetDecompressionMemory``, before ``AllocateTensors()``;
TFLite Micro 90b983c). When the target profile gives one
(``[alt_decompression]``, :class:`edgeprune.target.AltDecompression`), the check
measures the arena with the decoded weights in that block
(:func:`edgeprune.stages.check.decoded_memory`), so the firmware must pass the
same block or its arena is too small. ``config_<name>.h`` then defines
``<GUARD>_ALT_DECOMPRESSION_BYTES`` (the block: what the model needs, at most
what the region gives) and ``<GUARD>_ALT_DECOMPRESSION_ATTR`` (the linker
section attribute, or nothing), and every place that constructs the
interpreter (the inference example, the validation sketch, the SDK projects'
``<name>_app.cc``) passes the block inside ``#ifdef <GUARD>_ALT_DECOMPRESSION_BYTES``.
Without that define the firmware is what it was.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AltBlock:
    """The block the firmware reserves for decoded weights."""

    bytes: int
    region: str
    section: str  # "" : wherever static data goes
    in_ram_bytes: bool


def alt_block(model: bytes, target) -> AltBlock | None:
    """The block ``target`` gives the DECODE operators of ``model`` (None without DECODE,
    without a target or when its profile gives none). Pure: the same figure the check used."""
    if target is None or getattr(target, "alt_decompression", None) is None:
        return None
    from edgeprune.stages.check import decoded_memory

    block = decoded_memory(bytes(model), target)[1]
    alt = target.alt_decompression
    return AltBlock(block, alt.region, alt.section, alt.in_ram_bytes) if block else None


def macro(guard: str) -> str:
    """The define that holds the block's size, named after the model's header guard."""
    return f"{guard}_ALT_DECOMPRESSION_BYTES"


def config_lines(guard: str, block: AltBlock | None) -> list[str]:
    """C++ lines (a blank line first) for ``config_<name>.h``; ``[]`` without a block."""
    if block is None:
        return []
    where = "part of the RAM budget" if block.in_ram_bytes else "a region of its own"
    attr = f'__attribute__((section("{block.section}")))' if block.section else ""
    place = f"in section {block.section}" if block.section else "where static data goes"
    return [
        "",
        "// Alternate decompression memory (the target's [alt_decompression]): DECODE writes",
        f"// the decoded weights into a {block.bytes}-byte block in {block.region} ({where}),",
        "// not into the tensor arena, whose size above was measured that way. Pass it to",
        "// the interpreter before AllocateTensors(), as the generated code does:",
        "//   static const tflite::MicroContext::AlternateMemoryRegion regions[] = {",
        f"//       {{alt_memory, {macro(guard)}}}}};",
        "//   interpreter.SetDecompressionMemory(regions, 1);",
        f"// The block goes {place}.",
        f"#define {macro(guard)} {block.bytes}",
        f"#define {guard}_ALT_DECOMPRESSION_ATTR {attr}".rstrip(),
    ]


def setup_lines(guard: str, interpreter: str, on_failure: str) -> list[str]:
    """C++ lines that pass the block to ``interpreter`` (an object) when the config
    header defines it; ``on_failure`` is the statement run when TFLite Micro refuses."""
    name = macro(guard)
    return [
        f"#ifdef {name}",
        f"  alignas(16) static uint8_t alt_memory[{name}] {guard}_ALT_DECOMPRESSION_ATTR;",
        "  static const tflite::MicroContext::AlternateMemoryRegion alt_regions[] = {",
        "      {alt_memory, sizeof alt_memory}};",
        f"  if ({interpreter}.SetDecompressionMemory(alt_regions, 1) != kTfLiteOk) {{",
        f"    {on_failure}",
        "  }",
        "#endif",
    ]
