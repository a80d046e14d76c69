"""The figures of ``report.html``, as inline SVG text: the only module that imports matplotlib.

Each function takes report types (or a ``sweep.json`` dict) and returns one
``<svg>`` element, titled, with labelled axes and units, sized for a page of
about 800 px. matplotlib is imported on the first call, not on import, and
only its object API is used (``Figure``, no pyplot): no global figure state
and no backend switch in the caller's process (a notebook keeps its own).

Text stays text (``svg.fonttype = none``), so a figure is crisp at any zoom
and its labels can be searched. Every ``id`` of a figure gets the figure's
prefix, so several inline figures never share one; the XML prolog, metadata
and namespace declarations are dropped, so the page names no URL at all.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence

from edgeprune.tflite.names import layer_label

WIDTH_IN = 8.0  # 800 px at 100 dpi: the page's figure width
PASS, FAIL, GREY = "#2a7f62", "#c0392b", "#888888"
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
STAGE_ORDER = ("baseline", "structured", "pruned", "final")

_RC = {
    "svg.fonttype": "none",
    "svg.hashsalt": "edgeprune",  # the same report gives the same figures
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def _figure(height_in: float, ncols: int = 1):
    """A new figure and its axes; matplotlib is imported here, on first use."""
    import matplotlib
    from matplotlib.figure import Figure

    matplotlib.rcParams.update(_RC)
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=100, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes if ncols > 1 else axes[0]


def _svg(fig, name: str) -> str:
    """``fig`` as one inline ``<svg>`` whose ids all start with ``name``."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    text = re.sub(r'\s+xmlns(:\w+)?="[^"]*"', "", text)
    text = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', text)
    text = re.sub(r'(href="|url\()#([^")]+)', rf"\1#{name}-\2", text)
    return re.sub(r"<svg ", f'<svg role="img" aria-label="{name}" class="figure" ', text, count=1)


def _label_bars(ax, bars, texts: Sequence[str]) -> None:
    for bar, text in zip(bars, texts, strict=True):
        ax.annotate(
            text,
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )


def _end_labels(ax, bars, texts: Sequence[str], ends: Sequence[float] | None = None) -> None:
    """Write ``texts`` after the end of horizontal ``bars`` (or at ``ends``)."""
    for i, (bar, text) in enumerate(zip(bars, texts, strict=True)):
        x = bar.get_width() if ends is None else ends[i]
        ax.annotate(
            text,
            (x, bar.get_y() + bar.get_height() / 2),
            va="center",
            fontsize=8,
            xytext=(4, 0),
            textcoords="offset points",
        )


# ---------------------------------------------------------------- run reports


def size_by_stage(sizes: Mapping) -> str:
    """Flatbuffer and gzip bytes of each stage's ``.tflite`` (``report.ModelSize`` by stage)."""
    stages = [s for s in STAGE_ORDER if s in sizes] + [s for s in sizes if s not in STAGE_ORDER]
    fig, ax = _figure(3.6)
    x = range(len(stages))
    for offset, (attr, label, color) in enumerate(
        (("bytes", "flatbuffer (what flash holds)", COLORS[0]), ("gzip_bytes", "gzip", COLORS[1]))
    ):
        values = [getattr(sizes[s], attr) / 1024 for s in stages]
        bars = ax.bar([i + (offset - 0.5) * 0.4 for i in x], values, 0.4, label=label, color=color)
        _label_bars(ax, bars, [f"{v:.1f}" for v in values])
    ax.set_xticks(list(x), [f"{s}\n({sizes[s].mode})" for s in stages])
    ax.set_ylabel("size (KiB = 1,024 bytes)")
    ax.set_title("Model size by stage")
    ax.legend(loc="upper right")
    return _svg(fig, "size-by-stage")


def layer_sparsity(layers: Sequence[dict]) -> str:
    """Achieved vs requested sparsity of each weighted layer (the prune entry's ``layers``)."""
    names = [entry["name"] for entry in layers]
    fig, ax = _figure(0.9 + 0.32 * len(names))
    y = range(len(names))
    bars = ax.barh(list(y), [e["achieved"] for e in layers], 0.6, label="achieved", color=COLORS[0])
    ax.scatter(
        [e["requested"] for e in layers], list(y), marker="|", s=300, color=FAIL, label="requested"
    )
    _end_labels(ax, bars, [f"{e['achieved']:.1%}" for e in layers])
    ax.set_yticks(list(y), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.12)
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_xlabel("share of the layer's weights that are zero (%)")
    ax.set_title("Unstructured sparsity by layer")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "layer-sparsity")


def kept_width(widths: Mapping[str, Sequence[int]]) -> str:
    """Channels before and after structured pruning (``layer -> [before, after]``)."""
    names = list(widths)
    fig, ax = _figure(0.9 + 0.32 * len(names))
    y = list(range(len(names)))
    ax.barh(y, [widths[n][0] for n in names], 0.6, color="#d9d9d9", label="before")
    bars = ax.barh(y, [widths[n][1] for n in names], 0.6, color=COLORS[2], label="kept")
    texts = [f"{widths[n][1]} of {widths[n][0]}" for n in names]
    _end_labels(ax, bars, texts, [widths[n][0] for n in names])
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(widths[n][0] for n in names) * 1.2)
    ax.set_xlabel("channels (filters or units)")
    ax.set_title("Kept width by layer (structured pruning)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "kept-width")


def quality_by_stage(figures: Mapping[str, Mapping], keys: Sequence[tuple[str, str]]) -> str:
    """One small panel per metric (``keys``: figure key, label), its value at each stage
    (``figures``: stage -> the evaluate entry's figures)."""
    stages = list(figures)
    fig, axes = _figure(3.0, len(keys))
    axes = axes if len(keys) > 1 else [axes]
    for ax, (key, label), color in zip(axes, keys, COLORS, strict=False):
        values = [figures[s].get(key) for s in stages]
        shown = [(i, v) for i, v in enumerate(values) if v is not None]
        ax.plot([i for i, _ in shown], [v for _, v in shown], "o-", color=color)
        for i, v in shown:
            ax.annotate(
                f"{v:.4g}",
                (i, v),
                ha="center",
                fontsize=8,
                xytext=(0, 6),
                textcoords="offset points",
            )
        ax.set_xticks(range(len(stages)), stages, rotation=20)
        ax.set_xlim(-0.5, len(stages) - 0.5)
        ax.margins(y=0.25)
        ax.set_title(label, fontsize=11)
    fig.suptitle("Quality by stage (test set)", fontweight="bold")
    return _svg(fig, "quality-by-stage")


def confusion(matrix: Sequence[Sequence[int]], title: str, name: str) -> str:
    """A confusion matrix as a heat map, with the count in each cell (rows: true class)."""
    n = len(matrix)
    fig, ax = _figure(min(5.0, 1.4 + 0.34 * n))
    image = ax.imshow(matrix, cmap="Blues")
    peak = max((max(row) for row in matrix), default=0)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            color = "white" if peak and count > peak / 2 else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color=color)
    ax.grid(False)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="test samples", shrink=0.8)
    return _svg(fig, name)


def budget_use(rules: Sequence, estimate_ms: float | None, band: float | None) -> str:
    """Each judged rule's figure as a share of its budget (``RuleResult``), the budget at
    100 %. With ``estimate_ms`` (an estimated latency), the latency bar is the estimate
    and its error bar the cost model's error band ``band`` (a fraction), which the rule
    may judge at its upper edge."""
    judged = [r for r in rules if r.budget]
    fig, ax = _figure(0.9 + 0.45 * len(judged))
    y = list(range(len(judged)))
    estimated = [r.name == "latency" and estimate_ms is not None for r in judged]
    shares = [
        (estimate_ms if est else r.figure) / r.budget
        for r, est in zip(judged, estimated, strict=True)
    ]
    bars = ax.barh(y, shares, 0.6, color=[PASS if r.ok else FAIL for r in judged])
    ends = list(shares)
    for i, est in enumerate(estimated):
        if est and band:
            ax.errorbar(shares[i], i, xerr=shares[i] * band, color="black", capsize=4)
            ends[i] = shares[i] * (1 + band)
    ax.axvline(1.0, color="black", linestyle="--", linewidth=1, label="budget")
    texts = [
        f"{share:.0%}{f' ±{band:.0%}' if est and band else ''} ({'pass' if r.ok else 'FAIL'})"
        for share, est, r in zip(shares, estimated, judged, strict=True)
    ]
    _end_labels(ax, bars, texts, ends)
    labels = [
        f"{r.name} (estimate)" if est else r.name for r, est in zip(judged, estimated, strict=True)
    ]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, max([1.2, *[e + 0.3 for e in ends]]))
    ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_xlabel("used, as a share of the budget (%)")
    ax.set_title("Budgets: used vs budget")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "budget-use")


def op_latency(ops: Sequence[dict], top: int, cost_model: str) -> str:
    """The ``top`` operators by estimated latency (the check evidence's ``latency.ops``)."""
    chosen = sorted(ops, key=lambda o: -o["ms"])[:top]
    fig, ax = _figure(0.9 + 0.34 * len(chosen))
    y = list(range(len(chosen)))
    bars = ax.barh(y, [o["ms"] for o in chosen], 0.6, color=COLORS[0])
    _end_labels(ax, bars, [f"{o['ms']:.3g} ms" for o in chosen])
    labels = [f"#{o['index']} {o['opcode']} {layer_label(o['layer'], 24)}" for o in chosen]
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.margins(x=0.15)
    ax.set_xlabel(f"estimated latency (ms, cost model {cost_model})")
    ax.set_title(f"Most expensive operators (estimate, top {len(chosen)})")
    return _svg(fig, "op-latency")


def latency_percentiles(latencies: Mapping[str, Mapping]) -> str:
    """Invoke-time percentiles per validation runner (``runner -> latency_ms``), log scale:
    a board and this machine differ by orders of magnitude."""
    keys = [k for k in ("p50", "p90", "p99", "max") if any(k in v for v in latencies.values())]
    runners = list(latencies)
    fig, ax = _figure(1.2 + 0.5 * len(runners))
    height = 0.8 / max(len(keys), 1)
    for j, (key, color) in enumerate(zip(keys, COLORS, strict=False)):
        y = [i + (j - (len(keys) - 1) / 2) * height for i in range(len(runners))]
        values = [latencies[r].get(key) or 0 for r in runners]
        ax.barh(y, values, height, color=color, label=key)
    ax.set_yticks(range(len(runners)), runners)
    ax.invert_yaxis()
    if any(latencies[r].get(k) for r in runners for k in keys):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:g}")
    ax.set_xlabel("invoke time (ms, log scale)")
    ax.set_title("Validation latency by runner")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _svg(fig, "validation-latency")


# ---------------------------------------------------------------- sweeps


def tradeoff(sweep: Mapping, cost: Mapping, name: str) -> str:
    """The sweep's first objective (accuracy or MSE) against one cost objective: feasible
    trials, the Pareto front (a step line when it is the front of these two objectives
    alone), infeasible trials apart by the rule they failed, the device's budget line
    and the reference point (``sweep.json``). Bytes are drawn in KiB."""
    quality = sweep["objectives"][0]
    qkey, ckey = quality["key"], cost["key"]
    scale = 1024 if cost.get("unit") in ("bytes", "B") else 1

    def xy(trials):
        return [t["values"][ckey] / scale for t in trials], [t["values"][qkey] for t in trials]

    trials = [
        t
        for t in sweep["trials"]
        if t["state"] == "COMPLETE" and None not in (t["values"].get(qkey), t["values"].get(ckey))
    ]
    front = set(sweep.get("front") or ())
    on_front = sorted((t for t in trials if t["number"] in front), key=lambda t: t["values"][ckey])
    fig, ax = _figure(4.2)
    groups = [
        (
            [t for t in trials if t["feasible"] and t["number"] not in front],
            "feasible",
            "o",
            COLORS[0],
        )
    ]
    by_rule: dict[str, list] = {}
    for t in trials:
        if not t["feasible"]:
            by_rule.setdefault(", ".join(t["failed_rules"]) or "a budget", []).append(t)
    for (rule, group), marker in zip(sorted(by_rule.items()), "xXP*v^", strict=False):
        groups.append((group, f"infeasible: {rule} over budget", marker, FAIL))
    for group, label, marker, color in groups:
        if group:
            ax.scatter(*xy(group), marker=marker, color=color, label=label, zorder=3)
    if on_front:
        if len(sweep["objectives"]) == 2:
            ax.step(*xy(on_front), where="post", color=COLORS[1], linewidth=1.5, zorder=2)
        ax.scatter(*xy(on_front), marker="D", s=50, color=COLORS[1], label="Pareto front", zorder=4)
        for t, x, y in zip(on_front, *xy(on_front), strict=True):
            ax.annotate(
                f"#{t['number']}", (x, y), fontsize=8, xytext=(5, 4), textcoords="offset points"
            )
    unit = " KiB" if scale > 1 else f" {cost['unit']}" if cost.get("unit") else ""
    budget = (sweep.get("budgets") or {}).get(ckey)
    if budget is not None:
        shown = f"budget {_num(budget / scale)}{unit}"
        ax.axvline(budget / scale, color=FAIL, linestyle="--", linewidth=1, label=shown)
    reference = sweep.get("reference") or {"values": {}}
    if None not in (reference["values"].get(qkey), reference["values"].get(ckey)):
        ax.scatter(
            *xy([reference]),
            marker="*",
            s=220,
            color="black",
            zorder=5,
            label=f"reference: {reference['label']}",
        )
    qunit = f" ({quality['unit']})" if quality.get("unit") else ""
    xunit = f" ({unit.strip()})" if unit else ""
    ax.set_xlabel(f"{cost['label']}{xunit}, {_better(cost['direction'])}")
    ax.set_ylabel(f"{quality['label']}{qunit}, {_better(quality['direction'])}")
    ax.set_title(f"{quality['label']} vs {cost['label']}")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    return _svg(fig, name)


def _better(direction: str) -> str:
    return "lower is better" if direction == "minimize" else "higher is better"


def _num(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"
