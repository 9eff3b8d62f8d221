"""Probe results: metrics per layer (or head) with intervals, directions, and 2-D projections.

``values`` has a trailing ``metric`` axis (accuracy, f1, auroc, control_accuracy, selectivity; r2
for ridge; method accuracies for CCS), so ``to_dataframe()`` has ``layer`` (and ``head``),
``metric``, ``value``, ``ci_low``, ``ci_high``. ``extras['directions']`` holds one unit vector per
layer/head in the raw activation space, ``extras['projection']`` each example's coordinates on
(probe direction, top orthogonal principal component).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import plotly.graph_objects as go
from torch import Tensor

from interp.errors import InterpError
from interp.results.base import RankBy, Result
from interp.viz.figures import heatmap, line
from interp.viz.theme import apply_theme


@dataclass(frozen=True)
class Direction:
    """A probe direction, ready for steering and projection plots."""

    vector: Tensor  # unit norm, raw activation space
    layer: int
    head: int | None
    hook: str
    probe: str
    sign: str  # what a positive projection means

    def project(self, acts: Tensor) -> Tensor:
        """Projection of activations ``[..., d]`` on the direction."""
        if acts.shape[-1] != self.vector.shape[0]:
            raise InterpError(
                f"Activations have width {acts.shape[-1]}, the direction {self.vector.shape[0]}."
            )
        return acts.to(self.vector.dtype) @ self.vector


class ProbeResult(Result):
    kind: ClassVar[str] = "probe"
    rank_by: ClassVar[RankBy] = "desc"

    @property
    def main_metric(self) -> str:
        return str(self.coords["metric"][0])

    def metric(self, name: str) -> Tensor:
        """One metric over layers (or layers x heads)."""
        return self.sel(metric=name)

    def direction(self, layer: int, head: int | None = None) -> Direction:
        """The unit direction of the probe at `layer` (and `head` for head sweeps)."""
        over = self.meta.get("over", "layers")
        if (head is None) != (over == "layers"):
            raise InterpError(
                "This result probes heads: give layer and head."
                if over == "heads"
                else "This result probes layers: give only the layer."
            )
        try:
            li = self.coords["layer"].index(layer)
        except ValueError:
            raise InterpError(f"layer {layer} not in {self.coords['layer']}.") from None
        vecs = self.extras["directions"]
        vec = vecs[li] if head is None else vecs[li, head]
        hooks = self.meta.get("hooks", [])
        return Direction(
            vector=vec.clone(),
            layer=int(layer),
            head=head,
            hook=hooks[li] if li < len(hooks) else "",
            probe=str(self.meta.get("probe")),
            sign=str(self.meta.get("direction_sign", "")),
        )

    def plot(self, **kw: Any) -> go.Figure:
        """Layers: the main metric by layer with its band, the control curve and selectivity.
        Heads: a layer x head heatmap of the main metric."""
        title = kw.pop("title", self.title)
        metric = kw.pop("metric", self.main_metric)
        if "head" in self.dims:
            vals = self.metric(metric)
            fig = heatmap(
                vals,
                [f"H{h}" for h in self.coords["head"]],
                [f"L{l}" for l in self.coords["layer"]],
                title=title,
                xlabel="head",
                ylabel="layer",
                value_label=metric,
                signed=False,
                hover=[
                    [
                        f"L{l}H{h} {metric} {float(vals[i, j]):.3f}"
                        for j, h in enumerate(self.coords["head"])
                    ]
                    for i, l in enumerate(self.coords["layer"])
                ],
            )
            if metric in ("accuracy", "f1", "auroc", "control_accuracy"):
                # A fixed 0-1 scale puts chance mid-scale instead of stretching noise.
                fig.update_traces(zmin=0.0, zmax=1.0)
            return fig
        names = [str(m) for m in self.coords["metric"]]
        shown = [m for m in (metric, "control_accuracy", "control_r2", "selectivity") if m in names]
        if self.meta.get("probe") == "ccs":
            shown = [m for m in names if m.endswith("accuracy")]
        mi = {m: names.index(m) for m in shown}
        assert self.ci_low is not None and self.ci_high is not None
        fig = line(
            self.labels.get("layer", [str(x) for x in self.coords["layer"]]),
            {m: self.values[:, mi[m]] for m in shown},
            title=title,
            xlabel="layer (blocks applied)",
            value_label="score",
            bands={m: (self.ci_low[:, mi[m]], self.ci_high[:, mi[m]]) for m in shown},
        )
        fig.update_xaxes(type="category")  # "embed", "1", ... in order, no fractional ticks
        chance = self.meta.get("class_balance")
        if chance is not None and metric == "accuracy":
            level = max(chance, 1 - chance)
            fig.add_hline(y=level, line_dash="dot", line_color="#888", annotation_text="majority")
        return fig

    def plot_projection(self, layer: int | None = None, head: int | None = None) -> go.Figure:
        """Examples on (probe direction, top orthogonal PC), coloured by label; default: the best
        layer (or head)."""
        proj = self.extras["projection"]
        main = self.metric(self.main_metric)
        if layer is None:
            flat = int(np.nanargmax(main.reshape(-1).numpy()))
            li, hi = (
                (flat // main.shape[1], flat % main.shape[1]) if main.ndim == 2 else (flat, None)
            )
            layer = int(self.coords["layer"][li])
            head = hi
        else:
            li = self.coords["layer"].index(layer)
            hi = head
        pts = proj[li] if hi is None else proj[li, hi]
        y = self.extras["labels"].numpy()
        fig = go.Figure()
        binary = set(np.unique(y).tolist()) <= {0.0, 1.0}
        if binary:
            for cls, color, name in ((1.0, "#d62728", "label 1"), (0.0, "#1f77b4", "label 0")):
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
                    marker={"color": y, "colorscale": "Viridis", "showscale": True, "size": 6},
                )
            )
        where = f"L{layer}" + (f"H{head}" if head is not None else "")
        fig.update_xaxes(title="projection on the probe direction")
        fig.update_yaxes(title="top orthogonal principal component")
        return apply_theme(
            fig, title=f"{self.meta.get('probe')} probe at {where}: examples by label"
        )
