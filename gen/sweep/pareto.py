"""Pareto fronts of sweep rows (both axes as given: area on x, error or Fmax on y)."""

from __future__ import annotations

__all__ = ["pareto_front", "front_rows", "latency_column", "LONGEST_ROW_LATENCY"]


def pareto_front(points, *, maximise_y: bool = False) -> list[int]:
    """Indices of the non-dominated ``(x, y)`` points, by increasing x: x is minimised, y minimised
    (or maximised).  A point is dominated when another is no worse on both axes and better on one;
    equal points are all kept."""
    sign = -1.0 if maximise_y else 1.0
    pts = [(float(x), sign * float(y)) for x, y in points]
    keep = []
    for i, (xi, yi) in enumerate(pts):
        dominated = any(xj <= xi and yj <= yi and (xj < xi or yj < yi) for j, (xj, yj) in enumerate(pts) if j != i)
        if not dominated:
            keep.append(i)
    return sorted(keep, key=lambda i: (pts[i][0], pts[i][1]))


def front_rows(rows, x: str, y: str, *, maximise_y: bool = False) -> list[dict]:
    """The rows on the front of columns ``x`` and ``y`` (rows missing either value take no part)."""
    usable = [r for r in rows if r.get(x) not in (None, "") and r.get(y) not in (None, "")]
    return [usable[i] for i in pareto_front([(r[x], r[y]) for r in usable], maximise_y=maximise_y)]


#: a row operator's latency at its longest row (``d_max`` or ``d``): the number its latency front and
#: panel compare, so that ``n + 56`` and a fixed 59 are compared where they differ most
LONGEST_ROW_LATENCY = "latency_longest_row"


def latency_column(rows) -> str:
    """The latency the fronts compare: at the longest row for row operators, else the cycles."""
    return LONGEST_ROW_LATENCY if any(r.get(LONGEST_ROW_LATENCY) is not None for r in rows) else "latency_cycles"
