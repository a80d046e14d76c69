"""The sweep driver: inputs → baseline (once) → study → workers → results.

:func:`sweep` reads like :func:`edgeprune.pipeline.run`: check every input
before writing, hold the sweep folder's lock, train (or take) the baseline
once in ``<sweep>/baseline/``, create or join the study, run the workers,
and write ``sweep.json`` and ``results.csv`` a last time.
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass, replace

from edgeprune import artifacts, run_folder
from edgeprune.errors import BadInputError, Interrupted
from edgeprune.recipe import Recipe
from edgeprune.sweep import study as studies
from edgeprune.sweep.results import SWEEP_JSON, reference_from_run
from edgeprune.sweep.space import COSTS, check_combination, parse_objectives, resolve_space
from edgeprune.sweep.storage import DEFAULT_FILE, open_storage, redact
from edgeprune.sweep.trial import SweepBaseline

log = logging.getLogger(__name__)

BASELINE_FOLDER = "baseline"


@dataclass(frozen=True)
class SweepResult:
    """A finished (or stopped) sweep: its folder and the ``sweep.json`` document."""

    folder: str
    document: dict
    complete: int
    wanted: int


def sweep(
    model: str | None = None,
    data: str | None = None,
    recipe: Recipe | None = None,
    target: str | None = None,
    out: str | None = None,
    trials: int | None = None,
    jobs: int = 1,
    storage: str | None = None,
    study: str | None = None,
    objectives: str | list | None = None,
    reference: str | None = None,
) -> SweepResult:
    """Search the ``[sweep]`` space of ``recipe`` for the Pareto front of quality
    against the chosen costs on ``target``, whose device check is the constraint.

    ``out`` defaults to ``sweeps/<model>_<target>``; an existing sweep folder
    is resumed. ``trials`` (default ``sweep.trials``) counts complete trials of
    the study, every worker's together; ``jobs`` worker processes run on this
    machine; ``storage`` (an optuna storage URL) and ``study`` join a study
    shared with other machines (default: ``<out>/study.db``). ``reference``: a
    run folder (say, of ``run --structured fit`` at the same budget) whose final
    model is shown beside the front.

    Side effects: writes ``out`` (``baseline/``, ``trials/NNNN/``, ``study.db``,
    ``sweep.json``, ``results.csv``) holding its lock.

    Raises:
        BadInputError: no target, unusable inputs, a study of another identity.
        Interrupted: Ctrl-C (the results so far are written; rerun to resume).
    """
    from edgeprune.stages.inputs import resolve_target

    recipe = recipe or Recipe()
    if target is None:
        raise BadInputError(
            "a sweep needs a target: its budgets are the constraints; name a device "
            "profile (see `edgeprune targets`)"
        )
    if jobs < 1:
        raise BadInputError(f"jobs = {jobs}: a sweep needs at least one worker")
    section = recipe.sweep
    if objectives is not None:
        section = replace(section, objectives=parse_objectives(objectives))
        check_combination(section)
    target = resolve_target(target, recipe)
    point = None if reference is None else reference_from_run(reference)
    space = resolve_space(section, target.runtime, recipe.quantize.mode, recipe.compress.method)
    wanted = trials or section.trials
    name = study or f"{_model_name(model)}_{target.id}"
    folder = out or os.path.join("sweeps", name)
    # A bad URL, an unreachable server or a damaged study file of a sweep to resume:
    # refused before the baseline is trained or anything is written.
    if storage is not None or os.path.exists(os.path.join(folder, DEFAULT_FILE)):
        open_storage(storage, folder)
    artifacts.check_out_dir(folder)
    with run_folder.hold(folder, "sweep"):
        _refuse_other_study(folder, name)
        base = prepare_baseline(model, data, recipe, folder, target)
        keys = ("accuracy" if base.task == "classification" else "mse",)
        keys += tuple(COSTS[c] for c in section.objectives)
        header = {
            "study": name,
            "storage": redact(storage),
            "identity": studies.identity(base, target, space, keys, recipe),
            "reference": point,
            "export_command": f"edgeprune sweep export {{number}} --sweep {folder} "
            f"--out build/{name}_trial{{number}}",
        }
        spec = studies.SweepSpec(
            os.path.abspath(folder),
            storage,
            name,
            recipe,
            target,
            space,
            keys,
            wanted,
            base,
            header,
            logging.getLogger("edgeprune").getEffectiveLevel(),
        )
        return _run_workers(spec, jobs)


def _refuse_other_study(folder: str, name: str) -> None:
    """A sweep folder belongs to one study (its trial folders are numbered by it).

    Raises:
        BadInputError: ``folder`` holds the results of another study.
    """
    import json

    try:
        with open(os.path.join(folder, SWEEP_JSON), encoding="utf-8") as fh:
            theirs = json.load(fh).get("study")
    except (OSError, ValueError, AttributeError):
        return
    if isinstance(theirs, str) and theirs != name:
        raise BadInputError(
            f"sweep folder {folder} holds study {theirs}, not {name} (another model, target "
            f"or study name); choose another sweep folder (--out), or pass --study {theirs} "
            f"to resume it"
        )


def _run_workers(spec, jobs: int) -> SweepResult:
    studies.quiet_optuna()
    study = studies.open_study(spec, open_storage(spec.storage_url, spec.folder))
    # Our lock: no other worker of this folder is alive (on a shared storage, other
    # machines' trials are left to the heartbeats).
    studies.recover_interrupted(study, spec.folder, shared=spec.storage_url is not None)
    log.info(
        "sweep: study %s, %d trials wanted, %d worker(s), space: %s",
        spec.study_name,
        spec.trials,
        jobs,
        ", ".join(sorted(spec.space.searched)),
    )
    try:
        if jobs == 1:
            studies.work(spec)
        else:
            _spawn(spec, jobs)
    except KeyboardInterrupt:
        document = _final_document(spec, study)
        done = sum(t["state"] == "COMPLETE" for t in document["trials"])
        raise Interrupted(
            f"sweep interrupted with {done} of {spec.trials} trials complete; run the "
            f"same command again to resume (the interrupted trials run again)",
            SweepResult(spec.folder, document, done, spec.trials),
        ) from None
    document = _final_document(spec, study)
    done = sum(t["state"] == "COMPLETE" for t in document["trials"])
    if done < spec.trials:
        log.warning(
            "sweep stopped with %d of %d trials complete: too many trials failed "
            "(see their errors in results.csv)",
            done,
            spec.trials,
        )
    return SweepResult(spec.folder, document, done, spec.trials)


def _final_document(spec, study) -> dict:
    """sweep.json and results.csv as the sweep ends, and the sweep's report.html
    (built once at the end: a page per trial would cost every trial ~0.7 s)."""
    from edgeprune.presentation.html import refresh_sweep_html

    document = studies.write_document(spec, study)
    refresh_sweep_html(spec.folder)
    return document


def _spawn(spec, jobs: int) -> None:
    """``jobs`` worker processes (spawned: TensorFlow does not survive a fork)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_worker_main, args=(spec, k), daemon=True) for k in range(jobs)]
    for w in workers:
        w.start()
    try:
        for w in workers:
            w.join()
    except KeyboardInterrupt:
        # A terminal's Ctrl-C reached the workers too; a SIGINT sent to this
        # process alone is passed on. Each fails its trial as interrupted.
        for w in workers:
            w.join(timeout=2)
            if w.is_alive():
                os.kill(w.pid, signal.SIGINT)
        for w in workers:
            w.join(timeout=30)
            if w.is_alive():
                w.terminate()
        raise
    bad = [w.exitcode for w in workers if w.exitcode]
    if bad:
        log.warning("sweep: %d worker(s) ended with exit code %s", len(bad), bad)


def _worker_main(spec, worker: int) -> None:
    """A spawned worker: log as the parent does, then loop."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(f"edgeprune: [worker {worker}] %(message)s"))
    root = logging.getLogger("edgeprune")
    root.handlers[:] = [handler]
    root.setLevel(spec.log_level)
    root.propagate = False
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        studies.work(spec, worker)
    except KeyboardInterrupt:
        raise SystemExit(130) from None


def prepare_baseline(model, data, recipe: Recipe, folder: str, target) -> SweepBaseline:
    """Train the built-in (or reuse its cached training) or take the user's model,
    once per sweep, into ``<folder>/baseline/``; convert it to float32 and, for a
    TFLite Micro target, prove its ops run there, so that no trial does either.

    Raises:
        BadInputError: the model, data or recipe cannot be used.
    """
    from edgeprune.adapters import converter
    from edgeprune.stages.baseline import baseline_stage, convert_up_front
    from edgeprune.stages.inputs import preflight_tflm, resolve_inputs

    path = os.path.join(folder, BASELINE_FOLDER)
    inp = resolve_inputs(model, data, recipe, path, writes=(artifacts.BASELINE_KERAS,))
    converter.check_convertible(inp.model)
    if target.runtime == "tflm":
        preflight_tflm(inp, target)
    with run_folder.hold(path, "sweep"):
        base = baseline_stage(inp, convert_up_front(inp))
    if inp.builtin is not None:
        name = inp.builtin.name
        key = {"builtin": name, "version": inp.builtin.version, "train": recipe.to_dict()["train"]}
        model_sha = artifacts.sha256_bytes(repr((key, recipe.seed)).encode())
        data_arg = data or inp.builtin.dataset
    else:
        name, model_sha, data_arg = _model_name(model), inp.input_sha256, data
    if data_arg is not None and os.path.exists(data_arg):
        data_arg = os.path.abspath(data_arg)
    return SweepBaseline(
        os.path.abspath(inp.out.file(artifacts.BASELINE_KERAS)),
        data_arg,
        name,
        model_sha,
        inp.dataset.sha256,
        inp.task,
        base.tflite.data,
    )


def _model_name(model: str | None) -> str:
    from edgeprune.models import BUILTIN_MODELS, DEFAULT_MODEL

    if model is None or model in BUILTIN_MODELS:
        return model or DEFAULT_MODEL
    return os.path.splitext(os.path.basename(os.path.normpath(model)))[0] or "model"
