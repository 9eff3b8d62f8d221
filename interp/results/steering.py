"""Steering results: effects of directions over strengths, and the steering-target scorecard.

`SteeringResult.values` is ``[direction, alpha, metric]`` with bootstrap intervals over prompts;
metrics (`METRICS`): ``effect`` (change of the target-minus-other logit difference),
``target_rate`` (prompts preferring the target answer), ``flip_rate`` (prompts whose preferred
answer changed), ``target_prob``, ``task_kl`` (KL from the unsteered next-token distribution at
the answer position), ``kl`` and ``loss_change`` (on neutral text; NaN without it).
`ScorecardResult.values` is ``[unit, source]``: each evidence source's rank of every unit
(1 = strongest), the last source being the merged rank.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pandas as pd
from torch import Tensor

from interp.checks import checked
from interp.errors import InterpError
from interp.results.base import RankBy, Result

if TYPE_CHECKING:
    import plotly.graph_objects as go

METRICS = (
    "effect",
    "target_rate",
    "flip_rate",
    "target_prob",
    "task_kl",
    "kl",
    "loss_change",
)
#: The unit axis of a scorecard: attention heads, or residual streams after each block.
Over = Literal["heads", "layers"]


@checked
@dataclass(kw_only=True, repr=False)
class SteeringResult(Result):
    """Effects of steering directions over strengths, beside random directions.

    Attributes:
        sites: the site of each direction (``resid_post:L3``, ``z:L2H5``).
        sigmas: each direction's sigma (a strength adds ``alpha * sigma`` along it).
        objective: which prompts were steered towards which answer.
        positions: where steering added (``"all"``, ``"last"`` or positions).
        toward: ``"positive"`` or ``"negative"`` (then directions were subtracted).
        baseline: unsteered means: ``logit_diff``, ``target_rate``, ``target_prob``,
            ``loss`` (neutral).
        n_prompts, n_neutral: steered prompts, and neutral texts for side effects.
        random: ``[direction, alpha, seed, metric]`` the same metrics for random directions of
            the same norm at the same site (means over prompts), or None without controls.
        prompt_effects: ``[direction, alpha, prompt]`` each steered prompt's effect.
    """

    kind: ClassVar[str] = "steering"
    rank_by: ClassVar[RankBy] = "desc"
    show_top: ClassVar[bool] = False

    sites: list[str] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)
    objective: str = ""
    positions: str | int | list[int] = "all"
    toward: Literal["positive", "negative"] = "positive"
    baseline: dict[str, float] = field(default_factory=dict)
    n_prompts: int = 0
    n_neutral: int = 0
    random: Tensor | None = None
    prompt_effects: Tensor | None = None

    def metric(self, name: str) -> Tensor:
        """``[direction, alpha]`` values of one metric."""
        return self.sel(metric=name)

    def random_band(self, metric: str = "effect") -> tuple[Tensor, Tensor, Tensor]:
        """(low, mean, high) over random seeds of one metric: ``[direction, alpha]`` each."""
        if self.random is None:
            raise InterpError("This result has no random-direction controls (n_random=0).")
        r = self.random[..., self.coords["metric"].index(metric)]
        return r.min(-1).values, r.mean(-1), r.max(-1).values

    def best(self, metric: str = "effect") -> pd.Series:
        """The (direction, alpha) row with the largest value of `metric`."""
        df = self.table()
        return df.loc[df[metric].idxmax()]

    def table(self) -> pd.DataFrame:
        """One row per (direction, alpha), a column per metric, and the random band of
        ``effect`` (``random_low`` / ``random_high``)."""
        rows = []
        for i, d in enumerate(self.coords["direction"]):
            for j, a in enumerate(self.coords["alpha"]):
                row: dict[str, Any] = {"direction": d, "site": self.sites[i], "alpha": a}
                for k, m in enumerate(self.coords["metric"]):
                    row[str(m)] = float(self.values[i, j, k])
                if self.random is not None:
                    e = self.random[i, j, :, 0]
                    row["random_low"], row["random_high"] = float(e.min()), float(e.max())
                rows.append(row)
        return pd.DataFrame(rows)

    def plot(self, metric: str = "effect", **kw: Any) -> go.Figure:
        """`metric` against strength per direction, with intervals and the random band."""
        from interp.viz.steering import strength_figure

        return strength_figure(self, metric=metric, **kw)

    def plot_frontier(self, **kw: Any) -> go.Figure:
        """Effect against KL (neutral text, else the task's own): the cost of each effect."""
        from interp.viz.steering import frontier_figure

        return frontier_figure(self, **kw)


@checked
@dataclass(kw_only=True, repr=False)
class ScorecardResult(Result):
    """Steering targets ranked by each evidence source, and (after `verify`) by steering.

    Attributes:
        over: ``"heads"`` or ``"layers"``.
        scores: ``[unit, source]`` each source's raw score (larger = stronger evidence).
        sources: what each evidence source is (analysis and settings).
        merge_rule: how the merged rank is formed.
        sites: the steering site of each unit (``z:L2H5``, ``resid_post:L3``).
        vectors: ``[unit, width]`` each unit's unit steering direction (mean difference).
        sigmas: ``[unit]`` each direction's sigma.
        objective: which prompts steering moves, towards which answer.
        verification: after `verify`: one row per steered unit (group, strength, effect with
            interval, KL, effect per unit KL, flip rate).
        correlations: after `verify`: each source's Spearman correlation with the realised
            effect over the steered units.
        verify_summary: after `verify`: strength, mean effect of the top and random units and
            their ratio, the KL they cost.
    """

    kind: ClassVar[str] = "scorecard"
    rank_by: ClassVar[RankBy] = "asc"
    show_top: ClassVar[bool] = False

    over: Over = "heads"
    scores: Tensor | None = None
    sources: dict[str, str] = field(default_factory=dict)
    merge_rule: str = ""
    sites: list[str] = field(default_factory=list)
    vectors: Tensor | None = None
    sigmas: Tensor | None = None
    objective: str = ""
    verification: pd.DataFrame = field(default_factory=pd.DataFrame)
    correlations: dict[str, float] = field(default_factory=dict)
    verify_summary: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        self._context: tuple[Any, Any, Any] | None = None  # (model, task, neutral) of `targets`

    def ranking(self) -> pd.DataFrame:
        """One row per unit, best merged rank first: every source's rank and score."""
        srcs = [str(s) for s in self.coords["source"]]
        rows = []
        for i, unit in enumerate(str(u) for u in self.coords["unit"]):
            row: dict[str, Any] = {"unit": unit, "site": self.sites[i]}
            for k, s in enumerate(srcs):
                row[f"rank_{s}"] = float(self.values[i, k])
                if self.scores is not None and k < self.scores.shape[1]:
                    row[f"score_{s}"] = float(self.scores[i, k])
            rows.append(row)
        return pd.DataFrame(rows).sort_values("rank_merged", kind="stable").reset_index(drop=True)

    @checked
    def top_units(self, k: int = 5) -> list[str]:
        """The `k` units with the best merged rank."""
        return list(self.ranking()["unit"][:k])

    @checked
    def verify(self, k: int = 5, **kw: Any) -> ScorecardResult:
        """Steer the top `k` units and `k` random ones (see `interp.steering.verify`)."""
        from interp.analyses.steering.scorecard import verify

        return verify(self, k=k, **kw)

    def plot(self, **kw: Any) -> go.Figure:
        """The scorecard as a table of ranks (merged rank first)."""
        from interp.viz.steering import scorecard_figure

        return scorecard_figure(self, **kw)

    def plot_verification(self, **kw: Any) -> go.Figure:
        """Each source's rank against the realised effect of the steered units."""
        from interp.viz.steering import verification_figure

        return verification_figure(self, **kw)


@checked
@dataclass(kw_only=True, repr=False)
class GenerationsResult(Result):
    """Steered generations beside the unsteered ones.

    ``values`` is ``[prompt, alpha]``: the mean log-probability per token the unsteered model
    gives each continuation (how natural the steered text still is to the model).

    Attributes:
        prompts: the prompts.
        texts: ``texts[i][j]``: prompt i's continuation at strength j.
        site: the steered site; positions: where steering added.
    """

    kind: ClassVar[str] = "generations"
    show_top: ClassVar[bool] = False

    prompts: list[str] = field(default_factory=list)
    texts: list[list[str]] = field(default_factory=list)
    site: str = ""
    positions: str | int | list[int] = "all"

    def table(self) -> pd.DataFrame:
        """One row per prompt, a column per strength."""
        cols = {
            f"alpha={a:g}": [t[j] for t in self.texts] for j, a in enumerate(self.coords["alpha"])
        }
        return pd.DataFrame({"prompt": self.prompts, **cols})

    def plot(self, **kw: Any) -> go.Figure:
        from interp.viz.steering import generations_figure

        return generations_figure(self, **kw)
