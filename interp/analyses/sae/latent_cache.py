"""Latent activations over a dataset, stored sparse when that is smaller.

SAE latents are mostly zero (a TopK SAE with k=16 of 1536 latents is 1% dense), so they are
kept as compressed sparse rows over tokens (column index + value per active latent: 8 bytes
against 4 per latent dense) unless the measured density makes dense smaller. In memory, or
saved to one safetensors file (written whole or not at all) and read back exactly.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.sae.data import Data, rows_from
from interp.checks import checked
from interp.errors import InterpError
from interp.files import atomic_save_tensors, check_readable
from interp.models import Model, load_model
from interp.models.hooks import layer_of
from interp.models.saes import ensure_attached, latent_hook

if TYPE_CHECKING:
    from sae_lens import SAE

FORMAT = "interp-latents-1"
# Sparse costs an int32 column and a float32 value per active latent: smaller below 50%.
SPARSE_BELOW = 0.5


@dataclass
class LatentCache:
    """Latent activations ``[row, pos, latent]`` of one SAE over token rows.

    Attributes:
        site: the hook the SAE reads; latents are ``<site>.hook_sae_acts_post``.
        tokens: ``[row, pos]`` the token rows; mask: ``[row, pos]`` content tokens.
        d_sae: latents per token.
        crow, col, val: compressed sparse rows over the flattened ``row*pos`` tokens (sparse);
        dense_acts: ``[row, pos, latent]`` (dense). Exactly one of the two is set.
    """

    site: str
    tokens: Int[Tensor, "row pos"]
    mask: Bool[Tensor, "row pos"]
    d_sae: int
    crow: Tensor | None = None
    col: Tensor | None = None
    val: Tensor | None = None
    dense_acts: Tensor | None = None

    @property
    def sparse(self) -> bool:
        return self.crow is not None

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def shape(self) -> tuple[int, int, int]:
        return (len(self), int(self.tokens.shape[1]), self.d_sae)

    @property
    def nbytes(self) -> int:
        parts = [self.crow, self.col, self.val, self.dense_acts]
        return sum(p.numel() * p.element_size() for p in parts if p is not None)

    @property
    def density(self) -> float:
        """Fraction of (token, latent) entries that are nonzero, over every token."""
        total = len(self) * self.tokens.shape[1] * self.d_sae
        nnz = int(self.col.numel()) if self.sparse else int((self.dense_acts != 0).sum())  # type: ignore
        return nnz / max(1, total)

    def __getitem__(self, rows: int | slice) -> Float[Tensor, "... pos latent"]:
        """Dense activations of some rows."""
        if not self.sparse:
            assert self.dense_acts is not None
            return self.dense_acts[rows]
        if isinstance(rows, int):
            return self._rows_dense([range(len(self))[rows]])[0]
        return self._rows_dense(list(range(len(self))[rows]))

    def _rows_dense(self, rows: list[int]) -> Tensor:
        assert self.crow is not None and self.col is not None and self.val is not None
        seq = int(self.tokens.shape[1])
        out = torch.zeros(len(rows), seq, self.d_sae, dtype=self.val.dtype)
        flat = out.view(-1, self.d_sae)
        for j, r in enumerate(rows):
            a, b = int(self.crow[r * seq]), int(self.crow[(r + 1) * seq])
            entry = torch.arange(a, b)
            tok = torch.searchsorted(self.crow, entry, right=True) - 1 - r * seq + j * seq
            flat[tok, self.col[a:b].long()] = self.val[a:b]
        return out

    def dense(self) -> Float[Tensor, "row pos latent"]:
        """Every activation as one dense tensor."""
        return self[:]

    def latent(self, i: int) -> Float[Tensor, "row pos"]:
        """One latent's activation at every token."""
        if not 0 <= i < self.d_sae:
            raise InterpError(f"Latent {i} does not exist: this SAE has 0..{self.d_sae - 1}.")
        if not self.sparse:
            assert self.dense_acts is not None
            return self.dense_acts[..., i]
        assert self.crow is not None and self.col is not None and self.val is not None
        hit = (self.col == i).nonzero()[:, 0]
        tok = torch.searchsorted(self.crow, hit, right=True) - 1
        out = torch.zeros(self.tokens.numel(), dtype=self.val.dtype)
        out[tok] = self.val[hit]
        return out.reshape(self.tokens.shape)

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike[str]) -> Path:
        """One safetensors file (atomic); `load_latents` reads it back exactly."""
        target = Path(path)
        tensors = {"tokens": self.tokens, "mask": self.mask.to(torch.uint8)}
        if self.sparse:
            assert self.crow is not None and self.col is not None and self.val is not None
            tensors |= {"crow": self.crow, "col": self.col, "val": self.val}
        else:
            assert self.dense_acts is not None
            tensors["dense"] = self.dense_acts
        head = {"format": FORMAT, "site": self.site, "d_sae": self.d_sae}
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(target, tensors, {"interp": json.dumps(head)})
        return target


def load_latents(path: str | os.PathLike[str]) -> LatentCache:
    """A `LatentCache` saved by `LatentCache.save` / ``cache_latents(store=...)``."""
    from safetensors import safe_open

    file = Path(path)
    check_readable(file, "latent cache", "give the file cache_latents(store=...) wrote")
    with safe_open(str(file), "pt") as f:
        head = json.loads((f.metadata() or {}).get("interp", "{}"))
        if head.get("format") != FORMAT:
            raise InterpError(f"{file} is not a latent cache written by interp.sae.cache_latents.")
        t = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no iterator
    return LatentCache(
        site=head["site"], tokens=t["tokens"], mask=t["mask"].bool(), d_sae=int(head["d_sae"]),
        crow=t.get("crow"), col=t.get("col"), val=t.get("val"), dense_acts=t.get("dense"),
    )  # fmt: skip


@torch.inference_mode()
@checked
def cache_latents(
    model: Model,
    data: Data,
    sae: SAE,
    batch_size: int = 32,
    store: str | os.PathLike[str] | None = None,
    layout: Literal["auto", "sparse", "dense"] = "auto",
    progress: bool = True,
) -> LatentCache:
    """Latent activations of `sae` at every token of `data` (a Task, token rows or texts).

    layout: ``"auto"`` keeps sparse rows when they are smaller than dense (density below 50%),
        else dense; or force either.
    store: a file to save the cache to (written whole at the end, or not at all).
    """
    model = load_model(model)
    if store is not None and Path(store).is_dir():
        raise InterpError(f"store={store!r} is a directory: give a file path (e.g. latents.st).")
    rows = rows_from(model, data, exclude_special=True)
    tokens, mask = rows.tokens, rows.mask
    crows, cols, vals, denses = [], [], [], []
    nnz = 0
    with ensure_attached(model, sae) as site:
        name = latent_hook(site)
        # Nothing after the SAE's block is read: stop there (HookedTransformer backend).
        layer = layer_of(site)
        stop = {"stop_at_layer": layer + 1} if layer is not None else {}
        starts = range(0, len(tokens), batch_size)
        for start in tqdm(starts, desc="caching latents", disable=not progress, leave=False):
            batch = tokens[start : start + batch_size].to(model.device)
            _, cache = model.run_with_cache(batch, names_filter=[name], **stop)
            f = cache[name].detach().cpu().float()
            flat = f.reshape(-1, f.shape[-1])
            if layout == "dense":
                denses.append(f)
                continue
            hit = flat.nonzero()
            counts = torch.bincount(hit[:, 0], minlength=len(flat))
            crows.append(counts.cumsum(0) + nnz)
            cols.append(hit[:, 1].to(torch.int32))
            vals.append(flat[hit[:, 0], hit[:, 1]])
            nnz += len(hit)
    d_sae = int(sae.cfg.d_sae)
    out = LatentCache(site=site, tokens=tokens, mask=mask, d_sae=d_sae)
    if layout == "dense":
        out.dense_acts = torch.cat(denses)
    else:
        out.crow = torch.cat([torch.zeros(1, dtype=torch.long), *crows])
        out.col, out.val = torch.cat(cols), torch.cat(vals)
        if layout == "auto" and out.density >= SPARSE_BELOW:
            out = LatentCache(site=site, tokens=tokens, mask=mask, d_sae=d_sae,
                              dense_acts=out.dense())  # fmt: skip
    if store is not None:
        out.save(store)
    return out
