"""Reading a user's fitted tree model without letting the file run code.

Three formats, chosen by the file's suffix:

- ``.json``: our own format (schema ``edgeprune-trees/1``), the tree arrays as
  :func:`to_json` writes them, validated on read (every child index in range, a
  tree and not a graph, values of the right width);
- ``.skops``: scikit-learn's safe format. The file's schema is read first and
  the estimator refused by name unless it is one of :data:`model.KINDS`; then
  ``skops.io.load`` trusts only what those estimators hold;
- ``.pkl``, ``.pickle``, ``.joblib``: refused unless ``unsafe_load`` is given,
  because unpickling runs whatever code the file names.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from edgeprune import _files
from edgeprune.errors import InvalidModelError, ModelLoadError, UnsupportedModelError
from edgeprune.trees.model import CLASSIFICATION, KINDS, LEAF, REGRESSION, Forest, Tree
from edgeprune.trees.model import from_sklearn as _from_sklearn

SCHEMA = "edgeprune-trees/1"
MAX_BYTES = 512 * 1024 * 1024
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
# What a fitted tree or forest holds that skops does not trust by default.
SKOPS_TRUSTED = frozenset({"sklearn.tree._tree.Tree"})
ARRAYS = ("left", "right", "feature", "threshold", "value", "n_samples", "impurity", "weight")
DTYPES = {
    "left": np.int32,
    "right": np.int32,
    "feature": np.int32,
    "threshold": np.float64,
    "value": np.float64,
    "n_samples": np.int64,
    "impurity": np.float64,
    "weight": np.float64,
}


class UnsafeModelError(ModelLoadError):
    """A pickle or joblib file, refused because loading it could run any code."""


def load_model(path: str, unsafe_load: bool = False) -> Forest:
    """The tree model in the file at ``path`` as a Forest. Reads the file only.

    Raises:
        ModelLoadError: missing, unreadable, or an unknown suffix.
        UnsafeModelError: a pickle/joblib file without ``unsafe_load``.
        InvalidModelError: a damaged file or one that breaks its format.
        UnsupportedModelError: an estimator that is not one of the six handled.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        try:
            document = json.loads(_read(path))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidModelError(
                f"{path} is not valid JSON ({exc}); write it with save_json"
            ) from None
        return from_json(document, source=path)
    if suffix == ".skops":
        return _load_skops(path)
    if suffix in PICKLE_SUFFIXES:
        if not unsafe_load:
            raise UnsafeModelError(
                f"{path}: a pickle can run any code when loaded: save it with skops "
                "(skops.io.dump) or pass --unsafe-load if you trust this file"
            )
        return _load_pickle(path)
    raise ModelLoadError(
        f"{path}: a tree model is read from .json (edgeprune's), .skops or, when trusted, "
        f".pkl/.joblib; {suffix or 'no suffix'} is none of them"
    )


def _read(path: str) -> bytes:
    try:
        return _files.read_regular(path, MAX_BYTES)
    except FileNotFoundError:
        raise ModelLoadError(f"{path} does not exist; check the model path") from None
    except _files.FileTooLargeError as exc:
        raise ModelLoadError(f"{path} holds {exc.size} bytes, over the {MAX_BYTES} cap") from None
    except OSError as exc:
        raise ModelLoadError(f"{path} cannot be read ({exc.strerror or exc})") from None


def from_estimator(estimator, source: str) -> Forest:
    """A loaded scikit-learn object as a Forest, refusing anything else by name."""
    name = type(estimator).__name__
    if name not in KINDS:
        raise UnsupportedModelError(
            f"{source} holds a {name}; edgeprune handles {', '.join(KINDS)}"
        )
    if not hasattr(estimator, "n_features_in_"):
        raise UnsupportedModelError(f"{source} holds an unfitted {name}; fit it first")
    try:
        forest = _from_sklearn(estimator, getattr(estimator, "feature_names_in_", ()))
    except ValueError as exc:  # multi-output trees
        raise UnsupportedModelError(f"{source}: {exc}; fit one output per model") from None
    return forest.with_trees(forest.trees, params=_params(estimator))


def _params(estimator) -> dict:
    keep = ("n_estimators", "max_depth", "min_samples_leaf", "min_impurity_decrease")
    params = estimator.get_params()
    return {k: params[k] for k in keep if k in params}


def _load_skops(path: str) -> Forest:
    import skops.io

    _read(path)  # the same missing/unreadable messages as the other formats
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
        top = f"{schema['__module__']}.{schema['__class__']}"
    except (zipfile.BadZipFile, KeyError, TypeError, ValueError) as exc:
        raise InvalidModelError(
            f"{path} is not a skops file ({exc}); save it with skops.io.dump"
        ) from None
    if schema["__class__"] not in KINDS or not top.startswith("sklearn."):
        raise UnsupportedModelError(f"{path} holds a {top}; edgeprune handles {', '.join(KINDS)}")
    try:
        untrusted = set(skops.io.get_untrusted_types(file=path))
        extra = sorted(untrusted - SKOPS_TRUSTED)
        if extra:
            raise UnsupportedModelError(
                f"{path} holds types a tree model does not ({', '.join(extra)}); "
                "save the fitted estimator alone with skops.io.dump"
            )
        estimator = skops.io.load(path, trusted=sorted(untrusted))
    except UnsupportedModelError:
        raise
    except Exception as exc:  # skops raises many kinds on a damaged file
        raise InvalidModelError(f"{path} could not be read by skops ({exc})") from None
    return from_estimator(estimator, path)


def _load_pickle(path: str) -> Forest:
    import joblib

    _read(path)
    try:
        estimator = joblib.load(path)
    except Exception as exc:  # unpickling can fail in any way
        raise InvalidModelError(f"{path} could not be unpickled ({exc})") from None
    return from_estimator(estimator, path)


def save_json(forest: Forest, path: str) -> None:
    """Write ``forest`` to ``path`` in our JSON format, atomically (a hidden
    temporary renamed into place), so ``path`` is never half-written.

    Raises:
        ArtifactWriteError: the file could not be written.
    """
    from edgeprune.artifacts import write_bytes_atomic

    text = json.dumps(to_json(forest), separators=(",", ":"), default=_plain)
    write_bytes_atomic(path, text.encode())


def _plain(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} cannot be written to JSON")


def to_json(forest: Forest) -> dict:
    """``forest`` as a JSON-ready dict of schema ``edgeprune-trees/1`` (floats
    written by Python's shortest round-tripping repr, so reading gives the same bits)."""
    return {
        "schema": SCHEMA,
        "task": forest.task,
        "kind": forest.kind,
        "n_features": forest.n_features,
        "classes": list(forest.classes),
        "feature_names": list(forest.feature_names),
        "meta": json.loads(json.dumps(forest.meta, default=_plain)),
        "trees": [{name: getattr(t, name).tolist() for name in ARRAYS} for t in forest.trees],
    }


def from_json(d: dict, source: str = "the model") -> Forest:
    """The Forest a :func:`to_json` dict describes, after checking every rule of
    the schema. Raises :class:`InvalidModelError` naming the first broken rule."""

    def bad(what: str):
        return InvalidModelError(f"{source}: {what}; write the file with save_json")

    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        raise bad(f"schema is not {SCHEMA!r}")
    task, kind = d.get("task"), d.get("kind")
    if task not in (CLASSIFICATION, REGRESSION):
        raise bad(f"task {task!r} is not classification or regression")
    if kind not in {k for k, _ in KINDS.values()}:
        raise bad(f"kind {kind!r} is not decision_tree, random_forest or extra_trees")
    n_features = d.get("n_features")
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise bad(f"n_features is {n_features!r}, not a whole number >= 1")
    classes = d.get("classes", [])
    if not isinstance(classes, list) or (task == CLASSIFICATION and len(classes) < 2):
        raise bad("a classifier needs a list of two or more classes")
    trees = d.get("trees")
    if not isinstance(trees, list) or not trees:
        raise bad("trees is not a non-empty list")
    width = len(classes) if task == CLASSIFICATION else 1
    members = tuple(_tree(t, i, n_features, width, bad) for i, t in enumerate(trees))
    names = d.get("feature_names", [])
    if not isinstance(names, list) or (names and len(names) != n_features):
        raise bad("feature_names does not hold one name per feature")
    meta = d.get("meta", {})
    if not isinstance(meta, dict):
        raise bad("meta is not an object")
    return Forest(task, members, n_features, tuple(classes), kind, tuple(names), meta)


def _tree(t, index: int, n_features: int, width: int, bad) -> Tree:
    where = f"tree {index}"
    if not isinstance(t, dict) or set(ARRAYS) - set(t):
        raise bad(f"{where} lacks one of {', '.join(ARRAYS)}")
    arrays = {}
    for name in ARRAYS:
        try:
            arrays[name] = np.asarray(t[name], dtype=DTYPES[name])
        except (TypeError, ValueError, OverflowError):
            raise bad(f"{where}: {name} is not an array of numbers") from None
    n = arrays["left"].shape[0] if arrays["left"].ndim == 1 else -1
    if n < 1 or any(arrays[k].shape != (n,) for k in ARRAYS if k != "value"):
        raise bad(f"{where}: the arrays are not all one-dimensional of one length")
    if arrays["value"].shape != (n, width):
        raise bad(f"{where}: value has shape {arrays['value'].shape}, not ({n}, {width})")
    left, right, feature = arrays["left"], arrays["right"], arrays["feature"]
    inner = left != LEAF
    if np.any((left == LEAF) != (right == LEAF)):
        raise bad(f"{where}: a node has one child")
    for child in (left[inner], right[inner]):
        if child.size and (child.min() < 1 or child.max() >= n):
            raise bad(f"{where}: a child index is out of range")
    if inner.any() and (feature[inner].min() < 0 or feature[inner].max() >= n_features):
        raise bad(f"{where}: a split feature is outside 0..{n_features - 1}")
    if not np.all(np.isfinite(arrays["threshold"][inner])):
        raise bad(f"{where}: a threshold is NaN or infinite")
    if not np.all(np.isfinite(arrays["value"])):
        raise bad(f"{where}: a value is NaN or infinite")
    seen = np.zeros(n, dtype=bool)
    stack = [0]
    while stack:  # every node reached once: a tree, not a graph with cycles or shared nodes
        node = stack.pop()
        if seen[node]:
            raise bad(f"{where}: node {node} is reached twice")
        seen[node] = True
        if left[node] != LEAF:
            stack += [int(left[node]), int(right[node])]
    if not seen.all():
        raise bad(f"{where}: {int((~seen).sum())} nodes are unreachable from the root")
    if not np.all(np.isfinite(arrays["weight"])) or arrays["weight"].min() < 0:
        raise bad(f"{where}: a weight is negative, NaN or infinite")
    return Tree(**arrays)
