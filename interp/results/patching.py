"""Result types of causal mediation: exact activation patching, attribution patching, path patching.

``values`` are normalised scores (METHODS.md section 3): denoising ``(M_patched - M_corrupt) /
(M_clean - M_corrupt)`` (1 = full recovery), noising ``(M_patched - M_clean) / (M_clean -
M_corrupt)`` (-1 = fully destroyed). ``extras['patched']`` keeps the raw metric per prompt and
component, ``extras['clean']`` / ``extras['corrupt']`` the unpatched runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import plotly.graph_objects as go
import torch
from torch import Tensor

from interp.errors import InterpError
from interp.results.attribution import head_grid
from interp.results.base import Result
from interp.viz.figures import heatmap
from interp.viz.theme import apply_theme


class PatchResult(Result):
    """Exact activation patching: a normalised score per component (or per node set)."""

    kind: ClassVar[str] = "patch"

    @property
    def raw(self) -> Tensor:
        """Mean raw metric of each patched run (the number TransformerLens' patching returns)."""
        return self.extras["patched"].double().mean(0).float()

    def plot(self, **kw: Any) -> Any:
        title = kw.pop("title", self.title)
        label = self.meta.get("value_label", "score")
        dims = self.dims
        if dims in (("layer", "head"), ("layer", "kv_head")):
            return head_grid(self, title, label, **kw)
        if dims == ("layer", "pos"):
            return heatmap(
                self.values,
                _labels(self, "pos"),
                [f"L{l}" for l in self.coords["layer"]],
                title=title,
                xlabel="position",
                ylabel="layer",
                value_label=label,
                **kw,
            )
        if dims in (("layer", "pos", "head"), ("layer", "pos", "kv_head")):
            # Per-position head grid: one row per head, one column per position.
            L, T, H = self.values.shape
            grid = self.values.permute(0, 2, 1).reshape(L * H, T)
            return heatmap(
                grid,
                _labels(self, "pos"),
                [f"L{l}H{h}" for l in range(L) for h in range(H)],
                title=title,
                xlabel="position",
                ylabel="head",
                value_label=label,
                **kw,
            )
        if dims == ("layer", "head", "dest_pos"):
            L, H, T = self.values.shape
            return heatmap(
                self.values.reshape(L * H, T),
                _labels(self, "dest_pos"),
                [f"L{l}H{h}" for l in range(L) for h in range(H)],
                title=title,
                xlabel="destination position",
                ylabel="head",
                value_label=label,
                **kw,
            )
        return super().plot(title=title, value_label=label, **kw)


def _labels(res: Result, dim: str) -> list[str]:
    return [res.label(dim, i) for i in range(res.shape[dim])]


class AtPResult(PatchResult):
    """Attribution patching estimates, in the same normalised units as exact patching.

    With ``star=True`` ``extras['graddrop']`` holds AtP*'s GradDrop score (mean over layers of
    the absolute estimate with that layer's gradient path cut), used for ranking. After
    ``verify`` or `agreement`, ``meta['agreement']`` holds Spearman and top-k recall against
    exact patching and ``extras['exact']`` the exact scores.
    """

    kind: ClassVar[str] = "atp"

    @property
    def ranking_score(self) -> Tensor:
        """What AtP ranks components by: |estimate|, or GradDrop's score for AtP*."""
        if "graddrop" in self.extras:
            return torch.maximum(self.values.abs(), self.extras["graddrop"])
        return self.values.abs()

    def scatter(self, exact: Result | None = None, **kw: Any) -> go.Figure:
        """AtP estimate against exact patching, one point per component."""
        ex = exact.values if exact is not None else self.extras.get("exact")
        if ex is None:
            raise InterpError("No exact scores: pass exact=activation_patch(...) or use verify.")
        if ex.shape != self.values.shape:
            raise InterpError(
                f"Exact result shape {tuple(ex.shape)} != AtP shape {tuple(self.values.shape)}."
            )
        names = [  # raw: apply_theme escapes them for plotly
            " ".join(str(self.label(d, i)) for d, i in zip(self.dims, idx, strict=True))
            for idx in np.ndindex(*self.values.shape)
        ]
        x = ex.detach().double().reshape(-1).numpy()
        y = self.values.detach().double().reshape(-1).numpy()
        lo = float(np.nanmin([x.min(), y.min()]))
        hi = float(np.nanmax([x.max(), y.max()]))
        fig = go.Figure(
            [
                go.Scatter(
                    x=[lo, hi],
                    y=[lo, hi],
                    mode="lines",
                    line={"dash": "dot", "color": "#999"},
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
        agree = self.meta.get("agreement") or {}
        sub = ""
        if agree:
            sub = (
                f" (Spearman {agree['spearman']:.3f}, "
                f"top-{agree['k']} recall {agree['top_k_recall']:.2f})"
            )
        fig.update_xaxes(title="exact patching score")
        fig.update_yaxes(title="attribution patching estimate")
        return apply_theme(fig, title=kw.pop("title", f"AtP vs exact{sub}"))


class PathPatchResult(PatchResult):
    """Path patching: effect of a sender on the receivers through direct paths only."""

    kind: ClassVar[str] = "path_patch"
