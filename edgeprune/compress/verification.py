"""Prove a compressed model lossless in TFLite Micro, and measure the arena it needs.

Decoding is lossless by construction, so the proof is bit-exact equality:
the compressed and the uncompressed int8 model run in TFLite Micro's Python
interpreter (each in a worker process, :mod:`edgeprune.tflm.probe`) on the
same inputs and their raw output tensors must be equal byte for byte. What
this does not prove: that a device's build (other kernels, CMSIS-NN, a
32-bit core) decodes the same; the C++ decoders are the same source, and
the firmware check (``/work/shared/firmware-check``) is how that is shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from edgeprune.compress.plan import CompressionError
from edgeprune.errors import VerificationError

logger = logging.getLogger(__name__)

DECODERS = ("lut", "prune", "huffman")
_DECODE_OPCODE = "CUSTOM:TFLM_DECODE"
_ALIGNMENT = 16  # MicroArenaBufferAlignment(): each decoded tensor starts aligned
_HUFFMAN_SETUP = b"unsupported version"  # the Huffman decoder's own Setup answered
_NO_DECODER = b"unsupported decode type"


class DecoderMissingError(CompressionError):
    """The installed TFLite Micro interpreter cannot run a decoder the model needs."""


def decoders_available() -> frozenset[str]:
    """The DECODE decoders the installed tflite-micro Python interpreter runs.

    Probed in a worker process: for ``lut`` and ``prune``, a one-operator
    model decodes a known int8 tensor and counts only if the values come back
    exactly. No Huffman encoder exists in Python, so ``huffman`` counts when
    the DECODE operator reaches the Huffman decoder (it checks its header)
    instead of refusing the decode type: registered, not proven.
    Starts worker processes; writes and removes temporary files.
    """
    from edgeprune.tflm.client import Worker

    found = set()
    with Worker(b"") as worker:
        for name in DECODERS:
            reply = worker.request({"cmd": "decoder", "decoder": name})
            if reply.ok and reply.details.get("decodes"):
                found.add(name)
            elif name == "huffman" and _HUFFMAN_SETUP in reply.stderr:
                found.add(name)
            else:
                logger.debug("decoder %s: %s", name, reply.message or "wrong values")
    return frozenset(found)


def require_decoders(needed: frozenset[str] | set[str]) -> None:
    """Refuse, in one line naming the decoder, when the interpreter lacks one ``needed``.

    Raises:
        DecoderMissingError: a decoder is missing.
    """
    missing = sorted(set(needed) - decoders_available())
    if missing:
        raise DecoderMissingError(
            f"the installed tflite-micro interpreter has no DECODE {', '.join(missing)} "
            f"decoder, so the compressed model cannot be verified; install a tflite-micro "
            f"with it (pip install -U tflite-micro) or compress without {missing[0]}"
        )


def alt_decompression_bytes(model: bytes) -> int:
    """The alternate decompression memory ``model``'s DECODE operators need: the most
    one DECODE decodes (its outputs, each 16-byte aligned). Each DECODE's outputs
    live only until the next operator ran, so TFLite Micro starts every DECODE's
    allocations over at the beginning of that memory. 0 without DECODE.
    """
    from edgeprune.tflite import inspect_model

    info = inspect_model(bytes(model))
    tensors = {(t.subgraph, t.index): t for t in info.tensors}
    peak = 0
    for op in info.operators:
        if op.opcode == _DECODE_OPCODE:
            sizes = (tensors[op.subgraph, i].nbytes for i in op.outputs)
            peak = max(peak, sum(-(-n // _ALIGNMENT) * _ALIGNMENT for n in sizes))
    return peak


@dataclass(frozen=True)
class Verification:
    """What :func:`verify` measured.

    ``samples`` inputs ran through both models; their raw outputs were equal
    bit for bit. ``dense_arena_bytes`` / ``compressed_arena_bytes`` are the
    smallest working arenas TFLite Micro (this host, 64-bit) found
    (:func:`edgeprune.tflm.probe.find_arena`, its ``required_bytes``); the
    decoded tensors live in the compressed model's arena. With a separate
    block of ``alt_decompression_bytes`` (TFLite Micro's alternate
    decompression memory, :func:`alt_decompression_bytes`) for them, the
    compressed model's arena is ``compressed_arena_with_alt_bytes``; its
    outputs were checked bit-exact that way too.
    """

    samples: int
    dense_arena_bytes: int
    compressed_arena_bytes: int
    dense_model_bytes: int
    compressed_model_bytes: int
    alt_decompression_bytes: int = 0
    compressed_arena_with_alt_bytes: int = 0

    @property
    def arena_delta_bytes(self) -> int:
        return self.compressed_arena_bytes - self.dense_arena_bytes

    def to_dict(self) -> dict:
        return {
            "samples": self.samples,
            "bit_exact": True,
            "dense_arena_bytes": self.dense_arena_bytes,
            "compressed_arena_bytes": self.compressed_arena_bytes,
            "arena_delta_bytes": self.arena_delta_bytes,
            "dense_model_bytes": self.dense_model_bytes,
            "compressed_model_bytes": self.compressed_model_bytes,
            "alt_decompression_bytes": self.alt_decompression_bytes,
            "compressed_arena_with_alt_bytes": self.compressed_arena_with_alt_bytes,
        }


def verify(dense: bytes, compressed: bytes, x: np.ndarray, *, decoders=None) -> Verification:
    """Run ``x`` (float32 samples, batch first) through both models in TFLite Micro and
    require bit-exact raw outputs; find each model's smallest working arena.

    ``decoders`` (the compressed model's, e.g. ``CompressedModel.decoders``)
    are checked first with :func:`require_decoders`. Starts worker
    processes; writes and removes temporary files.

    Raises:
        DecoderMissingError: the interpreter lacks a decoder in ``decoders``.
        VerificationError: some output differs (the message says how many
            samples and the first one).
        MicroError: TFLite Micro could not load or run a model.
        DataError: ``x`` does not fit the model's input.
    """
    from edgeprune.tflm import probe

    if decoders:
        require_decoders(decoders)
    x = np.asarray(x, dtype=np.float32)
    alt = alt_decompression_bytes(compressed)
    runs = [(dense, 0), (compressed, 0)] + ([(compressed, alt)] if alt else [])
    arenas = []
    for i, (model, alt_bytes) in enumerate(runs):
        model = bytes(model)
        arena = probe.find_arena(model, alt_decompression_bytes=alt_bytes).required_bytes()
        arenas.append(arena)
        raw = probe.run_detailed(model, x, arena, alt_decompression_bytes=alt_bytes).raw
        if i == 0:
            reference = raw
        else:
            _require_equal(reference, raw, len(x))
    return Verification(
        samples=len(x),
        dense_arena_bytes=arenas[0],
        compressed_arena_bytes=arenas[1],
        dense_model_bytes=len(dense),
        compressed_model_bytes=len(compressed),
        alt_decompression_bytes=alt,
        compressed_arena_with_alt_bytes=arenas[2] if alt else arenas[1],
    )


def _require_equal(reference: np.ndarray, raw: np.ndarray, count: int) -> None:
    same_layout = reference.dtype == raw.dtype and reference.shape == raw.shape
    differ = (
        np.flatnonzero((reference.reshape(count, -1) != raw.reshape(count, -1)).any(axis=1))
        if same_layout
        else np.arange(count)
    )
    if differ.size:
        raise VerificationError(
            f"the compressed model's outputs differ from the dense model's on "
            f"{differ.size} of {count} samples (first: sample {int(differ[0])}); decoding "
            f"must be lossless, so the encoding is wrong: do not ship this model"
        )
