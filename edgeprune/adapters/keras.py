"""The one home of TensorFlow and tf_keras: loading, saving, training, predicting.

tfmot works only with tf_keras (Keras 2), and only if ``TF_USE_LEGACY_KERAS=1``
is set before TensorFlow is first imported; this module sets it on import.
Import it lazily (inside functions) from anywhere that must stay fast.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

# for converter.py: the converter's own record of what kind of model it converted
from tensorflow.lite.python import (  # noqa: E402, F401
    conversion_metadata_schema_py_generated as conversion_metadata,
)

from edgeprune import progress  # noqa: E402
from edgeprune.adapters import model_config as mc  # noqa: E402
from edgeprune.adapters.keras3 import MANUAL_FIX  # noqa: E402
from edgeprune.errors import ModelLoadError, UnsupportedModelError, clip  # noqa: E402

log = logging.getLogger(__name__)

# The model type the stages pass around. Modules that must not import TensorFlow
# name it under ``if TYPE_CHECKING:`` (``from edgeprune.adapters.keras import KerasModel``).
KerasModel = keras.Model

GRAPH_MODEL_CLASSES = ("Sequential", "Functional", "Model")

KERAS3_FIX = "tfmot pruning needs a tf_keras (Keras 2) model: " + MANUAL_FIX


@dataclass(frozen=True)
class ModelShapes:
    """A Keras model's single input and output shapes, batch dimension first."""

    input_shape: tuple
    output_shape: tuple

    @property
    def output_units(self) -> int:
        return int(np.prod([d for d in self.output_shape[1:] if d is not None]))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic."""
    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # noqa: BLE001 - older TF; determinism is best effort there
        log.debug("op determinism unavailable")


def _saved_model_file(path: str) -> mc.ModelFile | None:
    """The Keras metadata of a SavedModel folder, or None when it has none."""
    from tf_keras.protobuf import saved_metadata_pb2

    meta_path = os.path.join(path, "keras_metadata.pb")
    if not os.path.isfile(meta_path):
        return None
    metadata = saved_metadata_pb2.SavedMetadata()
    try:
        with open(meta_path, "rb") as fh:
            metadata.ParseFromString(fh.read())
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError and others
        return None
    nodes = sorted(metadata.nodes, key=lambda n: n.node_path != "root")
    return mc.read_saved_model_nodes(path, [n.metadata for n in nodes])


def _is_keras3(version: str | None) -> bool:
    return bool(version) and version.split(".")[0] not in ("2", "1")


def load_model(path: str | os.PathLike) -> KerasModel:
    """Load a tf_keras model; see :func:`load_user_model` (this drops the conversion note)."""
    return load_user_model(path)[0]


class WrappedModelError(UnsupportedModelError):
    """The file holds tfmot pruning wrappers: it was saved before ``strip_pruning``."""


def load_user_model(
    path: str | os.PathLike, scope: Callable | None = None, unsafe_load: bool = False
) -> tuple[KerasModel, dict | None]:
    """Load a model from ``.keras``, ``.h5`` or a SavedModel folder as tf_keras.

    A Keras 3 file is rebuilt as a tf_keras model and checked to give the same
    outputs (:mod:`edgeprune.adapters.keras3`); the second item of the result then
    describes that conversion, else it is ``None``. The model is loaded
    without its optimizer state, inside ``scope()`` if given (a context
    manager that registers custom classes, such as tfmot's ``prune_scope``).

    Unless ``unsafe_load``, the file's configuration is read without Keras
    first and a model that would run code while loading (a Lambda layer, a
    custom object) is refused (:mod:`edgeprune.adapters.model_config`), and
    Keras loads in its safe mode.

    Raises:
        UnsafeModelError: the file holds code and ``unsafe_load`` is false.
        WrappedModelError: the model holds tfmot pruning wrappers.
        ModelLoadError: missing, unreadable or not a model.
        UnsupportedModelError: subclassed, or a Keras 3 model that cannot be rebuilt.
    """
    p = os.fspath(path)
    model_file = _read_model_file(p, unsafe_load)
    from_keras3 = model_file is not None and _is_keras3(model_file.keras_version)
    if model_file is not None and not unsafe_load:
        mc.refuse_code(p, model_file, _keras3_custom(p) if from_keras3 else None)
    if from_keras3:
        from edgeprune.adapters import keras3

        model, conversion = keras3.rebuild(p, keras, safe_mode=not unsafe_load)
        check_model(model, p)
        return model, conversion.to_dict()
    try:
        with scope() if scope else contextlib.nullcontext():
            model = keras.models.load_model(p, compile=False, safe_mode=not unsafe_load)
    except (ModelLoadError, UnsupportedModelError):
        raise
    except Exception as exc:  # noqa: BLE001 - Keras raises anything here
        text = " ".join(str(exc).split())
        if "PruneLowMagnitude" in text:
            raise WrappedModelError(
                f"{p} holds tfmot pruning wrappers (saved before strip_pruning); strip them "
                f"with tfmot.sparsity.keras.strip_pruning and save again"
            ) from None
        if "Could not locate class" in text or "Unknown layer" in text:
            raise UnsupportedModelError(
                f"{p} uses a custom class Keras cannot find ({clip(text, 120)}); edgeprune "
                f"handles models built from tf_keras layers only"
            ) from None
        if "batch_shape" in text:
            raise UnsupportedModelError(f"{p} looks saved by Keras 3; {KERAS3_FIX}") from None
        raise ModelLoadError(
            f"model {p} could not be loaded ({clip(text, 200)}); re-save it with "
            f"tf_keras model.save('model.keras')"
        ) from None
    check_model(model, p)
    return model, None


def _keras3_custom(path: str) -> Callable[[str], Exception]:
    def error(class_name: str) -> Exception:
        from edgeprune.adapters import keras3

        return keras3.custom_class_error(path, class_name)

    return error


def _read_model_file(p: str, unsafe_load: bool) -> mc.ModelFile | None:
    """The file's own description of the model, read without Keras (None for a
    SavedModel without Keras metadata, which only ``unsafe_load`` lets through)."""
    if not os.path.exists(p):
        raise ModelLoadError(f"model {p} does not exist; check the path")
    if os.path.isdir(p):
        if not os.path.exists(os.path.join(p, "saved_model.pb")):
            raise ModelLoadError(
                f"model folder {p} is not a SavedModel (no saved_model.pb); "
                f"pass a .keras, .h5 or SavedModel folder"
            )
        model_file = _saved_model_file(p)
        if model_file is None and not unsafe_load:
            raise mc.UnsafeModelError(
                f"model {p} could not be loaded (its keras_metadata.pb is missing or "
                f"unreadable, so it cannot be checked for code before loading); re-save it "
                f"with tf_keras model.save('model.keras'), or {mc.UNSAFE_FIX}"
            )
    else:
        try:
            with open(p, "rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise ModelLoadError(
                f"model {p} cannot be read ({exc.strerror}); check its permissions"
            ) from None
        ext = os.path.splitext(p)[1].lower()
        if ext == ".keras":
            model_file = mc.read_keras_zip(p)
        elif ext in (".h5", ".hdf5"):
            model_file = mc.read_h5(p)
        else:
            raise ModelLoadError(
                f"model {p} has extension '{ext}'; pass a .keras or .h5 file or a SavedModel folder"
            )
    if model_file is not None and model_file.class_name not in (*GRAPH_MODEL_CLASSES, None):
        raise UnsupportedModelError(_subclassed_message(p, model_file.class_name))
    return model_file


def _subclassed_message(where: str, class_name: str | None) -> str:
    return (
        f"{where} is a subclassed model ({class_name}); tfmot can prune only Sequential "
        f"or functional models: rebuild it with keras.Sequential or the functional API"
    )


def check_model(model: object, where: str = "model") -> None:
    """Raise :class:`UnsupportedModelError` unless ``model`` is a single-input,
    single-output Sequential or functional tf_keras model."""
    if not isinstance(model, keras.Model):
        raise UnsupportedModelError(
            f"{where} is a {type(model).__module__}.{type(model).__name__}, not a tf_keras "
            f"model; {KERAS3_FIX}"
        )
    if not (isinstance(model, keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise UnsupportedModelError(_subclassed_message(where, type(model).__name__))
    nested = [
        layer.name for layer in model.layers if isinstance(layer, keras.Model) and layer.weights
    ]
    if nested:
        raise UnsupportedModelError(
            f"{where} contains the nested model(s) {', '.join(nested)}; tfmot and edgeprune "
            f"do not prune inside nested models: rebuild the model with the nested model's "
            f"layers inline (one functional graph)"
        )
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UnsupportedModelError(
            f"{where} has {len(model.inputs)} inputs and {len(model.outputs)} outputs; "
            f"edgeprune handles single-input, single-output models"
        )
    if not any(layer.weights for layer in model.layers):
        raise UnsupportedModelError(
            f"{where} has no layer with weights ({len(model.layers)} layers); there is "
            f"nothing to prune or quantize: pass the trained model"
        )


def shapes(model: KerasModel) -> ModelShapes:
    """The model's input and output shapes."""
    return ModelShapes(
        tuple(model.inputs[0].shape.as_list()), tuple(model.outputs[0].shape.as_list())
    )


def save_model(model: KerasModel, path: str) -> None:
    """Save in the native tf_keras ``.keras`` format."""
    model.save(path)


def clone(model: KerasModel) -> KerasModel:
    """A structural copy with the same weights and no shared layers."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


_SHAPE_ONLY = ("Reshape", "Flatten", "Dropout", "Permute", "Cropping1D", "Cropping2D")


def final_activation(model: KerasModel) -> str | None:
    """Name of the activation that produces the output, read from the layers
    (through shape-only layers such as Reshape), or None if it cannot be read."""
    layer = model.layers[-1]
    while type(layer).__name__ in _SHAPE_ONLY:
        inbound = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else None
        if not inbound or isinstance(inbound, list):
            return None
        layer = inbound
    kind = type(layer).__name__
    if kind == "Softmax":
        return "softmax"
    if kind == "Activation":
        act = layer.get_config().get("activation")
        return act if isinstance(act, str) else None
    act = getattr(layer, "activation", None)
    return getattr(act, "__name__", None) if act is not None else None


def outputs_are_probabilities(model: KerasModel, x: np.ndarray) -> bool:
    """True if the model outputs probabilities (softmax or sigmoid).

    Read from the final activation when the layers say it; otherwise
    measured on ``x``: rows in [0, 1] summing to 1, or one unit in [0, 1].
    """
    act = final_activation(model)
    if act is not None:
        return act in ("softmax", "sigmoid")
    y = predict(model, x[:64])
    y = y.reshape(len(y), -1)
    if y.shape[1] == 1:
        return bool(np.all((y >= 0) & (y <= 1)))
    return bool(np.all(y >= 0) and np.allclose(y.sum(axis=1), 1.0, atol=1e-3))


def loss_for(task: str, output_units: int, probabilities: bool) -> keras.losses.Loss:
    """The training loss for ``task`` and the model's output (one unit: binary)."""
    if task == "regression":
        return keras.losses.MeanSquaredError()
    if output_units == 1:
        return keras.losses.BinaryCrossentropy(from_logits=not probabilities)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)


def compile_for(model: KerasModel, task: str, learning_rate: float, probabilities: bool) -> None:
    """Compile ``model`` in place with Adam and :func:`loss_for`'s loss."""
    metrics = ["accuracy"] if task == "classification" else []
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss_for(task, shapes(model).output_units, probabilities),
        metrics=metrics,
    )


def fit(
    model: KerasModel,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    callbacks=(),
    validation=None,
    description: str = "training",
) -> dict:
    """Train ``model`` (compiled) and return the last epoch's logged metrics.

    Shows an ``epoch`` progress task named ``description`` (:mod:`edgeprune.progress`).
    """
    seed_everything(seed)
    with progress.task(description, total=epochs, unit="epoch") as bar:
        history = model.fit(
            x,
            y,
            epochs=epochs,
            batch_size=batch_size,
            shuffle=True,
            verbose=0,
            callbacks=[*callbacks, EpochProgress(bar)],
            validation_data=validation,
        )
    return {k: float(v[-1]) for k, v in history.history.items()}


class EpochProgress(keras.callbacks.Callback):
    """Advance a progress task once per finished epoch, its metrics as the status."""

    def __init__(self, bar: progress.Task) -> None:
        super().__init__()
        self.bar = bar

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.bar.advance(status=epoch_status(logs or {}))


def epoch_status(logs: dict) -> str:
    """``loss 0.123, accuracy 0.956``: an epoch's loss and accuracy, validation's too."""
    shown = ("loss", "accuracy", "val_loss", "val_accuracy")
    return ", ".join(f"{k} {float(logs[k]):.4g}" for k in shown if k in logs)


def predict(model: KerasModel, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Inference-mode outputs as float32 numpy."""
    out = []
    for i in range(0, len(x), batch_size):
        out.append(np.asarray(model(x[i : i + batch_size], training=False)))
    return np.concatenate(out).astype(np.float32)


@functools.cache
def sample_loss(task: str, output_units: int, probabilities: bool) -> Callable:
    """A per-sample loss ``loss(y_true, y_pred)`` (one value per row), matching
    :func:`loss_for`'s training loss; for gradients of single samples.

    One function object per argument set (cached), so that the same loss is
    the same object: the importance memo keys on it.
    """

    def loss(y_true, y_pred):
        if task == "regression":
            diff = tf.reshape(tf.cast(y_true, y_pred.dtype) - y_pred, [tf.shape(y_pred)[0], -1])
            return tf.reduce_mean(tf.square(diff), axis=1)
        if output_units == 1:
            return keras.losses.binary_crossentropy(
                tf.cast(tf.reshape(y_true, [-1, 1]), y_pred.dtype),
                y_pred,
                from_logits=not probabilities,
            )
        return keras.losses.sparse_categorical_crossentropy(
            y_true, y_pred, from_logits=not probabilities
        )

    return loss


def per_sample_gradients(
    model: KerasModel, weights: Sequence, x: np.ndarray, y: np.ndarray, loss: Callable
) -> Iterator[list[np.ndarray | float]]:
    """Yield, for each sample of ``x``, ``y`` in order, the gradient of
    ``sum(loss(y, model(x)))`` with respect to each of ``weights`` (variables of
    ``model``), in inference mode; 0.0 for a weight no gradient reaches.

    One traced function serves every sample; no side effects on the model.
    """
    flat = list(weights)

    @tf.function(reduce_retracing=True)
    def sample_grads(xs, ys):
        with tf.GradientTape() as tape:
            value = tf.reduce_sum(loss(ys, model(xs, training=False)))
        return tape.gradient(value, flat)

    for i in range(len(x)):
        yield [
            g.numpy() if g is not None else 0.0 for g in sample_grads(x[i : i + 1], y[i : i + 1])
        ]


def versions() -> dict[str, str]:
    """The versions of TensorFlow and tf_keras in use, for the report."""
    return {"tensorflow": tf.__version__, "tf_keras": keras.__version__}
