"""The tree model's sections of ``report.html`` (a run with a ``trees`` section):
the model before and after pruning, the pruning steps, feature importance, the
feature drop and the host-compiled C's agreement with scikit-learn. Every figure
is one report.json holds; the latency is marked as an estimate."""

from __future__ import annotations

from edgeprune.presentation.page import ESTIMATE, Section, esc, num, para, table

TOP_FEATURES = 10


def tree_sections(rep) -> list[Section]:
    """The tree sections of ``rep``, none for a report without a ``trees`` section."""
    trees = getattr(rep, "trees", None)
    if trees is None:
        return []
    return [_models(trees), _importance(trees)]


def _models(trees) -> Section:
    classification = trees.task == "classification"
    keys = [("accuracy", "test accuracy"), ("macro_f1", "macro-F1")]
    if not classification:
        keys = [("mse", "test MSE"), ("mae", "test MAE")]
    rows = []
    for label, m in (("baseline", trees.baseline), ("pruned", trees.pruned)):
        c, compiled, lat = m.complexity, m.compiled or {}, m.latency or {}
        rows.append(
            [esc(label), f"<code>{esc(m.artifact)}</code>"]
            + [num(c[k]) for k in ("nodes", "leaves", "depth", "members")]
            + [num(m.test.get(k)) for k, _ in keys]
            + [num(compiled.get("flash_bytes")), num(compiled.get("ram_bytes"))]
            + [f"{num(lat['ms'])} ± {lat['error_band']:.0%} {ESTIMATE}" if lat else "-"]
        )
    header = ["model", "artifact", "nodes", "leaves", "depth", "members"]
    header += [label for _, label in keys] + ["flash B", "RAM B", "latency ms"]
    body = table(header, rows, numeric=range(2, 11))
    steps = [
        [
            esc(s["name"]),
            f"{num(s['nodes_before'])} → {num(s['nodes_after'])}",
            f"{s['members_before']} → {s['members_after']}",
            f"{num(s.get('validation_before'))} → {num(s.get('validation_after'))}",
            esc(
                ", ".join(
                    f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in s.get("parameters", {}).items()
                    if k != "order"
                )
            ),
        ]
        for s in trees.steps
    ]
    if steps:
        metric = trees.pruned.validation["metric"]
        body += table(["pruning step", "nodes", "members", f"validation {metric}", "chosen"], steps)
    compiled = trees.pruned.compiled
    if compiled:
        body += para(
            f"Flash and RAM: what the model's C adds to a firmware, compiled for "
            f"{compiled['core']} by {compiled['compiler']} ({' '.join(compiled['flags'])})."
        )
    a = trees.agreement
    if a is not None:
        body += para(
            f"The generated C ({a['dtype']} inputs) compiled for this machine predicts as "
            f"scikit-learn on {a['n_equal']} of {a['n']} {a['split']} samples."
        )
    body += "".join(para(n) for n in trees.notes)
    body += para(f"Validation split: {trees.validation_split}; test figures on the test split.")
    return Section("trees", f"Tree model: {trees.kind} ({trees.task})", body)


def _importance(trees) -> Section:
    imp = trees.pruned.importance
    names = trees.feature_names
    order = sorted(range(len(imp["features"])), key=lambda i: -imp["permutation_mean"][i])[
        :TOP_FEATURES
    ]
    rows = [
        [
            esc(names[imp["features"][i]] if names else f"feature {imp['features'][i]}"),
            num(imp["permutation_mean"][i]),
            num(imp["permutation_std"][i]),
            num(imp["impurity"][i]),
        ]
        for i in order
    ]
    body = table(
        ["feature", "permutation importance", "± std", "impurity importance"],
        rows,
        numeric=(1, 2, 3),
    )
    body += para(f"Of the pruned model; permutation importance on the {imp['permutation_basis']}.")
    d = trees.feature_drop
    if d:
        body += para(
            f"Feature drop: refitted on {len(d['kept'])} of {d['n_features_before']} features "
            f"({d['ranked_by']}): validation {d['metric']} {num(d['before'])} → "
            f"{num(d['after'])}."
        )
    return Section("importance", "Feature importance", body)
