"""Result types of the head-attribution family: DLA, logit lens, ablations, head scores."""

from __future__ import annotations

from typing import Any, ClassVar

from interp.checks import checked
from interp.errors import InterpError
from interp.results.base import RankBy, Result
from interp.viz.figures import bar, heatmap


def _head_hover(res: Result) -> list[list[str]]:
    L, H = res.values.shape[:2]
    return [[f"L{l}H{h}" for h in range(H)] for l in range(L)]


def head_grid(res: Result, title: str, value_label: str, **kw: Any) -> Any:
    """Layer x head heatmap; hover shows the L{l}H{h} label and the value."""
    L, H = res.values.shape[:2]
    return heatmap(
        res.values,
        [f"H{h}" for h in range(H)],
        [f"L{l}" for l in range(L)],
        title=title,
        xlabel="head",
        ylabel="layer",
        value_label=value_label,
        hover=_head_hover(res),
        **kw,
    )


#: Default tolerance of `DLAResult.check_sum_to_total` by the model's dtype.
SUM_RTOL = {"float16": 1e-2, "bfloat16": 5e-2}


class DLAResult(Result):
    """Direct logit attribution; ``extras['components']`` keeps every component per prompt."""

    kind: ClassVar[str] = "dla"

    @checked
    def check_sum_to_total(self, rtol: float | None = None) -> float:
        """Largest relative error between summed components and the actual logit difference.

        Args:
            rtol: allowed relative error; default by the model's dtype recorded in the metadata:
                1e-4 in float32/float64, 1e-2 in float16, 5e-2 in bfloat16 (the organism
                measures 1.0e-3 and 8.4e-3 in the two low-precision dtypes).
        """
        if rtol is None:
            rtol = SUM_RTOL.get(str(self.meta.get("model_dtype", "float32")), 1e-4)
        comps, total = self.extras["components"].double(), self.extras["total"].double()
        err = float(((comps.sum(-1) - total).abs() / total.abs().clamp_min(1.0)).max())
        if err > rtol:
            raise InterpError(
                f"Components do not sum to the total: relative error {err:.2e} > rtol {rtol:g}."
            )
        return err

    def plot(self, **kw: Any) -> Any:
        title = kw.pop("title", self.title)
        label = self.meta.get("value_label", "direct effect")
        if self.dims == ("layer", "head"):
            return head_grid(self, title, label, **kw)
        if self.dims == ("component",):
            return bar(
                self.values,
                [str(c) for c in self.coords["component"]],
                title=title,
                xlabel="component",
                value_label=label,
                ci_low=self.ci_low,
                ci_high=self.ci_high,
            )
        return super().plot(title=title, value_label=label, **kw)


class HeadScores(Result):
    """A score per head (detectors): layer x head."""

    kind: ClassVar[str] = "head_scores"
    rank_by: ClassVar[RankBy] = "desc"

    def plot(self, **kw: Any) -> Any:
        return head_grid(
            self,
            kw.pop("title", self.title),
            self.meta.get("value_label", "score"),
            signed=False,
            **kw,
        )


class AblationResult(Result):
    """Change in the task metric when heads are ablated (ablated - clean)."""

    kind: ClassVar[str] = "ablation"
    rank_by: ClassVar[RankBy] = "asc"  # the most harmful ablations first

    def plot(self, **kw: Any) -> Any:
        title = kw.pop("title", self.title)
        label = self.meta.get("value_label", "metric change")
        if self.dims == ("layer", "head"):
            return head_grid(self, title, label, **kw)
        return super().plot(title=title, value_label=label, **kw)


class LogitLensResult(Result):
    """Per layer and position readouts of the residual stream decoded with the final norm.

    ``values`` has dims ``(metric, layer, pos)`` averaged over prompts; ``extras['top_ids']``
    ``[layer, pos, k]`` and ``extras['top_probs']`` are the top-k tokens of the shown prompt,
    with their strings in ``meta['top_tokens']``.
    """

    kind: ClassVar[str] = "logit_lens"

    def plot(self, metric: str | None = None, **kw: Any) -> Any:
        metrics = [str(m) for m in self.coords["metric"]]
        metric = metric or ("target_prob" if "target_prob" in metrics else "kl_to_final")
        if metric not in metrics:
            raise InterpError(f"metric={metric!r}: this logit lens has {metrics}.")
        values = self.values[metrics.index(metric)]
        top = self.meta.get("top_tokens", [])
        text = [[row[p][0] if row[p] else "" for p in range(values.shape[1])] for row in top]
        L = values.shape[0]
        return heatmap(
            values,
            [self.label("pos", i) for i in range(values.shape[1])],
            [self.label("layer", i) for i in range(L)],
            title=kw.pop("title", self.title),
            xlabel="position",
            ylabel="layer (residual decoded)",
            value_label=metric,
            signed=False,
            text=text or None,
            hover=[[", ".join(row[p][:5]) for p in range(values.shape[1])] for row in top] or None,
            **kw,
        )


class AttentionResult(Result):
    """Attention probabilities of chosen heads on one prompt: dims (head, query, key)."""

    kind: ClassVar[str] = "attention"

    def plot(self, **kw: Any) -> Any:
        return super().plot(title=kw.pop("title", self.title), value_label="attention", **kw)

    def circuitsvis_html(self, include_js: bool = True) -> str:
        """Interactive circuitsvis view, fully offline."""
        from interp.viz.attention import attention_heads_html

        return attention_heads_html(
            list(self.meta["tokens"]),
            self.values,
            [str(h) for h in self.coords["head"]],
            include_js=include_js,
        )
