"""The budget rules of a Linux target: what the model adds to storage and to a
process's memory, in MiB (:data:`edgeprune.rules.budget.RULES` lists them;
kept apart from :mod:`edgeprune.rules.budget` for its size)."""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

from edgeprune.rules.result import RuleResult, format_size, rule_text

if TYPE_CHECKING:
    from edgeprune.rules.budget import Evidence
    from edgeprune.target import Budget, Target

MIB = 2**20


def _in_mib(rule, used: int, limit: int, budget_key: str, capacity: str, evidence: str):
    """A Linux rule's result: bytes the model adds against ``limit``, both in MiB;
    ``evidence`` follows "N B (size) of TARGET's CAPACITY"."""
    return RuleResult(
        "storage" if rule is storage_rule else "ram",
        rule_text(rule),
        used <= limit,
        used / MIB,
        limit / MIB,
        "MiB",
        budget_key,
        f"{used:,} B ({format_size(used)}) of {capacity}{evidence}",
    )


def storage_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The model file fits the storage budget.

    On Linux the LiteRT library is part of the OS image: what the model adds
    to storage is its file."""
    capacity = f"{target.id}'s {format_size(target.flash_bytes)} of storage (flash_bytes)"
    return _in_mib(
        storage_rule,
        ev.model_bytes,
        budget.max_flash_bytes,
        "budget.max_flash_bytes",
        capacity,
        ": the model file; the LiteRT library is part of the OS image",
    )


def memory_rule(ev: Evidence, target: Target, budget: Budget) -> RuleResult:
    """The memory the model adds to a process fits the RAM budget.

    Measured in a fresh process on the machine edgeprune runs on, not on the
    board: the board's allocator and kernels differ, and the OS and the
    application's own memory are not counted."""
    arch = (platform.machine() or "unknown").replace("_", "-")
    where = (
        f"this machine with {target.kernels}"
        if target.id == "host"
        else f"this {arch} host with {target.kernels}, not on the board"
    )
    return _in_mib(
        memory_rule,
        ev.peak_memory_bytes,
        budget.max_ram_bytes,
        "budget.max_ram_bytes",
        f"{target.id}'s {format_size(target.ram_bytes)} of RAM",
        ": what a fresh process grows by to load the model in ai-edge-litert, allocate "
        f"and invoke once, measured on {where}",
    )
