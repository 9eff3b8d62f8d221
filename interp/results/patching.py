"""Result types of causal mediation: exact activation patching, attribution patching, path patching.

``values`` are normalised scores (METHODS.md section 3): denoising ``(M_patched - M_corrupt) /
(M_clean - M_corrupt)`` (1 = full recovery), noising ``(M_patched - M_clean) / (M_clean -
M_corrupt)`` (-1 = fully destroyed). `PatchResult.patched` keeps the raw metric per prompt and
component, `PatchResult.clean` / `PatchResult.corrupt` the unpatched runs'. Figures are drawn by
`interp.viz.patching`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pandas as pd
import torch
from torch import Tensor

from interp.checks import checked
from interp.deprecation import warn_renamed
from interp.errors import InterpError
from interp.nodes import Node
from interp.results.base import Result

#: A contrast's mode: ``denoise`` (run corrupted, patch clean in) or ``noise`` (the reverse).
Mode = Literal["denoise", "noise"]


@checked
@dataclass(kw_only=True, repr=False)  # keep Result.__repr__ (a dataclass writes its own)
class PatchResult(Result):
    """Exact activation patching: a normalised score per component (or per node set).

    Attributes:
        mode: ``"denoise"`` or ``"noise"`` (was ``meta["direction"]``).
        patched: the metric of every patched run, ``[prompt, *dims]``.
        clean, corrupt: the unpatched clean and corrupted runs' metric, ``[prompt]``.
    """

    kind: ClassVar[str] = "patch"
    legacy_names: ClassVar[dict[str, str]] = {"direction": "mode"}
    #: Old ``meta`` keys now derived from the fields (properties): dropped when an old save loads.
    derived_meta: ClassVar[tuple[str, ...]] = (
        "value_label",
        "clean_metric_mean",
        "corrupt_metric_mean",
    )

    mode: Mode = "denoise"
    patched: Tensor | None = None
    clean: Tensor | None = None
    corrupt: Tensor | None = None

    @classmethod
    def from_legacy(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = super().from_legacy(kwargs)
        kwargs["meta"] = {k: v for k, v in kwargs["meta"].items() if k not in cls.derived_meta}
        return kwargs

    @property
    def raw(self) -> Tensor:
        """Mean raw metric of each patched run (the number TransformerLens' patching returns)."""
        if self.patched is None:
            raise InterpError("This result keeps no patched runs (patched is None).")
        return self.patched.double().mean(0).float()

    @property
    def clean_metric_mean(self) -> float:
        """Mean metric of the unpatched clean run."""
        return float(_required(self.clean, "clean").mean())

    @property
    def corrupt_metric_mean(self) -> float:
        """Mean metric of the unpatched corrupted run."""
        return float(_required(self.corrupt, "corrupt").mean())

    @property
    def value_label(self) -> str:
        """What the scores are, for axes and colour bars: ``denoise score (logit_diff)``."""
        metric = self.meta.get("metric")
        return f"{self.mode} score ({metric})" if metric else f"{self.mode} score"

    @property
    def direction(self) -> Mode:
        """Deprecated name of `mode`."""
        warn_renamed(".direction", ".mode", type(self).__name__)
        return self.mode

    def plot(self, **kw: Any) -> Any:
        from interp.viz.patching import patch_figure

        return patch_figure(self, **kw)


def _required(t: Tensor | None, name: str) -> Tensor:
    if t is None:
        raise InterpError(f"This result keeps no {name} run metrics ({name} is None).")
    return t


@checked
@dataclass(kw_only=True, repr=False)
class AtPResult(PatchResult):
    """Attribution patching estimates, in the same normalised units as exact patching.

    Attributes:
        graddrop: AtP*'s GradDrop score (``star=True``): the mean over layers of the absolute
            estimate with that layer's gradient path cut; ranks components with the estimate.
        verified: exact scores of the top-ranked components (``verify_top_k``), NaN elsewhere.
        exact: exact scores of every component, after `interp.patching.agreement`.
        agreement: Spearman and top-k recall against exact patching, after `agreement`.
    """

    kind: ClassVar[str] = "atp"
    #: ``meta["verified"]`` listed the verified components: `verified_table` derives it.
    derived_meta = (*PatchResult.derived_meta, "verified")
    legacy_names: ClassVar[dict[str, str]] = {
        **PatchResult.legacy_names,
        "meta:verified": "verified_rows",  # extras["verified"] is the `verified` field
    }

    graddrop: Tensor | None = None
    verified: Tensor | None = None
    exact: Tensor | None = None
    agreement: dict[str, Any] | None = None

    # `__getitem__` below only serves agreement()'s old dict return; a result is not iterable.
    __iter__ = None  # type: ignore[assignment]

    @property
    def ranking_score(self) -> Tensor:
        """What AtP ranks components by: |estimate|, or GradDrop's score for AtP*."""
        if self.graddrop is not None:
            return torch.maximum(self.values.abs(), self.graddrop)
        return self.values.abs()

    @property
    def verified_table(self) -> pd.DataFrame:
        """The verified components in AtP's ranking order: their axes, ``atp`` and ``exact``
        (what ``meta["verified"]`` listed before)."""
        if self.verified is None:
            raise InterpError("Nothing was verified: run attribution_patch(verify_top_k=k).")
        df = self.to_dataframe().rename(columns={"value": "atp"})
        df["exact"] = self.verified.detach().double().reshape(-1).numpy()
        order = torch.argsort(self.ranking_score.reshape(-1), descending=True).numpy()
        cols = [c for c in df.columns if c not in ("ci_low", "ci_high")]
        rows = df.iloc[order][cols]
        return rows[rows["exact"].notna()].reset_index(drop=True)

    @property
    def verified_rows(self) -> list[dict[str, Any]] | None:
        """What ``meta["verified"]`` held in earlier releases: per verified component, in
        ranking order, its node (``"z:L3H2"``), ``atp`` and ``exact``; None if nothing was.
        ``exact`` comes from the `verified` field, so in float32 precision (the old list kept
        float64)."""
        if self.verified is None:
            return None
        target = str(self.meta.get("params", {}).get("target", "z"))
        rows = []
        for r in self.verified_table.to_dict("records"):

            def axis(*names: str, r: dict[str, Any] = r) -> int | None:
                return next((int(r[n]) for n in names if n in r), None)

            node = Node(
                target,
                int(r["layer"]),
                axis("head", "kv_head"),
                axis("pos", "dest_pos"),
                axis("src_pos"),
            )
            rows.append({"node": str(node), "atp": float(r["atp"]), "exact": float(r["exact"])})
        return rows

    def scatter(self, exact: Result | None = None, **kw: Any) -> Any:
        """AtP estimate against exact patching, one point per component."""
        from interp.viz.patching import atp_scatter

        return atp_scatter(self, exact, **kw)

    def __getitem__(self, key: str) -> Any:
        """Deprecated: `interp.patching.agreement` returned the agreement dict itself."""
        if self.agreement is None or key not in self.agreement:
            raise KeyError(key)
        warn_renamed(
            f'agreement(...)["{key}"]',
            f'agreement(...).agreement["{key}"]',
            "interp.patching.agreement",
        )
        return self.agreement[key]


@checked
@dataclass(kw_only=True, repr=False)
class PathPatchResult(PatchResult):
    """Path patching: effect of a sender on the receivers through direct paths only."""

    kind: ClassVar[str] = "path_patch"
