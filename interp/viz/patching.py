"""Figures of the patching family: score grids per layer, head and position, AtP against exact."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go

from interp.errors import InterpError
from interp.nodes import head_labels, layer_label
from interp.viz.figures import default_figure, head_grid, heatmap
from interp.viz.theme import GREY, apply_theme

if TYPE_CHECKING:
    from interp.results.base import Result
    from interp.results.patching import AtPResult, PatchResult


#: Axes drawn as one row per head and one column per position.
PER_HEAD_AND_POSITION = (
    ("layer", "pos", "head"),
    ("layer", "pos", "kv_head"),
    ("layer", "head", "dest_pos"),
)


def _labels(res: Result, dim: str) -> list[str]:
    return [res.label(dim, i) for i in range(res.shape[dim])]


def patch_figure(res: PatchResult, **kw: Any) -> go.Figure:
    """Layer x head grid, layer x position, or one row per head and one column per position."""
    title = kw.pop("title", res.title)
    label = kw.pop("value_label", res.value_label)
    dims = res.dims
    if dims in (("layer", "head"), ("layer", "kv_head")):
        return head_grid(res, title, label, **kw)
    if dims == ("layer", "pos"):
        return heatmap(
            res.values,
            _labels(res, "pos"),
            [layer_label(int(l)) for l in res.coords["layer"]],
            title=title,
            xlabel="position",
            ylabel="layer",
            value_label=label,
            **kw,
        )
    if dims in PER_HEAD_AND_POSITION:
        # One row per head, one column per (destination) position.
        head_first = dims[1] == "head"
        pos = dims[2] if head_first else dims[1]
        grid = res.values if head_first else res.values.permute(0, 2, 1)
        L, H, T = grid.shape
        return heatmap(
            grid.reshape(L * H, T),
            _labels(res, pos),
            head_labels(L, H),
            title=title,
            xlabel="destination position" if pos == "dest_pos" else "position",
            ylabel="head",
            value_label=label,
            **kw,
        )
    return default_figure(res, title=title, value_label=label, **kw)


def atp_scatter(res: AtPResult, exact: Result | None = None, **kw: Any) -> go.Figure:
    """AtP estimate against exact patching (`exact`, or the scores `agreement` kept), one point
    per component, with the y = x diagonal."""
    ex = exact.values if exact is not None else res.exact
    if ex is None:
        raise InterpError("No exact scores: pass exact=activation_patch(...) or use agreement.")
    if ex.shape != res.values.shape:
        raise InterpError(
            f"Exact result shape {tuple(ex.shape)} != AtP shape {tuple(res.values.shape)}."
        )
    names = [  # raw: apply_theme escapes them for plotly
        " ".join(str(res.label(d, i)) for d, i in zip(res.dims, idx, strict=True))
        for idx in np.ndindex(*res.values.shape)
    ]
    x = ex.detach().double().reshape(-1).numpy()
    y = res.values.detach().double().reshape(-1).numpy()
    lo = float(np.nanmin([x.min(), y.min()]))
    hi = float(np.nanmax([x.max(), y.max()]))
    fig = go.Figure(
        [
            go.Scatter(
                x=[lo, hi],
                y=[lo, hi],
                mode="lines",
                line={"dash": "dot", "color": GREY},
                name="y = x",
                hoverinfo="skip",
            ),
            go.Scatter(
                x=x,
                y=y,
                mode="markers",
                text=names,
                name="components",
                hovertemplate="%{text}<br>exact %{x:.4g}<br>AtP %{y:.4g}<extra></extra>",
            ),
        ]
    )
    sub = ""
    if res.agreement:
        a = res.agreement
        sub = f" (Spearman {a['spearman']:.3f}, top-{a['k']} recall {a['top_k_recall']:.2f})"
    fig.update_xaxes(title="exact patching score")
    fig.update_yaxes(title="attribution patching estimate")
    return apply_theme(fig, title=kw.pop("title", f"AtP vs exact{sub}"))
