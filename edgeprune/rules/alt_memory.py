"""Where a compressed model's decoded weights live, and the rule for a separate region.

TFLite Micro's DECODE operator writes the weights it decodes into the tensor
arena unless the firmware gave the interpreter alternate decompression memory
(a profile's ``[alt_decompression]`` table,
:class:`~edgeprune.target.AltDecompression`). The check then measures the arena
with the decoded tensors in that block (:func:`edgeprune.stages.check.evidence`)
and counts the block where it lives:

* a block in a region that is part of ``ram_bytes`` (``in_ram_bytes = true``:
  a TCM or SRAM bank counted there) is added to the arena by the RAM rule;
* a block in a separate region (``in_ram_bytes = false``: PSRAM, an SRAM the
  profile does not count) is judged by :func:`alt_memory_rule` against that
  region's ``bytes`` alone.

The block is what the model needs (the most one DECODE decodes at once),
capped at the region's size: TFLite Micro places each decoded tensor in the
block while room is left and in the arena otherwise, and the arena is
measured that way, so a region smaller than the need costs arena, not a failure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeprune.rules.result import RuleResult, rule_text

if TYPE_CHECKING:
    from edgeprune.rules.budget import Evidence
    from edgeprune.target import Budget, Target


def decoded_where(target: Target, needed_bytes: int, block_bytes: int) -> str:
    """One line: where the decoded weights live on ``target`` ("" without DECODE)."""
    if not needed_bytes:
        return ""
    alt = target.alt_decompression
    if alt is None or not block_bytes:
        return (
            f"decoded weights live in the arena (up to {needed_bytes:,} B per DECODE): "
            f"{target.id}'s profile gives no alternate decompression memory "
            f"([alt_decompression])"
        )
    where = f"{alt.region}, {'part of ram_bytes' if alt.in_ram_bytes else 'a separate region'}"
    if block_bytes >= needed_bytes:
        return (
            f"decoded weights live outside the arena, in a {block_bytes:,} B alternate "
            f"decompression block in {where} (the most one DECODE decodes)"
        )
    return (
        f"decoded weights: a {block_bytes:,} B alternate decompression block in {where} "
        f"(all the profile gives) holds what fits of up to {needed_bytes:,} B per DECODE; "
        f"the rest falls back to the arena, measured that way"
    )


def ram_share_bytes(ev: Evidence, target: Target) -> int:
    """The alternate decompression block's bytes the RAM rule counts: all of it
    when its region is part of ``ram_bytes``, else none."""
    alt = target.alt_decompression
    return ev.alt_decompression_bytes if alt is not None and alt.in_ram_bytes else 0


def applies(ev: Evidence, target: Target) -> bool:
    """Whether :func:`alt_memory_rule` is judged: a block in a separate region."""
    alt = target.alt_decompression
    return bool(ev.alt_decompression_bytes) and alt is not None and not alt.in_ram_bytes


def alt_memory_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The decoded weights' block fits its own memory region.

    Only for a region outside ``ram_bytes``: a block inside it is part of the RAM rule."""
    alt = target.alt_decompression
    return RuleResult(
        "alt_memory",
        rule_text(alt_memory_rule),
        ev.alt_decompression_bytes <= alt.bytes,
        ev.alt_decompression_bytes,
        alt.bytes,
        "B",
        "alt_decompression.bytes",
        f"{ev.decoded_where}; {alt.region} gives {alt.bytes:,} B (alt_decompression.bytes)",
    )
