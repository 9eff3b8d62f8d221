"""Linear probes per layer and per head: logistic, mass-mean, ridge and CCS, with controls."""

from interp.analyses.probes.ccs import CCSProbe, KMeansBaseline, PCABaseline
from interp.analyses.probes.linear import LogisticProbe, MassMeanProbe, RidgeProbe
from interp.analyses.probes.sweep import sweep
from interp.results.probes import Direction, ProbeResult

__all__ = [
    "CCSProbe",
    "Direction",
    "KMeansBaseline",
    "LogisticProbe",
    "MassMeanProbe",
    "PCABaseline",
    "ProbeResult",
    "RidgeProbe",
    "sweep",
]
