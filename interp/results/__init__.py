"""Result types. Importing this package registers every type with `load_result`."""

from interp.results.attribution import (
    AblationResult,
    AttentionResult,
    DLAResult,
    HeadScores,
    LogitLensResult,
)
from interp.results.base import Result
from interp.results.io import load_result
from interp.results.latents import LatentProbeResult
from interp.results.patching import AtPResult, PatchResult, PathPatchResult
from interp.results.probes import ProbeResult
from interp.results.residual import ResidualNorms
from interp.results.sae import LatentFeatures
from interp.results.steering import GenerationsResult, ScorecardResult, SteeringResult
from interp.results.trajectories import TrajectoryResult
from interp.stats import bootstrap_mean

__all__ = [
    "AblationResult",
    "AtPResult",
    "AttentionResult",
    "DLAResult",
    "GenerationsResult",
    "HeadScores",
    "LatentFeatures",
    "LatentProbeResult",
    "LogitLensResult",
    "PatchResult",
    "PathPatchResult",
    "ProbeResult",
    "ResidualNorms",
    "Result",
    "ScorecardResult",
    "SteeringResult",
    "TrajectoryResult",
    "bootstrap_mean",
    "load_result",
]
