"""Dense vs compressed, side by side: the CLI's lines and ``report.html``'s section.

Every figure comes from the report's ``compress`` entry and the two device
checks it holds (the dense model's, and the run's own for the shipped model):
which file each column came from is named in its header. The latency is an
estimate (the decoding part too); the arenas are the smallest working ones
measured in TFLite Micro for the target.
"""

from __future__ import annotations

from edgeprune.presentation.page import ESTIMATE, Section, esc, missing, para, table
from edgeprune.presentation.table import table as text_table


def _figures(check) -> dict:
    """Model, runtime, DECODE and total flash; arena and total RAM; latency (ms)."""
    ev = check.evidence
    rules = {r.name: r for r in check.rules}
    latency = ev.get("latency") or {}
    return {
        "model bytes": ev.get("model_bytes"),
        "DECODE kernel bytes": ev.get("decode_flash_bytes") or 0,
        "model + runtime bytes": (ev.get("model_bytes") or 0)
        + (ev.get("runtime_flash_bytes") or 0)
        + (ev.get("decode_flash_bytes") or 0),
        "flash (model + runtime + reserve)": rules["flash"].figure if "flash" in rules else None,
        "arena bytes": ev.get("arena_bytes"),
        "RAM (arena + runtime + reserve)": rules["ram"].figure if "ram" in rules else None,
        "latency ms (estimate)": latency.get("ms"),
    }


def comparison(entry, check) -> list[tuple[str, object, object, str]]:
    """Rows ``(figure, dense, compressed, change)`` for ``entry`` (a
    :class:`~edgeprune.report.CompressEntry`) and the shipped model's ``check``."""
    if entry.dense_check is None or check is None or not entry.model:
        return []
    dense, comp = _figures(entry.dense_check), _figures(check)
    rows = []
    for key, d in dense.items():
        c = comp[key]
        change = ""
        if isinstance(d, int | float) and isinstance(c, int | float) and d:
            change = f"{c / d:.2f}x"
        rows.append((key, d, c, change))
    return rows


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:,.3g}" if isinstance(value, float) and value < 1000 else f"{value:,.0f}"


def format_compress(entry, check) -> list[str]:
    """The lines ``edgeprune run`` prints for the compress stage."""
    c = entry.compression
    if not entry.model:
        return [f"compress ({entry.method}): {entry.note}; {entry.dense_model} is shipped"]
    done = [t["name"].rsplit("/", 2)[-2] for t in c["tensors"] if t["method"]]
    v = entry.verification or {}
    lines = [
        f"compress ({entry.method}): {entry.dense_model} {c['dense_bytes']:,} B -> "
        f"{entry.model} {c['model_bytes']:,} B ({c['ratio']:.2f}x), {len(done)} of "
        f"{len(c['tensors'])} tensors ({', '.join(done)}); outputs bit-exact on "
        f"{v.get('samples', 0)} test samples in TFLite Micro",
    ]
    rows = [["figure", entry.dense_model, entry.model, "compressed / dense"]]
    rows += [[k, _fmt(d), _fmt(n), ch] for k, d, n, ch in comparison(entry, check)]
    if len(rows) > 1:
        lines += text_table(rows, right={1, 2, 3})
    lines += _warnings(entry)
    return lines


def _warnings(entry) -> list[str]:
    out = []
    v = entry.verification or {}
    if entry.stopped_fitting:
        out.append(
            f"compression made the model stop fitting: {', '.join(entry.stopped_fitting)} "
            f"over budget (the dense model fitted); lower compress.max_decoded_bytes or "
            f'set compress.method = "none"'
        )
    if v.get("alt_decompression_bytes"):
        out.append(
            f"decoded weights live in the arena ({v['dense_arena_bytes']:,} -> "
            f"{v['compressed_arena_bytes']:,} B measured here); with "
            f"{v['alt_decompression_bytes']:,} B of alternate decompression memory the "
            f"arena would be {v['compressed_arena_with_alt_bytes']:,} B"
        )
    return out


def compress_section(rep) -> Section | None:
    """``report.html``'s section for a run with a ``compress`` entry, else None."""
    entry = rep.stages.compress
    if entry is None:
        return None
    title = "Weight compression (TFLite Micro DECODE)"
    if not entry.model:
        return missing("compress", title, f"{entry.method}: {entry.note}")
    rows = [
        [esc(k), esc(_fmt(d)), esc(_fmt(c)), esc(ch)]
        for k, d, c, ch in comparison(entry, rep.stages.check)
    ]
    rows = [r if "latency" not in r[0] else [*r[:3], f"{r[3]} {ESTIMATE}"] for r in rows]
    header = ["figure", entry.dense_model, entry.model, "compressed / dense"]
    body = table(header, rows, numeric=(1, 2, 3))
    tensors = [
        [esc(t["name"]), esc(t["method"] or "dense"), esc(t["density"]), esc(t["reason"])]
        for t in entry.compression["tensors"]
    ]
    body += table(["tensor", "encoding", "density", "why"], tensors, numeric=(2,))
    body += "".join(para(w) for w in format_compress(entry, rep.stages.check)[:1])
    body += "".join(para(w, "fail" if "stop" in w else "note") for w in _warnings(entry))
    return Section("compress", title, body)
