"""Results of latent analyses that have no other home: sparse probing on SAE latents."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
import torch
from torch import Tensor

from interp.checks import checked
from interp.results.base import RankBy, Result


@dataclass(kw_only=True, repr=False)  # Result.__repr__ stays
class LatentProbeResult(Result):
    """Sparse probing on SAE latents (interp.sae.sparse_probe).

    ``values`` is every latent's held-out ROC-AUC alone (0.5 = chance; below 0.5 reads the
    other class).

    Attributes:
        chosen: the k latents picked on the training split, best first.
        accuracy: the sparse probe's held-out accuracy ``[mean, ci_low, ci_high]``.
        dense_accuracy: a logistic probe on the SAE's whole input, same split.
        cosine: ``[latent]`` decoder cosine with the dense probe's direction.
        best_latent: the latent that separates the classes best on the training split.
        best_reads: the class it is active for there (1, or 0 when it fires for label 0).
    """

    kind: ClassVar[str] = "latent_probe"
    rank_by: ClassVar[RankBy] = "desc"

    chosen: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    dense_accuracy: list[float] = field(default_factory=list)
    cosine: Tensor | None = None
    best_latent: int = 0
    best_reads: int = 1

    @property
    def best_auc(self) -> float:
        """The best latent's held-out ROC-AUC, oriented by the training split (1 is perfect)."""
        auc = float(self.values[self.best_latent])
        return auc if self.best_reads == 1 else 1 - auc

    @checked
    def table(self, k: int = 10) -> pd.DataFrame:
        """The chosen latents and the k best by ROC-AUC: AUC, decoder cosine, chosen or not."""
        sep = (self.values - 0.5).abs()
        best = torch.argsort(sep, descending=True, stable=True)[:k].tolist()
        rows = list(dict.fromkeys([*self.chosen, *best]))
        labels = self.labels.get("latent") or [str(i) for i in range(len(self.values))]
        cos = self.cosine if self.cosine is not None else torch.full_like(self.values, torch.nan)
        return pd.DataFrame(
            {
                "latent": rows,
                "label": [labels[i] for i in rows],
                "roc_auc": [float(self.values[i]) for i in rows],
                "decoder_cosine": [float(cos[i]) for i in rows],
                "chosen": [i in self.chosen for i in rows],
            }
        )

    def plot(self, **kw: Any) -> Any:
        from interp.viz.latents import latent_probe_figure

        return latent_probe_figure(self, **kw)
