"""`interp.cache(...)`: activations over a dataset, kept in memory or streamed to disk."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, overload

import torch
from torch import Tensor
from tqdm.auto import tqdm

from interp.activations.capture import Positions, capture_batch, check_positions
from interp.activations.disk import DiskCache
from interp.activations.dtypes import dtype_name, storage_dtype
from interp.activations.manifest import (
    ANSWER_POS_KEY,
    FORMAT,
    MANIFEST,
    TOKENS_KEY,
    DamagedCache,
    check_header,
    mismatch_error,
    read_manifest,
    same_cache,
)
from interp.activations.names import resolve_names
from interp.activations.writer import CacheWriter
from interp.checks import checked
from interp.models import Model, load_model
from interp.tasks.task import Task, as_task  # as_task: re-exported for old imports

# TransformerLens' ActivationCache, built by the model handle (the one place that knows
# TransformerLens); named here for the signatures.
ActivationCache = Any


def _model_id(model: Model) -> str:
    # Latent hooks read whatever SAE is attached: a store made under one SAE is another model's
    # (the id is unchanged without SAEs, so earlier stores still resume).
    from interp.models.saes import attached_sites, sae_identity

    saes = sorted(f"{site}={sae_identity(m)}" for site, m in attached_sites(model).items())
    if not saes:
        return model.fingerprint()
    return hashlib.sha256("|".join([model.fingerprint(), *saes]).encode()).hexdigest()


def _inputs_id(tokens: Tensor, answer_pos: Tensor) -> str:
    h = hashlib.sha256()
    for t in (tokens, answer_pos):
        h.update(f"{tuple(t.shape)}|".encode())
        h.update(t.detach().cpu().long().numpy().tobytes())
    return h.hexdigest()


def _header(model: Model, task: Task, tokens: Tensor, settings: dict[str, Any]) -> dict[str, Any]:
    """What identifies the cache: a resumed store must match every field (see manifest.py)."""
    header: dict[str, Any] = {
        "format": FORMAT,
        "model": model.name,
        "model_id": _model_id(model),
        "task": task.name,
        "inputs": _inputs_id(tokens, task.answer_pos),
        **settings,
        "n_examples": len(task),
    }
    header = json.loads(json.dumps(header))  # as the manifest will hold it (tuples -> lists)
    header["fingerprint"] = hashlib.sha256(json.dumps(header, sort_keys=True).encode()).hexdigest()
    return header


def _finished(path: Path, header: dict[str, Any]) -> DiskCache | None:
    """The store at `path` if it is finished and made with `header`'s settings.

    Reusing it takes no lock and writes nothing, so a read-only (team) store reruns fine. A
    store that is unfinished or damaged (a shard missing or cut) is left to the writer, which
    resumes or redoes it.
    """
    if not (path / MANIFEST).is_file():
        return None
    old = read_manifest(path)
    if old.get("complete") is not True:
        return None
    check_header(path, old)
    if not same_cache(old, header):
        raise mismatch_error(path, old, header)
    try:
        return DiskCache(path)
    except DamagedCache:
        return None


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
    dtype: torch.dtype | str | None = ...,
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
    dtype: torch.dtype | str | None = ...,
    which: Literal["clean", "corrupt"] = ...,
    progress: bool = ...,
) -> DiskCache: ...


@checked
def cache(
    model: Model | Any,
    task_or_prompts: Task | Sequence[str] | Tensor,
    names: str | Sequence[str] = ("resid_post",),
    positions: Positions = None,
    batch_size: int = 32,
    store: str | os.PathLike[str] | None = None,
    dtype: torch.dtype | str | None = None,
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
        dtype: storage dtype: None (the model's), or a floating dtype or its name
            (``torch.float16`` or ``"float16"`` halves disk and memory; also float32,
            bfloat16, float64). Anything else is refused before any work.
        which: cache the clean or the corrupted prompts of a Task.
    """
    model = load_model(model)
    storage = storage_dtype(dtype)
    task = as_task(model, task_or_prompts)
    hook_names = resolve_names(names, model.hook_names)
    positions = check_positions(positions, task.seq_len)
    tokens = task.clean_tokens if which == "clean" else task.need_corrupt()
    n = len(task)
    starts = list(range(0, n, batch_size))

    def capture(start: int, device: Any) -> dict[str, Tensor]:
        rows = slice(start, start + batch_size)
        return capture_batch(
            model,
            tokens[rows],
            hook_names,
            positions,
            task.answer_pos[rows],
            storage,
            device=device,
            attention_mask=_attention_mask(model, task, rows),
        )

    if store is None:
        parts: dict[str, list[Tensor]] = {h: [] for h in hook_names}
        for start in tqdm(starts, desc="cache", disable=not progress, unit="batch"):
            acts = capture(start, model.device)
            for h in hook_names:
                parts[h].append(acts[h])
        return model.activation_cache({h: torch.cat(v) for h, v in parts.items()})

    settings = {
        "names": hook_names,
        "positions": positions,
        "dtype": dtype_name(storage) if storage else None,
        "which": which,
        "batch_size": batch_size,
    }
    header = _header(model, task, tokens, settings)
    finished = _finished(Path(store), header)
    if finished is not None:
        return finished
    with CacheWriter(store, header) as writer:
        done = writer.done  # only starts of this run's batches (see CacheWriter._resume)
        bar = tqdm(total=len(starts), desc="cache", disable=not progress, unit="batch")
        bar.update(len(done))
        for start in starts:
            if start in done:
                continue
            rows = slice(start, start + batch_size)
            acts = capture(start, "cpu")
            acts[TOKENS_KEY] = tokens[rows].cpu()
            acts[ANSWER_POS_KEY] = task.answer_pos[rows].cpu()
            writer.write(start, acts)
            bar.update(1)
        bar.close()
        writer.finish()
    return DiskCache(writer.path)


def load_cache(path: str | os.PathLike[str], verify: bool = False) -> DiskCache:
    """Open a finished on-disk cache for lazy reading.

    Opening checks the manifest and every shard's size; each shard's header is checked when
    first read. ``verify=True`` also checksums every shard now (reads the whole store once;
    the same as calling ``.verify()``).
    """
    store = DiskCache(path)
    if verify:
        store.verify()
    return store
