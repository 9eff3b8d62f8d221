"""SAE latents through sae-lens: train, load, attach, and use latents as units of analysis.

sae = interp.sae.load("data/organism/saes/L2_resid_post", model=model)
with model.with_saes([sae]):                      # outputs unchanged, latents hooked
    ...
interp.sae.direct_logit(model, task, sae)         # DLA of every latent
interp.sae.attribution_patch(model, task, sae, verify_top_k=10)
interp.sae.activation_patch(model, task, sae, sets=[[3, 17]])
"""

from interp.analyses.attribution import latent_direct_logit as direct_logit
from interp.analyses.patching import atp_latents as attribution_patch
from interp.analyses.patching import patch_latents as activation_patch
from interp.analyses.sae.features import LatentFeatures, features
from interp.analyses.sae.latent_cache import LatentCache, cache_latents, load_latents
from interp.analyses.sae.load import load, shipped_saes
from interp.analyses.sae.probing import decoder_cosine, sparse_probe
from interp.analyses.sae.quality import measure
from interp.analyses.sae.steering import direction
from interp.analyses.sae.train import save, train
from interp.latents import decoder_directions
from interp.models.saes import Attached, attached_saes, check_fits, latent_hook, site_of

__all__ = [
    "Attached",
    "LatentCache",
    "LatentFeatures",
    "activation_patch",
    "attached_saes",
    "attribution_patch",
    "cache_latents",
    "check_fits",
    "decoder_cosine",
    "decoder_directions",
    "direct_logit",
    "direction",
    "features",
    "latent_hook",
    "load",
    "load_latents",
    "measure",
    "save",
    "shipped_saes",
    "site_of",
    "sparse_probe",
    "train",
]
