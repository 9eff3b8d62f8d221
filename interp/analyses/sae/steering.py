"""A latent's decoder direction as a steering direction (interp.steering.steer takes it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from interp.activations.names import layer_of, short_form
from interp.analyses.sae.data import Data, rows_from
from interp.analyses.steering import SITE_TARGETS, SteeringDirection
from interp.checks import checked
from interp.errors import InterpError
from interp.latents import decoder_directions
from interp.models import Model, load_model
from interp.models.saes import site_of
from interp.nodes import Node

if TYPE_CHECKING:
    from sae_lens import SAE


@torch.inference_mode()
@checked
def direction(
    model: Model, sae: SAE, latent: int, data: Data, batch_size: int = 32
) -> SteeringDirection:
    """Latent `latent`'s decoder direction at the SAE's site, as a `SteeringDirection`.

    ``sigma`` is the standard deviation of the site's activations projected on the unit
    direction over the content tokens of `data` (so ``alpha`` is in the same units as every
    other steering direction); ``class_means`` are the mean projections where the latent is
    active and where it is not.
    """
    model = load_model(model)
    site = site_of(sae)
    target, layer = short_form(site), layer_of(site)
    if target not in SITE_TARGETS or target == "z" or layer is None:
        sites = ", ".join(t for t in SITE_TARGETS if t != "z")
        raise InterpError(
            f"Steering with a latent needs an SAE on {sites} at a layer; this one reads {site}."
        )
    d_sae = int(sae.cfg.d_sae)
    if not 0 <= latent < d_sae:
        raise InterpError(f"Latent {latent} does not exist: this SAE has 0..{d_sae - 1}.")
    raw = decoder_directions(sae)[latent].float().cpu()
    unit = raw / raw.norm()
    rows = rows_from(model, data)
    proj, active = [], []
    for start in range(0, len(rows.tokens), batch_size):
        tokens = rows.tokens[start : start + batch_size].to(model.device)
        mask = rows.mask[start : start + batch_size].to(model.device)
        _, cache = model.run_with_cache(tokens, names_filter=[site])
        x = cache[site][mask].float()
        proj.append(x.cpu() @ unit)
        active.append(sae.encode(x.to(sae.W_enc.dtype))[:, latent].cpu() > 0)
    p, on = torch.cat(proj), torch.cat(active)

    def mean(sel: torch.Tensor) -> float:
        return float(p[sel].mean()) if bool(sel.any()) else float("nan")

    return SteeringDirection(
        vector=unit,
        site=Node(target, int(layer)),
        sigma=float(p.std()) if len(p) > 1 else float(raw.norm()),
        norm=float(raw.norm()),
        class_means=(mean(on), mean(~on)),
        method="sae_latent",
        sign=f"positive strength = more of latent {latent}",
        model=model.name,
        provenance={"sae": site, "latent": latent, "data": rows.source, "tokens": len(p)},
    )
