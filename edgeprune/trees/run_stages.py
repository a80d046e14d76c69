"""The stages of a tree run (:func:`edgeprune.trees.pipeline.run` drives them).

Each takes the checked :class:`~edgeprune.trees.pipeline.TreeInputs` and what
the stage before produced, and returns plain results; only
:func:`run_stages` writes, through the run folder's atomic writers, listing
every file as an artifact: ``baseline_trees.json`` and ``pruned_trees.json``
(the models in edgeprune's JSON, readable by ``--model``), ``firmware/`` (the
generated C, the serial validation harness and a README) and ``report.json``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from edgeprune import report
from edgeprune.report.tree_entries import TreeModelEntry, TreeReport, TreeRunEntry
from edgeprune.rules.budget import CheckResult
from edgeprune.trees import check as tree_check

log = logging.getLogger(__name__)

BASELINE_JSON = "baseline_trees.json"
PRUNED_JSON = "pruned_trees.json"
FIRMWARE = "firmware"
C_NAME = "edgeprune"


@dataclass(frozen=True)
class Measured:
    """One model's C on the target: its compiled size and latency estimate."""

    compiled: object  # trees.compile.CompiledSize
    latency: object  # estimates.latency.LatencyEstimate


@dataclass(frozen=True)
class TreeRunResult:
    """Everything a tree run wrote and measured; ``report`` is what report.json holds."""

    out_dir: str
    report_path: str
    kind: str
    task: str
    baseline: object  # Forest
    pruned: object  # Forest
    steps: tuple
    seconds: float
    report: TreeReport = field(repr=False)
    check: CheckResult | None = None
    measured: dict = field(default_factory=dict)  # "baseline"/"pruned" -> Measured
    agreement: object | None = None  # hostrun.Agreement
    feature_drop: dict | None = None


# ---------------------------------------------------------------- stages


def baseline_stage(inp):
    """The user's model, or the model fitted on the training split."""
    if inp.forest is not None:
        return inp.forest
    from edgeprune.trees.train import train

    log.info("baseline: fitting a %s on %d samples", inp.kind, len(inp.fit[0]))
    forest = train(inp.tree_options, *inp.fit, inp.task)
    names = inp.dataset.feature_names  # the data set's column names, where it has them
    return replace(forest, feature_names=names) if len(names) == forest.n_features else forest


def importance(forest, inp) -> dict:
    """Impurity importance and permutation importance on the validation split, per
    feature the model reads (``features``: their indices in the data)."""
    from edgeprune.trees.measures import impurity_importance, permutation_importance

    mean, std = permutation_importance(
        forest, *inp.val, repeats=inp.recipe.trees.importance_repeats, seed=inp.recipe.seed
    )
    features = forest.meta.get("features", list(range(forest.n_features)))
    return {
        "features": [int(f) for f in features],
        "impurity": impurity_importance(forest).tolist(),
        "permutation_mean": mean.tolist(),
        "permutation_std": std.tolist(),
        "permutation_basis": f"validation split, {len(inp.val[1])} samples, "
        f"{inp.recipe.trees.importance_repeats} shuffles per feature",
    }


def feature_drop_stage(inp, forest, imp: dict):
    """Refit on the ``[trees] keep_features`` most important features (ranked by
    permutation importance on validation, ties by impurity importance); None without it."""
    keep = inp.recipe.trees.keep_features
    if keep is None:
        return None
    from edgeprune.trees.measures import drop_features, quality

    order = np.lexsort((np.asarray(imp["impurity"]), np.asarray(imp["permutation_mean"])))
    rank = np.empty(len(order))
    rank[order] = np.arange(len(order))  # higher rank: more important
    drop = drop_features(forest, inp.fit, inp.val, rank, keep)
    names = inp.dataset.feature_names
    summary = {
        **drop.summary(),
        "n_features_before": forest.n_features,
        "ranked_by": "permutation importance on the validation split, ties by impurity",
        "test_before": quality(forest, *inp.test),
        "test_after": quality(drop.forest, *inp.test),
    }
    if names:
        summary["kept_names"] = [names[i] for i in drop.kept]
    log.info(
        "feature drop: kept %d of %d features, validation %s %.4g -> %.4g",
        len(drop.kept),
        forest.n_features,
        drop.metric,
        drop.before,
        drop.after,
    )
    return drop.forest, summary


def measure(inp, forest, files=None) -> Measured:
    """Compile ``forest``'s C for the target's core and estimate its latency."""
    from edgeprune.trees import cexport, tree_latency
    from edgeprune.trees.compile import compiled_size

    files = files or cexport.generate(forest, C_NAME, inp.dtype)
    compiled = compiled_size(files, f"{C_NAME}_predict", inp.target)
    latency = tree_latency.estimate(forest, compiled, inp.target, dtype=inp.dtype)
    return Measured(compiled, latency)


def judge(inp, forest, measured: Measured) -> CheckResult:
    """The tree rules on ``measured`` under the recipe's ``[budget]``."""
    ev = tree_check.evidence(
        measured.compiled,
        measured.latency,
        forest,
        f"{FIRMWARE}/{C_NAME}_model.c",
        inp.dtype,
    )
    budget = tree_check.effective_budget(inp.target, asdict(inp.recipe.budget))
    return tree_check.evaluate(ev, inp.target, budget)


def fits_predicate(inp):
    """The fit goal's ``fits(candidate)``: compile it and apply the budget rules."""
    tried = []

    def fits(candidate) -> bool:
        result = judge(inp, candidate, measure(inp, candidate))
        tried.append(candidate.n_nodes)
        log.debug(
            "fit goal: %d nodes in %d members %s %s",
            candidate.n_nodes,
            candidate.n_members,
            "fits" if result.ok else "does not fit",
            inp.target.id,
        )
        return result.ok

    return fits


def prune_stage(inp, forest):
    """A's :func:`~edgeprune.trees.prune.prune` with the recipe's ``[trees.prune]``."""
    from edgeprune.trees.prune import prune

    fits = fits_predicate(inp) if inp.recipe.trees.goal == "fit" else None
    return prune(
        forest,
        inp.prune_options,
        train_data=inp.fit,
        val_data=inp.val,
        tree_options=inp.tree_options,
        fits=fits,
    )


def host_agreement(inp, forest) -> tuple[dict | None, str | None]:
    """The generated C compiled for this machine against :meth:`Forest.predict`
    (scikit-learn's predictions) on the test split; (None, why) without gcc."""
    from edgeprune.trees import hostrun
    from edgeprune.trees.compile import CompilerMissingError

    try:  # compare takes the data set's features, as the measures do
        a = hostrun.compare(forest, inp.test[0], name=C_NAME, dtype=inp.dtype)
    except CompilerMissingError as exc:
        return None, f"host agreement not measured: {exc}"
    return agreement_dict(a, inp.dtype, "test"), None


def agreement_dict(a, dtype: str, split: str) -> dict:
    return {
        "n_equal": int(a.n_equal),
        "n": int(a.n),
        "fraction": float(a.fraction),
        "split": split,
        "dtype": dtype,
        "tolerance": float(a.tolerance),
        "reference": "scikit-learn's predict (Forest.predict, equal to it)",
        "differences": [asdict(d) for d in a.differences],
    }


def model_entry(inp, forest, name: str, imp: dict, measured: Measured | None):
    from edgeprune.trees.measures import complexity, quality
    from edgeprune.trees.model import model_inputs
    from edgeprune.trees.prune import metric_name, validation_metric

    compiled = latency = None
    if measured is not None:
        c, est = measured.compiled, measured.latency
        compiled = {
            "flash_bytes": int(c.flash_bytes),
            "ram_bytes": int(c.ram_bytes),
            "stack_bytes": int(c.stack_bytes),
            "core": c.core,
            "compiler": c.compiler,
            "flags": list(c.flags),
            "sections": dict(c.sections),
            "basis": c.basis,
            "notes": list(c.notes),
        }
        latency = {
            "ms": est.ms,
            "ms_high": est.ms_high,
            "error_band": est.error_band,
            "cost_model": est.cost_model,
            "basis": "estimate",
            "caveat": est.caveat,
        }
    value = validation_metric(forest, model_inputs(forest, inp.val[0]), inp.val[1])
    return TreeModelEntry(
        name,
        complexity(forest),
        quality(forest, *inp.test),
        {"metric": metric_name(forest.task), "value": value},
        imp,
        compiled,
        latency,
    )


# ---------------------------------------------------------------- writing


def may_write(inp) -> set[str]:
    """Every artifact name a tree run may write (firmware files are listed one by one
    when written; the folder is named here for the kill -9 journal)."""
    return {BASELINE_JSON, PRUNED_JSON, FIRMWARE}


def _model_json(forest) -> bytes:
    from edgeprune.trees.load import to_json

    return json.dumps(to_json(forest), separators=(",", ":")).encode()


def firmware_files(inp, forest, files: dict) -> dict[str, str]:
    """The C of ``forest``, the serial validation harness and a README."""
    from edgeprune.trees.hostrun import serial_harness

    harness = serial_harness(files, C_NAME)
    core = inp.target.core if inp.target else "any core"
    readme = (
        f"# {inp.kind} for {inp.target.id if inp.target else 'a device'}\n\n"
        f"`{C_NAME}_model.h`/`.c`: the pruned model ({forest.n_nodes} nodes, "
        f"{forest.n_members} members, {inp.dtype} inputs). Add both to your firmware and call "
        f"`{C_NAME}_predict(features)` with `{C_NAME.upper()}_N_FEATURES` features"
        + (f" (quantize them first with `{C_NAME}_quantize`)" if inp.dtype == "int16" else "")
        + ".\nBuild as edgeprune measured it (for "
        f"{core}): `-Os -std=c99 -ffunction-sections -fdata-sections -ffp-contract=off`, "
        "linked with `--gc-sections`.\n\n"
        "Serial validation: also build `tree_harness.c` and "
        f"`{C_NAME}_harness_glue.c`, call `ep_tree_init(&h, &{C_NAME}_tree_model, clock_hz, "
        "transport)` once and feed every received byte to `ep_tree_receive`; then run "
        "`edgeprune validate RUN_DIR --runner serial --device PORT`.\n"
    )
    return {**files, **harness, "README.md": readme}


def _write(inp, baseline, pruned, fw: dict[str, str]) -> list[str]:
    import os

    inp.out.write_bytes(BASELINE_JSON, _model_json(baseline), "baseline")
    inp.out.write_bytes(PRUNED_JSON, _model_json(pruned), "prune")
    os.makedirs(inp.out.file(FIRMWARE), exist_ok=True)
    names = []
    for fname, text in sorted(fw.items()):
        inp.out.write_bytes(f"{FIRMWARE}/{fname}", text.encode(), "firmware")
        names.append(f"{FIRMWARE}/{fname}")
    return names


def run_stages(inp, previous: set[str], t0: float) -> TreeRunResult:
    """Every stage of a tree run, from the baseline to ``report.json``."""
    from edgeprune.trees import cexport

    notes = []
    base = baseline_stage(inp)
    imp_base = importance(base, inp)
    dropped = feature_drop_stage(inp, base, imp_base)
    start, drop_summary = dropped if dropped else (base, None)
    outcome = prune_stage(inp, start)
    pruned = outcome.forest
    log.info(
        "prune: %d -> %d nodes, %d -> %d members",
        base.n_nodes,
        pruned.n_nodes,
        base.n_members,
        pruned.n_members,
    )
    files = cexport.generate(pruned, C_NAME, inp.dtype)
    measured, check = {}, None
    if inp.target is not None:
        measured["baseline"] = measure(inp, base)
        measured["pruned"] = measure(inp, pruned, files)
        check = judge(inp, pruned, measured["pruned"])
    else:
        notes.append("no target: the C was not compiled for a core, nor checked (--target NAME)")
    agreement, why = host_agreement(inp, pruned)
    if why:
        notes.append(why)
    c_files = _write(inp, base, pruned, firmware_files(inp, pruned, files))
    inp.out.remove_unlisted(previous)
    entry = TreeRunEntry(
        kind=inp.kind,
        task=inp.task,
        source=inp.source,
        n_features=int(inp.fit[0].shape[1]),
        classes=list(base.classes),
        feature_names=list(base.feature_names),
        options=base.meta.get("options") or base.meta.get("params") or {},
        prune={**asdict(inp.prune_options), "goal": inp.recipe.trees.goal},
        validation_split=f"{inp.val_split}: {len(inp.val[1])} samples",
        baseline=model_entry(inp, base, BASELINE_JSON, imp_base, measured.get("baseline")),
        pruned=model_entry(
            inp, pruned, PRUNED_JSON, importance(pruned, inp), measured.get("pruned")
        ),
        steps=tuple(_plain(s) for s in outcome.steps),
        dtype=inp.dtype,
        c_files=c_files,
        feature_drop=_plain(drop_summary),
        agreement=agreement,
        notes=tuple(notes),
    )
    seconds = time.perf_counter() - t0
    body = TreeReport(
        seed=inp.recipe.seed,
        recipe=inp.recipe.to_dict(),
        inputs=inp.inputs_entry(),
        stages=report.Stages(
            check=None if check is None else report.CheckEntry.from_dict(check.to_dict())
        ),
        seconds=seconds,
        target=None if inp.target is None else inp.target.to_dict(),
        trees=entry,
    )
    path = report.write_run(inp.out, body)
    body = report.read(path)  # as written: artifacts listed, checked by the one reader
    return TreeRunResult(
        inp.out.path,
        path,
        inp.kind,
        inp.task,
        base,
        pruned,
        outcome.steps,
        seconds,
        body,
        check,
        measured,
        agreement,
        drop_summary,
    )


def _plain(obj):
    """``obj`` with numpy scalars and arrays as Python values (for report.json)."""
    return json.loads(json.dumps(obj, default=_default)) if obj is not None else None


def _default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON")
