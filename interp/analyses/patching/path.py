"""Path patching (Wang et al. 2022; Goldowsky-Dill et al. 2023): a sender's effect on receivers
through direct paths only (METHODS.md section 5).

1. Run x_orig and x_new, caching head outputs.
2. Run x_orig with the sender patched from x_new and every other attention head frozen at its
   x_orig value (MLPs recomputed); record the receivers' inputs (q/k/v of receiver heads, or the
   final residual for the direct effect on the logits).
3. Run x_orig with only those receiver inputs patched; measure the metric.

Patching a head's q (k, v) is patching that head's query (key, value) input: q is a linear map
of it. Many senders share one forward by stacking them on the batch axis.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.analyses.patching.build import build_result
from interp.analyses.patching.contrast import Contrast
from interp.analyses.patching.nodes import Node, NodeLike, as_node
from interp.analyses.patching.readout import (
    DEFAULT_BUDGET,
    Readout,
    make_readout,
    parse_budget,
    run_metric,
)
from interp.analyses.patching.runs import Corruption, Input, run_cache
from interp.checks import checked
from interp.deprecation import renamed
from interp.errors import InterpError
from interp.kernels import fused
from interp.models import Model, load_model
from interp.results.base import Coord
from interp.results.patching import Mode, PathPatchResult
from interp.tasks.metrics import Metric, warn_nonfinite
from interp.tasks.task import Task

Receivers = str | Sequence[NodeLike]


@renamed(direction="mode")
@checked
def path_patch(
    model: Model | Any,
    task: Task,
    sender: NodeLike | tuple[int, int] | Sequence[NodeLike] | None = None,
    receivers: Receivers = "logits",
    mode: Mode = "noise",
    metric: str | Metric = "logit_diff",
    corruption: Corruption = "task",
    n_boot: int = 1000,
    seed: int = 0,
    memory_budget: int | str = DEFAULT_BUDGET,
    progress: bool = True,
) -> PathPatchResult:
    """Effect of the sender(s) on the receivers through direct paths.

    Args:
        sender: a head (``"L1H0"`` or ``(1, 0)``), an MLP (``"mlp_out:L1"``), a list of them
            (one score each), or None: every head in a layer before the first receiver
            (a layer x head grid, NaN where a head cannot send).
        receivers: ``"logits"`` (direct effect on the output) or head inputs such as
            ``["q:L3H2", "k:L3H2", "v:L3H6"]`` (k/v by key-value head).
        mode: ``"noise"`` (x_orig = clean, x_new = corrupted; Wang et al.'s setting, scores
            near -1 mean the path carries the behaviour) or ``"denoise"`` (the reverse).
        metric, corruption, n_boot, seed, memory_budget, progress: as in `activation_patch`.
    """
    model = load_model(model)
    model.require("path_patch", "logits", "hooked")
    recv = _receivers(model, receivers)
    first = min((n.layer for n in recv), default=model.n_layers)
    grid = sender is None
    if grid:
        senders = [Node("z", l, h) for l in range(first) for h in range(model.n_heads)]
        if not senders:
            raise InterpError("No head sits before the first receiver: nothing can send to it.")
    elif isinstance(sender, Node | str) or (
        isinstance(sender, tuple) and len(sender) == 2 and isinstance(sender[0], int)
    ):
        senders = [as_node(model, sender)]  # type: ignore[arg-type]
    else:
        senders = [as_node(model, s) for s in sender]  # type: ignore[union-attr]
    for s in senders:
        _check_sender(s, recv, first)
    contrast = Contrast.of(model, task, corruption, mode)
    readout = make_readout(model, task, metric, contrast.reference_logits(model, metric))
    # x_orig is the run that is patched (the base), x_new the source of the sender's output.
    runner = _PathRunner(
        model, readout, contrast.base, contrast.source, senders, recv, parse_budget(memory_budget)
    )
    contrast = contrast.measured(base=runner.orig_metric, source=runner.new_metric)
    raw = runner.run(progress)  # [n_senders, batch]
    warn_nonfinite(raw.T, "patched runs", [str(s) for s in senders])
    if grid:
        full = torch.full((len(task), model.n_layers, model.n_heads), float("nan"))
        full[:, :first] = raw.T.reshape(len(task), first, model.n_heads)
        per_prompt = full
        dims: tuple[str, ...] = ("layer", "head")
        coords: dict[str, list[Coord]] = {
            "layer": list(range(model.n_layers)),
            "head": list(range(model.n_heads)),
        }
    else:
        per_prompt = raw.T
        dims = ("sender",)
        coords = {"sender": [str(s) for s in senders]}
    recv_desc = receivers if isinstance(receivers, str) else [str(n) for n in recv]
    return build_result(
        PathPatchResult,
        model=model,
        task=task,
        contrast=contrast,
        per_prompt=per_prompt,
        dims=dims,
        coords=coords,
        metric=metric,
        corruption=corruption,
        n_boot=n_boot,
        seed=seed,
        params={"senders": "all heads" if grid else coords["sender"], "receivers": recv_desc},
        title=f"Path patching ({mode}) to {_recv_title(recv_desc)}",
        warn_nan=False,  # cells no sender can reach are NaN by design; raw was checked above
    )


def _recv_title(recv: Any) -> str:
    return recv if isinstance(recv, str) else ", ".join(recv)


def _receivers(model: Model, receivers: Receivers) -> list[Node]:
    if isinstance(receivers, str) and receivers == "logits":
        return []
    items = [receivers] if isinstance(receivers, str | Node) else list(receivers)
    out = []
    for r in items:
        node = as_node(model, r)  # type: ignore[arg-type]
        if isinstance(r, str) and ":" not in r:
            raise InterpError(
                f"Receiver {r!r}: say which input of the head receives, e.g. 'q:{r}', 'k:{r}' "
                "or 'v:{r}', or use receivers='logits'."
            )
        if node.target not in ("q", "k", "v") or node.pos is not None:
            raise InterpError(
                f"Receiver {node}: receivers are head inputs q/k/v over all positions "
                "(e.g. 'q:L3H2') or 'logits'."
            )
        out.append(node)
    if not out:
        raise InterpError("receivers is empty: give e.g. ['q:L3H2'] or 'logits'.")
    return out


def _check_sender(s: Node, recv: list[Node], first: int) -> None:
    if s.target not in ("z", "mlp_out") or s.pos is not None:
        raise InterpError(
            f"Sender {s}: senders are head outputs ('L1H0') or MLPs ('mlp_out:L1') over all "
            "positions."
        )
    if recv and s.layer >= first:
        raise InterpError(
            f"Sender {s} is in layer {s.layer}, not before the first receiver (layer {first}): "
            "a path runs from an earlier layer to a later one."
        )


class _PathRunner:
    def __init__(
        self,
        model: Model,
        readout: Readout,
        orig: Input,
        new: Input,
        senders: list[Node],
        recv: list[Node],
        budget: int,
    ) -> None:
        self.model, self.readout, self.orig, self.senders, self.recv = (
            model,
            readout,
            orig,
            senders,
            recv,
        )
        self.budget = budget
        self.T = readout.seq_len
        names = [*model.hook_names_for("z"), *model.hook_names_for("resid_pre")]
        self.orig_cache, orig_logits = run_cache(model, orig, names, self.T)
        self.new_cache, new_logits = run_cache(model, new, {s.hook for s in senders}, self.T)
        self.orig_metric = run_metric(readout, orig_logits, "the unpatched run")
        self.new_metric = run_metric(readout, new_logits, "the source run")
        self.B = orig.tokens.shape[0]

    def run(self, progress: bool) -> Tensor:
        n_all = len(self.senders)
        m = self.model
        per_pos = m.d_model * 10 + m.d_mlp * 2 + m.n_heads * (self.T * 3 + m.d_head * 8)
        row = 4 * self.B * self.T * per_pos
        chunk = max(1, self.budget // max(1, row))
        out = []
        bar = tqdm(total=n_all, desc="path patch", disable=not progress, unit="sender")
        with bar, fused(self.model):
            for c in range(0, n_all, chunk):
                group = self.senders[c : c + chunk]
                out.append(self._chunk(group))
                bar.update(len(group))
        return torch.cat(out).float().cpu()

    def _forward(self, n: int, start: int, hooks: list[tuple[str, Callable[..., Any]]]) -> Tensor:
        """Final residual [n * B, T, d] of x_orig copies from layer `start` with `hooks`."""
        m = self.model
        x = self.orig_cache[m.hook_name("resid_pre", start)].repeat(n, 1, 1)
        with torch.inference_mode(), m.hooks(hooks):
            out: Tensor = m.forward(x, start_at_layer=start, stop_at_layer=m.n_layers)
        return out

    def _chunk(self, group: list[Node]) -> Tensor:
        model, n = self.model, len(group)
        start = min(s.layer for s in group)
        # Step 2: senders from x_new, every other head frozen at x_orig, MLPs recomputed.
        hooks: list[tuple[str, Callable[..., Any]]] = []
        for l in range(start, model.n_layers):
            hooks.append((model.hook_name("z", l), self._freeze(group, l)))
        mlp_layers = sorted({s.layer for s in group if s.target == "mlp_out"})
        for l in mlp_layers:
            hooks.append((model.hook_name("mlp_out", l), self._send_mlp(group, l)))
        recorded: dict[str, Tensor] = {}

        def record(act: Tensor, hook: Any) -> None:
            recorded[hook.name] = act.clone()

        hooks += [(r.hook, record) for r in {r.hook: r for r in self.recv}.values()]
        final = self._forward(n, start, hooks)
        if not self.recv:
            return self._metric(final, n)
        # Step 3: x_orig with only the receivers' inputs taken from step 2.
        first = min(r.layer for r in self.recv)
        patch_hooks = []
        for hook_name in sorted({r.hook for r in self.recv}):
            heads = sorted(
                {r.head for r in self.recv if r.hook == hook_name and r.head is not None}
            )
            patch_hooks.append((hook_name, _take_heads(recorded[hook_name], heads)))
        final = self._forward(n, first, patch_hooks)
        return self._metric(final, n)

    def _freeze(self, group: list[Node], layer: int) -> Callable[[Tensor, Any], Tensor]:
        n, B = len(group), self.B
        z_orig = self.orig_cache[self.model.hook_name("z", layer)]
        sends = [(i, s.head) for i, s in enumerate(group) if s.target == "z" and s.layer == layer]
        z_new = self.new_cache.get(self.model.hook_name("z", layer))

        def hook(z: Tensor, hook: Any) -> Tensor:
            out = z_orig.repeat(n, 1, 1, 1).reshape(n, B, *z_orig.shape[1:]).clone()
            for i, h in sends:
                assert z_new is not None
                out[i, :, :, h] = z_new[:, :, h]
            return out.reshape(z.shape)

        return hook

    def _send_mlp(self, group: list[Node], layer: int) -> Callable[[Tensor, Any], Tensor]:
        n, B = len(group), self.B
        new = self.new_cache[self.model.hook_name("mlp_out", layer)]
        rows = [i for i, s in enumerate(group) if s.target == "mlp_out" and s.layer == layer]

        def hook(act: Tensor, hook: Any) -> Tensor:
            out = act.reshape(n, B, *act.shape[1:]).clone()
            out[rows] = new
            return out.reshape(act.shape)

        return hook

    def _metric(self, final: Tensor, n: int) -> Tensor:
        B = self.B
        resid = final.reshape(n, B, *final.shape[1:])
        if self.readout.answer_only:
            ans = self.readout.task.answer_pos.to(resid.device)
            rows = torch.arange(B, device=resid.device)
            logits = self.model.unembed(resid[:, rows, ans])[:, :, None]
            task = self.readout.task[torch.arange(B).repeat(n)]
            task = _at_zero(task)
        else:
            logits = self.model.unembed(resid)
            task = self.readout.task[torch.arange(B).repeat(n)]
        flat = logits.reshape(n * B, *logits.shape[2:])
        return self.readout(flat, task).reshape(n, B)


def _at_zero(task: Task) -> Task:
    from dataclasses import replace

    return replace(task, answer_pos=torch.zeros(len(task), dtype=torch.long))


def _take_heads(recorded: Tensor, heads: list[int]) -> Callable[[Tensor, Any], Tensor]:
    def hook(act: Tensor, hook: Any) -> Tensor:
        out = act.clone()
        out[:, :, heads] = recorded[:, :, heads]
        return out

    return hook
