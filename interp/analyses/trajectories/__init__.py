"""Latent-trajectory signals: sample answers with their hidden-state trajectories, compute net,
cumulative and aligned change (and the effective-rank family), and score them against
correctness next to confidence and null baselines (METHODS.md section 8)."""

from interp.analyses.trajectories.evaluate import (
    auroc_table,
    selection,
    signals,
    trace_table,
)
from interp.analyses.trajectories.sampling import Trace, sample
from interp.analyses.trajectories.signals import (
    change_signals,
    chunk_means,
    confidence,
    cross_layer_change,
    effective_rank,
    rank_dynamics,
)
from interp.analyses.trajectories.texts import text_signals, text_states

__all__ = [
    "Trace",
    "auroc_table",
    "change_signals",
    "chunk_means",
    "confidence",
    "cross_layer_change",
    "effective_rank",
    "rank_dynamics",
    "sample",
    "selection",
    "signals",
    "text_signals",
    "text_states",
    "trace_table",
]
