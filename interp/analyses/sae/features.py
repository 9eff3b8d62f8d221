"""Feature views of SAE latents: how often each fires, how strongly, on which tokens, and which
output tokens its decoder direction promotes or suppresses.

One streaming pass over the content tokens of the data (``rows_from(...).mask``: never padding,
BOS or EOS). Per latent it keeps running sums, a running top-n of (row, position) examples and a
histogram, so memory grows with latents x top_n x seq, never with the number of rows.

Histogram: `bins` equal-width bins from 0 over a latent's active (> 0) activations. The bin width
is the smallest power of two whose bins hold the latent's max (so the range ends between max and
2 x max): a larger activation arriving later merges pairs of bins, which is exact, and one pass
suffices.

Output tokens: the latent's decoder direction (`decoder_directions`, its exact write per unit of
activation), centred for LayerNorm, times the final norm's weight, through ``W_U``: logits per
unit of activation before the norm's per-position scale (a logit-weight view, as in section 11's
latent DLA without the answer direction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.sae.data import Data, Rows, rows_from
from interp.checks import checked
from interp.errors import InterpError
from interp.latents import decoder_directions, latent_labels
from interp.models import Model, load_model
from interp.models.hooks import layer_of, short_form
from interp.models.saes import ensure_attached, latent_hook
from interp.results.meta import make_meta
from interp.results.sae import METRICS, LatentFeatures
from interp.tasks.task import Task

if TYPE_CHECKING:
    from sae_lens import SAE

N_OUT = 10  # output tokens listed per side
CHUNK = 256  # latents projected on W_U at a time ([chunk, vocab] logits)
# Sites whose decoder directions live in the residual stream (so W_U reads them).
RESIDUAL = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")


def check_latents(latents: Sequence[int] | None, d_sae: int) -> list[int]:
    """The latent indices to describe (every latent for None); a clear error for bad ones."""
    if latents is None:
        return list(range(d_sae))
    if isinstance(latents, int | str) or not isinstance(latents, Sequence | Tensor):
        raise InterpError(f"latents must be a list of latent indices, got {latents!r:.80}.")
    chosen = [int(i) for i in latents]
    if not chosen:
        raise InterpError("latents is empty: give latent indices, or None for every latent.")
    bad = [i for i in chosen if not 0 <= i < d_sae]
    if bad:
        raise InterpError(
            f"Latent {bad[0]} does not exist: this SAE has {d_sae} latents (0 to {d_sae - 1})."
        )
    if len(set(chosen)) != len(chosen):
        raise InterpError(f"latents lists a latent twice: {chosen}.")
    return chosen


@dataclass
class _Running:
    """What one pass keeps per latent: counts, sums, max, histogram and the top-n examples."""

    top_n: int
    count: Tensor  # [latent] active content tokens
    total: Tensor  # [latent] float64 sum of active values
    max: Tensor  # [latent] max over content tokens
    hist: Tensor  # [latent, bin] int64
    exponent: Tensor  # [latent] int64: bin width 2**exponent (where seen)
    seen: Tensor  # [latent] bool: active at least once
    top_value: Tensor  # [example, latent] (-inf: none yet)
    top_row: Tensor  # [example, latent] data row
    top_pos: Tensor  # [example, latent]
    top_acts: Tensor  # [example, latent, seq] the latent over the example's row (NaN: not content)

    @classmethod
    def empty(cls, n: int, top_n: int, bins: int, seq: int, device: torch.device) -> _Running:
        def z(*shape: int, dtype: torch.dtype = torch.long) -> Tensor:
            return torch.zeros(*shape, dtype=dtype, device=device)

        return cls(
            top_n=top_n,
            count=z(n),
            total=z(n, dtype=torch.float64),
            max=torch.full((n,), -torch.inf, device=device),
            hist=z(n, bins),
            exponent=z(n),
            seen=z(n, dtype=torch.bool),
            top_value=torch.full((0, n), -torch.inf, device=device),
            top_row=z(0, n),
            top_pos=z(0, n),
            top_acts=z(0, n, seq, dtype=torch.float32),
        )

    def update(
        self, acts: Float[Tensor, "b seq latent"], mask: Bool[Tensor, "b seq"], first_row: int
    ) -> None:
        content = mask[..., None]
        active = (acts > 0) & content
        self.count += active.sum((0, 1))
        self.total += torch.where(active, acts, 0).double().sum((0, 1))
        self.max = torch.maximum(self.max, torch.where(content, acts, -torch.inf).amax((0, 1)))
        self._histogram(acts, active)
        self._top(acts, mask, first_row)

    def _histogram(self, acts: Tensor, active: Tensor) -> None:
        bins = self.hist.shape[1]
        batch_max = torch.where(active, acts, 0).amax((0, 1)).double()
        fired = batch_max > 0
        need = _exponent(batch_max.clamp(min=torch.finfo(torch.float64).tiny), bins)
        new = torch.where(self.seen, torch.maximum(self.exponent, need), need)
        steps = torch.where(self.seen & fired, new - self.exponent, 0)
        for s in range(int(steps.max()) if len(steps) else 0):
            grow = steps > s
            self.hist[grow] = _merge_pairs(self.hist[grow])
        self.exponent = torch.where(fired, new, self.exponent)
        self.seen |= fired
        where = active.nonzero()
        latent = where[:, 2]
        width = torch.exp2(self.exponent.double())[latent]
        # v / 2**e is exact, and v < 2**e * bins by the choice of e: no clamping is needed.
        index = torch.floor(acts[active].double() / width).long()
        flat = torch.bincount(latent * bins + index, minlength=self.hist.numel())
        self.hist += flat.view_as(self.hist)

    def _top(self, acts: Tensor, mask: Tensor, first_row: int) -> None:
        b, seq, n = acts.shape
        top_n = self.top_n
        flat = torch.where(mask[..., None], acts, -torch.inf).reshape(b * seq, n)
        value, where = flat.topk(min(top_n, b * seq), dim=0)  # [k, latent]
        row, pos = where // seq, where % seq
        over_row = acts.permute(0, 2, 1)[row, torch.arange(n, device=acts.device)]  # [k, n, seq]
        over_row = torch.where(mask[row], over_row, torch.nan)
        values = torch.cat([self.top_value, value])
        keep = values.topk(min(top_n, len(values)), dim=0).indices
        self.top_value = values.gather(0, keep)
        self.top_row = torch.cat([self.top_row, row + first_row]).gather(0, keep)
        self.top_pos = torch.cat([self.top_pos, pos]).gather(0, keep)
        both = torch.cat([self.top_acts, over_row.float()])
        self.top_acts = both.gather(0, keep[..., None].expand(-1, -1, seq))


def _exponent(m: Float[Tensor, " latent"], bins: int) -> Tensor:
    """The smallest e with ``m < 2**e * bins`` (log2 may be one off at a power of two)."""
    e = torch.floor(torch.log2(m / bins)).long() + 1
    e = e + (m >= torch.exp2(e.double()) * bins).long()
    return e - (m < torch.exp2(e.double() - 1) * bins).long()


def _merge_pairs(hist: Tensor) -> Tensor:
    """Counts over bins twice as wide (same number of bins, the upper half empty)."""
    n, bins = hist.shape
    even = torch.nn.functional.pad(hist, (0, bins % 2)).view(n, -1, 2).sum(-1)
    return torch.nn.functional.pad(even, (0, bins - even.shape[1]))


def _scan(
    model: Model,
    rows: Rows,
    site: str,
    chosen: list[int],
    top_n: int,
    bins: int,
    batch_size: int,
    progress: bool,
) -> _Running:
    """One pass over the rows, reading the chosen latents at `site`."""
    hook = latent_hook(site)
    index = torch.tensor(chosen, device=model.device)
    layer = layer_of(site)
    # Nothing after the SAE's block matters here: stop there (no logits over the vocabulary).
    stop = {} if layer is None else {"stop_at_layer": layer + 1}
    seq = rows.tokens.shape[1]
    run = _Running.empty(len(chosen), top_n, bins, seq, model.device)
    mask_all = rows.mask
    starts = range(0, len(rows.tokens), batch_size)
    for start in tqdm(starts, desc="SAE features", disable=not progress, unit="batch"):
        tokens = rows.tokens[start : start + batch_size].to(model.device)
        _, cache = model.run_with_cache(tokens, names_filter=[hook], **stop)
        acts = cache[hook][..., index].float()
        mask = mask_all[start : start + batch_size].to(model.device)
        run.update(acts, mask, start)
    return run


def _output_tokens(
    model: Model, sae: SAE, site: str, chosen: list[int]
) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """(boosted ids, their logits, suppressed ids, their logits), ``[latent, N_OUT]`` each; None
    where the latents do not write the residual stream or the model has no unembedding."""
    if short_form(site) not in RESIDUAL or not model.has_lm_head:
        return None
    w_u = model.W_U.detach().float()  # half-precision logits would misorder close tokens
    w, _, centre = model.final_norm_params()
    dirs = decoder_directions(sae).to(w_u.device, w_u.dtype)[chosen]
    if centre:  # LayerNorm subtracts the mean: only the centred part reaches the logits
        dirs = dirs - dirs.mean(-1, keepdim=True)
    if w is not None:
        dirs = dirs * w.to(w_u.device, w_u.dtype)
    n_out = min(N_OUT, w_u.shape[1])
    parts: list[list[Tensor]] = [[], [], [], []]
    for start in range(0, len(dirs), CHUNK):
        logits = dirs[start : start + CHUNK] @ w_u
        up, down = logits.topk(n_out, -1), logits.topk(n_out, -1, largest=False)
        for part, t in zip(parts, (up.indices, up.values, down.indices, down.values), strict=True):
            part.append(t.cpu())
    up_i, up_v, down_i, down_v = (torch.cat(p) for p in parts)
    return up_i, up_v, down_i, down_v


def _shown_rows(model: Model, rows: Rows, row_numbers: Tensor) -> Tensor:
    """Token ids of the data rows in `row_numbers`, -1 past each row's end (its padding)."""
    out = rows.tokens[row_numbers].clone()
    for i, row in enumerate(out):
        end = len(row)
        while end > 1 and int(row[end - 1]) == model.pad_id:
            end -= 1
        out[i, end:] = -1
    return out


@torch.inference_mode()
@checked
def features(
    model: Model,
    data: Data,
    sae: SAE,
    latents: Sequence[int] | None = None,
    top_n: int = 10,
    batch_size: int = 32,
    bins: int = 40,
    progress: bool = True,
) -> LatentFeatures:
    """What each latent of `sae` responds to and writes, over the content tokens of `data`.

    Args:
        data: a Task (its clean prompts), a list of Tasks, token ids ``[rows, seq]`` or texts.
        latents: which latents (indices); None: every latent.
        top_n: top-activating (row, position) examples kept per latent.
        bins: histogram bins of each latent's active values (see the module docstring).

    Returns a `LatentFeatures`: ``values`` is ``[latent, metric]`` (density, mean_active, max,
    top_boosted_logit, top_suppressed_logit); the examples, histograms and output tokens are
    its fields; ``.table(sort_by=...)``, ``.latent_html(i)`` and ``.plot()`` show them.
    """
    model = load_model(model)
    model.require("SAE latent features", "hooked")
    for name, value in (("top_n", top_n), ("bins", bins)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InterpError(f"features: {name} must be a positive integer, got {value!r}.")
    chosen = check_latents(latents, int(sae.cfg.d_sae))
    rows = rows_from(model, data)
    with ensure_attached(model, sae) as site:
        outputs = _output_tokens(model, sae, site, chosen)
        run = _scan(model, rows, site, chosen, top_n, bins, batch_size, progress)
    return _result(model, data, rows, site, chosen, run, outputs, int(sae.cfg.d_sae))


def _result(
    model: Model,
    data: Data,
    rows: Rows,
    site: str,
    chosen: list[int],
    run: _Running,
    outputs: tuple[Tensor, Tensor, Tensor, Tensor] | None,
    d_sae: int,
) -> LatentFeatures:
    n_tokens = int(rows.mask.sum())
    count = run.count.cpu()
    mean_active = torch.where(count > 0, run.total.cpu() / count.clamp(min=1), torch.nan)
    nan = torch.full((len(chosen),), torch.nan)
    top_up = outputs[1][:, 0] if outputs else nan
    top_down = outputs[3][:, 0] if outputs else nan
    columns = [count.double() / n_tokens, mean_active, run.max.cpu(), top_up, top_down]
    values = torch.stack([c.double() for c in columns], 1).float()
    value = run.top_value.T.cpu()  # [latent, example]
    found = value > 0  # only active positions are examples
    ex_row = torch.where(found, run.top_row.T.cpu(), -1)
    ex_acts = torch.where(found[..., None], run.top_acts.permute(1, 0, 2).cpu(), torch.nan)
    row_index = torch.unique(ex_row[found])
    shown = _shown_rows(model, rows, row_index)
    ids = [shown[shown >= 0]] + ([outputs[0].flatten(), outputs[2].flatten()] if outputs else [])
    token_ids = torch.unique(torch.cat(ids))
    width = torch.where(run.seen.cpu(), torch.exp2(run.exponent.cpu().double()), 0.0)
    labels = latent_labels(site, d_sae)
    return LatentFeatures(
        values=values,
        dims=("latent", "metric"),
        coords={"latent": list(chosen), "metric": list(METRICS)},
        labels={"latent": [labels[i] for i in chosen]},
        site=site,
        d_sae=d_sae,
        n_rows=len(rows.tokens),
        n_tokens=n_tokens,
        hist_counts=run.hist.cpu(),
        hist_width=width,
        example_value=torch.where(found, value, torch.nan),
        example_row=ex_row,
        example_pos=torch.where(found, run.top_pos.T.cpu(), -1),
        example_acts=ex_acts,
        rows=shown,
        row_index=row_index,
        boosted=outputs[0] if outputs else None,
        boosted_logits=outputs[1] if outputs else None,
        suppressed=outputs[2] if outputs else None,
        suppressed_logits=outputs[3] if outputs else None,
        token_ids=token_ids,
        token_text=[model.token_str(int(i)) for i in token_ids],
        meta=make_meta(
            model=model,
            task=data if isinstance(data, Task) else rows.source,
            params={
                "over": "latents",
                "sae": site,
                "top_n": run.top_n,
                "bins": run.hist.shape[1],
                "d_sae": d_sae,
            },
            description=(
                f"SAE latents at {site} over {n_tokens} content tokens ({rows.source}): "
                "density (fraction of tokens where the latent is > 0), mean activation when "
                "active, max, top-activating examples, histogram of active values, and the "
                "output tokens each decoder direction boosts and suppresses (through the final "
                "norm's weight and W_U, per unit of activation)."
            ),
        ),
        title=f"SAE latent features ({site})",
    )
