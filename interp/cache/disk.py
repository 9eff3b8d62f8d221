"""Activations streamed to disk batch by batch and read back lazily.

Layout of a store directory:

    manifest.json              what is stored, the input fingerprint, and the finished shards
    shards.log                 while a run is unfinished: one line per finished shard
    shard-00000032.safetensors one file per batch, named by its first example index: every
                               hook's activations for those examples, plus ``__tokens__``
                               and ``__answer_pos__``

Every shard is written to a temporary name and renamed into place before its line is appended to
the log, so a killed run leaves a valid set of shards that a rerun resumes from.
Reads go through safetensors' memory map: ``store["blocks.3.hook_resid_post"][10:20]`` touches
only the shard(s) holding examples 10..19 of that one hook.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

from interp.errors import InterpError
from interp.files import atomic_save_tensors, atomic_write_text

FORMAT = "interp-cache/1"
MANIFEST = "manifest.json"
SHARD_LOG = "shards.log"
TOKENS_KEY = "__tokens__"
ANSWER_POS_KEY = "__answer_pos__"


@dataclass(frozen=True)
class Shard:
    file: str
    start: int
    stop: int


class CacheWriter:
    """Appends batches to a store directory; resumes a matching unfinished store.

    Finished shards are recorded by appending one line per shard to ``shards.log`` (constant
    cost per batch, where rewriting the manifest would grow with the number of shards); the
    manifest is written once at the start and once, complete, at the end.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.header = header
        self.shards: list[Shard] = []
        manifest = self.path / MANIFEST
        if manifest.exists():
            old = json.loads(manifest.read_text())
            if old.get("fingerprint") != header["fingerprint"]:
                raise InterpError(
                    f"{self.path} already holds a different activation cache (other model, "
                    "inputs, names, positions or dtype). Pass a new directory, or delete this "
                    "one to recompute."
                )
            found = [Shard(**s) for s in old.get("shards", [])] + self._logged()
            self.shards = sorted(
                {s.start: s for s in found if (self.path / s.file).exists()}.values(),
                key=lambda s: s.start,
            )
        elif self.path.exists() and any(self.path.iterdir()):
            raise InterpError(
                f"{self.path} exists and is not an interp activation cache; pass an empty or "
                "new directory as store=."
            )
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            self._write_manifest(complete=False)
        for stale in self.path.glob(".*.tmp"):
            stale.unlink(missing_ok=True)  # leftovers of a killed write

    def _logged(self) -> list[Shard]:
        log = self.path / SHARD_LOG
        if not log.exists():
            return []
        out = []
        for line in log.read_text().splitlines():
            try:
                out.append(Shard(**json.loads(line)))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut short by a kill: its shard is simply redone
        return out

    @property
    def done(self) -> set[int]:
        return {s.start for s in self.shards}

    def write(self, start: int, tensors: dict[str, Tensor]) -> None:
        n = next(iter(tensors.values())).shape[0]
        shard = Shard(file=f"shard-{start:08d}.safetensors", start=start, stop=start + n)
        atomic_save_tensors(self.path / shard.file, tensors, {"format": FORMAT})
        with open(self.path / SHARD_LOG, "a") as log:
            log.write(json.dumps(shard.__dict__) + "\n")
            log.flush()
            os.fsync(log.fileno())
        self.shards = sorted([*self.shards, shard], key=lambda s: s.start)

    def finish(self, shapes: dict[str, list[int]], dtypes: dict[str, str]) -> None:
        self.header["shapes"] = shapes
        self.header["dtypes"] = dtypes
        self._write_manifest(complete=True)
        (self.path / SHARD_LOG).unlink(missing_ok=True)

    def _write_manifest(self, complete: bool) -> None:
        body = {
            **self.header,
            "complete": complete,
            "shards": [s.__dict__ for s in self.shards],
        }
        atomic_write_text(self.path / MANIFEST, json.dumps(body, indent=1))


class StoredActivation:
    """One hook's activations on disk; index it by example like a tensor to read just that part."""

    def __init__(self, store: DiskCache, name: str) -> None:
        self._store = store
        self.name = name

    @property
    def shape(self) -> tuple[int, ...]:
        return (self._store.n_examples, *self._store.manifest["shapes"][self.name])

    @property
    def dtype(self) -> torch.dtype:
        return getattr(torch, self._store.manifest["dtypes"][self.name])

    def __len__(self) -> int:
        return self._store.n_examples

    def __getitem__(self, idx: int | slice | Sequence[int] | Tensor) -> Tensor:
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
        manifest = self.path / MANIFEST
        if not manifest.exists():
            raise InterpError(f"{self.path} is not an activation cache (no {MANIFEST}).")
        self.manifest: dict[str, Any] = json.loads(manifest.read_text())
        if self.manifest.get("format") != FORMAT:
            raise InterpError(
                f"{self.path}: unsupported cache format {self.manifest.get('format')}."
            )
        if not self.manifest.get("complete"):
            raise InterpError(
                f"{self.path} is an unfinished cache (the run was interrupted). Run the same "
                "interp.cache(...) call again with this store to resume it."
            )
        self.shards = [Shard(**s) for s in self.manifest["shards"]]
        self._starts = torch.tensor([s.start for s in self.shards])

    @property
    def names(self) -> list[str]:
        return list(self.manifest["names"])

    @property
    def n_examples(self) -> int:
        return int(self.manifest["n_examples"])

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

    def read(self, name: str, idx: int | slice | Sequence[int] | Tensor) -> Tensor:
        """Examples `idx` of hook `name`, reading only the shards that hold them."""
        n = self.n_examples
        if isinstance(idx, int):
            if not -n <= idx < n:
                raise IndexError(f"example {idx} out of range for {n} examples")
            return self.read(name, [idx % n])[0]
        if isinstance(idx, slice):
            rows = range(n)[idx]
            if idx.step in (None, 1):
                return self._read_range(name, rows.start, rows.stop)
            idx = list(rows)
        rows_t = torch.as_tensor(idx, dtype=torch.long).reshape(-1)
        if rows_t.numel() and (rows_t.min() < -n or rows_t.max() >= n):
            raise IndexError(f"example indices out of range for {n} examples")
        rows_t = rows_t % n if rows_t.numel() else rows_t
        shard_of = torch.searchsorted(self._starts, rows_t, right=True) - 1
        parts: list[Tensor] = []
        order: list[Tensor] = []
        for k in shard_of.unique().tolist():
            where = (shard_of == k).nonzero()[:, 0]
            shard = self.shards[k]
            local = rows_t[where] - shard.start
            with safe_open(self.path / shard.file, framework="pt") as f:
                sl = f.get_slice(name)
                lo, hi = int(local.min()), int(local.max()) + 1
                block = sl[lo:hi]
            parts.append(block[local - lo])
            order.append(where)
        if not parts:
            return self._read_range(name, 0, 0)
        out = torch.cat(parts)
        inv = torch.empty_like(torch.cat(order))
        inv[torch.cat(order)] = torch.arange(len(inv))
        return out[inv]

    def _read_range(self, name: str, start: int, stop: int) -> Tensor:
        parts = []
        for shard in self.shards:
            lo, hi = max(start, shard.start), min(stop, shard.stop)
            if lo >= hi:
                continue
            with safe_open(self.path / shard.file, framework="pt") as f:
                parts.append(f.get_slice(name)[lo - shard.start : hi - shard.start])
        if not parts:
            with safe_open(self.path / self.shards[0].file, framework="pt") as f:
                return f.get_slice(name)[0:0]
        return torch.cat(parts)

    def to_activation_cache(self, model: Any) -> Any:
        """Load everything into a TransformerLens ActivationCache bound to `model` (a Model
        handle or anything `load_model` accepts; small caches only)."""
        from interp.models import load_model

        tensors = {n: self.read(n, slice(None)) for n in self.names}
        return load_model(model).activation_cache(tensors)

    def __repr__(self) -> str:
        return f"DiskCache({str(self.path)!r}, {self.n_examples} examples, {len(self)} hooks)"
