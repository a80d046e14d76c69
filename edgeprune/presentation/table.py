"""Plain-text tables for the CLI's output: a header, a rule, aligned columns."""

from __future__ import annotations


def table(rows: list[list[str]], right: set[int] = frozenset()) -> list[str]:
    """Lines of ``rows`` (the first is the header) with columns padded to width;
    columns whose index is in ``right`` are right-aligned."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines
