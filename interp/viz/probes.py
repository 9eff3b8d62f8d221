"""Figures of probe sweeps: metrics by layer (or a layer x head grid), and the examples projected
on a probe's direction."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from interp.nodes import HeadLike, head_axis_label, head_label, layer_label
from interp.viz.figures import heatmap, line
from interp.viz.theme import BLUE, RED, UNSIGNED_SCALE, apply_theme

if TYPE_CHECKING:
    from interp.results.probes import ProbeResult

#: Metrics on a 0-1 scale, drawn on a fixed 0-1 colour scale.
UNIT_SCALE = ("accuracy", "f1", "auroc", "control_accuracy")
#: The curves beside the main metric in a layer sweep's figure.
COMPANIONS = ("control_accuracy", "control_r2", "selectivity")
LABEL_COLOURS = ((1.0, RED, "label 1"), (0.0, BLUE, "label 0"))


def probe_figure(res: ProbeResult, **kw: Any) -> go.Figure:
    """Layers: the main metric by layer with its band, the control curve and selectivity.
    Heads: a layer x head heatmap of the main metric."""
    title = kw.pop("title", res.title)
    metric = kw.pop("metric", res.main_metric)
    if "head" in res.dims:
        return _head_grid(res, metric, title)
    names = [str(m) for m in res.coords["metric"]]
    shown = [m for m in (metric, *COMPANIONS) if m in names]
    if res.probe == "ccs":
        shown = [m for m in names if m.endswith("accuracy")]
    mi = {m: names.index(m) for m in shown}
    assert res.ci_low is not None and res.ci_high is not None
    fig = line(
        res.labels.get("layer", [str(x) for x in res.coords["layer"]]),
        {m: res.values[:, mi[m]] for m in shown},
        title=title,
        xlabel="layer (blocks applied)",
        value_label="score",
        bands={m: (res.ci_low[:, mi[m]], res.ci_high[:, mi[m]]) for m in shown},
    )
    fig.update_xaxes(type="category")  # "embed", "1", ... in order, no fractional ticks
    chance = res.class_balance
    if chance is not None and metric == "accuracy":
        level = max(chance, 1 - chance)
        fig.add_hline(y=level, line_dash="dot", line_color="#888", annotation_text="majority")
    return fig


def _head_grid(res: ProbeResult, metric: str, title: str) -> go.Figure:
    vals = res.metric(metric)
    layers = [int(l) for l in res.coords["layer"]]
    heads = [int(h) for h in res.coords["head"]]
    fig = heatmap(
        vals,
        [head_axis_label(h) for h in heads],  # the head grid's column; its row is the layer
        [layer_label(l) for l in layers],
        title=title,
        xlabel="head",
        ylabel="layer",
        value_label=metric,
        signed=False,
        hover=[
            [f"{head_label(l, h)} {metric} {float(vals[i, j]):.3f}" for j, h in enumerate(heads)]
            for i, l in enumerate(layers)
        ],
    )
    if metric in UNIT_SCALE:
        # A fixed 0-1 scale puts chance mid-scale instead of stretching noise.
        fig.update_traces(zmin=0.0, zmax=1.0)
    return fig


def projection_figure(
    res: ProbeResult, layer: int | HeadLike | None = None, head: int | None = None
) -> go.Figure:
    """Examples on (probe direction, top orthogonal PC), coloured by label; default: the best
    layer (or head)."""
    if res.projection is None or res.example_labels is None:
        from interp.errors import InterpError

        raise InterpError("This result holds no projections of its examples to draw.")
    if layer is None:
        main = res.metric(res.main_metric)
        flat = int(np.nanargmax(main.reshape(-1).numpy()))
        li, hi = (flat // main.shape[1], flat % main.shape[1]) if main.ndim == 2 else (flat, None)
    else:
        li, hi = res.unit(layer, head)
    pts = res.projection[li] if hi is None else res.projection[li, hi]
    y = res.example_labels.numpy()
    fig = go.Figure()
    if set(np.unique(y).tolist()) <= {0.0, 1.0}:
        for cls, color, name in LABEL_COLOURS:
            m = y == cls
            fig.add_trace(
                go.Scatter(
                    x=pts[m, 0].numpy(),
                    y=pts[m, 1].numpy(),
                    mode="markers",
                    name=name,
                    marker={"color": color, "size": 6, "opacity": 0.7},
                )
            )
    else:
        fig.add_trace(
            go.Scatter(
                x=pts[:, 0].numpy(),
                y=pts[:, 1].numpy(),
                mode="markers",
                marker={"color": y, "colorscale": UNSIGNED_SCALE, "showscale": True, "size": 6},
            )
        )
    at = int(res.coords["layer"][li])
    where = layer_label(at) if hi is None else head_label(at, hi)
    fig.update_xaxes(title="projection on the probe direction")
    fig.update_yaxes(title="top orthogonal principal component")
    return apply_theme(fig, title=f"{res.probe} probe at {where}: examples by label")
