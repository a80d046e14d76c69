"""The pipeline driver: resolve inputs → baseline → structured pruning → prune →
strip → quantize → evaluate.

:func:`run` reads like the table of contents of a run. Every stage is a
function from artifacts and options to a frozen result holding the paths it
wrote and the figures it measured. All input is loaded and checked before
the first byte is written, so bad input leaves the output folder untouched.

TensorFlow is imported by the stage functions, not by this module's import.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

from edgeprune import __version__, artifacts
from edgeprune.artifacts import RunDir
from edgeprune.data import (
    Dataset,
    calibration_sample,
    check_input_shapes,
    infer_task,
    load_dataset,
    prepare,
)
from edgeprune.errors import BadInputError, BudgetError, DataError, QualityError
from edgeprune.recipe import Recipe
from edgeprune.schedule import SchedulePlan, plan_schedule

log = logging.getLogger(__name__)

STAGES = ("baseline", "structured", "prune", "quantize", "evaluate")


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class Inputs:
    """Everything a run needs, loaded and checked; nothing written yet."""

    model: Any  # tf_keras model (untrained for a built-in)
    model_source: str  # a path, or "builtin:<name>"
    builtin: Any  # models.BuiltinModel or None
    dataset: Dataset
    task: str
    n_classes: int
    probabilities: bool
    recipe: Recipe
    out: RunDir
    layer_plans: list
    schedule: SchedulePlan | None
    load_notes: dict = field(default_factory=dict)  # Keras 3 rebuild, wrappers stripped
    input_sha256: str | None = None  # of the model file or SavedModel folder, before any write


@dataclass(frozen=True)
class BaselineResult:
    keras_path: str
    tflite_path: str
    trained: bool
    cached: bool
    train_metrics: dict
    seconds: float
    model: Any = field(repr=False, default=None)  # the baseline tf_keras model


@dataclass(frozen=True)
class StructuredStageResult:
    """Whole channels removed and the model rebuilt (``structured`` recipe section)."""

    keras_path: str
    tflite_path: str
    result: Any = field(repr=False)  # structured.schedule.StructuredResult
    evaluated_on: str  # the split the accuracy floor was checked on
    fit: dict | None  # goal fit: the device, and each candidate's check
    seconds: float
    metric_name: str = "accuracy"  # of each round: accuracy, or mse (regression)

    @property
    def model(self):
        return self.result.model

    def to_dict(self, recipe: Recipe) -> dict:
        r = self.result
        s = recipe.structured
        goal = {"goal": s.goal}
        if s.goal == "width":
            goal["width"] = s.width
        elif s.goal in ("params", "macs"):
            goal["reduction"] = s.reduction
        return {
            **goal, "importance": s.importance, "ranking": s.ranking, "floor": s.floor,
            "params_before": r.params_before, "params_after": r.params,
            "macs_before": r.macs_before, "macs_after": r.macs,
            "params_reduction": r.params_before / max(r.params, 1),
            "macs_reduction": r.macs_before / max(r.macs, 1),
            "rounds": [{"round": x.round, "removed_channels": x.removed_channels,
                        "width": x.width, "params": x.params, "macs": x.macs,
                        "metric": (None if x.metric is None else
                                   x.metric if self.metric_name == "accuracy" else -x.metric),
                        "rebuild_max_abs_diff": x.rebuild_max_abs_diff,
                        "verify_samples": x.verify_samples,
                        "widths": {n: [a, b] for n, a, b in x.widths}} for x in r.rounds],
            "metric_split": self.evaluated_on, "metric_name": self.metric_name,
            "kept_whole": dict(r.kept_whole), "stopped": r.stopped, "notes": list(r.notes),
            "fit": self.fit, "seconds": self.seconds,
        }


@dataclass(frozen=True)
class PruneResult:
    keras_path: str
    tflite_path: str
    schedule: SchedulePlan
    layers: list  # prune.LayerSparsity
    overall_sparsity: float
    strip_check: Any  # prune.StripCheck
    fine_tune_metrics: dict
    seconds: float


@dataclass(frozen=True)
class ModelSize:
    """Sizes measured on a .tflite file. ``bytes`` is what flash holds: the
    flatbuffer stores every weight, zero or not. ``gzip_bytes`` is what a
    compressed over-the-air update would carry."""

    path: str
    mode: str
    bytes: int
    gzip_bytes: int
    weight_elements: int
    zero_weight_elements: int
    zero_weight_fraction: float
    parameter_count: int
    ops: dict


@dataclass(frozen=True)
class QuantizeResult:
    tflite_path: str
    mode: str
    calibration_samples: int
    calibration_source: str
    seconds: float


@dataclass(frozen=True)
class StageEval:
    stage: str
    path: str
    metrics: dict
    agreement: dict


@dataclass(frozen=True)
class RunResult:
    out_dir: str
    report_path: str
    task: str
    baseline: BaselineResult
    prune: PruneResult
    quantize: QuantizeResult
    sizes: dict  # stage -> ModelSize
    evaluations: list  # StageEval, in stage order
    seconds: float
    report: dict = field(repr=False, default_factory=dict)
    device_check: Any = None  # budget.CheckResult when run for a target
    structured: StructuredStageResult | None = None


# ---------------------------------------------------------------- inputs


def resolve_inputs(model: str | None, data: str | None, recipe: Recipe,
                   out: str | None, plan_pruning: bool = True,
                   require_file: bool = False, writes: tuple[str, ...] = ()) -> Inputs:
    """Load and check the model, data, recipe and output folder; write nothing.

    ``model`` is a path or ``None`` for the built-in default; ``data`` is an
    ``.npz`` path, a built-in data set name, or ``None`` for the built-in
    model's own data set.

    Raises:
        BadInputError (and subclasses): anything that makes the run impossible.
    """
    from edgeprune.models import BUILTIN_MODELS, DEFAULT_MODEL

    builtin, load_notes = None, {}
    if require_file and (model is None or (model in BUILTIN_MODELS
                                           and not os.path.exists(model))):
        raise BadInputError(f"'{model}' is a built-in model name, not a Keras model file; "
                            f"a single stage needs a .keras, .h5 or SavedModel path (the "
                            f"whole pipeline runs the built-in default)")
    if model is None or model in BUILTIN_MODELS:
        builtin = BUILTIN_MODELS[model or DEFAULT_MODEL]
        data = data or builtin.dataset
        source = f"builtin:{builtin.name}"
        default_out = os.path.join("runs", builtin.name)
    else:
        if data is None:
            raise BadInputError("a model needs data to prune and evaluate with; pass an .npz "
                                "file or a built-in data set name")
        source = os.path.abspath(model)
        default_out = os.path.join("runs", _stem(model))
        if require_file and os.path.isfile(os.path.join(os.path.dirname(source),
                                                        artifacts.REPORT_NAME)):
            default_out = os.path.dirname(source)  # a stage on a run folder's artifact
    out_dir = out or default_out
    artifacts.check_out_dir(out_dir)
    for name in writes:
        target = os.path.abspath(os.path.join(out_dir, name))
        if model is not None and os.path.abspath(model) == target:
            raise BadInputError(f"the input model {model} would be overwritten by this "
                                f"stage's {name}; choose another output directory")
    dataset = load_dataset(data)

    from edgeprune.adapters import keras as ka
    from edgeprune.adapters import tfmot as pr

    if builtin is not None:
        ka.seed_everything(recipe.seed)
        n_out = (_builtin_classes(dataset, builtin.name) if builtin.task == "classification"
                 else None)
        keras_model = builtin.build(dataset.x_train.shape[1:], n_out)
    else:
        try:
            keras_model, conversion = ka.load_user_model(model)
            if conversion:
                load_notes["converted_from_keras3"] = conversion
        except ka.WrappedModelError:
            keras_model = pr.load_stripped(model)
            load_notes["stripped_pruning_wrappers_on_load"] = True
    # hashed after loading (which proved it readable), before anything is written
    input_sha256 = artifacts.sha256_path(source) if builtin is None else None
    shapes = ka.shapes(keras_model)
    check_input_shapes(dataset, shapes.input_shape)
    probabilities = ka.outputs_are_probabilities(keras_model, dataset.x_train)
    task = infer_task(dataset, shapes.output_units, recipe.task, probabilities)
    dataset = prepare(dataset, task, shapes.input_shape, shapes.output_shape)
    n_classes = max(shapes.output_units, 2) if task == "classification" else 0
    layer_plans, schedule = [], None
    if plan_pruning:
        layer_plans = pr.plan_layers(keras_model, recipe.prune)
        schedule = plan_schedule(recipe.prune, len(dataset.x_train))
    return Inputs(keras_model, source, builtin, dataset, task, n_classes, probabilities,
                  recipe, RunDir(out_dir), layer_plans, schedule, load_notes, input_sha256)


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or "model"


def _builtin_classes(dataset: Dataset, name: str) -> int:
    """Classes for a built-in classifier's head, from integer or one-hot labels."""
    y = dataset.y_train
    if y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1)):
        return y.shape[1]
    flat = y.reshape(len(y), -1)
    if flat.shape[1] != 1 or not np.all(np.equal(np.mod(flat, 1), 0)) or flat.min() < 0:
        raise DataError(f"the built-in {name} is a classifier: it needs integer class labels "
                        f"(or one-hot rows) in y_train; pass your own model for other tasks")
    return int(flat.max()) + 1


# ---------------------------------------------------------------- stages


def baseline_stage(inp: Inputs) -> BaselineResult:
    """Train the built-in model (or reuse the cached one) or take the user's
    model as it is; save it and its float32 ``.tflite``."""
    from edgeprune.adapters import converter as convert
    from edgeprune.adapters import keras as ka

    t0 = time.perf_counter()
    out, model = inp.out, inp.model
    trained = cached = False
    train_metrics: dict = {}
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
            train_metrics = ka.fit(model, inp.dataset.x_train, inp.dataset.y_train,
                                   epochs=opts.epochs, batch_size=opts.batch_size,
                                   seed=inp.recipe.seed, validation=_validation(inp.dataset))
            trained = True
    if cached:  # the file is the cache: rewriting it would change its hash
        keras_path = out.record(artifacts.BASELINE_KERAS, "baseline")
    else:
        keras_path = out.write_with(artifacts.BASELINE_KERAS,
                                    lambda p: ka.save_model(model, p), "baseline",
                                    suffix=".keras")
    if trained:
        artifacts.write_json_atomic(out.file(artifacts.BASELINE_META), {
            "key": key, "keras_sha256": out.artifacts[artifacts.BASELINE_KERAS]["sha256"],
            "train_metrics": train_metrics})
        out.record(artifacts.BASELINE_META, "baseline")
    elif cached:
        out.record(artifacts.BASELINE_META, "baseline")
        with open(out.file(artifacts.BASELINE_META), encoding="utf-8") as fh:
            train_metrics = json.load(fh).get("train_metrics", {})
    tflite_path = out.write_bytes(artifacts.BASELINE_TFLITE,
                                  convert.to_tflite(model, "float32"), "baseline")
    return BaselineResult(keras_path, tflite_path, trained, cached, train_metrics,
                          time.perf_counter() - t0, model)


def _validation(dataset: Dataset):
    return None if dataset.x_val is None else (dataset.x_val, dataset.y_val)


def _baseline_key(inp: Inputs) -> dict:
    from edgeprune.adapters import keras as ka

    return {"model": inp.builtin.name, "model_version": inp.builtin.version,
            "data_sha256": inp.dataset.sha256, "train": asdict(inp.recipe.train),
            "seed": inp.recipe.seed, "task": inp.task, **ka.versions()}


def _load_cached_baseline(out: RunDir, key: dict):
    from edgeprune.adapters import keras as ka

    meta_path, model_path = out.file(artifacts.BASELINE_META), out.file(artifacts.BASELINE_KERAS)
    if not (os.path.isfile(meta_path) and os.path.isfile(model_path)):
        return None
    try:
        with open(meta_path, encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("key") != json.loads(json.dumps(key)):
        log.info("baseline: cache key changed, retraining")
        return None
    if meta.get("keras_sha256") != artifacts.sha256_file(model_path):
        log.info("baseline: cached model does not match its hash, retraining")
        return None
    return ka.load_model(model_path)


def structured_stage(inp: Inputs, model, device=None) -> StructuredStageResult:
    """Remove whole channels to the recipe's goal, fine-tuning after each round;
    save the narrower model and its float32 ``.tflite``.

    The accuracy floor is checked on ``x_val`` when the data has it, else on
    the test set (the report says which). Each round's rebuild is verified on
    up to 256 test samples before fine-tuning.

    Raises:
        BadInputError: no channel can be cut, or the goal cannot be served.
        VerificationError: a rebuilt model does not compute what it must.
    """
    from edgeprune import metrics
    from edgeprune.adapters import converter as convert
    from edgeprune.adapters import keras as ka
    from edgeprune.structured.rounds import StructuredOptions, prune_structured, sample_loss

    t0 = time.perf_counter()
    s, ds = inp.recipe.structured, inp.dataset
    opts = StructuredOptions(importance=s.importance, ranking=s.ranking, floor=s.floor,
                             goal=s.goal, target=s.width if s.goal == "width" else s.reduction,
                             rounds=s.rounds, min_accuracy=s.min_accuracy, samples=s.samples)

    def fine_tune(candidate) -> None:
        if s.epochs:
            ka.compile_for(candidate, inp.task, s.learning_rate, inp.probabilities)
            ka.fit(candidate, ds.x_train, ds.y_train, epochs=s.epochs, batch_size=s.batch_size,
                   seed=inp.recipe.seed, validation=_validation(ds))

    split = "validation" if ds.x_val is not None else "test"
    x_eval, y_eval = (ds.x_val, ds.y_val) if ds.x_val is not None else (ds.x_test, ds.y_test)

    def evaluate(candidate) -> float:
        m = metrics.evaluate(inp.task, y_eval, _scores(inp, ka.predict(candidate, x_eval)),
                             inp.n_classes)
        return m["accuracy"] if inp.task == "classification" else -m["mse"]

    fit_log: list[dict] = []
    fits = _fit_check(inp, device, fit_log) if s.goal == "fit" else None
    log.info("structured: %s goal, %s importance, %s ranking, %d round(s)", s.goal,
             s.importance, s.ranking, s.rounds)
    result = prune_structured(
        model, opts, x=ds.x_train, y=ds.y_train,
        loss=sample_loss(inp.task, ka.shapes(model).output_units, inp.probabilities),
        fine_tune=fine_tune, evaluate=evaluate, fits=fits, verify_x=ds.x_test[:256],
        log=log.info)
    fit = None
    if device is not None and s.goal == "fit":
        fit = {"target": device.id, "quantize_mode": inp.recipe.quantize.mode,
               "candidates": [{"width": w, **entry} for (w, _), entry
                              in zip(result.fit_trials, fit_log, strict=True)]}
    out = inp.out
    keras_path = out.write_with(artifacts.STRUCTURED_KERAS,
                                lambda p: ka.save_model(result.model, p), "structured",
                                suffix=".keras")
    tflite_path = out.write_bytes(artifacts.STRUCTURED_TFLITE,
                                  convert.to_tflite(result.model, "float32"), "structured")
    return StructuredStageResult(keras_path, tflite_path, result, split, fit,
                                 time.perf_counter() - t0,
                                 "accuracy" if inp.task == "classification" else "mse")


def _fit_check(inp: Inputs, device, trials: list):
    """``fits(model)`` for the goal fit: convert a candidate as the quantize stage
    will (16 calibration samples: sizes do not depend on them) and check it
    against ``device``'s budgets. Each check is appended to ``trials``."""
    import tempfile

    from edgeprune.adapters import converter as convert
    from edgeprune.stages import check as device_check

    mode = inp.recipe.quantize.mode
    calib = calibration_sample(inp.dataset, 16, inp.recipe.seed) if mode == "int8" else None

    def fits(model) -> bool:
        with tempfile.TemporaryDirectory(prefix="edgeprune-fit-") as tmp:
            path = os.path.join(tmp, f"candidate_{mode}.tflite")
            with open(path, "wb") as fh:
                fh.write(convert.to_tflite(model, mode, calib))
            result = device_check.check_options(path, device, inp.recipe.budget)
        measured = result.evidence.latency_measured is not None
        trials.append({"params": int(model.count_params()), "ok": result.ok,
                       "rules": {r.name: {"figure": r.figure, "budget": r.budget,
                                          "unit": r.unit, "ok": r.ok,
                                          **({"basis": "measured" if measured else "estimate"}
                                             if r.name == "latency" else {})}
                                 for r in result.rules if r.figure is not None}})
        return result.ok

    return fits


def prune_stage(inp: Inputs, model) -> PruneResult:
    """Wrap, fine-tune with the planned schedule, strip, and verify.

    Raises:
        VerificationError: a pruned layer missed its sparsity, or stripping
            changed the outputs.
    """
    from edgeprune.adapters import converter as convert
    from edgeprune.adapters import keras as ka
    from edgeprune.adapters import tfmot as pr

    t0 = time.perf_counter()
    opts, ds = inp.recipe.prune, inp.dataset
    # planned again on the model given: structured pruning may have narrowed it
    layer_plans = inp.layer_plans if model is inp.model else pr.plan_layers(model, opts)
    pruned_count = sum(p.pruned for p in layer_plans)
    log.info("prune: %s to %.2f on %d layer(s), %d steps", inp.schedule.kind,
             pr.requested_sparsity(opts), pruned_count, inp.schedule.total_steps)
    wrapped = pr.wrap(model, layer_plans, inp.schedule, opts)
    fit_metrics = pr.fine_tune(wrapped, ds.x_train, ds.y_train, task=inp.task,
                               probabilities=inp.probabilities, opts=opts, seed=inp.recipe.seed,
                               validation=_validation(ds))
    stripped = pr.strip(wrapped)
    log.info("strip: verifying outputs on %d test samples", len(ds.x_test))
    strip_check = pr.verify_strip(wrapped, stripped, ds.x_test)
    layers = pr.measure_sparsity(stripped, layer_plans, opts)
    pr.check_sparsity(layers)
    keras_path = inp.out.write_with(artifacts.PRUNED_KERAS,
                                    lambda p: ka.save_model(stripped, p), "prune",
                                    suffix=".keras")
    tflite_path = inp.out.write_bytes(artifacts.PRUNED_TFLITE,
                                      convert.to_tflite(stripped, "float32"), "prune")
    return PruneResult(keras_path, tflite_path, inp.schedule, layers,
                       pr.overall_sparsity(layers), strip_check, fit_metrics,
                       time.perf_counter() - t0)


def quantize_stage(inp: Inputs, model, mode: str | None = None) -> QuantizeResult:
    """Convert the stripped model in the recipe's quantization mode."""
    from edgeprune.adapters import converter as convert

    t0 = time.perf_counter()
    mode = mode or inp.recipe.quantize.mode
    calib, n, source = None, 0, ""
    if mode == "int8":
        calib = calibration_sample(inp.dataset, inp.recipe.quantize.calibration_samples,
                                   inp.recipe.seed)
        n = len(calib)
        source = "x_calib" if inp.dataset.x_calib is not None else "x_train (seeded sample)"
    log.info("quantize: %s%s", mode, f" with {n} calibration samples from {source}" if n else "")
    data = convert.to_tflite(model, mode, calib)
    path = inp.out.write_bytes(artifacts.final_tflite_name(mode), data, "quantize")
    return QuantizeResult(path, mode, n, source, time.perf_counter() - t0)


def measure_size(path: str, mode: str) -> ModelSize:
    """Sizes, op counts and the zero fraction of the weights inside a ``.tflite``."""
    from edgeprune.tflite import inspect_model

    with open(path, "rb") as fh:
        data = fh.read()
    info = inspect_model(data)
    w = info.weights
    return ModelSize(os.path.basename(path), mode, len(data),
                     len(gzip.compress(data, compresslevel=9, mtime=0)), w.elements,
                     w.zero_elements, w.zero_fraction, info.parameter_count,
                     dict(info.op_counts))


def evaluate_stage(inp: Inputs, paths: dict[str, str],
                   reference: np.ndarray | None = None) -> list[StageEval]:
    """Run each ``.tflite`` on the test set with LiteRT; metrics and agreement
    with ``reference`` outputs, by default the first model's (the baseline's)."""
    from edgeprune import metrics
    from edgeprune.runners.host import HostRunner

    ds = inp.dataset
    results = []
    for stage, path in paths.items():
        with open(path, "rb") as fh:
            outputs = _scores(inp, HostRunner(fh.read()).predict(ds.x_test))
        if reference is None:
            reference = outputs
        m = metrics.evaluate(inp.task, ds.y_test, outputs, inp.n_classes)
        results.append(StageEval(stage, os.path.basename(path), m,
                                 metrics.agreement(inp.task, outputs, reference)))
        log.info("evaluate: %s %s", stage, _headline(inp.task, m))
    return results


def _scores(inp: Inputs, outputs: np.ndarray) -> np.ndarray:
    """One logit unit becomes a probability, so that 0.5 is the class threshold."""
    from edgeprune import metrics

    return metrics.scores(inp.task, inp.probabilities, outputs)


def _headline(task: str, m: dict) -> str:
    if task == "classification":
        return f"accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f}"
    return f"mse {m['mse']:.5g}"


# ---------------------------------------------------------------- driver


def run(model: str | None = None, data: str | None = None, recipe: Recipe | None = None,
        out: str | None = None, target: str | None = None) -> RunResult:
    """Run the whole pipeline and write the run directory.

    With ``target`` (a device profile id or path), the final model is checked
    against the device's budgets and, for a TFLite Micro device, the
    ``firmware/`` folder is written.

    Side effects: writes artifacts and ``report.json`` under ``out`` (default
    ``runs/<model name>``, or ``build/<target>``). Raises
    :class:`~edgeprune.errors.BadInputError` before writing anything when the
    input is unusable, :class:`~edgeprune.errors.VerificationError` when a
    check after a stage fails, and, after writing everything,
    :class:`~edgeprune.errors.BudgetError` (a device budget failed) or
    :class:`~edgeprune.errors.QualityError` (quantization cost too much).
    """
    t0 = time.perf_counter()
    recipe = recipe or Recipe()
    device = _resolve_target(target, recipe)
    if device is not None and out is None:
        out = os.path.join("build", device.id)
    inp = resolve_inputs(model, data, recipe, out, writes=(
        artifacts.BASELINE_KERAS, artifacts.STRUCTURED_KERAS, artifacts.PRUNED_KERAS))
    _check_structured(inp, device)
    if device is not None and device.runtime == "tflm":
        _preflight_tflm(inp, device)
    previous = inp.out.begin_run()
    base = baseline_stage(inp)
    structured = None
    if recipe.structured.goal != "none":
        structured = structured_stage(inp, base.model, device)
    pruned = prune_stage(inp, structured.model if structured else base.model)
    from edgeprune.adapters import keras as ka

    stripped = ka.load_model(pruned.keras_path)
    quant = quantize_stage(inp, stripped)
    dense_choice = None
    if device is not None and device.runtime == "tflm" and quant.mode == "int8":
        dense_choice = dense_quantization_stage(inp, stripped, pruned.tflite_path, quant)
    tflites = {"baseline": base.tflite_path}
    if structured is not None:
        tflites["structured"] = structured.tflite_path
    tflites.update({"pruned": pruned.tflite_path, "final": quant.tflite_path})
    modes = {s: "float32" for s in tflites} | {"final": quant.mode}
    sizes = {s: measure_size(p, modes[s]) for s, p in tflites.items()}
    evals = evaluate_stage(inp, tflites)
    by_stage = {e.stage: e for e in evals}
    check = quantization_check(inp, by_stage["pruned"].metrics, by_stage["final"].metrics,
                               "pruned float32")
    device_check = None
    if device is not None:
        device_check = device_stage(inp, quant.tflite_path, device)
    inp.out.remove_unlisted(previous)
    seconds = time.perf_counter() - t0
    report = build_report(inp, base, pruned, quant, sizes, evals, check, seconds, structured)
    if device_check is not None:
        report["stages"]["check"] = device_check.to_dict()
        report["target"] = device.to_dict()
    if dense_choice is not None:
        report["stages"]["quantize"]["dense_quantization"] = dense_choice
    report_path = inp.out.write_report(report)
    result = RunResult(inp.out.path, report_path, inp.task, base, pruned, quant, sizes, evals,
                       seconds, report, device_check, structured)
    if device_check is not None and not device_check.ok:
        failed = ", ".join(r.name for r in device_check.rules if not r.ok)
        raise BudgetError(f"{os.path.basename(quant.tflite_path)} does not fit {device.id}: "
                          f"{failed} over budget (see the table and report.json); prune "
                          f"harder, remove filters, or raise the budget", result)
    _raise_if_failed(check, result)
    return result


def _check_structured(inp: Inputs, device) -> None:
    """What the structured section asks for must be servable; before any write."""
    s = inp.recipe.structured
    if s.goal == "fit" and device is None:
        raise BadInputError("structured.goal = \"fit\" needs a target device whose budgets the "
                            "model must pass; run for a target, or choose goal width, params "
                            "or macs")
    if s.goal == "none":
        return
    if s.min_accuracy is not None and inp.task != "classification":
        raise BadInputError(f"structured.min_accuracy applies to classification; this is a "
                            f"{inp.task} task: remove it")
    from edgeprune.structured.graph import analyze
    from edgeprune.structured.importance import check_criterion

    graph = analyze(inp.model)
    if not graph.prunable_groups:
        raise BadInputError(
            f"structured pruning has no channels to cut in {inp.model.name} ("
            + "; ".join(f"{layer}: {why}" for layer, why in
                        [*graph.blocked.items(),
                         *((g.producers[0], g.reason) for g in graph.groups)][:4])
            + "); set structured.goal = \"none\"")
    check_criterion(inp.model, graph, s.importance)


def dense_quantization_stage(inp: Inputs, stripped, pruned_tflite: str,
                             quant: QuantizeResult) -> dict:
    """Per-channel or per-tensor Dense weights: keep the smaller arena that stays
    within the quantization budget. Rewrites the final model if per-tensor wins.

    The converter quantizes Dense weights per output channel by default; TFLite
    Micro then keeps per-channel multipliers and shifts in the arena, which
    cost one autoencoder 11 KB. Both variants are measured here.
    """
    from edgeprune import metrics
    from edgeprune.adapters import converter as convert
    from edgeprune.runners.host import HostRunner
    from edgeprune.tflm import probe as micro

    ds = inp.dataset
    with open(pruned_tflite, "rb") as fh:
        float_out = _scores(inp, HostRunner(fh.read()).predict(ds.x_test))
    before = metrics.evaluate(inp.task, ds.y_test, float_out, inp.n_classes)
    calib = calibration_sample(inp.dataset, inp.recipe.quantize.calibration_samples,
                               inp.recipe.seed)
    with open(quant.tflite_path, "rb") as fh:
        variants = {"per_channel": fh.read()}
    variants["per_tensor"] = convert.to_tflite(stripped, "int8", calib, per_tensor_dense=True)
    figures = {}
    for name, data in variants.items():
        out = _scores(inp, HostRunner(data).predict(ds.x_test))
        after = metrics.evaluate(inp.task, ds.y_test, out, inp.n_classes)
        figures[name] = {"bytes": len(data),
                         "arena_bytes": micro.find_arena(data).required_bytes(),
                         "check": quantization_check(inp, before, after, "pruned float32"),
                         **{k: v for k, v in after.items() if k != "confusion_matrix"}}
    pc, pt = figures["per_channel"], figures["per_tensor"]
    if pt["check"]["ok"] and not pc["check"]["ok"]:
        picked = "per_tensor"
        why = "per-channel Dense weights miss the quantization budget; per-tensor stay within it"
        inp.out.write_bytes(os.path.basename(quant.tflite_path), variants["per_tensor"],
                            "quantize")
    elif pt["arena_bytes"] < pc["arena_bytes"] and pt["check"]["ok"]:
        picked = "per_tensor"
        why = (f"per-tensor Dense weights need {pc['arena_bytes'] - pt['arena_bytes']:,} B less "
               f"arena and stay within the quantization budget")
        inp.out.write_bytes(os.path.basename(quant.tflite_path), variants["per_tensor"],
                            "quantize")
    elif pt["arena_bytes"] < pc["arena_bytes"]:
        picked = "per_channel"
        why = ("per-tensor Dense weights need less arena but miss the quantization budget "
               f"({pt['check']['measured']:.4f} > {pt['check']['budget']})")
    else:
        picked = "per_channel"
        why = "per-tensor Dense weights save no arena"
    log.info("quantize: Dense weights %s: %s", picked.replace("_", "-"), why)
    return {"picked": picked, "why": why, **figures}


def _preflight_tflm(inp: Inputs, device) -> None:
    """Before any training or writing: convert the input model to int8 (a few
    calibration samples) and prove TFLite Micro runs every op and the firmware
    can register them. Pruning keeps the ops, so this answers for the final model."""
    from edgeprune.adapters import converter as convert
    from edgeprune.stages import check as device_check
    from edgeprune.tflite import inspect_model

    data = convert.to_tflite(inp.model, "int8", calibration_sample(inp.dataset, 16,
                                                                   inp.recipe.seed))
    device_check.ensure_runs_on_tflm(data, inspect_model(data), "the model", device)


def _resolve_target(target: str | None, recipe: Recipe):
    """Load the device profile and check the recipe can serve it; write nothing."""
    if target is None:
        return None
    from edgeprune.target import load_target

    device = load_target(target)
    mode = recipe.quantize.mode
    if device.model_dtype == "int8" and mode != "int8":
        raise BadInputError(f"{device.id} runs int8 models only but quantize.mode = {mode!r}; "
                            f"use quantize.mode = \"int8\"")
    return device


def device_stage(inp: Inputs, tflite_path: str, device):
    """Check the final model against the device and, for TFLite Micro devices,
    write the firmware folder with the measured arena."""
    from edgeprune.firmware import emit as firmware
    from edgeprune.stages import check as device_check

    result = device_check.check_options(tflite_path, device, inp.recipe.budget)
    if device.runtime == "tflm":
        with open(tflite_path, "rb") as fh:
            data = fh.read()
        files = firmware.write_firmware(data, os.path.basename(tflite_path),
                                        inp.out.file("firmware"),
                                        result.evidence.arena_bytes)
        for path in files.files.values():
            inp.out.record(os.path.relpath(path, inp.out.path), "firmware")
    return result


def quantization_check(inp: Inputs, before: dict, after: dict, reference: str) -> dict:
    """The quantization budget: how much quality conversion may cost.

    Classification: accuracy may drop by at most ``quantize.max_accuracy_drop``
    (absolute). Regression: MSE may grow by at most ``quantize.max_mse_increase``
    (relative). Compared with ``before``, the float model that was converted.
    """
    q = inp.recipe.quantize
    if inp.task == "classification":
        measured = before["accuracy"] - after["accuracy"]
        return {"rule": "accuracy drop from quantization", "reference": reference,
                "measured": measured, "budget": q.max_accuracy_drop,
                "ok": bool(measured <= q.max_accuracy_drop + 1e-12)}
    measured = (after["mse"] - before["mse"]) / max(before["mse"], 1e-12)
    return {"rule": "relative MSE increase from quantization", "reference": reference,
            "measured": measured, "budget": q.max_mse_increase,
            "ok": bool(measured <= q.max_mse_increase + 1e-12)}


def _raise_if_failed(check: dict, result=None) -> None:
    if not check["ok"]:
        key = ("quantize.max_accuracy_drop" if "accuracy" in check["rule"]
               else "quantize.max_mse_increase")
        raise QualityError(f"{check['rule']} is {check['measured']:.4f} against the "
                           f"{check['reference']} model, over the budget {check['budget']} "
                           f"({key}); the artifacts and report.json are written; calibrate "
                           f"with more or better samples, or choose another mode", result)


# ---------------------------------------------------------------- report


def library_versions() -> dict[str, str]:
    names = ["tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
             "tflite-micro", "numpy", "scikit-learn", "click"]
    out = {"python": platform.python_version(), "edgeprune": __version__}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def describe_inputs(inp: Inputs) -> dict:
    src = {"model": inp.model_source, "data": inp.dataset.describe(), "task": inp.task,
           "n_classes": inp.n_classes, "outputs_are_probabilities": inp.probabilities}
    if inp.input_sha256:
        src["model_sha256"] = inp.input_sha256
    src.update(inp.load_notes)
    return src


def build_report(inp: Inputs, base: BaselineResult, pruned: PruneResult,
                 quant: QuantizeResult, sizes: dict, evals: list, check: dict,
                 seconds: float, structured: StructuredStageResult | None = None) -> dict:
    from edgeprune.adapters import tfmot as pr

    report = {
        "tool": {"name": "edgeprune", "version": __version__},
        "versions": library_versions(),
        "seed": inp.recipe.seed,
        "recipe": inp.recipe.to_dict(),
        "inputs": describe_inputs(inp),
        "stages": {
            "baseline": {"trained": base.trained, "cached": base.cached,
                         "train_metrics": base.train_metrics, "seconds": base.seconds},
            **({"structured": structured.to_dict(inp.recipe)} if structured is not None else {}),
            "prune": {
                "schedule": pruned.schedule.to_dict(),
                "requested_sparsity": pr.requested_sparsity(inp.recipe.prune),
                "overall_sparsity": pruned.overall_sparsity,
                "layers": pr.to_dicts(pruned.layers),
                "skipped_layers": {s.name: s.reason for s in pruned.layers if not s.pruned},
                "fine_tune_metrics": pruned.fine_tune_metrics,
                "seconds": pruned.seconds,
            },
            "strip": asdict(pruned.strip_check),
            "quantize": {"mode": quant.mode, "calibration_samples": quant.calibration_samples,
                         "calibration_source": quant.calibration_source,
                         "experimental_sparsity": False, "check": check,
                         "seconds": quant.seconds},
            "evaluate": _eval_entries(evals, "baseline_float32.tflite"),
        },
        "sizes": {s: asdict(v) for s, v in sizes.items()},
        "notes": size_notes({s: asdict(v) for s, v in sizes.items()}),
        "seconds": seconds,
    }
    return report


def _eval_entries(evals: list, reference: str) -> dict:
    return {e.stage: {"artifact": e.path, **e.metrics, **e.agreement,
                      "agreement_reference": reference} for e in evals}


def size_notes(sizes: dict) -> list[str]:
    """Plain statements about what the sizes (``report.json`` dicts) mean."""
    notes = []
    b, st, p = sizes.get("baseline"), sizes.get("structured"), sizes.get("pruned")
    if b and st:
        notes.append(
            f"Structured pruning removed whole channels: the structured float32 flatbuffer is "
            f"{st['bytes']} bytes vs {b['bytes']} baseline ({b['bytes'] / st['bytes']:.2f}x "
            f"smaller, {st['parameter_count']} vs {b['parameter_count']} parameters); this "
            f"saving is real on every runtime.")
    before, name = (st, "structured") if st else (b, "baseline")
    if before and p:
        notes.append(
            f"Unstructured sparsity does not shrink the flatbuffer: pruned float32 is "
            f"{p['bytes']} bytes vs {before['bytes']} {name} "
            f"({p['bytes'] - before['bytes']:+d}); TFLite Micro stores and runs every weight. "
            f"Only the gzip size changes ({p['gzip_bytes']} vs {before['gzip_bytes']} bytes), "
            f"which matters for over-the-air updates, not for flash or RAM.")
    return notes


# ---------------------------------------------------------------- single stages


@dataclass(frozen=True)
class StageRunResult:
    """What a single-stage command (``prune``, ``quantize``) wrote and measured."""

    out_dir: str
    report_path: str
    stage: str
    task: str
    figures: dict
    sizes: dict
    evaluations: list
    seconds: float


def _reference_outputs(inp: Inputs, model):
    from edgeprune.adapters import keras as ka

    return _scores(inp, ka.predict(model, inp.dataset.x_test))


def _input_entry(inp: Inputs) -> dict:
    return {"model": inp.model_source, "sha256": inp.input_sha256,
            "data": inp.dataset.name, "data_sha256": inp.dataset.sha256}


# The artifact a stage produces that a later stage takes as its input.
_STAGE_OUTPUT = {"baseline": artifacts.BASELINE_KERAS, "prune": artifacts.PRUNED_KERAS}
_ORDER = ("baseline", "prune", "quantize")


def _finish_stage(inp: Inputs, stage: str, figures: dict, sizes: dict, evals: list,
                  reference: str, t0: float) -> StageRunResult:
    """Merge one stage's results into ``report.json``.

    Earlier stages are kept only while they produced this stage's input (same
    model hash, same data); everything else in the old report, and this
    stage's own older artifacts, is dropped and its files deleted, so the
    report always describes the folder. The input file itself is never deleted.
    Every stage entry records its own input, seed and recipe.
    """
    fresh = set(inp.out.artifacts)
    old = inp.out.load_report() or {}
    stages = old.get("stages", {})
    same_data = old.get("inputs", {}).get("data", {}).get("sha256") == inp.dataset.sha256
    keep: set[str] = set()
    for earlier in _ORDER[:_ORDER.index(stage)]:
        produced = inp.out.artifacts.get(_STAGE_OUTPUT.get(earlier, ""), {}).get("sha256")
        if same_data and produced and produced == inp.input_sha256:
            keep = set(_ORDER[:_ORDER.index(earlier) + 1])
    for entry in keep:  # a kept entry written by `run` gets its own input, seed and recipe
        if entry in stages and "input" not in stages[entry]:
            stages[entry].update({"input": old.get("inputs"), "seed": old.get("seed"),
                                  "recipe": old.get("recipe")})
    protected = {os.path.abspath(inp.model_source)}
    for name, entry in list(inp.out.artifacts.items()):
        stale_stage = entry.get("stage") not in keep and name not in fresh
        if stale_stage and os.path.abspath(inp.out.file(name)) not in protected:
            inp.out.forget_artifact(name)
        elif stale_stage:
            del inp.out.artifacts[name]
    evaluate = {k: v for k, v in stages.get("evaluate", {}).items()
                if {"baseline": "baseline", "pruned": "prune"}.get(k) in keep}
    sizes_all = {k: v for k, v in old.get("sizes", {}).items()
                 if {"baseline": "baseline", "pruned": "prune"}.get(k) in keep}
    stages = {k: v for k, v in stages.items() if k in keep}
    stages[stage] = {"input": _input_entry(inp), "seed": inp.recipe.seed,
                     "recipe": inp.recipe.to_dict(), **figures}
    evaluate.update(_eval_entries(evals, reference))
    stages["evaluate"] = evaluate
    sizes_all.update({s: asdict(v) for s, v in sizes.items()})
    report = {"tool": {"name": "edgeprune", "version": __version__},
              "versions": library_versions(), "seed": inp.recipe.seed,
              "recipe": inp.recipe.to_dict(), "inputs": describe_inputs(inp),
              "stages": stages, "sizes": sizes_all, "notes": size_notes(sizes_all)}
    path = inp.out.write_report(report)
    return StageRunResult(inp.out.path, path, stage, inp.task, figures, sizes, evals,
                          time.perf_counter() - t0)


def prune_only(model: str, data: str, recipe: Recipe | None = None,
               out: str | None = None, target: str | None = None) -> StageRunResult:
    """Prune, strip and verify the Keras model file ``model``; write
    ``pruned.keras`` and its float32 ``.tflite``; evaluate it against the
    input model. With a ``structured`` goal, whole channels go first
    (``structured.keras``); the goal fit checks candidates against ``target``.
    Merges into an existing ``report.json`` in ``out``."""
    from edgeprune.adapters import tfmot as pr

    t0 = time.perf_counter()
    recipe = recipe or Recipe()
    device = _resolve_target(target, recipe)
    inp = resolve_inputs(model, data, recipe, out, require_file=True,
                         writes=(artifacts.STRUCTURED_KERAS, artifacts.PRUNED_KERAS))
    _check_structured(inp, device)
    reference = _reference_outputs(inp, inp.model)
    structured = None
    if recipe.structured.goal != "none":
        structured = structured_stage(inp, inp.model, device)
    result = prune_stage(inp, structured.model if structured else inp.model)
    paths = {"structured": structured.tflite_path} if structured else {}
    paths["pruned"] = result.tflite_path
    sizes = {stage: measure_size(path, "float32") for stage, path in paths.items()}
    evals = evaluate_stage(inp, paths, reference)
    figures = {"schedule": result.schedule.to_dict(),
               "requested_sparsity": pr.requested_sparsity(inp.recipe.prune),
               "overall_sparsity": result.overall_sparsity,
               "layers": pr.to_dicts(result.layers),
               "skipped_layers": {s.name: s.reason for s in result.layers if not s.pruned},
               "strip": asdict(result.strip_check),
               "fine_tune_metrics": result.fine_tune_metrics, "seconds": result.seconds}
    if structured is not None:
        figures["structured"] = structured.to_dict(inp.recipe)
    return _finish_stage(inp, "prune", figures, sizes, evals,
                         f"input model {os.path.basename(model)}", t0)


def quantize_only(model: str, data: str, recipe: Recipe | None = None,
                  out: str | None = None) -> StageRunResult:
    """Convert the Keras model file ``model`` in the recipe's quantization mode;
    evaluate the ``.tflite`` against the Keras model's own outputs and hold it
    to the quantization budget.

    Raises:
        QualityError: (after writing) conversion cost more than the budget.
    """
    from edgeprune import metrics

    t0 = time.perf_counter()
    inp = resolve_inputs(model, data, recipe or Recipe(), out, plan_pruning=False,
                         require_file=True)
    reference = _reference_outputs(inp, inp.model)
    result = quantize_stage(inp, inp.model)
    sizes = {"final": measure_size(result.tflite_path, result.mode)}
    evals = evaluate_stage(inp, {"final": result.tflite_path}, reference)
    before = metrics.evaluate(inp.task, inp.dataset.y_test, reference, inp.n_classes)
    check = quantization_check(inp, before, evals[0].metrics, "input Keras")
    figures = {"mode": result.mode, "calibration_samples": result.calibration_samples,
               "calibration_source": result.calibration_source,
               "experimental_sparsity": False, "check": check, "seconds": result.seconds}
    stage_result = _finish_stage(inp, "quantize", figures, sizes, evals,
                                 f"input model {os.path.basename(model)}", t0)
    _raise_if_failed(check, stage_result)
    return stage_result
