"""Rebuild a Keras 3 model as a tf_keras (Keras 2) model, so tfmot can prune it.

tfmot works only on tf_keras models, while TensorFlow 2.16+ saves Keras 3
files by default. For Sequential and functional models built from standard
layers, the two Keras generations share layer classes, argument names and
weight order, so the model can be rebuilt layer by layer:

1. load the file with Keras 3 (installed with TensorFlow as ``keras``);
2. for every layer, keep the config keys the tf_keras class accepts; a
   dropped key with a non-default value (say ``lora_rank``) stops the
   conversion, because the rebuilt layer would compute something else;
3. wire the layers as the Keras 3 graph does, copy the weights;
4. check that both models give the same outputs on seeded random inputs.

Anything this cannot rebuild (custom layers, call keyword arguments, several
inputs) raises :class:`UnsupportedModelError` with the manual fix.
"""

from __future__ import annotations

import inspect
import logging
import re
from dataclasses import dataclass

import numpy as np

from edgeprune.errors import UnsupportedModelError, clip

log = logging.getLogger(__name__)

# Config values that carry no meaning when dropped.
_NEUTRAL = (None, False, 0, {}, [], "")
# Keys every Keras 3 layer config has that tf_keras' Layer takes as **kwargs.
_BASE_KEYS = {"name", "trainable", "dtype"}
# Initializers only matter before training; the weights are copied over.
_INITIALIZER_SUFFIX = "_initializer"
_TOLERANCE = 1e-5
MANUAL_FIX = (
    "rebuild the same architecture with `import tf_keras as keras`, copy the "
    "weights over (layer.set_weights) and save with model.save('model.keras')"
)


@dataclass(frozen=True)
class Conversion:
    """What the Keras 3 → tf_keras rebuild did, for the report."""

    keras_version: str
    layers: int
    dropped_keys: dict  # layer name -> keys dropped (all with neutral values)
    max_abs_diff: float
    samples: int

    def to_dict(self) -> dict:
        return {
            "keras_version": self.keras_version,
            "layers": self.layers,
            "dropped_keys": self.dropped_keys,
            "max_abs_diff": self.max_abs_diff,
            "samples": self.samples,
        }


def _fail(path: str, why: str, fix: str) -> UnsupportedModelError:
    return UnsupportedModelError(
        f"{path} is a Keras 3 model that edgeprune cannot rebuild for tfmot ({why}); {fix}"
    )


def custom_class_error(path: str, class_name: str) -> UnsupportedModelError:
    """A custom class in a Keras 3 file: tf_keras has no counterpart to rebuild it as."""
    return _fail(
        path, f"it uses the custom class {class_name}, which tf_keras does not have", MANUAL_FIX
    )


def _plain(obj):
    """Keras 3 serialized objects → tf_keras style ``{"class_name", "config"}``."""
    if isinstance(obj, dict):
        if "class_name" in obj and "config" in obj:
            if obj["class_name"] == "DTypePolicy":
                return obj["config"]["name"]
            return {"class_name": obj["class_name"], "config": _plain(obj["config"])}
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _accepted(cls) -> set[str]:
    """Argument names ``cls(...)`` accepts, following ``**kwargs`` up the MRO."""
    names: set[str] = set(_BASE_KEYS)
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        names |= {
            n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        } - {"self"}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return names


def _layer_config(layer3, tf_cls, path: str) -> tuple[dict, list[str]]:
    config = _plain(layer3.get_config())
    if type(layer3).__name__ == "InputLayer":
        return {
            "batch_input_shape": tuple(config["batch_shape"]),
            "dtype": config["dtype"],
            "name": config["name"],
            "sparse": config.get("sparse", False),
            "ragged": config.get("ragged", False),
        }, []
    accepted = _accepted(tf_cls)
    kept, dropped = {}, []
    for key, value in config.items():
        if key.endswith(_INITIALIZER_SUFFIX) and isinstance(value, dict):
            # Keras 3 initializers carry arguments tf_keras lacks; the weights
            # are copied anyway, so use tf_keras' default initializer.
            continue
        elif key in accepted:
            kept[key] = value
        elif value in _NEUTRAL:
            dropped.append(key)
        else:
            raise _fail(
                path,
                f"layer {layer3.name} sets {key}={value!r}, which tf_keras "
                f"{tf_cls.__name__} does not have",
                MANUAL_FIX,
            )
    return kept, dropped


def _history(arg) -> tuple[str, int, int]:
    h = arg._keras_history
    return h.operation.name, h.node_index, h.tensor_index


def rebuild(path: str, tf_keras, safe_mode: bool = True) -> tuple[object, Conversion]:
    """Load the Keras 3 model at ``path`` and return ``(tf_keras model, Conversion)``.

    ``safe_mode`` is Keras 3's own: false lets a Lambda layer's code load (and
    then the rebuild refuses the Lambda, which tf_keras cannot take over).

    Raises:
        UnsupportedModelError: a layer or wiring this cannot rebuild, or the
            rebuilt model's outputs differ from the original's.
    """
    try:
        import keras as keras3
    except ImportError:
        raise _fail(path, "the keras 3 package is not installed", "pip install keras") from None
    try:
        model3 = keras3.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as exc:  # noqa: BLE001 - Keras raises anything here
        text = " ".join(str(exc).split())
        custom = re.search(r"Could not locate class '([\w.>]+)'", text)
        if custom:
            raise custom_class_error(path, custom.group(1)) from None
        raise _fail(path, f"Keras 3 cannot load it: {clip(text, 150)}", "check the file") from None
    kind = type(model3).__name__
    if kind == "Sequential":
        model3 = getattr(model3, "_functional", None) or model3  # its graph, once built
    if kind not in ("Sequential", "Functional", "Model") or not hasattr(model3, "_operations"):
        raise UnsupportedModelError(
            f"{path} is a subclassed Keras 3 model ({kind}); tfmot can prune only Sequential "
            f"or functional models: rebuild it with keras.Sequential or the functional API"
        )
    if len(model3.inputs) != 1 or len(model3.outputs) != 1:
        raise _fail(
            path,
            f"{len(model3.inputs)} inputs and {len(model3.outputs)} outputs",
            "edgeprune handles single-input, single-output models",
        )
    dropped_all: dict[str, list[str]] = {}
    tensors: dict[tuple[str, int, int], object] = {}
    layers3 = {layer.name: layer for layer in model3._operations}
    tf_layers = {}
    inp = model3.inputs[0]
    name = _history(inp)[0]
    input_layer3 = layers3[name]
    cfg, _ = _layer_config(input_layer3, tf_keras.layers.InputLayer, path)
    x = tf_keras.Input(batch_shape=cfg["batch_input_shape"], dtype=cfg["dtype"], name=name)
    tensors[_history(inp)] = x
    for layer3 in model3._operations:
        if type(layer3).__name__ == "InputLayer":
            continue
        if type(layer3).__name__ == "Lambda":
            raise _fail(
                path,
                f"layer {layer3.name} is a Lambda, whose function cannot be carried over",
                MANUAL_FIX,
            )
        tf_cls = getattr(tf_keras.layers, type(layer3).__name__, None)
        if tf_cls is None or type(layer3).__module__.split(".")[0] != "keras":
            raise _fail(
                path,
                f"layer {layer3.name} is a {type(layer3).__name__}, which tf_keras does not have",
                MANUAL_FIX,
            )
        cfg, dropped = _layer_config(layer3, tf_cls, path)
        if dropped:
            dropped_all[layer3.name] = dropped
        try:
            tf_layer = tf_cls.from_config(cfg)
        except Exception as exc:  # noqa: BLE001
            raise _fail(path, f"layer {layer3.name}: {clip(exc, 150)}", MANUAL_FIX) from None
        tf_layers[layer3.name] = tf_layer
        for node_index, node in enumerate(layer3._inbound_nodes):
            # training/mask are call-time switches tf_keras sets itself.
            if any(
                v is not None
                for k, v in node.arguments.kwargs.items()
                if k not in ("training", "mask")
            ):
                raise _fail(
                    path,
                    f"layer {layer3.name} is called with keyword arguments "
                    f"{sorted(node.arguments.kwargs)}",
                    MANUAL_FIX,
                )
            args = node.arguments.args
            try:
                mapped = [
                    [tensors[_history(t)] for t in a]
                    if isinstance(a, (list, tuple))
                    else tensors[_history(a)]
                    for a in args
                ]
            except KeyError:
                continue  # a node outside this model (a layer reused elsewhere)
            out = tf_layer(*mapped)
            outs = out if isinstance(out, (list, tuple)) else [out]
            for ti, t in enumerate(outs):
                tensors[(layer3.name, node_index, ti)] = t
    try:
        output = tensors[_history(model3.outputs[0])]
    except KeyError:
        raise _fail(path, "its output could not be traced back to its input", MANUAL_FIX) from None
    model2 = tf_keras.Model(x, output, name=model3.name)
    for lname, tf_layer in tf_layers.items():
        weights = [np.asarray(w) for w in layers3[lname].get_weights()]
        if len(weights) != len(tf_layer.get_weights()):
            raise _fail(
                path,
                f"layer {lname} has {len(weights)} weights in Keras 3 but "
                f"{len(tf_layer.get_weights())} in tf_keras",
                MANUAL_FIX,
            )
        tf_layer.set_weights(weights)
    diff, samples = _compare(model3, model2, tf_keras)
    if not diff <= _TOLERANCE:
        raise _fail(path, f"the rebuilt model's outputs differ by up to {diff:.3g}", MANUAL_FIX)
    conversion = Conversion(keras3.__version__, len(tf_layers), dropped_all, diff, samples)
    log.info(
        "rebuilt Keras %s model %s as tf_keras (%d layers, outputs equal within %.2g)",
        keras3.__version__,
        path,
        len(tf_layers),
        diff,
    )
    return model2, conversion


def _compare(model3, model2, tf_keras, samples: int = 32) -> tuple[float, int]:
    """Largest output difference on seeded uniform inputs in [0, 1)."""
    shape = [samples] + [d or 1 for d in model2.inputs[0].shape[1:]]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    a = np.asarray(model3(x, training=False))
    b = np.asarray(model2(x, training=False))
    if a.shape != b.shape:
        return float("inf"), samples
    return float(np.max(np.abs(a - b))), samples
