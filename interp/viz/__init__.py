"""Plotly figure builders with one colour-blind-safe theme, HTML fragments, and static export.

res.save_figure("fig.pdf")                          # paper theme, 3.3 in wide, offline
interp.viz.save_figure(fig, "fig.svg", width="double")
with interp.viz.export_session():                   # one Chromium for many figures
    for r in results: r.save_figure(f"{r.kind}.pdf")
"""

from interp.viz.export import export_session, save_figure
from interp.viz.figures import bar, default_figure, heatmap, line
from interp.viz.panels import panels
from interp.viz.paper import VENUES, PaperStyle, paper_figure
from interp.viz.theme import COLORWAY, TEMPLATE, apply_theme

__all__ = [
    "COLORWAY",
    "TEMPLATE",
    "VENUES",
    "PaperStyle",
    "apply_theme",
    "bar",
    "default_figure",
    "export_session",
    "heatmap",
    "line",
    "panels",
    "paper_figure",
    "save_figure",
]
