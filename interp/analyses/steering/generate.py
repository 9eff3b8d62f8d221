"""`generate`: greedy or sampled generation with steering, reusing the key-value cache.

The prompt runs once; each new token runs alone against the cached keys and values, so a
steering hook sees one position per step and `Positions` tracks where that token sits
(``positions="generated"`` steers only new tokens, ITI's protocol; ``"all"`` also the prompt).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.steering.steer import (
    Directions,
    Positions,
    PositionSpec,
    Strengths,
    steering_hooks,
)
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.results.steering import GenerationsResult


def generate(
    model: Model | Any,
    prompts: Sequence[str] | str,
    directions: Directions | None = None,
    alpha: Strengths = 1.0,
    positions: PositionSpec = "all",
    max_new_tokens: int = 24,
    temperature: float = 0.0,
    seed: int = 0,
    stop_at_eos: bool = True,
    progress: bool = False,
) -> list[str]:
    """Continue each prompt, steered by `directions` (None: plain generation).

    Args:
        model: a causal LM with a tokenizer.
        prompts: one prompt or a list; prompts of equal token length run as one batch.
        directions, alpha: as in `steer` (strengths in sigma units).
        positions: ``"all"`` (prompt and generated tokens), ``"generated"`` (new tokens only),
            ``"last"`` (the prompt's last token only), or explicit prompt positions.
        max_new_tokens: tokens to generate per prompt.
        temperature: 0 for greedy decoding; above 0 samples (seeded by `seed`).
        stop_at_eos: stop a continuation at the end-of-text token.

    Returns the continuations (without the prompt), one string per prompt.
    """
    model = load_model(model)
    model.require("Generation", "logits", "causal", "tokenizer")
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not texts:
        raise InterpError("No prompts given: pass a prompt or a list of prompts.")
    if max_new_tokens < 1:
        raise InterpError(f"max_new_tokens must be at least 1, got {max_new_tokens}.")
    if not temperature >= 0:
        raise InterpError(f"temperature must be >= 0, got {temperature}.")
    pos = Positions.parse(positions)
    if isinstance(pos.spec, Tensor):
        raise InterpError("generate takes positions 'all', 'generated', 'last' or a list of ints.")
    encoded = [model.to_tokens(t)[0] for t in texts]
    for t, ids in zip(texts, encoded, strict=True):
        if len(ids) + max_new_tokens > model.n_ctx:
            raise InterpError(
                f"Prompt {t[:40]!r} ({len(ids)} tokens) plus {max_new_tokens} new tokens exceeds "
                f"{model.name}'s context of {model.n_ctx}; shorten it or generate fewer tokens."
            )
        pos.check(len(ids))
    hooks = [] if directions is None else steering_hooks(model, directions, alpha, pos)
    g = torch.Generator().manual_seed(int(seed))
    out: list[str] = [""] * len(texts)
    by_len: dict[int, list[int]] = {}
    for i, ids in enumerate(encoded):
        by_len.setdefault(len(ids), []).append(i)
    bar = tqdm(total=len(texts), desc="generate", disable=not progress, unit="prompt")
    with bar, model.hooks(hooks):
        for length, rows in by_len.items():
            batch = torch.stack([encoded[i] for i in rows]).to(model.device)
            pos.prompt_len = length
            new = _continue(model, batch, pos, max_new_tokens, temperature, g, stop_at_eos)
            for i, ids in zip(rows, new, strict=True):
                out[i] = model.decode(ids)
            bar.update(len(rows))
    return out


@torch.inference_mode()
def _continue(
    model: Model,
    tokens: Int[Tensor, "batch seq"],
    pos: Positions,
    n_new: int,
    temperature: float,
    g: torch.Generator,
    stop_at_eos: bool,
) -> list[Tensor]:
    """New token ids per row (cut at the first end-of-text when `stop_at_eos`)."""
    eos_id = getattr(model.tokenizer, "eos_token_id", None)
    eos = int(eos_id) if stop_at_eos and eos_id is not None else None
    batch, length = tokens.shape
    cached = model.backend == "HookedTransformer"
    kv = model.kv_cache(batch) if cached else None
    done = torch.zeros(batch, dtype=torch.bool, device=tokens.device)
    new: list[Tensor] = []
    seq = tokens
    pos.offset = 0
    logits = model.forward(tokens, past_kv_cache=kv) if cached else model(tokens)
    for step in range(n_new):
        nxt = _pick(logits[:, -1], temperature, g)
        if eos is not None:
            nxt = torch.where(done, torch.full_like(nxt, eos), nxt)
            done |= nxt == eos
        new.append(nxt)
        if step == n_new - 1 or bool(done.all()):
            break
        if cached:
            pos.offset = length + step
            logits = model.forward(nxt[:, None], past_kv_cache=kv)
        else:
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            logits = model(seq)
    ids = torch.stack(new, dim=1).cpu()
    rows = []
    for r in ids:
        if eos is not None and bool((r == eos).any()):
            r = r[: int((r == eos).nonzero()[0])]
        rows.append(r)
    return rows


def _pick(logits: Float[Tensor, "batch vocab"], temperature: float, g: torch.Generator) -> Tensor:
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1).cpu()
    return torch.multinomial(probs, 1, generator=g)[:, 0].to(logits.device)


def compare(
    model: Model | Any,
    prompts: Sequence[str] | str,
    direction: Directions,
    alphas: Sequence[float] = (0.0, 4.0, 8.0),
    positions: PositionSpec = "all",
    max_new_tokens: int = 24,
    temperature: float = 0.0,
    seed: int = 0,
    progress: bool = False,
) -> GenerationsResult:
    """Generations at several strengths side by side (strength 0: unsteered).

    ``values[prompt, alpha]`` is the mean log-probability per token the unsteered model gives
    each continuation: how natural the steered text still reads to the model.
    """
    from interp.analyses.steering.evaluate import check_alphas
    from interp.analyses.steering.steer import as_directions
    from interp.results.meta import make_meta

    model = load_model(model)
    texts = [prompts] if isinstance(prompts, str) else list(prompts)
    dirs = as_directions(direction)
    strengths = check_alphas(alphas)
    columns = [
        generate(
            model, texts, dirs, a, positions, max_new_tokens, temperature, seed, progress=progress
        )
        for a in strengths
    ]
    fluency = torch.tensor(
        [[_mean_logprob(model, p, col[i]) for col in columns] for i, p in enumerate(texts)]
    )
    return GenerationsResult(
        values=fluency,
        dims=("prompt", "alpha"),
        coords={"prompt": [*range(len(texts))], "alpha": [*strengths]},
        prompts=texts,
        texts=[[col[i] for col in columns] for i in range(len(texts))],
        site=", ".join(str(d.site) for d in dirs),
        positions=positions if isinstance(positions, str | int) else [int(p) for p in positions],
        meta=make_meta(
            model,
            None,
            metric="mean log-prob per token (unsteered model)",
            params={
                "alphas": strengths,
                "max_new_tokens": max_new_tokens,
                "temperature": temperature,
                "directions": [d.label for d in dirs],
            },
            seed=seed,
        ),
        title=f"Steered generations ({', '.join(d.label for d in dirs)})",
    )


@torch.inference_mode()
def _mean_logprob(model: Model, prompt: str, continuation: str) -> float:
    p = model.to_tokens(prompt)[0]
    c = torch.tensor(
        model.tokenizer.encode(continuation, add_special_tokens=False), dtype=torch.long
    )
    if len(c) == 0:
        return float("nan")
    ids = torch.cat([p, c.to(p.device)])[None].to(model.device)
    lp = model(ids)[0, len(p) - 1 : -1].float().log_softmax(-1)
    return float(lp.gather(1, c.to(lp.device)[:, None]).mean())
