"""Latent-trajectory signals of one generated trace (METHODS.md section 8).

The hidden states of a trace are every layer's residual output (embedding excluded) at the
generated positions, ``[T, L, d]``. They are mean-pooled into consecutive chunks of ``k`` tokens
(the last chunk may be shorter), giving ``h_1..h_N`` per layer, and then:

* net change ``NC = ||h_N - h_1|| / (N - 1)`` (higher: more likely correct);
* cumulative change ``CC = sum_n ||h_n - h_{n-1}||`` (higher: less likely correct);
* aligned change ``AC = mean_n cos(h_n - h_{n-1}, h_N - h_1)`` (higher: more likely correct).

Each is defined only for ``N >= 2``; one score per trace is the unweighted mean over layers.
The effective-rank family (Huang et al.) works on one layer's ``[T, d]`` matrix: ``ER`` is the
exponential of the entropy of the normalised singular values of the column-centred matrix, and
``ERV``/``ERA`` are the mean first and second differences of ``ER`` over growing prefixes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from interp.checks import checked
from interp.errors import InterpError


@checked
def chunk_means(hidden: Float[Tensor, "T L d"], k: int) -> Float[Tensor, "N L d"]:
    """Mean of consecutive chunks of `k` generated tokens (the last chunk may be shorter)."""
    if k < 1:
        raise InterpError(f"The chunk size k must be at least 1, got {k}.")
    T = hidden.shape[0]
    if T == 0:
        raise InterpError("The trace has no generated tokens.")
    starts = range(0, T, k)
    return torch.stack([hidden[s : s + k].double().mean(0) for s in starts])


@dataclass(frozen=True)
class ChangeSignals:
    """Per-layer net, cumulative and aligned change, and their means over layers."""

    net: Float[Tensor, " L"]
    cumulative: Float[Tensor, " L"]
    aligned: Float[Tensor, " L"]
    n_chunks: int

    @property
    def layer_mean(self) -> dict[str, float]:
        return {
            "net_change": float(self.net.mean()),
            "cumulative_change": float(self.cumulative.mean()),
            "aligned_change": float(self.aligned.mean()),
        }


@checked
def change_signals(
    hidden: Float[Tensor, "T L d"], k: int, first_chunks: int | None = None
) -> ChangeSignals:
    """Net, cumulative and aligned change of a trace with chunk size `k`, optionally from its
    first `first_chunks` chunks only (the early version)."""
    h = chunk_means(hidden, k)
    if first_chunks is not None:
        if first_chunks < 2:
            raise InterpError(f"first_chunks must be at least 2, got {first_chunks}.")
        h = h[:first_chunks]
    N = h.shape[0]
    if N < 2:
        raise InterpError(
            f"The trace has {hidden.shape[0]} generated tokens, one chunk of k={k}: the change "
            "signals need at least two chunks. Use a smaller k or a longer generation."
        )
    steps = h[1:] - h[:-1]  # [N-1, L, d]
    total = h[-1] - h[0]  # [L, d]
    net = total.norm(dim=-1) / (N - 1)
    cumulative = steps.norm(dim=-1).sum(0)
    cos = torch.nn.functional.cosine_similarity(steps, total[None].expand_as(steps), dim=-1)
    return ChangeSignals(net.float(), cumulative.float(), cos.mean(0).float(), N)


@checked
def effective_rank(H: Float[Tensor, "T d"]) -> float:
    """``exp(entropy(s / sum s))`` of the singular values of the column-centred matrix."""
    return _effective_rank(H)


def _effective_rank(H: Tensor) -> float:
    # Unchecked body: rank_dynamics calls it once per prefix of every trace and layer.
    if H.ndim != 2 or H.shape[0] < 2:
        raise InterpError(f"effective_rank needs a [T >= 2, d] matrix, got {tuple(H.shape)}.")
    X = H.double() - H.double().mean(0)
    s = torch.linalg.svdvals(X)
    total = s.sum()
    if total <= 0:
        return 1.0  # a constant trajectory: no spread in any direction
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


@dataclass(frozen=True)
class RankDynamics:
    """Effective rank on prefixes ``H[:j * stride]`` and its velocity and acceleration."""

    er: Float[Tensor, " J"]
    erv: float
    era: float


@checked
def rank_dynamics(H: Float[Tensor, "T d"], stride: int) -> RankDynamics:
    """``d1_j = ER_j - mean(ER_1..ER_{j-1})``, ``d2_j = d1_j - d1_{j-1}``; ``ERV = mean d1``,
    ``ERA = mean d2`` (defined from the second and third prefix on)."""
    if stride < 1:
        raise InterpError(f"stride must be at least 1, got {stride}.")
    T = H.shape[0]
    ends = [j * stride for j in range(1, T // stride + 1) if j * stride >= 2]
    if len(ends) < 3:
        raise InterpError(
            f"{T} tokens with stride {stride} give {len(ends)} prefixes of at least 2 tokens; "
            "ERV needs 2 and ERA 3. Use a smaller stride."
        )
    er = torch.tensor([_effective_rank(H[:e]) for e in ends], dtype=torch.float64)
    d1 = torch.stack([er[j] - er[:j].mean() for j in range(1, len(er))])
    d2 = d1[1:] - d1[:-1]
    return RankDynamics(er.float(), float(d1.mean()), float(d2.mean()))


@checked
def confidence(
    token_logprobs: Float[Tensor, " T"], logits: Float[Tensor, "T vocab"] | None = None
) -> dict[str, float]:
    """Output-confidence baselines of one trace: mean token log-probability, perplexity, and
    (given the logits at each generated position) mean top-1/top-2 logit margin and entropy."""
    lp = token_logprobs.double()
    if lp.ndim != 1 or lp.numel() == 0:
        raise InterpError("token_logprobs must be a non-empty vector, one per generated token.")
    out = {"mean_logprob": float(lp.mean()), "perplexity": float(torch.exp(-lp.mean()))}
    if logits is not None:
        lg = logits.double()
        top2 = lg.topk(2, dim=-1).values
        logp = torch.log_softmax(lg, -1)
        out["logit_margin"] = float((top2[:, 0] - top2[:, 1]).mean())
        out["entropy"] = float(-(logp.exp() * logp).sum(-1).mean())
    return out


@checked
def cross_layer_change(hidden: Float[Tensor, "T L d"]) -> float:
    """Mean over tokens and adjacent layer pairs of ``||x_{l+1} - x_l||``: how much each layer
    moves the residual stream (the cross-layer baseline)."""
    if hidden.shape[1] < 2:
        raise InterpError("cross_layer_change needs at least two layers.")
    h = hidden.double()
    return float((h[:, 1:] - h[:, :-1]).norm(dim=-1).mean())
