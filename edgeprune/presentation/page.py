"""The HTML building blocks of ``report.html``: escaping, tables, sections, the page.

One self-contained file: the style sheet is inline, figures are inline SVG,
links are ``#anchors`` only; nothing runs (no JavaScript) and nothing is
fetched. Every text that comes from a report goes through :func:`esc`.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d1d1f;
margin:0 auto;max-width:960px;padding:0 16px 48px;line-height:1.45}
h1{font-size:1.6em;margin:24px 0 4px}h2{font-size:1.25em;margin:32px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}h3{font-size:1.05em;margin:18px 0 6px}
.sub{color:#555;margin:0 0 12px}nav{font-size:.9em;background:#f6f8fa;padding:8px 12px;
border-radius:6px}nav a{margin-right:12px;white-space:nowrap}
table{border-collapse:collapse;margin:8px 0;font-size:.88em}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.pass{color:#1a7f37;font-weight:600}.fail{color:#c0392b;font-weight:700}
.none{color:#777;white-space:nowrap}.note{color:#555;font-size:.92em}.missing{color:#777;font-style:italic}
.est{background:#fff4d6;border-radius:3px;padding:0 4px;font-size:.85em}
.wide{overflow-x:auto}code.cmd{word-break:normal}
svg.figure{display:block;max-width:100%;height:auto;margin:8px 0}
code{font-size:.9em;background:#f6f8fa;padding:1px 4px;border-radius:3px;word-break:break-all}
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def num(value: float | int | None, digits: int = 4) -> str:
    """A figure as the page shows it: integers with thousands separators, other numbers
    to ``digits`` significant digits, ``-`` for a missing one."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def table(
    header: Sequence[str] | None, rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()
) -> str:
    """A table; cells are HTML already (escape them with :func:`esc`); the columns in
    ``numeric`` are right-aligned. Without ``header``, a table of names and values."""
    right = set(numeric)
    if header is None:
        body = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in rows)
        return f'<div class="wide"><table>{body}</table></div>'
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{c}</td>' if i in right else f"<td>{c}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    table_html = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="wide">{table_html}</div>'


def verdict(ok: bool | None) -> str:
    """PASS, FAIL or "no budget set" (``None``), styled."""
    if ok is None:
        return '<span class="none">no budget set</span>'
    return '<span class="pass">PASS</span>' if ok else '<span class="fail">FAIL</span>'


def para(text: str, cls: str = "note") -> str:
    return f'<p class="{cls}">{esc(text)}</p>'


ESTIMATE = '<span class="est">estimate</span>'


@dataclass(frozen=True)
class Section:
    """One section of the page: its anchor, its heading, its HTML."""

    id: str
    title: str
    body: str

    def html(self) -> str:
        return f'<section id="{esc(self.id)}"><h2>{esc(self.title)}</h2>{self.body}</section>'


def missing(id: str, title: str, why: str) -> Section:
    """A section whose data the report lacks: its heading and one line saying why."""
    return Section(id, title, para(why, "missing"))


def page(title: str, subtitle: str, sections: Sequence[Section]) -> str:
    """The whole document: style, title, a table of contents of ``#anchors``, the sections."""
    nav = " ".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    body = "\n".join(s.html() for s in sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n"
        f'<body><h1>{esc(title)}</h1><p class="sub">{esc(subtitle)}</p>'
        f"<nav>{nav}</nav>\n{body}\n</body></html>\n"
    )
