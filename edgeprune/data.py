"""Data sets: loading, task inference and the checks against a model's shapes.

A data set is either an ``.npz`` file with ``x_train, y_train, x_test,
y_test`` (optional ``x_val, y_val, x_calib``) or the name of a built-in data
set (:data:`BUILTIN_DATASETS`). Nothing here imports TensorFlow: the model is
described by its input shape and output width only.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import math
import os
import stat
import zipfile
from dataclasses import dataclass, replace

import numpy as np

from edgeprune.errors import DataError, clip

REQUIRED_KEYS = ("x_train", "y_train", "x_test", "y_test")
OPTIONAL_KEYS = ("x_val", "y_val", "x_calib")
# A figure on fewer test samples says nothing (one sample: accuracy 0 or 1).
MIN_TEST_SAMPLES = 2
_FLOAT32_MAX = float(np.finfo(np.float32).max)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dataset:
    """Arrays for one run. Classification labels are always integer class indices
    here; ``one_hot`` records that the file held one-hot rows."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_calib: np.ndarray | None = None
    sha256: str = ""
    one_hot: bool = False
    feature_names: tuple[str, ...] = ()  # per column, where the source names them

    def describe(self) -> dict:
        def shp(a):
            return None if a is None else list(a.shape)

        return {
            "name": self.name,
            "sha256": self.sha256,
            "one_hot_labels": self.one_hot,
            "x_train": shp(self.x_train),
            "x_test": shp(self.x_test),
            "x_val": shp(self.x_val),
            "x_calib": shp(self.x_calib),
        }


def _digits() -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, shipped with
    the wheel): pixels scaled to [0, 1], a fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]
    y = d.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=0, stratify=y
    )
    return Dataset(
        "digits",
        x_train,
        y_train,
        x_test,
        y_test,
        sha256=_hash_arrays([x_train, y_train, x_test, y_test]),
        feature_names=tuple(str(n) for n in d.feature_names),  # pixel_<row>_<column>
    )


def _tabular(name: str):
    """One of scikit-learn's bundled tabular sets (``breast_cancer``: 569 samples of 30
    measurements, 2 classes; ``wine``: 178 of 13, 3 classes; shipped with the wheel) as
    float32 features, unscaled (trees do not need scaling), a fixed stratified 80/20 split.
    For tree models; ``digits`` serves them too, flattened to 64 features."""

    def load() -> Dataset:
        from sklearn import datasets
        from sklearn.model_selection import train_test_split

        d = getattr(datasets, f"load_{name}")()
        x, y = d.data.astype(np.float32), d.target.astype(np.int64)
        parts = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
        names = tuple(str(n) for n in d.feature_names)
        x_train, x_test, y_train, y_test = parts
        digest = _hash_arrays([x_train, y_train, x_test, y_test])
        return Dataset(name, x_train, y_train, x_test, y_test, sha256=digest, feature_names=names)

    return load


def _synthetic(name: str, model: str, n_train: int, n_test: int):
    """Generated data of a reference model's input shape (no download, no
    accuracy meaning): see ``models.mlperf_tiny.synthetic_data``."""

    def load() -> Dataset:
        from edgeprune.models import mlperf_tiny

        _, shape, classes = mlperf_tiny.REFERENCE[model]
        x, y = mlperf_tiny.synthetic_data(shape, classes, n=n_train + n_test, seed=0)
        parts = x[:n_train], y[:n_train], x[n_train:], y[n_train:]
        return Dataset(name, *parts, sha256=_hash_arrays(parts))

    return load


BUILTIN_DATASETS = {
    "digits": _digits,
    "breast_cancer": _tabular("breast_cancer"),
    "wine": _tabular("wine"),
    # Generated stand-ins for the MLPerf Tiny data sets, named after their task.
    **{
        name: _synthetic(name, model, n_train, n_test)
        for name, model, n_train, n_test in (
            ("kws_synthetic", "ds_cnn", 1024, 256),
            ("vww_synthetic", "mobilenet_v1", 512, 128),
            ("ic_synthetic", "resnet8", 1024, 256),
            ("ad_synthetic", "autoencoder", 1024, 256),
        )
    },
}


@functools.cache
def _builtin(name: str) -> Dataset:
    """A built-in data set, made once per process (a sweep's worker loads it for
    every trial); its arrays are read-only, since every caller shares them."""
    dataset = BUILTIN_DATASETS[name]()
    for value in vars(dataset).values():
        if isinstance(value, np.ndarray):
            value.setflags(write=False)
    return dataset


def _hash_arrays(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def load_dataset(spec: str | os.PathLike) -> Dataset:
    """Load a built-in data set by name or an ``.npz`` file by path.

    Raises:
        DataError: unknown name, unreadable file, missing keys, or arrays whose
            lengths disagree.
    """
    text = os.fspath(spec)
    if text in BUILTIN_DATASETS:
        return _builtin(text)
    if not os.path.exists(text):
        if not text.endswith(".npz") and os.sep not in text:
            raise DataError(
                f"data '{text}' is neither a built-in data set ("
                f"{', '.join(BUILTIN_DATASETS)}) nor an existing .npz file"
            )
        raise DataError(f"data file {text} does not exist; check the path")
    if os.path.isdir(text):
        raise DataError(
            f"data {text} is a folder; pass an .npz file with {', '.join(REQUIRED_KEYS)}"
        )
    if not stat.S_ISREG(os.stat(text).st_mode):
        raise DataError(f"data {text} is not a regular file; pass an .npz file")
    arrays = _read_npz(text)
    if ("x_val" in arrays) != ("y_val" in arrays):
        raise DataError(f"data file {text} has only one of x_val, y_val; give both or neither")
    for k, a in arrays.items():
        _check_array(text, k, a)
    for xk, yk in (("x_train", "y_train"), ("x_test", "y_test"), ("x_val", "y_val")):
        if xk in arrays and len(arrays[xk]) != len(arrays[yk]):
            raise DataError(
                f"data file {text}: {xk} has {len(arrays[xk])} rows but {yk} has "
                f"{len(arrays[yk])}; they must match"
            )
    n_test = len(arrays["x_test"])
    if n_test < MIN_TEST_SAMPLES:
        raise DataError(
            f"data file {text}: x_test has {n_test} sample{'s' if n_test != 1 else ''}; "
            f"accuracy on {n_test} sample{'s' if n_test != 1 else ''} is meaningless: give at "
            f"least {MIN_TEST_SAMPLES} test samples"
        )
    with open(text, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    xs = {k: arrays[k].astype(np.float32) if k.startswith("x_") else arrays[k] for k in arrays}
    return Dataset(name=os.path.basename(text), sha256=digest, **xs)


def _read_npz(path: str) -> dict[str, np.ndarray]:
    """The known arrays of an ``.npz``, each header checked before its data is read."""
    try:
        with zipfile.ZipFile(path) as z:
            members = {os.path.splitext(i.filename)[0]: i for i in z.infolist()}
            missing = [k for k in REQUIRED_KEYS if k not in members]
            if missing:
                raise DataError(
                    f"data file {path} lacks {', '.join(missing)}; it needs "
                    f"{', '.join(REQUIRED_KEYS)} (optional: {', '.join(OPTIONAL_KEYS)})"
                )
            for key in REQUIRED_KEYS + OPTIONAL_KEYS:
                if key in members:
                    _check_header(path, key, z, members[key])
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in REQUIRED_KEYS + OPTIONAL_KEYS if k in npz.files}
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"data file {path} is not a readable .npz archive "
            f"({clip(exc, 150)}); save it with numpy.savez"
        ) from None


def _check_header(path: str, key: str, z: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    """Refuse a pickled array, or one whose declared size the member cannot hold,
    before numpy allocates it."""
    with z.open(info) as fh:
        version = np.lib.format.read_magic(fh)
        read = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, _, dtype = read(fh, max_header_size=10_000)
        header_bytes = fh.tell()
    if dtype.hasobject:
        raise DataError(
            f"data file {path}: array '{key}' holds Python objects (pickled); save "
            f"numeric arrays (float or integer) with numpy.savez"
        )
    declared = math.prod(shape) * dtype.itemsize
    if declared > info.file_size - header_bytes:
        raise DataError(
            f"data file {path}: array '{key}' declares shape {tuple(shape)} of {dtype} "
            f"({declared:,} bytes) but holds {max(info.file_size - header_bytes, 0):,}; "
            f"the file is corrupt or truncated: save it again with numpy.savez"
        )


def _check_array(path: str, key: str, a: np.ndarray) -> None:
    """Numeric, one row per sample, finite in float32 (the dtype it is trained in)."""
    if a.dtype.kind == "c":
        raise DataError(
            f"data file {path}: {key} holds complex numbers; pass real values "
            f"(for example the magnitude, or real and imaginary parts as channels)"
        )
    if a.dtype.kind not in "biuf":
        raise DataError(f"data file {path}: {key} has dtype {a.dtype}; it must be numeric")
    if a.ndim == 0 or len(a) == 0:
        raise DataError(
            f"data file {path}: {key} is empty or a scalar; it needs one row per sample"
        )
    if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
        bad = int(np.count_nonzero(~np.isfinite(a)))
        raise DataError(
            f"data file {path}: {key} holds {bad} NaN or infinite value"
            f"{'s' if bad != 1 else ''}; clean or impute them first"
        )
    if a.dtype.kind == "f" and a.dtype.itemsize > 4:
        over = int(np.count_nonzero(np.abs(a) > _FLOAT32_MAX))
        if over:
            raise DataError(
                f"data file {path}: {key} holds {over} value{'s' if over != 1 else ''} "
                f"beyond float32's range (about 3.4e38), which overflow to infinity in "
                f"float32, the dtype it is trained in; scale or clip the data"
            )


def warn_degenerate(dataset: Dataset, n_classes: int) -> None:
    """Log a warning for a classification data set whose figures will mislead:
    one class in y_train, or fewer samples than classes."""
    classes = np.unique(dataset.y_train)
    if len(classes) == 1:
        log.warning(
            "y_train holds only class %s: the model learns nothing to tell classes apart",
            classes[0],
        )
    for key in ("x_train", "x_test"):
        n = len(getattr(dataset, key))
        if n < n_classes:
            log.warning(
                "%s has %d samples for %d classes: some classes cannot be seen", key, n, n_classes
            )


def infer_task(
    dataset: Dataset, output_units: int, requested: str = "auto", probabilities: bool = False
) -> str:
    """Return ``"classification"`` or ``"regression"``.

    Classification when labels are integers (or one-hot rows matching the
    output width) and the model has more than one output unit, or one unit
    with 0/1 labels or a probability output (binary; other labels are then
    reported as out of range). Anything else is regression (autoencoders:
    the targets have the shape of the output). ``requested`` forces it.
    """
    if requested != "auto":
        return requested
    y = dataset.y_train
    if _one_hot_rows(y):  # a width that does not match the output is reported by prepare()
        return "classification"
    flat = y.reshape(len(y), -1)
    integral = bool(np.all(np.equal(np.mod(flat, 1), 0)))
    if flat.shape[1] == 1 and integral:
        if output_units > 1 or probabilities or set(np.unique(flat).tolist()) <= {0, 1}:
            return "classification"
    if flat.shape[1] == 1 and output_units > 1:
        # One target per sample cannot be a regression onto several outputs.
        bad = flat[np.not_equal(np.mod(flat, 1), 0)][0]
        raise DataError(
            f"y_train holds the non-integer label {bad:g} but the model's output layer has "
            f"{output_units} units, a classifier: labels must be integer class ids "
            f"0..{output_units - 1}"
        )
    return "regression"


def check_input_shapes(dataset: Dataset, input_shape: tuple) -> None:
    """Raise :class:`DataError` unless every ``x_*`` array fits ``input_shape``
    (batch dimension first, ``None`` for unknown dimensions)."""
    want = tuple(input_shape[1:])
    for key in ("x_train", "x_test", "x_val", "x_calib"):
        x = getattr(dataset, key)
        if x is None:
            continue
        got = tuple(x.shape[1:])
        if len(got) != len(want) or any(
            w is not None and w != g for w, g in zip(want, got, strict=True)
        ):
            raise DataError(
                f"{key} has samples of shape {got} but the model's input is "
                f"{_shape_text(want)}; reshape the data or pass the matching model"
            )


def _one_hot_rows(y: np.ndarray) -> bool:
    return (
        y.ndim == 2
        and y.shape[1] > 1
        and bool(np.all((y == 0) | (y == 1)))
        and bool(np.all(y.sum(axis=1) == 1))
    )


def _is_one_hot(y: np.ndarray, output_units: int) -> bool:
    return output_units > 1 and y.ndim == 2 and y.shape[1] == output_units and _one_hot_rows(y)


def prepare(dataset: Dataset, task: str, input_shape: tuple, output_shape: tuple) -> Dataset:
    """Check ``dataset`` against a model's input and output shapes and normalise labels.

    ``input_shape`` and ``output_shape`` include the batch dimension (``None``
    for unknown dimensions). Classification labels become integer class
    indices. Raises :class:`DataError` naming the array and the mismatch.
    """
    check_input_shapes(dataset, input_shape)
    out_units = int(np.prod([d for d in output_shape[1:] if d is not None])) or 1
    if task == "regression":
        for key in ("y_train", "y_test", "y_val"):
            y = getattr(dataset, key)
            if y is None:
                continue
            if int(np.prod(y.shape[1:])) != out_units:
                raise DataError(
                    f"{key} has targets of shape {tuple(y.shape[1:])} but the model's output "
                    f"is {_shape_text(tuple(output_shape[1:]))}; for regression the targets "
                    f"must have the output's shape"
                )
        ys = {
            k: (None if getattr(dataset, k) is None else getattr(dataset, k).astype(np.float32))
            for k in ("y_train", "y_test", "y_val")
        }
        return replace(dataset, **ys)
    n_classes = max(out_units, 2)
    one_hot = _is_one_hot(dataset.y_train, out_units)
    if not one_hot and _one_hot_rows(dataset.y_train):
        raise DataError(
            f"y_train is one-hot with {dataset.y_train.shape[1]} classes but the "
            f"model's output layer has {out_units} unit"
            f"{'s' if out_units != 1 else ''}; fix the labels or the output layer"
        )
    ys = {}
    for key in ("y_train", "y_test", "y_val"):
        y = getattr(dataset, key)
        if y is None:
            ys[key] = None
            continue
        if one_hot:
            if not _is_one_hot(y, out_units):
                raise DataError(f"{key} is not one-hot like y_train; encode all labels alike")
            y = y.argmax(axis=1)
        y = y.reshape(len(y), -1)
        if y.shape[1] != 1:
            raise DataError(
                f"{key} has labels of shape {tuple(y.shape[1:])}; classification needs one "
                f"integer label per sample or one-hot rows of width {out_units}"
            )
        y = y[:, 0]
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise DataError(
                f"{key} holds non-integer labels; classification needs class "
                f'indices (or pass task = "regression")'
            )
        y = y.astype(np.int64)
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= n_classes:
            bad = hi if hi >= n_classes else lo
            raise DataError(
                f"{key} holds label {bad} but the model's output layer has {out_units} "
                f"unit{'s' if out_units != 1 else ''} (labels 0..{n_classes - 1}); fix the "
                f"labels or the output layer"
            )
        ys[key] = y
    prepared = replace(dataset, one_hot=one_hot, **ys)
    warn_degenerate(prepared, n_classes)
    return prepared


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def calibration_sample(dataset: Dataset, count: int, seed: int) -> np.ndarray:
    """The representative samples for int8 calibration: ``x_calib`` if the data
    set has it (first ``count``), else a seeded sample of ``x_train``."""
    if dataset.x_calib is not None:
        return dataset.x_calib[:count]
    rng = np.random.default_rng(seed)
    n = min(count, len(dataset.x_train))
    idx = np.sort(rng.choice(len(dataset.x_train), size=n, replace=False))
    return dataset.x_train[idx]
