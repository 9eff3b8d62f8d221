"""One figure theme for every chart: readable at paper column width, zero-centred signed scales."""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
import plotly.io as pio

TEMPLATE = "interp"
FONT = "Helvetica, Arial, sans-serif"
SIGNED_SCALE = "RdBu_r"  # red = positive effect, blue = negative; centred with zmid=0
UNSIGNED_SCALE = "Viridis"


def _register() -> None:
    if TEMPLATE in pio.templates:
        return
    layout = go.Layout(
        font={"family": FONT, "size": 13, "color": "#222"},
        title={"font": {"size": 16}, "x": 0.02, "xanchor": "left"},
        paper_bgcolor="white",
        plot_bgcolor="white",
        margin={"l": 70, "r": 30, "t": 60, "b": 60},
        xaxis={"showline": True, "linecolor": "#444", "ticks": "outside", "gridcolor": "#eee"},
        yaxis={"showline": True, "linecolor": "#444", "ticks": "outside", "gridcolor": "#eee"},
        colorway=["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"],
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


def apply_theme(fig: go.Figure, **layout: Any) -> go.Figure:
    """The interp template plus `layout`; a string title is text (escaped for plotly)."""
    _register()
    if isinstance(layout.get("title"), str):
        layout["title"] = plotly_text(layout["title"])
    fig.update_layout(template=TEMPLATE, **layout)
    return fig
