"""Latency and energy estimates: per-operator costs turned into time on a device.

A *cost model* holds the constants of one kernel library on one core
(``targets/latency/<kernels>_<core>.toml``): per operator,

    cycles = overhead + work x cycles_per_unit[class] (x float_factor: float ops)
             + output elements x cycles_per_output[class] + cycles_per_op[class]
             + (input + output activation bytes) x cycles_per_activation_byte
             + weight_bytes x cycles_per_weight_byte

where work is MACs for the MAC classes and elements for the rest (see
:mod:`edgeprune.estimates.opcost`); a float op of a class the ``float_cycles_*``
tables hold uses them instead (TFLite Micro's reference float kernels, counted).
Time is cycles over the clock; on a multi-core Linux board the throughput term
is divided by the parallelism of the profile's threads. Energy is time x the
profile's active power. Every figure is an *estimate*: it carries the cost
model's id, what its constants come from and, for a fit, its leave-one-out
error. Importing this module is cheap (no TensorFlow).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from importlib import resources

from edgeprune._toml import id_or_path, read_toml, toml_ids
from edgeprune.errors import BadInputError
from edgeprune.estimates.opcost import CLASSES, ModelCost, OpCost, uncounted_note
from edgeprune.estimates.timing import LatencyMeasurement  # noqa: F401 - re-exported
from edgeprune.target import Target

BASES = ("fit", "derived", "measured")
DEFAULT_ERROR_BAND = 0.5  # of a cost model with no stated band and no leave-one-out error
FLOAT_ERROR_BAND = 1.0  # of an estimate with counted float kernels: no board measured one
FLOAT_DTYPES = frozenset({"float32", "float16"})
#: Optional tables of a float op's kernel (TFLite Micro's reference float kernels), by class.
FLOAT_TABLES = ("float_cycles_per_unit", "float_cycles_per_output", "float_cycles_per_op")


class CostModelError(BadInputError):
    """A cost-model file is missing, unreadable or holds an impossible value."""


@dataclass(frozen=True)
class Accuracy:
    """Leave-one-out error of a fitted cost model on its calibration set."""

    n: int
    median_abs_error: float  # fractions: 0.12 is 12 %
    max_abs_error: float
    set: str  # the calibration set's name


@dataclass(frozen=True)
class CostModel:
    """Constants of one kernel library on one core, and where they come from."""

    id: str  # "cmsis-nn_cortex-m4f": the file's stem
    kernels: str
    core: str
    basis: str  # "fit" | "derived" | "measured"
    source: str  # one line: what the constants come from
    overhead_cycles: float
    cycles_per_unit: dict[str, float]  # class -> cycles per MAC or per element
    float_factor: float = 1.0
    cycles_per_activation_byte: float = 0.0
    cycles_per_weight_byte: float = 0.0
    parallel_efficiency: float = 0.0  # per extra thread, for multi-core boards
    accuracy: Accuracy | None = None
    derivation: str = ""
    path: str = ""
    stated_error_band: float | None = None  # the file's error_band, for derived models
    cycles_per_output: dict[str, float] = field(default_factory=dict)  # class -> requantize...
    cycles_per_op: dict[str, float] = field(default_factory=dict)  # class -> a call's set-up
    # a float op of a class in float_cycles_per_unit is costed by its float kernel's
    # own shape; any other float op at float_factor x the integer rate
    float_cycles_per_unit: dict[str, float] = field(default_factory=dict)
    float_cycles_per_output: dict[str, float] = field(default_factory=dict)
    float_cycles_per_op: dict[str, float] = field(default_factory=dict)
    float_basis: str = ""  # where the float tables come from and how far off they may be

    def shape_cycles(self, op: OpCost) -> float:
        """The per-output and per-call cycles of ``op``'s kernel (0 where the model has none)."""
        cls = op.op_class
        if self.float_kernel(op):
            out, call = self.float_cycles_per_output, self.float_cycles_per_op
        else:
            out, call = self.cycles_per_output, self.cycles_per_op
        return op.elements * out.get(cls, 0.0) + call.get(cls, 0.0)

    def float_kernel(self, op: OpCost) -> bool:
        """Whether ``op`` is costed by the float kernels' own tables."""
        return op.dtype in FLOAT_DTYPES and op.op_class in self.float_cycles_per_unit

    def unit_rate(self, op: OpCost) -> float:
        """Cycles per unit of ``op``'s work: its float kernel's where counted, else the
        class's (x ``float_factor`` for a float op)."""
        if self.float_kernel(op):
            return self.float_cycles_per_unit[op.op_class]
        scale = self.float_factor if op.dtype in FLOAT_DTYPES else 1.0
        return self.cycles_per_unit[op.op_class] * scale

    def float_note(self, cost: ModelCost) -> str:
        """What an estimate says of its float ops, and how sure it is ("" for none)."""
        ops = sorted({o.opcode for o in cost.ops if o.dtype in FLOAT_DTYPES})
        if not ops:
            return ""
        how = self.float_basis or (
            f"costed at {self.float_factor:g} x the integer kernel's rate, not from float counts"
        )
        return f"float ops ({', '.join(ops)}): {how}"

    @property
    def error_band(self) -> float:
        """How far an estimate may be off (a fraction): the file's ``error_band``, else the
        fit's largest leave-one-out error, else :data:`DEFAULT_ERROR_BAND`."""
        if self.stated_error_band is not None:
            return self.stated_error_band
        if self.accuracy is not None:
            return self.accuracy.max_abs_error
        return DEFAULT_ERROR_BAND

    @property
    def error_band_basis(self) -> str:
        if self.stated_error_band is not None:
            return "stated in the cost model"
        if self.accuracy is not None:
            return "its largest leave-one-out error"
        return "the default for a cost model never checked against a measurement"

    def op_cycles(self, op: OpCost, threads: int = 1) -> float:
        """Estimated cycles of one operator. A float kernel's counted tables are its whole
        cost: the memory terms belong to the integer form they were fitted with."""
        memory = 0.0 if self.float_kernel(op) else 1.0
        throughput = (
            op.work * self.unit_rate(op)
            + (op.input_bytes + op.output_bytes) * self.cycles_per_activation_byte * memory
            + op.weight_bytes * self.cycles_per_weight_byte * memory
            + self.shape_cycles(op)
        )
        return self.overhead_cycles + throughput / self.speedup(threads)

    def speedup(self, threads: int) -> float:
        """Throughput gain of ``threads`` threads over one."""
        return 1.0 + max(threads - 1, 0) * self.parallel_efficiency


def latency_dir() -> str:
    """The folder of the cost models shipped with edgeprune."""
    return str(resources.files("edgeprune.targets") / "latency")


def list_cost_models() -> list[str]:
    return toml_ids(latency_dir())


def _number(where: str, key: str, value, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CostModelError(f"{where}: {key} = {value!r} must be a number")
    if not value >= lo:
        raise CostModelError(f"{where}: {key} = {value!r} must be >= {lo}")
    return float(value)


def parse_cost_model(data: dict, where: str, model_id: str) -> CostModel:
    """Validate parsed TOML ``data`` into a :class:`CostModel`.

    Raises:
        CostModelError: a missing or unknown key, a negative constant, or a
            cost class without a constant.
    """
    allowed = set(
        "kernels core basis source derivation overhead_cycles float_factor accuracy "
        "cycles_per_activation_byte cycles_per_weight_byte parallel_efficiency error_band "
        "cycles_per_unit cycles_per_output cycles_per_op float_basis".split()
    ) | set(FLOAT_TABLES)
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise CostModelError(
            f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(sorted(allowed))}"
        )
    for key in ("kernels", "core", "basis", "source", "overhead_cycles", "cycles_per_unit"):
        if key not in data:
            raise CostModelError(f"{where}: missing key '{key}'")
    if data["basis"] not in BASES:
        raise CostModelError(
            f"{where}: basis = {data['basis']!r} is not one of: {', '.join(BASES)}"
        )
    units = data["cycles_per_unit"]
    if not isinstance(units, dict):
        raise CostModelError(f"{where}: cycles_per_unit must be a table")
    extra = sorted(set(units) - set(CLASSES))
    if extra:
        raise CostModelError(
            f"{where}: cycles_per_unit.{extra[0]} is not a cost class; "
            f"classes: {', '.join(CLASSES)}"
        )
    if "fully_connected" in units:  # a file written before the recurrent class costs it so
        units.setdefault("recurrent", units["fully_connected"])
    missing = [c for c in CLASSES if c not in units]
    if missing:
        raise CostModelError(f"{where}: cycles_per_unit lacks {', '.join(missing)}")
    accuracy = None
    if "accuracy" in data:
        acc = data["accuracy"]
        try:
            accuracy = Accuracy(
                int(acc["n"]),
                float(acc["median_abs_error"]),
                float(acc["max_abs_error"]),
                str(acc["set"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CostModelError(
                f"{where}: accuracy needs n, median_abs_error, max_abs_error and set ({exc})"
            ) from None
    efficiency = _number(where, "parallel_efficiency", data.get("parallel_efficiency", 0.0))
    if efficiency > 1:
        raise CostModelError(f"{where}: parallel_efficiency = {efficiency} must be <= 1")
    band = data.get("error_band")
    shape = {}
    for key in ("cycles_per_output", "cycles_per_op", *FLOAT_TABLES):
        table = data.get(key, {})
        if not isinstance(table, dict) or set(table) - set(CLASSES):
            bad = sorted(set(table) - set(CLASSES)) if isinstance(table, dict) else [key]
            raise CostModelError(
                f"{where}: {key}.{bad[0]} is not a cost class; name one of {', '.join(CLASSES)}"
            )
        shape[key] = {c: _number(where, f"{key}.{c}", v) for c, v in table.items()}
    return CostModel(
        id=model_id,
        kernels=str(data["kernels"]),
        core=str(data["core"]),
        basis=data["basis"],
        source=str(data["source"]).strip(),
        overhead_cycles=_number(where, "overhead_cycles", data["overhead_cycles"]),
        cycles_per_unit={c: _number(where, f"cycles_per_unit.{c}", units[c]) for c in CLASSES},
        float_factor=_number(where, "float_factor", data.get("float_factor", 1.0)),
        cycles_per_activation_byte=_number(
            where, "cycles_per_activation_byte", data.get("cycles_per_activation_byte", 0.0)
        ),
        cycles_per_weight_byte=_number(
            where, "cycles_per_weight_byte", data.get("cycles_per_weight_byte", 0.0)
        ),
        parallel_efficiency=efficiency,
        accuracy=accuracy,
        derivation=str(data.get("derivation", "")).strip(),
        float_basis=str(data.get("float_basis", "")).strip(),
        path=where,
        stated_error_band=None if band is None else _number(where, "error_band", band),
        **shape,
    )


def load_cost_model(name_or_path: str | os.PathLike) -> CostModel:
    """A shipped cost model by id (``cmsis-nn_cortex-m4f``) or any by path.

    Raises:
        CostModelError: unknown id (listing the known ones), unreadable or invalid file.
    """
    path, model_id, shipped = id_or_path(name_or_path, latency_dir())
    if shipped and not os.path.isfile(path):
        raise CostModelError(
            f"unknown cost model '{model_id}'; known: {', '.join(list_cost_models())}"
        )
    return parse_cost_model(read_toml(path, CostModelError, "cost model"), path, model_id)


@dataclass(frozen=True)
class OpEstimate:
    index: int
    opcode: str
    layer: str
    op_class: str
    kernel: str
    macs: int
    cycles: float
    ms: float


@dataclass(frozen=True)
class LatencyEstimate:
    """Estimated time (and energy) of one inference of a model on a device."""

    target: str
    cost_model: str
    basis: str
    source: str
    clock_hz: int
    threads: int
    ms: float
    energy_uj: float | None
    power_mw: float | None
    ops: tuple[OpEstimate, ...]
    accuracy: Accuracy | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    error_band: float = DEFAULT_ERROR_BAND  # fraction: 0.2 means the truth may be 20 % off
    error_band_basis: str = ""

    @property
    def ms_high(self) -> float:
        """The estimate with its error band added: what a latency budget is checked against."""
        return self.ms * (1 + self.error_band)

    def top(self, n: int = 5) -> list[OpEstimate]:
        """The ``n`` most expensive operators, costliest first."""
        return sorted(self.ops, key=lambda o: (-o.cycles, o.index))[:n]

    @property
    def caveat(self) -> str:
        """What the figure is: an estimate, from which constants."""
        text = f"estimated with cost model {self.cost_model} ({self.source})"
        if self.accuracy is not None:
            a = self.accuracy
            text += (
                f"; leave-one-out error on {a.set}: median {a.median_abs_error:.0%}, "
                f"max {a.max_abs_error:.0%} over {a.n} models"
            )
        text += f"; error band ±{self.error_band:.0%} ({self.error_band_basis})"
        return "; ".join((text, *self.notes))


def estimate(
    cost: ModelCost,
    model: CostModel,
    clock_hz: int,
    *,
    target: str = "",
    threads: int = 1,
    power_mw: float | None = None,
) -> LatencyEstimate:
    """Per-operator and total latency of ``cost`` under ``model`` at ``clock_hz``."""
    rows = []
    for op in cost.ops:
        cycles = model.op_cycles(op, threads)
        rows.append(
            OpEstimate(
                op.index,
                op.opcode,
                op.layer,
                op.op_class,
                op.kernel,
                op.macs,
                cycles,
                cycles / clock_hz * 1e3,
            )
        )
    ms = sum(r.ms for r in rows)
    notes = tuple(n for n in (uncounted_note(cost), model.float_note(cost)) if n)
    band, basis = model.error_band, model.error_band_basis
    if band < FLOAT_ERROR_BAND and any(model.float_kernel(op) for op in cost.ops):
        band, basis = FLOAT_ERROR_BAND, "float kernels: counted under QEMU, no board measured"
    energy = ms * power_mw if power_mw is not None else None  # mW x ms = uJ
    return LatencyEstimate(
        target,
        model.id,
        model.basis,
        model.source,
        clock_hz,
        threads,
        ms,
        energy,
        power_mw,
        tuple(rows),
        model.accuracy,
        notes,
        band,
        basis,
    )


class CostModelMismatchError(CostModelError):
    """A cost model fitted for another core or kernel library than the target's."""


FORCE_FIX = "pass --force-cost-model (recipe: [budget] force_cost_model = true) to use it anyway"


def core_mismatch(model: CostModel, target: Target, force: bool = False) -> str:
    """ "" when ``model`` is for ``target``'s kernel library and core; else, with
    ``force``, the note an estimate carries (its constants were measured elsewhere,
    so its error band says nothing here).

    Raises:
        CostModelMismatchError: another core or kernel library, not forced.
    """
    if (model.kernels, model.core) == (target.kernels, target.core):
        return ""
    theirs = f"{model.kernels} on {model.core}"
    ours = f"{target.kernels} on {target.core}"
    if force:
        return (
            f"FORCED: cost model {model.id} is for {theirs}, not {ours}; the figure "
            f"and its error band do not describe {target.id}"
        )
    raise CostModelMismatchError(
        f"cost model {model.id} is for {theirs}, but {target.id} runs {ours}; choose "
        f"a cost model for {target.kernels}_{target.core} or {FORCE_FIX}"
    )


def select_cost_model(
    target: Target, cost_model: str | None = None, force: bool = False
) -> tuple[CostModel, str]:
    """The cost model for ``target`` (``cost_model``, an id or a .toml path, replaces
    the target's own) and, when it was forced onto another core, the note saying so.

    Raises:
        CostModelError: the cost model is unknown or invalid.
        CostModelMismatchError: it is for another core or kernel library (not forced).
    """
    model = load_cost_model(cost_model or target.latency.cost_model_id(target))
    return model, core_mismatch(model, target, force)


def estimate_latency(cost, target: Target, cost_model: str | None = None, force: bool = False):
    """The latency (and energy) estimate of a model's op costs (:func:`opcost.model_cost`)
    on ``target``.

    ``cost_model`` (an id or a .toml path) replaces the target's own; one for
    another core or kernel library is refused unless ``force`` (then the
    estimate's caveat says so).

    Raises:
        CostModelError: the cost model is unknown or invalid.
        CostModelMismatchError: it is for another core or kernel library (not forced).
    """
    model, note = select_cost_model(target, cost_model, force)
    result = estimate(
        cost,
        model,
        target.clock_hz,
        target=target.id,
        threads=target.latency.threads,
        power_mw=target.latency.active_power_mw,
    )
    return replace(result, notes=(*result.notes, note)) if note else result
