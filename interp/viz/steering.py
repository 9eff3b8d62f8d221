"""Figures of the steering family: effect against strength beside random directions, effect
against its KL cost, the steering-target scorecard and its verification, steered generations.

Plotly reads <b>, <br> and entities in titles, trace names, hover text and table cells as
markup. Titles, names and axis labels pass through `apply_theme`, which escapes them; table
cells and header labels it does not reach are escaped here with `plotly_text`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from interp.errors import InterpError
from interp.viz.figures import default_figure
from interp.viz.theme import BLUE, COLORWAY, GREY, INK, RED, apply_theme, plotly_text

if TYPE_CHECKING:
    import pandas as pd

    from interp.results.steering import GenerationsResult, ScorecardResult, SteeringResult

#: Axis labels of the metrics of a `SteeringResult`.
METRIC_LABELS = {
    "effect": "Δ logit diff (target − other)",
    "target_rate": "fraction of prompts preferring the target",
    "flip_rate": "fraction of prompts whose answer flipped",
    "target_prob": "probability of the target answer",
    "task_kl": "KL at the answer position (nats)",
    "kl": "KL on neutral text (nats)",
    "loss_change": "Δ next-token loss on neutral text (nats)",
}
#: The unsteered level of a metric, drawn as a reference line: a key of `baseline`, or a number.
UNSTEERED: dict[str, float | str] = {
    "effect": 0.0,
    "flip_rate": 0.0,
    "loss_change": 0.0,
    "target_rate": "target_rate",
    "target_prob": "target_prob",
}
RANDOM_NAME = "random directions (same norm)"
STRENGTH_AXIS = "strength (sigma units)"
#: Marker colour and table fill of each group of a scorecard's verification.
GROUPS = {"top": (RED, "#fbe3e3"), "random": (BLUE, "#e3edf8"), "other": (GREY, "white")}
HEADER_FILL = "#f6f6f6"


def metric_label(metric: str) -> str:
    return METRIC_LABELS.get(metric, metric.replace("_", " "))


def _np(x: Any) -> np.ndarray:
    return np.asarray(x.detach().cpu().double().numpy() if hasattr(x, "detach") else x, float)


def _is_steering(res: SteeringResult) -> bool:
    return res.dims == ("direction", "alpha", "metric")


def _metric_index(res: SteeringResult, metric: str) -> int:
    names = [str(m) for m in res.coords["metric"]]
    if metric not in names:
        raise InterpError(f"Unknown metric {metric!r}; this result has {names}.")
    return names.index(metric)


def _error(lo: np.ndarray, v: np.ndarray, hi: np.ndarray) -> dict[str, Any]:
    return {"type": "data", "symmetric": False, "array": hi - v, "arrayminus": v - lo}


def _color(i: int) -> str:
    return COLORWAY[i % len(COLORWAY)]


def strength_figure(
    res: SteeringResult, metric: str = "effect", log_x: bool = False, **kw: Any
) -> go.Figure:
    """`metric` against strength, one line per direction with its bootstrap interval, over the
    band (min to max over seeds) of random directions of the same norm at the same site;
    `log_x` for strengths spread over orders of magnitude."""
    if not _is_steering(res):
        return default_figure(res, **kw)
    title = kw.pop("title", res.title)
    k = _metric_index(res, metric)
    vals = _np(res.values[..., k])
    if not np.isfinite(vals).any():
        raise InterpError(
            f"{metric!r} was not measured (all NaN): kl and loss_change need neutral text "
            "(evaluate(..., neutral=...))."
        )
    alphas = [float(a) for a in res.coords["alpha"]]
    label = metric_label(metric)
    fig = go.Figure()
    if res.random is not None:
        rnd = _np(res.random[..., k])  # [direction, alpha, seed]
        for i, d in enumerate(res.coords["direction"]):
            lo, hi = np.nanmin(rnd[i], axis=-1), np.nanmax(rnd[i], axis=-1)
            fig.add_trace(
                go.Scatter(
                    x=alphas + alphas[::-1],
                    y=np.concatenate([hi, lo[::-1]]),
                    fill="toself",
                    mode="lines",
                    fillcolor=GREY,
                    opacity=0.35,
                    line={"width": 0},
                    name=RANDOM_NAME,
                    legendgroup="random",
                    showlegend=i == 0,
                    hoverinfo="name+text",
                    hoveron="fills",
                    text=f"{RANDOM_NAME} at {d} ({rnd.shape[-1]} seeds)",
                )
            )
    lows = _np(res.ci_low[..., k]) if res.ci_low is not None else None
    highs = _np(res.ci_high[..., k]) if res.ci_high is not None else None
    hover = f"α = %{{x:g}}<br>{plotly_text(label)} %{{y:.4g}}"
    for i, d in enumerate(res.coords["direction"]):
        err = None if lows is None or highs is None else _error(lows[i], vals[i], highs[i])
        fig.add_trace(
            go.Scatter(
                x=alphas,
                y=vals[i],
                error_y=err,
                mode="lines+markers",
                name=str(d),
                line={"color": _color(i)},
                hovertemplate=hover,
            )
        )
    ref = UNSTEERED.get(metric, math.nan)
    level = float(res.baseline.get(ref, math.nan)) if isinstance(ref, str) else ref
    if math.isfinite(level):
        fig.add_hline(y=level, line_dash="dot", line_color=INK, annotation_text="unsteered")
    fig.update_xaxes(title=STRENGTH_AXIS, type="log" if log_x else "linear")
    fig.update_yaxes(title=label)
    return apply_theme(fig, title=title, legend={"orientation": "h", "y": -0.2, "x": 0.0})


def frontier_figure(res: SteeringResult, log_x: bool = False, **kw: Any) -> go.Figure:
    """Effect against KL (on neutral text; the task's own answer-position KL when that was not
    measured): one line per direction through its strengths, random directions in grey."""
    if not _is_steering(res):
        return default_figure(res, **kw)
    title = kw.pop("title", f"Effect against its cost: {res.title}")
    kl = "kl" if np.isfinite(_np(res.values[..., _metric_index(res, "kl")])).any() else "task_kl"
    ek, kk = _metric_index(res, "effect"), _metric_index(res, kl)
    alphas = [float(a) for a in res.coords["alpha"]]
    fig = go.Figure()
    if res.random is not None:
        rnd = _np(res.random)  # [direction, alpha, seed, metric]
        xs, ys, texts = [], [], []
        for i, d in enumerate(res.coords["direction"]):
            for j, a in enumerate(alphas):
                for s in range(rnd.shape[2]):
                    xs.append(rnd[i, j, s, kk])
                    ys.append(rnd[i, j, s, ek])
                    texts.append(f"{RANDOM_NAME} at {d}, α = {a:g}, seed {s}")
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="markers",
                name=RANDOM_NAME,
                marker={"color": GREY, "size": 7, "symbol": "x"},
                hovertext=texts,
                hovertemplate="%{hovertext}<br>KL %{x:.4g}<br>effect %{y:.4g}<extra></extra>",
            )
        )
    vals = _np(res.values)
    lo = _np(res.ci_low) if res.ci_low is not None else None
    hi = _np(res.ci_high) if res.ci_high is not None else None
    for i, d in enumerate(res.coords["direction"]):
        v = vals[i]
        fig.add_trace(
            go.Scatter(
                x=v[:, kk],
                y=v[:, ek],
                error_y=None
                if lo is None or hi is None
                else _error(lo[i, :, ek], v[:, ek], hi[i, :, ek]),
                error_x=None
                if lo is None or hi is None
                else _error(lo[i, :, kk], v[:, kk], hi[i, :, kk]),
                mode="lines+markers+text",
                text=[f"α = {a:g}" for a in alphas],
                textposition="top left",
                textfont={"size": 11},
                name=str(d),
                line={"color": _color(i)},
                hovertemplate="%{text}<br>KL %{x:.4g}<br>effect %{y:.4g}",
            )
        )
    fig.add_hline(y=0.0, line_dash="dot", line_color=INK)
    fig.update_xaxes(title=metric_label(kl), type="log" if log_x else "linear")
    fig.update_yaxes(title=metric_label("effect"))
    return apply_theme(fig, title=title, legend={"orientation": "h", "y": -0.2, "x": 0.0})


def _cell(v: Any) -> str:
    """A table cell's text: numbers rounded (ranks as 1, 2.5), missing values blank, escaped."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float | np.floating):
        return f"{float(v):.3g}"
    return plotly_text(v)


def _table(
    header: list[str],
    cells: list[list[str]],
    fills: list[str] | None = None,
    widths: Sequence[float] | None = None,
) -> go.Table:
    """A themed table from header labels (text, escaped here; a newline breaks the line) and
    cell markup (escaped by the caller), one list per column."""
    return go.Table(
        columnwidth=widths,
        header={
            "values": [f"<b>{plotly_text(h).replace(chr(10), '<br>')}</b>" for h in header],
            "fill_color": HEADER_FILL,
            "line_color": "#ddd",
            "align": "left",
        },
        cells={
            "values": cells,
            "fill_color": [fills] * len(cells) if fills is not None else "white",
            "line_color": "#ddd",
            "align": "left",
        },
    )


def _height(n_rows: int, per_row: int = 26) -> int:
    return int(min(160 + per_row * n_rows, 1000))


VERIFY_COLUMNS = ("group", "effect", "kl", "effect_per_kl")
#: Scorecard headers other than "rank\n<source>" and "score\n<source>".
HEADERS = {
    "kl": "KL\n(nats)",
    "effect_per_kl": "effect\nper KL",
}


def scorecard_figure(card: ScorecardResult, k: int | None = None, **kw: Any) -> go.Figure:
    """The scorecard as a table, best merged rank first: each source's rank and score, and
    (after `verify`) the realised effect, its KL cost and effect per unit KL of steered units."""
    if card.dims != ("unit", "source"):
        return default_figure(card, **kw)
    title = kw.pop("title", card.title)
    df = card.ranking()
    srcs = [str(s) for s in card.coords["source"] if str(s) != "merged"]
    cols = ["unit", "site", "rank_merged"]
    cols += [c for s in srcs for c in (f"rank_{s}", f"score_{s}") if c in df.columns]
    df = df[cols]
    ver = card.verification
    if len(ver):
        extra = [c for c in VERIFY_COLUMNS if c in ver.columns]
        df = df.merge(ver[["unit", *extra]], on="unit", how="left")
        if "alpha" in ver.columns and len(ver["alpha"].unique()) == 1:
            on = card.verify_summary.get("kl_on", "")
            title = f"{title}: steered at α = {float(ver['alpha'].iloc[0]):g}" + (
                f" (KL on {on})" if on else ""
            )
    if k is not None:
        df = df.head(k)
    groups = list(df["group"]) if "group" in df.columns else [None] * len(df)
    fills = [GROUPS.get(str(g), GROUPS["other"])[1] for g in groups]
    cells = [[_cell(_value(v)) for v in df[c]] for c in df.columns]
    header = [HEADERS.get(c, c.replace("_", "\n", 1)) for c in df.columns]
    widths = [1.6 if c == "site" else 1.0 for c in df.columns]
    fig = go.Figure(_table(header, cells, fills=fills, widths=widths))
    return apply_theme(fig, title=title, height=_height(len(df)), margin={"l": 20, "r": 20})


def _value(v: Any) -> Any:
    """pandas' NaN of a missing merged group as None (a blank cell)."""
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _rho(card: ScorecardResult, source: str) -> str:
    r = card.correlations.get(source)
    if r is None or not math.isfinite(float(r)):
        return f"{source} (ρ = n/a)"
    return f"{source} (ρ = {float(r):.2f})"


def verification_figure(card: ScorecardResult, **kw: Any) -> go.Figure:
    """One panel per evidence source (and the merged rank): its evidence against the realised
    effect of each steered unit, coloured by group; titles give the Spearman correlation."""
    ver: pd.DataFrame = card.verification
    if not len(ver):
        raise InterpError(
            "This scorecard has not been verified by steering: call .verify(k=...) first."
        )
    sources = [c[len("score_") :] for c in ver.columns if c.startswith("score_")]
    panels = [(s, f"score_{s}") for s in sources]
    if "rank_merged" in ver.columns:
        panels.append(("merged", "rank_merged"))
    fig = make_subplots(
        rows=1,
        cols=len(panels),
        shared_yaxes=True,
        subplot_titles=[_rho(card, s) for s, _ in panels],
        horizontal_spacing=min(0.06, 0.5 / max(len(panels), 1)),
    )
    seen: set[str] = set()
    for c, (source, col) in enumerate(panels, start=1):
        for group, (color, _) in GROUPS.items():
            sub = ver[ver["group"] == group]
            if not len(sub):
                continue
            y = sub["effect"].to_numpy(float)
            err = None
            if {"ci_low", "ci_high"} <= set(sub.columns):
                err = _error(sub["ci_low"].to_numpy(float), y, sub["ci_high"].to_numpy(float))
            fig.add_trace(
                go.Scatter(
                    x=sub[col].to_numpy(float),
                    y=y,
                    error_y=err,
                    mode="markers",
                    name=f"{group} units",
                    legendgroup=group,
                    showlegend=group not in seen,
                    marker={"color": color, "size": 9},
                    hovertext=[str(u) for u in sub["unit"]],
                    hovertemplate=f"%{{hovertext}}<br>{plotly_text(source)} %{{x:.4g}}"
                    "<br>effect %{y:.4g}<extra></extra>",
                ),
                row=1,
                col=c,
            )
            seen.add(group)
        merged = col == "rank_merged"
        fig.update_xaxes(
            title="merged rank (1 = best)" if merged else "score",
            autorange="reversed" if merged else True,
            row=1,
            col=c,
        )
    alphas = ver["alpha"].unique() if "alpha" in ver.columns else []
    at = f" at α = {float(alphas[0]):g}" if len(alphas) == 1 else ""
    fig.update_yaxes(title=f"realised effect{at}: {metric_label('effect')}", row=1, col=1)
    title = kw.pop("title", f"Evidence against realised steering effect: {card.title}")
    return apply_theme(fig, title=title, legend={"orientation": "h", "y": -0.25, "x": 0.0})


def strength_header(alpha: float) -> str:
    return "α = 0 (unsteered)" if alpha == 0 else f"α = {alpha:g}"


def _continuation(text: str, fluency: float | None) -> str:
    """A continuation as cell markup: the text escaped (newlines kept as line breaks), then
    its mean log-probability per token under the unsteered model."""
    body = plotly_text(text).replace("\n", "<br>") if text else "<i>(empty)</i>"
    if fluency is None or not math.isfinite(fluency):
        return body
    return f"{body}<br><i>log p/token {fluency:.2f}</i>"


def generations_figure(g: GenerationsResult, fluency: bool = True, **kw: Any) -> go.Figure:
    """The prompts and their continuations at each strength, side by side; with `fluency`,
    each continuation's mean log-probability per token under the unsteered model."""
    if g.dims != ("prompt", "alpha"):
        return default_figure(g, **kw)
    title = kw.pop("title", g.title)
    alphas = [float(a) for a in g.coords["alpha"]]
    vals = _np(g.values)
    header = ["prompt"] + [strength_header(a) for a in alphas]
    cells = [[plotly_text(p).replace("\n", "<br>") for p in g.prompts]]
    for j in range(len(alphas)):
        cells.append(
            [
                _continuation(t[j], float(vals[i, j]) if fluency else None)
                for i, t in enumerate(g.texts)
            ]
        )
    fig = go.Figure(_table(header, cells, widths=[2] + [1] * len(alphas)))
    return apply_theme(
        fig, title=title, height=_height(len(g.prompts), per_row=60), margin={"l": 20, "r": 20}
    )
