"""Compose several figures (or results) into one lettered multi-panel figure for a paper.

Each source figure keeps all of its own axes: they are renamed to fresh ids in the composite,
their domains are scaled into the panel's cell, and every reference to them (traces, anchors,
annotations, shapes, images) is rewritten. Positions are relative (paper fractions) only, so an
exporter may change the figure's size afterwards.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from interp.errors import InterpError
from interp.viz.grid import Cell, Ids, axis_key, clip, domain, grid, norm_ref, ref_rank
from interp.viz.theme import SIGNED_SCALE, UNSIGNED_SCALE, apply_theme, plotly_text

if TYPE_CHECKING:
    from interp.results.base import Result

CELL_W, CELL_H = 450, 450  # px per cell when the sources set no size
BAR_PX = 80  # room right of each cell for its own colour bars (bar, ticks, title)
HEAD_PX = 30  # room above a row for panel titles, clear of the x-axis titles of the row above
RAISE_PX = 20  # a panel title goes up over a source's own subplot titles
_AX_KEY = re.compile(r"([xy])axis(\d*)")
_AX_REF = re.compile(r"([xy])(\d*)( domain)?")
_OTHER_SUBPLOTS = re.compile(r"(polar|ternary|scene|geo|mapbox|map|smith)\d*")
# Layout settings that are global in plotly; the first source that sets one wins.
_GLOBAL_KEYS = ("barmode", "bargap", "bargroupgap", "boxmode", "violinmode", "hovermode")
# Colour-scale settings a trace (or its marker/line) gives up when it joins a shared coloraxis.
_SCALE_KEYS = (
    "colorscale", "zmin", "zmax", "zmid", "zauto", "cmin", "cmax", "cmid", "cauto",
    "showscale", "colorbar", "reversescale", "autocolorscale",
)  # fmt: skip
# Trace types coloured by a z grid (a colour bar by default, no legend entry unless asked for).
_Shared = tuple[list[np.ndarray], list[str]]  # values and colour-bar titles of every panel
_Z_TYPES = {"heatmap", "contour", "histogram2d", "histogram2dcontour", "contourcarpet"}


def _holders(t: dict[str, Any]) -> list[tuple[dict[str, Any], str]]:
    """Where a trace keeps a colour scale, with the field of its values: the trace (z) and/or
    its marker / line (color)."""
    out: list[tuple[dict[str, Any], str]] = []
    if t.get("type") in _Z_TYPES or "coloraxis" in t or "colorscale" in t:
        out.append((t, "z"))
    for sub in ("marker", "line"):
        h = t.get(sub)
        if isinstance(h, dict) and ("coloraxis" in h or "colorscale" in h or h.get("showscale")):
            out.append((h, "color"))
    return out


def _finite(values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):  # colour names, ragged rows: no numbers to bound
        return np.empty(0)
    return arr[np.isfinite(arr)]


def _place_bar(cb: dict[str, Any], box: Cell, cell: Cell) -> None:
    """A colour bar just right of `box`; one the source positioned itself is moved with it."""
    if cb.get("xref") == "container" or cb.get("yref") == "container":
        return
    if "x" in cb or "y" in cb:
        cb["x"], cb["y"] = cell.mx(cb.get("x", 1.02)), cell.my(cb.get("y", 0.5))
        if cb.get("lenmode", "fraction") == "fraction":
            cb["len"] = cb.get("len", 1.0) * (cell.y1 - cell.y0)
        return
    cb.update(x=box.x1, xanchor="left", y=(box.y0 + box.y1) / 2, yanchor="middle")
    cb.update(len=box.y1 - box.y0, lenmode="fraction")
    cb.setdefault("thickness", 14)
    title = cb.setdefault("title", {})
    if isinstance(title, dict):
        title.setdefault("side", "right")  # a title on top would spill over the next cell


def _titles_of(cb: Any) -> list[str]:
    title = cb.get("title") if isinstance(cb, dict) else None
    text = title.get("text") if isinstance(title, dict) else title
    return [text] if isinstance(text, str) and text else []


def _legend_shown(shown: bool | None, traces: list[dict[str, Any]]) -> list[bool]:
    """Per trace, whether the source shows it in a legend (plotly's own defaults)."""
    entry = [
        t.get("showlegend", t.get("type") not in _Z_TYPES | {"image"})
        and t.get("visible", True) is not False
        for t in traces
    ]
    if shown is None:  # plotly: a legend once two entries exist (a pie's slices, one asked for)
        ask = [
            t.get("showlegend") is True or t.get("type") in ("pie", "funnelarea") for t in traces
        ]
        shown = sum(entry) + sum(e and x for e, x in zip(entry, ask, strict=True)) > 1
    return [bool(shown and e) for e in entry]


class _Panel:
    """One source figure moved into its cell: fresh ids for its axes, colour axes and legends,
    and every position and reference rewritten to match."""

    def __init__(self, src: go.Figure, k: int, cell: Cell, ids: Ids) -> None:
        self.k, self.cell, self.ids = k, cell, ids
        self.lay = copy.deepcopy(src.layout.to_plotly_json())
        self.traces = [copy.deepcopy(t.to_plotly_json()) for t in src.data]
        self.cart = ["xaxis" in tr for tr in src.data]  # plotly knows which types have axes
        self.showlegend = src.layout.showlegend
        odd = [f"a {key!r} subplot" for key in self.lay if _OTHER_SUBPLOTS.fullmatch(key)]
        odd += [f"a {tr.type} trace" for tr in src.data if "xaxis" not in tr and "domain" not in tr]
        if odd:  # polar, 3-D and map subplots have no axis domains to scale here
            raise InterpError(
                f"panels: item {k} has {odd[0]}; pass figures with cartesian axes (heatmap, "
                "bar, line, make_subplots grids) or domain traces such as pie."
            )
        self.notes = [
            (n, a) for n in ("annotations", "shapes", "images") for a in self.lay.get(n, ())
        ]
        self.pairs = [
            (norm_ref(t.get("xaxis", "x")), norm_ref(t.get("yaxis", "y")))
            for t, cart in zip(self.traces, self.cart, strict=True)
            if cart
        ]
        # Every axis the source uses, whether or not its layout spells it out.
        refs = {m[1] + m[2] for key in self.lay if (m := _AX_KEY.fullmatch(key))}
        refs |= {r for p in self.pairs for r in p}
        # A note without a ref sits on the source's first axis (plotly's default), images on paper
        first = {
            a: min((r for r in refs if r[0] == a), key=ref_rank, default="paper") for a in "xy"
        }
        self.refs = [
            [n.setdefault(f"{a}ref", "paper" if name == "images" else first[a]) for a in "xy"]
            for name, n in self.notes
        ]
        refs |= {
            norm_ref(m[1] + m[2]) for rs in self.refs for r in rs if (m := _AX_REF.fullmatch(r))
        }
        self.new = {r: ids.new(r[0]) for r in sorted(refs, key=ref_rank)}
        self.boxes: dict[str, list[float]] = {}
        # Subplot titles (notes at or over the top of the source) push the panel title up.
        self.raised = any(
            name == "annotations"
            and (ry == "paper" or ry.endswith(" domain"))
            and n.get("y", 0.5) >= 1
            for (name, n), (_, ry) in zip(self.notes, self.refs, strict=True)
        )

    def rename(self, ref: Any) -> Any:
        m = _AX_REF.fullmatch(ref) if isinstance(ref, str) else None
        if not m or norm_ref(m[1] + m[2]) not in self.new:
            return ref  # "paper", "free", "pixel", False
        return self.new[norm_ref(m[1] + m[2])] + (m[3] or "")

    def axes(self, out: dict[str, Any]) -> None:
        cell = self.cell
        for r, nr in self.new.items():
            ax = self.lay.get(axis_key(r), {})
            scale, across = (cell.mx, cell.my) if r[0] == "x" else (cell.my, cell.mx)
            lo, hi = ax.get("domain", [0.0, 1.0])
            ax["domain"] = self.boxes[nr] = domain(scale(lo), scale(hi))
            if "anchor" not in ax:  # left implicit, plotly might pick another panel's axis
                i = "xy".index(r[0])
                mates = sorted((p[1 - i] for p in self.pairs if p[i] == r), key=ref_rank)
                counter = "yx"[i] + r[1:]
                ax["anchor"] = mates[0] if mates else counter if counter in self.new else "free"
            if ax["anchor"] == "free":  # a free axis sits at a paper fraction across the cell
                ax["position"] = clip(across(ax.get("position", 0.0)))
            for field in ("anchor", "matches", "scaleanchor", "overlaying"):
                if field in ax:
                    ax[field] = self.rename(ax[field])
            out[axis_key(nr)] = ax
        for t, cart in zip(self.traces, self.cart, strict=True):
            if cart:
                t["xaxis"] = self.rename(t.get("xaxis", "x"))
                t["yaxis"] = self.rename(t.get("yaxis", "y"))
            else:  # pie and other domain traces
                dom = t.setdefault("domain", {})
                dom["x"] = domain(*(cell.mx(v) for v in dom.get("x", [0, 1])))
                dom["y"] = domain(*(cell.my(v) for v in dom.get("y", [0, 1])))

    def notes_to(self, out: dict[str, Any]) -> None:
        """Annotations, shapes and images: axis refs renamed, paper positions into the cell
        ("x domain" refs need only the rename: they follow their axis's domain)."""
        span = {"x": self.cell.x1 - self.cell.x0, "y": self.cell.y1 - self.cell.y0}
        for (name, note), refs in zip(self.notes, self.refs, strict=True):
            for a, ref, scale in zip("xy", refs, (self.cell.mx, self.cell.my), strict=True):
                if ref == "paper":
                    spots = [a]
                    if name == "shapes":
                        pixel = note.get(f"{a}sizemode") == "pixel"
                        spots = [f"{a}anchor"] if pixel else [f"{a}0", f"{a}1"]
                    for spot in spots:
                        note[spot] = scale(note.get(spot, 0.5))
                    if name == "images" and f"size{a}" in note:
                        note[f"size{a}"] *= span[a]
                note[f"{a}ref"] = self.rename(ref)
                if f"a{a}ref" in note:  # an arrow tail given in axis units
                    note[f"a{a}ref"] = self.rename(note[f"a{a}ref"])
            out.setdefault(name, []).append(note)

    def colours(self, out: dict[str, Any], shared: _Shared | None) -> None:
        """Each source colour axis / trace scale kept with its bar by the cell, or all joined
        into the shared colour axis (their values gathered for its bound)."""
        holders = [(t, h, f) for t in self.traces for h, f in _holders(t)]
        used = sorted({h["coloraxis"] for _, h, _ in holders if "coloraxis" in h})
        caxes = {key: v for key, v in self.lay.items() if re.fullmatch(r"coloraxis\d*", key)}
        caxes |= {key: {} for key in used if key not in caxes}
        cnew: dict[str, str] = {}
        for key, cax in caxes.items():
            if shared is not None:
                shared[1].extend(_titles_of(cax.get("colorbar")))
                continue
            cnew[key] = self.ids.new("coloraxis")
            _place_bar(cax.setdefault("colorbar", {}), self.cell, self.cell)
            out[cnew[key]] = cax
        for t, h, field in holders:
            if shared is not None:
                shared[0].append(_finite(h.get(field)))
                shared[1].extend(_titles_of(h.get("colorbar")))
                for key in _SCALE_KEYS:
                    h.pop(key, None)
                h["coloraxis"] = "coloraxis"
            elif "coloraxis" in h:
                h["coloraxis"] = cnew[h["coloraxis"]]
            elif h.get("showscale", field == "z"):
                box = self.cell  # by the trace's own subplot when the source has several
                if "xaxis" in t and "yaxis" in t:
                    box = Cell(*self.boxes[t["xaxis"]], *self.boxes[t["yaxis"]])
                _place_bar(h.setdefault("colorbar", {}), box, self.cell)

    def legends(self, out: dict[str, Any]) -> None:
        """Each panel that shows a legend gets its own, so panels do not merge entries."""
        lnew: dict[str, str] = {}
        for t, shown in zip(self.traces, _legend_shown(self.showlegend, self.traces), strict=True):
            t["showlegend"] = shown  # explicit: plotly's defaults count over the whole figure
            if "legendgroup" in t:  # a group toggles together: keep it within the panel
                t["legendgroup"] = f"{self.k}:{t['legendgroup']}"
            if shown:
                old = t.get("legend", "legend")
                if old not in lnew:
                    lnew[old] = self.ids.new("legend")
                t["legend"] = lnew[old]
        cell = self.cell
        for old, nl in lnew.items():
            leg = self.lay.get(old, {})
            if ("x" in leg or "y" in leg) and leg.get("xref") != "container":
                leg["x"], leg["y"] = cell.mx(leg.get("x", 1.02)), cell.my(leg.get("y", 1.0))
            else:
                leg.update(x=cell.x1, y=cell.y1, xanchor="right", yanchor="top")
                leg.setdefault("bgcolor", "rgba(255,255,255,0.7)")
            out[nl] = leg
        for key in _GLOBAL_KEYS:
            if key in self.lay:
                out.setdefault(key, self.lay[key])


def panels(
    items: Sequence[go.Figure | Result],
    cols: int = 2,
    *,
    shared_colorscale: bool = False,
    letters: bool = True,
    titles: Sequence[str] | None = None,
    spacing: float = 0.08,
    width: float | str | None = None,
    height: float | str | None = None,
    font_size: float | None = None,
) -> go.Figure:
    """One figure with `items` (figures or results, via `.plot()`) in a grid of `cols` columns.

    Each panel keeps all its axes, legends and colour bars; source titles, frames, sliders and
    menus are dropped. `shared_colorscale` puts every heatmap-like trace on one colour axis
    (zero-centred diverging scale if any data are signed). `letters` adds (a), (b), ... at each
    cell's top-left corner; `titles` adds a small title per panel. `spacing` is the gap between
    cells as a fraction of the figure.

    For print, give `width` (inches, ``"8.4cm"`` or a venue such as ``"double"``) and
    optionally `height` and `font_size` (points, as in `save_figure`): the gaps between cells
    are then sized for the paper theme's text at that size (tick labels, axis and colour-bar
    titles), and `save_figure` exports the figure at that size unless told otherwise.
    """
    from interp.results.base import Result

    if isinstance(items, go.Figure | Result | str) or not isinstance(items, Sequence):
        raise InterpError("panels: pass a list of figures or results, e.g. panels([fig1, res2]).")
    if not items:
        raise InterpError("panels: pass at least one figure or result; got an empty list.")
    if isinstance(cols, bool) or not isinstance(cols, int) or cols < 1:
        raise InterpError(f"panels: cols must be a whole number >= 1, got {cols!r}.")
    if not 0 <= spacing < 1:
        raise InterpError(f"panels: spacing is a fraction of the figure in [0, 1), got {spacing}.")
    if titles is not None and (isinstance(titles, str) or len(titles) != len(items)):
        raise InterpError(f"panels: pass one title per item ({len(items)} strings) or titles=None.")
    for i, item in enumerate(items):
        if not isinstance(item, go.Figure | Result):
            name = type(item).__name__
            raise InterpError(f"panels: item {i} is a {name}; pass plotly Figures or Results.")
    figs = [item.plot() if isinstance(item, Result) else item for item in items]

    rows = math.ceil(len(figs) / cols)
    printed = _print_size(width, height, font_size, rows, cols)
    cell_w = max((f.layout.width for f in figs if f.layout.width), default=CELL_W)
    cell_h = max((f.layout.height for f in figs if f.layout.height), default=CELL_H)
    # Colour bars need room: a strip right of every cell, or one bar right of the figure.
    bars = any(_holders(t.to_plotly_json()) for f in figs for t in f.data)
    own_bars = bars and not shared_colorscale
    fig_w: float = cols * (cell_w + BAR_PX * own_bars) + BAR_PX * (bars and shared_colorscale)
    fig_h: float = rows * cell_h + (rows - 1) * HEAD_PX * (titles is not None)
    head = HEAD_PX / fig_h if titles is not None else 0.0
    vspace = None
    if printed is not None:  # gaps in px of the printed size, as fractions of it
        fig_w, fig_h, font_px = printed["width_px"], printed["height_px"], printed["font_px"]
        bar_px, head = 6.5 * font_px * own_bars, 1.6 * font_px * (titles is not None) / fig_h
        spacing, vspace = 4.5 * font_px / fig_w, 4.8 * font_px / fig_h
    else:
        bar_px = BAR_PX * own_bars
    cells = grid(len(figs), cols, spacing, bar_px / fig_w, head, vspace)

    ids = Ids()
    out: dict[str, Any] = {}
    shared: _Shared | None = ([], []) if shared_colorscale else None
    data: list[dict[str, Any]] = []
    raised: list[int] = []
    for k, (fig, cell) in enumerate(zip(figs, cells, strict=True)):
        panel = _Panel(fig, k, cell, ids)
        panel.axes(out)
        panel.notes_to(out)
        panel.colours(out, shared)
        panel.legends(out)
        data += panel.traces
        raised.append(RAISE_PX * panel.raised)

    # Strings the sources escaped stay as they are; apply_theme escapes only what is new.
    done: set[str] = set().union(*(f.__dict__.get("_interp_escaped", set()) for f in figs))

    def escaped(text: str) -> str:
        text = text if text in done else plotly_text(text)
        done.add(text)
        return text

    if shared is not None and bars:
        vals = np.concatenate([np.empty(0), *shared[0]])
        cax: dict[str, Any] = {"colorscale": UNSIGNED_SCALE}
        if vals.size and vals.min() < 0 < vals.max():
            bound = float(np.abs(vals).max())
            cax = {"colorscale": SIGNED_SCALE, "cmid": 0.0, "cmin": -bound, "cmax": bound}
        elif vals.size:
            cax["cmin"], cax["cmax"] = float(vals.min()), float(vals.max())
        # Titles as the sources wrote them (escaped once), one per distinct title.
        names = " / ".join(escaped(t) for t in dict.fromkeys(shared[1]))
        done.add(names)
        cax["colorbar"] = {"x": 1.0, "xanchor": "left", "y": 0.5, "len": 1.0}
        if names:
            cax["colorbar"]["title"] = {"text": names, "side": "right"}
        out["coloraxis"] = cax
    notes = out.setdefault("annotations", [])
    for text, cell, up in zip(titles or (), cells, raised, strict=False):
        notes.append(
            {"text": escaped(str(text)), "xref": "paper", "yref": "paper", "x": cell.x0,
             "y": cell.y1, "yshift": up, "xanchor": "left", "yanchor": "bottom",
             "showarrow": False}
        )  # fmt: skip

    if printed is not None:
        out["meta"] = {"interp_print": printed}  # save_figure's default size for this figure
    fig = go.Figure(data=data, layout=out)
    fig.__dict__["_interp_escaped"] = done  # before apply_theme: nothing is escaped twice
    apply_theme(fig, width=fig_w, height=fig_h, showlegend="legend" in out)
    if letters:
        font = {"size": (fig.layout.template.layout.font.size or 13) + 2}  # over the ticks
        weight = "weight" in go.layout.annotation.Font()  # plotly >= 5.23; markup before
        font |= {"weight": "bold"} if weight else {}
        for i, (cell, up) in enumerate(zip(cells, raised, strict=True)):
            text = f"({chr(ord('a') + i)})" if i < 26 else f"({i + 1})"
            done.add(text := text if weight else f"<b>{text}</b>")  # markup, not a label
            fig.add_annotation(
                text=text, xref="paper", yref="paper", x=cell.x0, y=cell.y1, yshift=up,
                xanchor="right", yanchor="bottom", showarrow=False, font=font,
            )  # fmt: skip
    return fig


def _print_size(
    width: float | str | None,
    height: float | str | None,
    font_size: float | None,
    rows: int,
    cols: int,
) -> dict[str, float] | None:
    """The printed size (inches and px) and text size (px) a print layout is made for."""
    from interp.viz.paper import PX_PER_IN, PaperStyle, inches

    if width is None:
        if height is not None or font_size is not None:
            raise InterpError("panels: height= and font_size= lay out for print; give width= too.")
        return None
    w_in = inches(width)
    h_in = inches(height, "height") if height is not None else min(9.0, 0.8 * w_in * rows / cols)
    style = PaperStyle(font_pt=font_size or PaperStyle.font_pt)
    return {
        "width_in": w_in,
        "height_in": h_in,
        "width_px": w_in * PX_PER_IN,
        "height_px": h_in * PX_PER_IN,
        "font_pt": style.font_pt,
        "font_px": style.px(style.font_pt),
    }
