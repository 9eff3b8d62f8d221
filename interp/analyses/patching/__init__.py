"""Causal mediation: exact activation patching, attribution patching (AtP, AtP*), path patching."""

from interp.analyses.patching.agreement import agreement
from interp.analyses.patching.atp import attribution_patch
from interp.analyses.patching.exact import activation_patch
from interp.analyses.patching.nodes import TARGETS, Node
from interp.analyses.patching.path import path_patch
from interp.analyses.patching.runs import GaussianNoise
from interp.stats import spearman

__all__ = [
    "TARGETS",
    "GaussianNoise",
    "Node",
    "activation_patch",
    "agreement",
    "attribution_patch",
    "path_patch",
    "spearman",
]
