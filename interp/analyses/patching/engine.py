"""Exact patched runs, many at once.

A patch at layer ``l`` leaves every layer before ``l`` unchanged, and (with causal attention) a
patch at position ``p`` leaves every position before ``p`` unchanged. So a patched run starts
from the base run's cached ``resid_pre`` at layer ``l``, computes positions ``p..`` only (keys and
values of earlier positions come from the base run's cache), and many patches share one forward
by being stacked on the batch axis. Logits are computed only where the metric reads them. Metric
values stay on the device until the end: no host sync per patch. The numbers equal one full
forward per patch (TransformerLens' `patching` module) up to float rounding. Layers after the
last hooked one run as `LeanBlocks` (the same arithmetic without TransformerLens' per-call
overhead) where the model's blocks are a kind it covers (GPT-2 and Llama shaped), checked against
TransformerLens' forward on the first group of every run.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.patching.nodes import HEAD_TARGETS, RESID_TARGETS, Node
from interp.analyses.patching.readout import (
    DEFAULT_BUDGET,
    Readout,
    run_metric,
)
from interp.analyses.patching.runs import Input, run_cache
from interp.errors import InterpError
from interp.kernels import fused
from interp.models import Model
from interp.models import kv as kvc
from interp.models.lean import LeanBlocks
from interp.tasks.task import Task


def skips_positions(model: Model) -> bool:
    """Position skipping needs causal attention and positions the KV cache offsets correctly;
    the base run's hook_k/hook_v seed the KV cache, so they must be what the cache stores."""
    return kvc.seeds_kv_cache(model)


starts_mid_model = kvc.starts_mid_model


@dataclass(frozen=True)
class PatchUnit:
    """One stacked forward: the node sets `rows` (indices into the sweep's list), all patched
    from `layer` on and from position `start` on (`narrow`: query-side at `start` only)."""

    layer: int
    start: int
    narrow: bool
    rows: tuple[int, ...]


class Patcher:
    """Runs stacks of node sets patched from `source` into `base`, exactly."""

    def __init__(
        self,
        model: Model,
        readout: Readout,
        base: Input,
        source: Input,
        hooks: Sequence[str],
        budget: int = DEFAULT_BUDGET,
        progress: bool = True,
        desc: str = "patch",
        skip_unchanged: bool = True,
    ) -> None:
        model.require("Patching", "logits", "hooked")
        if model.n_devices > 1:
            raise InterpError(
                f"Exact patching starts its runs mid-model from cached activations on one "
                f"device; {model.name} is split over {model.n_devices} GPUs. Load it on one "
                "device, or spread the sweep over GPUs with executor=interp.executors.Ray("
                "num_gpus=1) instead (one model copy per GPU)."
            )
        self.model, self.readout, self.base = model, readout, base
        self.budget, self.progress, self.desc = budget, progress, desc
        self.T = readout.seq_len
        self.B = base.tokens.shape[0]
        self.skip_pos = skips_positions(model)
        self.mid = starts_mid_model(model)
        base_names = set()
        if self.mid:
            base_names |= set(model.hook_names_for("resid_pre"))
        if self.skip_pos:
            base_names |= {*model.hook_names_for("k"), *model.hook_names_for("v")}
        # The base run's values at the patched hooks tell which patches would write the value
        # already there (prompt prefixes shared by clean and corrupted runs): those are skipped.
        self.skip_unchanged = skip_unchanged
        if skip_unchanged:
            base_names |= set(hooks)
        self.base_cache, base_logits = run_cache(model, base, base_names, self.T)
        self.source_cache, source_logits = run_cache(model, source, set(hooks), self.T)
        self.source_metric = run_metric(readout, source_logits, "the source run")
        self.base_logits = base_logits  # [B, T, V]
        rows = torch.arange(self.B, device=base_logits.device)
        self.answer_pos = readout.task.answer_pos.to(base_logits.device)
        self.base_answer = base_logits[rows, self.answer_pos]  # [B, V]
        self._tasks: dict[int, Task] = {}
        self.base_metric = run_metric(readout, base_logits, "the unpatched base run")
        self.trims = self.skip_pos and self.mid and _trimmable(model, readout, self.answer_pos)
        self.lean = LeanBlocks.build(model) if self.mid else None
        self._lean_checked = False
        self._no_past = base_logits.new_zeros(self.B, 0, model.n_key_value_heads, model.d_head)

    # ------------------------------------------------------------------ public

    def run(self, patches: Sequence[Sequence[Node]]) -> Float[Tensor, "n_patches batch"]:
        """Metric per prompt for every node set; one row per set, on the CPU."""
        units, kept = self.plan(patches)
        out = self.base_metric[None].repeat(len(patches), 1).clone()
        total = sum(len(u.rows) for u in units)
        bar = tqdm(total=total, desc=self.desc, disable=not self.progress, unit="patch")
        with bar, fused(self.model):
            for u in units:
                vals = self._forward(u.layer, u.start, u.narrow, [kept[i] for i in u.rows])
                out[torch.tensor(u.rows, device=out.device)] = vals
                bar.update(len(u.rows))
        return out.float().cpu()

    def plan(
        self, patches: Sequence[Sequence[Node]]
    ) -> tuple[list[PatchUnit], dict[int, list[Node]]]:
        """The stacked forwards that compute every node set (the work units of a sweep), and the
        sets' nodes that can change the metric. Sets left out of every unit keep the base
        metric exactly. The plan depends only on the model, the task and the budget, so every
        worker of a distributed sweep computes the same units as the local loop."""
        groups: dict[tuple[int, int, bool], list[int]] = defaultdict(list)
        kept: dict[int, list[Node]] = {}
        answers = set(self.answer_pos.tolist())
        last = self.model.n_layers - 1
        for i, nodes in enumerate(patches):
            live = [n for n in nodes if _within(n, self.T)]
            if not live:
                continue  # the patch sits after every answer: it cannot change the metric
            if self.skip_unchanged and all(self._unchanged(nd) for nd in live):
                continue  # writes what the base run already has there: the base metric, exactly
            layer = min(n.layer for n in live) if self.mid else 0
            start = min(n.start for n in live) if self.skip_pos else 0
            narrow = self.skip_pos and self.mid and _query_side(live, layer, start)
            if narrow and layer == last and self.readout.answer_only and start not in answers:
                continue  # changes one last-layer position that no metric reads
            kept[i] = live
            groups[(layer, start, narrow)].append(i)
        units = []
        for (layer, start, narrow), idx in sorted(groups.items()):
            n_max = self._chunk(layer, start)
            for c in range(0, len(idx), n_max):
                units.append(PatchUnit(layer, start, narrow, tuple(idx[c : c + n_max])))
        return units, kept

    def forward(self, unit: PatchUnit, nodes: list[list[Node]]) -> Tensor:
        """The metric [len(unit.rows), batch] of one unit's node sets (`nodes`, in the order of
        `unit.rows`), on the model's device. Run it inside `fused(model)`, as `run` does."""
        return self._forward(unit.layer, unit.start, unit.narrow, nodes)

    # ----------------------------------------------------------------- helpers

    def _unchanged(self, node: Node) -> bool:
        """Whether the source activation equals the base run's, bit for bit, where `node`
        patches (then the patched run is the base run)."""
        src, base = self.source_cache[node.hook], self.base_cache[node.hook]
        pos = slice(None) if node.pos is None else node.pos
        if node.target == "pattern":  # [batch, head, dest, src]
            s = slice(None) if node.src_pos is None else node.src_pos
            return torch.equal(src[:, node.head, pos, s], base[:, node.head, pos, s])
        if node.target in HEAD_TARGETS:  # [batch, pos, head, d_head]
            return torch.equal(src[:, pos, node.head], base[:, pos, node.head])
        return torch.equal(src[:, pos], base[:, pos])  # [batch, pos, d_model]

    def _chunk(self, layer: int, start: int) -> int:
        """How many patched copies of the batch fit the memory budget in one forward."""
        m = self.model
        t = self.T - start
        per_pos = m.d_model * 8 + m.d_mlp * 2 + m.n_heads * (self.T * 3 + m.d_head * 4)
        kv = 2 * (m.n_layers - layer) * start * m.n_key_value_heads * m.d_head
        logits = self.model.d_vocab * (1 if self.readout.answer_only else self.T)
        row = 4 * (t * per_pos + kv + logits) * self.B
        return max(1, self.budget // max(1, row))

    def _task(self, n: int) -> Task:
        if n not in self._tasks:
            rep = self.readout.task[torch.arange(self.B).repeat(n)]
            if self.readout.answer_only:
                rep = replace(rep, answer_pos=torch.zeros(len(rep), dtype=torch.long))
            self._tasks[n] = rep
        return self._tasks[n]

    def _patched(self, resid: Tensor, start: int) -> Tensor:
        """Final residuals [N, B, t, d] of positions start..start+t-1 -> metric [N, B].

        Positions outside that window are the base run's: before it the patch cannot reach
        them, after it (a last-layer patch at one position) nothing changed them."""
        n, stop = resid.shape[0], start + resid.shape[2]
        if self.readout.answer_only:
            local = (self.answer_pos - start).clamp(0, stop - start - 1)
            rows = torch.arange(self.B, device=resid.device)
            picked = self.model.unembed(resid[:, rows, local])  # [N, B, V]
            inside = ((self.answer_pos >= start) & (self.answer_pos < stop))[None, :, None]
            logits = torch.where(inside, picked, self.base_answer[None])[:, :, None]
        else:
            base = self.base_logits[None].expand(n, -1, -1, -1)
            parts = [base[:, :, :start], self.model.unembed(resid), base[:, :, stop:]]
            logits = torch.cat(parts, dim=2)
        flat = logits.reshape(n * self.B, *logits.shape[2:])
        return self.readout(flat, self._task(n)).reshape(n, self.B)

    def _past(self, layer: int, start: int) -> tuple[Tensor, Tensor]:
        """The base run's keys and values of positions < start at `layer`, [B, start, ...]."""
        if start == 0:  # (without position skipping the base cache holds no keys/values)
            return self._no_past, self._no_past
        cache, m = self.base_cache, self.model
        return cache[m.hook_name("k", layer)][:, :start], cache[m.hook_name("v", layer)][:, :start]

    def _kv(self, layers: range, start: int, n: int) -> list[Any] | None:
        """Frozen KV-cache entries holding the base run's keys/values of positions < start."""
        if start == 0:
            return None
        entries = {}
        for i in layers:
            k, v = self._past(i, start)
            entries[i] = (k.repeat(n, 1, 1, 1), v.repeat(n, 1, 1, 1))
        return kvc.frozen_cache(self.model, entries)

    def _forward(self, layer: int, start: int, narrow: bool, patches: list[list[Node]]) -> Tensor:
        model, n, B, L = self.model, len(patches), self.B, self.model.n_layers
        hooks = [*self.base.hooks] if not self.mid else []
        masks = _masks(patches, start, self.T, self.source_cache, layer if narrow else None)
        for name, (mask, src) in masks.items():
            hooks.append((name, _setter(mask, src, n, B)))
        # The last layer only has to produce the answer query when no patch sits in it.
        trim = self.trims and max(nd.layer for ps in patches for nd in ps) < L - 1
        stop = L - 1 if trim else L
        with torch.inference_mode(), model.hooks(hooks):
            if not self.mid:
                tokens = self.base.tokens[:, : self.T].repeat(n, 1)
                x = model.forward(tokens, stop_at_layer=stop)
                if trim:
                    x = self._answer_query(x, start, n)
                return self._patched(x.reshape(n, B, *x.shape[1:]), self.T - 1 if trim else start)
            elif narrow:
                # Query-side patches at `start` change only that position in their own layer:
                # run it alone there, then the later layers on positions start.. as usual.
                x = self.base_cache[model.hook_name("resid_pre", layer)][:, start : start + 1]
                kv = self._kv(range(layer, layer + 1), start, n)
                x = model.forward(
                    x.repeat(n, 1, 1),
                    start_at_layer=layer,
                    stop_at_layer=layer + 1,
                    past_kv_cache=kv,
                )
                nxt = layer + 1
                if nxt < L:
                    after = self.base_cache[model.hook_name("resid_pre", nxt)][:, start + 1 :]
                    x = torch.cat([x, after.repeat(n, 1, 1)], dim=1)
            else:
                x = self.base_cache[model.hook_name("resid_pre", layer)][:, start:]
                x = x.repeat(n, 1, 1)
                nxt = layer
            x, first = self._later(x, nxt, start, n, trim)
            return self._patched(x.reshape(n, B, *x.shape[1:]), first)

    def _later(self, x: Tensor, nxt: int, start: int, n: int, trim: bool) -> tuple[Tensor, int]:
        """Layers nxt.. on positions start.. (only the answer query in the last layer when
        `trim`): residuals and the position of their first row. Hooked layers run in
        TransformerLens; the unhooked ones after them in `LeanBlocks` where the model allows."""
        L = self.model.n_layers
        if self.lean is None or nxt >= L:
            return self._later_tl(x, nxt, start, n, trim)
        hooked = self.model.hooked_layers() & set(range(nxt, L))
        split = max(hooked) + 1 if hooked else nxt
        if split == L:
            return self._later_tl(x, nxt, start, n, trim)
        if split > nxt:
            kv = self._kv(range(nxt, split), start, n)
            x = self.model.forward(x, start_at_layer=nxt, stop_at_layer=split, past_kv_cache=kv)
        layers = range(split, L)
        past = [self._past(i, start) for i in layers]
        out = self.lean.run(x, layers, past, n, last_only=trim)
        if not self._lean_checked:
            # Once per run: the lean blocks must reproduce TransformerLens' forward.
            self._lean_checked = True
            ref, _ = self._later_tl(x, split, start, n, trim)
            tol = 1e-4 * float(ref.abs().max().clamp_min(1.0))
            if not torch.allclose(out, ref, rtol=0.0, atol=tol):
                warnings.warn(
                    f"{self.model.name}: the lean block forward differs from TransformerLens' "
                    f"by {float((out - ref).abs().max()):.2e}; patching goes on with "
                    "TransformerLens' forward (slower).",
                    stacklevel=4,
                )
                self.lean, out = None, ref
        return out, (self.T - 1 if trim else start)

    def _later_tl(self, x: Tensor, nxt: int, start: int, n: int, trim: bool) -> tuple[Tensor, int]:
        L = self.model.n_layers
        stop = L - 1 if trim else L
        if nxt < stop:
            kv = self._kv(range(nxt, stop), start, n)
            x = self.model.forward(x, start_at_layer=nxt, stop_at_layer=stop, past_kv_cache=kv)
        if trim and nxt < L:
            return self._answer_query(x, start, n), self.T - 1
        return x, start

    def _answer_query(self, x: Tensor, start: int, n: int) -> Tensor:
        """The last block at the (shared) answer position only, given its input at positions
        start..T-1: the other positions contribute just their keys and values."""
        model = self.model
        L = model.n_layers
        k, v = (c.repeat(n, 1, 1, 1) for c in self._past(L - 1, start))
        if x.shape[1] > 1:
            # Keys/values exactly as the block computes them (cached before any rotary).
            k_new, v_new = kvc.block_keys_values(model, L - 1, x[:, :-1])
            k, v = torch.cat([k, k_new], dim=1), torch.cat([v, v_new], dim=1)
        kv = kvc.frozen_cache(model, {L - 1: (k, v)})
        return model.forward(x[:, -1:], start_at_layer=L - 1, stop_at_layer=L, past_kv_cache=kv)


def _trimmable(model: Model, readout: Readout, answer_pos: Tensor) -> bool:
    """Whether the last layer can run for the answer query alone: built-in metrics, one answer
    position shared by all prompts (the last kept one), and keys/values the block computes from
    its normalised input in one piece (not split per head)."""
    return (
        readout.answer_only
        and bool((answer_pos == readout.seq_len - 1).all())
        and kvc.keys_from_normed_input(model)
    )


# Targets whose patch at (layer, p) changes only position p's output of that layer: the query
# side of attention, the MLP, and the residual after attention.
QUERY_SIDE = ("z", "q", "pattern", "attn_out", "mlp_out", "resid_mid", "resid_post")


def _query_side(nodes: list[Node], layer: int, start: int) -> bool:
    """Every node at the first patched layer is query-side at position `start` exactly."""
    return all(n.target in QUERY_SIDE and n.pos == start for n in nodes if n.layer == layer)


def _within(node: Node, seq_len: int) -> bool:
    return (node.pos is None or node.pos < seq_len) and (
        node.src_pos is None or node.src_pos < seq_len
    )


def _masks(
    patches: list[list[Node]],
    start: int,
    seq_len: int,
    source: dict[str, Tensor],
    narrow_layer: int | None = None,
) -> dict[str, tuple[Tensor, Tensor]]:
    """Per hook: a boolean mask [N, 1, *act] of what to overwrite, and the source [1, B, *act].

    Activations cover positions start.. (keys: 0..), or only `start` in `narrow_layer`."""
    out: dict[str, tuple[Tensor, Tensor]] = {}
    n = len(patches)
    for i, nodes in enumerate(patches):
        for node in nodes:
            if node.hook not in out:
                t = 1 if node.layer == narrow_layer else seq_len - start
                src = source[node.hook]
                shape: tuple[int, ...]
                if node.target == "pattern":
                    src = src[:, :, start : start + t, : start + t]
                    shape = (n, 1, src.shape[1], t, start + t)
                elif node.target in HEAD_TARGETS:
                    src = src[:, start : start + t]
                    shape = (n, 1, t, src.shape[2], 1)
                else:
                    src = src[:, start : start + t]
                    shape = (n, 1, t, 1)
                mask = torch.zeros(shape, dtype=torch.bool, device=src.device)
                out[node.hook] = (mask, src[None])
            mask = out[node.hook][0]
            pos = slice(None) if node.pos is None else node.pos - start
            if node.target == "pattern":
                if node.src_pos is not None and node.src_pos >= mask.shape[-1]:
                    continue  # a source after the destination: zero in every run
                s = slice(None) if node.src_pos is None else node.src_pos
                mask[i, 0, node.head, pos, s] = True
            elif node.target in HEAD_TARGETS:
                mask[i, 0, pos, node.head] = True
            elif node.target in RESID_TARGETS:
                mask[i, 0, pos] = True
    return out


def _setter(mask: Tensor, src: Tensor, n: int, b: int) -> Callable[[Tensor, Any], Tensor]:
    def hook(act: Tensor, hook: Any) -> Tensor:
        shape = act.shape
        if shape[0] != n * b:
            raise InterpError(f"Patched batch has {shape[0]} rows, expected {n * b} ({hook.name}).")
        stacked = act.reshape(n, b, *shape[1:])
        return torch.where(mask, src.to(act.dtype), stacked).reshape(shape)

    return hook
