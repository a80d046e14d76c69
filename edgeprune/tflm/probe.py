"""TFLite Micro on this host: which ops it runs, the smallest arena, and its outputs.

This module measures with TFLite Micro, yet it never imports
``tflite_micro``: TFLM can abort or segfault its whole process on a damaged
model or a too-small arena (sizes just under the minimum do segfault), so
every load runs in a worker process (``python -m edgeprune.tflm.worker``)
that is restarted when it dies (:mod:`edgeprune.tflm.client`). Models go to the
worker as a temporary file, answers come back as JSON lines, and TFLM's own
messages (which it writes to stderr from C++) are read from the worker's stderr
and quoted in results and errors.

What a host measurement does not prove: this is TFLM's Python interpreter on
a 64-bit host with reference kernels and the recording allocator. Its
bookkeeping structs hold 64-bit pointers and the recording allocator keeps a
few hundred bytes more than the plain one, while optimized kernels (CMSIS-NN)
ask for scratch buffers these kernels do not: the arena a 32-bit device needs
is computed from this one by :mod:`edgeprune.estimates.device_arena`. Outputs
are not bit-exact with LiteRT (1-8 LSB apart on int8 models).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

import numpy as np

from edgeprune import progress
from edgeprune.errors import DataError, EdgepruneError
from edgeprune.tflite.names import keras_layer
from edgeprune.tflm.client import REQUEST_TIMEOUT_S, Worker

__all__ = [
    "ArenaResult",
    "MicroError",
    "OpSupport",
    "UnsupportedOp",
    "check_ops",
    "find_arena",
    "run",
]

logger = logging.getLogger(__name__)

# An arena big enough that only a missing or unsupported op can make loading
# fail: the worker's malloc is lazy, so a large arena costs no time.
_GENEROUS_ARENA_BYTES = 64 * 1024 * 1024
_ARENA_PER_MODEL_BYTE = 50
_ARENA_CAP_BYTES = 1024 * 1024 * 1024
# A probe of one arena size may take this many times the first probe's time
# (at least _MIN_PROBE_TIMEOUT_S) before it counts as hung, i.e. too small.
_PROBE_TIMEOUT_FACTOR = 20.0
_MIN_PROBE_TIMEOUT_S = 10.0
_MAX_ARENA_TRIES = 100

_FAILED_NODE = re.compile(r"Node (\S+) \(number (\d+)\) failed to (prepare|invoke)")
_MISSING_OP = re.compile(r"Didn't find op for builtin opcode '([^']+)'")


class MicroError(EdgepruneError, RuntimeError):
    """TFLite Micro could not load or run the model; the message says what and the fix."""


@dataclass(frozen=True)
class UnsupportedOp:
    """One operator TFLite Micro cannot run.

    ``output_tensor`` is the name of the operator's first output; the
    converter names it after the Keras layer (``"digits_cnn/fc1/MatMul"``).
    ``layer`` is the top-level Keras layer read from it, best effort
    (``"fc1"``; ``""`` when the name holds none, as the model's final output
    is renamed ``"StatefulPartitionedCall:0"``). ``operator_index`` counts within ``subgraph``.
    ``reason`` is TFLM's own message for this operator, one line.
    """

    opcode: str
    operator_index: int
    output_tensor: str
    layer: str = ""
    subgraph: int = 0
    reason: str = ""


@dataclass(frozen=True)
class OpSupport:
    """Whether TFLite Micro loads and runs a model, and which operators it cannot.

    ``ops`` maps each opcode to its count. ``message`` is TFLM's own message
    for the whole model, one line (``""`` when supported). A model can be
    unsupported with an empty ``unsupported`` when no single operator is to
    blame (even the generous arena was too small, or a failure that needs the
    model's real data flow); ``message`` then says why.
    """

    supported: bool
    ops: dict[str, int]
    unsupported: tuple[UnsupportedOp, ...] = ()
    message: str = ""


@dataclass(frozen=True)
class ArenaResult:
    """The smallest tensor arena TFLite Micro runs the model with, found by trying sizes.

    ``min_arena_bytes`` is a multiple of ``step``: with it, allocation and one
    invoke on seeded random inputs succeed; with ``min_arena_bytes - step``
    they did not. ``recorded_bytes`` is what TFLM's recording allocator
    reported as its total arena use at ``min_arena_bytes`` (None when it
    printed nothing). ``tries`` counts the sizes tried, ``seconds`` the wall
    time of the search.
    """

    min_arena_bytes: int
    recorded_bytes: int | None
    tries: int
    step: int
    seconds: float

    def required_bytes(self) -> int:
        """The arena to provision: the larger of what worked and what TFLM recorded."""
        return max(self.min_arena_bytes, self.recorded_bytes or 0)


def check_ops(model: bytes) -> OpSupport:
    """Check that TFLite Micro can register, prepare and invoke every operator of ``model``.

    Loads the model in a worker process with a generous arena (64 MiB, or 50
    times the model size up to 1 GiB) and invokes it once on seeded random
    inputs. If that fails, each operator is then loaded alone (cut out with
    its own tensors, zero inputs) so that every missing op and every op whose
    kernel rejects its tensor types is listed, not only the first one TFLM
    stops at. Starts worker processes; writes and removes temporary files.

    Raises:
        MicroError: the model is not a valid TFLite flatbuffer.
        TFLiteInvalidError: it parses but breaks a rule of the format
            (:mod:`edgeprune.tflite.verify`); TFLite Micro never sees it.
    """
    info = _inspect(model)
    ops = dict(info.op_counts)
    arena_bytes = min(
        max(_GENEROUS_ARENA_BYTES, len(model) * _ARENA_PER_MODEL_BYTE), _ARENA_CAP_BYTES
    )
    tensors = {(t.subgraph, t.index): t for t in info.tensors}
    with Worker(model) as worker:
        whole = worker.request(
            {
                "cmd": "probe",
                "arena_bytes": arena_bytes,
                "invoke": True,
                "inputs": "random",
                "seed": 0,
            }
        )
        if whole.ok:
            return OpSupport(supported=True, ops=ops)
        _refuse_unverified(whole)
        message = whole.message
        logger.debug("TFLite Micro cannot run the model: %s", message)
        found: dict[tuple[int, int], UnsupportedOp] = {}

        def unsupported(op, reason: str) -> UnsupportedOp:
            name = tensors[op.subgraph, op.outputs[0]].name if op.outputs else ""
            return UnsupportedOp(
                opcode=op.opcode,
                operator_index=op.index,
                output_tensor=name,
                layer=keras_layer(name),
                subgraph=op.subgraph,
                reason=reason,
            )

        for op in info.operators:
            alone = worker.request(
                {
                    "cmd": "op",
                    "subgraph": op.subgraph,
                    "operator": op.index,
                    "arena_bytes": arena_bytes,
                }
            )
            if not alone.ok and alone.stage != "model":
                # Alone, the operator is node 0; name it by its index in the model.
                reason = alone.message.replace(
                    f"Node {op.opcode} (number 0)", f"Node {op.opcode} (number {op.index})"
                )
                found[op.subgraph, op.index] = unsupported(op, reason)
            elif alone.stage == "model":
                logger.debug("operator %d could not be cut out: %s", op.index, alone.error)
        # The whole model's own failure names one operator; keep it even if
        # that operator runs alone (its failure may need the model's data).
        node = _FAILED_NODE.search(message)
        if node is not None:
            index = int(node.group(2))
            op = next((o for o in info.operators if o.subgraph == 0 and o.index == index), None)
            if op is not None and op.opcode == node.group(1):
                found.setdefault((0, index), unsupported(op, message))
        missing = set(_MISSING_OP.findall(message))
        for op in info.operators:
            if op.opcode in missing:
                found.setdefault((op.subgraph, op.index), unsupported(op, message))
    listed = tuple(found[k] for k in sorted(found))
    return OpSupport(supported=False, ops=ops, unsupported=listed, message=message)


def find_arena(
    model: bytes,
    *,
    step: int = 16,
    max_bytes: int = 64 * 1024 * 1024,
    alt_decompression_bytes: int = 0,
) -> ArenaResult:
    """Find the smallest tensor arena (a multiple of ``step``) TFLite Micro runs ``model`` with.

    With ``alt_decompression_bytes``, DECODE operators write the tensors they
    decode to a separate block of that size (TFLite Micro's alternate
    decompression memory) instead of the arena.

    Each size is tried in a worker process: load (allocate tensors), one
    invoke on seeded random inputs, then TFLM's ``print_allocations()``. The
    first try is the largest multiple of ``step`` up to ``max_bytes``; the
    total TFLM records there is the next guess, then the search moves in
    doubling steps from it and bisects. A size at which TFLM fails, aborts,
    crashes or hangs counts as too small (a crashed worker is restarted).
    Three tries when TFLM's recorded total is the minimum, about a dozen when
    it under-reports; well under a second for small models. Starts worker
    processes; writes and removes temporary files.

    Raises:
        ValueError: ``step`` is not positive or ``max_bytes`` is below it.
        TFLiteInvalidError: as :func:`check_ops`.
        MicroError: the model is not a valid TFLite flatbuffer, or TFLM fails
            even with ``max_bytes`` (the message quotes TFLM), or the search
            did not converge within its try limit.
    """
    if step < 1 or max_bytes < step:
        raise ValueError(f"need 1 <= step <= max_bytes, got step={step}, max_bytes={max_bytes}")
    _inspect(model)
    start = time.monotonic()
    top = max_bytes // step * step
    recorded: dict[int, int | None] = {}
    timeout_s = REQUEST_TIMEOUT_S

    with (
        Worker(model) as worker,
        progress.task("arena search", unit="try", log_every_s=progress.FAST_STEPS_S) as bar,
    ):

        def works(size: int) -> bool:
            if len(recorded) >= _MAX_ARENA_TRIES:
                raise MicroError(
                    f"the arena search did not converge in {_MAX_ARENA_TRIES} "
                    f"tries; TFLM's results depend on more than the arena size"
                )
            reply = worker.request(
                {
                    "cmd": "probe",
                    "arena_bytes": size,
                    "invoke": True,
                    "inputs": "random",
                    "seed": 0,
                    "record": True,
                    "alt_decompression_bytes": int(alt_decompression_bytes),
                },
                timeout_s,
            )
            _refuse_unverified(reply)
            recorded[size] = reply.recorded_bytes if reply.ok else None
            bar.advance(status=f"{size:,} B {'runs' if reply.ok else 'too small'}")
            logger.debug("arena %d bytes: %s", size, "ok" if reply.ok else reply.message)
            if not reply.ok and size == top:
                raise MicroError(
                    f"TFLite Micro cannot run the model even with a {top:,}-byte "
                    f"arena: {reply.message}; check the ops with check_ops(), or "
                    f"allow a larger max_bytes"
                )
            return reply.ok

        first = time.monotonic()
        works(top)
        timeout_s = max(_MIN_PROBE_TIMEOUT_S, _PROBE_TIMEOUT_FACTOR * (time.monotonic() - first))
        lo, hi = 0, top  # lo fails (0 trivially), hi works
        hint = recorded[top]
        if hint:
            guess = -(-hint // step) * step
            if guess < hi:
                if works(guess):
                    hi = guess
                    distance = step  # walk down in doubling steps until a size fails
                    while hi - distance > lo:
                        if not works(hi - distance):
                            lo = hi - distance
                            break
                        hi -= distance
                        distance *= 2
                else:
                    lo = guess
                    distance = step  # walk up in doubling steps until a size works
                    while lo + distance < hi:
                        if works(lo + distance):
                            hi = lo + distance
                            break
                        lo += distance
                        distance *= 2
        while hi - lo > step:
            middle = lo + (hi - lo) // step // 2 * step
            if works(middle):
                hi = middle
            else:
                lo = middle
    result = ArenaResult(
        min_arena_bytes=hi,
        recorded_bytes=recorded[hi],
        tries=len(recorded),
        step=step,
        seconds=time.monotonic() - start,
    )
    logger.info(
        "smallest arena %d bytes (TFLM recorded %s) after %d tries in %.2f s",
        hi,
        result.recorded_bytes,
        result.tries,
        result.seconds,
    )
    return result


def run(
    model: bytes, x: np.ndarray, arena_bytes: int, *, timeout_s: float | None = None
) -> np.ndarray:
    """Run float32 samples ``x`` (first axis is the batch) through TFLite Micro.

    In one worker process: inputs are quantized with the input tensor's scale
    and zero point (int8 models), each sample is one invoke (or one batch, if
    the model's batch dimension is larger), outputs of output 0 are
    dequantized. Returns float32 outputs, one row per sample. ``timeout_s``
    defaults to 60 s plus 10 ms a sample. Starts a worker process; writes and
    removes temporary files.

    Raises:
        DataError: ``x`` has no batch axis or its samples do not fit the
            model's input shape.
        TFLiteInvalidError: as :func:`check_ops`.
        MicroError: the model is not a valid TFLite flatbuffer, or TFLM could
            not load or run it with ``arena_bytes`` (failed, crashed or timed
            out; the message quotes TFLM).
    """
    return run_detailed(model, x, arena_bytes, timeout_s=timeout_s).outputs


@dataclass(frozen=True)
class MicroRun:
    """What :func:`run_detailed` brings back from TFLite Micro."""

    outputs: np.ndarray  # float32, dequantized, one row per sample
    raw: np.ndarray  # output 0 as TFLM left it (int8 for an integer model)
    times_ms: np.ndarray  # host wall time of each invoke (reference kernels, this CPU)


def run_detailed(
    model: bytes,
    x: np.ndarray,
    arena_bytes: int,
    *,
    timeout_s: float | None = None,
    alt_decompression_bytes: int = 0,
) -> MicroRun:
    """:func:`run`, also returning the raw output tensor and each invoke's time
    (``alt_decompression_bytes`` as in :func:`find_arena`)."""
    info = _inspect(model)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 1:
        raise DataError("run() needs samples along a first (batch) axis, got a scalar")
    if info.inputs:
        shape = info.inputs[0].shape
        batch = shape[0] if len(shape) > 1 else 1
        want = int(np.prod(shape, dtype=np.int64))
        if want != batch * int(np.prod(x.shape[1:], dtype=np.int64)):
            raise DataError(
                f"samples of shape {x.shape[1:]} do not fit the model's input "
                f"of shape {shape}; reshape the data to the model's input"
            )
    if timeout_s is None:
        timeout_s = REQUEST_TIMEOUT_S + 0.01 * len(x)
    with Worker(model) as worker:
        paths = {k: worker.directory / f"{k}.npy" for k in ("x", "y", "raw", "times")}
        np.save(paths["x"], x)
        reply = worker.request(
            {
                "cmd": "run",
                "arena_bytes": int(arena_bytes),
                "alt_decompression_bytes": int(alt_decompression_bytes),
                **{k: str(p) for k, p in paths.items()},
            },
            timeout_s,
        )
        _refuse_unverified(reply)
        if not reply.ok:
            raise MicroError(
                f"TFLite Micro could not run the model with a {arena_bytes:,}-byte "
                f"arena: {reply.message}; find the arena with find_arena() and "
                f"the ops with check_ops()"
            )
        return MicroRun(
            np.load(paths["y"]).astype(np.float32), np.load(paths["raw"]), np.load(paths["times"])
        )


def _inspect(model: bytes):
    from edgeprune.tflite import TFLiteFormatError, TFLiteInvalidError, inspect_model

    if not isinstance(model, bytes | bytearray | memoryview):
        raise TypeError(f"model must be the .tflite file's bytes, not {type(model).__name__}")
    try:
        return inspect_model(bytes(model))
    except TFLiteInvalidError:
        raise  # parsed but breaks a rule: its message names the rule and the fix
    except TFLiteFormatError as exc:
        raise MicroError(
            f"TFLite Micro cannot load {exc}; pass a complete .tflite file (re-run the conversion)"
        ) from exc


def _refuse_unverified(reply) -> None:
    """Raise when the worker's flatbuffer verifier (LiteRT's) refused the model."""
    if reply.stage == "verify":
        from edgeprune.tflite import TFLiteInvalidError
        from edgeprune.tflite.verify import FIX

        raise TFLiteInvalidError(
            f"LiteRT's flatbuffer verifier refuses the model ({reply.error}); {FIX}"
        )
