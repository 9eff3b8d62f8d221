"""Exact patched runs, many at once.

A patch at layer ``l`` leaves every layer before ``l`` unchanged, and (with causal attention) a
patch at position ``p`` leaves every position before ``p`` unchanged. So a patched run starts
from the base run's cached ``resid_pre`` at layer ``l``, computes positions ``p..`` only (keys and
values of earlier positions come from the base run's cache), and many patches share one forward
by being stacked on the batch axis. Logits are computed only where the metric reads them. Metric
values stay on the device until the end: no host sync per patch. The numbers equal one full
forward per patch (TransformerLens' `patching` module) up to float rounding.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from tqdm.auto import tqdm
from transformer_lens.cache.key_value_cache_entry import TransformerLensKeyValueCacheEntry

from interp.analyses.patching.nodes import HEAD_TARGETS, RESID_TARGETS, Node
from interp.analyses.patching.runs import Input
from interp.errors import InterpError
from interp.models import Model
from interp.tasks.metrics import Metric, get_metric
from interp.tasks.task import Task

DEFAULT_BUDGET = 1 << 30  # bytes of activations per stacked forward


def parse_budget(budget: int | str) -> int:
    """``1073741824``, ``"512MiB"``, ``"2GiB"`` -> bytes."""
    if isinstance(budget, int):
        value = budget
    else:
        units = {"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "b": 1}
        text = budget.strip().lower()
        unit = next((u for u in units if text.endswith(u)), None)
        try:
            value = int(float(text[: -len(unit)] if unit else text) * units.get(unit or "b", 1))
        except ValueError:
            raise InterpError(f"memory_budget={budget!r}: write bytes or e.g. '512MiB'.") from None
    if value <= 0:
        raise InterpError(f"memory_budget must be positive, got {budget!r}.")
    return value


@dataclass
class Readout:
    """Turns final residuals into the metric, reading logits only where the metric needs them.

    Built-in metrics read the answer position only, so only those rows are unembedded (and the
    sequence is cut after the last answer position). A custom metric gets full logits: positions
    before the patch come from the base run, which the patch cannot change.
    """

    task: Task
    metric: Metric
    answer_only: bool
    seq_len: int  # positions that can matter

    def __call__(self, logits: Tensor, task: Task) -> Tensor:
        out = self.metric(logits, task)
        if out.ndim != 1 or out.shape[0] != len(task):
            raise InterpError(
                "The metric must return one value per prompt (shape [batch]); got shape "
                f"{tuple(out.shape)}. Reduce inside your metric only over positions/vocab."
            )
        return out


def make_readout(
    model: Model, task: Task, metric: str | Metric, clean_logits: Tensor | None
) -> Readout:
    """Built-in metrics read only the answer position: the readout hands them [rows, 1, vocab]
    logits with answer position 0 (the KL reference is cut the same way)."""
    answer_only = isinstance(metric, str)
    if answer_only and metric == "kl":
        if clean_logits is None:
            raise InterpError("The 'kl' metric needs the clean run's logits as its reference.")
        rows = torch.arange(len(task), device=clean_logits.device)
        ref = clean_logits[rows, task.answer_pos.to(clean_logits.device)][:, None]
        fn = get_metric("kl", reference_logits=ref)
    else:
        fn = get_metric(metric)
    # Later positions cannot reach the answer under causal attention: cut them off.
    cut = answer_only and model.is_causal
    seq_len = int(task.answer_pos.max()) + 1 if cut else task.seq_len
    return Readout(task, fn, answer_only, seq_len)


def run_metric(readout: Readout, logits: Float[Tensor, "batch seq vocab"]) -> Tensor:
    """Metric per prompt of an unpatched run's logits (stays on the device)."""
    task = readout.task
    if readout.answer_only:
        rows = torch.arange(len(task), device=logits.device)
        logits = logits[rows, task.answer_pos.to(logits.device)][:, None]
        task = replace(task, answer_pos=torch.zeros(len(task), dtype=torch.long))
    return readout(logits, task)


def unembed(model: Model, resid: Float[Tensor, "... d_model"]) -> Float[Tensor, "... vocab"]:
    """Final norm + unembedding (+ soft cap), as TransformerLens' forward ends."""
    tl = model.tl
    if tl.cfg.normalization_type is not None:
        resid = tl.ln_final(resid)
    logits = tl.unembed(resid)
    cap = getattr(tl.cfg, "output_logits_soft_cap", 0.0) or 0.0
    if cap > 0:
        logits = cap * torch.tanh(logits / cap)
    return logits


def skips_positions(model: Model) -> bool:
    """Position skipping needs causal attention and positions the KV cache offsets correctly."""
    cfg = model.tl.cfg
    return (
        model.backend == "HookedTransformer"
        and model.is_causal
        and cfg.positional_embedding_type in ("standard", "rotary")
        and not any(t == "local" for t in (getattr(cfg, "attn_types", None) or []))
    )


def starts_mid_model(model: Model) -> bool:
    return (
        model.backend == "HookedTransformer"
        and model.tl.cfg.positional_embedding_type != "shortformer"
    )


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
    ) -> None:
        if model.backend != "HookedTransformer":
            raise InterpError(
                f"Patching runs on TransformerLens HookedTransformer models; {model.name} is "
                f"loaded as {model.backend!r}. Load it by name or local directory instead."
            )
        if not model.has_lm_head:
            raise InterpError(f"{model.name} has no LM head: patching metrics read logits.")
        self.model, self.readout, self.base = model, readout, base
        self.budget, self.progress, self.desc = budget, progress, desc
        self.T = readout.seq_len
        self.B = base.tokens.shape[0]
        self.skip_pos = skips_positions(model)
        self.mid = starts_mid_model(model)
        L = model.n_layers
        base_names = set()
        if self.mid:
            base_names |= {f"blocks.{l}.hook_resid_pre" for l in range(L)}
        if self.skip_pos:
            base_names |= {f"blocks.{l}.attn.hook_{kv}" for l in range(L) for kv in "kv"}
        self.base_cache, base_logits = _run_cache(model, base, base_names, self.T)
        self.source_cache, source_logits = _run_cache(model, source, set(hooks), self.T)
        self.source_metric = run_metric(readout, source_logits)
        self.base_logits = base_logits  # [B, T, V]
        rows = torch.arange(self.B, device=base_logits.device)
        self.answer_pos = readout.task.answer_pos.to(base_logits.device)
        self.base_answer = base_logits[rows, self.answer_pos]  # [B, V]
        self._tasks: dict[int, Task] = {}
        self.base_metric = run_metric(readout, base_logits)

    # ------------------------------------------------------------------ public

    def run(self, patches: Sequence[Sequence[Node]]) -> Float[Tensor, "n_patches batch"]:
        """Metric per prompt for every node set; one row per set, on the CPU."""
        out = self.base_metric[None].repeat(len(patches), 1).clone()
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        kept: dict[int, list[Node]] = {}
        for i, nodes in enumerate(patches):
            live = [n for n in nodes if _within(n, self.T)]
            if not live:
                continue  # the patch sits after every answer: it cannot change the metric
            kept[i] = live
            layer = min(n.layer for n in live) if self.mid else 0
            start = min(n.start for n in live) if self.skip_pos else 0
            groups[(layer, start)].append(i)
        total = sum(len(v) for v in groups.values())
        with tqdm(total=total, desc=self.desc, disable=not self.progress, unit="patch") as bar:
            for (layer, start), idx in sorted(groups.items()):
                n_max = self._chunk(layer, start)
                for c in range(0, len(idx), n_max):
                    chunk = idx[c : c + n_max]
                    vals = self._forward(layer, start, [kept[i] for i in chunk])
                    out[torch.tensor(chunk, device=out.device)] = vals
                    bar.update(len(chunk))
        return out.float().cpu()

    # ----------------------------------------------------------------- helpers

    def _chunk(self, layer: int, start: int) -> int:
        """How many patched copies of the batch fit the memory budget in one forward."""
        cfg = self.model.tl.cfg
        t = self.T - start
        d_mlp = cfg.d_mlp or 0
        per_pos = cfg.d_model * 8 + d_mlp * 2 + cfg.n_heads * (self.T * 3 + cfg.d_head * 4)
        kv = 2 * (self.model.n_layers - layer) * start * self.model.n_key_value_heads * cfg.d_head
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

    def endpoints(self, direction: str) -> tuple[Tensor, Tensor]:
        """(clean, corrupted) metric per prompt, on the CPU, from the two unpatched runs."""
        base, source = self.base_metric.float().cpu(), self.source_metric.float().cpu()
        return (source, base) if direction == "denoise" else (base, source)

    def _patched(self, resid: Tensor, start: int) -> Tensor:
        """Final residuals [N, B, T - start, d] of patched runs -> metric [N, B]."""
        n = resid.shape[0]
        if self.readout.answer_only:
            local = (self.answer_pos - start).clamp_min(0)
            rows = torch.arange(self.B, device=resid.device)
            picked = unembed(self.model, resid[:, rows, local])  # [N, B, V]
            before = (self.answer_pos < start)[None, :, None]
            logits = torch.where(before, self.base_answer[None], picked)[:, :, None]
        else:
            suffix = unembed(self.model, resid)
            prefix = self.base_logits[None, :, :start].expand(n, -1, -1, -1)
            logits = torch.cat([prefix, suffix], dim=2)
        flat = logits.reshape(n * self.B, *logits.shape[2:])
        return self.readout(flat, self._task(n)).reshape(n, self.B)

    def _forward(self, layer: int, start: int, patches: list[list[Node]]) -> Tensor:
        model, n, B = self.model, len(patches), self.B
        hooks = [*self.base.hooks] if not self.mid else []
        for name, (mask, src) in _masks(model, patches, start, self.T, self.source_cache).items():
            hooks.append((name, _setter(mask, src, n, B)))
        tl: Any = model.tl
        with torch.inference_mode(), model.hooks(hooks):
            if not self.mid:
                tokens = self.base.tokens[:, : self.T].repeat(n, 1)
                resid = tl(tokens, stop_at_layer=model.n_layers)
            else:
                x = self.base_cache[f"blocks.{layer}.hook_resid_pre"][:, start:]
                kv: list[Any] | None = None
                if start > 0:
                    kv = [None] * model.n_layers
                    for i in range(layer, model.n_layers):
                        kv[i] = TransformerLensKeyValueCacheEntry(
                            past_keys=self.base_cache[f"blocks.{i}.attn.hook_k"][:, :start].repeat(
                                n, 1, 1, 1
                            ),
                            past_values=self.base_cache[f"blocks.{i}.attn.hook_v"][
                                :, :start
                            ].repeat(n, 1, 1, 1),
                            frozen=True,
                        )
                resid = tl(
                    x.repeat(n, 1, 1),
                    start_at_layer=layer,
                    stop_at_layer=model.n_layers,
                    past_kv_cache=kv,
                )
            resid = resid.reshape(n, B, *resid.shape[1:])
            return self._patched(resid, start)


def _within(node: Node, seq_len: int) -> bool:
    return (node.pos is None or node.pos < seq_len) and (
        node.src_pos is None or node.src_pos < seq_len
    )


def _run_cache(
    model: Model, inp: Input, names: set[str], seq_len: int
) -> tuple[dict[str, Tensor], Tensor]:
    tokens = inp.tokens[:, :seq_len]
    store: dict[str, Tensor] = {}

    def keep(act: Tensor, hook: Any) -> None:
        store[hook.name] = act.detach()

    with torch.inference_mode(), model.hooks([*inp.hooks, *((n, keep) for n in sorted(names))]):
        logits = model.tl(tokens)
    return store, logits


def _masks(
    model: Model, patches: list[list[Node]], start: int, seq_len: int, source: dict[str, Tensor]
) -> dict[str, tuple[Tensor, Tensor]]:
    """Per hook: a boolean mask [N, 1, *act] of what to overwrite, and the source [1, B, *act]."""
    t = seq_len - start
    out: dict[str, tuple[Tensor, Tensor]] = {}
    n = len(patches)
    for i, nodes in enumerate(patches):
        for node in nodes:
            if node.hook not in out:
                src = source[node.hook]
                shape: tuple[int, ...]
                if node.target == "pattern":
                    src = src[:, :, start:, :]
                    shape = (n, 1, src.shape[1], t, src.shape[3])
                elif node.target in HEAD_TARGETS:
                    src = src[:, start:]
                    shape = (n, 1, t, src.shape[2], 1)
                else:
                    src = src[:, start:]
                    shape = (n, 1, t, 1)
                mask = torch.zeros(shape, dtype=torch.bool, device=src.device)
                out[node.hook] = (mask, src[None])
            mask = out[node.hook][0]
            pos = slice(None) if node.pos is None else node.pos - start
            if node.target == "pattern":
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
