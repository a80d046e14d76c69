"""Device profiles: ``targets/*.toml`` parsed into validated dataclasses.

A profile says what a device *is* (core, clock, flash, RAM, runtime, kernel
library) and the flash and RAM budgets a model must meet on it (by default the
device's own capacity); it never carries pipeline options, and it carries no
latency budget unless a user's own profile sets one: latency is the
application's requirement, set by the recipe or ``--max-latency-ms``. A profile
may read some figures from this machine at load time instead of stating them
(``read_from_this_machine``: the ``host`` profile). Every hardware number in a
profile cites its datasheet in a comment. Unknown keys, missing keys and
impossible values raise :class:`TargetError` naming the file, the key, the
value and what is allowed.

Importing this module is cheap (no TensorFlow).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from edgeprune import this_machine
from edgeprune._toml import id_or_path, read_toml, toml_ids
from edgeprune.errors import BadInputError

# re-exported: the [sdk] table lives in its own module for size
from edgeprune.target_sdk import SDK_BOARD_FORMS, SDK_CORES, SDKS, SdkBoard, sdk_table  # noqa: F401

KINDS = ("mcu", "linux")
RUNTIMES = {"mcu": "tflm", "linux": "litert"}
KERNELS = ("reference", "cmsis-nn", "esp-nn", "xnnpack")
MODEL_DTYPES = ("int8", "float32", "any")
CORES = (
    "cortex-m0plus",
    "cortex-m4f",
    "cortex-m7",
    "cortex-m33",
    "cortex-m55",
    "xtensa-lx6",
    "xtensa-lx7",
    "cortex-a53",
    "cortex-a72",
    "cortex-a76",
    "x86-64",
)
#: The multiple structured pruning rounds kept channels to where a profile does not
#: state ``channel_multiple``; the kernel loops behind 4 and 8: edgeprune.structured.rounding.
KERNEL_CHANNEL_MULTIPLE = {"reference": 1, "cmsis-nn": 4, "esp-nn": 8, "xnnpack": 1}

#: Cores without a floating-point unit: float kernels run in software (the RP2040's M0+).
SOFT_FLOAT_CORES = frozenset({"cortex-m0plus"})


# Physical bounds: a profile number outside them is a typo, not a device.
MAX_BYTES = 2**40  # 1 TiB of flash or RAM
MAX_CLOCK_HZ = 10**10  # 10 GHz
MAX_POWER_MW = 10**6  # 1 kW
MAX_LATENCY_MS = 86_400_000  # one day
MAX_COUNT = 100_000  # threads, timed runs


class TargetError(BadInputError):
    """A device profile is unknown, unreadable or holds an impossible value."""


@dataclass(frozen=True)
class Reserve:
    """What the application around the model keeps for itself (MCU targets: on
    Linux the figures are what the model adds, and no reserve is counted)."""

    flash_bytes: int
    ram_bytes: int


@dataclass(frozen=True)
class ArenaMargin:
    """Added to the arena computed for the target (estimates/device_arena.py), and why."""

    fraction: float
    bytes: int
    reason: str

    def apply(self, arena_bytes: int) -> int:
        return int(arena_bytes + arena_bytes * self.fraction + self.bytes + 0.999999)


@dataclass(frozen=True)
class Budget:
    """Budgets for a model on this device (overridable per run). Flash and RAM
    default to the device's capacity; latency has no default (None: the estimate
    is reported, not judged) because it is the application's requirement."""

    max_flash_bytes: int
    max_ram_bytes: int
    max_latency_ms: float | None = None


@dataclass(frozen=True)
class LatencyProfile:
    """How latency and energy are estimated on this device (the ``[latency]`` table)."""

    cost_model: str = ""  # id or path; default "<kernels>_<core>" (targets/latency/)
    threads: int = 1
    active_power_mw: float | None = None  # while the core runs inference
    power_source: str = ""  # where that figure comes from
    measure: bool = False  # time the model on this machine instead (the host profile)
    runs: int = 50  # timed invokes when measured

    def cost_model_id(self, target: Target) -> str:
        return self.cost_model or f"{target.kernels}_{target.core}"


@dataclass(frozen=True)
class AltDecompression:
    """Memory the firmware gives TFLite Micro for decoded weights (the
    ``[alt_decompression]`` table): the *alternate decompression memory* of
    ``MicroInterpreter::SetDecompressionMemory`` (TFLite Micro 90b983c).

    A DECODE operator (weights compressed by the compress stage) writes each
    tensor it decodes there instead of into the arena while room is left (each
    DECODE starts over at the block's start, 16-byte aligned), and into the arena
    when not. ``bytes``: the most the block may take; ``region``: the memory's
    name (a TCM, an SRAM bank, PSRAM); ``in_ram_bytes``: the region is part of
    ``ram_bytes`` (the RAM rule adds the block to the arena) or a separate one
    (the block is checked against ``bytes`` alone); ``section``: the linker
    section the firmware puts the block in ("": wherever static data goes).
    """

    bytes: int
    region: str
    in_ram_bytes: bool
    section: str = ""

    def block_bytes(self, needed_bytes: int) -> int:
        """The block the firmware reserves for a model whose DECODEs need
        ``needed_bytes`` at most: all of it, or as much as the region gives."""
        return min(self.bytes, needed_bytes)


@dataclass(frozen=True)
class Target:
    """One device profile."""

    id: str  # the file's stem: what `--target` and `make <id>` take
    name: str
    kind: str
    core: str
    clock_hz: int
    flash_bytes: int
    ram_bytes: int
    runtime: str
    kernels: str
    model_dtype: str
    reserve: Reserve
    arena_margin: ArenaMargin
    budget: Budget
    npu: str | None = None
    largest_ram_block_bytes: int | None = None  # one arena must fit one contiguous block
    latency: LatencyProfile = LatencyProfile()
    path: str = ""
    cpu: str = ""  # the CPU's model name, where the profile states or reads it
    cores: int | None = None
    read_from_this_machine: tuple[str, ...] = ()  # keys read at load time, not from the file
    # structured pruning rounds kept channels to this multiple; the source says who chose it
    channel_multiple: int = 1
    channel_multiple_source: str = ""  # "profile", or "<kernels> default"
    # The [sdk] table in file order: the SDKs whose project templates firmware gets.
    sdk: tuple[SdkBoard, ...] = ()
    alt_decompression: AltDecompression | None = None  # memory for decoded weights, if any

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SCHEMA: dict[str, dict[str, tuple]] = {
    # key: (type, required, allowed) where allowed is a tuple of choices or
    # ("min", lo, hi) meaning lo <= value <= hi, or ("gt", lo, hi) meaning lo < value <= hi.
    "": {
        "name": (str, True, None),
        "kind": (str, True, KINDS),
        "core": (str, True, CORES),
        "clock_hz": (int, True, ("gt", 0, MAX_CLOCK_HZ)),
        "flash_bytes": (int, True, ("gt", 0, MAX_BYTES)),
        "ram_bytes": (int, True, ("gt", 0, MAX_BYTES)),
        "runtime": (str, True, ("tflm", "litert")),
        "kernels": (str, True, KERNELS),
        "model_dtype": (str, True, MODEL_DTYPES),
        "npu": (str, False, None),
        "largest_ram_block_bytes": (int, False, ("gt", 0, MAX_BYTES)),
        "cpu": (str, False, None),
        "cores": (int, False, ("gt", 0, MAX_COUNT)),
        "channel_multiple": (int, False, ("gt", 0, 256)),
    },
    "reserve": {
        "flash_bytes": (int, True, ("min", 0, MAX_BYTES)),
        "ram_bytes": (int, True, ("min", 0, MAX_BYTES)),
    },
    "arena_margin": {
        "fraction": (float, True, ("min", 0.0, 1.0)),
        "bytes": (int, True, ("min", 0, MAX_BYTES)),
        "reason": (str, True, None),
    },
    "budget": {
        "max_flash_bytes": (int, False, ("gt", 0, MAX_BYTES)),
        "max_ram_bytes": (int, False, ("gt", 0, MAX_BYTES)),
        "max_latency_ms": (float, False, ("gt", 0.0, MAX_LATENCY_MS)),
    },
    "latency": {
        "cost_model": (str, False, None),
        "threads": (int, False, ("gt", 0, MAX_COUNT)),
        "active_power_mw": (float, False, ("gt", 0.0, MAX_POWER_MW)),
        "power_source": (str, False, None),
        "measure": (bool, False, None),
        "runs": (int, False, ("gt", 0, MAX_COUNT)),
    },
    "alt_decompression": {
        "bytes": (int, True, ("gt", 0, MAX_BYTES)),
        "region": (str, True, None),
        "in_ram_bytes": (bool, True, None),
        "section": (str, False, None),
    },
}


def targets_dir() -> str:
    """The folder of the profiles shipped with edgeprune."""
    return str(resources.files("edgeprune.targets"))


def list_targets() -> list[str]:
    """Ids of every shipped profile, sorted."""
    return toml_ids(targets_dir())


def _check(where: str, key: str, value: Any, spec: tuple) -> Any:
    typ, _, allowed = spec
    if typ is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if typ is bool:
        if not isinstance(value, bool):
            raise TargetError(f"{where}: {key} = {value!r} must be true or false")
        return value
    if not isinstance(value, typ) or isinstance(value, bool):
        raise TargetError(f"{where}: {key} = {value!r} must be {typ.__name__}")
    if typ is str and not value.strip():
        raise TargetError(f"{where}: {key} is empty")
    if typ is str and not value.isprintable():
        raise TargetError(f"{where}: {key} = {value!r} holds control characters; use plain text")
    if isinstance(allowed, tuple) and allowed and allowed[0] in ("min", "gt"):
        op, lo, hi = allowed
        if (op == "min" and not value >= lo) or (op == "gt" and not value > lo) or value > hi:
            bound = f"{'>=' if op == 'min' else '>'} {lo} and <= {hi:,}"
            raise TargetError(f"{where}: {key} = {value!r} is out of range; it must be {bound}")
    elif allowed is not None and value not in allowed:
        raise TargetError(f"{where}: {key} = {value!r} is not one of: {', '.join(allowed)}")
    return value


def _section(where: str, section: str, data: dict) -> dict:
    schema = _SCHEMA[section]
    out = {}
    for key, value in data.items():
        dotted = f"{section}.{key}" if section else key
        if key not in schema:
            if not section and (key in _SCHEMA or key == "sdk"):
                continue  # a table, handled by the caller
            tables = [f"[{t}]" for t in (*_SCHEMA, "sdk") if t]
            known = list(schema) + (tables if not section else [])
            close = difflib.get_close_matches(key, [k.strip("[]") for k in known], n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; allowed: {', '.join(known)}"
            raise TargetError(f"{where}: unknown key '{dotted}'{hint}")
        out[key] = _check(where, dotted, value, schema[key])
    for key, (_, required, _) in schema.items():
        if required and key not in out:
            dotted = f"{section}.{key}" if section else key
            raise TargetError(f"{where}: missing key '{dotted}'")
    return out


def _machine_keys(where: str, data: dict) -> tuple[dict, tuple[str, ...]]:
    """``data`` with the figures ``read_from_this_machine`` names read from this
    machine, and those keys."""
    keys = data.get("read_from_this_machine", [])
    allowed = ", ".join(this_machine.READABLE)
    if not isinstance(keys, list) or not all(k in this_machine.READABLE for k in keys):
        raise TargetError(
            f"{where}: read_from_this_machine = {keys!r} must be a list of: {allowed}"
        )
    stated = [k for k in keys if k in data]
    if stated:
        raise TargetError(
            f"{where}: {stated[0]} is both stated and read from this machine "
            f"(read_from_this_machine); remove one"
        )
    try:
        read = this_machine.read(keys)
    except this_machine.MachineReadError as exc:
        raise TargetError(
            f"{where}: {exc}; state it in the profile and drop it from read_from_this_machine"
        ) from None
    rest = {k: v for k, v in data.items() if k != "read_from_this_machine"}
    return {**rest, **read}, tuple(keys)


def _tables(where: str, data: dict, top: dict) -> dict:
    """The validated ``[reserve]``, ``[arena_margin]`` and ``[budget]`` tables. A
    reserve is an MCU's only: on Linux the figures are what the model adds."""
    tables = {}
    for section in ("reserve", "arena_margin", "budget"):
        table = data.get(section, {} if section == "budget" else None)
        if section == "reserve" and top["kind"] == "linux":
            if table is not None:
                raise TargetError(
                    f"{where}: [reserve] is for kind = 'mcu' only: on a Linux target "
                    f"flash and RAM are what the model adds (file bytes, measured "
                    f"process growth); remove the table"
                )
            table = {"flash_bytes": 0, "ram_bytes": 0}
        if not isinstance(table, dict):
            raise TargetError(f"{where}: missing table [{section}]")
        tables[section] = _section(where, section, table)
    budget = tables["budget"]
    budget.setdefault("max_flash_bytes", top["flash_bytes"])
    budget.setdefault("max_ram_bytes", top["ram_bytes"])
    return tables


def _alt_decompression(where: str, data: dict, top: dict) -> AltDecompression | None:
    """The validated ``[alt_decompression]`` table, None without one."""
    table = data.get("alt_decompression")
    if table is None:
        return None
    if not isinstance(table, dict) or top["kind"] != "mcu":
        raise TargetError(
            f"{where}: alt_decompression must be a table (bytes, region, in_ram_bytes) "
            f"of a kind = 'mcu' profile: only TFLite Micro decodes weights; remove it"
        )
    size = table.get("bytes")
    if "bytes" in table and (isinstance(size, bool) or not isinstance(size, int) or size <= 0):
        raise TargetError(
            f"{where}: alt_decompression.bytes = {size!r} must be a whole number of "
            f"bytes above 0 (the block TFLite Micro may decode weights into, e.g. "
            f"65_536); fix it or remove the [alt_decompression] table"
        )
    alt = AltDecompression(**_section(where, "alt_decompression", table))
    if alt.in_ram_bytes and alt.bytes > top["ram_bytes"]:
        raise TargetError(
            f"{where}: alt_decompression.bytes = {alt.bytes} is more than ram_bytes = "
            f"{top['ram_bytes']} although in_ram_bytes = true; fix the size or set "
            f"in_ram_bytes = false for a separate region"
        )
    if alt.section and not re.fullmatch(r"\.?[A-Za-z_][A-Za-z0-9_.$]*", alt.section):
        raise TargetError(
            f"{where}: alt_decompression.section = {alt.section!r} is not a linker section "
            f"name; use one word such as '.dtcm_bss'"
        )
    return alt


def parse_target(data: dict, where: str, target_id: str) -> Target:
    """Validate parsed TOML ``data`` and build a :class:`Target`; read the figures
    ``read_from_this_machine`` names from this machine.

    Raises:
        TargetError: unknown or missing keys, wrong types, impossible values, a
            figure this machine does not give.
    """
    data, read = _machine_keys(where, data)
    top = _section(where, "", data)
    tables = _tables(where, data, top)
    sdk = sdk_table(where, data, top)
    reserve, margin, budget = (
        Reserve(**tables["reserve"]),
        ArenaMargin(**tables["arena_margin"]),
        Budget(**tables["budget"]),
    )
    latency_table = data.get("latency", {})
    if not isinstance(latency_table, dict):
        raise TargetError(f"{where}: latency must be a table")
    latency = LatencyProfile(**_section(where, "latency", latency_table))
    if latency.active_power_mw is not None and not latency.power_source:
        raise TargetError(
            f"{where}: latency.active_power_mw needs latency.power_source (the "
            f"datasheet or measurement it comes from)"
        )
    if RUNTIMES[top["kind"]] != top["runtime"]:
        raise TargetError(
            f"{where}: runtime = {top['runtime']!r} does not run on kind = "
            f"{top['kind']!r}; use {RUNTIMES[top['kind']]!r}"
        )
    if margin.fraction >= 1:
        raise TargetError(f"{where}: arena_margin.fraction = {margin.fraction} must be below 1")
    for res, total in (("flash_bytes", top["flash_bytes"]), ("ram_bytes", top["ram_bytes"])):
        if getattr(reserve, res) >= total:
            raise TargetError(
                f"{where}: reserve.{res} = {getattr(reserve, res)} leaves nothing "
                f"of {res} = {total}"
            )
    for limit, res in (("max_flash_bytes", "flash_bytes"), ("max_ram_bytes", "ram_bytes")):
        if getattr(budget, limit) > top[res]:
            raise TargetError(
                f"{where}: budget.{limit} = {getattr(budget, limit)} is more than "
                f"the device's {res} = {top[res]}"
            )
    block = top.get("largest_ram_block_bytes")
    if block is not None and block > top["ram_bytes"]:
        raise TargetError(
            f"{where}: largest_ram_block_bytes = {block} is more than ram_bytes = "
            f"{top['ram_bytes']}"
        )
    stated = "channel_multiple" in top
    top.setdefault("channel_multiple", KERNEL_CHANNEL_MULTIPLE[top["kernels"]])
    return Target(
        id=target_id,
        channel_multiple_source="profile" if stated else f"{top['kernels']} default",
        reserve=reserve,
        arena_margin=margin,
        budget=budget,
        latency=latency,
        path=where,
        read_from_this_machine=read,
        sdk=sdk,
        alt_decompression=_alt_decompression(where, data, top),
        **top,
    )


def load_target(name_or_path: str | os.PathLike) -> Target:
    """Load a shipped profile by id (``nano33ble``) or any profile by path.

    Raises:
        TargetError: unknown id (the message lists the known ones), unreadable
            file, or an invalid profile.
    """
    path, target_id, shipped = id_or_path(name_or_path, targets_dir())
    if not target_id.isprintable():
        raise TargetError(f"target {target_id!r} holds control characters; use a plain name")
    if shipped and not os.path.isfile(path):
        close = difflib.get_close_matches(target_id, list_targets(), n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise TargetError(
            f"unknown target '{target_id}'; {hint}known targets: {', '.join(list_targets())}"
        )
    return parse_target(read_toml(path, TargetError, "target file"), path, target_id)
