"""Direct logit attribution of SAE latents (METHODS.md section 11).

A latent's write to the residual stream is ``f_i(x) * d_i``, with ``d_i`` its decoder direction;
its direct effect is that write through the final norm's cached scale and the answer direction,
as for heads. The latents, the decoder bias and the error term add up to the direct effect of
the whole activation at the SAE's site (``check_sum_to_total`` checks it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from jaxtyping import Float
from torch import Tensor

from interp.analyses.attribution.decompose import answer_directions
from interp.analyses.attribution.summary import averaged
from interp.checks import checked
from interp.errors import InterpError
from interp.latents import decoder_directions, latent_labels
from interp.models import Model, load_model
from interp.models.saes import ensure_attached, latent_hook
from interp.results.attribution import DLAResult
from interp.results.base import Coord
from interp.results.meta import make_meta
from interp.tasks.task import Task

if TYPE_CHECKING:
    from sae_lens import SAE


def _writes_residual(model: Model, site: str) -> None:
    from interp.activations.names import short_form

    if short_form(site) not in ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"):
        raise InterpError(
            f"Latent DLA needs an SAE on the residual stream or a block's output (resid_*, "
            f"attn_out, mlp_out); this one reads {site}, whose decoder directions do not live "
            "in the residual stream."
        )


@torch.inference_mode()
@checked
def direct_logit(
    model: Model,
    task: Task,
    sae: SAE,
    token: str | int | None = None,
    batch_size: int = 32,
    n_boot: int = 1000,
    seed: int = 0,
) -> DLAResult:
    """Direct logit attribution of every latent of `sae` at each prompt's answer position.

    Returns a `DLAResult` over ``latent``; ``components`` holds every latent plus the decoder
    bias and the error term, which sum to ``total``: the direct effect of the SAE's whole
    input activation (so ``check_sum_to_total()`` is the exactness check).
    """
    model = load_model(model)
    model.require("Latent DLA", "logits", "hooked")
    with ensure_attached(model, sae) as site:
        _writes_residual(model, site)
        w_ln, _, centre = model.final_norm_params()
        u_all, _, direction = answer_directions(model, task, token)
        if w_ln is not None:
            u_all = u_all * w_ln
        dirs = decoder_directions(sae).to(u_all.dtype)  # [latent, d_model]
        bias = sae.decode(torch.zeros(1, int(sae.cfg.d_sae), device=dirs.device))[0]
        bias = bias.to(u_all.dtype)
        if centre:  # LayerNorm subtracts the mean: only the centred part reaches the logits
            dirs = dirs - dirs.mean(-1, keepdim=True)
            bias = bias - bias.mean()
        acts_name, err_name = latent_hook(site), f"{site}.hook_sae_error"
        scale_hook = model.final_scale_hook
        names = {site, acts_name, err_name} | ({scale_hook} if scale_hook else set())
        per, extra, totals = [], [], []
        for start in range(0, len(task), batch_size):
            sub = task[start : start + batch_size]
            rows = torch.arange(len(sub))
            pos = sub.answer_pos.to(model.device)
            _, cache = model.run_with_cache(
                sub.clean_tokens.to(model.device), names_filter=lambda n: n in names
            )
            u = u_all[start : start + len(sub)]
            scale = (
                cache[scale_hook][rows, pos].reshape(-1, 1)
                if scale_hook
                else torch.ones(len(sub), 1, device=model.device)
            )
            f = cache[acts_name][rows, pos].to(u.dtype)  # [b, latent]
            per.append(f * (u @ dirs.T) / scale)
            error = cache[err_name][rows, pos].to(u.dtype)
            if centre:
                error = error - error.mean(-1, keepdim=True)
            x = cache[site][rows, pos].to(u.dtype)
            x = x - x.mean(-1, keepdim=True) if centre else x
            extra.append(torch.stack([(u * bias).sum(-1), (u * error).sum(-1)], 1) / scale)
            totals.append((u * x).sum(-1) / scale[:, 0])
    per_prompt = _finite(torch.cat(per).float().cpu())
    d_sae = per_prompt.shape[1]
    return averaged(
        DLAResult,
        per_prompt,
        n_boot,
        seed,
        dims=("latent",),
        coords={"latent": list[Coord](range(d_sae))},
        labels={"latent": latent_labels(site, d_sae)},
        components=torch.cat([per_prompt, torch.cat(extra).float().cpu()], 1),
        total=torch.cat(totals).float().cpu(),
        component_labels=[*latent_labels(site, d_sae), "decoder bias", "SAE error"],
        meta=make_meta(
            model=model,
            task=task,
            metric=direction,
            params={"over": "latents", "sae": site, "token": token, "n_boot": n_boot},
            seed=seed,
            value_label=f"direct effect on {direction}",
            description=(
                f"Direct logit attribution of the SAE latents at {site}: each latent's write "
                "f_i(x) W_dec[i] at the answer position, through the final norm's cached "
                f"scale, projected on the {direction} direction; mean over prompts with 95% "
                "bootstrap intervals."
            ),
        ),
        title=f"Direct logit attribution by latent ({site})",
    )


def _finite(x: Float[Tensor, "prompt latent"]) -> Tensor:
    if not torch.isfinite(x).all():
        raise InterpError("Latent DLA produced non-finite values: check the SAE's weights.")
    return x
