"""Figures of latent probing: held-out ROC-AUC against decoder cosine, one point per latent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from interp.viz.theme import apply_theme

if TYPE_CHECKING:
    from interp.results.latents import LatentProbeResult


def latent_probe_figure(res: LatentProbeResult, **kw: Any) -> go.Figure:
    """Each latent's ROC-AUC alone (x) against its decoder cosine with the dense probe (y);
    the sparse probe's chosen latents are marked."""
    labels = res.labels.get("latent") or [str(i) for i in range(len(res.values))]
    auc = res.values.tolist()
    cos = res.cosine.tolist() if res.cosine is not None else [0.0] * len(auc)
    chosen = set(res.chosen)
    fig = go.Figure()
    for picked, name in ((False, "latent"), (True, f"chosen (k={len(chosen)})")):
        idx = [i for i in range(len(auc)) if (i in chosen) == picked]
        fig.add_trace(
            go.Scatter(
                x=[auc[i] for i in idx],
                y=[cos[i] for i in idx],
                mode="markers",
                name=name,
                text=[labels[i] for i in idx],
                hovertemplate="%{text}<br>ROC-AUC %{x:.3f}<br>cosine %{y:.3f}<extra></extra>",
                marker={"size": 9 if picked else 5, "opacity": 1.0 if picked else 0.5},
            )
        )
    acc, dense = res.accuracy, res.dense_accuracy
    title = res.title or "Sparse probing on latents"
    if acc and dense:
        title += f" (accuracy: sparse probe {acc[0]:.3f}, dense probe {dense[0]:.3f})"
    fig.update_layout(
        title=title,
        xaxis_title="held-out ROC-AUC of the latent alone",
        yaxis_title="decoder cosine with the probe direction",
    )
    return apply_theme(fig, **kw)
