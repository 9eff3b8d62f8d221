"""Latent-trajectory signals: sample answers with their hidden-state trajectories, compute net,
cumulative and aligned change (and the effective-rank family), and score them against
correctness next to confidence and null baselines (METHODS.md section 8)."""

from interp.analyses.trajectories.acceptance import sequential_acceptance
from interp.analyses.trajectories.pipeline import evaluate, projected_paths
from interp.analyses.trajectories.sampling import sample
from interp.analyses.trajectories.scoring import (
    auroc_table,
    majority_vote,
    selection,
    signals,
    trace_table,
)
from interp.analyses.trajectories.signals import (
    change_signals,
    chunk_means,
    confidence,
    cross_layer_change,
    effective_rank,
    rank_dynamics,
)
from interp.analyses.trajectories.store import load_traces
from interp.analyses.trajectories.texts import text_signals, text_states
from interp.analyses.trajectories.trace import Trace
from interp.results.trajectories import TrajectoryResult

__all__ = [
    "Trace",
    "TrajectoryResult",
    "auroc_table",
    "change_signals",
    "chunk_means",
    "confidence",
    "cross_layer_change",
    "effective_rank",
    "evaluate",
    "load_traces",
    "majority_vote",
    "projected_paths",
    "rank_dynamics",
    "sample",
    "selection",
    "sequential_acceptance",
    "signals",
    "text_signals",
    "text_states",
    "trace_table",
]
