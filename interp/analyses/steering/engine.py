"""Many steered runs at once, exactly.

Steering at layer ``l`` leaves every layer before ``l`` as in the plain run, and (causal
attention) steering from position ``p`` on leaves every position before ``p`` unchanged. So a
stack of configurations (direction x strength x control seed) starts from the plain run's
cached ``resid_pre`` at ``l``, computes positions ``p..`` only (earlier keys and values come
from the plain run's cache), and shares each forward by being stacked on the batch axis, chunked
to a memory budget. Logits are unembedded only where they are read. The numbers equal one
hooked forward per configuration (`steer` around a plain forward) up to float rounding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.steering.steer import Positions
from interp.kernels import fused
from interp.models import Model
from interp.models import kv as kvc
from interp.models.kv import seeds_kv_cache, starts_mid_model
from interp.nodes import Node
from interp.tasks.task import Task

#: ``"answer"``: logits at each prompt's answer position; ``"window"``: logits at every position
#: from the first steered one to the answer position (side effects on neutral text).
Read = Literal["answer", "window"]
#: Scores a chunk of one group: logits ``[n, batch, pos, vocab]`` (pos = 1 for "answer") and
#: the `Group` (its prompts' rows, unsteered logits, window) -> ``[n, batch, k]``.
Scorer = Callable[[Tensor, "Group"], Tensor]


@dataclass(frozen=True)
class Config:
    """One steered run: the vector added at a site (already ``alpha * sigma * unit``)."""

    site: Node
    vector: Float[Tensor, " width"]


#: At most this many groups of prompts (by first steered and answer position) run apart: each
#: group is one more forward per site, which reads every weight again (measured, 48
#: configurations at the last position: SmolLM2 8.0 / 6.2 / 5.1 / 5.2 s and the organism 0.34 /
#: 0.34 / 0.36 / 0.48 s with 8 / 4 / 2 / 1 groups).
MAX_GROUPS = 2


class Runner:
    """Runs stacks of steering configurations on one task's prompts.

    Prompts are grouped by where steering first writes and where the last read row is (right-
    padded prompts of several lengths), so each group computes only its own positions: with
    causal attention, positions after the last read row change nothing that is read.
    """

    def __init__(
        self,
        model: Model,
        task: Task,
        positions: Positions,
        read: Read,
        layers: Sequence[int],
        budget: int,
        progress: bool = True,
        desc: str = "steer",
    ) -> None:
        self.model, self.progress, self.desc = model, progress, desc
        self.B = len(task)
        answer = task.answer_pos.cpu()
        T = int(answer.max()) + 1
        steered = positions.mask(self.B, T, torch.device("cpu"))
        if steered is None:
            first = torch.zeros(self.B, dtype=torch.long)
        else:
            first = torch.where(steered.any(1), steered.float().argmax(1), answer)
        skip = starts_mid_model(model) and seeds_kv_cache(model)
        keys = [
            (int(f) if skip else 0, int(a) if model.is_causal else T - 1)
            for f, a in zip(first, answer, strict=True)
        ]
        with fused(model):  # the unsteered runs too: weights laid out once (interp.weights)
            self.groups = [
                Group(model, task, positions, read, layers, budget, torch.tensor(rows), first)
                for rows in _buckets(keys)
            ]

    def base(self, score: Scorer) -> Tensor:
        """Scores ``[B, k]`` of the unsteered run."""
        parts = [(g.rows, score(g.base_logits[None], g)[0].cpu()) for g in self.groups]
        return _scatter(parts, self.B)

    def run(self, configs: Sequence[Config], score: Scorer) -> Tensor:
        """Scores ``[n_configs, B, k]`` of every configuration (on the CPU)."""
        total = len(configs) * len(self.groups)
        bar = tqdm(total=total, desc=self.desc, disable=not self.progress, unit="run")
        with bar, fused(self.model), torch.inference_mode():
            parts = [(g.rows, g.run(configs, score, bar)) for g in self.groups]
        return _scatter(parts, self.B, dim=1)


def _buckets(keys: list[tuple[int, int]]) -> list[list[int]]:
    """Prompt indices grouped by key (first steered position, last read position); at most
    `MAX_GROUPS` groups of neighbouring keys."""
    distinct = sorted(set(keys), key=lambda k: (k[1], k[0]))
    per = -(-len(distinct) // MAX_GROUPS)  # ceil
    bucket_of = {k: i // per for i, k in enumerate(distinct)}
    out: dict[int, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        out[bucket_of[k]].append(i)
    return [out[b] for b in sorted(out)]


def _scatter(parts: list[tuple[Tensor, Tensor]], n: int, dim: int = 0) -> Tensor:
    """Place each group's scores at its prompts' rows along `dim`."""
    first = parts[0][1]
    shape = list(first.shape)
    shape[dim] = n
    out = first.new_empty(shape)
    for rows, vals in parts:
        out.index_copy_(dim, rows, vals)
    return out


class Group:
    """Prompts that compute the same positions: ``start`` (the first steered one, where the
    key-value cache allows skipping) to ``T - 1`` (their last read row)."""

    def __init__(
        self,
        model: Model,
        task: Task,
        positions: Positions,
        read: Read,
        layers: Sequence[int],
        budget: int,
        rows: Tensor,
        first_all: Tensor,
    ) -> None:
        self.model, self.read, self.budget, self.rows = model, read, budget, rows
        self.answer_pos = task.answer_pos.cpu()[rows].to(model.device)
        # Nothing after the last answer is read, and (causal) nothing after it changes it.
        self.T = int(self.answer_pos.max()) + 1 if model.is_causal else task.seq_len
        self.tokens = task.clean_tokens[rows, : self.T].to(model.device)
        self.B = self.tokens.shape[0]
        spec = positions.spec
        sub = Positions(spec[rows]) if isinstance(spec, Tensor) else Positions(spec)
        steered = sub.mask(self.B, self.T, self.tokens.device)
        self.first = first_all[rows].to(model.device)
        self.mid = starts_mid_model(model)
        skip = self.mid and seeds_kv_cache(model)
        self.start = int(self.first.min()) if skip else 0
        self.mask = None if steered is None else steered[:, self.start :]
        names = set()
        if self.mid:
            names |= {model.hook_name("resid_pre", layer) for layer in layers}
        if self.start > 0:
            lo = min(layers)
            names |= {*model.hook_names_for("k", range(lo, model.n_layers))}
            names |= {*model.hook_names_for("v", range(lo, model.n_layers))}
        with torch.inference_mode():
            logits, cache = model.run_with_cache(self.tokens, names_filter=sorted(names))
        self.cache = {k: cache[k] for k in names}
        self.base_logits = self._rows(logits[None])[0]  # [b, P, V]

    # ------------------------------------------------------------------ reading
    def _rows(self, logits: Tensor) -> Tensor:
        """``[n, b, T, V]`` logits of every position -> the rows that are read."""
        if self.read == "answer":
            rows = torch.arange(self.B, device=logits.device)
            return logits[:, rows, self.answer_pos][:, :, None]
        return logits[:, :, self.start :]

    def window(self) -> Tensor:
        """``[b, P]`` which read rows count (window mode: first steered .. answer position)."""
        if self.read == "answer":
            return torch.ones(self.B, 1, dtype=torch.bool, device=self.tokens.device)
        p = torch.arange(self.start, self.T, device=self.tokens.device)[None]
        return (p >= self.first[:, None]) & (p <= self.answer_pos[:, None])

    # ------------------------------------------------------------------ running
    def run(self, configs: Sequence[Config], score: Scorer, bar: Any) -> Tensor:
        """Scores ``[n_configs, b, k]`` of every configuration."""
        groups: dict[tuple[str, int, int | None], list[int]] = defaultdict(list)
        for i, cfg in enumerate(configs):
            groups[(cfg.site.target, cfg.site.layer, cfg.site.head)].append(i)
        out: list[Tensor | None] = [None] * len(configs)
        for (target, layer, head), idx in sorted(groups.items(), key=lambda kv: kv[0][1:2]):
            size = self._chunk(layer)
            for c in range(0, len(idx), size):
                chunk = idx[c : c + size]
                vecs = torch.stack([configs[i].vector for i in chunk])
                logits = self._forward(Node(target, layer, head), vecs)
                scores = score(logits, self).float().cpu()
                for j, i in enumerate(chunk):
                    out[i] = scores[j]
                bar.update(len(chunk))
        return torch.stack([o for o in out if o is not None])

    def _chunk(self, layer: int) -> int:
        """Configurations per forward within the memory budget."""
        m = self.model
        t = self.T - self.start
        per_pos = (
            m.d_model * 8 + (m.d_mlp or 4 * m.d_model) * 2 + m.n_heads * (self.T * 3 + m.d_head * 4)
        )
        kv = 2 * (m.n_layers - layer) * self.start * m.n_key_value_heads * m.d_head
        rows = 1 if self.read == "answer" else t
        row = 4 * (t * per_pos + kv + rows * m.d_vocab_out * 3) * self.B
        return max(1, self.budget // max(1, row))

    def _forward(self, site: Node, vecs: Tensor) -> Tensor:
        """Logits ``[n, B, P, V]`` of the read rows with each vector added at `site`."""
        model, n, B, L = self.model, vecs.shape[0], self.B, self.model.n_layers
        hook = (
            model.hook_name(site.target, site.layer),
            _stacked_adder(vecs, self.mask, site, n, B),
        )
        with model.hooks([hook]):
            if not self.mid:
                logits = model(self.tokens.repeat(n, 1))
                return self._rows(logits.reshape(n, B, *logits.shape[1:]))
            x = self.cache[model.hook_name("resid_pre", site.layer)][:, self.start :]
            kv = self._kv(site.layer, n)
            x = model.forward(
                x.repeat(n, 1, 1), start_at_layer=site.layer, stop_at_layer=L, past_kv_cache=kv
            )
        x = x.reshape(n, B, *x.shape[1:])  # final residuals of positions start..
        if self.read == "answer":
            rows = torch.arange(B, device=x.device)
            return model.unembed(x[:, rows, self.answer_pos - self.start])[:, :, None]
        return model.unembed(x)

    def _kv(self, layer: int, n: int) -> list[Any] | None:
        if self.start == 0:
            return None
        m, s = self.model, self.start
        entries = {
            i: (
                self.cache[m.hook_name("k", i)][:, :s].repeat(n, 1, 1, 1),
                self.cache[m.hook_name("v", i)][:, :s].repeat(n, 1, 1, 1),
            )
            for i in range(layer, m.n_layers)
        }
        return kvc.frozen_cache(m, entries)


def _stacked_adder(
    vecs: Tensor, mask: Tensor | None, site: Node, n: int, b: int
) -> Callable[[Tensor, Any], Tensor]:
    """Adds row i of `vecs` to the i-th copy of the batch, at the masked positions."""

    def hook(act: Tensor, hook: Any) -> Tensor:
        shape = act.shape
        x = act.reshape(n, b, *shape[1:])
        v = vecs.to(device=act.device, dtype=act.dtype)[:, None, None]  # [n, 1, 1, width]
        part = x if site.head is None else x[:, :, :, site.head]
        moved = part + v
        if mask is not None:
            moved = torch.where(mask[None, :, : part.shape[2], None], moved, part)
        if site.head is None:
            return moved.reshape(shape)
        out = x.clone()
        out[:, :, :, site.head] = moved
        return out.reshape(shape)

    return hook
