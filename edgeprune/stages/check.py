"""Does a ``.tflite`` model fit a device? Measure the evidence, apply the rules.

For a TFLite Micro target: the model is loaded in TFLite Micro (in a worker
process) to prove every op and dtype is supported, the smallest working arena
is searched, and the runtime's flash comes from the measured table in
:mod:`edgeprune.estimates.footprint`. In a run, the quantize stage hands on the
arena it found for the final bytes, and neither search runs again (see
:func:`evidence`). For a Linux target: the file size and the peak memory of the
LiteRT interpreter measured on this host.

The preconditions of :mod:`edgeprune.rules.budget` come first: a model whose
dtype the target cannot run, or whose ops the runtime lacks, is refused as bad
input (exit 1, one line naming the ops) before anything is measured or
emitted; the preconditions that held are kept in the result. The budget rules
then decide pass or fail (exit 3).
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, replace

from edgeprune.artifacts import Flatbuffer, read_flatbuffer
from edgeprune.errors import BadInputError, InvalidModelError
from edgeprune.estimates import decode_cost, footprint
from edgeprune.estimates.device_arena import device_arena
from edgeprune.estimates.latency import estimate_latency
from edgeprune.estimates.opcost import model_cost
from edgeprune.recipe_options import BudgetOptions
from edgeprune.rules import alt_memory
from edgeprune.rules import budget as rules
from edgeprune.target import Budget, Target

log = logging.getLogger(__name__)


class TargetMismatchError(BadInputError):
    """The model cannot run on the target at all (dtype, missing ops)."""


_FLOATS = frozenset({"float32", "float16", "float64", "bfloat16"})


def _live_float_tensors(info) -> list:
    """Float tensors that hold at least one element and that an operator reads or
    writes or the model takes or gives. The converter leaves empty float
    placeholders in integer models (the ``input_to_*_intermediate`` tensors of an
    int8 LSTM, shape [0], which no kernel reads): they make no model float."""
    referenced = {(t.subgraph, t.index) for t in (*info.inputs, *info.outputs)}
    for op in info.operators:
        referenced.update((op.subgraph, t) for t in (*op.inputs, *op.outputs) if t >= 0)
    return [
        t
        for t in info.tensors
        if t.dtype in _FLOATS and t.elements > 0 and (t.subgraph, t.index) in referenced
    ]


def model_dtype(info) -> str:
    """``int8`` for an integer-only model (no floating-point tensor in use; int16
    and int32 tensors, as in TFLM's audio front end, are integer too, and empty or
    unreferenced float tensors do not count), ``float32`` when no weight is int8,
    otherwise ``mixed`` (e.g. dynamic-range: int8 weights with float activations)."""
    if not _live_float_tensors(info):
        return "int8"
    if not any(w.dtype == "int8" for w in info.weights.per_tensor):
        return "float32"
    return "mixed"


def hybrid(info) -> bool:
    """Whether an operator other than (DE)QUANTIZE reads a float tensor in use and an
    int8 one: float activations with int8 weights (dynamic range), which TFLite Micro
    has no kernels for; a float interface around an int8 model only converts."""
    return _hybrid_op(info) is not None


def _reads(op) -> list[tuple[int, int]]:
    return [(op.subgraph, i) for i in op.inputs if i >= 0]


def _hybrid_op(info):
    live = {(t.subgraph, t.index) for t in _live_float_tensors(info)}
    dtypes = {(t.subgraph, t.index): t.dtype for t in info.tensors}
    for op in info.operators:
        if op.opcode in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if any(k in live for k in _reads(op)) and any(dtypes[k] == "int8" for k in _reads(op)):
            return op
    return None


def first_float(info) -> str:
    """The first float tensor in use in ``info`` (in a hybrid model, the first one an
    operator reads with int8 weights) and who uses it, for messages
    (``""`` when there is none): ``"float32 tensor 7 ('dense/BiasAdd') read by
    FULLY_CONNECTED at operator 3"``."""
    live = _live_float_tensors(info)
    if not live:
        return ""
    hybrid_op = _hybrid_op(info)
    if hybrid_op is not None:
        t = next(x for x in live if (x.subgraph, x.index) in _reads(hybrid_op))
        return f"{t.dtype} tensor {t.index} ({t.name!r}) read by {hybrid_op.opcode} at " + (
            f"operator {hybrid_op.index} beside an int8 input"
        )
    t = live[0]
    text = f"{t.dtype} tensor {t.index} ({t.name!r})"
    for op in info.operators:
        if op.subgraph != t.subgraph:
            continue
        if t.index in op.inputs or t.index in op.outputs:
            how = "read" if t.index in op.inputs else "written"
            return f"{text} {how} by {op.opcode} at operator {op.index}"
    return f"{text}, a model {'input' if t in info.inputs else 'output'}"


def effective_budget(target: Target, overrides: dict | None) -> Budget:
    """The target's budget with any non-None ``overrides`` (recipe or flags)."""
    fields = set(Budget.__dataclass_fields__)
    changes = {k: v for k, v in (overrides or {}).items() if v is not None and k in fields}
    return replace(target.budget, **changes)


def support(model: Flatbuffer, target: Target, arena=None) -> tuple[rules.Support, int | None]:
    """Try ``model`` on ``target``'s runtime: what the preconditions judge, and on a
    Linux target the peak memory the try measured (None on TFLite Micro).

    On TFLite Micro the model is loaded and invoked in a worker (every op it
    lacks is named) unless ``arena`` was found for these very bytes: that search
    loaded and invoked the model on the same seeded inputs, which is what the op
    check proves. Whether the firmware can register every op is checked either
    way. On LiteRT the try is the peak-memory run itself: one fresh process
    proves the model runs and measures what it takes.

    Raises:
        MicroError: TFLite Micro's worker could not read the model.
    """
    info = model.info
    fits_ram(model.name, info, target)
    float_io = any(t.dtype == "float32" for t in (*info.inputs, *info.outputs))
    facts = rules.Support(
        model.name,
        model_dtype(info),
        float_io,
        dict(info.op_counts),
        first_float=first_float(info),
        npu_ops=npu_operators(info),
        hybrid=hybrid(info),
    )
    if facts.npu_ops:
        # Neither TFLite Micro nor LiteRT on this host runs an NPU's command
        # stream: the ops precondition refuses it with what to check instead.
        return facts, None
    if target.runtime == "litert":
        from edgeprune.runners.host import RunnerError, peak_memory_bytes

        try:
            return facts, peak_memory_bytes(model.data, target.kernels)
        except RunnerError as exc:
            return replace(facts, unsupported=(str(exc),)), None
    if arena is None:
        from edgeprune.tflm import probe as micro

        try:
            found = micro.check_ops(model.data)
        except InvalidModelError as exc:  # the worker's flatbuffer verifier refused it
            raise InvalidModelError(f"{model.path}: {exc}") from None
        unsupported = tuple(
            f"{u.opcode} at operator {u.operator_index}"
            + (f" (layer {u.layer})" if u.layer else "")
            + (f": {u.reason}" if u.reason else "")
            for u in found.unsupported
        )
        if not found.supported and not unsupported:
            # No single operator to blame (a crash, an arena too small): the
            # model's own failure is the reason, never an empty one.
            unsupported = (f"the whole model: {found.message or 'failed without a message'}",)
        facts = replace(facts, unsupported=unsupported)
    from edgeprune.errors import UnsupportedModelError
    from edgeprune.firmware import emit as firmware

    try:
        firmware.resolver_calls(info)
    except UnsupportedModelError as exc:
        facts = replace(facts, unregistered=str(exc))
    return facts, None


def npu_operators(info) -> tuple[str, ...]:
    """The operators Vela compiled for an Ethos-U NPU (``"ethos-u at operator 0"``)."""
    from edgeprune.firmware.resolver import ETHOS_U_OP

    return tuple(
        f"{op.opcode.removeprefix('CUSTOM:')} at operator {op.index}"
        + (f" of subgraph {op.subgraph}" if op.subgraph else "")
        for op in info.operators
        if op.opcode == ETHOS_U_OP
    )


def fits_ram(name: str, info, target: Target) -> None:
    """Refuse a model one of whose activations alone is larger than the target's RAM,
    before any runtime allocates it (a damaged or absurd shape, or a model for
    another class of device).

    Raises:
        TargetMismatchError: naming the tensor, its size and the RAM.
    """
    largest = max((t for t in info.tensors if not t.is_constant), key=lambda t: t.nbytes)
    if largest.nbytes > target.ram_bytes:
        raise TargetMismatchError(
            f"{name}: tensor {largest.index} ({largest.name!r}) of shape {list(largest.shape)} "
            f"alone needs {largest.nbytes:,} bytes, more than the {target.ram_bytes:,} bytes "
            f"of RAM of {target.id}; shrink the model's input or choose a larger target"
        )


def require(facts: rules.Support, target: Target) -> tuple[rules.RuleResult, ...]:
    """Judge :data:`~edgeprune.rules.budget.PRECONDITIONS` in order; return them all
    when they hold.

    Raises:
        TargetMismatchError: the first that fails, with its evidence as the message.
    """
    held = []
    for precondition in rules.PRECONDITIONS:
        result = precondition(facts, target)
        if not result.ok:
            raise TargetMismatchError(result.evidence)
        held.append(result)
    return tuple(held)


def evidence(
    model: Flatbuffer,
    target: Target,
    cost_model: str | None = None,
    arena=None,
    peak_memory_bytes: int | None = None,
    force_cost_model: bool = False,
) -> rules.Evidence:
    """Measure everything the budget rules need for ``model`` (in memory) on ``target``,
    whose preconditions (:func:`require`) held.

    ``arena`` is the :class:`~edgeprune.tflm.probe.ArenaResult` already found for
    these very bytes (the quantize stage's), or None to search it here; it is
    searched again, with the decoded weights outside it, for a compressed model
    on a target with alternate decompression memory (:func:`decoded_memory`);
    ``peak_memory_bytes`` is what :func:`support` measured on a Linux target.

    Raises:
        MicroError: TFLite Micro could not allocate the model at any size.
        CostModelError: the cost model is unknown or invalid, or (not
            ``force_cost_model``) for another core or kernel library.
    """
    data, info = model.data, model.info
    latency = decode_cost.with_decoding(
        estimate_latency(_without_decode(model_cost(info)), target, cost_model, force_cost_model),
        data,
        info,
        target,
    )
    head = (model.path, len(data), model_dtype(info), dict(info.op_counts), latency)
    if target.runtime == "litert":
        measured = None
        if target.latency.measure:
            from edgeprune.runners.host import measure_latency

            measured = measure_latency(
                data, target.kernels, target.latency.threads, runs=target.latency.runs
            )
        return rules.Evidence(*head, peak_memory_bytes=peak_memory_bytes, latency_measured=measured)
    from edgeprune.firmware import emit as firmware
    from edgeprune.tflm import probe as micro

    registrations = firmware.int8_only_registrations(info)
    uses_decode = registrations.pop(decode_cost.DECODE_OPCODE, None) is not None
    decoded, block = decoded_memory(data, target) if uses_decode else (0, 0)
    if arena is None or block:  # an arena handed on was found with decoded tensors in it
        arena = micro.find_arena(data, alt_decompression_bytes=block)
    flash = footprint.runtime_flash(target.core, target.kernels, registrations)
    decode = decode_cost.decode_flash(target.core, target.kernels, uses_decode)
    device = device_arena(info, arena.required_bytes(), target)
    return rules.Evidence(
        *head,
        arena_min_bytes=arena.min_arena_bytes,
        arena_recorded_bytes=arena.recorded_bytes,
        arena_bytes=device.bytes,
        arena_basis=device.basis,
        runtime_flash_bytes=flash.total_bytes,
        runtime_flash_basis=flash.basis,
        runtime_ram_bytes=footprint.STATIC_RAM_BYTES,
        decode_flash_bytes=decode.bytes,
        decode_flash_basis=decode.basis,
        decoded_bytes=decoded,
        alt_decompression_bytes=block,
        decoded_where=alt_memory.decoded_where(target, decoded, block),
    )


def decoded_memory(data: bytes, target: Target) -> tuple[int, int]:
    """``(needed, block)``: the most one DECODE of the model ``data`` decodes at
    once, and the alternate decompression block ``target`` gives it (0 without
    ``[alt_decompression]``; at most the region's size). Pure."""
    from edgeprune.compress.verification import alt_decompression_bytes

    needed = alt_decompression_bytes(data)
    alt = target.alt_decompression
    return needed, alt.block_bytes(needed) if alt is not None else 0


def _without_decode(cost):
    """``cost`` without its DECODE operators: their time is estimated per decoded
    byte (:func:`decode_cost.with_decoding`), not as the element-wise guess."""
    return replace(cost, ops=tuple(o for o in cost.ops if o.opcode != decode_cost.DECODE_OPCODE))


def ensure_runs_on_tflm(data: bytes, info, name: str, target: Target) -> None:
    """Load ``data`` in TFLite Micro and make sure firmware can register its ops
    (the preconditions, judged on bytes not yet written).

    Raises:
        TargetMismatchError: TFLite Micro lacks an op or a kernel for its dtype
            (every one named with its operator index and layer), or the op
            resolver cannot register an op (custom ops).
    """
    require(support(Flatbuffer.of(data, name, "", info), target)[0], target)


def _apply(
    ev: rules.Evidence, target: Target, budget: Budget, held: tuple[rules.RuleResult, ...]
) -> rules.CheckResult:
    result = rules.evaluate(ev, target, budget, held)
    log.info(
        "check: %s on %s: %s",
        os.path.basename(ev.model_path),
        target.id,
        "pass" if result.ok else "FAIL",
    )
    return result


def check_flatbuffer(
    model: Flatbuffer, target: Target, options: BudgetOptions | None = None, arena=None
) -> rules.CheckResult:
    """Check ``model`` (in memory) against ``target`` under a recipe's ``[budget]``
    (:class:`~edgeprune.recipe_options.BudgetOptions`): its overrides of the target's
    budgets and its cost model together, so that no caller applies one without
    the other. The preconditions are judged first (:func:`support`,
    :func:`require`), then the evidence is measured (:func:`evidence`, where
    ``arena`` is described) and the budget rules applied.

    Raises:
        TargetMismatchError: a precondition failed (:func:`require`).
        MicroError, CostModelError: as :func:`evidence`.
    """
    options = options or BudgetOptions()
    facts, peak = support(model, target, arena)
    held = require(facts, target)
    ev = evidence(model, target, options.cost_model, arena, peak, options.force_cost_model)
    return _apply(ev, target, effective_budget(target, asdict(options)), held)


def check_options(path: str, target: Target, options: BudgetOptions) -> rules.CheckResult:
    """:func:`check_flatbuffer` on the file at ``path``."""
    return check_flatbuffer(read_flatbuffer(path), target, options)


def check_model(
    model_path: str,
    target: str | Target,
    options: BudgetOptions | None = None,
    report_path: str | None = None,
    max_model_bytes: int | None = None,
) -> rules.CheckResult:
    """Does the ``.tflite`` at ``model_path`` fit ``target`` (a profile id, path or
    :class:`Target`) under the ``[budget]`` ``options``? What ``edgeprune check`` does.

    With ``report_path``, the result is also written there as JSON
    (:class:`edgeprune.report.CheckReport`, atomic, schema-versioned), pass or fail.
    A model file over ``max_model_bytes`` (default 64 MiB) is refused unread. A
    DECODE-compressed model on a LiteRT target, which LiteRT cannot run, is
    replaced by the uncompressed model of its run folder where there is one
    (:func:`~edgeprune.stages.run_models.litert_stand_in`: a warning says so, and
    the result names that file); alone, it is refused by the ops precondition.

    Raises:
        BadInputError: unreadable model, unknown profile, a report path that
            cannot be written (before anything is measured), or a model the
            target cannot run at all (:class:`TargetMismatchError`).
        BudgetError: (after writing the report) a budget rule failed; its
            ``result`` is the :class:`~edgeprune.rules.budget.CheckResult`.
    """
    from edgeprune import report, run_folder
    from edgeprune.artifacts import check_out_dir
    from edgeprune.errors import BudgetError
    from edgeprune.target import load_target

    device = target if isinstance(target, Target) else load_target(target)
    if report_path is not None:
        check_out_dir(os.path.dirname(os.path.abspath(report_path)))
        run_folder.ensure_free(os.path.dirname(os.path.abspath(report_path)))
    model = read_flatbuffer(model_path, max_model_bytes)
    if device.runtime == "litert" and decode_cost.DECODE_OPCODE in model.info.op_counts:
        from edgeprune.stages.run_models import litert_stand_in

        stand_in = litert_stand_in(model_path, device.id)
        if stand_in is not None:
            log.warning("check: %s", stand_in[1])
            model_path = stand_in[0]
            model = read_flatbuffer(model_path, max_model_bytes)
    result = check_flatbuffer(model, device, options)
    if report_path is not None:
        os.makedirs(os.path.dirname(os.path.abspath(report_path)), exist_ok=True)
        report.write(
            report_path,
            report.CheckReport(
                os.path.abspath(model_path),
                model.sha256,
                device.to_dict(),
                report.CheckEntry.from_dict(result.to_dict()),
            ),
        )
    if not result.ok:
        failed = ", ".join(r.name for r in result.rules if not r.ok)
        raise BudgetError(f"{model_path} does not fit {device.id}: {failed} over budget", result)
    return result
