"""Figure builders shared by every result type."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor

from interp.nodes import head_axis_label, head_label, layer_label
from interp.viz.theme import (
    BLUE,
    COLORWAY,
    RED,
    SIGNED_SCALE,
    UNSIGNED_SCALE,
    apply_theme,
    plotly_text,
)

if TYPE_CHECKING:
    from interp.results.base import Result


def _texts(values: Sequence[Any]) -> list[str]:
    # Labels are often token strings ("<b>", "a&b"); apply_theme escapes them for plotly.
    return [str(v) for v in values]


def _grid_texts(rows: Sequence[Sequence[Any]]) -> np.ndarray:
    return np.array([_texts(r) for r in rows], dtype=object)


def _np(x: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def heatmap(
    z: Tensor | np.ndarray,
    x: Sequence[str],
    y: Sequence[str],
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    value_label: str = "value",
    signed: bool | None = None,
    text: Sequence[Sequence[str]] | None = None,
    hover: Sequence[Sequence[str]] | None = None,
) -> go.Figure:
    """Heatmap, rows `y` top to bottom and columns `x`; signed data get a zero-centred scale."""
    arr = _np(z)
    finite = arr[np.isfinite(arr)]
    if signed is None:
        signed = bool(finite.size and finite.min() < 0 < finite.max())
    kw: dict[str, Any] = {}
    if signed:
        bound = float(np.abs(finite).max()) if finite.size else 1.0
        kw = {"colorscale": SIGNED_SCALE, "zmid": 0.0, "zmin": -bound, "zmax": bound}
    else:
        kw = {"colorscale": UNSIGNED_SCALE}
    custom = _grid_texts(hover) if hover is not None else None
    # A hover template is markup: labels put into it are escaped here (apply_theme leaves it).
    hy, hx, hv = (plotly_text(s) for s in (ylabel, xlabel, value_label))
    hovertemplate = (
        f"{hy} %{{y}}<br>{hx} %{{x}}<br>{hv} %{{z:.4g}}"
        + ("<br>%{customdata}" if custom is not None else "")
        + "<extra></extra>"
    )
    trace = go.Heatmap(
        z=arr,
        x=_texts(x),
        y=_texts(y),
        customdata=custom,
        hovertemplate=hovertemplate,
        colorbar={"title": {"text": value_label}},
        text=_grid_texts(text) if text is not None else None,
        texttemplate="%{text}" if text is not None else None,
        **kw,
    )
    fig = go.Figure(trace)
    fig.update_yaxes(autorange="reversed", title=ylabel, type="category")
    fig.update_xaxes(title=xlabel, type="category")
    return apply_theme(fig, title=title)


def bar(
    values: Tensor | np.ndarray,
    labels: Sequence[str],
    title: str = "",
    xlabel: str = "",
    value_label: str = "value",
    ci_low: Tensor | np.ndarray | None = None,
    ci_high: Tensor | np.ndarray | None = None,
) -> go.Figure:
    v = _np(values)
    err = None
    if ci_low is not None and ci_high is not None:
        err = {
            "type": "data",
            "symmetric": False,
            "array": _np(ci_high) - v,
            "arrayminus": v - _np(ci_low),
            "color": "#555",
        }
    colors = [RED if val >= 0 else BLUE for val in np.nan_to_num(v)]
    fig = go.Figure(
        go.Bar(
            x=_texts(labels),
            y=v,
            error_y=err,
            marker_color=colors,
            hovertemplate=f"%{{x}}<br>{plotly_text(value_label)} %{{y:.4g}}<extra></extra>",
        )
    )
    fig.update_xaxes(title=xlabel, type="category")
    fig.update_yaxes(title=value_label, zeroline=True, zerolinecolor="#888")
    return apply_theme(fig, title=title)


def line(
    x: Sequence[Any],
    series: dict[str, Tensor | np.ndarray],
    title: str = "",
    xlabel: str = "",
    value_label: str = "value",
    bands: dict[str, tuple[Tensor | np.ndarray, Tensor | np.ndarray]] | None = None,
) -> go.Figure:
    """One line per series, with an optional shaded confidence band per series."""
    fig = go.Figure()
    xs = list(x)
    for i, (name, ys) in enumerate(series.items()):
        color = COLORWAY[i % len(COLORWAY)]
        if bands and name in bands:
            lo, hi = (_np(b) for b in bands[name])
            fig.add_trace(
                go.Scatter(
                    x=xs + xs[::-1],
                    y=np.concatenate([hi, lo[::-1]]),
                    fill="toself",
                    mode="lines",
                    fillcolor=color,
                    opacity=0.18,
                    line={"width": 0},
                    hoverinfo="skip",
                    showlegend=False,
                )
            )
        fig.add_trace(
            go.Scatter(x=xs, y=_np(ys), name=name, mode="lines+markers", line={"color": color})
        )
    fig.update_xaxes(title=xlabel)
    fig.update_yaxes(title=value_label)
    return apply_theme(fig, title=title)


def _axis_labels(res: Result, dim: str) -> list[str]:
    return [res.label(dim, i) for i in range(res.values.shape[res.dims.index(dim)])]


MAX_BARS = 40


def _shown(res: Result) -> list[int]:
    """Every entry of a 1-D result; for SAE latents past `MAX_BARS`, the top ones in ranking
    order (thousands of bars say nothing)."""
    n = int(res.values.shape[0])
    if n <= MAX_BARS or res.dims[0] != "latent":  # layers, positions...: every one, in order
        return list(range(n))
    v = res.values.double()
    key = v.abs() if res.rank_by == "abs" else (-v if res.rank_by == "asc" else v)
    key = key.nan_to_num(nan=-math.inf)  # NaN cells last
    return torch.argsort(key, descending=True, stable=True)[:MAX_BARS].tolist()


def default_figure(res: Result, **kw: Any) -> go.Figure:
    """Bar for 1 axis, heatmap for 2, heatmap with a slider over the leading axis for 3."""
    title = kw.pop("title", res.title or res.kind)
    value_label = kw.pop("value_label", res.meta.get("value_label", "value"))
    if res.values.ndim == 0:
        return bar(res.values.reshape(1), ["value"], title=title, value_label=value_label)
    if res.values.ndim == 1:
        d = res.dims[0]
        labels = _axis_labels(res, d)
        idx = _shown(res)
        if len(idx) < len(labels):  # SAE latents: thousands of bars say nothing
            by = "|value|" if res.rank_by == "abs" else "value"
            title = f"{title} (top {len(idx)} of {len(labels)} by {by})"

        def pick(t: Tensor | None) -> Tensor | None:
            return None if t is None else t[idx]

        return bar(
            res.values[idx],
            [labels[i] for i in idx],
            title=title,
            xlabel=d,
            value_label=value_label,
            ci_low=pick(res.ci_low),
            ci_high=pick(res.ci_high),
        )
    if res.values.ndim == 2:
        ry, rx = res.dims
        return heatmap(
            res.values,
            _axis_labels(res, rx),
            _axis_labels(res, ry),
            title=title,
            xlabel=rx,
            ylabel=ry,
            value_label=value_label,
            **kw,
        )
    lead, ry, rx = res.dims[0], res.dims[-2], res.dims[-1]
    flat = res.values.reshape(res.values.shape[0], -1, *res.values.shape[-2:]).mean(1)
    leads = _axis_labels(res, lead)
    fig = heatmap(
        flat[0],
        _axis_labels(res, rx),
        _axis_labels(res, ry),
        title=title,
        xlabel=rx,
        ylabel=ry,
        value_label=value_label,
        **kw,
    )
    arr = _np(flat)
    fig.frames = [go.Frame(data=[go.Heatmap(z=arr[i])], name=str(s)) for i, s in enumerate(leads)]
    fig.update_layout(
        sliders=[
            {
                "currentvalue": {"prefix": f"{lead}: "},
                "steps": [
                    {
                        "label": s,
                        "method": "animate",
                        "args": [[s], {"mode": "immediate"}],
                    }
                    for s in leads
                ],
            }
        ]
    )
    return apply_theme(fig)  # the slider's labels; what heatmap escaped stays as it is


def head_grid(res: Result, title: str, value_label: str, **kw: Any) -> go.Figure:
    """Layer x head heatmap of a result's ``[layer, head]`` values; hover names each head
    (``L3H5``). Shared by every family with a per-head result (attribution, patching)."""
    n_layers, n_heads = res.values.shape[:2]
    return heatmap(
        res.values,
        [head_axis_label(h) for h in range(n_heads)],
        [layer_label(l) for l in range(n_layers)],
        title=title,
        xlabel="head",
        ylabel="layer",
        value_label=value_label,
        hover=[[head_label(l, h) for h in range(n_heads)] for l in range(n_layers)],
        **kw,
    )
