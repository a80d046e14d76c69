"""The Pareto front of a sweep's feasible trials: pure Python, no optuna.

A point dominates another when it is at least as good in every objective and
strictly better in one (better: larger for ``maximize``, smaller for
``minimize``). The front is every feasible point no other feasible point
dominates. Points with identical values do not dominate each other, so
duplicates are all on the front (two trials that reached the same figures
are both worth exporting). Infeasible points and points missing a value
never are: a trial over a budget is no answer to "what fits".
"""

from __future__ import annotations

from collections.abc import Sequence


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """Whether point ``a`` dominates point ``b`` under ``directions``."""
    better = False
    for x, y, d in zip(a, b, directions, strict=True):
        if d == "maximize":
            x, y = -x, -y
        elif d != "minimize":
            raise ValueError(f"direction {d!r} is neither maximize nor minimize")
        if x > y:
            return False
        better = better or x < y
    return better


def pareto_front(points: Sequence[dict], directions: Sequence[str]) -> list[int]:
    """The ``number`` of each point on the front, in ascending order.

    ``points`` are dicts with ``number``, ``values`` (one per direction, in
    order) and ``feasible``; infeasible points and points with a missing
    (None) value are left out before the front is computed.
    """
    candidates = [
        (p["number"], list(p["values"]))
        for p in points
        if p.get("feasible") and all(v is not None for v in p["values"])
    ]
    for _, values in candidates:
        if len(values) != len(directions):
            raise ValueError(f"a point has {len(values)} values for {len(directions)} directions")
    front = [
        n
        for n, v in candidates
        if not any(dominates(w, v, directions) for m, w in candidates if m != n)
    ]
    return sorted(front)
