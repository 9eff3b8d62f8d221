"""Head detectors (METHODS.md section 6): score every head against a detector pattern.

A detector pattern is a 0/1 ``[query, key]`` map of where a head of that kind attends.

By default every kind runs on ``[prefix, r_1..r_T, r_1..r_T]`` with random tokens ``r``
(distinct whole words when the tokenizer has enough, else any non-special ids; any ids in the
vocabulary for a model without a tokenizer):

* induction: from position i of the second half to i - T + 1 (the token after the earlier copy);
* previous_token: from i to i - 1;   next_token: from i to i + 1 (bidirectional models only);
* duplicate_token: from i in the second half to i - T (the earlier copy of the same token);
* first_token: to position 0 (attention sink).

On the user's own sequences (``sequences=``) the named kinds read the tokens themselves, as
TransformerLens' detection patterns do: duplicate_token marks every earlier position holding the
same id, induction the position just after each such earlier copy, previous/next/first_token are
positional. On the default sequences these are exactly the patterns above.

A head's score is its mean attention mass on the marked keys, averaged over the query rows (of
every sequence) where the pattern marks at least one key. TransformerLens' ``detect_head`` (error
measure ``"mul"``) instead divides the mass by the sum of the whole pattern, that is by all ``s``
query rows of a sequence, so on a sequence with ``r`` marked rows its score is this score times
``r / s`` (for the default induction and duplicate-token patterns ``r / s = T / (p + 2T)`` with
``p`` prefix tokens: 6/13 at T = 6 with a BOS). A custom kind is a ``[seq, seq]`` 0/1 tensor
(``[batch, seq, seq]`` for the user's sequences) or a function ``f(prefix_len, T) -> tensor``
(default sequences only) giving the detector pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from interp.analyses.attribution.heads import head_axis
from interp.checks import checked, one_of
from interp.deprecation import renamed, warn_renamed
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.results.attribution import HeadScores
from interp.results.meta import make_meta
from interp.tasks.vocab import repeated_tokens, repeats_from

KINDS = ("induction", "previous_token", "next_token", "duplicate_token", "first_token")
Kind = str | Tensor | Callable[[int, int], Tensor]
Sequences = Int[Tensor, "batch seq"] | Sequence[str]
ANALYSIS = "detect_heads"


def detector_pattern(kind: str, p0: int, seq_len: int) -> Float[Tensor, "seq seq"]:
    """0/1 ``[seq, seq]`` pattern (query x key) for a named detector."""
    n = p0 + 2 * seq_len
    mark = torch.zeros(n, n)
    second = range(p0 + seq_len, n)
    if kind == "induction":
        for i in second:
            mark[i, i - seq_len + 1] = 1
    elif kind == "duplicate_token":
        for i in second:
            mark[i, i - seq_len] = 1
    elif kind in ("previous_token", "next_token", "first_token"):
        return _positional_pattern(kind, n)
    else:
        _unknown(kind)
    return mark


def target_pattern(kind: str, p0: int, seq_len: int) -> Float[Tensor, "seq seq"]:
    """Deprecated name of `detector_pattern` ("target" names an activation site in interp)."""
    warn_renamed("target_pattern", "detector_pattern", "interp.attribution")
    return detector_pattern(kind, p0, seq_len)


def _unknown(kind: str) -> None:
    one_of("kind", kind, KINDS, also="a [seq, seq] 0/1 pattern or a function (prefix_len, T)")


def _positional_pattern(kind: str, n: int) -> Float[Tensor, "seq seq"]:
    mark = torch.zeros(n, n)
    if kind == "previous_token":
        for i in range(1, n):
            mark[i, i - 1] = 1
    elif kind == "next_token":
        for i in range(n - 1):
            mark[i, i + 1] = 1
    elif kind == "first_token":
        mark[:, 0] = 1
    else:
        _unknown(kind)
    return mark


def content_pattern(kind: str, tokens: Int[Tensor, " seq"]) -> Float[Tensor, "seq seq"]:
    """0/1 ``[seq, seq]`` pattern of a named detector read off one sequence's own tokens.

    duplicate_token: key j < i with ``tokens[j] == tokens[i]``; induction: key j + 1 for each
    such j (TransformerLens' duplicate and induction detection patterns); the other kinds are
    positional.
    """
    tokens = tokens.reshape(-1).cpu()
    n = len(tokens)
    if kind in ("duplicate_token", "induction"):
        same = (tokens[:, None] == tokens[None, :]).float().tril(-1)  # [query i, key j < i]
        if kind == "duplicate_token":
            return same
        mark = torch.zeros(n, n)
        mark[:, 1:] = same[:, :-1]  # the key after the earlier copy (j + 1 <= i)
        return mark
    return _positional_pattern(kind, n)


def _score_sums(
    patterns: list[Float[Tensor, "batch head q k"]], expected: Tensor
) -> tuple[Float[Tensor, "layer head"], int]:
    """Summed attention mass on the marked keys over the marked rows, and the row count."""
    mark = expected.to(patterns[0].device, patterns[0].dtype)
    if mark.ndim == 2:
        mark = mark.expand(patterns[0].shape[0], -1, -1)
    rows = (mark.sum(-1) > 0).to(mark.dtype)  # [batch, q]
    sums = [((p * mark[:, None]).sum(-1) * rows[:, None]).sum(dim=(0, 2)) for p in patterns]
    return torch.stack(sums).cpu().double(), int(rows.sum())


@renamed(target="expected")
def score_patterns(
    patterns: list[Float[Tensor, "batch head q k"]], expected: Tensor
) -> Float[Tensor, "layer head"]:
    """``[layer, head]`` mean attention on the marked keys over the query rows (of every
    sequence) where the detector pattern `expected` marks a key; `patterns` are per layer
    ``[batch, head, q, k]``, `expected` is ``[q, k]`` (shared) or ``[batch, q, k]``."""
    sums, count = _score_sums(patterns, expected)
    return (sums / max(count, 1)).float()


def random_repeats(model: Model, n: int, seq_len: int, seed: int) -> Int[Tensor, "n seq"]:
    """``[n, prefix + 2 * seq_len]`` sequences ``[prefix, r_1..r_T, r_1..r_T]`` of distinct
    random tokens: whole words when the tokenizer has enough of them, else any ids of the
    vocabulary that are not special tokens (any ids in range without a tokenizer)."""
    if model.has_tokenizer:
        try:
            return repeated_tokens(model, n, seq_len, seed)
        except InterpError:
            pass  # too few whole words (e.g. a character tokenizer): use every plain id
    special = model.special_ids
    ids = torch.tensor([i for i in range(model.d_vocab) if i not in special], dtype=torch.long)
    return repeats_from(ids, model.prefix_ids, n, seq_len, seed)


def _user_sequences(model: Model, sequences: Sequences) -> list[Tensor]:
    """The user's sequences as a list of 1-D id tensors (no padding), validated."""
    if isinstance(sequences, str):
        raise InterpError("`sequences` must be a list of prompts or a [batch, seq] id tensor.")
    if isinstance(sequences, Tensor):
        if sequences.ndim != 2 or sequences.dtype not in (torch.long, torch.int):
            raise InterpError("`sequences` as a tensor must hold integer ids, shape [batch, seq].")
        seqs = [row.long() for row in sequences]
    else:
        prompts = list(sequences)
        if prompts and not all(isinstance(p, str) for p in prompts):
            raise InterpError("`sequences` as a list must hold prompt strings.")
        if prompts:
            model.require(ANALYSIS + " on prompts", "tokenizer")
        seqs = [model.to_tokens(p)[0] for p in prompts]
    if not seqs:
        raise InterpError("`sequences` is empty: give at least one sequence.")
    for i, s in enumerate(seqs):
        if not 2 <= len(s) <= model.n_ctx:
            raise InterpError(
                f"Sequence {i} has {len(s)} tokens; detect_heads needs 2..{model.n_ctx}."
            )
        if int(s.min()) < 0 or int(s.max()) >= model.d_vocab:
            raise InterpError(
                f"Sequence {i} holds ids outside the vocabulary (0..{model.d_vocab - 1})."
            )
    return seqs


@torch.inference_mode()
@checked
def detect_heads(
    model: Model,
    kind: Kind = "induction",
    n: int = 32,
    seq_len: int = 16,
    seed: int = 0,
    batch_size: int = 16,
    sequences: Sequences | None = None,
) -> HeadScores:
    """Score every head by its attention to the positions its detector pattern marks.

    Args:
        model: any model with attention patterns (decoders and encoders alike, with or without
            a tokenizer).
        kind: a name in ``KINDS`` (snake_case), a ``[seq, seq]`` 0/1 pattern tensor with
            ``seq = prefix + 2 * seq_len`` (``[batch, seq, seq]`` or ``[seq, seq]`` matching
            the user's `sequences`), or a function ``(prefix_len, seq_len) -> tensor``
            (default sequences only).
        n: random sequences to average over (default sequences).
        seq_len: T, the length of the random sequence that is repeated (default sequences).
        seed: seed for the random tokens.
        batch_size: sequences per forward pass.
        sequences: the user's own sequences instead of the random repeats: a ``[batch, seq]``
            tensor of token ids, or a list of prompts (tokenised one by one, so prompts of
            different lengths need no padding). Named kinds read the pattern off each
            sequence's tokens (see the module docstring).

    Returns:
        ``[layer, head]`` scores: mean attention mass on the marked keys over the query rows
        where the pattern marks a key. TransformerLens' ``detect_head`` (``"mul"``) divides by
        all query rows instead: on a sequence of ``s`` tokens with ``r`` marked rows its score
        is this score times ``r / s``.
    """
    model = load_model(model)
    model.require(ANALYSIS, "attention")
    if seq_len < 2:  # n and batch_size are checked by @checked
        raise InterpError(f"detect_heads needs seq_len >= 2, got {seq_len}.")
    if isinstance(kind, str):
        if kind not in KINDS:
            _unknown(kind)
        if kind == "next_token" and model.is_causal:
            raise InterpError(
                "next_token heads cannot exist in a causal model (no position attends forward); "
                "use it on bidirectional encoders."
            )
    label = kind if isinstance(kind, str) else "custom"
    if sequences is None:
        seqs, expected = _default_inputs(model, kind, n, seq_len, seed)
        source = f"{n} repeated random sequences of {seq_len} tokens"
        params = {"kind": label, "n": n, "seq_len": seq_len}
    else:
        seqs = _user_sequences(model, sequences)
        expected = _user_patterns(kind, seqs)
        source = f"{len(seqs)} given sequences"
        params = {"kind": label, "sequences": len(seqs), "max_len": max(len(s) for s in seqs)}
    if sum(int((t.sum(-1) > 0).sum()) for t in expected) == 0:
        raise InterpError("The detector pattern is empty: mark at least one (query, key) pair.")
    names = model.hook_names_for("pattern")
    sums = torch.zeros(model.n_layers, model.n_heads, dtype=torch.float64)
    count = 0
    # Sequences of one length run together (no padding, exact for encoders too).
    by_len: dict[int, list[int]] = {}
    for i, s in enumerate(seqs):
        by_len.setdefault(len(s), []).append(i)
    for idx in by_len.values():
        for start in range(0, len(idx), batch_size):
            chunk = idx[start : start + batch_size]
            batch = torch.stack([seqs[i] for i in chunk]).to(model.device)
            _, cache = model.run_with_cache(batch, names_filter=lambda nm: nm in names)
            part, rows = _score_sums(
                [cache[name] for name in names], torch.stack([expected[i] for i in chunk])
            )
            sums += part
            count += rows
    scores = (sums / count).float()
    return HeadScores(
        values=scores,
        dims=("layer", "head"),
        coords={"layer": list(range(model.n_layers)), "head": list(range(model.n_heads))},
        labels={"head": head_axis(model.n_heads)},
        meta=make_meta(
            model=model,
            params=params,
            seed=seed,
            value_label=f"{label} score",
            description=(
                f"{label.replace('_', '-')} score: mean attention on the marked positions over "
                f"the query rows where the pattern marks one, on {source}."
            ),
        ),
        title=f"Head detector: {label.replace('_', ' ')}",
    )


def _default_inputs(
    model: Model, kind: Kind, n: int, seq_len: int, seed: int
) -> tuple[list[Tensor], list[Tensor]]:
    p0 = len(model.prefix_ids)
    total = p0 + 2 * seq_len
    if total > model.n_ctx:
        raise InterpError(f"seq_len {seq_len} gives {total} tokens > context {model.n_ctx}.")
    if isinstance(kind, str):
        given = detector_pattern(kind, p0, seq_len)
    else:
        given = kind(p0, seq_len) if callable(kind) else kind
    pattern = torch.as_tensor(given, dtype=torch.float32)
    if pattern.shape != (total, total):
        raise InterpError(
            f"The detector pattern must be [{total}, {total}], got {tuple(pattern.shape)}."
        )
    tokens = random_repeats(model, n, seq_len, seed)
    return list(tokens), [pattern] * n


def _user_patterns(kind: Kind, seqs: list[Tensor]) -> list[Tensor]:
    if isinstance(kind, str):
        return [content_pattern(kind, s) for s in seqs]
    if callable(kind):
        raise InterpError(
            "A pattern function (prefix_len, T) -> tensor describes the default repeated "
            "sequences; with your own sequences give a [seq, seq] or [batch, seq, seq] tensor."
        )
    pattern = torch.as_tensor(kind, dtype=torch.float32)
    if pattern.ndim == 2:
        pattern = pattern.expand(len(seqs), -1, -1)
    lengths = {len(s) for s in seqs}
    if pattern.ndim != 3 or pattern.shape[0] != len(seqs) or len(lengths) != 1:
        raise InterpError(
            f"With {len(seqs)} given sequences the pattern must be [seq, seq] or "
            f"[{len(seqs)}, seq, seq] over sequences of one length, got {tuple(pattern.shape)}."
        )
    (length,) = lengths
    if pattern.shape[1:] != (length, length):
        raise InterpError(
            f"The detector pattern must be [{length}, {length}] per sequence, got "
            f"{tuple(pattern.shape[1:])}."
        )
    return list(pattern)
