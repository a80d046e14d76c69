"""The study: creating or joining it (with its identity), the worker loop, resume.

A sweep is one optuna study. Its identity (model and data hashes, target, the
canonical search space, the objectives, the recipe's budget overrides) is
recorded in the study's user attributes when it is created; a worker whose
identity differs is refused before it runs a trial. Each worker (this
process, or one of ``jobs`` spawned processes) loops: count the study's
COMPLETE trials, stop at the requested number, wait while the trials still
running would reach it, else run one trial (``study.optimize(n_trials=1)``,
which sends the storage's heartbeats and fails stale trials). The stopping
rule therefore counts complete trials of every worker together; two workers
that start a trial in the same instant are told apart by trial number (the
later one stands down as PRUNED, see :func:`surplus`), so the study ends with
exactly the count, and no trial is run twice.

On the sweep folder's own storage, the folder lock proves no other worker is
alive: a trial left RUNNING (the process was killed) or failed by Ctrl-C (inside
its objective: :mod:`.interrupts`) is failed and enqueued again (``retry_of``), once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import time
from dataclasses import dataclass, field

from edgeprune import progress
from edgeprune.sweep import interrupts
from edgeprune.sweep.results import sweep_document, write_results
from edgeprune.sweep.space import COSTS, Space, suggest
from edgeprune.sweep.storage import open_storage, reclaim_stale
from edgeprune.sweep.trial import CONSTRAINT_RULES, SweepBaseline, TrialFailed, run_trial

log = logging.getLogger(__name__)

TRIALS_FOLDER = "trials"
# The pipeline's own progress lines, hidden during a sweep unless -v asks for them.
_CHATTY = ("pipeline", "stages", "structured", "tflm", "adapters", "firmware", "estimates")
_CHATTY += ("run_folder", "artifacts", "progress")


@dataclass(frozen=True)
class SweepSpec:
    """Everything a worker needs (picklable: spawned workers receive it)."""

    folder: str
    storage_url: str | None
    study_name: str
    recipe: object = field(repr=False)
    target: object = field(repr=False)
    space: Space
    objective_keys: tuple
    trials: int
    base: SweepBaseline = field(repr=False)
    header: dict = field(repr=False)
    log_level: int = logging.INFO


def identity(spec_base: SweepBaseline, target, space: Space, keys, recipe) -> dict:
    """What a study is of: joining it with anything else is refused."""
    from dataclasses import asdict

    return {
        "model": spec_base.model_name,
        "model_sha256": spec_base.model_sha256,
        "data_sha256": spec_base.data_sha256,
        "target": target.id,
        "space": space.canonical(),
        "objectives": list(keys),
        "budget": {k: v for k, v in asdict(recipe.budget).items() if v not in (None, False)},
    }


_WHAT = {
    "model": "model",
    "model_sha256": "model file",
    "data_sha256": "data",
    "target": "target",
    "space": "search space",
    "objectives": "objectives",
    "budget": "budget overrides",
}


def open_study(spec: SweepSpec, storage, worker: int = 0):
    """Create the study or join it; refuse one of another identity.

    Raises:
        BadInputError: the study exists with another identity, or was not made by a sweep.
    """
    import optuna

    from edgeprune.errors import BadInputError

    directions = ["maximize" if k == "accuracy" else "minimize" for k in spec.objective_keys]
    study = optuna.create_study(
        storage=storage,
        study_name=spec.study_name,
        directions=directions,
        load_if_exists=True,
    )
    # a resumed study's sampler starts where the study is, not where it began
    study.sampler = _sampler(spec, worker, len(study.get_trials(deepcopy=False)))
    mine = spec.header["identity"]
    theirs = study.user_attrs.get("identity")
    if theirs is None and study.get_trials(deepcopy=False):
        raise BadInputError(
            f"study {spec.study_name} holds trials that no edgeprune sweep made; "
            f"choose another study name (--study)"
        )
    if theirs is None:
        study.set_user_attr("identity", mine)
        return study
    differ = [k for k in _WHAT if theirs.get(k) != mine.get(k)]
    if differ:
        detail = "; ".join(_difference(k, theirs.get(k), mine.get(k)) for k in differ)
        what = " and ".join(_WHAT[k] for k in differ)
        raise BadInputError(
            f"study {spec.study_name} is a sweep of another {what}"
            f" ({detail}); choose another study name (--study) or sweep folder (--out), "
            f"or run the study's own inputs"
        )
    return study


def _difference(key: str, theirs, mine) -> str:
    if key in ("model", "target"):
        return f"{key} {theirs}, not {mine}"
    if key == "space":
        names = sorted(
            {
                n
                for part in ("searched", "fixed")
                for n in {**theirs.get(part, {}), **mine.get(part, {})}
                if theirs.get(part, {}).get(n) != mine.get(part, {}).get(n)
            }
        )
        return "space differs in " + (", ".join(names) or "the structured goal")
    if key == "objectives":
        return f"objectives {', '.join(theirs)}, not {', '.join(mine)}"
    return f"{_WHAT[key]} differ"


def _sampler(spec: SweepSpec, worker: int, done: int):
    """TPE, multivariate (the device check reaches it as each trial's constraints,
    see :func:`_objective`); seeded per worker so that workers do not propose the
    same first points, and by the number of trials already in the study, so that
    a resumed sweep does not propose its first points again."""
    import optuna

    seed = (spec.recipe.seed * 1009 + worker + 7 * done) % 2**32
    if spec.storage_url is not None:  # workers on other machines run the same command
        seed = (seed + os.getpid() * 7919 + hash(os.uname().nodename)) % 2**32
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        constant_liar=True,
        n_startup_trials=max(4, min(10, spec.trials // 4)),
    )


def quiet_optuna() -> None:
    """Optuna's own lines (and its experimental warnings) are ours to say."""
    import warnings

    import optuna

    optuna.logging.disable_default_handler()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")


@contextlib.contextmanager
def quiet_pipeline(level: int):
    """A trial's stage-by-stage lines stay hidden unless -v (DEBUG) was asked for;
    the loggers' levels are restored afterwards."""
    loggers = [logging.getLogger(f"edgeprune.{name}") for name in _CHATTY]
    before = [lg.level for lg in loggers]
    if level > logging.DEBUG:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, was in zip(loggers, before, strict=True):
            lg.setLevel(was)


def recover_interrupted(study, folder: str, shared: bool = False) -> int:
    """Fail the trials left RUNNING (their worker is gone: the folder lock says so),
    and enqueue once more the parameters of each trial that was interrupted;
    return how many were enqueued.

    ``shared``: the study is shared with other machines, so only the trials whose
    folder is in ``folder`` are this folder's. Unfinished trials' folders go.
    """
    from optuna.trial import TrialState

    storage = study._storage
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    retried |= {t.system_attrs.get("failed_trial") for t in trials}  # retried on heartbeats
    if shared:
        trials = [t for t in trials if os.path.isdir(trial_folder(folder, t.number))]
    for t in trials:
        if t.state not in (TrialState.COMPLETE, TrialState.RUNNING):
            _remove_folder(folder, t.number)  # failed on heartbeats while its worker was dead
    count = 0
    for t in trials:
        if t.state == TrialState.RUNNING:
            storage.set_trial_user_attr(t._trial_id, "interrupted", True)
            storage.set_trial_user_attr(t._trial_id, "error", "interrupted")
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        elif not (t.state == TrialState.FAIL and t.user_attrs.get("interrupted")):
            continue
        if t.number in retried:
            continue
        study.enqueue_trial(t.params, user_attrs={"retry_of": t.number})
        _remove_folder(folder, t.number)
        count += 1
    if count:
        log.info("sweep: %d interrupted trial(s) enqueued again", count)
    return count


def trial_folder(folder: str, number: int) -> str:
    return os.path.join(folder, TRIALS_FOLDER, f"{number:04d}")


def _remove_folder(folder: str, number: int) -> None:
    shutil.rmtree(trial_folder(folder, number), ignore_errors=True)


def work(spec: SweepSpec, worker: int = 0) -> None:
    """One worker: run trials until the study has ``spec.trials`` complete ones.

    Raises:
        KeyboardInterrupt: Ctrl-C (the trial it ran is failed and marked interrupted).
    """
    from edgeprune.tflm.client import kept_workers

    quiet_optuna()
    storage = open_storage(spec.storage_url, spec.folder)
    study = open_study(spec, storage, worker)
    _import_the_pipeline()
    objective = functools.partial(_objective, spec)
    bar = progress.task("sweep trials", total=spec.trials, unit="trial", plain=False)
    # Each trial's TFLite Micro checks reuse one kept TFLite Micro worker process.
    with quiet_pipeline(spec.log_level), bar as shown, kept_workers(), interrupts.deferred():
        done = functools.partial(_finished, spec, shown)
        while True:
            interrupts.check()  # a Ctrl-C between trials (none of ours is RUNNING here)
            step = next_step(study, spec.trials)
            if step == "stop":
                return
            if step == "wait":
                reclaim_stale(study)  # a dead worker's trial is failed and enqueued again
                time.sleep(0.5)
                continue
            study.optimize(objective, n_trials=1, catch=(TrialFailed,), callbacks=[done])


def _import_the_pipeline() -> None:
    """Import TensorFlow, tfmot and the converter as the worker starts (5 s here), not
    in (and timed as part of) its first trial."""
    from edgeprune.adapters import converter, tfmot  # noqa: F401


def next_step(study, wanted: int) -> str:
    """``stop`` (enough complete trials, or as many failed ones), ``wait`` (the
    running trials may complete the count) or ``run``."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    failed = sum(t.state == TrialState.FAIL and not t.user_attrs.get("interrupted") for t in trials)
    if complete >= wanted or failed >= max(wanted, 3):
        return "stop"
    return "wait" if complete + running >= wanted else "run"


def _objective(spec: SweepSpec, trial) -> list[float]:
    t0 = time.perf_counter()
    if surplus(trial, spec.trials):
        import optuna

        trial.set_user_attr("surplus", True)
        raise optuna.TrialPruned("the trials before this one complete the count")
    params = suggest(trial, spec.space)  # recorded first: an interrupted trial reruns them
    try:
        with interrupts.armed():  # also raises a Ctrl-C that came while optuna asked
            return _measure(spec, trial, params, t0)
    except (KeyboardInterrupt, Exception) as exc:  # a second Ctrl-C is only noted now
        interrupts.mark_interrupted(trial, exc)  # raises KeyboardInterrupt if it was one
        raise


def _measure(spec: SweepSpec, trial, params: dict, t0: float) -> list[float]:
    same = _same_params(trial)
    if same is not None:  # TPE proposed a point already measured: its result, not a rerun
        for key, value in same.user_attrs.items():
            if key not in ("retry_of", "interrupted", "error"):
                trial.set_user_attr(key, value)
        trial.set_user_attr("duplicate_of", same.number)
        trial.set_user_attr("fine_tune_seconds", 0.0)
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        for name, value in zip(CONSTRAINT_RULES, same.user_attrs["constraints"], strict=True):
            trial.set_constraint(name, value)
        return list(same.values)
    recipe = spec.space.apply(spec.recipe, params)
    folder = trial_folder(spec.folder, trial.number)
    trial.set_user_attr("folder", os.path.relpath(folder, spec.folder))
    try:
        out = run_trial(spec.base, recipe, spec.target, folder)
    except TrialFailed as exc:
        trial.set_user_attr("error", str(exc))
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        raise
    budgets = {COSTS.get(k, k): v for k, v in out.budgets.items()}
    for name, value in zip(CONSTRAINT_RULES, out.constraints, strict=True):
        trial.set_constraint(name, value)  # > 0: the rule failed; the sampler avoids it
    for key, value in (
        ("constraints", out.constraints),
        ("values", out.values),
        ("feasible", out.feasible),
        ("failed_rules", out.failed_rules),
        ("budgets", budgets),
        ("seconds", time.perf_counter() - t0),
        ("fine_tune_seconds", out.fine_tune_seconds),
    ):
        trial.set_user_attr(key, value)
    missing = [k for k in spec.objective_keys if out.values.get(k) is None]
    if missing:
        error = f"the trial measured no {', '.join(missing)} for {spec.target.id}"
        trial.set_user_attr("error", error)
        raise TrialFailed(error)
    return [float(out.values[k]) for k in spec.objective_keys]


def _same_params(trial):
    """The earliest complete trial with ``trial``'s parameters, or None."""
    from optuna.trial import TrialState

    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        if other.params == trial.params and "constraints" in other.user_attrs:
            return other
    return None


def surplus(trial, wanted: int) -> bool:
    """Workers that decided to run in the same instant each asked for a trial: the
    later-numbered stands down (PRUNED) when the complete trials and the ones
    running before it reach the count, so the study never overshoots."""
    from optuna.trial import TrialState

    trials = trial.study.get_trials(deepcopy=False)
    complete = sum(t.state == TrialState.COMPLETE for t in trials)
    ahead = sum(t.state == TrialState.RUNNING and t.number < trial.number for t in trials)
    return complete + ahead >= wanted


def _finished(spec: SweepSpec, shown, study, frozen) -> None:
    """After each trial: the one log line (and the bar's step on a terminal), and
    sweep.json and results.csv rewritten."""
    document = write_document(spec, study)
    t = next(x for x in document["trials"] if x["number"] == frozen.number)
    log.info("%s", trial_line(document, t, spec.trials))
    best = best_that_fits(document)
    shown.advance(int(t["state"] == "COMPLETE"), status=best and f"best that fits: {best}")


def write_document(spec: SweepSpec, study) -> dict:
    """Rewrite ``sweep.json`` and ``results.csv`` from the study; return the document."""
    trials = [trial_row(t) for t in study.get_trials(deepcopy=False)]
    header = dict(spec.header)
    header["budgets"] = next((t["budgets"] for t in trials if t.get("budgets")), {})
    header["budgets"] = {
        k: v for k, v in header["budgets"].items() if k in spec.objective_keys and v is not None
    }
    for t in trials:
        t.pop("budgets", None)
    document = sweep_document(header, trials)
    write_results(spec.folder, document)
    return document


def trial_row(t) -> dict:
    """One trial as ``sweep.json`` lists it."""
    ua = t.user_attrs
    complete = t.state.name == "COMPLETE"
    return {
        "number": t.number,
        "state": t.state.name,
        "params": _shown(t.params or t.system_attrs.get("fixed_params") or {}),
        "values": ua.get("values") if complete else None,
        "feasible": ua.get("feasible") if complete else None,
        "failed_rules": list(ua.get("failed_rules", [])) if complete else [],
        "error": ua.get("error") if t.state.name == "FAIL" else None,
        "folder": ua.get("folder") if complete else None,
        "seconds": ua.get("seconds"),
        "fine_tune_seconds": ua.get("fine_tune_seconds") if complete else None,
        "retry_of": ua.get("retry_of", t.system_attrs.get("failed_trial")),
        "duplicate_of": ua.get("duplicate_of") if complete else None,
        "budgets": ua.get("budgets") if complete else None,
    }


def _shown(params: dict) -> dict:
    """Parameters as written (a WAITING trial's are the ones it was enqueued with)."""
    return {k: round(v, 9) if isinstance(v, float) else v for k, v in params.items()}


def trial_line(document: dict, t: dict, wanted: int) -> str:
    """The log line of a finished trial: its outcome, figures and the best feasible one."""
    from edgeprune.sweep.results import format_value

    keys = [o["key"] for o in document["objectives"]]
    complete = sum(x["state"] == "COMPLETE" for x in document["trials"])
    head = f"trial {t['number']} ({complete}/{wanted} complete): "
    if t["state"] != "COMPLETE":
        why = t["error"] or ("stood down: the count was reached" if t["state"] == "PRUNED" else "")
        return head + f"{t['state']}: {why or 'no error recorded'}"
    figures = ", ".join(f"{k} {format_value(k, t['values'].get(k))}" for k in keys)
    if t.get("duplicate_of") is not None:
        figures = f"trial {t['duplicate_of']}'s point again (not rerun): {figures}"
    verdict = "fits" if t["feasible"] else f"over budget: {', '.join(t['failed_rules'])}"
    best = best_that_fits(document)
    best = f"; best that fits: {best}" if best else ""
    return head + f"{figures} ({verdict}, {t['seconds']:.1f} s){best}"


def best_that_fits(document: dict) -> str | None:
    """The best quality among the feasible trials, as ``accuracy 0.98 (trial 7)``;
    None while no trial fits."""
    from edgeprune.sweep.results import format_value

    feasible = [x for x in document["trials"] if x["state"] == "COMPLETE" and x["feasible"]]
    if not feasible:
        return None
    key = document["objectives"][0]["key"]
    sign = 1 if key == "accuracy" else -1
    top = max(feasible, key=lambda x: sign * x["values"][key])
    return f"{key} {format_value(key, top['values'][key])} (trial {top['number']})"
