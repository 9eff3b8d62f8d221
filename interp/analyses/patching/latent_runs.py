"""The runs behind latent patching: the source run's latents, and base runs with some latents
replaced by the source's, several configurations stacked on the batch axis."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.patching.contrast import Contrast
from interp.analyses.patching.readout import Readout, resid_metric
from interp.budget import parse_budget
from interp.models import Model
from interp.models.hooks import layer_of
from interp.models.saes import latent_hook

MAX_ROWS = 512  # rows per stacked forward


class LatentRuns:
    """Base runs with latents set to the source run's values, at every position.

    The SAE must be attached at `site` with its error term, so an unpatched run is the model's
    own and a patched latent changes the residual by exactly its decoder write.
    """

    def __init__(
        self,
        model: Model,
        site: str,
        contrast: Contrast,
        readout: Readout,
        budget: int | str,
        progress: bool,
    ) -> None:
        self.model, self.site, self.contrast, self.readout = model, site, contrast, readout
        self.acts = latent_hook(site)
        self.progress = progress
        self.seq = readout.seq_len
        # Patched runs start at the SAE's block from the base run's residual stream there (the
        # blocks before it cannot change); a corruption's hooks are built for one batch and
        # full runs, so with them every run is whole and alone.
        layer = layer_of(site)
        self.start_layer = layer if layer is not None and not contrast.base.hooks else None
        self.start: Tensor | None = None
        self.source, self.source_metric = self.latents(contrast.source, "the source run")
        # A set whose latents are equal in both runs changes nothing when patched: its runs are
        # the base run's (most latents of a sparse SAE are zero in both).
        self.base, self.base_metric = self.latents(contrast.base, "the base run", keep_start=True)
        b, s, d = self.source.shape
        row_bytes = s * (3 * d + 16 * model.d_model) * torch.finfo(model.dtype).bits // 8
        # Past a few thousand rows per forward the CPU gains nothing and the stack costs memory.
        self.chunk = max(1, min(parse_budget(budget) // max(1, b * row_bytes), MAX_ROWS // b))
        if contrast.base.hooks:
            self.chunk = 1

    def measured(self) -> Contrast:
        """The contrast with the unpatched runs' metrics (from the forwards that read latents)."""
        return self.contrast.measured(base=self.base_metric, source=self.source_metric)

    @torch.inference_mode()
    def latents(self, run: Any, name: str, keep_start: bool = False) -> tuple[Tensor, Tensor]:
        """``[batch, seq, latent]`` latent activations of an unpatched run and its metric (and,
        for the base run, its residual stream entering the SAE's block)."""
        got: dict[str, Tensor] = {}

        def grab(x: Tensor, hook: Any) -> None:
            got[hook.name] = x.detach().clone()

        hooks = [*run.hooks, (self.acts, grab)]
        if keep_start and self.start_layer is not None:
            hooks.append((self.model.hook_name("resid_pre", self.start_layer), grab))
        with self.model.hooks(hooks):
            resid = self.model.forward(run.tokens[:, : self.seq], stop_at_layer=self.model.n_layers)
        if keep_start and self.start_layer is not None:
            self.start = got[self.model.hook_name("resid_pre", self.start_layer)]
        return got[self.acts], resid_metric(self.model, self.readout, resid, name)

    def changed(self, latents: Sequence[int]) -> bool:
        """Whether patching `latents` changes anything (they differ between the runs)."""
        idx = list(latents)
        return not torch.equal(self.source[..., idx], self.base[..., idx])

    @torch.inference_mode()
    def run(self, sets: Sequence[Sequence[int]], desc: str = "latent patching") -> Tensor:
        """Metric per (set, prompt) with each set's latents patched together: ``[set, prompt]``."""
        needed = [i for i, s in enumerate(sets) if self.changed(s)]
        if len(needed) < len(sets):
            unchanged = self._run([[]], desc)[0]
        out = torch.empty(len(sets), self.source.shape[0])
        if needed:
            out[needed] = self._run([sets[i] for i in needed], desc)
        for i in set(range(len(sets))) - set(needed):
            out[i] = unchanged
        return out

    def _run(self, sets: Sequence[Sequence[int]], desc: str) -> Tensor:
        base = self.contrast.base
        tokens = base.tokens[:, : self.seq]
        b, d = tokens.shape[0], self.source.shape[-1]
        out = []
        bar = tqdm(total=len(sets), desc=desc, disable=not self.progress, leave=False)
        for start in range(0, len(sets), self.chunk):
            group = sets[start : start + self.chunk]
            c = len(group)
            mask = torch.zeros(c, d, dtype=torch.bool, device=tokens.device)
            for j, latents in enumerate(group):
                mask[j, list(latents)] = True
            src = self.source

            def patch(
                f: Tensor, hook: Any, mask: Tensor = mask, c: int = c, src: Tensor = src
            ) -> Tensor:
                f4 = f.view(c, b, *f.shape[1:])
                return torch.where(mask[:, None, None, :], src[None], f4).view_as(f)

            with self.model.hooks([*base.hooks, (self.acts, patch)]):
                if self.start is not None:
                    resid = self.model.forward(
                        self.start.repeat(c, 1, 1),
                        start_at_layer=self.start_layer,
                        stop_at_layer=self.model.n_layers,
                    )
                else:
                    resid = self.model.forward(
                        tokens.repeat(c, 1), stop_at_layer=self.model.n_layers
                    )
            for j in range(c):
                chunk = resid[j * b : (j + 1) * b]
                out.append(resid_metric(self.model, self.readout, chunk, "a patched run"))
            bar.update(c)
        bar.close()
        return torch.stack(out).float().cpu()
