"""Does a ``.tflite`` model fit a device? Measure the evidence, apply the rules.

For a TFLite Micro target: the model is loaded in TFLite Micro (in a worker
process) to prove every op and dtype is supported, the smallest working arena
is searched, and the runtime's flash comes from the measured table in
:mod:`edgeprune.estimates.footprint`. For a Linux target: the file size and the peak
memory of the LiteRT interpreter measured on this host.

A model whose dtype the target cannot run, or whose ops TFLite Micro lacks,
is refused as bad input (exit 1, one line naming the ops) before anything is
measured or emitted; the budget rules then decide pass or fail (exit 3).
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace

from edgeprune.errors import BadInputError
from edgeprune.estimates import footprint
from edgeprune.estimates.opcost import model_cost
from edgeprune.rules import budget as rules
from edgeprune.target import Budget, Target
from edgeprune.tflite import TFLiteFormatError, inspect_model

log = logging.getLogger(__name__)


class TargetMismatchError(BadInputError):
    """The model cannot run on the target at all (dtype, missing ops)."""


def model_dtype(info) -> str:
    """``int8`` for an integer-only model (no floating-point tensor anywhere;
    int16 and int32 tensors, as in TFLM's audio front end, are integer too),
    ``float32`` when no weight is int8, otherwise ``mixed`` (e.g. dynamic-range:
    int8 weights with float activations)."""
    floats = {"float32", "float16", "float64", "bfloat16"}
    if not any(t.dtype in floats for t in info.tensors):
        return "int8"
    if not any(w.dtype == "int8" for w in info.weights.per_tensor):
        return "float32"
    return "mixed"


def effective_budget(target: Target, overrides: dict | None) -> Budget:
    """The target's budget with any non-None ``overrides`` (recipe or flags)."""
    fields = set(Budget.__dataclass_fields__)
    changes = {k: v for k, v in (overrides or {}).items() if v is not None and k in fields}
    return replace(target.budget, **changes)


def estimate_latency(cost, target: Target, cost_model: str | None = None):
    """The latency (and energy) estimate of a model's op costs (:func:`opcost.model_cost`)
    on ``target``.

    ``cost_model`` (an id or a .toml path) replaces the target's own.

    Raises:
        CostModelError: the cost model is unknown or invalid.
    """
    from edgeprune.estimates.latency import estimate, load_cost_model

    model = load_cost_model(cost_model or target.latency.cost_model_id(target))
    return estimate(cost, model, target.clock_hz, target=target.id,
                    threads=target.latency.threads, power_mw=target.latency.active_power_mw)


def load_model_bytes(path: str) -> tuple[bytes, object]:
    """Read and parse a ``.tflite``; bad files are one-line :class:`BadInputError`."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise BadInputError(f"{path} does not exist; check the path") from None
    except IsADirectoryError:
        raise BadInputError(f"{path} is a folder; pass a .tflite file") from None
    except OSError as exc:
        raise BadInputError(f"{path} cannot be read ({exc.strerror})") from None
    try:
        return data, inspect_model(path)
    except TFLiteFormatError as exc:
        raise BadInputError(f"{exc}; pass a complete .tflite flatbuffer") from None


def gather_evidence(path: str, target: Target, cost_model: str | None = None) -> rules.Evidence:
    """Measure everything the rules need for the model at ``path`` on ``target``.

    Raises:
        BadInputError: unreadable or not a .tflite.
        TargetMismatchError: the target cannot run the model's dtype, or
            TFLite Micro lacks some of its ops or kernels.
        MicroError: TFLite Micro could not allocate the model at any size.
    """
    data, info = load_model_bytes(path)
    dtype = model_dtype(info)
    name = os.path.basename(path)
    if target.model_dtype != "any" and dtype != target.model_dtype:
        io_float = any(t.dtype == "float32" for t in (*info.inputs, *info.outputs))
        if dtype == "mixed" and io_float:
            raise TargetMismatchError(
                f"{name} has float32 input/output around int8 weights but {target.id} needs "
                f"an integer-only model; convert with int8 input and output (the int8 mode "
                f"of quantize.mode does)")
        raise TargetMismatchError(
            f"{name} is a {dtype} model but {target.id} needs {target.model_dtype}; convert "
            f"with quantize.mode = \"{target.model_dtype}\"")
    ops = dict(info.op_counts)
    if target.runtime == "litert":
        from edgeprune.runners.host import RunnerError, peak_memory_bytes

        try:
            peak = peak_memory_bytes(data, target.kernels)
        except RunnerError as exc:
            raise TargetMismatchError(f"LiteRT cannot run {name} on {target.id}: {exc}"
                                      ) from None
        measured = None
        if target.latency.measure:
            from edgeprune.runners.host import measure_latency

            measured = measure_latency(data, target.kernels, target.latency.threads,
                                       runs=target.latency.runs)
        return rules.Evidence(path, len(data), dtype, ops, peak_memory_bytes=peak,
                              latency=estimate_latency(model_cost(info), target, cost_model),
                              latency_measured=measured)
    from edgeprune.firmware import emit as firmware
    from edgeprune.tflm import probe as micro

    ensure_runs_on_tflm(data, info, name, target)
    arena = micro.find_arena(data)
    required = arena.required_bytes()
    flash = footprint.runtime_flash(target.core, target.kernels,
                                    firmware.int8_only_registrations(info))
    return rules.Evidence(
        path, len(data), dtype, ops, ops_supported=True,
        arena_min_bytes=arena.min_arena_bytes, arena_recorded_bytes=arena.recorded_bytes,
        arena_bytes=target.arena_margin.apply(required),
        runtime_flash_bytes=flash.total_bytes, runtime_flash_basis=flash.basis,
        runtime_ram_bytes=footprint.STATIC_RAM_BYTES,
        latency=estimate_latency(model_cost(info), target, cost_model))


def ensure_runs_on_tflm(data: bytes, info, name: str, target: Target) -> None:
    """Load ``data`` in TFLite Micro and make sure firmware can register its ops.

    Raises:
        TargetMismatchError: TFLite Micro lacks an op or a kernel for its dtype
            (every one named with its operator index and layer), or the op
            resolver cannot register an op (custom ops).
    """
    from edgeprune.errors import UnsupportedModelError
    from edgeprune.firmware import emit as firmware
    from edgeprune.tflm import probe as micro

    support = micro.check_ops(data)
    if not support.supported:
        where = "; ".join(
            f"{u.opcode} at operator {u.operator_index}"
            + (f" (layer {u.layer})" if u.layer else "") + (f": {u.reason}" if u.reason else "")
            for u in support.unsupported)
        raise TargetMismatchError(f"TFLite Micro cannot run {name} on {target.id}: {where}; "
                                  f"replace those layers or choose a Linux target")
    try:
        firmware.resolver_calls(info)
    except UnsupportedModelError as exc:
        raise TargetMismatchError(f"{name} on {target.id}: {exc}") from None


def check(path: str, target: Target, budget: Budget | None = None,
          cost_model: str | None = None) -> rules.CheckResult:
    """Gather the evidence for ``path`` on ``target`` and apply every rule."""
    evidence = gather_evidence(path, target, cost_model)
    result = rules.evaluate(evidence, target, budget)
    log.info("check: %s on %s: %s", os.path.basename(path), target.id,
             "pass" if result.ok else "FAIL")
    return result


def check_options(path: str, target: Target, options) -> rules.CheckResult:
    """:func:`check` under a recipe's ``[budget]`` (:class:`~edgeprune.recipe.BudgetOptions`):
    its overrides of the target's budgets and its cost model together, so that no
    caller applies one without the other."""
    from dataclasses import asdict

    return check(path, target, effective_budget(target, asdict(options)), options.cost_model)
