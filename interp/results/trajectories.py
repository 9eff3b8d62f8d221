"""Trajectory results: ROC-AUC of each signal against correctness, and the evidence behind it.

``values`` is ``[signal, metric]`` with metrics ``auroc`` (oriented: > 0.5 means the signal
predicts right answers in its expected direction), ``null_auroc`` (the same with shuffled labels)
and ``projection_auroc`` (the change signals on a random low-dimensional projection; NaN for
the other signals), each with a 95% bootstrap interval. Extras: ``table`` (one row per trace,
columns in ``meta['table_columns']``), ``selection`` and ``acceptance`` (one row per method),
``paths`` (``[layer, trace, chunk, 2]`` PCA coordinates, NaN-padded) and ``layer_auroc``
(``[change signal, layer, (value, low, high)]``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from interp.errors import InterpError
from interp.results.base import RankBy, Result
from interp.stats import roc_curve
from interp.viz.figures import line
from interp.viz.theme import apply_theme

METRICS = ("auroc", "null_auroc", "projection_auroc")
CHANGE_SIGNALS = ("net_change", "cumulative_change", "aligned_change")
RIGHT, WRONG = "#2ca02c", "#d62728"
# Methods named on the accuracy-vs-tokens chart (the rest show on hover).
LABELLED = ("majority_vote", "first_sample", "net_change", "early_net_change", "mean_logprob")
# Signals shown by default in the per-signal views: the paper's three and the best baseline.
DEFAULT_VIEW = ("net_change", "cumulative_change", "aligned_change", "mean_logprob")


class TrajectoryResult(Result):
    kind: ClassVar[str] = "trajectories"
    rank_by: ClassVar[RankBy] = "desc"

    # ------------------------------------------------------------- tables
    def traces(self) -> pd.DataFrame:
        """One row per trace: prompt, sample, correct, n_tokens and every signal."""
        df = pd.DataFrame(self.extras["table"].numpy(), columns=self.meta["table_columns"])
        for c in ("prompt", "sample", "n_tokens"):
            df[c] = df[c].astype(int)
        df["correct"] = df["correct"].astype(bool)
        return df

    def auroc(self) -> pd.DataFrame:
        """One row per signal: each metric with its interval, wide."""
        df = self.to_dataframe()
        wide = df.pivot(index="signal", columns="metric", values=["value", "ci_low", "ci_high"])
        out = pd.DataFrame({"signal": self.coords["signal"]})
        for m in METRICS:
            out[m] = wide[("value", m)].reindex(out["signal"]).to_numpy()
            out[f"{m}_low"] = wide[("ci_low", m)].reindex(out["signal"]).to_numpy()
            out[f"{m}_high"] = wide[("ci_high", m)].reindex(out["signal"]).to_numpy()
        return out

    def selection(self) -> pd.DataFrame:
        """Best-of-n selection by each signal and majority vote: accuracy, tokens per prompt."""
        df = pd.DataFrame(self.extras["selection"].numpy(), columns=self.meta["selection_columns"])
        df.insert(0, "method", self.meta["selection_methods"])
        df["prompts"] = df["prompts"].astype(int)
        return df

    def acceptance(self) -> pd.DataFrame:
        """Sequential acceptance on the test prompts (thresholds from the calibration prompts)."""
        df = pd.DataFrame(
            self.extras["acceptance"].numpy(), columns=self.meta["acceptance_columns"]
        )
        df.insert(0, "method", self.meta["acceptance_methods"])
        return df

    # ------------------------------------------------------------- views
    def plot(self, **kw: Any) -> go.Figure:
        """ROC-AUC per signal with its interval, beside the shuffled-label null and the change
        signals on a random projection; chance at 0.5."""
        title = kw.pop("title", self.title)
        names = [str(s) for s in self.coords["signal"]]
        fig = go.Figure()
        styles = {
            "auroc": ("signal", "#1f77b4"),
            "null_auroc": ("shuffled labels (null)", "#aaaaaa"),
            "projection_auroc": ("random projection (null)", "#ff7f0e"),
        }
        assert self.ci_low is not None and self.ci_high is not None
        for j, m in enumerate(METRICS):
            v = self.values[:, j].numpy()
            lo, hi = self.ci_low[:, j].numpy(), self.ci_high[:, j].numpy()
            label, color = styles[m]
            fig.add_trace(
                go.Bar(
                    x=names,
                    y=v,
                    name=label,
                    marker_color=color,
                    error_y={"type": "data", "array": hi - v, "arrayminus": v - lo},
                    hovertemplate="%{x}<br>" + m + " %{y:.3f}<extra></extra>",
                )
            )
        fig.add_hline(
            y=0.5,
            line_dash="dot",
            line_color="#444",
            annotation_text="chance",
            annotation_position="top right",
        )
        fig.update_layout(barmode="group", legend={"orientation": "h", "y": 1.08, "x": 0.0})
        fig.update_yaxes(title="ROC-AUC (oriented)", range=[0, 1.05])
        fig.update_xaxes(title="signal", tickangle=-35, automargin=True)
        return apply_theme(fig, title=title, margin={"l": 70, "r": 30, "t": 90, "b": 140})

    def plot_layers(self) -> go.Figure:
        """ROC-AUC of net, cumulative and aligned change computed at each layer alone, with
        bootstrap bands: where in depth the trajectory carries the signal, if anywhere."""
        la = self.extras["layer_auroc"]  # [signal, layer, (value, low, high)]
        layers = [str(l) for l in range(la.shape[1])]
        fig = line(
            layers,
            {name: la[i, :, 0] for i, name in enumerate(CHANGE_SIGNALS)},
            xlabel="layer (block output)",
            value_label="ROC-AUC (oriented)",
            bands={name: (la[i, :, 1], la[i, :, 2]) for i, name in enumerate(CHANGE_SIGNALS)},
        )
        fig.add_hline(y=0.5, line_dash="dot", line_color="#444")
        fig.update_xaxes(type="category")
        fig.update_yaxes(range=[0, 1])
        return apply_theme(fig, title="Change signals by layer")

    def _signals(self, signals: Sequence[str] | None) -> list[str]:
        cols = self.meta["table_columns"]
        chosen = [s for s in (signals or DEFAULT_VIEW) if s in cols]
        unknown = [s for s in (signals or []) if s not in cols]
        if unknown:
            raise InterpError(f"Unknown signal(s) {unknown}; available: {cols[4:]}.")
        return chosen

    def plot_roc(self, signals: Sequence[str] | None = None) -> go.Figure:
        """ROC curves of the chosen signals (oriented), with the diagonal."""
        df = self.traces()
        fig = go.Figure()
        orient = self.meta.get("orientation", {})
        for s in self._signals(signals):
            sub = df[df[s].notna()]
            score = sub[s].to_numpy(dtype=float) * orient.get(s, 1)
            fpr, tpr = roc_curve(torch.tensor(score), torch.tensor(sub["correct"].to_numpy(float)))
            auc = float(self.sel(signal=s, metric="auroc")) if s in self.coords["signal"] else None
            name = s if auc is None else f"{s} ({auc:.2f})"
            fig.add_trace(go.Scatter(x=fpr.numpy(), y=tpr.numpy(), mode="lines", name=name))
        fig.add_trace(
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"dash": "dot", "color": "#888"},
                name="chance",
            )
        )
        fig.update_xaxes(title="false-positive rate (wrong answers accepted)", range=[0, 1])
        fig.update_yaxes(title="true-positive rate (right answers accepted)", range=[0, 1])
        return apply_theme(fig, title="ROC curves: signal against correctness")

    def plot_distributions(self, signals: Sequence[str] | None = None) -> go.Figure:
        """Each signal's values for right and wrong answers, one panel per signal."""
        df = self.traces()
        chosen = self._signals(signals)
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

    def plot_trajectories(self, layer: int = -1, max_traces: int = 200) -> go.Figure:
        """Each trace's chunk means in the top-two-PC plane of one layer, coloured by
        correctness; a circle marks each trace's first chunk."""
        paths = self.extras["paths"]
        L = paths.shape[0]
        if not -L <= layer < L:
            raise InterpError(f"layer {layer} out of range for {L} layers.")
        li = layer % L
        df = self.traces()
        fig = go.Figure()
        shown = {True: False, False: False}
        for i in range(min(len(df), max_traces)):
            p = paths[li, i].numpy()
            p = p[~np.isnan(p[:, 0])]
            ok = bool(df.loc[i, "correct"])
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
                    hovertemplate=f"prompt {df.loc[i, 'prompt']} sample {df.loc[i, 'sample']}"
                    "<extra></extra>",
                )
            )
            shown[ok] = True
        ev = self.meta.get("path_explained", [[0.0, 0.0]] * L)[li]
        fig.update_xaxes(title=f"PC1 ({ev[0]:.0%} of chunk variance)")
        fig.update_yaxes(title=f"PC2 ({ev[1]:.0%})")
        k = self.meta.get("params", {}).get("k", "k")
        return apply_theme(fig, title=f"Trajectories at layer {li} (means of chunks of {k} tokens)")

    def plot_tokens(self) -> go.Figure:
        """Accuracy against tokens spent per prompt: majority vote, best-of-n by each signal
        (full and early), and sequential acceptance (on its test prompts)."""
        sel, acc = self.selection(), self.acceptance()
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
                    hovertemplate="%{customdata}<br>%{x:.1f} tokens, accuracy %{y:.3f}"
                    "<extra></extra>",
                )
            )
        most = float(max(sel["tokens_per_prompt"].max(), acc["tokens_per_prompt"].max()))
        fig.update_xaxes(
            title="tokens generated per prompt", range=[0, most * 1.3]
        )  # room for labels
        fig.update_yaxes(title="accuracy (fraction of prompts right)", range=[0, 1.02])
        return apply_theme(fig, title="Accuracy against tokens spent")
