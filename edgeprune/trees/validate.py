"""Validation of a tree run folder: its generated C run where it will live, and judged.

:func:`validate_tree_run` is ``edgeprune validate RUN_DIR`` for a folder a tree
run wrote (its ``report.json`` has a ``trees`` section). It runs the C in the
folder's ``firmware/`` (checked against the SHA-256 the report lists) on the
test split of the run's data:

- ``host``: compiled for this machine with ``gcc`` and run on every sample
  (:func:`edgeprune.trees.hostrun.predict`); not timed (one process runs the split);
- ``serial``: on a board flashed with ``firmware/`` and its serial harness
  (:class:`TreeSerialRunner`: the protocol of :mod:`edgeprune.protocol`, the
  board's identity the CRC-32 of ``edgeprune_model.c``), timed by the board's
  cycle counter.

The baseline is, as for a Keras run, the model before compression: the unpruned
model (``baseline_trees.json`` in scikit-learn), named so in the printout and the
rules' text where a Keras run says "float baseline"; the host reference is the
final model itself (scikit-learn's :meth:`Forest.predict` of
``pruned_trees.json``): ``agreement`` is the share of samples the C predicts as
that reference does (a regressor: within the export's stated tolerance). The
rules of :mod:`edgeprune.rules.validation` judge the accuracy (MSE) lost against
the baseline and the agreement; the result goes under ``validation.<runner>``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace

import numpy as np

from edgeprune import artifacts, metrics, report, run_folder
from edgeprune.errors import BadInputError, DeviceError, Interrupted, QualityError
from edgeprune.report import ValidationResult
from edgeprune.rules import validation as rules
from edgeprune.runners.serial import SerialRunner, parse_address
from edgeprune.trees.model import model_inputs
from edgeprune.trees.run_stages import BASELINE_JSON, C_NAME, FIRMWARE, PRUNED_JSON

log = logging.getLogger(__name__)
RUNNERS = ("host", "serial")


@dataclass(frozen=True)
class _Tensor:
    """What :class:`SerialRunner` reads of a tensor: its shape and dtype."""

    shape: tuple
    dtype: str


class TreeSerialRunner(SerialRunner):
    """The serial runner for a tree model's harness: the same transport, retries and
    protocol; the model is the generated ``<name>_model.c`` (its identity), the input
    the float32 features, the output the prediction (int32 class index, or the value)."""

    def __init__(self, model_c: bytes, n_features: int, out_dtype: str, address: str):
        self.model, self.address, self.timeout_s, self.retries = model_c, address, 10.0, 3
        self.port, self.baud = parse_address(address)
        self.inp = _Tensor((1, n_features), "float32")
        self.out = _Tensor((1,), out_dtype)
        self.retried = 0

    def _quantize(self, x: np.ndarray) -> bytes:
        return np.ascontiguousarray(x, dtype="<f4").tobytes()

    def _dequantize(self, raw: np.ndarray) -> np.ndarray:
        return np.asarray(raw)


def _unchanged(folder: str, run, name: str) -> str:
    """The path of artifact ``name``, present and as the report lists it."""
    path = os.path.join(folder, name)
    if not os.path.isfile(path):
        raise BadInputError(f"{path} is missing from the run folder; rerun `edgeprune run`")
    recorded = run.sha256_of(name)
    if recorded is not None and recorded != artifacts.sha256_file(path):
        raise BadInputError(
            f"{path} changed since report.json was written; rerun `edgeprune run` so that "
            "the report describes the model"
        )
    return path


def _files(folder: str, run) -> dict[str, str]:
    """The model's C from ``firmware/``, each file as the report lists it."""
    out = {}
    for fname in (f"{C_NAME}_model.h", f"{C_NAME}_model.c"):
        with open(_unchanged(folder, run, f"{FIRMWARE}/{fname}"), encoding="utf-8") as fh:
            out[fname] = fh.read()
    return out


def _test_split(run, data: str | None, forest):
    from edgeprune.data import BUILTIN_DATASETS, load_dataset
    from edgeprune.trees.pipeline import _labels
    from edgeprune.trees.train import check_xy

    notes = []
    name = run.inputs.data_name
    if data is None and name not in BUILTIN_DATASETS:
        raise BadInputError(
            f"the run used the data file {name}; pass it (or new data of the same features) "
            "with --data"
        )
    dataset = load_dataset(data or name)
    if run.inputs.data_sha256 and dataset.sha256 != run.inputs.data_sha256:
        notes.append(f"validation data {dataset.name} is not the data the run used ({name})")
    x, y = check_xy(dataset.x_test, _labels(dataset.y_test), forest.task)
    if x.shape[1] != run.trees.n_features:
        raise BadInputError(
            f"{dataset.name} has {x.shape[1]} features, the run's model reads "
            f"{run.trees.n_features}; pass the run's data"
        )
    return dataset.name, x, y, notes


def _agreement(forest, got: np.ndarray, expected: np.ndarray) -> dict:
    from edgeprune.trees.hostrun import regression_tolerance

    n = len(got)
    if forest.task == "classification":
        same, tolerance = got == expected[:n], 0.0
        basis = "same class as scikit-learn's predict"
        diff = (~same).astype(np.float64)
        unit = "samples"
    else:
        tolerance = regression_tolerance(forest)
        diff = np.abs(got.astype(np.float64) - expected[:n])
        same = diff <= tolerance
        basis = f"within {tolerance:.3g} of scikit-learn's predict (float32 leaf rounding)"
        unit = "output units"
    return {
        "agreement": float(np.mean(same)) if n else None,
        "basis": basis,
        "unit": unit,
        "n_equal": int(np.count_nonzero(same)),
        "n": n,
        "max_abs_diff": float(diff.max()) if n else 0.0,
        "mean_abs_diff": float(diff.mean()) if n else 0.0,
        "rows_differing": [int(i) for i in np.nonzero(~same)[0][:10]],
    }


def _quality(forest, y, predicted) -> dict:
    if forest.task == "classification":
        lookup = {c: i for i, c in enumerate(forest.classes)}
        truth = np.asarray([lookup[v] for v in y.tolist()])
        index = np.asarray([lookup[v] for v in predicted.tolist()], dtype=np.int64)
        onehot = np.eye(len(forest.classes))[index]
        return metrics.classification(truth, onehot, len(forest.classes))
    return metrics.regression(y, np.asarray(predicted, dtype=np.float64))


def _run_c(runner: str, files, forest, x, address: str | None):
    """(predictions as labels/values, RunOutput-like facts)."""
    from edgeprune.runners import RunOutput
    from edgeprune.trees import hostrun

    classifier = forest.task == "classification"
    if runner == "host":
        raw = hostrun.predict(files, C_NAME, x)
        out = RunOutput(
            raw,
            raw,
            np.zeros(0),
            "not timed: one process runs the whole split",
            "this machine: the C compiled by gcc -O2 -ffp-contract=off",
            False,
            "",
        )
    else:
        header = files[f"{C_NAME}_model.h"]
        out_dtype = (
            "<i4" if classifier else ("<f8" if f"double {C_NAME}_predict(" in header else "<f4")
        )
        tsr = TreeSerialRunner(files[f"{C_NAME}_model.c"].encode(), x.shape[1], out_dtype, address)
        out = tsr.run(x)
    got = np.asarray(out.raw).reshape(len(out.raw))
    predicted = np.asarray(forest.classes)[got.astype(np.int64)] if classifier else got
    return predicted, out


def unpruned_wording(checks) -> tuple:
    """The validation rules with their "float baseline" named as what it is for a tree
    run: the unpruned model (rules' text and evidence; figures unchanged)."""
    word = "unpruned model"
    return tuple(
        replace(
            r,
            rule=r.rule.replace("float baseline", word),
            evidence=r.evidence.replace("float baseline", word),
        )
        for r in checks
    )


def validate_tree_run(
    folder: str,
    runner: str = "host",
    address: str | None = None,
    data: str | None = None,
    options=None,
) -> ValidationResult:
    """Validate the tree run in ``folder`` on ``runner`` ("host", or "serial" with
    ``address``), record the result in its report, and raise if it failed.

    Side effects: ``validation.<runner>`` of the folder's ``report.json`` and its
    ``report.html``, written under the folder's lock (also for a failed or partial run).

    Raises:
        BadInputError: not a tree run, a changed or missing C file, the wrong data,
            another runner, no gcc (CompilerMissingError).
        DeviceError / Interrupted: the board failed / Ctrl-C (partial results written).
        QualityError: a validation rule failed.
    """
    from edgeprune.recipe_options import ValidateOptions
    from edgeprune.trees.load import load_model

    if runner not in RUNNERS:
        raise BadInputError(
            f"a tree model's C is validated on the host or a serial board, not {runner}; "
            "use --runner host or --runner serial --device PORT"
        )
    if runner == "serial" and address is None:
        raise BadInputError("the serial runner needs the board's port: --device /dev/ttyACM0")
    opts = options or ValidateOptions()
    with run_folder.hold(folder, "validate"):
        run = report.read(os.path.join(folder, report.REPORT_NAME))
        if getattr(run, "trees", None) is None:
            raise BadInputError(f"{folder} holds no tree run; validate it as a Keras run")
        forest = load_model(_unchanged(folder, run, PRUNED_JSON))
        baseline = load_model(_unchanged(folder, run, BASELINE_JSON))
        files = _files(folder, run)
        name, x_all, y, notes = _test_split(run, data, forest)
        if opts.samples is not None and opts.samples < len(x_all):
            x_all, y = x_all[: opts.samples], y[: opts.samples]
        x = model_inputs(forest, x_all).astype(np.float32)
        expected = forest.predict(x)
        predicted, out = _run_c(runner, files, forest, x, address)
        n = len(predicted)
        m = _quality(forest, y[:n], predicted) if n else {}
        unpruned = baseline.predict(model_inputs(baseline, x_all[:n]))
        base = _quality(baseline, y[:n], unpruned) if n else {}
        agree = _agreement(forest, predicted, expected)
        checks = rules.evaluate(forest.task, rules.Evidence(m, base, agree), opts) if n else ()
        checks = unpruned_wording(checks)
        from edgeprune.stages.validate import latency_stats

        result = ValidationResult(
            runner,
            out.where,
            out.timing,
            PRUNED_JSON,
            run.sha256_of(PRUNED_JSON) or "",
            name,
            "test (x_test)",
            len(x),
            n,
            out.partial,
            out.error,
            m,
            base,
            agree,
            latency_stats(out.times_ms),
            checks,
            (*notes, "reference: scikit-learn's predict of the pruned model"),
            out.clock_hz,
        )
        report.add_validation(folder, result)
        from edgeprune.presentation.html import refresh_run_html

        refresh_run_html(folder)
    if result.partial and result.error.startswith("interrupted"):
        raise Interrupted(f"{result.error}; the partial results are in report.json", result)
    if result.partial:
        raise DeviceError(
            f"validation on {runner} is partial: {result.error}; the partial results are in "
            "report.json",
            result,
        )
    if not result.ok:
        raise QualityError(
            f"{PRUNED_JSON} fails validation on {runner}: {rules.failures(result.rules)}", result
        )
    return result
