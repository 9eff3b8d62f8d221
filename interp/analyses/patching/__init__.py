"""Causal mediation: exact activation patching, attribution patching (AtP, AtP*), path patching.

Every analysis here runs a `Contrast` (clean vs corrupted prompts, mode ``"denoise"`` or
``"noise"``) and returns scores normalised by it.
"""

from interp.analyses.patching.agreement import agreement
from interp.analyses.patching.atp import attribution_patch
from interp.analyses.patching.contrast import Contrast
from interp.analyses.patching.exact import activation_patch
from interp.analyses.patching.latents import activation_patch as patch_latents
from interp.analyses.patching.latents import attribution_patch as atp_latents
from interp.analyses.patching.nodes import TARGETS, Node
from interp.analyses.patching.path import path_patch
from interp.analyses.patching.runs import GaussianNoise
from interp.results.patching import Mode
from interp.stats import spearman

__all__ = [
    "TARGETS",
    "Contrast",
    "GaussianNoise",
    "Mode",
    "Node",
    "activation_patch",
    "agreement",
    "atp_latents",
    "attribution_patch",
    "patch_latents",
    "path_patch",
    "spearman",
]
