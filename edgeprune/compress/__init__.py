"""TFLite Micro weight compression: make pruned zeros (and clustered weights) leave the flash.

TFLite Micro's DECODE operator decodes compressed constant tensors at
inference time. :func:`compress_model` writes a model whose sparse int8
weights use the ``prune`` encoding (values plus a bit mask; our encoder,
:mod:`edgeprune.compress.prune_format`, as TFLite Micro's Python compressor
leaves pruning a stub) and whose clustered weights use TFLite Micro's LUT
encoding, only where that is smaller. :func:`verify` runs both models in
TFLite Micro and requires bit-exact outputs; :func:`decoders_available` says
which decoders the installed interpreter runs. See docs/tflm-compression.md.
"""

from edgeprune.compress.insert import compress_model
from edgeprune.compress.plan import (
    METHODS,
    CompressedModel,
    CompressionError,
    CompressionFailed,
    TensorCompression,
    plan,
)
from edgeprune.compress.verification import (
    DecoderMissingError,
    Verification,
    decoders_available,
    require_decoders,
    verify,
)

__all__ = [
    "METHODS",
    "CompressedModel",
    "CompressionError",
    "CompressionFailed",
    "DecoderMissingError",
    "TensorCompression",
    "Verification",
    "compress_model",
    "decoders_available",
    "plan",
    "require_decoders",
    "verify",
]
