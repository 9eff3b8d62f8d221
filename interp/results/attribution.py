"""Result types of the head-attribution family: DLA, logit lens, ablations, head scores.

Each type declares the data its analysis returns besides `values` as typed fields; the figures
live in `interp.viz.attribution`, imported when a figure is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from jaxtyping import Float, Int
from torch import Tensor

from interp.checks import checked
from interp.errors import InterpError
from interp.results.base import RankBy, Result

#: Default tolerance of `DLAResult.check_sum_to_total` by the model's dtype.
SUM_RTOL = {"float16": 1e-2, "bfloat16": 5e-2}


@dataclass(kw_only=True, repr=False)  # Result.__repr__ stays
class DLAResult(Result):
    """Direct logit attribution, with every component's per-prompt direct effect.

    Attributes:
        per_prompt: the per-prompt values behind `values` (same axes, a leading ``prompt``).
        components: ``[prompt, component]`` direct effect of every component; they sum to
            `total` whatever axis `values` is over.
        total: ``[prompt]`` the model's actual logit difference (or the token's logit).
        component_labels: the name of each component (``embed``, ``L3H5``, ``L3 MLP`` ...).
    """

    per_prompt: Float[Tensor, "prompt ..."] | None = None
    components: Float[Tensor, "prompt component"] | None = None
    total: Float[Tensor, " prompt"] | None = None
    component_labels: list[str] = field(default_factory=list)

    kind: ClassVar[str] = "dla"

    @checked
    def check_sum_to_total(self, rtol: float | None = None) -> float:
        """Largest relative error between summed components and the actual logit difference.

        Args:
            rtol: allowed relative error; default by the model's dtype recorded in the metadata:
                1e-4 in float32/float64, 1e-2 in float16, 5e-2 in bfloat16 (the organism
                measures 1.0e-3 and 8.4e-3 in the two low-precision dtypes).
        """
        if self.components is None or self.total is None:
            raise InterpError(
                "This result has no per-component values to check; compute it with "
                "interp.attribution.direct_logit."
            )
        if rtol is None:
            rtol = SUM_RTOL.get(str(self.meta.get("model_dtype", "float32")), 1e-4)
        comps, total = self.components.double(), self.total.double()
        err = float(((comps.sum(-1) - total).abs() / total.abs().clamp_min(1.0)).max())
        if err > rtol:
            raise InterpError(
                f"Components do not sum to the total: relative error {err:.2e} > rtol {rtol:g}."
            )
        return err

    def plot(self, **kw: Any) -> Any:
        from interp.viz.attribution import dla_figure

        return dla_figure(self, **kw)


class HeadScores(Result):
    """A score per head (detectors): layer x head."""

    kind: ClassVar[str] = "head_scores"
    rank_by: ClassVar[RankBy] = "desc"

    def plot(self, **kw: Any) -> Any:
        from interp.viz.attribution import head_scores_figure

        return head_scores_figure(self, **kw)


@dataclass(kw_only=True, repr=False)  # Result.__repr__ stays
class AblationResult(Result):
    """Change in the task metric when heads are ablated (ablated - clean).

    Attributes:
        per_prompt: the per-prompt changes behind `values` (same axes, a leading ``prompt``).
        clean_metric: ``[prompt]`` the metric of the unablated run.
        clean_metric_mean: its mean over prompts.
    """

    per_prompt: Float[Tensor, "prompt ..."] | None = None
    clean_metric: Float[Tensor, " prompt"] | None = None
    clean_metric_mean: float | None = None

    kind: ClassVar[str] = "ablation"
    rank_by: ClassVar[RankBy] = "asc"  # the most harmful ablations first

    def plot(self, **kw: Any) -> Any:
        from interp.viz.attribution import ablation_figure

        return ablation_figure(self, **kw)


@dataclass(kw_only=True, repr=False)  # Result.__repr__ stays
class LogitLensResult(Result):
    """Per layer and position readouts of the residual stream decoded with the final norm.

    ``values`` has dims ``(metric, layer, pos)`` averaged over prompts.

    Attributes:
        top_ids: ``[layer, pos, k]`` the top-k token ids of the shown prompt.
        top_probs: ``[layer, pos, k]`` their probabilities.
        top_tokens: ``[layer][pos][k]`` their strings.
        final_layer_max_abs_logprob_error: how far the last row is from the model's own
            log-probabilities (the lens's exactness check; about 1e-6 in float32).
    """

    top_ids: Int[Tensor, "layer pos k"] | None = None
    top_probs: Float[Tensor, "layer pos k"] | None = None
    top_tokens: list[list[list[str]]] = field(default_factory=list)
    final_layer_max_abs_logprob_error: float | None = None

    kind: ClassVar[str] = "logit_lens"
    show_top: ClassVar[bool] = False  # a metric x layer x position table ranks nothing useful

    def plot(self, metric: str | None = None, **kw: Any) -> Any:
        from interp.viz.attribution import logit_lens_figure

        return logit_lens_figure(self, metric, **kw)


@dataclass(kw_only=True, repr=False)  # Result.__repr__ stays
class AttentionResult(Result):
    """Attention probabilities of chosen heads on one prompt: dims (head, query, key).

    Attributes:
        tokens: the prompt's token strings (what the circuitsvis view shows).
    """

    tokens: list[str] = field(default_factory=list)

    kind: ClassVar[str] = "attention"
    show_top: ClassVar[bool] = False  # single attention probabilities rank nothing useful

    def plot(self, **kw: Any) -> Any:
        from interp.viz.attribution import attention_figure

        return attention_figure(self, **kw)

    def circuitsvis_html(self, include_js: bool = True) -> str:
        """Interactive circuitsvis view, fully offline."""
        from interp.viz.attention import attention_result_html

        return attention_result_html(self, include_js=include_js)


def __getattr__(name: str) -> Any:
    # `head_grid` moved to interp.viz.figures; importing it here lazily keeps this module free
    # of any module-level import of interp.viz.
    if name == "head_grid":
        from interp.deprecation import warn_renamed
        from interp.viz.figures import head_grid

        warn_renamed(
            "interp.results.attribution.head_grid", "interp.viz.figures.head_grid", "interp"
        )
        return head_grid
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
