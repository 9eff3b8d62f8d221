"""Activations streamed to disk batch by batch and read back lazily.

Layout of a store directory (format ``interp-cache/2``):

    manifest.json              the settings that made it (model, inputs, names, positions, dtype,
                               which, batch_size, n_examples and a fingerprint of them), each
                               tensor's per-example shape and dtype, and the finished shards:
                               file, first and end example, size in bytes, SHA-256
    shards.log                 while a run is unfinished: one such line per finished shard
    .lock                      while a run writes: its lock (`interp.activations.lock`)
    shard-00000032.safetensors one file per batch, named by its first example index: every
                               hook's activations for those examples, plus ``__tokens__``
                               and ``__answer_pos__``; its metadata repeats the fingerprint and
                               its first and end example

Every shard is written to a temporary name and renamed into place before its line (with its
size and checksum) is appended to the log, so a killed run leaves a valid set of shards that a
rerun resumes from. Reads go through safetensors' memory map: ``store["blocks.3.hook_resid_post"]
[10:20]`` touches only the shard(s) holding examples 10..19 of that one hook.

Verification, cheapest first: opening a store checks the manifest (format, field types, dtypes
from an allow-list, shard names inside the store, shards contiguous from 0 to n_examples) and
every shard's size on disk; the first read of a shard in a DiskCache checks its header (rows,
shapes, dtypes, and the start and fingerprint in its metadata: a shard copied over another is
caught here); `DiskCache.verify()` also checksums every shard (a full read of the store, so it
is not done on every open: reading one example of a large shard would cost reading it all).
"""

from __future__ import annotations

import bisect
import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

from interp.activations import indexing
from interp.activations.dtypes import stored_dtype
from interp.activations.manifest import (
    ANSWER_POS_KEY,
    MANIFEST,
    SHARD_META,
    TOKENS_KEY,
    DamagedCache,
    Shard,
    check_finished,
    read_manifest,
    rebuild,
)
from interp.errors import InterpError
from interp.files import check_readable, sha256_file


class StoredActivation:
    """One hook's activations on disk; index it like the tensor ``load()`` would return, and
    only the examples needed are read."""

    def __init__(self, store: DiskCache, name: str) -> None:
        self._store = store
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return self._store.shape_of(self.name)

    @property
    def dtype(self) -> torch.dtype:
        return self._store.dtype_of(self.name)

    def __len__(self) -> int:
        return self._store.n_examples

    def __getitem__(self, idx: Any) -> Tensor:
        return self._store.read(self.name, idx)

    def load(self) -> Tensor:
        """Read every example of this hook into memory."""
        return self._store.read(self.name, slice(None))

    def __repr__(self) -> str:
        return f"StoredActivation({self.name!r}, shape={self.shape}, dtype={self.dtype})"


class DiskCache(Mapping[str, StoredActivation]):
    """A finished on-disk activation cache: a mapping hook name -> StoredActivation."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not (self.path / MANIFEST).exists():
            what = "does not exist" if not self.path.exists() else f"has no {MANIFEST}"
            raise InterpError(
                f"{self.path} is not an activation cache (it {what}); build one with "
                f"interp.cache(model, task, store={str(self.path)!r})."
            )
        self.manifest: dict[str, Any] = read_manifest(self.path)
        if self.manifest.get("complete") is not True:
            raise InterpError(
                f"{self.path} is an unfinished cache (the run was interrupted). Run the same "
                "interp.cache(...) call again with this store to resume it."
            )
        self.shards: list[Shard] = check_finished(self.path, self.manifest)
        for shard in self.shards:
            self._check_size(shard)
        self._dtypes = {k: stored_dtype(v) for k, v in self.manifest["dtypes"].items()}
        self._first_rows = [s.start for s in self.shards]
        self._starts = torch.tensor(self._first_rows)
        # What this instance checked: shards' metadata, and (shard, name) shapes and dtypes.
        self._checked_meta: set[int] = set()
        self._checked: set[tuple[int, str]] = set()

    def _check_size(self, shard: Shard) -> None:
        file = self.path / shard.file
        try:
            size = file.stat().st_size
        except FileNotFoundError:
            raise DamagedCache(self.path, file, "the shard is missing") from None
        if size != shard.bytes:
            raise DamagedCache(
                self.path,
                file,
                f"the shard has {size} bytes where the manifest records "
                f"{shard.bytes} (cut short or replaced)",
            )

    @property
    def names(self) -> list[str]:
        return list(self.manifest["names"])

    @property
    def n_examples(self) -> int:
        return int(self.manifest["n_examples"])

    def shape_of(self, name: str) -> tuple[int, ...]:
        return (self.n_examples, *self.manifest["shapes"][name])

    def dtype_of(self, name: str) -> torch.dtype:
        dtype = self._dtypes[name]
        assert dtype is not None  # check_finished allowed only listed dtypes
        return dtype

    def __getitem__(self, name: str) -> StoredActivation:
        if name not in self.manifest["names"]:
            raise KeyError(f"{name!r} is not in this cache; it holds {self.names}.")
        return StoredActivation(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def tokens(self) -> Tensor:
        return self.read(TOKENS_KEY, slice(None))

    @property
    def answer_pos(self) -> Tensor:
        return self.read(ANSWER_POS_KEY, slice(None))

    def read(self, name: str, idx: Any) -> Tensor:
        """``tensor[idx]`` of hook `name`, reading only the shards that hold the examples."""
        plan = indexing.plan(idx, self.shape_of(name))
        rows = plan.rows
        if isinstance(rows, range) and rows.step == 1:
            block = self._read_range(name, rows.start, rows.stop)
        else:
            block = self._read_rows(name, torch.as_tensor(rows, dtype=torch.long))
        return indexing.apply(block, plan.then)

    def _empty(self, name: str) -> Tensor:
        return torch.empty((0, *self.manifest["shapes"][name]), dtype=self.dtype_of(name))

    def _read_rows(self, name: str, rows: Tensor) -> Tensor:
        """Examples `rows` (in [0, n), any order) of `name`, in that order."""
        if not rows.numel():
            return self._empty(name)
        shard_of = torch.searchsorted(self._starts, rows, right=True) - 1
        parts: list[Tensor] = []
        order: list[Tensor] = []
        for k in shard_of.unique().tolist():
            where = (shard_of == k).nonzero()[:, 0]
            local = rows[where] - self.shards[k].start
            lo, hi = int(local.min()), int(local.max()) + 1
            with self._open(k, name) as f:
                block = f.get_slice(name)[lo:hi]
            parts.append(block[local - lo])
            order.append(where)
        out = torch.cat(parts)
        inv = torch.empty_like(torch.cat(order))
        inv[torch.cat(order)] = torch.arange(len(inv))
        return out[inv]

    def _read_range(self, name: str, start: int, stop: int) -> Tensor:
        parts = []
        k = max(bisect.bisect_right(self._first_rows, start) - 1, 0)  # the shard holding start
        while start < stop and k < len(self.shards) and self.shards[k].start < stop:
            shard = self.shards[k]
            lo, hi = max(start, shard.start), min(stop, shard.stop)
            with self._open(k, name) as f:
                parts.append(f.get_slice(name)[lo - shard.start : hi - shard.start])
            k += 1
        return torch.cat(parts) if parts else self._empty(name)

    @contextmanager
    def _open(self, k: int, name: str) -> Iterator[Any]:
        """Shard `k`, opened to read `name`. The first time this instance opens the shard its
        metadata is checked, and the first time it reads `name` there, that tensor's shape and
        dtype."""
        file = self.path / self.shards[k].file
        try:
            handle = safe_open(file, framework="pt")
        except Exception as e:
            # safetensors reports an unreadable file as missing: tell which it is.
            check_readable(file, "activation cache shard", rebuild(self.path))
            raise DamagedCache(self.path, file, f"the shard cannot be read ({e})") from None
        with handle as f:
            if k not in self._checked_meta:
                self._check_meta(f, k)
                self._checked_meta.add(k)
            if (k, name) not in self._checked:
                self._check_tensor(f, k, name)
                self._checked.add((k, name))
            yield f

    def _check_meta(self, f: Any, k: int) -> None:
        shard = self.shards[k]
        file = self.path / shard.file
        try:
            meta = json.loads((f.metadata() or {})[SHARD_META])
            assert isinstance(meta, dict)
        except (KeyError, ValueError, AssertionError):
            raise DamagedCache(self.path, file, "the shard lacks interp's metadata") from None
        if meta.get("fingerprint") != self.manifest["fingerprint"]:
            raise DamagedCache(self.path, file, "the shard belongs to another activation cache")
        if (meta.get("start"), meta.get("stop")) != (shard.start, shard.stop):
            raise DamagedCache(
                self.path,
                file,
                f"the shard holds examples {meta.get('start')}..{meta.get('stop')} where the "
                f"manifest expects {shard.start}..{shard.stop} (another shard copied over it?)",
            )

    def _check_tensor(self, f: Any, k: int, name: str) -> None:
        shard = self.shards[k]
        file = self.path / shard.file
        keys = f.keys()  # a safetensors handle, not a dict
        if name not in keys:
            raise DamagedCache(self.path, file, f"the shard lacks {name}")
        sl = f.get_slice(name)
        shape = list(sl.get_shape())
        want = [shard.stop - shard.start, *self.manifest["shapes"][name]]
        if shape != want:
            raise DamagedCache(
                self.path,
                file,
                f"{name} has shape {shape} ({shape[:1]} rows) where the manifest records {want}",
            )
        if sl[0:0].dtype != self.dtype_of(name):  # an empty read: the header only
            raise DamagedCache(self.path, file, f"{name} is not {self.manifest['dtypes'][name]}")

    def verify(self) -> None:
        """Checksum every shard against the manifest (and check its size and header).

        Reads the whole store once; raises an InterpError naming every damaged shard.
        """
        problems = []
        for k, shard in enumerate(self.shards):
            file = self.path / shard.file
            try:
                self._check_size(shard)
                if sha256_file(file) != shard.sha256:
                    raise DamagedCache(self.path, file, "its checksum differs from the manifest's")
                self._checked_meta.discard(k)
                self._checked = {c for c in self._checked if c[0] != k}
                for name in [*self.names, TOKENS_KEY, ANSWER_POS_KEY]:
                    with self._open(k, name):
                        pass
            except PermissionError:
                problems.append(f"{file}: permission denied")
            except DamagedCache as e:
                problems.append(f"{e.file}: {e.problem}")
            except InterpError as e:
                problems.append(str(e))
        if problems:
            raise InterpError(
                f"{len(problems)} damaged shard(s) in {self.path}:\n  "
                + "\n  ".join(problems)
                + f"\nThe activation cache is damaged; {rebuild(self.path)}."
            )

    def to_activation_cache(self, model: Any) -> Any:
        """Load everything into a TransformerLens ActivationCache bound to `model` (a Model
        handle or anything `load_model` accepts; small caches only)."""
        from interp.models import load_model

        tensors = {n: self.read(n, slice(None)) for n in self.names}
        return load_model(model).activation_cache(tensors)

    def __repr__(self) -> str:
        return f"DiskCache({str(self.path)!r}, {self.n_examples} examples, {len(self)} hooks)"


__all__ = ["DiskCache", "StoredActivation"]
