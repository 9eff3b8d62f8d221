"""Figures of the head-attribution family (DLA, head scores, ablations, logit lens, attention)
and of residual-stream norms. Results call these from their one-line ``plot()``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from interp.errors import InterpError
from interp.viz.figures import bar, default_figure, head_grid, heatmap

if TYPE_CHECKING:
    from interp.results.attribution import (
        AblationResult,
        AttentionResult,
        DLAResult,
        HeadScores,
        LogitLensResult,
    )
    from interp.results.residual import ResidualNorms


def dla_figure(res: DLAResult, **kw: Any) -> go.Figure:
    """A head grid over heads, bars (with intervals) over components, else the default view."""
    title = kw.pop("title", res.title)
    label = res.meta.get("value_label", "direct effect")
    if res.dims == ("layer", "head"):
        return head_grid(res, title, label, **kw)
    if res.dims == ("component",):
        return bar(
            res.values,
            [str(c) for c in res.coords["component"]],
            title=title,
            xlabel="component",
            value_label=label,
            ci_low=res.ci_low,
            ci_high=res.ci_high,
        )
    return default_figure(res, title=title, value_label=label, **kw)


def head_scores_figure(res: HeadScores, **kw: Any) -> go.Figure:
    """Detector scores (0..1) as an unsigned head grid."""
    title = kw.pop("title", res.title)
    return head_grid(res, title, res.meta.get("value_label", "score"), signed=False, **kw)


def ablation_figure(res: AblationResult, **kw: Any) -> go.Figure:
    """A head grid when every head was ablated alone, else bars per head set."""
    title = kw.pop("title", res.title)
    label = res.meta.get("value_label", "metric change")
    if res.dims == ("layer", "head"):
        return head_grid(res, title, label, **kw)
    return default_figure(res, title=title, value_label=label, **kw)


def logit_lens_figure(res: LogitLensResult, metric: str | None = None, **kw: Any) -> go.Figure:
    """One metric over layer x position; cells show the shown prompt's top token."""
    metrics = [str(m) for m in res.coords["metric"]]
    metric = metric or ("target_prob" if "target_prob" in metrics else "kl_to_final")
    if metric not in metrics:
        raise InterpError(f"metric={metric!r}: this logit lens has {metrics}.")
    values = res.values[metrics.index(metric)]
    top = res.top_tokens
    n_pos = values.shape[1]
    text = [[row[p][0] if row[p] else "" for p in range(n_pos)] for row in top]
    return heatmap(
        values,
        [res.label("pos", i) for i in range(n_pos)],
        [res.label("layer", i) for i in range(values.shape[0])],
        title=kw.pop("title", res.title),
        xlabel="position",
        ylabel="layer (residual decoded)",
        value_label=metric,
        signed=False,
        text=text or None,
        hover=[[", ".join(row[p][:5]) for p in range(n_pos)] for row in top] or None,
        **kw,
    )


def attention_figure(res: AttentionResult, **kw: Any) -> go.Figure:
    """Query x key heatmaps with a slider over heads (circuitsvis: `res.circuitsvis_html`)."""
    return default_figure(res, title=kw.pop("title", res.title), value_label="attention", **kw)


def residual_norms_figure(res: ResidualNorms, **kw: Any) -> go.Figure:
    """Mean residual norm over layer x position."""
    return heatmap(
        res.values,
        [res.label("pos", i) for i in range(res.values.shape[1])],
        [res.label("layer", i) for i in range(res.values.shape[0])],
        title=kw.pop("title", res.title),
        xlabel="position",
        ylabel="layer",
        value_label="mean ||resid_post||",
        signed=False,
        **kw,
    )
