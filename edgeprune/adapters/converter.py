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
from collections.abc import Iterator

import numpy as np

from edgeprune.adapters import keras as ka
from edgeprune.errors import EdgepruneError, UnsupportedModelError, clip

tf = ka.tf
log = logging.getLogger(__name__)


class ConversionError(EdgepruneError, RuntimeError):
    """The TFLite converter refused the model."""


def to_tflite(
    model: ka.KerasModel,
    mode: str,
    calibration: np.ndarray | None = None,
    per_tensor_dense: bool = False,
    *,
    saved_keras: bool = False,
) -> bytes:
    """Convert a (stripped) tf_keras model to a ``.tflite`` flatbuffer.

    ``calibration`` is required for ``int8``: the representative samples, fed
    one at a time in order, so the result is deterministic.
    ``per_tensor_dense`` quantizes Dense (FULLY_CONNECTED) weights with one
    scale per tensor instead of the converter's default one per output
    channel; TFLite Micro then needs no per-channel scratch for them, which
    cut one autoencoder's arena from 15 KB to 4 KB. ``saved_keras`` takes the
    converter's own ``from_keras_model`` path, which writes the same bytes
    slower (see :func:`_converter_for`); the tests compare the two.

    Raises:
        ValueError: unknown mode, or int8 without calibration samples.
        ConversionError: the converter failed (unsupported op, ...).
    """
    if saved_keras:
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
    else:
        converter = _converter_for(model)
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
    raise ConversionError(f"the TFLite converter failed in {mode} mode: {clip(detail)}")


def _converter_for(model: ka.KerasModel):
    """A converter for ``model`` that writes the bytes ``from_keras_model`` writes, faster.

    ``from_keras_model`` saves the whole Keras model as a SavedModel (every
    layer's call traced and serialized: 0.4 to 0.7 s for the digits CNN) and
    converts the serving signature. Here the SavedModel holds only that
    signature (the model called with ``training=False``, inputs named after the
    model's inputs, outputs keyed by its output names, as Keras names them) and
    the weights it reads; the conversion metadata says the source was a Keras
    model, as it was. The flatbuffer is byte for byte the one
    ``from_keras_model`` writes (SignatureDef ``serving_default``, tensor names,
    buffers); ``tests/test_converter.py`` holds every built-in model to that.
    A model whose inputs or outputs are not a flat list (nested dicts) takes
    ``from_keras_model`` itself.
    """
    inputs, outputs = list(model.inputs or ()), list(model.outputs or ())
    names_in = list(getattr(model, "input_names", None) or ())
    names_out = list(getattr(model, "output_names", None) or ())
    if not inputs or len(names_in) != len(inputs) or len(names_out) != len(outputs):
        return tf.lite.TFLiteConverter.from_keras_model(model)
    spec = [tf.TensorSpec(t.shape, t.dtype, name=n) for t, n in zip(inputs, names_in, strict=True)]

    @tf.function(input_signature=spec)
    def serve(*args):
        out = model(list(args) if len(args) > 1 else args[0], training=False)
        outs = out if isinstance(out, (list, tuple)) else [out]
        return dict(zip(names_out, outs, strict=True))

    holder = tf.Module()
    holder.weights = list(model.weights)  # what the SavedModel stores
    holder.serve = serve
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], holder
    )
    keras_model = ka.conversion_metadata.ModelType.KERAS_MODEL
    converter._metadata.environment.modelType = keras_model  # noqa: SLF001
    return converter


def check_convertible(model: ka.KerasModel) -> None:
    """Refuse, before anything is trained or written, layers the converter cannot
    turn into TFLite builtin ops.

    A recurrent layer (LSTM, GRU, SimpleRNN, RNN, also inside Bidirectional or
    TimeDistributed) converts only when unrolled: its loop otherwise becomes a
    TensorList whose shape the converter needs static ("TensorListReserve").
    Unrolled, it is plain FULLY_CONNECTED, ADD, MUL, LOGISTIC and TANH ops,
    which convert in every mode; TFLite Micro also needs a fixed batch size,
    or the zero initial state is a FILL with dynamic dims, which it cannot
    prepare. Convolutional RNNs (ConvLSTM1D/2D/3D) cannot be unrolled. This
    does not prove the rest of the model converts.

    Raises:
        UnsupportedModelError: names the first such layer and the fix.
    """
    layers = ka.keras.layers
    for where, verb, layer in _nested_layers(model):
        if not isinstance(layer, layers.RNN) or getattr(layer, "unroll", False):
            continue
        kind = type(layer).__name__
        if "Conv" in kind:
            raise UnsupportedModelError(
                f"layer {where} {verb} a {kind}, which the TFLite converter cannot "
                f"convert and which cannot be unrolled; edgeprune does not support "
                f"convolutional recurrent layers: replace it (for example by Conv "
                f"layers over the time axis)"
            )
        raise UnsupportedModelError(
            f"layer {where} {verb} a {kind} that is not unrolled, which the TFLite "
            f"converter cannot convert (TensorListReserve); rebuild it with "
            f"{kind}(..., unroll=True) and a fixed sequence length (for TFLite "
            f"Micro also Input(..., batch_size=1)), copy the weights over, and "
            f"pass that model"
        )


def _nested_layers(model, parent: str | None = None) -> Iterator[tuple]:
    """``(name, "is" or "holds", layer)`` for every layer, inside nested models and
    wrappers (Bidirectional, TimeDistributed), named as the user named them."""
    for top in getattr(model, "layers", ()):
        name = top.name if parent is None else f"{top.name} (in {parent})"
        yield name, "is", top
        yield from _nested_layers(top, top.name)
        inner = [getattr(top, a, None) for a in ("layer", "forward_layer", "backward_layer")]
        for layer in filter(None, inner):
            yield f"{name} ({type(top).__name__})", "holds", layer
            yield from _nested_layers(layer, top.name)


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
