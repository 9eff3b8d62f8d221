"""Latents as units: their decoder directions and their labels."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from interp.activations.names import layer_of
from interp.errors import InterpError

if TYPE_CHECKING:
    from sae_lens import SAE

CHUNK = 1024  # latents decoded at a time (a whole identity over 16k latents is 1 GB)


@torch.no_grad()
def decoder_directions(sae: SAE) -> Float[Tensor, "latent d_in"]:
    """Each latent's write per unit activation: ``decode(e_i) - decode(0)``.

    Read through sae-lens's own decode, so whatever it folds in (decoder-norm rescaling,
    activation normalisation, hook_z reshaping) is included; decode must be affine in the
    latents, which is checked.
    """
    d_sae = int(sae.cfg.d_sae)
    dev = next(sae.parameters()).device
    zero = sae.decode(torch.zeros(1, d_sae, device=dev)).flatten(1)
    rows = []
    for start in range(0, d_sae, CHUNK):
        n = min(CHUNK, d_sae - start)
        unit = torch.zeros(n, d_sae, device=dev)
        unit[torch.arange(n), torch.arange(start, start + n)] = 1.0  # rows of the identity only
        rows.append(sae.decode(unit).flatten(1) - zero)
    dirs = torch.cat(rows)
    probe = torch.rand(2, d_sae, device=dev, generator=torch.Generator(dev).manual_seed(0))
    affine = probe @ dirs + zero
    actual = sae.decode(probe).flatten(1)
    if not torch.allclose(affine, actual, rtol=1e-4, atol=1e-4 * (1 + float(actual.abs().max()))):
        raise InterpError(
            "This SAE's decoder is not affine in its latents, so a latent has no single "
            "direction; latent DLA, probes and steering need an affine decoder."
        )
    return dirs


def latent_labels(site: str, n: int) -> list[str]:
    """``L2#17``: the SAE's layer and the latent's index."""
    layer = layer_of(site)
    prefix = f"L{layer}" if layer is not None else site
    return [f"{prefix}#{i}" for i in range(n)]
