"""`interp.cache`: activations over a dataset, kept in memory or streamed to disk."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any, Literal, overload

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.cache.capture import Positions, capture_batch, check_positions
from interp.cache.disk import ANSWER_POS_KEY, FORMAT, TOKENS_KEY, CacheWriter, DiskCache
from interp.cache.names import resolve_names
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.tasks.task import Task

# TransformerLens' ActivationCache, built by the model handle (the one place that knows
# TransformerLens); named here for the signatures.
ActivationCache = Any


def as_task(model: Model, task_or_prompts: Task | Sequence[str] | Tensor) -> Task:
    """Accept a Task, a list of prompt strings, or a ``[batch, seq]`` token tensor."""
    if isinstance(task_or_prompts, Task):
        return task_or_prompts
    if isinstance(task_or_prompts, Tensor):
        if task_or_prompts.ndim != 2 or task_or_prompts.dtype not in (torch.long, torch.int):
            raise InterpError("Token input must be an integer tensor of shape [batch, seq].")
        if task_or_prompts.shape[0] == 0:
            raise InterpError("The token batch is empty: give at least one prompt.")
        n, s = task_or_prompts.shape
        return Task(task_or_prompts.long(), answer_pos=torch.full((n,), s - 1), name="tokens")
    return Task.from_prompts(model, list(task_or_prompts), name="prompts")


def _fingerprint(model: Model, tokens: Tensor, header: dict[str, Any]) -> str:
    h = hashlib.sha256()
    h.update(repr(sorted(header.items())).encode())
    h.update(tokens.cpu().numpy().tobytes())
    # Cheap model identity: its name, size and a checksum of the unembedding.
    h.update(
        f"{model.name}|{model.info().n_params}|{float(model.W_U.detach().double().sum()):.10e}".encode()
    )
    return h.hexdigest()


def _attention_mask(model: Model, task: Task, rows: slice) -> Tensor | None:
    # Causal models never look right, so right-padding needs no mask; encoders do need one.
    if model.is_causal:
        return None
    pos = task.answer_pos[rows]
    ar = torch.arange(task.seq_len)
    return (ar[None, :] <= pos[:, None]).long()


@overload
def cache(
    model: Model | Any,
    task_or_prompts: Task | Sequence[str] | Tensor,
    names: str | Sequence[str] = ...,
    positions: Positions = ...,
    batch_size: int = ...,
    store: None = ...,
    dtype: torch.dtype | None = ...,
    which: Literal["clean", "corrupt"] = ...,
    progress: bool = ...,
) -> ActivationCache: ...


@overload
def cache(
    model: Model | Any,
    task_or_prompts: Task | Sequence[str] | Tensor,
    names: str | Sequence[str] = ...,
    positions: Positions = ...,
    batch_size: int = ...,
    *,
    store: str | os.PathLike[str],
    dtype: torch.dtype | None = ...,
    which: Literal["clean", "corrupt"] = ...,
    progress: bool = ...,
) -> DiskCache: ...


def cache(
    model: Model | Any,
    task_or_prompts: Task | Sequence[str] | Tensor,
    names: str | Sequence[str] = ("resid_post",),
    positions: Positions = None,
    batch_size: int = 32,
    store: str | os.PathLike[str] | None = None,
    dtype: torch.dtype | None = None,
    which: Literal["clean", "corrupt"] = "clean",
    progress: bool = True,
) -> ActivationCache | DiskCache:
    """Cache activations of `names` over a dataset.

    Args:
        model: a Model handle (or anything `load_model` accepts).
        task_or_prompts: a Task, a list of prompts, or a ``[batch, seq]`` token tensor.
        names: canonical hook names (``blocks.3.attn.hook_z``) or short forms (``"resid_post"``
            means every layer's ``hook_resid_post``). Unknown names fail before any forward pass.
        positions: None for every position, ``"last"`` for each prompt's answer position, an int,
            or a list of ints (a single position drops the position axis).
        batch_size: prompts per forward pass.
        store: None keeps everything in memory and returns a TransformerLens ``ActivationCache``;
            a directory streams each batch to disk and returns a lazily reading ``DiskCache``.
            Rerunning an interrupted call with the same store resumes where it stopped.
        dtype: storage dtype (e.g. ``torch.float16`` halves disk and memory).
        which: cache the clean or the corrupted prompts of a Task.
    """
    model = load_model(model)
    task = as_task(model, task_or_prompts)
    if batch_size < 1:
        raise InterpError(f"batch_size must be at least 1, got {batch_size}.")
    hook_names = resolve_names(names, model.hook_names)
    check_positions(positions, task.seq_len)
    tokens = task.clean_tokens if which == "clean" else task.need_corrupt()
    n = len(task)
    starts = list(range(0, n, batch_size))

    if store is None:
        parts: dict[str, list[Tensor]] = {h: [] for h in hook_names}
        for start in tqdm(starts, desc="cache", disable=not progress, unit="batch"):
            rows = slice(start, start + batch_size)
            acts = capture_batch(
                model,
                tokens[rows],
                hook_names,
                positions,
                task.answer_pos[rows],
                dtype,
                device=model.device,
                attention_mask=_attention_mask(model, task, rows),
            )
            for h in hook_names:
                parts[h].append(acts[h])
        return model.activation_cache({h: torch.cat(v) for h, v in parts.items()})

    header: dict[str, Any] = {
        "format": FORMAT,
        "model": model.name,
        "task": task.name,
        "names": hook_names,
        "positions": positions,
        "dtype": str(dtype).replace("torch.", "") if dtype else None,
        "which": which,
        "batch_size": batch_size,
        "n_examples": n,
    }
    header["fingerprint"] = _fingerprint(model, tokens, header)
    writer = CacheWriter(store, header)
    done = writer.done
    shapes: dict[str, list[int]] = {}
    dtypes: dict[str, str] = {}
    bar = tqdm(total=len(starts), desc="cache", disable=not progress, unit="batch")
    bar.update(len(done))
    for start in starts:
        rows = slice(start, start + batch_size)
        if start in done:
            continue
        acts = capture_batch(
            model,
            tokens[rows],
            hook_names,
            positions,
            task.answer_pos[rows],
            dtype,
            device="cpu",
            attention_mask=_attention_mask(model, task, rows),
        )
        acts[TOKENS_KEY] = tokens[rows].cpu()
        acts[ANSWER_POS_KEY] = task.answer_pos[rows].cpu()
        writer.write(start, acts)
        bar.update(1)
    bar.close()
    # Shapes and dtypes come from the first shard so a resumed run needs no recomputation.
    first = DiskCacheProbe(writer.path, writer.shards[0].file)
    for h in hook_names:
        shapes[h], dtypes[h] = first.shape_dtype(h)
    for key in (TOKENS_KEY, ANSWER_POS_KEY):
        shapes[key], dtypes[key] = first.shape_dtype(key)
    writer.finish(shapes, dtypes)
    return DiskCache(writer.path)


class DiskCacheProbe:
    """Reads per-example shape and dtype of tensors in one shard without loading them."""

    def __init__(self, path: Any, file: str) -> None:
        self.file = os.path.join(path, file)

    def shape_dtype(self, name: str) -> tuple[list[int], str]:
        from safetensors import safe_open

        with safe_open(self.file, framework="pt") as f:
            sl = f.get_slice(name)
            shape = list(sl.get_shape())[1:]
            dtype = {
                "F32": "float32",
                "F16": "float16",
                "BF16": "bfloat16",
                "F64": "float64",
                "I64": "int64",
                "I32": "int32",
            }[sl.get_dtype()]
        return shape, dtype


def load_cache(path: str | os.PathLike[str]) -> DiskCache:
    """Open a finished on-disk cache for lazy reading."""
    return DiskCache(path)
