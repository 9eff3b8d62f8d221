"""Views of trajectory results: ROC-AUC against the nulls, per layer, ROC curves, signal
distributions, the paths themselves, and accuracy against tokens spent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from interp.errors import InterpError
from interp.nodes import layer_label
from interp.stats import roc_curve
from interp.viz.figures import line
from interp.viz.theme import BLUE, GREY, INK, ORANGE, RIGHT, WRONG, apply_theme

if TYPE_CHECKING:
    from interp.results.trajectories import TrajectoryResult

# Methods named on the accuracy-vs-tokens chart (the rest show on hover).
LABELLED = ("majority_vote", "first_sample", "net_change", "early_net_change", "mean_logprob")
# Signals shown by default in the per-signal views: the paper's three and the best baseline.
DEFAULT_VIEW = ("net_change", "cumulative_change", "aligned_change", "mean_logprob")
# How each metric of `values` is drawn (in the order of its metric axis): legend name, colour.
STYLES = {
    "auroc": ("signal", BLUE),
    "null_auroc": ("shuffled labels (null)", GREY),
    "projection_auroc": ("random projection (null)", ORANGE),
}
_AUROC_AXIS = "ROC-AUC (oriented)"


def _chance(fig: go.Figure, **kw: Any) -> None:
    fig.add_hline(y=0.5, line_dash="dot", line_color=INK, **kw)


def auroc_bars(res: TrajectoryResult, **kw: Any) -> go.Figure:
    """ROC-AUC per signal with its interval, beside the shuffled-label null and the change
    signals on a random projection; chance at 0.5."""
    title = kw.pop("title", res.title)
    names = [str(s) for s in res.coords["signal"]]
    fig = go.Figure()
    if res.ci_low is None or res.ci_high is None:
        raise InterpError("A trajectory result needs its intervals (ci_low, ci_high) to plot.")
    for j, (m, (label, color)) in enumerate(STYLES.items()):  # the metric axis, in order
        v = res.values[:, j].numpy()
        lo, hi = res.ci_low[:, j].numpy(), res.ci_high[:, j].numpy()
        fig.add_trace(
            go.Bar(
                x=names,
                y=v,
                name=label,
                marker_color=color,
                error_y={"type": "data", "array": hi - v, "arrayminus": v - lo},
                hovertemplate=f"%{{x}}<br>{m} %{{y:.3f}}<extra></extra>",
            )
        )
    _chance(fig, annotation_text="chance", annotation_position="top right")
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": 1.08, "x": 0.0})
    fig.update_yaxes(title=_AUROC_AXIS, range=[0, 1.05])
    fig.update_xaxes(title="signal", tickangle=-35, automargin=True)
    return apply_theme(fig, title=title, margin={"l": 70, "r": 30, "t": 90, "b": 140})


def layer_lines(res: TrajectoryResult) -> go.Figure:
    """ROC-AUC of net, cumulative and aligned change computed at each layer alone, with
    bootstrap bands: where in depth the trajectory carries the signal, if anywhere."""
    la = res.layer_auroc  # [signal, layer, (value, low, high)]
    names = res.layer_signals
    fig = line(
        [layer_label(l) for l in range(la.shape[1])],
        {name: la[i, :, 0] for i, name in enumerate(names)},
        xlabel="layer (block output)",
        value_label=_AUROC_AXIS,
        bands={name: (la[i, :, 1], la[i, :, 2]) for i, name in enumerate(names)},
    )
    _chance(fig)
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[0, 1])
    return apply_theme(fig, title="Change signals by layer")


def _signals(res: TrajectoryResult, signals: Sequence[str] | None) -> list[str]:
    cols = list(res.table.columns)
    unknown = [s for s in (signals or []) if s not in cols]
    if unknown:
        raise InterpError(f"Unknown signal(s) {unknown}; available: {cols[4:]}.")
    return [s for s in (signals or DEFAULT_VIEW) if s in cols]


def roc_curves(res: TrajectoryResult, signals: Sequence[str] | None = None) -> go.Figure:
    """ROC curves of the chosen signals (oriented), with the diagonal."""
    df = res.table
    fig = go.Figure()
    for s in _signals(res, signals):
        sub = df[df[s].notna()]
        score = sub[s].to_numpy(dtype=float) * res.orientation.get(s, 1)
        fpr, tpr = roc_curve(torch.tensor(score), torch.tensor(sub["correct"].to_numpy(float)))
        auc = float(res.sel(signal=s, metric="auroc")) if s in res.coords["signal"] else None
        name = s if auc is None else f"{s} ({auc:.2f})"
        fig.add_trace(go.Scatter(x=fpr.numpy(), y=tpr.numpy(), mode="lines", name=name))
    fig.add_trace(
        go.Scatter(
            x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dot", "color": GREY}, name="chance"
        )
    )
    fig.update_xaxes(title="false-positive rate (wrong answers accepted)", range=[0, 1])
    fig.update_yaxes(title="true-positive rate (right answers accepted)", range=[0, 1])
    return apply_theme(fig, title="ROC curves: signal against correctness")


def distributions(res: TrajectoryResult, signals: Sequence[str] | None = None) -> go.Figure:
    """Each signal's values for right and wrong answers, one panel per signal."""
    df = res.table
    chosen = _signals(res, signals)
    fig = make_subplots(rows=1, cols=len(chosen), subplot_titles=chosen)
    for i, s in enumerate(chosen, start=1):
        for correct, color, name in ((True, RIGHT, "right"), (False, WRONG, "wrong")):
            v = df.loc[(df["correct"] == correct) & df[s].notna(), s]
            fig.add_trace(
                go.Box(
                    y=v,
                    name=name,
                    marker_color=color,
                    boxpoints="all",
                    jitter=0.4,
                    pointpos=0,
                    marker={"size": 3, "opacity": 0.5},
                    legendgroup=name,
                    showlegend=i == 1,
                ),
                row=1,
                col=i,
            )
    return apply_theme(fig, title="Signals of right and wrong answers")


def paths(res: TrajectoryResult, layer: int = -1, max_traces: int = 200) -> go.Figure:
    """Each trace's chunk means in the top-two-PC plane of one layer, coloured by
    correctness; a larger marker shows each trace's first chunk."""
    L = res.paths.shape[0]
    if not -L <= layer < L:
        raise InterpError(f"layer {layer} out of range for {L} layers.")
    li = layer % L
    df = res.table
    fig = go.Figure()
    shown = {True: False, False: False}
    for i in range(min(len(df), max_traces)):
        p = res.paths[li, i].numpy()
        p = p[~np.isnan(p[:, 0])]
        ok = bool(df["correct"].iloc[i])
        color = RIGHT if ok else WRONG
        fig.add_trace(
            go.Scatter(
                x=p[:, 0],
                y=p[:, 1],
                mode="lines+markers",
                line={"color": color, "width": 1},
                marker={"size": [8] + [3] * (len(p) - 1), "color": color},
                opacity=0.45,
                name="right" if ok else "wrong",
                legendgroup=str(ok),
                showlegend=not shown[ok],
                hovertemplate=f"prompt {df['prompt'].iloc[i]} sample {df['sample'].iloc[i]}"
                "<extra></extra>",
            )
        )
        shown[ok] = True
    ev = res.path_explained[li] if res.path_explained else [0.0, 0.0]
    fig.update_xaxes(title=f"PC1 ({ev[0]:.0%} of chunk variance)")
    fig.update_yaxes(title=f"PC2 ({ev[1]:.0%})")
    k = res.meta.get("params", {}).get("k", "k")
    title = f"Trajectories at {layer_label(li)} (means of chunks of {k} tokens)"
    return apply_theme(fig, title=title)


def tokens_spent(res: TrajectoryResult) -> go.Figure:
    """Accuracy against tokens spent per prompt: majority vote, best-of-n by each signal
    (full and early), and sequential acceptance (on its test prompts)."""
    sel, acc = res.selection, res.acceptance
    fig = go.Figure()
    for df, name, symbol in (
        (sel, "best-of-n selection", "circle"),
        (acc, "sequential acceptance (test prompts)", "diamond"),
    ):
        fig.add_trace(
            go.Scatter(
                x=df["tokens_per_prompt"],
                y=df["accuracy"],
                customdata=df["method"],
                text=[m if m in LABELLED else "" for m in df["method"]],
                textposition="middle right",
                textfont={"size": 10},
                mode="markers+text",
                name=name,
                marker={"symbol": symbol, "size": 9},
                hovertemplate="%{customdata}<br>%{x:.1f} tokens, accuracy %{y:.3f}<extra></extra>",
            )
        )
    most = float(max(sel["tokens_per_prompt"].max(), acc["tokens_per_prompt"].max()))
    fig.update_xaxes(title="tokens generated per prompt", range=[0, most * 1.3])  # room for labels
    fig.update_yaxes(title="accuracy (fraction of prompts right)", range=[0, 1.02])
    return apply_theme(fig, title="Accuracy against tokens spent")
