"""Feature views of SAE latents (`interp.sae.features`): statistics, examples, histograms and
output tokens per latent.

``values`` is ``[latent, metric]`` (`METRICS`): ``density`` (fraction of content tokens where the
latent is > 0), ``mean_active`` (mean activation where active; NaN if never active), ``max``
(over content tokens), ``top_boosted_logit`` and ``top_suppressed_logit`` (the largest and the
smallest logit per unit of activation; NaN where the SAE does not write the residual stream).
Token ids are kept with their strings (`token_ids` / `token_text`), so a loaded result shows
itself without the model. Drawing is `interp.viz.sae`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import torch
from torch import Tensor

from interp.checks import checked, one_of
from interp.errors import InterpError
from interp.results.base import RankBy, Result

if TYPE_CHECKING:
    import plotly.graph_objects as go

METRICS = ("density", "mean_active", "max", "top_boosted_logit", "top_suppressed_logit")
#: Output tokens per latent shown in `table` (all are kept in the fields).
TABLE_TOKENS = 5


@checked
@dataclass(kw_only=True, repr=False)  # keep Result.__repr__
class LatentFeatures(Result):
    """What each SAE latent responds to and writes.

    Attributes:
        site: the hook the SAE reads (``blocks.2.hook_resid_post``).
        d_sae: the SAE's number of latents (``coords["latent"]`` are the ones described).
        n_rows, n_tokens: data rows read, and the content tokens among them.
        hist_counts: ``[latent, bin]`` counts of active values; bin ``j`` is
            ``[j * w, (j + 1) * w)`` with ``w`` the latent's `hist_width`.
        hist_width: ``[latent]`` bin width (a power of two; 0 for a latent never active).
        example_value: ``[latent, example]`` the top activations, largest first (NaN: fewer
            active positions than examples).
        example_row, example_pos: ``[latent, example]`` where each is (data row, position; -1:
            none).
        example_acts: ``[latent, example, seq]`` the latent on every token of the example's row
            (NaN where a token is not content: BOS, EOS, padding).
        rows: ``[row, seq]`` token ids of the data rows the examples come from (-1 past a row's
            end); row_index: ``[row]`` their numbers in the data.
        boosted, suppressed: ``[latent, token]`` ids of the output tokens with the largest and
            the smallest logit per unit of activation; boosted_logits, suppressed_logits: those
            logits. None where the SAE does not write the residual stream.
        token_ids, token_text: every token id above (sorted) and its string.
    """

    kind: ClassVar[str] = "sae_features"
    rank_by: ClassVar[RankBy] = "desc"
    # The cells mix metrics (densities beside activations): a ranking of cells means nothing;
    # `table(sort_by=...)` ranks latents.
    show_top: ClassVar[bool] = False

    site: str = ""
    d_sae: int = 0
    n_rows: int = 0
    n_tokens: int = 0
    hist_counts: Tensor | None = None
    hist_width: Tensor | None = None
    example_value: Tensor | None = None
    example_row: Tensor | None = None
    example_pos: Tensor | None = None
    example_acts: Tensor | None = None
    rows: Tensor | None = None
    row_index: Tensor | None = None
    boosted: Tensor | None = None
    boosted_logits: Tensor | None = None
    suppressed: Tensor | None = None
    suppressed_logits: Tensor | None = None
    token_ids: Tensor | None = None
    token_text: list[str] = field(default_factory=list)

    # ------------------------------------------------------------- access
    @property
    def latents(self) -> list[int]:
        return [int(i) for i in self.coords["latent"]]

    def index(self, latent: int) -> int:
        """The position of latent `latent` (an SAE index) on this result's latent axis."""
        try:
            return self.latents.index(int(latent))
        except ValueError:
            shown = ", ".join(map(str, self.latents[:10])) + (
                " ..." if len(self.latents) > 10 else ""
            )
            raise InterpError(
                f"Latent {latent} is not in this result (it describes latents {shown})."
            ) from None

    def metric(self, name: str) -> Tensor:
        """``[latent]`` values of one metric."""
        one_of("metric", name, METRICS, "LatentFeatures.metric")
        return self.sel(metric=name)

    def token(self, token_id: int) -> str:
        """The string of a token id this result holds."""
        if self.token_ids is None:
            raise InterpError("This result holds no token strings.")
        at = int(torch.searchsorted(self.token_ids, torch.tensor(int(token_id))))
        if at >= len(self.token_ids) or int(self.token_ids[at]) != int(token_id):
            raise InterpError(f"Token id {token_id} is not in this result.")
        return self.token_text[at]

    def examples(self, latent: int) -> list[dict[str, Any]]:
        """The latent's top-activating examples, largest first: ``row``, ``pos``, ``value``,
        ``tokens`` (the row's strings) and ``acts`` (the latent on each token; NaN: not
        content)."""
        i = self.index(latent)
        if self.example_row is None or self.rows is None or self.row_index is None:
            return []
        assert self.example_pos is not None and self.example_value is not None
        assert self.example_acts is not None
        out = []
        for j, row in enumerate(self.example_row[i].tolist()):
            if row < 0:
                continue
            slot = int(torch.searchsorted(self.row_index, torch.tensor(row)))
            ids = [t for t in self.rows[slot].tolist() if t >= 0]
            out.append(
                {
                    "row": row,
                    "pos": int(self.example_pos[i, j]),
                    "value": float(self.example_value[i, j]),
                    "tokens": [self.token(t) for t in ids],
                    "acts": self.example_acts[i, j, : len(ids)].tolist(),
                }
            )
        return out

    def output_tokens(self, latent: int, which: str = "boosted") -> list[tuple[str, float]]:
        """(token, logit per unit of activation) of the latent's boosted or suppressed tokens;
        empty where the SAE does not write the residual stream."""
        one_of("which", which, ("boosted", "suppressed"), "LatentFeatures.output_tokens")
        ids, logits = getattr(self, which), getattr(self, f"{which}_logits")
        if ids is None or logits is None:
            return []
        i = self.index(latent)
        return [
            (self.token(t), float(v))
            for t, v in zip(ids[i].tolist(), logits[i].tolist(), strict=True)
        ]

    def histogram(self, latent: int) -> tuple[Tensor, Tensor]:
        """(bin edges ``[bin + 1]``, counts ``[bin]``) of the latent's active values."""
        if self.hist_counts is None or self.hist_width is None:
            raise InterpError("This result holds no histograms.")
        i = self.index(latent)
        bins = self.hist_counts.shape[1]
        edges = torch.arange(bins + 1, dtype=torch.float64) * self.hist_width[i].double()
        return edges, self.hist_counts[i]

    def table(self, sort_by: str = "density", ascending: bool | None = None) -> pd.DataFrame:
        """One row per latent: ``latent``, ``label``, the metrics, and the top boosted and
        suppressed tokens as text; sorted by any column (numbers largest first, text A-Z,
        unless `ascending` says otherwise; NaN last)."""
        metrics = [str(m) for m in self.coords["metric"]]
        columns = ["latent", "label", *metrics, "top_boosted", "top_suppressed"]
        one_of("sort_by", sort_by, columns, "LatentFeatures.table")
        data: dict[str, Any] = {
            "latent": self.latents,
            "label": [self.label("latent", i) for i in range(len(self.latents))],
        }
        values = self.values.double().T.tolist()  # vectorised: tables can have 100k latents
        data.update(zip(metrics, values, strict=True))
        known = [] if self.token_ids is None else self.token_ids.tolist()
        text = dict(zip(known, self.token_text, strict=True))
        for which in ("boosted", "suppressed"):
            ids = getattr(self, which)
            data[f"top_{which}"] = (
                [" ".join(repr(text[t]) for t in r[:TABLE_TOKENS]) for r in ids.tolist()]
                if ids is not None
                else [""] * len(self.latents)
            )
        df = pd.DataFrame(data, columns=columns)
        up = df[sort_by].dtype == object if ascending is None else ascending
        return df.sort_values(sort_by, ascending=up, kind="stable", na_position="last").reset_index(
            drop=True
        )

    @checked
    def ranked(self, k: int = 20, sort_by: str = "density") -> list[int]:
        """The `k` first latents of `table(sort_by)`."""
        return [int(i) for i in self.table(sort_by)["latent"].head(k)]

    # ------------------------------------------------------------- views
    def plot(self, **kw: Any) -> go.Figure:
        """Every latent as a point: density (log) against max activation."""
        from interp.viz.sae import overview_figure

        return overview_figure(self, **kw)

    def plot_histogram(self, latent: int | None = None, **kw: Any) -> go.Figure:
        """The histogram of one latent's active values (default: the densest)."""
        from interp.viz.sae import histogram_figure

        return histogram_figure(self, latent, **kw)

    def latent_html(self, latent: int) -> str:
        """One latent as HTML: statistics, top examples shaded by activation, histogram and
        output tokens (escaped, offline: no script)."""
        from interp.viz.sae import latent_html

        return latent_html(self, latent)

    def page_html(self, latents: list[int] | None = None, sort_by: str = "density") -> str:
        """A standalone HTML page: the latent table and a section per latent (default: the 20
        first by `sort_by`)."""
        from interp.viz.sae import page_html

        return page_html(self, latents, sort_by)

    def _repr_html_(self) -> str:
        from interp.viz.sae import notebook_html

        return notebook_html(self, super()._repr_html_())
