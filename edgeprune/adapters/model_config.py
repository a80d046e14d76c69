"""A Keras model file's configuration, read without Keras, and the refusal of code in it.

Loading a Keras model can run code the file carries: a ``Lambda`` layer's
function is stored as Python bytecode and runs when the layer is built, and
a custom object's ``module`` is imported (``importlib.import_module``) by the
deserializer. tf_keras' ``safe_mode`` guards only ``.keras`` files. So before
Keras sees a file, its configuration is read here (``config.json`` of a
``.keras`` zip, the ``model_config`` attribute of an HDF5 file, the nodes of a
SavedModel's ``keras_metadata.pb``) and walked; any Lambda layer, serialized
function or object from outside Keras is refused by name, unless the user
trusts the file (``unsafe_load``).

What this does not prove: a SavedModel's TensorFlow graph can hold ops with
side effects (file writes) that run when the model is called; those are graph
ops, not Python, and no Keras config shows them.

No TensorFlow here; h5py is imported only for ``.h5`` files.
"""

from __future__ import annotations

import base64
import binascii
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from edgeprune.errors import ModelLoadError

# Modules whose classes the deserializer may import: the Keras generations and
# tfmot (its pruning wrapper). Anything else is code from the file's author.
TRUSTED_MODULES = ("keras", "tf_keras", "tensorflow_model_optimization")
# Layers whose config holds a Python function (as bytecode, or by name).
CODE_LAYERS = ("Lambda",)
# Keras 3 writes a lambda as ``{"class_name": "__lambda__", "config": {"code": ...}}``.
CODE_OBJECTS = ("__lambda__",)
UNSAFE_FIX = "pass --unsafe-load (recipe: unsafe_load = true) if you trust the file"
_REBUILD = "rebuild it from built-in tf_keras layers"
_MAX_DEPTH = 200


class UnsafeModelError(ModelLoadError):
    """The model file holds Python code (a Lambda layer, a custom object) that
    would run while it loads; refused unless the user trusts the file."""


@dataclass(frozen=True)
class ModelFile:
    """What a model file says about itself, read without Keras."""

    keras_version: str | None
    class_name: str | None
    configs: tuple  # the parsed configuration objects to scan


def _object(raw: bytes | str, path: str, member: str) -> dict:
    try:
        value = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ModelLoadError(f"{path} has a corrupt {member}; re-save the model") from None
    if not isinstance(value, dict):
        raise ModelLoadError(
            f"{path}: {member} holds a JSON {type(value).__name__}, not an object; "
            f"re-save the model with model.save('model.keras')"
        )
    return value


def read_keras_zip(path: str) -> ModelFile:
    """The config and metadata of a ``.keras`` zip.

    Raises:
        ModelLoadError: not a zip, no ``config.json``, or a member that is not
            a JSON object.
    """
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "config.json" not in names:
                raise ModelLoadError(
                    f"{path} is a zip file but not a Keras model (no "
                    f"config.json); pass a .keras, .h5 or SavedModel folder"
                )
            meta = (
                _object(z.read("metadata.json"), path, "metadata.json")
                if "metadata.json" in names
                else {}
            )
            config = _object(z.read("config.json"), path, "config.json")
    except zipfile.BadZipFile:
        raise ModelLoadError(
            f"{path} is not a Keras model (not a .keras zip archive); "
            f"pass a .keras, .h5 or SavedModel folder"
        ) from None
    version = meta.get("keras_version")
    return ModelFile(
        version if isinstance(version, str) else None, _text(config.get("class_name")), (config,)
    )


def read_h5(path: str) -> ModelFile:
    """The ``model_config`` and ``keras_version`` attributes of an HDF5 model.

    Raises:
        ModelLoadError: not HDF5, no model config (weights only), or a config
            that is not a JSON object.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            version = f.attrs.get("keras_version")
            if "model_config" not in f.attrs:
                raise ModelLoadError(
                    f"{path} is an HDF5 file without a model config (weights "
                    f"only?); save the whole model with model.save()"
                )
            raw = f.attrs["model_config"]
    except OSError:
        raise ModelLoadError(
            f"{path} is not a Keras model (not an HDF5 file); pass a "
            f".keras, .h5 or SavedModel folder"
        ) from None
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    config = _object(raw if isinstance(raw, str) else "", path, "model_config")
    return ModelFile(_text(version), _text(config.get("class_name")), (config,))


def read_saved_model_nodes(path: str, nodes: list[str]) -> ModelFile:
    """A SavedModel's Keras metadata, given the JSON text of each node of its
    ``keras_metadata.pb`` (the root first)."""
    configs = tuple(_object(text, path, "keras_metadata.pb") for text in nodes)
    root = configs[0] if configs else {}
    return ModelFile(None, _text(root.get("class_name")), configs)


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def refuse_code(path: str, model_file: ModelFile, custom_error=None) -> None:
    """Raise :class:`UnsafeModelError` naming the first layer of ``model_file``
    that holds Python code or an object from outside Keras; for a custom class,
    ``custom_error(class_name)`` instead when given (a Keras 3 file, whose
    custom classes no trust lets edgeprune rebuild)."""
    for config in model_file.configs:
        for finding in _findings(config, "the model", 0):
            if finding.custom_class and custom_error is not None:
                raise custom_error(finding.custom_class)
            raise UnsafeModelError(f"model {path}: {finding.layer} {finding.why}, or {UNSAFE_FIX}")


# Parts of a config edgeprune never deserializes: models are loaded with
# compile=False, so the optimizer, loss and metrics (a SavedModel's
# training_config, where tf_keras names its own Adam "Custom>Adam") are not read.
_NOT_LOADED = frozenset({"training_config"})


@dataclass(frozen=True)
class _Finding:
    layer: str  # the innermost named object around it: layer 'name' (Class)
    why: str
    custom_class: str | None = None


def _findings(obj, layer: str, depth: int) -> Iterator[_Finding]:
    """Every unsafe object under ``obj``, inside the object named ``layer``."""
    if depth > _MAX_DEPTH:
        yield _Finding(layer, f"has a configuration nested too deeply to check; {_REBUILD}")
        return
    if isinstance(obj, list):
        for item in obj:
            yield from _findings(item, layer, depth + 1)
        return
    if isinstance(obj, str):
        if _bytecode(obj):
            yield _Finding(
                layer, f"holds serialized Python bytecode that would run on load; {_REBUILD}"
            )
        return
    if not isinstance(obj, dict):
        return
    class_name, config = obj.get("class_name"), obj.get("config")
    if isinstance(class_name, str):
        name = config.get("name") if isinstance(config, dict) else None
        if isinstance(name, str):
            layer = f"layer '{name}' ({class_name})"
        if class_name in CODE_LAYERS:
            yield _Finding(
                layer, "holds Python code that would run on load; rebuild it without Lambda layers"
            )
            return
        if class_name in CODE_OBJECTS:
            yield _Finding(layer, f"holds a Python lambda that would run on load; {_REBUILD}")
            return
        custom = _custom(obj)
        if custom:
            yield _Finding(
                layer,
                f"uses {custom}, whose code would be imported on load; {_REBUILD}",
                class_name,
            )
            return
    if isinstance(config, dict) and "lambda" in (
        config.get("function_type"),
        config.get("output_shape_type"),
    ):
        yield _Finding(layer, f"holds Python code that would run on load; {_REBUILD}")
        return
    for key, value in obj.items():
        if key not in _NOT_LOADED:
            yield from _findings(value, layer, depth + 1)


def _custom(obj: dict) -> str | None:
    """How to name the custom object ``obj``, or None for a Keras one."""
    module, registered = obj.get("module"), obj.get("registered_name")
    if isinstance(module, str) and module.split(".")[0] not in TRUSTED_MODULES:
        return f"the class {obj['class_name']} from module {module!r}"
    for name in (registered, obj["class_name"]):  # tf_keras' .h5 keeps it in class_name
        if isinstance(name, str) and ">" in name:
            return f"the custom class {name}"
    return None


def _bytecode(text: str) -> bool:
    """True for base64 of a marshalled code object (how Keras stores a function)."""
    if len(text) < 40 or text[0] not in "4Y":
        return False
    try:
        head = base64.b64decode(text[:64], validate=False)
    except (binascii.Error, ValueError):
        return False
    return bool(head) and head[0] in (0x63, 0xE3)  # marshal TYPE_CODE, with or without FLAG_REF
