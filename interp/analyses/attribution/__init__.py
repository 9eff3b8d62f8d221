"""Head attribution: direct logit attribution, logit lens, head ablations, head detectors."""

from interp.analyses.attribution.ablation import ablate
from interp.analyses.attribution.attention import attention_patterns
from interp.analyses.attribution.decompose import Decomposition, decompose
from interp.analyses.attribution.detectors import (
    KINDS,
    detect_heads,
    detector_pattern,
    target_pattern,
)
from interp.analyses.attribution.dla import assert_sum_to_total, direct_logit, sum_to_total
from interp.analyses.attribution.latents import direct_logit as latent_direct_logit
from interp.analyses.attribution.logit_lens import logit_lens

__all__ = [
    "KINDS",
    "Decomposition",
    "ablate",
    "assert_sum_to_total",
    "attention_patterns",
    "decompose",
    "detect_heads",
    "detector_pattern",
    "direct_logit",
    "latent_direct_logit",
    "logit_lens",
    "sum_to_total",
    "target_pattern",
]
