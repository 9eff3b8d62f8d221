"""How good an SAE is on some tokens: L0, fraction of variance unexplained, the next-token loss
with the reconstruction spliced in, dead latents (METHODS.md section 11)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from interp.analyses.sae.data import Data, Rows, rows_from
from interp.models import load_model
from interp.models.saes import Attached, site_of

if TYPE_CHECKING:
    from sae_lens import SAE

    from interp.models import Model


def _next_token_loss(
    logits: Float[Tensor, "rows seq vocab"],
    tokens: Int[Tensor, "rows seq"],
    mask: Bool[Tensor, "rows seq"],
) -> tuple[float, int]:
    """Summed cross-entropy of predicting every content token from the position before it."""
    logp = logits[:, :-1].float().log_softmax(-1)
    target = tokens[:, 1:]
    nll = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
    keep = mask[:, 1:]
    return float(nll[keep].double().sum()), int(keep.sum())


@torch.no_grad()
def measure(model: Model, sae: SAE, rows: Rows | Data, batch_size: int = 64) -> dict[str, Any]:
    """L0, FVU, loss plain vs spliced, dead latents over the content tokens of `rows` (a Task,
    token rows or texts; padding, BOS and EOS are left out)."""
    model = load_model(model)
    if not isinstance(rows, Rows):
        rows = rows_from(model, rows)
    site = site_of(sae)
    mask_all = rows.mask
    sq_err = 0.0
    n_tok = 0
    active_sum = 0.0
    fired = torch.zeros(int(sae.cfg.d_sae), dtype=torch.bool)
    sums: Tensor | None = None
    xs_sum: Tensor | None = None
    loss = {"plain": 0.0, "spliced": 0.0}
    n_loss = 0
    batches = [
        (rows.tokens[i : i + batch_size].to(model.device), mask_all[i : i + batch_size])
        for i in range(0, len(rows.tokens), batch_size)
    ]
    # One plain pass: the reconstruction error, and the sums the variance about the mean needs
    # (sum x^2 - n mean^2, in float64).
    for tokens, mask in batches:
        mask = mask.to(model.device)
        logits, cache = model.run_with_cache(tokens, names_filter=[site])
        x = cache[site][mask]
        f = sae.encode(x)
        x_hat = sae.decode(f).to(x.dtype)
        sq_err += float(((x - x_hat).double() ** 2).sum())
        xd = x.flatten(1).double()
        xs_sum = xd.sum(0) if xs_sum is None else xs_sum + xd.sum(0)
        sums = (xd * xd).sum(0) if sums is None else sums + (xd * xd).sum(0)
        n_tok += len(xd)
        active = f.flatten(1) > 0
        active_sum += float(active.sum())
        fired |= active.any(0).cpu()
        total, count = _next_token_loss(logits, tokens, mask)
        loss["plain"] += total
        n_loss += count
    assert xs_sum is not None and sums is not None
    mean = xs_sum / n_tok
    sq_dev = float((sums - n_tok * mean * mean).sum())
    # One spliced pass, the SAE attached once for all batches.
    with Attached(model, [sae], error_term=False):
        for tokens, mask in batches:
            spliced = model(tokens)
            loss["spliced"] += _next_token_loss(spliced, tokens, mask.to(model.device))[0]
    plain, spliced_loss = loss["plain"] / n_loss, loss["spliced"] / n_loss
    dead = int((~fired).sum())
    return {
        "tokens": n_tok,
        "l0": active_sum / n_tok,
        "fvu": sq_err / sq_dev,
        "loss_plain": plain,
        "loss_spliced": spliced_loss,
        "loss_increase": spliced_loss - plain,
        "dead_latents": dead,
        "dead_fraction": dead / int(sae.cfg.d_sae),
    }
