"""Probe datasets: one representation per example for every layer or head, read lazily.

Layers are numbered by how many blocks have run: layer 0 is the embedding (``resid_pre`` of
block 0) and layer ``l`` is ``resid_post`` of block ``l - 1``. Head units are ``hook_z`` of each
head. Representations come from a model run (cached only at the probed position), an in-memory
cache, or an on-disk cache read one hook at a time, so memory holds one chunk of units.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from interp.activations.capture import Positions
from interp.activations.disk import DiskCache
from interp.activations.names import layer_of
from interp.errors import InterpError
from interp.models import Model
from interp.models.hooks import hook_name
from interp.results.probes import Over
from interp.tasks.task import Task

Unit = tuple[int, int | None]  # (layer, head)


def unit_hooks(n_layers: int, over: Over) -> list[str]:
    """The hook each layer coordinate (or each layer of heads) is read from."""
    if over == "layers":
        return [hook_name("resid_pre", 0)] + [hook_name("resid_post", l) for l in range(n_layers)]
    if over == "heads":
        return [hook_name("z", l) for l in range(n_layers)]
    raise InterpError(f"over={over!r}: use 'layers' or 'heads'.")


@dataclass
class Features:
    """Per-unit features ``[n, d]`` behind a reader that loads one hook at a time."""

    units: list[Unit]
    hooks: list[str]  # per layer coordinate
    n: int
    read: Callable[[str], Tensor]  # hook -> [n, d] (layers) or [n, heads, d_head] (heads)
    over: Over

    def chunks(self, max_bytes: int = 256 << 20) -> Iterator[tuple[list[int], Tensor]]:
        """(unit indices, features ``[u, n, d]``): layers batched up to about `max_bytes` of
        float64 features, heads one layer at a time (one hook read each)."""
        if self.over == "layers":
            idx: list[int] = []
            parts: list[Tensor] = []
            for i, (layer, _) in enumerate(self.units):
                x = self._checked(self.hooks[layer])
                idx.append(i)
                parts.append(x)
                if sum(p.numel() for p in parts) * 8 >= max_bytes:
                    yield idx, torch.stack(parts)
                    idx, parts = [], []
            if parts:
                yield idx, torch.stack(parts)
        else:
            by_layer: dict[int, list[int]] = {}
            for i, (layer, _) in enumerate(self.units):
                by_layer.setdefault(layer, []).append(i)
            for layer, members in by_layer.items():
                z = self._checked(self.hooks[layer])  # [n, H, d_head]
                heads = [self.units[i][1] for i in members]
                yield members, z[:, heads].permute(1, 0, 2)

    def _checked(self, hook: str) -> Tensor:
        x = self.read(hook).float()
        if x.shape[0] != self.n:
            raise InterpError(f"{hook}: {x.shape[0]} examples, expected {self.n}.")
        if not torch.isfinite(x).all():
            raise InterpError(
                f"{hook} has NaN or inf activations: check the cache (float16 overflow?) or the "
                "examples that produced them."
            )
        return x


def from_model(
    model: Model,
    task: Task,
    over: Over,
    positions: Positions,
    batch_size: int,
    progress: bool,
) -> Features:
    from interp.activations.api import cache

    hooks = unit_hooks(model.n_layers, over)
    acts = cache(
        model, task, names=hooks, positions=positions, batch_size=batch_size, progress=progress
    )
    return Features(
        _units(model.n_layers, model.n_heads, over), hooks, len(task), acts.__getitem__, over
    )


def from_cache(
    store: Mapping[str, Any] | DiskCache | Any,
    n_layers: int | None,
    over: Over,
    positions: Positions,
    answer_pos: Tensor | None,
) -> Features:
    """From an ActivationCache, a dict of tensors, or a DiskCache (read one hook at a time)."""
    names = list(store.keys()) if hasattr(store, "keys") else list(store)
    if n_layers is None:
        found = [layer for n in names if (layer := layer_of(n)) is not None]
        if not found:
            raise InterpError("The cache holds no per-layer activations to probe.")
        n_layers = max(found) + 1
    hooks = unit_hooks(n_layers, over)
    missing = [h for h in hooks if h not in names]
    if missing:
        short = "resid_pre and resid_post" if over == "layers" else "z"
        raise InterpError(
            f"The cache lacks {missing[:3]}{' ...' if len(missing) > 3 else ''}: cache "
            f"names=[{short!r}] (all layers) to probe over {over}."
        )
    per_example_ndim = 1 if over == "layers" else 2
    disk = isinstance(store, DiskCache)
    if answer_pos is None and isinstance(store, DiskCache):
        answer_pos = store.answer_pos

    def read(hook: str) -> Tensor:
        x = store[hook].load() if disk else store[hook]
        x = torch.as_tensor(x)
        if x.ndim == per_example_ndim + 1:
            return x  # cached at one position already
        if x.ndim != per_example_ndim + 2:
            raise InterpError(f"{hook} has shape {tuple(x.shape)}; cannot read it per example.")
        return _at_positions(x, positions, answer_pos, hook)

    first = read(hooks[0])
    n = first.shape[0]
    n_heads = first.shape[1] if over == "heads" else 0
    return Features(_units(n_layers, n_heads, over), hooks, n, read, over)


def _at_positions(x: Tensor, positions: Positions, answer_pos: Tensor | None, hook: str) -> Tensor:
    if positions == "last":
        if answer_pos is None:
            raise InterpError(
                f"{hook} holds every position; pass the task (for its answer positions) or "
                "positions=<int>."
            )
        return x[torch.arange(x.shape[0]), answer_pos.to(x.device)]
    if isinstance(positions, int):
        return x[:, positions]
    raise InterpError(f"positions={positions!r}: probes read 'last' or one int position.")


def _units(n_layers: int, n_heads: int, over: Over) -> list[Unit]:
    if over == "layers":
        return [(l, None) for l in range(n_layers + 1)]
    return [(l, h) for l in range(n_layers) for h in range(n_heads)]


def labels_of(task_or_labels: Task | Tensor | Sequence[Any], n: int | None = None) -> Tensor:
    """The label vector from a Task (its ``labels``) or given directly."""
    if isinstance(task_or_labels, Task):
        if task_or_labels.labels is None:
            raise InterpError(
                f"Task {task_or_labels.name!r} has no labels: use a labelled task such as "
                "interp.tasks.facts(model, kind='statements') or pass labels=..."
            )
        y = task_or_labels.labels
    else:
        y = torch.as_tensor(task_or_labels)
    if y.ndim != 1:
        raise InterpError(f"Labels must be one vector, got shape {tuple(y.shape)}.")
    if n is not None and len(y) != n:
        raise InterpError(
            f"Got {len(y)} labels for {n} examples: give exactly one label per cached example."
        )
    if y.is_floating_point() and not torch.isfinite(y).all():
        raise InterpError("Labels contain NaN or inf.")
    return y


def binary_labels(y: Tensor) -> Tensor:
    """Two classes as 0 / 1 (the larger value is 1); anything else is refused with the fix."""
    classes = sorted(set(y.tolist()))
    if len(classes) < 2:
        raise InterpError(
            f"All labels are {classes[0]!r}: a probe needs both classes. Check the task or use "
            "probe='ridge' for continuous targets."
        )
    if len(classes) > 2:
        raise InterpError(
            f"Labels have {len(classes)} classes {classes[:5]}: classification probes are binary "
            "(use probe='ridge' for continuous targets, or relabel one-vs-rest)."
        )
    return (y == classes[1]).long()


#: The Task metadata key naming the two completions of each prompt that make its contrast pair.
CONTRAST_KEY = "contrast"


def contrast_of(task: Task, contrast: tuple[str, str] | None) -> tuple[str, str]:
    """The completions CCS contrasts: the ones given, else the task's own (its generator records
    them in ``metadata["contrast"]``, e.g. the facts statements' ``(" true", " false")``)."""
    if contrast is not None:
        return contrast
    own = task.metadata.get(CONTRAST_KEY)
    if own is None:
        raise InterpError(
            "CCS needs the two completions of each prompt: pass contrast=(' yes', ' no') (or "
            f"build the task with metadata={{{CONTRAST_KEY!r}: (' yes', ' no')}})."
        )
    if isinstance(own, str) or len(own) != 2:
        raise InterpError(
            f"Task {task.name!r} has metadata[{CONTRAST_KEY!r}] = {own!r}: give two completions."
        )
    return str(own[0]), str(own[1])


def contrast_tasks(
    model: Model,
    task: Task,
    contrast: tuple[str, str],
    distractor: tuple[str, str] | None,
    seed: int,
) -> tuple[Task, Task, Tensor | None]:
    """``x+`` / ``x-`` tasks: each prompt completed by ``contrast[0]`` and ``contrast[1]``.

    With a distractor ``(a, b)``, each pair also starts with ``a`` on one side and ``b`` on the
    other, the side drawn at random: a salient binary feature unrelated to the label (Farquhar
    et al.'s control). Returns the tasks and the distractor orientation (1 = ``a`` on ``x+``).
    """
    if not task.clean_prompts:
        raise InterpError("Contrast pairs are built from prompt strings; this task has none.")
    pos = [p + contrast[0] for p in task.clean_prompts]
    neg = [p + contrast[1] for p in task.clean_prompts]
    orient = None
    if distractor is not None:
        gen = torch.Generator().manual_seed(seed + 7)
        orient = torch.randint(0, 2, (len(pos),), generator=gen)
        a, b = distractor
        pos = [f"{a if o else b} {p}" for p, o in zip(pos, orient.tolist(), strict=True)]
        neg = [f"{b if o else a} {p}" for p, o in zip(neg, orient.tolist(), strict=True)]
    mk = Task.from_prompts
    return mk(model, pos, name=f"{task.name}+"), mk(model, neg, name=f"{task.name}-"), orient
