"""The tensor arena a 32-bit device needs, computed from the arena this host measured.

The host finds the smallest arena with the tflite-micro Python package
(:func:`edgeprune.tflm.probe.find_arena`): 64-bit pointers, the recording
allocator and reference kernels. A Cortex-M build differs in two ways, and
this module accounts for both from the model's flatbuffer alone:

* **Persistent structures are smaller.** The arena's tail holds a
  ``TfLiteEvalTensor`` per tensor, a ``NodeAndRegistration`` per operator, a
  ``TfLiteTensor`` (and its quantization struct) per model input and output,
  and the allocator objects; each is made of pointers, so it shrinks on a
  32-bit core (sizes in ``targets/footprint/arena.toml``). The operators' own
  data (per-channel multipliers, kernel parameters) is kept at the host's
  size: a bound, since it too holds a few pointers.
* **CMSIS-NN kernels ask for scratch buffers** the reference kernels do not
  (im2col for CONV_2D, DEPTHWISE_CONV_2D's and AVERAGE_POOL_2D's buffers) and,
  on Helium cores, keep FULLY_CONNECTED's kernel sums in the tail. The sizes
  follow CMSIS-NN 4ab83cc's ``*_get_buffer_size`` functions for the core's
  extension (:func:`kernel_buffers`). A scratch buffer lives only while its
  operator runs; the non-persistent part therefore grows by at most the
  largest one operator asks for.

The result is an upper bound by construction, checked against arenas bisected
to the byte on Cortex-M4F, M7, M33 and M55 under QEMU
(``targets/footprint/arena_measured.csv``, method in
``benchmarks/firmware_check/README.md``). Kernels it has no rules for (ESP-NN;
CMSIS-NN's SVDF, LSTM, TRANSPOSE_CONV, BATCH_MATMUL and int16 or int4 paths)
keep the host's figure plus :data:`UNMODELED_MARGIN`, and the basis says so.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from importlib import resources
from typing import Any

from edgeprune._toml import read_toml
from edgeprune.errors import BadInputError

_STRUCT_KEYS = (
    "eval_tensor",
    "node_and_registration",
    "tensor",
    "affine_quantization",
    "scratch_buffer_handle",
    "allocators",
)
_EXTENSIONS = ("plain", "dsp", "mve")
# TFLite Micro aligns every arena buffer to 16 bytes (MicroArenaBufferAlignment).
_ALIGN = 16
# CMSIS-NN's CH_IN_BLOCK_MVE: the channels one Helium depthwise pass keeps.
_CH_IN_BLOCK_MVE = 124
# Operators whose CMSIS-NN kernels ask for buffers this module has no rule for.
_UNMODELED_CMSIS_OPS = frozenset(
    {"SVDF", "UNIDIRECTIONAL_SEQUENCE_LSTM", "TRANSPOSE_CONV", "BATCH_MATMUL"}
)
# For kernels without rules: the margin edgeprune used before it computed the
# device's arena (10 % + 1 KB), which covered every model measured so far.
UNMODELED_MARGIN = (0.10, 1024)


class ArenaTableError(BadInputError):
    """The arena table is missing a key, has an unknown one or a bad value."""


@dataclass(frozen=True)
class ArenaTable:
    """Struct sizes per word size, and the CMSIS-NN extension of each core."""

    host64: dict[str, int]
    arm32: dict[str, int]
    extension: dict[str, str]  # core -> "plain" | "dsp" | "mve"


def arena_table_path() -> str:
    """The arena table shipped with edgeprune."""
    return str(resources.files("edgeprune.targets") / "footprint" / "arena.toml")


def parse_arena_table(data: dict, where: str) -> ArenaTable:
    """Validate parsed TOML ``data`` into an :class:`ArenaTable`.

    Raises:
        ArenaTableError: a missing or unknown key (named with its path), a size
            that is not a positive whole number, or an unknown extension.
    """

    def fail(problem: str) -> ArenaTableError:
        return ArenaTableError(
            f"arena table {where}: {problem}; fix the file "
            f"(see benchmarks/firmware_check/README.md)"
        )

    def table(key: str, value: Any, allowed: tuple[str, ...] | None) -> dict:
        if not isinstance(value, dict):
            raise fail(f"{key} must be a table")
        if allowed is not None:
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                raise fail(f"unknown key '{key}.{unknown[0]}'; allowed: {', '.join(allowed)}")
            missing = [k for k in allowed if k not in value]
            if missing:
                raise fail(f"missing key '{key}.{missing[0]}'")
        return value

    top = table("the file", data, None)
    unknown = sorted(set(top) - {"structs", "cmsis_nn_extension"})
    if unknown or "structs" not in top or "cmsis_nn_extension" not in top:
        name = (
            unknown[0] if unknown else ("structs" if "structs" not in top else "cmsis_nn_extension")
        )
        raise fail(f"unknown or missing top-level key '{name}'; need structs, cmsis_nn_extension")
    structs = table("structs", top["structs"], ("host64", "arm32"))
    sizes = {}
    for word in ("host64", "arm32"):
        sizes[word] = {}
        for key, value in table(f"structs.{word}", structs[word], _STRUCT_KEYS).items():
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise fail(f"structs.{word}.{key} = {value!r} must be a positive whole number")
            sizes[word][key] = value
    extension = {}
    for core, value in table("cmsis_nn_extension", top["cmsis_nn_extension"], None).items():
        if value not in _EXTENSIONS:
            raise fail(
                f"cmsis_nn_extension.{core} = {value!r} must be one of {', '.join(_EXTENSIONS)}"
            )
        extension[core] = value
    return ArenaTable(sizes["host64"], sizes["arm32"], extension)


def load_arena_table(path: str | os.PathLike | None = None) -> ArenaTable:
    """Read and validate an arena table (the shipped one when ``path`` is None).

    Raises:
        ArenaTableError: the file is missing, not TOML, or invalid.
    """
    where = os.fspath(path) if path is not None else arena_table_path()
    return parse_arena_table(read_toml(where, ArenaTableError, "arena table"), where)


TABLE = load_arena_table()


def _up(n: int, align: int = _ALIGN) -> int:
    return -(-n // align) * align


def _padding(size: int, filt: int, stride: int, dilation: int, same: bool) -> int:
    """TFLite Micro's ComputePaddingHeightWidth for one dimension."""
    effective = (filt - 1) * dilation + 1
    out = (size + stride - 1) // stride if same else (size + stride - effective) // stride
    return max((out - 1) * stride + effective - size, 0) // 2


@dataclass(frozen=True)
class _Conv:
    in_h: int
    in_w: int
    in_c: int
    k_h: int
    k_w: int
    out_w: int
    out_c: int
    stride_w: int
    pad_h: int
    pad_w: int
    dilated: bool


def _conv_geometry(op, tensors: dict) -> _Conv:
    o = dict(op.options)
    x = tensors[(op.subgraph, op.inputs[0])].shape
    w = tensors[(op.subgraph, op.inputs[1])].shape
    y = tensors[(op.subgraph, op.outputs[0])].shape
    same = o.get("padding", 0) == 0
    dh, dw = o.get("dilationHFactor", 1), o.get("dilationWFactor", 1)
    sh, sw = o.get("strideH", 1), o.get("strideW", 1)
    return _Conv(
        x[1], x[2], x[3], w[1], w[2], y[2], y[3], sw,
        _padding(x[1], w[1], sh, dh, same), _padding(x[2], w[2], sw, dw, same), (dh, dw) != (1, 1),
    )  # fmt: skip


def _im2col(c: _Conv, in_c: int, extension: str) -> int:
    """arm_convolve_s8_get_buffer_size: the im2col buffer of a general convolution."""
    cols = c.k_h * c.k_w * in_c
    if extension == "mve":
        return 4 * math.ceil(cols / 16) * 16
    return 2 * (-(-cols // 4) * 4) * 2


def conv_scratch(c: _Conv, extension: str) -> int:
    """arm_convolve_wrapper_s8_get_buffer_size for one int8 CONV_2D."""
    if c.pad_h == 0 and c.pad_w == 0 and c.k_h == 1 and c.k_w == 1 and not c.dilated:
        return 0  # 1x1: the fast path needs a buffer only when built with Arm Compiler
    if c.in_h == 1 and c.k_h == 1 and not c.dilated and (c.stride_w * c.in_c) % 4 == 0:
        if extension != "mve":
            return _im2col(c, c.in_c, extension)
        # arm_convolve_1_x_n_s8_get_buffer_size_mve
        total_pad = (c.out_w - 1) * c.stride_w + c.k_w - c.in_w
        asym = total_pad % 2
        right = max(1, (c.pad_w + asym + c.stride_w - 1) // c.stride_w) if c.pad_w + asym else 0
        left = max(1, (c.pad_w + c.stride_w - 1) // c.stride_w) if c.pad_w else 0
        if right + max(c.out_w - right - left, 0) + left != c.out_w:
            return _im2col(c, c.in_c, extension)
        pad_left = c.pad_w * c.in_c
        pad_right = right * c.in_c if asym else pad_left
        elems_left = c.k_w * c.in_c
        return max(elems_left + pad_left, elems_left - c.in_c + pad_right)
    return _im2col(c, c.in_c, extension)


def depthwise_scratch(c: _Conv, extension: str) -> int:
    """arm_depthwise_conv_wrapper_s8_get_buffer_size for one int8 DEPTHWISE_CONV_2D."""
    if extension == "mve" and c.in_c == 1 and c.out_c > 1:
        # converted to a regular convolution: its im2col plus the reordered weights
        return _im2col(c, 1, "mve") + c.out_c * c.k_h * c.k_w
    if c.in_c != c.out_c or c.dilated:
        return 0
    if extension == "mve":
        return 4 * _CH_IN_BLOCK_MVE * c.k_w * c.k_h
    if extension == "plain" or (c.k_h == 3 and c.k_w == 3 and c.pad_h <= 1 and c.pad_w <= 1):
        return 0
    return c.in_c * c.k_w * c.k_h * 2


@dataclass(frozen=True)
class KernelBuffers:
    """What CMSIS-NN kernels ask for beyond the reference kernels, for one model."""

    scratch: dict[int, int]  # operator index -> bytes of scratch it asks for (16-aligned)
    scratch_count: int  # scratch buffers (each needs a handle in the tail)
    persistent_bytes: int  # kept in the tail for the model's lifetime
    unmodeled: tuple[str, ...]  # operators whose buffers no rule here covers


def kernel_buffers(info, extension: str) -> KernelBuffers:
    """The scratch and persistent buffers CMSIS-NN's kernels request for ``info``
    (a :class:`~edgeprune.tflite.info.ModelInfo`) on a core with ``extension``
    (``"plain"``, ``"dsp"`` or ``"mve"``); float32 operators run TFLite Micro's
    reference kernels, which ask for none. Pure."""
    tensors = {(t.subgraph, t.index): t for t in info.tensors}
    scratch: dict[int, int] = {}
    count, persistent, unmodeled = 0, 0, set()
    for n, op in enumerate(info.operators):
        dtypes = [tensors[(op.subgraph, i)].dtype for i in op.inputs[:2] if i >= 0]
        if dtypes and all(d == "float32" for d in dtypes):
            continue  # CMSIS-NN falls back to the reference float kernels: no scratch
        int8 = all(d == "int8" for d in dtypes)
        if op.opcode in _UNMODELED_CMSIS_OPS or (
            op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D")
            and not int8
        ):
            unmodeled.add(op.opcode)
            continue
        sizes = []
        if op.opcode == "CONV_2D":
            sizes.append(conv_scratch(_conv_geometry(op, tensors), extension))
        elif op.opcode == "DEPTHWISE_CONV_2D":
            sizes.append(depthwise_scratch(_conv_geometry(op, tensors), extension))
        elif op.opcode == "AVERAGE_POOL_2D" and extension == "dsp":
            sizes.append(tensors[(op.subgraph, op.outputs[0])].shape[-1] * 4)
        elif op.opcode == "FULLY_CONNECTED":
            out = tensors[(op.subgraph, op.outputs[0])]
            weights = tensors[(op.subgraph, op.inputs[1])]
            depth, accum = out.shape[-1], weights.shape[-1]
            if len(out.shape) > 2 and accum % 4 == 0:
                # the 1x1-convolution path fakes per-channel quantization
                sizes.append(depth * 8 if len(weights.scales) <= 1 else 0)
            elif extension == "mve":
                bias = op.inputs[2] if len(op.inputs) > 2 else -1
                constant = weights.is_constant and (
                    bias < 0 or tensors[(op.subgraph, bias)].is_constant
                )
                if constant:  # kernel sums computed once, kept (KERNELS_OPTIMIZED_FOR_SPEED)
                    persistent += _up(depth * 4)
                else:
                    sizes.append(depth * 4)
        sizes = [_up(s) for s in sizes if s > 0]
        if sizes:
            scratch[n] = sum(sizes)
            count += len(sizes)
    return KernelBuffers(scratch, count, persistent, tuple(sorted(unmodeled)))


def persistent_saving(info, table: ArenaTable = TABLE) -> int:
    """Bytes the 32-bit tail saves over this host's for ``info``: per tensor,
    operator, model input and output, and the allocator objects. Pure."""
    host, arm = table.host64, table.arm32
    io = list(info.inputs) + list(info.outputs)
    quantized = sum(1 for t in io if t.scales)
    counts = {
        "eval_tensor": len(info.tensors),
        "node_and_registration": len(info.operators),
        "tensor": len(io),
        "affine_quantization": quantized,
        "allocators": 1,
    }
    return sum(n * (host[key] - arm[key]) for key, n in counts.items())


@dataclass(frozen=True)
class DeviceArena:
    """The arena to provision on a target, and how it was computed from the host's."""

    bytes: int  # what firmware gets and the RAM check counts
    computed_bytes: int  # before the target's margin
    host_bytes: int  # the host's (64-bit) requirement it started from
    basis: str  # one line: the figures it adds and subtracts


def device_arena(info, host_bytes: int, target) -> DeviceArena:
    """The tensor arena ``target`` needs for the model ``info``, from ``host_bytes``
    (:meth:`~edgeprune.tflm.probe.ArenaResult.required_bytes` on this host).

    On a 32-bit core with CMSIS-NN or reference kernels: the host's figure,
    less the smaller persistent structures, plus the largest scratch one
    operator asks for, the scratch handles and Helium's persistent kernel sums,
    then the target's ``[arena_margin]``. A kernel library without rules here
    (ESP-NN) keeps the host's figure plus the target's margin; CMSIS-NN
    operators without rules, the host's plus :data:`UNMODELED_MARGIN`. Pure.
    """
    m = target.arena_margin
    extension = TABLE.extension.get(target.core)
    buffers = None
    if target.kernels == "reference":
        buffers = KernelBuffers({}, 0, 0, ())
    elif target.kernels == "cmsis-nn" and extension is not None:
        buffers = kernel_buffers(info, extension)
    if buffers is None or buffers.unmodeled:
        if buffers is None:  # a kernel library without rules: the profile's own margin
            fraction, extra = m.fraction, m.bytes
            why = f"{target.kernels} kernels on {target.core}"
        else:
            fraction, extra = UNMODELED_MARGIN
            why = f"CMSIS-NN's {', '.join(buffers.unmodeled)} buffers"
        total = int(host_bytes + host_bytes * fraction + extra + 0.999999)
        basis = (
            f"this host's {host_bytes:,} B + {fraction:.0%} + {extra:,} B: no rule for "
            f"{why}, so the arena is not computed for the device"
        )
        return DeviceArena(total, host_bytes, host_bytes, basis)
    saving = persistent_saving(info)
    scratch = max(buffers.scratch.values(), default=0)
    handles = buffers.scratch_count * TABLE.arm32["scratch_buffer_handle"]
    computed = host_bytes - saving + scratch + handles + buffers.persistent_bytes
    total = m.apply(computed)
    kernels = f"{target.kernels} ({extension})" if target.kernels == "cmsis-nn" else "reference"
    basis = (
        f"host's {host_bytes:,} B - {saving:,} B of 64-bit structures"
        f" + {scratch:,} B largest {kernels} scratch + {handles:,} B handles"
    )
    if buffers.persistent_bytes:
        basis += f" + {buffers.persistent_bytes:,} B kernel sums"
    basis += f" = {computed:,} B for {target.core}; + {m.fraction:.0%} + {m.bytes} B margin"
    return DeviceArena(total, computed, host_bytes, basis)
