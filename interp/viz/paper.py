"""The paper theme: a figure laid out for a venue's column at its printed size.

A PDF or SVG is exported at 96 CSS pixels per inch, so a figure `width_in` wide is placed in
LaTeX at 100% (``\\includegraphics[width=\\columnwidth]``) and every font keeps the point size
asked for here. Titles are dropped by default (the caption belongs to the paper), signed colour
scales are centred at zero, and the categorical colours are Okabe-Ito (colour-blind safe, set
for every figure in `interp.viz.theme`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go

from interp.checks import checked
from interp.errors import InterpError
from interp.viz.theme import SIGNED_SCALE

PX_PER_IN = 96.0  # CSS pixels per inch: Chromium prints 96 px to the inch
PT_PER_IN = 72.0

#: Column widths in inches of common venues' LaTeX styles (\columnwidth, \textwidth).
VENUES: dict[str, float] = {
    "single": 3.3,  # a two-column paper's column (ICML, ACL, IEEE: 3.0-3.5 in)
    "double": 6.9,  # the full text width of a two-column paper
    "icml": 3.25,
    "icml-wide": 6.75,
    "acl": 3.03,  # 7.7 cm
    "acl-wide": 6.3,  # 16 cm
    "ieee": 3.5,
    "ieee-wide": 7.16,
    "neurips": 5.5,  # one-column text width
    "iclr": 5.5,
}

FONTS = {
    "sans": "Helvetica, Arial, 'Liberation Sans', 'DejaVu Sans', sans-serif",
    "serif": "'Times New Roman', Times, 'Liberation Serif', 'DejaVu Serif', serif",
}
Font = Literal["sans", "serif"]

_UNITS = {"in": 1.0, "cm": 1 / 2.54, "mm": 1 / 25.4, "pt": 1 / PT_PER_IN, "px": 1 / PX_PER_IN}


def inches(value: float | str, what: str = "width") -> float:
    """A length in inches from ``3.3``, ``"3.3in"``, ``"8.4cm"``, ``"240pt"``, ``"317px"`` or a
    venue name (``"single"``, ``"double"``, ``"icml"`` ...; see `VENUES`). Numbers are inches."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        out = float(value)
    elif isinstance(value, str) and value.strip().lower() in VENUES:
        out = VENUES[value.strip().lower()]
    elif isinstance(value, str) and (
        m := re.fullmatch(r"\s*([0-9.]+)\s*(in|cm|mm|pt|px)?\s*", value)
    ):
        try:
            out = float(m.group(1)) * _UNITS[m.group(2) or "in"]
        except ValueError:
            out = float("nan")
    else:
        out = float("nan")
    if not np.isfinite(out) or out <= 0 or out > 60:
        raise InterpError(
            f"{what}={value!r}: give inches (3.3), a length with a unit ('3.3in', '8.4cm', "
            f"'240pt', '317px') or a venue ({', '.join(VENUES)})."
        )
    return out


@checked
@dataclass(frozen=True)
class PaperStyle:
    """Sizes of the paper theme, in points at the printed size."""

    font: Font = "sans"
    font_pt: float = 8.0  # tick labels, axis titles, legend: legible at column width
    title_pt: float = 9.0
    letter_pt: float = 10.0  # (a), (b) panel letters
    line_px: float = 1.5
    marker_px: float = 5.0

    def px(self, pt: float) -> float:
        """A font size in CSS px for `pt` points at the printed size."""
        return round(pt * PX_PER_IN / PT_PER_IN, 3)


def default_width(fig: go.Figure) -> str:
    """The venue width a figure needs: a table, three or more plots side by side, category
    labels that do not fit side by side in a column, or a heatmap with words in more than six
    columns take the full text width (``"double"``); anything else one column (``"single"``)."""
    if any(t.type == "table" for t in fig.data) or _columns(fig) >= 3:
        return "double"
    size = PaperStyle().px(PaperStyle.font_pt)
    single = VENUES["single"] * PX_PER_IN * 0.8
    if any(need > single * share for _, _, need, share in _category_axes(fig, size)):
        return "double"  # category labels that cannot sit side by side in a column
    for t in fig.data:  # words written in the cells of a wide heatmap need the room
        z = np.asarray(t.z) if t.type == "heatmap" and t.z is not None else np.empty(0)
        if t.text is not None and z.ndim == 2 and int(z.shape[-1]) > 6:
            return "double"
    return "single"


def _columns(fig: go.Figure) -> int:
    """How many plots sit side by side: distinct horizontal extents of the x axes."""
    spans = {tuple(round(v, 3) for v in (ax.domain or (0, 1))) for ax in fig.select_xaxes()}
    return max(1, len(spans))


#: The tallest a table is laid out (a page); longer tables print their first rows only.
MAX_TABLE_IN = 9.0


def table_height(fig: go.Figure, font_pt: float, width_in: float) -> float | None:
    """The height in inches that shows every row of the figure's table (at the text size that
    fits its columns in `width_in`, `table_font_px`), or None when it has no table."""
    tables = [t for t in fig.data if t.type == "table"]
    if not tables:
        return None
    size = table_font_px(tables[0], font_pt * PX_PER_IN / PT_PER_IN, width_in * PX_PER_IN)
    # Each row is as tall as its cell with the most lines (generations write two per cell).
    columns = [list(c) for t in tables for c in (t.cells.values or [])]
    rows = max((len(c) for c in columns), default=0)
    per_row = [
        max(str(c[r]).count("<br>") + str(c[r]).count("\n") + 1 for c in columns if r < len(c))
        for r in range(rows)
    ]
    lines = 2 * 1.9 + sum(2.05 * n - 0.2 for n in per_row) + 2.0  # header, rows, room
    return round(min(MAX_TABLE_IN, lines * size / PX_PER_IN), 3)


def _chars(trace: Any) -> list[int]:
    """Per column, the longest line of text (markup stripped, header included) in characters."""
    columns = list(trace.cells.values or [])
    header = list(trace.header.values or [])
    out = []
    for i in range(max(len(columns), len(header))):
        texts = [str(v) for v in (columns[i] if i < len(columns) else [])]
        texts += [str(header[i])] if i < len(header) else []
        lines = [ln for t in texts for ln in re.split(r"<br>|\n", re.sub(r"<(?!br)[^>]*>", "", t))]
        out.append(max([3, *(len(ln) for ln in lines)]))
    return out


def table_font_px(trace: Any, size: float, width_px: float) -> float:
    """The paper text size, or smaller (down to 5 pt) when the table's columns would not fit
    `width_px` at it (about 0.56 em per character, 12 px of padding per cell)."""
    chars = _chars(trace)
    if not chars:
        return size
    fits = (0.97 * width_px - 12 * len(chars)) / (0.56 * sum(chars))
    return round(max(5 * PX_PER_IN / PT_PER_IN, min(size, fits)), 3)


def default_height(width_in: float) -> float:
    """A height for a width: 3:4 for a column, flatter for wide figures, at most 4.5 in."""
    return round(min(4.5, width_in * (0.75 if width_in < 4.5 else 0.45)), 3)


def paper_figure(
    fig: go.Figure,
    width_in: float,
    height_in: float,
    style: PaperStyle | None = None,
    titles: bool = False,
) -> go.Figure:
    """A copy of `fig` styled for print at `width_in` x `height_in` inches.

    Fonts are set in points (`style`), titles removed unless `titles`, sliders and buttons
    removed (a printed page cannot move them; the figure shows its current frame), signed
    colour scales centred at zero, lines and markers sized for print.
    """
    st = style or PaperStyle()
    out = go.Figure(fig)  # a deep copy: the caller's figure is left as it is
    out.__dict__["_interp_escaped"] = set(fig.__dict__.get("_interp_escaped", set()))
    out.frames = []
    size = st.px(st.font_pt)
    family = FONTS[st.font]
    lay = out.layout
    lay.update(
        width=round(width_in * PX_PER_IN, 3),
        height=round(height_in * PX_PER_IN, 3),
        font={"family": family, "size": size, "color": "#000"},
        margin={"l": 8, "r": 8, "t": 8, "b": 8, "pad": 0, "autoexpand": True},
        sliders=[],
        updatemenus=[],
        hoverlabel={"font": {"family": family}},
    )
    lay.legend.font = {"size": size}
    lay.legend.title.font = {"size": size}
    if titles and lay.title.text:
        lay.title.font = {"size": st.px(st.title_pt)}
        lay.margin.t = st.px(st.title_pt) * 2.5
    else:
        lay.title.text = None
    for axes in (out.select_xaxes(), out.select_yaxes()):
        for ax in axes:
            ax.update(
                tickfont={"size": size},
                title={"font": {"size": size}, "standoff": 4},
                automargin=True,
                linewidth=0.75,
                ticklen=3,
                tickwidth=0.75,
            )
    above = 0.0  # text set above the plotting area (subplot titles, panel letters)
    for note in lay.annotations:
        # Panel letters keep their larger size; other notes follow the text size.
        big = bool(re.fullmatch(r"(<b>)?\([a-z]\)(</b>)?", str(note.text or "")))
        note.font.size = st.px(st.letter_pt if big else st.font_pt)
        note.font.family = family
        top = note.yref == "paper" and note.y is not None and note.y >= 0.98
        if top and note.yanchor == "bottom":
            above = max(above, note.font.size * 1.5 + float(note.yshift or 0))
    lay.margin.t = max(lay.margin.t, above)
    if lay.legend.x is None and lay.legend.orientation is None and _columns(out) == 1:
        # One plot: the legend goes in a row above it, not beside it (a third of a column).
        lay.legend.update(orientation="h", x=0, xanchor="left", y=1.02, yanchor="bottom")
    for trace in out.data:
        _trace(trace, st, size, width_in * PX_PER_IN)
    _tick_angles(out, width_in * PX_PER_IN, size)
    if lay.coloraxis is not None and lay.coloraxis.colorbar is not None:
        _colorbar(lay.coloraxis.colorbar, size)
    return out


def _colorbar(bar: Any, size: float) -> None:
    # The title runs along the bar: a title on top would take a third of a column's width.
    bar.update(
        thickness=10,
        tickfont={"size": size},
        title={"font": {"size": size}, "side": "right"},
        outlinewidth=0,
        ticklen=2,
    )


def _table(trace: Any, size: float, width_px: float) -> None:
    """Column widths in proportion to each column's longest line, so no column is cut while
    another has room to spare, at a text size that lets every column fit the width."""
    size = table_font_px(trace, size, width_px)
    trace.update(columnwidth=[c + 2 for c in _chars(trace)])  # + 2: the cell's padding
    trace.header.font.size = size
    trace.cells.font.size = size
    trace.header.height = size * 1.9
    trace.cells.height = size * 1.75


def _category_axes(fig: go.Figure, size: float) -> list[tuple[Any, int, float, float]]:
    """Per x axis with category labels: the axis, how many labels, the px they need side by
    side at text size `size`, and the axis' share of the figure's width."""
    labels: dict[str, dict[str, None]] = {}
    for t in fig.data:
        xs = getattr(t, "x", None)
        if xs is None or getattr(t, "orientation", None) == "h" or t.type == "table":
            continue
        values = [v for v in list(xs) if isinstance(v, str)]
        if "xaxis" in t:  # 3-D and polar traces have x but no x axis
            labels.setdefault(t.xaxis or "x", {}).update(dict.fromkeys(values))
    out = []
    for ref, names in labels.items():
        ax = fig.layout[f"xaxis{ref[1:]}"]
        if names and ax is not None and ax.ticktext is None:
            lo, hi = ax.domain or (0, 1)
            need = sum(len(n) for n in names) * 0.56 * size + len(names) * 0.8 * size
            out.append((ax, len(names), need, hi - lo))
    return out


def _tick_angles(fig: go.Figure, width_px: float, size: float) -> None:
    """Category labels that do not fit side by side are slanted (45 degrees) or, if even that
    crowds them, set vertical; the screen view's own angle is redone for the printed size."""
    for ax, n, need, share in _category_axes(fig, size):
        room = 0.8 * width_px * share  # the plot's share of the figure, less the margins
        if need <= room:
            continue
        if n * 1.6 * size <= room:
            ax.tickangle = -45
        elif n * 1.15 * size <= room:
            ax.tickangle = -90


def _signed_scale() -> Any:
    return go.Heatmap(colorscale=SIGNED_SCALE).colorscale


def _trace(trace: Any, st: PaperStyle, size: float, width_px: float) -> None:
    kind = trace.type
    if "colorbar" in trace:
        _colorbar(trace.colorbar, size)
    marker = trace.marker if "marker" in trace else None
    if marker is not None and "colorbar" in marker and marker.showscale:
        _colorbar(marker.colorbar, size)
    if "textfont" in trace:
        trace.textfont.size = size if kind != "heatmap" else st.px(st.font_pt - 1)
    if kind in ("heatmap", "contour") and trace.z is not None and trace.zmid is None:
        z = np.asarray(trace.z, dtype=float)
        finite = z[np.isfinite(z)]
        diverging = trace.colorscale == _signed_scale()
        if finite.size and finite.min() < 0 < finite.max() and diverging and trace.zmin is None:
            # A signed heatmap without a centre: centre it so white means no effect.
            bound = float(np.abs(finite).max())
            trace.update(zmid=0.0, zmin=-bound, zmax=bound)
    for err in ("error_x", "error_y"):
        if err in trace and trace[err].array is not None:
            trace[err].update(thickness=0.75, width=1.5)  # whiskers thinner than the bars
    if kind == "table":
        _table(trace, size, width_px)
    if kind == "scatter":
        mode = trace.mode or ""
        if "lines" in mode and (trace.line.width is None or trace.line.width > 0):
            trace.line.width = st.line_px
        if "markers" in mode and not isinstance(trace.marker.size, tuple | list | np.ndarray):
            trace.marker.size = st.marker_px
