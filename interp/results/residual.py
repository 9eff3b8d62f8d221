"""Result type for residual-stream norms (the cache summary shown by the demo)."""

from __future__ import annotations

from typing import Any, ClassVar

from interp.results.base import RankBy, Result
from interp.viz.figures import heatmap


class ResidualNorms(Result):
    """Mean L2 norm of ``resid_post`` per layer and position, with bootstrap intervals."""

    kind: ClassVar[str] = "residual_norms"
    rank_by: ClassVar[RankBy] = "desc"

    def plot(self, **kw: Any) -> Any:
        return heatmap(
            self.values,
            [self.label("pos", i) for i in range(self.values.shape[1])],
            [self.label("layer", i) for i in range(self.values.shape[0])],
            title=kw.pop("title", self.title),
            xlabel="position",
            ylabel="layer",
            value_label="mean ||resid_post||",
            signed=False,
            **kw,
        )
