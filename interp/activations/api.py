"""`interp.cache(...)`: activations over a dataset, kept in memory or streamed to disk."""

from __future__ import annotations

import hashlib
import json
import os
import socket
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
    Shard,
    check_header,
    mismatch_error,
    read_manifest,
    same_cache,
)
from interp.activations.names import resolve_names
from interp.activations.writer import CacheWriter, write_shard
from interp.checks import checked
from interp.errors import InterpError
from interp.executors import Executor, ExecutorName, Job, executor_for
from interp.models import Model, load_model
from interp.tasks.task import Task, as_task  # as_task: re-exported for old imports

# TransformerLens' ActivationCache, built by the model handle (the one place that knows
# TransformerLens); named here for the signatures.
ActivationCache = Any


def model_id(model: Model) -> str:
    # Latent hooks read whatever SAE is attached: a store made under one SAE is another model's
    # (the id is unchanged without SAEs, so earlier stores still resume).
    from interp.models.saes import attached_sites, sae_identity

    saes = sorted(f"{site}={sae_identity(m)}" for site, m in attached_sites(model).items())
    if not saes:
        return model.fingerprint()
    return hashlib.sha256("|".join([model.fingerprint(), *saes]).encode()).hexdigest()


def inputs_id(tokens: Tensor, answer_pos: Tensor) -> str:
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
        "model_id": model_id(model),
        "task": task.name,
        "inputs": inputs_id(tokens, task.answer_pos),
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


class CacheJob(Job[int, Any]):
    """One batch per unit (its first row): captured, and written to the store when there is one.

    Holds only tensors and settings, so it travels to workers cheaply; the rows are sliced by
    the same starts and batch size as the local loop, so every executor writes identical shards.
    """

    def __init__(
        self,
        tokens: Tensor,
        answer_pos: Tensor,
        hook_names: list[str],
        positions: Positions,
        storage: torch.dtype | None,
        batch_size: int,
        store: Path | None = None,
        fingerprint: str = "",
    ) -> None:
        super().__init__()
        self.tokens, self.answer_pos = tokens.cpu(), answer_pos.cpu()
        self.hook_names, self.positions, self.storage = hook_names, positions, storage
        self.batch_size, self.store, self.fingerprint = batch_size, store, fingerprint

    def run(self, state: Any, model: Model, unit: int) -> Any:
        rows = slice(unit, unit + self.batch_size)
        acts = capture_batch(
            model,
            self.tokens[rows],
            self.hook_names,
            self.positions,
            self.answer_pos[rows],
            self.storage,
            device="cpu" if self.store is not None else model.device,
            attention_mask=self._attention_mask(model, rows),
        )
        if self.store is None:
            return acts
        if not (self.store / MANIFEST).is_file():
            raise InterpError(
                f"The store {self.store} is not visible to this worker ({socket.gethostname()}): "
                "a distributed cache writes from every node, so pass a path on a filesystem "
                "they all share."
            )
        acts[TOKENS_KEY] = self.tokens[rows]
        acts[ANSWER_POS_KEY] = self.answer_pos[rows]
        return write_shard(self.store, self.fingerprint, unit, acts)

    def _attention_mask(self, model: Model, rows: slice) -> Tensor | None:
        # Causal models never look right, so right-padding needs no mask; encoders do need one.
        if model.is_causal:
            return None
        pos = self.answer_pos[rows]
        ar = torch.arange(self.tokens.shape[1])
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
    executor: ExecutorName | Executor = ...,
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
    executor: ExecutorName | Executor = ...,
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
    executor: ExecutorName | Executor = "local",
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
        progress: show a progress bar (one step per batch, whichever worker ran it).
        executor: where the batches run: ``"local"`` (this process), ``"processes"`` (a local
            process pool), ``"ray"`` (a Ray cluster; workers write their shards into `store`,
            which must then be a path every node sees), or an `interp.executors` executor.
            Every executor writes the same bytes, and a store resumes with any of them.
    """
    model = load_model(model)
    storage = storage_dtype(dtype)
    task = as_task(model, task_or_prompts)
    hook_names = resolve_names(names, model.hook_names)
    positions = check_positions(positions, task.seq_len)
    tokens = task.clean_tokens if which == "clean" else task.need_corrupt()
    starts = list(range(0, len(task), batch_size))
    run_on, own = executor_for(executor)
    try:
        run_on.check(model)  # before any forward pass or write
        if store is None:
            job = CacheJob(tokens, task.answer_pos, hook_names, positions, storage, batch_size)
            parts: list[dict[str, Tensor]] = [{} for _ in starts]
            with tqdm(total=len(starts), desc="cache", disable=not progress, unit="batch") as bar:

                def keep(i: int, acts: dict[str, Tensor]) -> None:
                    parts[i] = acts
                    bar.update(1)

                run_on.map(model, job, starts, keep)
            return model.activation_cache(
                {h: torch.cat([p[h].to(model.device) for p in parts]) for h in hook_names}
            )
        return _cache_to_store(
            model, task, tokens, hook_names, positions, storage, which, batch_size,
            Path(store), progress, run_on,
        )  # fmt: skip
    finally:
        if own:
            run_on.close()


def _cache_to_store(
    model: Model,
    task: Task,
    tokens: Tensor,
    hook_names: list[str],
    positions: Positions,
    storage: torch.dtype | None,
    which: str,
    batch_size: int,
    store: Path,
    progress: bool,
    run_on: Executor,
) -> DiskCache:
    settings = {
        "names": hook_names,
        "positions": positions,
        "dtype": dtype_name(storage) if storage else None,
        "which": which,
        "batch_size": batch_size,
    }
    header = _header(model, task, tokens, settings)
    finished = _finished(store, header)
    if finished is not None:
        return finished
    starts = list(range(0, len(task), batch_size))
    with CacheWriter(store, header) as writer:
        todo = [s for s in starts if s not in writer.done]  # see CacheWriter._resume
        job = CacheJob(
            tokens, task.answer_pos, hook_names, positions, storage, batch_size,
            writer.path.resolve(), header["fingerprint"],
        )  # fmt: skip
        with tqdm(total=len(starts), desc="cache", disable=not progress, unit="batch") as bar:
            bar.update(len(starts) - len(todo))

            def record(i: int, shard: Shard) -> None:
                writer.record(shard)
                bar.update(1)

            run_on.map(model, job, todo, record)
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
