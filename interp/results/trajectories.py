"""Trajectory results: ROC-AUC of each signal against correctness, and the evidence behind it.

``values`` is ``[signal, metric]`` with metrics ``auroc`` (oriented: > 0.5 means the signal
predicts right answers in its expected direction), ``null_auroc`` (the same with shuffled labels)
and ``projection_auroc`` (the change signals on a random low-dimensional projection; NaN for
the other signals), each with a 95% bootstrap interval. The evidence is in declared fields:
``table`` (one row per trace), ``selection`` and ``acceptance`` (one row per method), ``paths``
(``[layer, trace, chunk, 2]`` PCA coordinates, NaN-padded) and ``layer_auroc``
(``[change signal, layer, (value, low, high)]``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import pandas as pd
import torch
from jaxtyping import Float
from torch import Tensor

from interp.deprecation import warn_renamed
from interp.results.base import RankBy, Result

if TYPE_CHECKING:
    import plotly.graph_objects as go

METRICS = ("auroc", "null_auroc", "projection_auroc")
CHANGE_SIGNALS = ("net_change", "cumulative_change", "aligned_change")
# The table's columns that are not signals, and their types (the rest are float64 signals).
TRACE_COLUMNS = {"prompt": "int64", "sample": "int64", "correct": "bool", "n_tokens": "int64"}


class _CallableTable(pd.DataFrame):
    """A table field that can still be called like the method it replaced, for one release:
    ``res.selection()`` warns and returns a copy of ``res.selection``."""

    field_name: ClassVar[str] = ""

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        # Anything derived from the table (round, set_index ...) is a plain DataFrame.
        return pd.DataFrame

    def __call__(self) -> pd.DataFrame:
        name = self.field_name
        warn_renamed(f"{name}()", f".{name} (a DataFrame field)", "TrajectoryResult")
        return pd.DataFrame(self).copy()


class _Selection(_CallableTable):
    field_name = "selection"


class _Acceptance(_CallableTable):
    field_name = "acceptance"


def _empty_layers() -> Tensor:
    return torch.zeros(len(CHANGE_SIGNALS), 0, 3, dtype=torch.float64)


@dataclass(kw_only=True, repr=False)
class TrajectoryResult(Result):
    """ROC-AUC per signal (``values``) and the evidence for its views.

    Attributes:
        table: one row per trace: ``prompt``, ``sample``, ``correct``, ``n_tokens``, every
            signal (float64, NaN where undefined), ``answer`` and the early signals.
        selection: best-of-n selection per method (majority vote, each signal, early
            signals): ``method``, ``prompts``, ``accuracy``, ``tokens_per_prompt``.
        acceptance: sequential acceptance on the test prompts per method: ``method``,
            ``accuracy``, ``tokens_per_prompt``, ``accepted``, ``threshold``,
            ``calibration_accuracy``.
        paths: each trace's chunk means in the top-two-PC plane of each layer, NaN-padded.
        layer_auroc: ROC-AUC of each change signal at each layer alone, with its interval.
        path_explained: per layer, the chunk variance the two PCs of `paths` explain.
        orientation: per signal, +1 if higher means right, -1 if lower.
        calibration_prompts: the prompts that calibrated the acceptance thresholds.
        fraction_right: the fraction of traces with a right answer.
    """

    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    selection: pd.DataFrame = field(default_factory=pd.DataFrame)
    acceptance: pd.DataFrame = field(default_factory=pd.DataFrame)
    paths: Float[Tensor, "layer trace chunk 2"] = field(
        default_factory=lambda: torch.zeros(0, 0, 0, 2)
    )
    layer_auroc: Float[Tensor, "signal layer 3"] = field(default_factory=_empty_layers)
    path_explained: list[list[float]] = field(default_factory=list)
    orientation: dict[str, int] = field(default_factory=dict)
    calibration_prompts: list[int] = field(default_factory=list)
    fraction_right: float = math.nan

    kind: ClassVar[str] = "trajectories"
    rank_by: ClassVar[RankBy] = "desc"
    #: The signals along the first axis of `layer_auroc`.
    layer_signals: ClassVar[tuple[str, ...]] = CHANGE_SIGNALS
    #: Views show the whole signal table, not a top-k list.
    show_top: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        # Until `res.selection()` / `res.acceptance()` (the old methods) are gone.
        self.selection = _Selection(self.selection)
        self.acceptance = _Acceptance(self.acceptance)

    @classmethod
    def from_legacy(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Saves before declared fields kept the tables as float tensors in `extras` with their
        column names (and the method column) in `meta`."""
        extras = dict(kwargs.get("extras") or {})
        meta = dict(kwargs.get("meta") or {})
        if "table" not in kwargs and "table_columns" in meta:
            df = pd.DataFrame(extras.pop("table").numpy(), columns=meta.pop("table_columns"))
            kwargs["table"] = df.astype(TRACE_COLUMNS)
        for name in ("selection", "acceptance"):
            if name not in kwargs and f"{name}_columns" in meta:
                df = pd.DataFrame(extras.pop(name).numpy(), columns=meta.pop(f"{name}_columns"))
                df.insert(0, "method", pd.Series(meta.pop(f"{name}_methods"), dtype="str"))
                kwargs[name] = df.astype({"prompts": "int64"}) if "prompts" in df else df
        meta.pop("show_top", None)
        kwargs["extras"], kwargs["meta"] = extras, meta
        return super().from_legacy(kwargs)

    # ------------------------------------------------------------- tables
    def traces(self) -> pd.DataFrame:
        """Deprecated: the per-trace table is the field ``table``."""
        warn_renamed("traces()", ".table", "TrajectoryResult")
        return self.table.copy()

    def auroc(self) -> pd.DataFrame:
        """One row per signal: each metric with its interval, wide."""
        df = self.to_dataframe()
        wide = df.pivot(index="signal", columns="metric", values=["value", "ci_low", "ci_high"])
        out = pd.DataFrame({"signal": self.coords["signal"]})
        for m in METRICS:
            out[m] = wide[("value", m)].reindex(out["signal"]).to_numpy()
            out[f"{m}_low"] = wide[("ci_low", m)].reindex(out["signal"]).to_numpy()
            out[f"{m}_high"] = wide[("ci_high", m)].reindex(out["signal"]).to_numpy()
        return out

    # ------------------------------------------------------------- views
    def plot(self, **kw: Any) -> go.Figure:
        """ROC-AUC per signal with its interval beside the two nulls; chance at 0.5."""
        from interp.viz.trajectories import auroc_bars

        return auroc_bars(self, **kw)

    def plot_layers(self) -> go.Figure:
        """ROC-AUC of each change signal computed at each layer alone, with bands."""
        from interp.viz.trajectories import layer_lines

        return layer_lines(self)

    def plot_roc(self, signals: Sequence[str] | None = None) -> go.Figure:
        """ROC curves of the chosen signals (oriented), with the diagonal."""
        from interp.viz.trajectories import roc_curves

        return roc_curves(self, signals)

    def plot_distributions(self, signals: Sequence[str] | None = None) -> go.Figure:
        """Each signal's values for right and wrong answers, one panel per signal."""
        from interp.viz.trajectories import distributions

        return distributions(self, signals)

    def plot_trajectories(self, layer: int = -1, max_traces: int = 200) -> go.Figure:
        """Each trace's path in the top-two-PC plane of one layer, coloured by correctness."""
        from interp.viz.trajectories import paths

        return paths(self, layer, max_traces)

    def plot_tokens(self) -> go.Figure:
        """Accuracy against tokens spent: selection and sequential acceptance per method."""
        from interp.viz.trajectories import tokens_spent

        return tokens_spent(self)
