"""The grid of a multi-panel figure: cells in paper fractions and fresh ids for the axes,
colour axes and legends the panels bring (used by `interp.viz.panels`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from interp.errors import InterpError


@dataclass(frozen=True)
class Cell:
    """One panel's extent in paper fractions."""

    x0: float
    x1: float
    y0: float
    y1: float

    def mx(self, v: float) -> float:
        return self.x0 + float(v) * (self.x1 - self.x0)

    def my(self, v: float) -> float:
        return self.y0 + float(v) * (self.y1 - self.y0)


def clip(v: float) -> float:
    # Float noise (1.0000000002) would fail plotly's [0, 1] validation.
    return min(max(round(float(v), 10), 0.0), 1.0)


def domain(lo: float, hi: float) -> list[float]:
    return [clip(lo), clip(hi)]


def grid(
    n: int,
    cols: int,
    spacing: float,
    bar: float = 0.0,
    head: float = 0.0,
    vspace: float | None = None,
) -> list[Cell]:
    """Row-major cells for `n` panels; `bar` is the strip kept right of each cell for colour
    bars, `head` the strip above each row after the first for titles; `spacing` the gap
    between cells (`vspace` between rows, if it differs)."""
    rows = math.ceil(n / cols)
    vgap = spacing if vspace is None else vspace
    w = (1 - (cols - 1) * spacing - cols * bar) / cols
    h = (1 - (rows - 1) * (vgap + head)) / rows
    if w <= 0 or h <= 0:
        raise InterpError(f"spacing={spacing} leaves no room for {rows}x{cols} cells; pass less.")
    cells = []
    for i in range(n):
        r, c = divmod(i, cols)
        x0, y1 = c * (w + bar + spacing), 1 - r * (h + vgap + head)
        cells.append(Cell(*domain(x0, x0 + w), *domain(y1 - h, y1)))
    return cells


class Ids(dict[str, int]):
    """Fresh ids in the composite: x, x2, ...; coloraxis, coloraxis2, ...; legend, legend2."""

    def new(self, kind: str) -> str:
        self[kind] = n = self.get(kind, 0) + 1
        return kind if n == 1 else f"{kind}{n}"


def axis_key(ref: str) -> str:  # layout key of an axis ref: "x2" -> "xaxis2"
    return f"{ref[0]}axis{ref[1:]}"


def norm_ref(ref: str) -> str:  # "x1" is "x"
    return ref[0] if ref[1:] in ("", "1") else ref


def ref_rank(ref: str) -> tuple[str, int]:  # plotly's order: x, x2, ..., x10
    return ref[0], int(ref[1:] or 1)
