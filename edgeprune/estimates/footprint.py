"""Flash and static RAM that the TFLite Micro runtime adds to a model, per core.

Measured by this project on this machine (method and raw figures:
``docs/tflm-flash-measurement.md``): arm-none-eabi-gcc 12.2.1, ``-Os`` for the
interpreter and the kernels, newlib-nano, ``--gc-sections``, TFLite Micro at
90b983c with CMSIS-NN 4ab83cc, as ELF text+data of a program minus an empty
``main`` and minus the model bytes. Per build:

* the interpreter with an empty ``MicroMutableOpResolver<6>``;
* the interpreter plus ONE kernel, int8-only registration and generic;
* the six kernels of the MLPerf Tiny keyword-spotting (KWS) model together.

One-kernel figures cannot simply be added: each carries helper code the
kernels share (software double-precision and libm routines on the M4F,
quantization helpers). A model's kernel flash is therefore estimated as the
sum of its ops' one-kernel figures minus the shared code counted once per
extra op, with the shared share calibrated so that the estimate reproduces the
measured KWS build exactly. Every figure says it is an estimate and from what
(:attr:`RuntimeFlash.basis`).

Measured: Cortex-M0+, M4F, M7, M33 and M55 (MVE) with CMSIS-NN, and the
M4F with reference kernels. Not measured: the Xtensa cores with ESP-NN; for
those the Cortex-M4F CMSIS-NN measurement stands in, and the basis says so.

The figures are data, not code: ``targets/footprint/tflm.toml`` (shipped as
``edgeprune.targets``), read and validated when this module is imported
(:func:`load_footprint`), as the cost models in ``targets/latency/`` are.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from typing import Any

from edgeprune._toml import read_toml
from edgeprune.errors import BadInputError

_TOP_KEYS = ("static_ram_bytes", "kws_ops", "fallback", "stand_ins", "build")
_BUILD_KEYS = ("kernels", "core", "interpreter_bytes", "kws_int8_bytes", "kws_generic_bytes", "ops")
_OP_KEYS = ("int8_bytes", "generic_bytes")


class FootprintError(BadInputError):
    """The footprint table is missing a key, has an unknown one or a bad value."""


@dataclass(frozen=True)
class Measurement:
    """One measured build configuration: bytes of text+data."""

    interpreter_bytes: int
    kws_int8_bytes: int  # interpreter + the KWS kernels, int8-only where TFLM has it
    kws_generic_bytes: int
    ops: dict[str, tuple[int | None, int]]  # opcode -> (int8-only or None if none, generic)
    kws_ops: tuple[str, ...]  # the kernels of the KWS builds

    def one_op(self, opcode: str, int8_only: bool) -> int | None:
        """Flash of one kernel for ``opcode``, or None when it was not measured."""
        if opcode not in self.ops:
            return None
        int8, generic = self.ops[opcode]
        return int8 if int8_only and int8 is not None else generic

    def shared_bytes(self) -> float:
        """Helper code one-kernel figures each include, from the KWS builds."""
        singles = sum(self.one_op(op, True) for op in self.kws_ops)
        kernels = self.kws_int8_bytes - self.interpreter_bytes
        return (singles - kernels) / (len(self.kws_ops) - 1)


@dataclass(frozen=True)
class FootprintTable:
    """The whole footprint file: builds keyed by ``(core, kernels)``, and stand-ins."""

    static_ram_bytes: int
    kws_ops: tuple[str, ...]
    fallback: tuple[str, str]
    stand_ins: dict[tuple[str, str], tuple[str, str]]
    builds: dict[tuple[str, str], Measurement]


def footprint_path() -> str:
    """The footprint table shipped with edgeprune."""
    return str(resources.files("edgeprune.targets") / "footprint" / "tflm.toml")


def _fail(where: str, problem: str) -> FootprintError:
    return FootprintError(
        f"footprint table {where}: {problem}; fix the file (see docs/tflm-flash-measurement.md)"
    )


def _table(where: str, key: str, table: Any) -> dict:
    if not isinstance(table, dict):
        raise _fail(where, f"{key or 'the file'} must be a table")
    return table


def _keys(
    where: str, key: str, table: Any, allowed: tuple[str, ...], required: tuple[str, ...]
) -> dict:
    _table(where, key, table)
    prefix = f"{key}." if key else ""
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        raise _fail(where, f"unknown key '{prefix}{unknown[0]}'; allowed: {', '.join(allowed)}")
    missing = [k for k in required if k not in table]
    if missing:
        raise _fail(where, f"missing key '{prefix}{missing[0]}'")
    return table


def _bytes(where: str, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _fail(where, f"{key} = {value!r} must be a positive whole number of bytes")
    return value


def _build_id(where: str, key: str, text: Any) -> tuple[str, str]:
    """``"cmsis-nn_cortex-m4f"`` -> ``("cortex-m4f", "cmsis-nn")``, as the budgets key builds."""
    kernels, _, core = str(text).partition("_")
    if not (isinstance(text, str) and kernels and core):
        raise _fail(where, f"{key} = {text!r} must name a build as <kernels>_<core>")
    return core, kernels


def _measurement(
    where: str, build_id: str, table: Any, kws_ops: tuple[str, ...]
) -> tuple[tuple[str, str], Measurement]:
    key = f"build.{build_id}"
    _keys(where, key, table, _BUILD_KEYS, _BUILD_KEYS)
    core, kernels = _build_id(where, key, build_id)
    if (table["core"], table["kernels"]) != (core, kernels):
        raise _fail(
            where,
            f"{key} says kernels = {table['kernels']!r}, core = "
            f"{table['core']!r}; the table must be named <kernels>_<core>",
        )
    ops = {}
    for opcode, sizes in _table(where, f"{key}.ops", table["ops"]).items():
        at = f"{key}.ops.{opcode}"
        _keys(where, at, sizes, _OP_KEYS, ("generic_bytes",))
        int8 = sizes.get("int8_bytes")
        ops[opcode] = (
            None if int8 is None else _bytes(where, f"{at}.int8_bytes", int8),
            _bytes(where, f"{at}.generic_bytes", sizes["generic_bytes"]),
        )
    missing = [op for op in kws_ops if op not in ops]
    if missing:
        raise _fail(where, f"{key}.ops lacks {missing[0]}, one of the kws_ops")
    measurement = Measurement(
        *(
            _bytes(where, f"{key}.{k}", table[k])
            for k in ("interpreter_bytes", "kws_int8_bytes", "kws_generic_bytes")
        ),
        ops=ops,
        kws_ops=kws_ops,
    )
    return (core, kernels), measurement


def parse_footprint(data: dict, where: str) -> FootprintTable:
    """Validate parsed TOML ``data`` into a :class:`FootprintTable`.

    Raises:
        FootprintError: a missing or unknown key (named with its path, such as
            ``build.cmsis-nn_cortex-m4f.ops.ADD.int8_bytes``), a size that is not
            a positive integer, a build not named ``<kernels>_<core>``, a build
            without every ``kws_ops`` kernel, or a stand-in for an unmeasured build.
    """
    _keys(where, "", data, _TOP_KEYS, _TOP_KEYS)
    kws_ops = data["kws_ops"]
    if (
        not isinstance(kws_ops, list)
        or len(kws_ops) < 2
        or not all(isinstance(op, str) for op in kws_ops)
    ):
        raise _fail(where, f"kws_ops = {kws_ops!r} must list at least two opcodes")
    kws_ops = tuple(kws_ops)
    builds = dict(
        _measurement(where, build_id, table, kws_ops)
        for build_id, table in _table(where, "build", data["build"]).items()
    )
    if not builds:
        raise _fail(where, "build holds no measured build")

    def measured(key: str, text: Any) -> tuple[str, str]:
        build = _build_id(where, key, text)
        if build not in builds:
            raise _fail(
                where,
                f"{key} = {text!r} is not a measured build; measured: "
                f"{', '.join(f'{k}_{c}' for c, k in builds)}",
            )
        return build

    stand_ins = {
        _build_id(where, f"stand_ins.{name}", name): measured(f"stand_ins.{name}", to)
        for name, to in _table(where, "stand_ins", data["stand_ins"]).items()
    }
    return FootprintTable(
        _bytes(where, "static_ram_bytes", data["static_ram_bytes"]),
        kws_ops,
        measured("fallback", data["fallback"]),
        stand_ins,
        builds,
    )


def load_footprint(path: str | os.PathLike | None = None) -> FootprintTable:
    """Read and validate a footprint table (the shipped one when ``path`` is None).

    Raises:
        FootprintError: the file is missing, not TOML, or invalid (see
            :func:`parse_footprint`).
    """
    where = os.fspath(path) if path is not None else footprint_path()
    return parse_footprint(read_toml(where, FootprintError, "footprint table"), where)


TABLE = load_footprint()
# The names the budget check and its tests read.
STATIC_RAM_BYTES = TABLE.static_ram_bytes
KWS_OPS = TABLE.kws_ops
MEASURED: dict[tuple[str, str], Measurement] = TABLE.builds
STAND_INS: dict[tuple[str, str], tuple[str, str]] = TABLE.stand_ins


@dataclass(frozen=True)
class RuntimeFlash:
    """Flash the TFLite Micro runtime adds for one model on one core (estimate)."""

    interpreter_bytes: int
    kernel_bytes: int
    ops: int
    basis: str  # what the estimate rests on, in words

    @property
    def total_bytes(self) -> int:
        return self.interpreter_bytes + self.kernel_bytes


def runtime_flash(core: str, kernels: str, ops: dict[str, bool]) -> RuntimeFlash:
    """Estimate the runtime flash for a model registering ``ops``.

    ``ops`` maps each distinct opcode to whether the op resolver registers its
    int8-only kernel (what :func:`edgeprune.firmware.resolver.resolver_calls` emits).
    A core and kernel library without a measurement get a stand-in's figures,
    and an op without one the largest measured kernel; the basis says so. Pure.
    """
    key = (core, kernels)
    if key in MEASURED:
        used, note = key, f"measured on {core} with {kernels}"
    else:
        used = STAND_INS.get(key, TABLE.fallback)
        note = (
            f"no measurement for {core} with {kernels}: the {used[0]} {used[1]} "
            f"measurement stands in"
        )
    m = MEASURED[used]
    largest = max(max(v for v in pair if v is not None) for pair in m.ops.values())
    sizes, unmeasured = [], []
    for opcode, int8_only in sorted(ops.items()):
        size = m.one_op(opcode, int8_only)
        if size is None:
            unmeasured.append(opcode)
            size = largest
        sizes.append(size)
    shared = m.shared_bytes()
    kernels_bytes = 0
    if sizes:
        kernels_bytes = max(max(sizes), int(round(sum(sizes) - (len(sizes) - 1) * shared)))
    basis = (
        f"estimate: {note}; one-kernel sizes less shared helper code counted once "
        f"({shared:,.0f} B, calibrated on the measured keyword-spotting build)"
    )
    if unmeasured:
        basis += (
            f"; {', '.join(unmeasured)} not measured, counted as the largest measured "
            f"kernel ({largest:,} B)"
        )
    return RuntimeFlash(m.interpreter_bytes, kernels_bytes, len(ops), basis)
