"""The sections of a sweep folder's ``report.html``, from its ``sweep.json`` alone.

``sweep.json`` (schema ``edgeprune-sweep/1``, written by the sweep) lists every
trial with its parameters, its measured figures, whether it met the device's
budgets (and which rule it failed if not) and the numbers of the trials on
the Pareto front. The page draws the first objective (accuracy, or MSE)
against each chosen cost with the front, the budget lines, the infeasible
trials apart and the reference point, then tables the front with the
command that exports each point.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping

from edgeprune.presentation import plots
from edgeprune.presentation.page import Section, esc, missing, num, page, para, table, verdict

FIGURE_KEYS = (
    "accuracy",
    "macro_f1",
    "mse",
    "latency_ms",
    "flash_bytes",
    "ram_bytes",
    "gzip_bytes",
)


def render(sweep: Mapping) -> str:
    """The whole page for one ``sweep.json`` document."""
    sections = [header(sweep), tradeoffs(sweep), front(sweep), infeasible(sweep), failed(sweep)]
    sections.append(all_trials(sweep))
    return page(
        f"edgeprune sweep: {sweep['study']}",
        "built from sweep.json alone; `edgeprune report FOLDER` rebuilds it",
        sections,
    )


def header(sweep: Mapping) -> Section:
    identity = sweep.get("identity") or {}
    states = Counter(t["state"] for t in sweep["trials"])
    complete = [t for t in sweep["trials"] if t["state"] == "COMPLETE"]
    rows = [
        ("study", esc(sweep["study"])),
        ("storage", f"<code>{esc(sweep.get('storage') or '-')}</code>"),
        (
            "model",
            f"{esc(identity.get('model', '-'))} "
            f"<code>{esc(identity.get('model_sha256', ''))}</code>",
        ),
        ("data SHA-256", f"<code>{esc(identity.get('data_sha256', '-'))}</code>"),
        ("target", esc(identity.get("target", "-"))),
        ("objectives", esc(", ".join(_objective_text(o) for o in sweep["objectives"]))),
        ("budgets", esc(", ".join(f"{k} {num(v)}" for k, v in _budgets(sweep).items()) or "none")),
        ("trials", esc(", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items())) or "none")),
        ("feasible", f"{sum(t['feasible'] for t in complete)} of {len(complete)} complete trials"),
    ]
    body = table(None, rows)
    space = identity.get("space")
    if space:
        body += "<h3>Search space</h3>" + table(
            ["dimension", "values"],
            [[esc(k), f"<code>{esc(json.dumps(v))}</code>"] for k, v in space.items()],
        )
    return Section("sweep", "Sweep", body)


def _objective_label(objective: Mapping) -> str:
    unit = f" ({objective['unit']})" if objective.get("unit") else ""
    return f"{objective['label']}{unit}"


def _objective_text(objective: Mapping) -> str:
    return f"{_objective_label(objective)}, {objective['direction']}"


def _budgets(sweep: Mapping) -> dict:
    return {k: v for k, v in (sweep.get("budgets") or {}).items() if v is not None}


def tradeoffs(sweep: Mapping) -> Section:
    title = "Trade-offs"
    costs = sweep["objectives"][1:]
    if not costs:
        return missing("tradeoffs", title, "The sweep chose no cost objective to trade against.")
    quality = sweep["objectives"][0]["key"]
    drawable = [
        t
        for t in sweep["trials"]
        if t["state"] == "COMPLETE" and t["values"].get(quality) is not None
    ]
    if not drawable:
        return missing("tradeoffs", title, "No trial has completed yet.")
    body = "".join(
        plots.tradeoff(sweep, cost, f"tradeoff-{cost['key'].replace('_', '-')}") for cost in costs
    )
    body += para(
        "Diamonds are the Pareto front of the feasible trials over all objectives (joined by a "
        "step line when there is one cost); crosses "
        "are trials that missed a device budget (the rule in the legend); the dashed line is "
        "the device's budget. Latency is the cost model's estimate."
    )
    return Section("tradeoffs", title, body)


def _export(sweep: Mapping, number: int) -> str:
    command = sweep.get("export_command")
    return f'<code class="cmd">{esc(command.format(number=number))}</code>' if command else "-"


def _value_columns(sweep: Mapping) -> list[str]:
    keys = [o["key"] for o in sweep["objectives"]]
    seen = {k for t in sweep["trials"] for k, v in t["values"].items() if v is not None}
    return keys + [k for k in FIGURE_KEYS if k in seen and k not in keys]


def _params(trial: Mapping) -> str:
    return esc(", ".join(f"{k}={v}" for k, v in trial["params"].items()))


def front(sweep: Mapping) -> Section:
    title = "Pareto front"
    by_number = {t["number"]: t for t in sweep["trials"]}
    numbers = [n for n in sweep.get("front") or () if n in by_number]
    if not numbers:
        return missing("front", title, "No feasible trial yet, so the front is empty.")
    columns = [o["key"] for o in sweep["objectives"]]
    first = sweep["objectives"][0]
    ordered = sorted(
        numbers,
        key=lambda n: by_number[n]["values"].get(first["key"]) or 0,
        reverse=first["direction"] == "maximize",
    )
    rows = [
        [num(n), _params(by_number[n])]
        + [num(by_number[n]["values"].get(k)) for k in columns]
        + [_export(sweep, n)]
        for n in ordered
    ]
    reference = sweep.get("reference")
    if reference:
        rows.append(
            [f"<i>{esc(reference['label'])}</i>", "<i>reference</i>"]
            + [num(reference["values"].get(k)) for k in columns]
            + ["-"]
        )
    labels = [_objective_label(o) for o in sweep["objectives"]]
    body = table(
        ["trial", "parameters", *labels, "export command"], rows, range(2, 2 + len(columns))
    )
    body += para(
        "Each command turns its trial into a normal run folder with firmware/, as "
        "`edgeprune run --target` writes it."
    )
    return Section("front", title, body)


def infeasible(sweep: Mapping) -> Section:
    title = "Infeasible trials"
    trials = [t for t in sweep["trials"] if t["state"] == "COMPLETE" and not t["feasible"]]
    if not trials:
        return missing("infeasible", title, "Every completed trial met the device's budgets.")
    columns = _value_columns(sweep)
    rows = [
        [num(t["number"]), _params(t), esc(", ".join(t["failed_rules"]) or "-")]
        + [num(t["values"].get(k)) for k in columns]
        for t in trials
    ]
    return Section(
        "infeasible",
        title,
        table(["trial", "parameters", "failed rules", *columns], rows, range(3, 3 + len(columns))),
    )


def failed(sweep: Mapping) -> Section:
    title = "Failed trials"
    trials = [t for t in sweep["trials"] if t["state"] == "FAIL"]
    if not trials:
        return missing("failed", title, "No trial failed.")
    rows = [[num(t["number"]), _params(t), esc(t.get("error") or "-")] for t in trials]
    return Section("failed", title, table(["trial", "parameters", "error"], rows, (0,)))


def all_trials(sweep: Mapping) -> Section:
    columns = _value_columns(sweep)
    front_set = set(sweep.get("front") or ())
    rows = []
    for t in sweep["trials"]:
        done = t["state"] == "COMPLETE"
        rows.append(
            [num(t["number"]), esc(t["state"]), _params(t)]
            + [num(t["values"].get(k)) for k in columns]
            + [verdict(t["feasible"]) if done else "-", "yes" if t["number"] in front_set else ""]
            + [num(t.get("seconds"), 3), esc(t.get("folder") or "-")]
        )
    header = ["trial", "state", "parameters", *columns, "budgets", "front", "seconds", "folder"]
    body = table(header, rows, [0, *range(3, 3 + len(columns)), 5 + len(columns)])
    return Section("trials", "All trials", body)
