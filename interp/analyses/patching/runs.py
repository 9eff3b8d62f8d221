"""The clean and corrupted runs that patching moves activations between.

Two corruptions (METHODS.md section 3): the task's own corrupted prompts (symmetric token
replacement, preferred) and Gaussian noise added to the token embeddings of chosen positions
(3 x the embedding standard deviation by default, as in ROME's causal tracing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Bool
from torch import Tensor

from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model
from interp.tasks.task import Task

Hook = tuple[str, Callable[..., Tensor]]


@checked
@dataclass(frozen=True)
class GaussianNoise:
    """Corrupt by adding ``N(0, (scale * std(W_E))^2)`` to the token embeddings at `positions`.

    Attributes:
        positions: positions to noise (the same for every prompt), or a boolean mask
            ``[batch, seq]``.
        scale: noise standard deviation in units of the embedding matrix's standard deviation.
        seed: the noise is drawn once per call with this seed, so runs are reproducible.
    """

    positions: Sequence[int] | Bool[Tensor, "batch seq"]
    scale: float = 3.0
    seed: int = 0

    def mask(self, task: Task) -> Tensor:
        b, t = task.clean_tokens.shape
        if isinstance(self.positions, Tensor):
            m = self.positions.bool()
            if m.shape != (b, t):
                raise InterpError(
                    f"GaussianNoise mask must have the task's shape [{b}, {t}], "
                    f"got {tuple(m.shape)}."
                )
            return m
        pos = list(self.positions)
        if not pos or any(not 0 <= p < t for p in pos):
            raise InterpError(f"GaussianNoise positions must be in 0..{t - 1}, got {pos}.")
        m = torch.zeros(b, t, dtype=torch.bool)
        m[:, pos] = True
        return m

    def hook(self, model: Model, task: Task) -> Hook:
        embed = model.hook_name("embed")
        if not model.has_hook(embed):
            raise InterpError(f"{model.name} has no {embed} to add embedding noise to.")
        if self.scale <= 0:
            raise InterpError(f"GaussianNoise scale must be positive, got {self.scale}.")
        w_e = model.W_E.detach()
        gen = torch.Generator().manual_seed(self.seed)
        std = float(w_e.float().std()) * self.scale
        noise = torch.randn(*task.clean_tokens.shape, model.d_model, generator=gen) * std
        noise = (noise * self.mask(task)[..., None]).to(w_e.device, w_e.dtype)

        def add_noise(embed: Tensor, hook: object) -> Tensor:
            # Patched runs stack several copies of the batch: noise each copy identically.
            return embed + noise.repeat(embed.shape[0] // noise.shape[0], 1, 1)

        return (embed, add_noise)


Corruption = Literal["task"] | GaussianNoise


@dataclass
class Input:
    """Tokens plus the hooks that make the run (noise hooks for the Gaussian corruption)."""

    tokens: Tensor
    hooks: list[Hook]


def inputs(model: Model, task: Task, corruption: Corruption) -> tuple[Input, Input]:
    """(clean, corrupted) inputs. Clean and corrupted prompts must have equal token lengths."""
    clean = Input(task.clean_tokens.to(model.device), [])
    if isinstance(corruption, GaussianNoise):
        return clean, Input(clean.tokens, [corruption.hook(model, task)])
    if corruption != "task":
        raise InterpError(
            f"corruption={corruption!r}: use 'task' (the task's corrupted prompts) or "
            "interp.patching.GaussianNoise(positions=[...])."
        )
    if task.corrupt_tokens is None:
        raise InterpError(
            f"Task {task.name!r} has no corrupted prompts: build it with corrupt=..., or use "
            "corruption=interp.patching.GaussianNoise(positions=[...])."
        )
    if task.corrupt_tokens.shape != task.clean_tokens.shape:
        raise InterpError(
            "Clean and corrupted prompts have different token lengths "
            f"({tuple(task.clean_tokens.shape)} vs {tuple(task.corrupt_tokens.shape)}); "
            "patching needs them position-aligned."
        )
    return clean, Input(task.corrupt_tokens.to(model.device), [])


def run_cache(
    model: Model, inp: Input, names: Iterable[str], seq_len: int
) -> tuple[dict[str, Tensor], Tensor]:
    """One unpatched run of `inp` (its first `seq_len` positions), keeping the activations at
    hooks `names`; returns them and the logits."""
    store: dict[str, Tensor] = {}

    def keep(act: Tensor, hook: Any) -> None:
        store[hook.name] = act.detach()

    with torch.inference_mode(), model.hooks([*inp.hooks, *((n, keep) for n in sorted(names))]):
        logits: Tensor = model(inp.tokens[:, :seq_len])
    return store, logits
