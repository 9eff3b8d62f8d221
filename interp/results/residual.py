"""Result type for residual-stream norms (the cache summary shown by the demo)."""

from __future__ import annotations

from typing import Any, ClassVar

from interp.results.base import RankBy, Result


class ResidualNorms(Result):
    """Mean L2 norm of ``resid_post`` per layer and position, with bootstrap intervals.

    Everything it holds is in the base fields (``values``, ``ci_low``, ``ci_high``, coordinates);
    ``meta['params']['n_examples']`` records how many cached examples were averaged.
    """

    kind: ClassVar[str] = "residual_norms"
    rank_by: ClassVar[RankBy] = "desc"

    def plot(self, **kw: Any) -> Any:
        from interp.viz.attribution import residual_norms_figure

        return residual_norms_figure(self, **kw)
