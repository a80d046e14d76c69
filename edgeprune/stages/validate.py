"""On-device validation: run a run folder's final model where it will live, and judge it.

:func:`validate` reads the run's ``report.json`` (which model, task, classes,
data), takes the validation split of the data (``x_val``, else ``x_test``),
computes two references on this host with LiteRT's reference kernels, the
float baseline (``baseline_float32.tflite``) and the final model itself,
then runs the final model on the chosen runner and measures:

* quality: accuracy, macro-F1 and the confusion matrix (or MSE, MAE);
* agreement with the host reference: the fraction of samples with the same
  class (regression: every output within 1 LSB), and the max and mean
  absolute difference of output 0 in LSB of its quantization (in float units
  for a float model);
* latency: p50, p90, p99 and max of the runner's per-inference times, with
  what that clock measures.

Two rules decide (:mod:`edgeprune.rules.validation`, budgets from
``[validate]`` in the recipe): the accuracy drop against the float baseline
on the same samples (regression: the relative MSE increase), and the
agreement. The result goes into ``report.json`` under ``validation.<runner>``,
tied to the model's SHA-256; a partial run is written and marked partial.

:func:`validate_run` is the whole of ``edgeprune validate`` in one call:
choose the runner for the target and address (:mod:`edgeprune.runners.choice`),
validate, write the report (and a measurements row), then raise if the run failed.
"""

from __future__ import annotations

import logging
import os

import numpy as np

from edgeprune import metrics, report, run_folder
from edgeprune.errors import BadInputError, DeviceError, Interrupted, QualityError
from edgeprune.recipe_options import ValidateOptions
from edgeprune.report import ValidationResult
from edgeprune.rules import validation as rules
from edgeprune.runners.choice import choose_runner, open_runner
from edgeprune.stages.run_models import RunInfo, read_run, runner_model
from edgeprune.target import Target

log = logging.getLogger(__name__)


def _split(dataset) -> tuple[np.ndarray, np.ndarray, str]:
    if dataset.x_val is not None:
        return dataset.x_val, dataset.y_val, "validation (x_val)"
    return dataset.x_test, dataset.y_test, "test (x_test; the data has no x_val)"


def reference_agreement(
    task: str, out: np.ndarray, raw: np.ndarray, ref_out: np.ndarray, ref_raw: np.ndarray
) -> dict:
    """Agreement of a runner's outputs with the host reference (the same model
    on this host), sample by sample, with the output difference in LSB of an
    integer output. Not :func:`edgeprune.metrics.agreement`, which compares a
    model's outputs with the float baseline's."""
    n = len(out)
    integer = np.asarray(raw).dtype.kind in "iu"
    if not n:  # nothing completed (a device that failed at once): no figure to give
        return {
            "agreement": None,
            "basis": "no sample completed",
            "unit": f"LSB of the {np.asarray(raw).dtype} output"
            if integer
            else "float output units",
            "max_abs_diff": None,
            "mean_abs_diff": None,
        }
    if integer:
        diff = np.abs(
            raw.reshape(n, -1).astype(np.int64) - ref_raw[:n].reshape(n, -1).astype(np.int64)
        ).astype(np.float64)
        unit = f"LSB of the {np.asarray(raw).dtype} output"
        within = diff.max(axis=1) <= 1
    else:
        diff = np.abs(out.reshape(n, -1) - ref_out[:n].reshape(n, -1)).astype(np.float64)
        unit = "float output units"
        scale = np.maximum(1.0, np.abs(ref_out[:n].reshape(n, -1)))
        within = (diff <= 1e-5 * scale).all(axis=1)
    if task == "classification":
        same = metrics.predicted_classes(out) == metrics.predicted_classes(ref_out[:n])
        rate, basis = float(np.mean(same)), "same class as the host reference"
    else:
        rate = float(np.mean(within))
        basis = (
            "every output within 1 LSB of the host reference"
            if integer
            else "every output within 1e-5 (relative) of the host reference"
        )
    return {
        "agreement": rate,
        "basis": basis,
        "unit": unit,
        "max_abs_diff": float(diff.max()) if diff.size else 0.0,
        "mean_abs_diff": float(diff.mean()) if diff.size else 0.0,
    }


def latency_stats(times_ms: np.ndarray) -> dict:
    t = np.asarray(times_ms, dtype=np.float64)
    if not t.size:
        return {"n": 0}
    return {
        "n": int(t.size),
        "p50": float(np.percentile(t, 50)),
        "p90": float(np.percentile(t, 90)),
        "p99": float(np.percentile(t, 99)),
        "max": float(t.max()),
        "mean": float(t.mean()),
        # invokes the board timed at 0: its timer did not advance (not a measurement)
        "zero": int((t <= 0).sum()),
    }


def load_split(run: RunInfo, data: str | None, samples: int | None):
    """The samples to validate on, as the run prepared them, and notes about them."""
    from edgeprune.data import BUILTIN_DATASETS, load_dataset, prepare
    from edgeprune.tflite import inspect_model

    notes = []
    if data is None:
        if run.data_name not in BUILTIN_DATASETS:
            raise BadInputError(
                f"the run used the data file {run.data_name}; pass it (or new "
                f"validation data of the same shape) as the data to validate on"
            )
        data = run.data_name
    dataset = load_dataset(data)
    if run.data_sha256 and dataset.sha256 != run.data_sha256:
        notes.append(
            f"validation data {dataset.name} is not the data the run used ({run.data_name})"
        )
    info = inspect_model(run.model_path)
    in_shape = (None, *info.inputs[0].shape[1:])
    out_shape = (None, *info.outputs[0].shape[1:])
    dataset = prepare(dataset, run.task, in_shape, out_shape)
    x, y, split = _split(dataset)
    if samples is not None and samples < len(x):
        x, y = x[:samples], y[:samples]
        split += f", first {samples} samples"
    return dataset.name, x.astype(np.float32), y, split, notes


def validate(
    run: RunInfo, runner, data: str | None = None, opts: ValidateOptions | None = None
) -> ValidationResult:
    """Validate ``run``'s final model on ``runner``; nothing is written here."""
    from edgeprune.runners.host import HostRunner

    opts = opts or ValidateOptions()
    name, x, y, split, notes = load_split(run, data, opts.samples)
    ran_path, ran_sha, which = runner_model(run, runner.name)
    notes += [which] if which else []
    with open(run.model_path, "rb") as fh:
        model = fh.read()
    with open(run.baseline_path, "rb") as fh:
        baseline = HostRunner(fh.read()).predict(x)
    host = HostRunner(model)
    reference = host.run(x)
    if reference.partial:  # Ctrl-C before the runner started: nothing measured to keep
        raise KeyboardInterrupt
    # the host runner with the reference's own settings would only repeat that run
    got = reference if runner == host else _run_device(runner, x)
    n = got.completed

    def scores(outputs):
        return metrics.scores(run.task, run.probabilities, outputs)

    m = metrics.evaluate(run.task, y[:n], scores(got.outputs), run.n_classes) if n else {}
    base = metrics.evaluate(run.task, y[:n], scores(baseline[:n]), run.n_classes) if n else {}
    agree = reference_agreement(
        run.task, scores(got.outputs), got.raw, scores(reference.outputs), reference.raw
    )
    checks = rules.evaluate(run.task, rules.Evidence(m, base, agree), opts) if n else ()
    latency = latency_stats(got.times_ms)
    if latency.get("zero"):
        notes.append(
            f"{latency['zero']} of {latency['n']} invokes timed 0 ms: the board's timer did not "
            f"advance (a cycle counter that does not run, or a clock too coarse for this "
            f"model), so its latency figures are not measurements"
        )
    return ValidationResult(
        runner.name,
        got.where,
        got.timing,
        os.path.basename(ran_path),
        ran_sha,
        name,
        split,
        len(x),
        n,
        got.partial,
        got.error,
        m,
        base,
        agree,
        latency,
        checks,
        tuple(notes),
        got.clock_hz,
    )


def _run_device(runner, x: np.ndarray):
    """``runner.run(x)``; a device fault the runner raises instead of returning (one
    before its first sample: ssh could not start the board's runner) becomes a
    partial run with no sample completed, so that it is recorded like any other."""
    from edgeprune.runners import RunOutput

    try:
        return runner.run(x)
    except DeviceError as exc:
        out = getattr(runner, "out", None)  # the model's output tensor, on device runners
        shape = (0, *out.shape[1:]) if out is not None else (0,)
        dtype = out.dtype if out is not None and out.dtype in ("int8", "uint8") else "float32"
        return RunOutput(
            np.zeros(shape, np.float32),
            np.zeros(shape, dtype),
            np.zeros(0),
            "no invoke was timed",
            f"the {runner.name} runner",
            True,
            f"the device failed before sample 1 of {len(x)} (0 completed): {exc}",
        )


def validate_run(
    run_dir: str | None = None,
    target: Target | str | None = None,
    runner: str = "auto",
    address: str | None = None,
    data: str | None = None,
    options: ValidateOptions | None = None,
    measurements: str | None = None,
) -> ValidationResult:
    """Validate a run folder's final model on a runner, and record the result.

    ``run_dir`` defaults to ``build/<target>`` (what ``make <target>`` writes);
    ``target`` (a profile or its name) picks the runner with ``address`` (a
    serial port or an ssh board) when ``runner`` is ``"auto"``, see
    :func:`edgeprune.runners.choice.choose_runner`. Side effects: the result goes
    into the run's ``report.json`` under ``validation.<runner>``, also when the run
    fails or is partial; with ``measurements`` (ssh and serial runners, with a
    target) the device's median invoke time is added to that CSV for
    ``edgeprune calibrate``.

    Raises:
        BadInputError: no run folder, a runner that does not fit the target or
            address, a measurements file that cannot take the row.
        DeviceError: the device stopped answering (``result`` holds the partial run).
        Interrupted: Ctrl-C part way (``result`` holds the partial run).
        QualityError: a validation rule failed (``result`` holds the run).
    """
    if isinstance(target, str):
        from edgeprune.target import load_target

        target = load_target(target)
    if run_dir is None and target is None:
        raise BadInputError(
            "name the run folder to validate, or the target whose build/<target> folder it is"
        )
    opts = options or ValidateOptions()
    runner = choose_runner(target, runner, address)
    existing = _existing_measurements(measurements, runner, target)
    folder = run_dir or os.path.join("build", target.id)
    with run_folder.hold(folder, "validate"):  # nobody replaces the model while it runs
        run = read_run(folder)
        opened = open_runner(runner, runner_model(run, runner)[0], target, address, opts)
        result = validate(run, opened, data, opts)
        log.info("report: %s", write_result(run, result))
        if existing is not None:
            _add_measurement(run, result, target, measurements, existing)
    if result.partial and result.error.startswith("interrupted"):
        raise Interrupted(f"{result.error}; the partial results are in report.json", result)
    if result.partial:
        raise DeviceError(
            f"validation on {result.runner} is partial: {result.error}; the "
            f"partial results are in report.json",
            result,
        )
    if not result.ok:
        raise QualityError(
            f"{result.model} fails validation on {result.runner}: {rules.failures(result.rules)}",
            result,
        )
    return result


def _existing_measurements(path: str | None, runner: str, target: Target | None) -> str | None:
    """The measurements file's text to extend (None without one), checked before anything runs."""
    if path is None:
        return None
    from edgeprune.estimates.measurements import existing_measurements

    if runner not in ("ssh", "serial"):
        raise BadInputError(
            f"--measurements records a device's invoke time; the {runner} "
            f"runner times this machine (`edgeprune measure` times LiteRT here)"
        )
    if target is None:
        raise BadInputError(
            "--measurements needs --target: the row takes the profile's cost model and clock"
        )
    return existing_measurements(path, append=True)


def _add_measurement(
    run: RunInfo, result: ValidationResult, target: Target, csv_path: str, existing: str
) -> None:
    from edgeprune.estimates.measurements import write_measurements

    if result.partial or not result.latency_ms.get("n"):
        log.warning("measurements: no row added to %s: the run is partial", csv_path)
        return
    if result.latency_ms.get("zero"):
        log.warning(
            "measurements: no row added to %s: %d of %d invokes timed 0 ms (the board's "
            "timer did not advance); fix the firmware's timer or measure another way",
            csv_path,
            result.latency_ms["zero"],
            result.latency_ms["n"],
        )
        return
    row = measurement_row(run, result, target, csv_path)
    write_measurements(
        csv_path,
        [row],
        (
            "Measured on devices with `edgeprune validate --measurements`; ms is the median "
            "(p50) invoke time on the device."
        ),
        existing,
    )
    log.info("measurements: added %s at %s ms to %s", row["model"], row["ms"], csv_path)


def measurement_row(run: RunInfo, result: ValidationResult, target, csv_path: str) -> dict:
    """The result's median invoke time as a row for ``edgeprune calibrate``: the
    device's own clock where it reports one (serial), else the profile's."""
    import datetime

    from edgeprune.estimates import measurements

    clock = result.clock_hz or target.clock_hz
    source = (
        f"edgeprune validate --runner {result.runner} --target {target.id}, "
        f"{datetime.date.today().isoformat()}: p50 of {result.latency_ms['n']} invokes; "
        f"{result.timing}"
    )
    if result.clock_hz is None:
        source += f"; clock_hz is {target.id}'s profile clock, not read off the board"
    return measurements.measurement_row(
        os.path.join(run.folder, result.model),  # the file the device ran
        result.latency_ms["p50"],
        clock,
        target.latency.cost_model_id(target),
        result.where,
        source,
        os.path.dirname(os.path.abspath(csv_path)),
    )


def write_result(run: RunInfo, result: ValidationResult) -> str:
    """Add ``result`` to the run's ``report.json`` under ``validation.<runner>``
    (:func:`edgeprune.report.add_validation`) and rebuild its ``report.html``;
    return the report's path."""
    from edgeprune.presentation.html import refresh_run_html

    path = report.add_validation(run.folder, result)
    refresh_run_html(run.folder)
    return path
