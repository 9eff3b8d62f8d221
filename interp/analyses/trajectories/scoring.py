"""Signals of sampled traces and how well they predict correctness.

`trace_table` computes, per trace, the change signals (layer means, from all chunks or the first
`early` chunks), the output-confidence baselines and the answer length; `auroc_table` scores each
signal against correctness with ROC-AUC, a bootstrap interval over traces and a shuffled-label
null, next to the same change signals computed on random low-dimensional projections of the
states (a control for what any trajectory of this architecture would show).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from interp.analyses.trajectories.signals import (
    change_signals,
    cross_layer_change,
    effective_rank,
    rank_dynamics,
)
from interp.analyses.trajectories.trace import Trace
from interp.checks import checked
from interp.errors import InterpError
from interp.nodes import layer_label
from interp.results.trajectories import CHANGE_SIGNALS as CHANGE
from interp.stats import bootstrap, roc_auc

# Which direction of each signal predicts a correct answer: METHODS.md section 8 for the change
# signals and the confidence baselines. The effective-rank family and cross-layer change have no
# prescribed direction; they are scored as "higher = right" (ROC-AUC below 0.5 then means higher
# values go with wrong answers). Answer length is scored as "shorter = right".
ORIENTATION = {
    "net_change": 1,
    "cumulative_change": -1,
    "aligned_change": 1,
    "mean_logprob": 1,
    "logit_margin": 1,
    "entropy": -1,
    "perplexity": -1,
    "effective_rank": 1,
    "erv": 1,
    "era": 1,
    "cross_layer_change": 1,
    "n_tokens": -1,
}
EARLY = "early_"  # prefix of signals computed from the first chunks only
_LAYER = re.compile(r"_L\d+$")  # suffix of per-layer columns, e.g. net_change_L3


def orientation(signal: str) -> int:
    """+1 if higher values of `signal` should mean a right answer, -1 if lower (early and
    per-layer versions share their signal's direction)."""
    return ORIENTATION.get(_LAYER.sub("", signal.removeprefix(EARLY)), 1)


RANK = ("effective_rank", "erv", "era")


def per_layer_column(signal: str, layer: int) -> str:
    """The table column of `signal` computed at one layer alone: ``net_change_L3``."""
    return f"{signal}_{layer_label(layer)}"


def regroup(chunks: Tensor, factor: int) -> Tensor:
    """Chunks of k tokens -> chunks of factor * k (the last chunk keeps what is left)."""
    if factor == 1 or len(chunks) == 0:
        return chunks
    return torch.stack([chunks[s : s + factor].mean(0) for s in range(0, len(chunks), factor)])


@checked
def trace_table(
    traces: Sequence[Trace],
    chunk_factor: int = 1,
    early: int | None = None,
    projection_dim: int | None = None,
    seed: int = 0,
    per_layer: bool = False,
) -> pd.DataFrame:
    """One row per trace: prompt, sample, correct, n_tokens, change signals, confidence.

    Args:
        chunk_factor: pool this many sampled chunks into one (signals at a larger k). The last
            sampled chunk may be shorter, so regrouped means weight it like the others.
        early: use only the first `early` chunks (the early-stopping version).
        projection_dim: compute the change signals on a random Gaussian projection of the states
            to this many dimensions (the null control); None uses the states themselves.
        per_layer: also one column per layer for each change signal (``net_change_L0`` ...).
    """
    if not traces:
        raise InterpError("No traces given.")
    L, d = traces[0].chunks.shape[-2:]
    proj = None
    if projection_dim is not None:
        g = torch.Generator().manual_seed(seed)
        proj = torch.randn(d, projection_dim, generator=g, dtype=torch.float64) / d**0.5
    rows = []
    for t in traces:
        h = regroup(t.chunks.double(), chunk_factor)
        if proj is not None:
            h = h @ proj
        row: dict[str, object] = {
            "prompt": t.prompt_index,
            "sample": t.sample_index,
            "correct": bool(t.correct),
            "n_tokens": len(t.tokens),
        }
        if early is not None:
            h = h[:early]
        if len(h) >= 2:  # the chunks are already pooled: each is one step of the path
            ch = change_signals(h, 1)
            row.update(ch.layer_mean)
            if per_layer:
                for name, vals in zip(CHANGE, (ch.net, ch.cumulative, ch.aligned), strict=True):
                    row.update({per_layer_column(name, l): float(vals[l]) for l in range(L)})
        else:  # undefined for fewer than two chunks
            row.update(dict.fromkeys(CHANGE, None))
            if per_layer:
                row.update({per_layer_column(c, l): None for c in CHANGE for l in range(L)})
        if proj is None:
            row.update(_rank_signals(h))
            row["cross_layer_change"] = cross_layer_change(h) if len(h) and h.shape[1] > 1 else None
        if len(t.tokens):
            lp = t.logprobs.double()
            row["mean_logprob"] = float(lp.mean())
            row["perplexity"] = float(torch.exp(-lp.mean()))
            row["logit_margin"] = float(t.margins.mean())
            row["entropy"] = float(t.entropies.mean())
        rows.append(row)
    return pd.DataFrame(rows)


def _rank_signals(h: Tensor) -> dict[str, float | None]:
    """ER of each layer's chunk matrix and ERV / ERA over its prefixes of 2, 3, ... chunks,
    averaged over layers (METHODS.md is silent on layers; this follows the change signals).
    With chunks of one token this is the per-token matrix of Huang et al."""
    out: dict[str, float | None] = dict.fromkeys(RANK, None)
    N, L = h.shape[0], h.shape[1]
    if N >= 2:
        out["effective_rank"] = sum(effective_rank(h[:, l]) for l in range(L)) / L
    if N >= 4:  # prefixes of 2, 3, 4 chunks: the fewest that define ERA
        dyn = [rank_dynamics(h[:, l], 1) for l in range(L)]
        out["erv"] = sum(x.erv for x in dyn) / L
        out["era"] = sum(x.era for x in dyn) / L
    return out


@checked
def signals(
    traces: Sequence[Trace],
    chunk: int | None = None,
    early: int | None = None,
    projection_dim: int | None = None,
    seed: int = 0,
    per_layer: bool = False,
) -> pd.DataFrame:
    """Per-trace signals at chunk size `chunk` tokens (a multiple of the sampled chunk size;
    default: the sampled one), from the first `early` chunks if given. See `trace_table`."""
    if not traces:
        raise InterpError("No traces given.")
    base = traces[0].chunk
    shapes = {(t.chunk, *t.chunks.shape[1:]) for t in traces}
    if len(shapes) > 1:
        raise InterpError(
            f"The traces were sampled differently (chunk size, layers, width: {sorted(shapes)}):"
            " score traces from one model and one chunk size together."
        )
    k = base if chunk is None else chunk
    if k < base or k % base:
        raise InterpError(
            f"chunk={k}: the traces were pooled in chunks of {base} tokens; use a multiple of "
            f"{base} (or sample again with chunk={k})."
        )
    longest = max(len(t.tokens) for t in traces)
    if longest <= k:
        raise InterpError(
            f"chunk={k} is at least as long as the longest generation ({longest} tokens): the "
            "change signals need two chunks. Use a smaller chunk or longer generations."
        )
    if early is not None and early < 2:
        raise InterpError(f"early must be at least 2 chunks, got {early}.")
    return trace_table(traces, k // base, early, projection_dim, seed, per_layer)


@checked
def auroc_table(
    table: pd.DataFrame, n_boot: int = 1000, seed: int = 0, signals: Sequence[str] | None = None
) -> pd.DataFrame:
    """ROC-AUC of each signal (oriented so that > 0.5 means it predicts correct answers as
    METHODS.md expects) with a 95% bootstrap interval over traces, and the same for shuffled
    labels (the null). Traces where a signal is undefined are left out of that signal's row."""
    names = [s for s in (signals or ORIENTATION) if s in table.columns]
    if table["correct"].nunique() < 2:
        raise InterpError(
            "All traces are right (or all wrong): ROC-AUC needs both; sample more answers or at "
            "a higher temperature."
        )
    # Signals defined on the same traces share labels, shuffled labels and resample counts:
    # one roc_auc over their stacked scores per group, one bootstrap for both labels.
    groups: dict[bytes, list[str]] = {}
    for name in names:
        groups.setdefault(table[name].notna().to_numpy().tobytes(), []).append(name)
    rows: dict[str, dict[str, object]] = {}
    for members in groups.values():
        sub = table[table[members[0]].notna()]
        y = torch.tensor(sub["correct"].to_numpy(), dtype=torch.long)
        if y.unique().numel() < 2:
            continue
        scores = torch.stack(
            [torch.tensor(sub[name].to_numpy(dtype=float)) * orientation(name) for name in members]
        )
        g = torch.Generator().manual_seed(seed)
        shuffled = y[torch.randperm(len(y), generator=g)]

        def both(
            w: Tensor | None, s: Tensor = scores, y: Tensor = y, y0: Tensor = shuffled
        ) -> Tensor:
            return torch.stack([roc_auc(s, y, w), roc_auc(s, y0, w)], -1)  # [(B,) U, 2]

        values = both(None)
        lo, hi = bootstrap(both, len(y), n_boot, seed)
        for j, name in enumerate(members):
            row: dict[str, object] = {"signal": name, "n": len(y)}
            for c, label in enumerate(("auroc", "null_auroc")):
                row[label] = float(values[j, c])
                row[f"{label}_low"], row[f"{label}_high"] = float(lo[j, c]), float(hi[j, c])
            rows[name] = row
    return pd.DataFrame([rows[name] for name in names if name in rows])


def _normalised(text: str) -> str:
    return " ".join(text.split())


def with_answers(
    traces: Sequence[Trace], table: pd.DataFrame, answer_of: Callable[[str], str] | None = None
) -> pd.DataFrame:
    """The table with each trace's final answer (``answer_of(text)``, else the answer recorded
    at sampling, else the whitespace-normalised text)."""
    if len(traces) != len(table):
        raise InterpError("traces and table must come from the same sample (one row per trace).")
    answers = [answer_of(t.text) if answer_of else t.answer or _normalised(t.text) for t in traces]
    return table.assign(answer=answers)


def majority_vote(df: pd.DataFrame) -> pd.Series:
    """Per prompt: is the most common final answer among its samples right? Ties go to the
    answer sampled first."""
    out = {}
    for prompt, group in df.groupby("prompt"):
        counts = group["answer"].value_counts(sort=False)  # order of first appearance
        top = counts.index[int(np.argmax(counts.to_numpy()))]
        out[prompt] = bool(group.loc[group["answer"] == top, "correct"].iloc[0])
    return pd.Series(out)


def selection(
    traces: Sequence[Trace],
    table: pd.DataFrame,
    signals: Sequence[str] | None = None,
    answer_of: Callable[[str], str] | None = None,
    early_tokens: int | None = None,
) -> pd.DataFrame:
    """Best-of-n selection by each signal against majority vote, per prompt.

    Majority vote takes the most common final answer among a prompt's samples (``answer_of``
    maps a generated text to its answer; default: the whitespace-normalised text; for
    arithmetic use ``final_answer`` from ``interp.tasks.arithmetic``) and is right when that
    answer's traces are. A signal picks the sample with the best oriented value. Tokens:
    majority vote and full-trace selection read every sample to the end; with
    ``early_tokens`` (signals from the first chunks only, see ``trace_table(early=...)``)
    every sample is read up to that many tokens and only the chosen one to its end.

    Returns one row per method: accuracy (fraction of prompts answered right) and mean tokens
    generated per prompt.
    """
    names = [s for s in (signals or ORIENTATION) if s in table.columns]
    df = with_answers(traces, table, answer_of)
    vote = majority_vote(df)
    rows = []
    for method in ["majority_vote", *names]:
        right, tokens = [], []
        for prompt, group in df.groupby("prompt"):
            lengths = group["n_tokens"].to_numpy()
            if method == "majority_vote":
                right.append(bool(vote[prompt]))
                tokens.append(int(lengths.sum()))
                continue
            vals = group[method].astype(float) * orientation(method)
            if vals.isna().all():
                continue
            pick = vals.idxmax()
            right.append(bool(group.loc[pick, "correct"]))
            if early_tokens is None:
                tokens.append(int(lengths.sum()))
            else:
                read = [min(int(x), early_tokens) for x in lengths]
                chosen = int(group.loc[pick, "n_tokens"])
                tokens.append(sum(read) + chosen - min(chosen, early_tokens))
        rows.append(
            {
                "method": method,
                "prompts": len(right),
                "accuracy": sum(right) / max(1, len(right)),
                "tokens_per_prompt": sum(tokens) / max(1, len(tokens)),
            }
        )
    return pd.DataFrame(rows)
