"""Plotly figure builders with one paper-ready theme, HTML fragments, and static export."""

from interp.viz.figures import bar, default_figure, heatmap, line
from interp.viz.theme import TEMPLATE, apply_theme

__all__ = ["TEMPLATE", "apply_theme", "bar", "default_figure", "heatmap", "line"]
