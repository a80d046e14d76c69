"""The baseline stage: the model every later stage is measured against.

A built-in model is trained (or its cached training reused, when the cache key
and the file's hash match); a user's model is taken as it is. Either way the
stage writes ``baseline.keras`` and its float32 ``.tflite`` and hands both on
in memory.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field

from edgeprune import artifacts, report
from edgeprune.artifacts import Artifact, Flatbuffer, RunDir
from edgeprune.stages.inputs import Inputs, KerasModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BaselineResult:
    """The baseline model, its files and how it came to be."""

    keras: Artifact
    tflite: Flatbuffer  # float32
    trained: bool
    cached: bool
    train_metrics: dict
    seconds: float
    model: KerasModel = field(repr=False)

    def entry(self) -> report.BaselineEntry:
        return report.BaselineEntry(self.trained, self.cached, self.train_metrics, self.seconds)


def baseline_stage(inp: Inputs, converted: bytes | None = None) -> BaselineResult:
    """Train the built-in model (or reuse the cached one) or take the user's
    model as it is; save it and its float32 ``.tflite``.

    ``converted``: the user's model already converted to float32 (see
    :func:`convert_up_front`), so that it is not converted twice; ignored for
    a built-in model, whose weights training changes.

    Side effects: writes ``baseline.keras``, ``baseline.json`` (a built-in's
    cache key and training metrics) and ``baseline_float32.tflite``.

    Raises:
        ConversionError: the converter refused the model.
        ArtifactWriteError: a file could not be written.
    """
    from edgeprune.adapters import converter as convert
    from edgeprune.adapters import keras as ka

    t0 = time.perf_counter()
    out, model = inp.out, inp.model
    trained = cached = False
    train_metrics: dict = {}
    key = None
    if inp.builtin is not None:
        key = _baseline_key(inp)
        cached_model = _load_cached_baseline(out, key)
        if cached_model is not None:
            model, cached = cached_model, True
            log.info("baseline: reusing cached %s", out.file(artifacts.BASELINE_KERAS))
        else:
            opts = inp.recipe.train
            log.info("baseline: training %s for %d epochs", inp.builtin.name, opts.epochs)
            ka.compile_for(model, inp.task, opts.learning_rate, inp.probabilities)
            train_metrics = ka.fit(
                model,
                inp.dataset.x_train,
                inp.dataset.y_train,
                epochs=opts.epochs,
                batch_size=opts.batch_size,
                seed=inp.recipe.seed,
                validation=inp.validation,
                description="baseline training",
            )
            trained = True
    if cached:  # the file is the cache: rewriting it would change its hash
        keras = out.record(artifacts.BASELINE_KERAS, "baseline")
    else:
        keras = out.write_with(
            artifacts.BASELINE_KERAS, lambda p: ka.save_model(model, p), "baseline", suffix=".keras"
        )
    if trained:
        artifacts.write_json_atomic(
            out.file(artifacts.BASELINE_META),
            {"key": key, "keras_sha256": keras.sha256, "train_metrics": train_metrics},
        )
        out.record(artifacts.BASELINE_META, "baseline")
    elif cached:
        out.record(artifacts.BASELINE_META, "baseline")
        meta = _read_meta(out.file(artifacts.BASELINE_META)) or {}
        train_metrics = meta.get("train_metrics", {})
    if converted is None or inp.builtin is not None:
        converted = convert.to_tflite(model, "float32")
    tflite = out.write_flatbuffer(artifacts.BASELINE_TFLITE, converted, "baseline", "float32")
    return BaselineResult(
        keras, tflite, trained, cached, train_metrics, time.perf_counter() - t0, model
    )


def convert_up_front(inp: Inputs) -> bytes | None:
    """The user's model as a float32 ``.tflite``, converted before anything is
    written, so that a model the converter refuses leaves the run folder (and the
    previous run in it) untouched; None for a built-in model (known to convert).

    Raises:
        ConversionError: the converter refused the model.
    """
    if inp.builtin is not None:
        return None
    from edgeprune.adapters import converter as convert

    return convert.to_tflite(inp.model, "float32")


def _baseline_key(inp: Inputs) -> dict:
    from edgeprune.adapters import keras as ka

    return {
        "model": inp.builtin.name,
        "model_version": inp.builtin.version,
        "data_sha256": inp.dataset.sha256,
        "train": asdict(inp.recipe.train),
        "seed": inp.recipe.seed,
        "task": inp.task,
        **ka.versions(),
    }


def _load_cached_baseline(out: RunDir, key: dict):
    """The cached model when ``baseline.json`` holds ``key`` and the file its hash, else None."""
    from edgeprune.adapters import keras as ka

    meta_path, model_path = out.file(artifacts.BASELINE_META), out.file(artifacts.BASELINE_KERAS)
    if not (os.path.isfile(meta_path) and os.path.isfile(model_path)):
        return None
    meta = _read_meta(meta_path)
    if meta is None:
        return None
    if meta.get("key") != json.loads(json.dumps(key)):
        log.info("baseline: cache key changed, retraining")
        return None
    if meta.get("keras_sha256") != artifacts.sha256_file(model_path):
        log.info("baseline: cached model does not match its hash, retraining")
        return None
    return ka.load_model(model_path)


def _read_meta(path: str) -> dict | None:
    """``baseline.json`` as a dict; None when it is unreadable or not an object
    (a damaged cache is retrained, not an error)."""
    try:
        with open(path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return meta if isinstance(meta, dict) else None
