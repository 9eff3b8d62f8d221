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
from interp.models.saes import latent_hook


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
        self.source = self.latents(contrast.source)
        # A set whose latents are equal in both runs changes nothing when patched: its runs are
        # the base run's (most latents of a sparse SAE are zero in both).
        self.base = self.latents(contrast.base)
        b, s, d = self.source.shape
        row_bytes = s * (3 * d + 16 * model.d_model) * torch.finfo(model.dtype).bits // 8
        self.chunk = max(1, parse_budget(budget) // max(1, b * row_bytes))
        if contrast.base.hooks:  # a corruption's hooks are built for one batch
            self.chunk = 1

    @torch.inference_mode()
    def latents(self, run: Any) -> Tensor:
        """``[batch, seq, latent]`` latent activations of an unpatched run."""
        got: list[Tensor] = []

        def grab(f: Tensor, hook: Any) -> None:
            got.append(f.detach().clone())

        with self.model.hooks([*run.hooks, (self.acts, grab)]):
            self.model.forward(run.tokens[:, : self.seq], stop_at_layer=self.model.n_layers)
        return got[0]

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
                resid = self.model.forward(tokens.repeat(c, 1), stop_at_layer=self.model.n_layers)
            for j in range(c):
                chunk = resid[j * b : (j + 1) * b]
                out.append(resid_metric(self.model, self.readout, chunk, "a patched run"))
            bar.update(c)
        bar.close()
        return torch.stack(out).float().cpu()
