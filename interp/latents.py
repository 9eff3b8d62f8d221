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

    Read through sae-lens's own decode, so what it folds in (decoder-norm rescaling, a constant
    activation scale, hook_z's reshape, flattened here) is included; decode must be affine in
    the latents, which is checked. Input-dependent normalisations (``layer_norm``,
    ``constant_norm_rescale``) have no fixed direction and are refused.
    """
    norm = str(getattr(sae.cfg, "normalize_activations", "none"))
    if norm in ("layer_norm", "constant_norm_rescale"):
        raise InterpError(
            f"This SAE normalises each input ({norm!r}), so a latent's write depends on the "
            "activation it reads: it has no single decoder direction."
        )
    d_sae = int(sae.cfg.d_sae)
    param = next(sae.parameters())
    dev, dtype = param.device, param.dtype
    # hook_z SAEs reshape their output to [head, d_head] once they have seen an input: decode
    # flat here (the reshape is a view, so the directions are the same numbers).
    reshaping = getattr(sae.cfg, "reshape_activations", "none") == "hook_z"
    if reshaping:
        sae.turn_off_forward_pass_hook_z_reshaping()
    try:
        zero = sae.decode(torch.zeros(1, d_sae, device=dev, dtype=dtype)).flatten(1).float()
        rows = []
        for start in range(0, d_sae, CHUNK):
            n = min(CHUNK, d_sae - start)
            unit = torch.zeros(n, d_sae, device=dev, dtype=dtype)
            unit[torch.arange(n), torch.arange(start, start + n)] = 1.0  # rows of the identity
            rows.append(sae.decode(unit).flatten(1).float() - zero)
        dirs = torch.cat(rows)
        gen = torch.Generator(dev).manual_seed(0)
        probe = torch.rand(2, d_sae, device=dev, generator=gen)
        affine = probe @ dirs + zero
        actual = sae.decode(probe.to(dtype)).flatten(1).float()
    finally:
        if reshaping:
            sae.turn_on_forward_pass_hook_z_reshaping()
    tol = 1e-4 if dtype == torch.float32 else 2e-2
    if not torch.allclose(affine, actual, rtol=tol, atol=tol * (1 + float(actual.abs().max()))):
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
