"""`direct_logit`: which heads, layers, MLPs and positions write the answer directly.

`token` names a single token whose logit is attributed (default: the task's answer pair, correct
minus incorrect); `over` names the unit axis, as in every analysis that has one.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from interp.analyses.attribution.decompose import Decomposition, decompose
from interp.analyses.attribution.heads import head_axis
from interp.analyses.attribution.summary import averaged
from interp.checks import checked
from interp.deprecation import renamed
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.results.attribution import SUM_RTOL, DLAResult
from interp.results.base import Coord
from interp.results.meta import make_meta
from interp.tasks.task import Task

Over = Literal["heads", "layers", "components", "positions", "latents"]
#: The spellings before `over=` (one release, with a DeprecationWarning).
_BY = {"head": "heads", "layer": "layers", "component": "components", "position": "positions"}


@renamed(by=("over", _BY))
@checked
def direct_logit(
    model: Model,
    task: Task,
    over: Over = "heads",
    token: str | int | None = None,
    batch_size: int = 32,
    n_boot: int = 1000,
    seed: int = 0,
    sae: Any = None,
) -> DLAResult:
    """Direct logit attribution (METHODS.md section 1), averaged over prompts with bootstrap CIs.

    Args:
        model: the model (a HookedTransformer-backed handle with an LM head; LayerNorm,
            RMSNorm or no normalisation, grouped-query attention or not). A model without an
            LM head is refused before any forward pass.
        task: prompts and answers; the readout is each prompt's answer position. Token-id
            tasks (``Task.from_tokens``) work on models without a tokenizer; positions are then
            labelled ``#id``.
        over: the unit axis: ``"heads"`` (layer x head grid), ``"layers"`` (attention vs MLP
            per layer), ``"components"`` (every term: embeddings, each head, attention biases,
            MLPs, unembedding bias; these sum to the logit difference), or ``"positions"``
            (layer x head x source position: each head's effect split by the token it attends
            to; prompts must share one length). Formerly ``by="head"`` etc. (deprecated).
        token: None for the task's logit difference (correct - incorrect); a single token (string
            or id) to attribute that token's logit instead.
        batch_size: prompts per forward pass.
        n_boot: bootstrap resamples for the intervals.
        seed: bootstrap seed.
        sae: the sae-lens SAE whose latents ``over="latents"`` attributes.

    The result keeps every component's per-prompt value, so ``res.check_sum_to_total()`` works
    whatever ``over`` is.
    """
    model = load_model(model)
    if over == "latents" or sae is not None:
        if over != "latents" or sae is None:
            raise InterpError("Latent DLA needs both over='latents' and sae= (an sae-lens SAE).")
        from interp.analyses.attribution.latents import direct_logit as latent_dla

        return latent_dla(model, task, sae, token, batch_size, n_boot, seed)
    if over == "positions" and int(task.answer_pos.min()) != int(task.answer_pos.max()):
        raise InterpError(
            "over='positions' needs prompts of one length so positions line up; build the task "
            "from a single template (e.g. interp.tasks.ioi(model, templates=[0]))."
        )
    dec = decompose(model, task, token=token, batch_size=batch_size, by_source=over == "positions")
    L, H = model.n_layers, model.n_heads
    heads_idx = [i for i, k in enumerate(dec.kinds) if k == "head"]
    coords: dict[str, list[Coord]]
    labels: dict[str, list[str]] = {}
    if over == "heads":
        per_prompt = dec.values[:, heads_idx].reshape(-1, L, H)
        dims: tuple[str, ...] = ("layer", "head")
        coords = {"layer": list(range(L)), "head": list(range(H))}
    elif over == "layers":
        # Attention = its heads plus its output bias; MLP = the MLP output.
        kinds = {"attn": ("head", "attn_bias"), "mlp": ("mlp",)}
        cols = {
            name: [
                [
                    i
                    for i, (k, lay) in enumerate(zip(dec.kinds, dec.layers, strict=True))
                    if lay == layer and k in allowed
                ]
                for layer in range(L)
            ]
            for name, allowed in kinds.items()
        }
        attn = torch.stack([dec.values[:, c].sum(-1) for c in cols["attn"]], dim=1)
        mlp = torch.stack([dec.values[:, c].sum(-1) for c in cols["mlp"]], dim=1)
        per_prompt = torch.stack([attn, mlp], dim=2)
        dims = ("layer", "component")
        coords = {"layer": list(range(L)), "component": ["attn", "mlp"]}
    elif over == "components":
        per_prompt = dec.values
        dims = ("component",)
        coords = {"component": list(dec.labels)}
    else:
        assert dec.by_source is not None
        per_prompt = dec.by_source
        dims = ("layer", "head", "pos")
        n_pos = per_prompt.shape[-1]
        coords = {"layer": list(range(L)), "head": list(range(H)), "pos": list(range(n_pos))}
        toks = model.to_str_tokens(task.clean_tokens[0])
        labels["pos"] = [f"{i}: {t}" for i, t in enumerate(toks[:n_pos])]
    if "head" in dims:
        labels["head"] = head_axis(H)
    direction = "logit difference" if token is None else f"logit of {token!r}"
    return averaged(
        DLAResult,
        per_prompt,
        n_boot,
        seed,
        dims=dims,
        coords=coords,
        labels=labels,
        components=dec.values,
        total=dec.total,
        component_labels=dec.labels,
        meta=make_meta(
            model=model,
            task=task,
            metric=direction,
            params={"over": over, "token": token, "n_boot": n_boot},
            seed=seed,
            value_label=f"direct effect on {direction}",
            description=(
                f"Direct logit attribution: each component's output at the answer position, "
                f"through the final norm's cached scale, projected on the {direction} "
                "direction; mean over prompts with 95% bootstrap intervals."
            ),
        ),
        title=f"Direct logit attribution by {over.removesuffix('s')}",
    )


def sum_to_total(model: Model, task: Task, token: str | int | None = None) -> dict[str, float]:
    """How exactly the direct effects add up to the model's actual logit difference.

    Returns the largest absolute and relative (to ``max(1, |actual|)``) error over prompts.
    """
    dec: Decomposition = decompose(load_model(model), task, token=token)
    diff = (dec.values.double().sum(-1) - dec.total.double()).abs()
    return {"max_abs_error": float(diff.max()), "max_rel_error": float(dec.sum_error().max())}


@checked
def assert_sum_to_total(
    model: Model, task: Task, token: str | int | None = None, rtol: float | None = None
) -> dict[str, float]:
    """Raise InterpError unless the components reproduce the logit difference to `rtol`
    (default by the model's dtype, as `DLAResult.check_sum_to_total`)."""
    model = load_model(model)
    if rtol is None:
        rtol = SUM_RTOL.get(str(model.dtype).removeprefix("torch."), 1e-4)
    err = sum_to_total(model, task, token)
    if err["max_rel_error"] > rtol:
        raise InterpError(
            f"Direct logit attribution does not add up on {getattr(model, 'name', model)}: "
            f"relative error {err['max_rel_error']:.2e} > {rtol:.0e}."
        )
    return err
