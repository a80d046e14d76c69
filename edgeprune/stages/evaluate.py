"""The evaluate stage: what each ``.tflite`` weighs and how well it works.

Sizes come from the bytes (:func:`measure_size`); quality from running each
model on the test set with LiteRT on this host (:func:`evaluate_stage`). Both
take the models in memory, as the stages handed them on.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass

import numpy as np

from edgeprune import report
from edgeprune.artifacts import Flatbuffer
from edgeprune.report import ModelSize
from edgeprune.stages.inputs import Inputs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageEval:
    """One model on the test set: ``metrics`` (accuracy, macro-F1, confusion
    matrix; or MSE, MAE) and ``agreement`` with the reference outputs."""

    stage: str
    path: str  # the artifact's file name
    metrics: dict
    agreement: dict

    def entry(self, reference: str) -> report.EvalEntry:
        return report.EvalEntry(self.path, {**self.metrics, **self.agreement}, reference)


def measure_size(model: Flatbuffer) -> ModelSize:
    """Sizes, op counts and the zero fraction of the weights inside a ``.tflite``."""
    w = model.info.weights
    return ModelSize(
        model.name,
        model.mode,
        len(model.data),
        len(gzip.compress(model.data, compresslevel=9, mtime=0)),
        w.elements,
        w.zero_elements,
        w.zero_fraction,
        model.info.parameter_count,
        dict(model.info.op_counts),
    )


def predict(inp: Inputs, data: bytes) -> np.ndarray:
    """The scores of the ``.tflite`` ``data`` on the test set (LiteRT, this host)."""
    from edgeprune.runners.host import HostRunner

    return inp.scores(HostRunner(data).predict(inp.dataset.x_test))


def metrics_of(inp: Inputs, scores: np.ndarray) -> dict:
    """Accuracy, macro-F1 and the confusion matrix (or MSE, MAE) of test-set ``scores``."""
    from edgeprune import metrics

    return metrics.evaluate(inp.task, inp.dataset.y_test, scores, inp.n_classes)


def evaluate_stage(
    inp: Inputs, models: dict[str, Flatbuffer], reference: np.ndarray | None = None
) -> list[StageEval]:
    """Run each ``.tflite`` on the test set with LiteRT; metrics and agreement
    with ``reference`` outputs, by default the first model's (the baseline's)."""
    from edgeprune import metrics

    results = []
    for stage, model in models.items():
        outputs = predict(inp, model.data)
        if reference is None:
            reference = outputs
        m = metrics_of(inp, outputs)
        results.append(
            StageEval(stage, model.name, m, metrics.agreement(inp.task, outputs, reference))
        )
        log.info("evaluate: %s %s", stage, _headline(inp.task, m))
    return results


def _headline(task: str, m: dict) -> str:
    if task == "classification":
        return f"accuracy {m['accuracy']:.4f} macro-F1 {m['macro_f1']:.4f}"
    return f"mse {m['mse']:.5g}"
