"""Hidden states and signals of an existing trace (a prompt plus text generated elsewhere).

No generation: the model reads ``prompt + trace`` once and every layer's residual output (the
embedding excluded) is kept at the trace's token positions. The prompt and the trace are
tokenised separately, so the trace's tokens are exactly its own, and the model's special tokens
(BOS, or [CLS] ... [SEP] for BERT-style encoders) go around the whole text. Works for models
without an LM head (encoders), since nothing here reads logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from interp.activations.capture import capture_batch
from interp.analyses.trajectories.signals import (
    change_signals,
    cross_layer_change,
    effective_rank,
    rank_dynamics,
)
from interp.checks import checked
from interp.errors import InterpError
from interp.models import Model, load_model


def _ids(model: Model, text: str | Sequence[int] | Tensor) -> list[int]:
    """A text's token ids without special tokens, or the ids themselves (checked)."""
    if isinstance(text, str):
        model.require("Scoring a trace given as text", "tokenizer")
        return [int(i) for i in model.tokenizer.encode(text, add_special_tokens=False)]
    ids = [int(i) for i in torch.as_tensor(text).reshape(-1).tolist()]
    bad = [i for i in ids if not 0 <= i < model.d_vocab]
    if bad:
        raise InterpError(
            f"Token ids {bad[:5]} are outside {model.name}'s vocabulary (0..{model.d_vocab - 1})."
        )
    return ids


def text_states(
    model: Model | Any, prompt: str | Sequence[int] | Tensor, trace: str | Sequence[int] | Tensor
) -> Float[Tensor, "T L d"]:
    """Residual stream after every block at the trace's token positions.

    `prompt` and `trace` are texts, or token ids (for models without a tokenizer).
    """
    model = load_model(model)
    p_ids = _ids(model, prompt)
    t_ids = _ids(model, trace)
    if not t_ids:
        raise InterpError("The trace is empty: give the generated text to score.")
    prefix = model.prefix_ids
    ids = [*prefix, *p_ids, *t_ids, *model.suffix_ids]
    if len(ids) > model.n_ctx:
        raise InterpError(
            f"prompt + trace is {len(ids)} tokens but {model.name} reads at most {model.n_ctx}; "
            "score a shorter trace or a longer-context model."
        )
    start = len(prefix) + len(p_ids)
    names = model.hook_names_for("resid_post")
    tokens = torch.tensor([ids])
    acts = capture_batch(model, tokens, names, None, torch.tensor([len(ids) - 1]))
    return torch.stack([acts[n][0, start : start + len(t_ids)] for n in names], 1)


def _rank_family(hidden: Float[Tensor, "T L d"], stride: int) -> dict[str, float | None]:
    """ER of each layer's per-token matrix, and ERV / ERA over prefixes of ``stride`` tokens
    (Huang et al.), averaged over layers; None where the trace is too short."""
    L = hidden.shape[1]
    out: dict[str, float | None] = {"effective_rank": None, "erv": None, "era": None}
    if hidden.shape[0] >= 2:
        out["effective_rank"] = sum(effective_rank(hidden[:, l]) for l in range(L)) / L
    if len([j for j in range(stride, hidden.shape[0] + 1, stride) if j >= 2]) >= 3:
        dyn = [rank_dynamics(hidden[:, l], stride) for l in range(L)]
        out["erv"] = sum(x.erv for x in dyn) / L
        out["era"] = sum(x.era for x in dyn) / L
    return out


@checked
def text_signals(
    model: Model | Any,
    prompt: str | Sequence[int] | Tensor,
    trace: str | Sequence[int] | Tensor,
    k: int,
    first_chunks: int | None = None,
) -> dict[str, Any]:
    """Net, cumulative and aligned change (per layer and layer mean), the effective-rank family
    on the per-token states (ER of the whole trace, ERV and ERA over prefixes of `k` tokens) and
    cross-layer change of an existing trace, with chunks of `k` tokens (texts, or token ids
    for models without a tokenizer)."""
    hidden = text_states(model, prompt, trace)
    ch = change_signals(hidden, k, first_chunks)
    return {
        **_rank_family(hidden, k),
        **ch.layer_mean,
        "per_layer": {
            "net_change": ch.net.tolist(),
            "cumulative_change": ch.cumulative.tolist(),
            "aligned_change": ch.aligned.tolist(),
        },
        "cross_layer_change": cross_layer_change(hidden),
        "n_tokens": int(hidden.shape[0]),
        "n_chunks": ch.n_chunks,
    }
