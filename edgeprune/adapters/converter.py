"""The one home of TFLite converter calls.

Modes, spelled as the CLI spells them:

* ``int8``: full-integer post-training quantization; int8 weights and
  activations, int8 input and output tensors, calibrated on representative
  samples. Post-training int8 keeps pruned zeros exactly.
* ``dynamic``: int8 weights, float activations (dynamic-range quantization).
* ``float16``: float16 weights, float32 compute.
* ``float32``: no optimization.

``EXPERIMENTAL_SPARSITY`` is never used: it emits DENSIFY ops that TFLite
Micro lacks, breaks the XNNPACK delegate and gave wrong int8 outputs on one
model (see the design notes).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

import numpy as np

from edgeprune.adapters import keras as ka
from edgeprune.errors import EdgepruneError

tf = ka.tf
log = logging.getLogger(__name__)


class ConversionError(EdgepruneError, RuntimeError):
    """The TFLite converter refused the model."""


def to_tflite(
    model: ka.KerasModel,
    mode: str,
    calibration: np.ndarray | None = None,
    per_tensor_dense: bool = False,
) -> bytes:
    """Convert a (stripped) tf_keras model to a ``.tflite`` flatbuffer.

    ``calibration`` is required for ``int8``: the representative samples, fed
    one at a time in order, so the result is deterministic.
    ``per_tensor_dense`` quantizes Dense (FULLY_CONNECTED) weights with one
    scale per tensor instead of the converter's default one per output
    channel; TFLite Micro then needs no per-channel scratch for them, which
    cut one autoencoder's arena from 15 KB to 4 KB.

    Raises:
        ValueError: unknown mode, or int8 without calibration samples.
        ConversionError: the converter failed (unsupported op, ...).
    """
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "float32":
        pass
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 conversion needs representative samples")
        samples = np.asarray(calibration, dtype=np.float32)

        def representative():
            for i in range(len(samples)):
                yield [samples[i : i + 1]]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
        # a private switch of the converter, the only way to reach this option
        converter._experimental_disable_per_channel_quantization_for_dense_layers = per_tensor_dense
    else:
        raise ValueError(f"unknown quantization mode {mode!r}")
    with _native_stderr_captured() as captured:
        try:
            return bytes(converter.convert())
        except Exception as exc:  # noqa: BLE001 - the converter raises many types
            text = " ".join(str(exc).split())
    detail = _first_error(captured.text) or text
    raise ConversionError(f"the TFLite converter failed in {mode} mode: {detail[:300]}")


class _Captured:
    text = ""


@contextlib.contextmanager
def _native_stderr_captured():
    """Collect what the converter's native code writes to fd 2 (MLIR diagnostics
    run to kilobytes) and log it at debug level instead of flooding the terminal."""
    captured = _Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield captured
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")
    if captured.text.strip():
        log.debug("converter output:\n%s", captured.text)


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "error:" in line:
            return " ".join(line.split("error:", 1)[1].split())
    return ""
