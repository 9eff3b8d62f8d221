"""One figure theme for every chart: readable at paper column width, zero-centred signed scales,
colour-blind-safe colours (Okabe-Ito categorical colours; ColorBrewer RdBu and Viridis scales).
The print layout (sizes in points, no titles) is `interp.viz.paper`."""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

TEMPLATE = "interp"
FONT = "Helvetica, Arial, sans-serif"
SIGNED_SCALE = "RdBu_r"  # red = positive effect, blue = negative; centred with zmid=0
UNSIGNED_SCALE = "Viridis"
# The colorway's colours by name, for series whose colour carries a meaning, and two greys.
# Okabe & Ito (2008): distinguishable with any common colour-vision deficiency; "red" is their
# vermillion and "green" their bluish green, which deuteranopes still tell apart.
BLUE, RED, GREEN, ORANGE, PURPLE, SKY, YELLOW = COLORWAY = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#E69F00",
    "#CC79A7",
    "#56B4E9",
    "#F0E442",
)
RIGHT, WRONG = GREEN, RED  # correct / incorrect answers
GREY = "#aaaaaa"  # null baselines and chance diagonals
INK = "#444444"  # axis lines and reference rules (chance levels)


def _register() -> None:
    if TEMPLATE in pio.templates:
        return
    layout = go.Layout(
        font={"family": FONT, "size": 13, "color": "#222"},
        title={"font": {"size": 16}, "x": 0.02, "xanchor": "left"},
        paper_bgcolor="white",
        plot_bgcolor="white",
        margin={"l": 70, "r": 30, "t": 60, "b": 60},
        xaxis={"showline": True, "linecolor": INK, "ticks": "outside", "gridcolor": "#eee"},
        yaxis={"showline": True, "linecolor": INK, "ticks": "outside", "gridcolor": "#eee"},
        colorway=list(COLORWAY),
        hoverlabel={"font": {"family": FONT}},
    )
    pio.templates[TEMPLATE] = go.layout.Template(layout=layout)


def plotly_text(value: Any) -> str:
    """`value` as text that plotly shows as typed.

    Plotly reads <b>, <br>, <a href=...> and entities in titles, labels and hover text as markup;
    a token such as ``<b>`` would vanish into bold. Escaped, it shows literally (plotly decodes
    &lt; &gt; &amp;).
    """
    return html.escape(str(value), quote=False)


# Trace fields whose strings plotly renders as markup: category labels on the axes and in hover,
# on-chart and hover text, legend names, and customdata (substituted into hover templates).
# hovertemplate/texttemplate are markup on purpose and are left alone.
_TRACE_FIELDS = ("x", "y", "text", "hovertext", "name", "customdata", "labels")


def _escaper(done: set[str]) -> Any:
    """plotly_text for strings not escaped before on this figure (`done`: what it wrote)."""

    def esc(value: Any) -> Any:
        if isinstance(value, str):
            if value in done:
                return value
            out = plotly_text(value)
            done.add(out)
            return out
        if isinstance(value, list | tuple):
            return type(value)(esc(v) for v in value)
        if isinstance(value, np.ndarray) and value.dtype.kind in "OUS":
            return np.array([esc(v) for v in value.ravel().tolist()], dtype=object).reshape(
                value.shape
            )
        return value  # numbers, numeric arrays, None

    return esc


def _escape_figure(fig: go.Figure) -> None:
    """Escape every string of `fig` that plotly renders as markup, once per string.

    A figure can be themed twice (a builder's, then its caller's additions): the strings this
    function wrote are remembered on the figure, so they are not escaped a second time.
    """
    done: set[str] = fig.__dict__.setdefault("_interp_escaped", set())
    esc = _escaper(done)

    def title(obj: Any) -> None:
        if obj is not None and isinstance(getattr(obj.title, "text", None), str):
            obj.title.text = esc(obj.title.text)

    for trace in fig.data:
        for field in _TRACE_FIELDS:
            if field in trace and trace[field] is not None:
                trace[field] = esc(trace[field])
        for holder in ("", "marker"):
            parent = trace[holder] if holder and holder in trace else trace
            if "colorbar" in parent:
                title(parent.colorbar)
    lay = fig.layout
    title(lay)
    title(lay.legend)
    if lay.coloraxis is not None:
        title(lay.coloraxis.colorbar)

    def axis(ax: Any) -> None:
        title(ax)
        if ax.ticktext is not None:
            ax.ticktext = esc(ax.ticktext)

    fig.for_each_xaxis(axis)
    fig.for_each_yaxis(axis)
    for note in lay.annotations:
        if isinstance(note.text, str):
            note.text = esc(note.text)
    for slider in lay.sliders:
        for key in ("prefix", "suffix"):
            if isinstance(slider.currentvalue[key], str):
                slider.currentvalue[key] = esc(slider.currentvalue[key])
        for step in slider.steps:
            if isinstance(step.label, str):
                step.label = esc(step.label)
    for menu in lay.updatemenus:
        for button in menu.buttons:
            if isinstance(button.label, str):
                button.label = esc(button.label)


def apply_theme(fig: go.Figure, **layout: Any) -> go.Figure:
    """The interp template plus `layout`, then every label escaped so plotly shows it as typed.

    Every interp figure goes through here, so labels (token strings such as ``<b>``) are passed
    raw to plotly and escaped once, in one place; hover templates are markup and stay as given.
    """
    _register()
    fig.update_layout(template=TEMPLATE, **layout)
    _escape_figure(fig)
    return fig
