"""The first stage: load and check everything a run needs, before a byte is written.

:func:`resolve_inputs` loads the model (a file or a built-in), the data and the
output folder, infers the task and plans the pruning; :func:`resolve_target`
loads the device profile; :func:`check_structured` and :func:`preflight_tflm`
prove that the recipe's structured goal and the target can be served. Any of
them raises :class:`~edgeprune.errors.BadInputError` (or a subclass), so bad
input never leaves a file behind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np

from edgeprune import artifacts, report
from edgeprune.artifacts import RunDir
from edgeprune.data import (
    Dataset,
    calibration_sample,
    check_input_shapes,
    infer_task,
    load_dataset,
    prepare,
)
from edgeprune.errors import BadInputError, DataError
from edgeprune.recipe import Recipe
from edgeprune.schedule import SchedulePlan, plan_schedule
from edgeprune.target import Target, load_target

# A tf_keras model. Its class lives in the Keras adapter, which only the
# adapters import; the stages hand models on without looking inside.
KerasModel: TypeAlias = Any


@dataclass(frozen=True)
class Inputs:
    """Everything a run needs, loaded and checked; nothing written yet.

    ``model`` is untrained for a built-in; ``model_source`` is a path or
    ``builtin:<name>``; ``builtin`` the :class:`edgeprune.models.BuiltinModel`
    or None. ``load_notes`` records a Keras 3 rebuild or stripped pruning
    wrappers; ``input_sha256`` hashes the model file or SavedModel folder
    before any write.
    """

    model: KerasModel
    model_source: str
    builtin: Any
    dataset: Dataset
    task: str
    n_classes: int
    probabilities: bool
    recipe: Recipe
    out: RunDir
    layer_plans: list
    schedule: SchedulePlan | None
    load_notes: dict = field(default_factory=dict)
    input_sha256: str | None = None

    def entry(self) -> report.InputsEntry:
        """The ``inputs`` entry of the report."""
        return report.InputsEntry(
            self.model_source,
            self.dataset.describe(),
            self.task,
            self.n_classes,
            self.probabilities,
            model_sha256=self.input_sha256,
            **self.load_notes,
        )

    def stage_input(self) -> dict:
        """The ``input`` of a stage command's entry: the model and the data it ran on."""
        return {
            "model": self.model_source,
            "sha256": self.input_sha256,
            "data": self.dataset.name,
            "data_sha256": self.dataset.sha256,
        }

    def scores(self, outputs: np.ndarray) -> np.ndarray:
        """One logit unit becomes a probability, so that 0.5 is the class threshold."""
        from edgeprune import metrics

        return metrics.scores(self.task, self.probabilities, outputs)

    def calibration(self, count: int | None = None) -> np.ndarray:
        """The seeded calibration sample (``count`` samples, default the recipe's)."""
        n = self.recipe.quantize.calibration_samples if count is None else count
        return calibration_sample(self.dataset, n, self.recipe.seed)

    @property
    def validation(self):
        """``(x_val, y_val)`` for Keras' ``fit``, or None when the data has none."""
        ds = self.dataset
        return None if ds.x_val is None else (ds.x_val, ds.y_val)


def resolve_inputs(
    model: str | None,
    data: str | None,
    recipe: Recipe,
    out: str | None,
    plan_pruning: bool = True,
    require_file: bool = False,
    writes: tuple[str, ...] = (),
) -> Inputs:
    """Load and check the model, data, recipe and output folder; write nothing.

    ``model`` is a path or ``None`` for the built-in default; ``data`` is an
    ``.npz`` path, a built-in data set name, or ``None`` for the built-in
    model's own data set. ``writes`` are the artifacts the caller will write:
    none may be the input model itself.

    Raises:
        BadInputError (and subclasses): anything that makes the run impossible.
    """
    from edgeprune.models import BUILTIN_MODELS, DEFAULT_MODEL

    builtin, load_notes = None, {}
    if require_file and (model is None or (model in BUILTIN_MODELS and not os.path.exists(model))):
        raise BadInputError(
            f"'{model}' is a built-in model name, not a Keras model file; "
            f"a single stage needs a .keras, .h5 or SavedModel path (the "
            f"whole pipeline runs the built-in default)"
        )
    if model is None or model in BUILTIN_MODELS:
        builtin = BUILTIN_MODELS[model or DEFAULT_MODEL]
        data = data or builtin.dataset
        source = f"builtin:{builtin.name}"
        default_out = os.path.join("runs", builtin.name)
    else:
        if data is None:
            raise BadInputError(
                "a model needs data to prune and evaluate with; pass an .npz "
                "file or a built-in data set name"
            )
        source = os.path.abspath(model)
        default_out = os.path.join("runs", _stem(model))
        if require_file and os.path.isfile(
            os.path.join(os.path.dirname(source), report.REPORT_NAME)
        ):
            default_out = os.path.dirname(source)  # a stage on a run folder's artifact
    out_dir = out or default_out
    artifacts.check_out_dir(out_dir)
    for name in writes:
        target = os.path.abspath(os.path.join(out_dir, name))
        if model is not None and os.path.abspath(model) == target:
            raise BadInputError(
                f"the input model {model} would be overwritten by this "
                f"stage's {name}; choose another output directory"
            )
    dataset = load_dataset(data)

    from edgeprune.adapters import keras as ka
    from edgeprune.adapters import tfmot as pr

    if builtin is not None:
        ka.seed_everything(recipe.seed)
        n_out = (
            _builtin_classes(dataset, builtin.name) if builtin.task == "classification" else None
        )
        keras_model = builtin.build(dataset.x_train.shape[1:], n_out)
    else:
        try:
            keras_model, conversion = ka.load_user_model(model, unsafe_load=recipe.unsafe_load)
            if conversion:
                load_notes["converted_from_keras3"] = conversion
        except ka.WrappedModelError:
            keras_model = pr.load_stripped(model, unsafe_load=recipe.unsafe_load)
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
    return Inputs(
        keras_model,
        source,
        builtin,
        dataset,
        task,
        n_classes,
        probabilities,
        recipe,
        RunDir(out_dir),
        layer_plans,
        schedule,
        load_notes,
        input_sha256,
    )


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(os.path.normpath(path)))[0] or "model"


def _builtin_classes(dataset: Dataset, name: str) -> int:
    """Classes for a built-in classifier's head, from integer or one-hot labels."""
    y = dataset.y_train
    if y.ndim == 2 and y.shape[1] > 1 and np.all((y == 0) | (y == 1)):
        return y.shape[1]
    flat = y.reshape(len(y), -1)
    if flat.shape[1] != 1 or not np.all(np.equal(np.mod(flat, 1), 0)) or flat.min() < 0:
        raise DataError(
            f"the built-in {name} is a classifier: it needs integer class labels "
            f"(or one-hot rows) in y_train; pass your own model for other tasks"
        )
    return int(flat.max()) + 1


#: Quantization modes whose models TFLite Micro cannot run, and why.
TFLM_LACKS = {
    "float16": "float16 weights, which its DEQUANTIZE cannot read",
    "dynamic": "int8 weights with float activations, which it has no kernels for",
}


def resolve_target(target: str | Target | None, recipe: Recipe) -> Target | None:
    """Load the device profile (None for no ``target``) and check the recipe can
    serve it; write nothing.

    Raises:
        BadInputError: unknown or invalid profile, a quantization mode the
            target cannot run, or a cost model that is unknown or (not forced)
            for another core.
    """
    if target is None:
        return None
    target = target if isinstance(target, Target) else load_target(target)
    from edgeprune.estimates.latency import select_cost_model

    select_cost_model(target, recipe.budget.cost_model, recipe.budget.force_cost_model)
    mode = recipe.quantize.mode
    # TFLite Micro runs int8 and float32 models (its DEQUANTIZE reads no float16 and
    # it has no kernels for float activations with int8 weights).
    if target.runtime == "tflm" and mode in TFLM_LACKS:
        raise BadInputError(
            f"TFLite Micro on {target.id} runs int8 and float32 models but quantize.mode = "
            f'{mode!r} makes {TFLM_LACKS[mode]}; use quantize.mode = "int8" (the dtype its '
            f'{target.kernels} kernels are optimised for) or "float32"'
        )
    return target


def check_structured(inp: Inputs, target: Target | None) -> None:
    """What the structured section asks for must be servable; before any write.

    Raises:
        BadInputError: a fit goal without a target, an accuracy floor on a
            regression task, no channel to cut, or an unusable importance.
    """
    s = inp.recipe.structured
    if s.goal == "fit" and target is None:
        raise BadInputError(
            'structured.goal = "fit" needs a target device whose budgets the '
            "model must pass; run for a target, or choose goal width, params "
            "or macs"
        )
    if s.goal == "none":
        return
    if s.min_accuracy is not None and inp.task != "classification":
        raise BadInputError(
            f"structured.min_accuracy applies to classification; this is a "
            f"{inp.task} task: remove it"
        )
    from edgeprune.structured.graph import analyze
    from edgeprune.structured.importance import check_criterion

    graph = analyze(inp.model)
    if not graph.prunable_groups:
        raise BadInputError(
            f"structured pruning has no channels to cut in {inp.model.name} ("
            + "; ".join(
                f"{layer}: {why}"
                for layer, why in [
                    *graph.blocked.items(),
                    *((g.producers[0], g.reason) for g in graph.groups),
                ][:4]
            )
            + '); set structured.goal = "none"'
        )
    check_criterion(inp.model, graph, s.importance)


def preflight_tflm(inp: Inputs, target: Target) -> None:
    """Before any training or writing: convert the input model to int8 (a few
    calibration samples) and prove TFLite Micro runs every op and the firmware
    can register them. Pruning keeps the ops, so this answers for the final model.

    Raises:
        TargetMismatchError: TFLite Micro lacks an op, or firmware cannot register it.
    """
    from edgeprune.adapters import converter as convert
    from edgeprune.stages import check as check_stage
    from edgeprune.tflite import inspect_model

    data = convert.to_tflite(inp.model, "int8", inp.calibration(16))
    check_stage.ensure_runs_on_tflm(data, inspect_model(data), "the model", target)
