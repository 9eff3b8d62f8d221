"""Writing a store: one shard per batch, a log of finished shards, resume after a kill.

See `interp.activations.disk` for the layout. The writer holds the store's lock (`StoreLock`) from
opening to closing, so two runs never write one store at once.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from safetensors import safe_open
from torch import Tensor

from interp.activations.dtypes import STORED_DTYPES, dtype_name
from interp.activations.lock import StoreLock
from interp.activations.manifest import (
    FORMAT,
    LOCK,
    MANIFEST,
    SHARD_LOG,
    SHARD_META,
    Shard,
    check_header,
    is_leftover,
    mismatch_error,
    parse_shard,
    read_manifest,
    same_cache,
    shard_file,
)
from interp.errors import InterpError
from interp.files import atomic_write_bytes, atomic_write_text, tensor_bytes


@contextmanager
def _disk_full_hint(path: Path) -> Iterator[None]:
    # A full disk stays an OSError (callers may handle it), with a note saying how to go on.
    try:
        yield
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            e.add_note(
                f"interp.cache: {path} is unfinished but consistent; free disk space and run "
                "the same interp.cache(...) call again to resume it."
            )
        raise


class CacheWriter:
    """Appends batches to a store directory; resumes a matching unfinished store.

    Use it as a context manager: entering checks the directory, takes the lock and reads what
    an earlier run finished; leaving releases the lock. Finished shards are recorded by
    appending one line per shard to ``shards.log`` (constant cost per batch, where rewriting
    the manifest would grow with the number of shards); the manifest is written at the start
    (or resume) and once, complete, at the end.
    """

    def __init__(self, path: str | os.PathLike[str], header: dict[str, Any]) -> None:
        self.path = Path(path)
        self.header = header
        self.shards: dict[int, Shard] = {}
        self._lock = StoreLock(self.path)

    def __enter__(self) -> CacheWriter:
        if self.path.exists() and not self.path.is_dir():
            raise InterpError(f"store={str(self.path)!r} is a file; pass a directory.")
        if not (self.path / MANIFEST).exists() and self.path.is_dir():
            foreign = sorted(p.name for p in self.path.iterdir() if not is_leftover(p.name))
            if foreign:
                raise InterpError(
                    f"{self.path} exists and is not an interp activation cache (it holds "
                    f"{foreign[:3]}); pass an empty or new directory as store=."
                )
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            for p in self.path.iterdir():
                if p.name != LOCK and is_leftover(p.name):
                    p.unlink(missing_ok=True)  # a temporary file of a killed write
            old = read_manifest(self.path) if (self.path / MANIFEST).exists() else None
            if old is not None:
                self._resume(old)
            # Fold the log into the manifest: the log restarts empty and whole.
            with _disk_full_hint(self.path):
                self._write_manifest(complete=False)
            (self.path / SHARD_LOG).unlink(missing_ok=True)
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._lock.release()

    def _expected_stop(self, start: int) -> int | None:
        n, batch = self.header["n_examples"], self.header["batch_size"]
        return min(start + batch, n) if 0 <= start < n and start % batch == 0 else None

    def _resume(self, old: dict[str, Any]) -> None:
        check_header(self.path, old)
        if not same_cache(old, self.header):
            raise mismatch_error(self.path, old, self.header)
        entries = list(old.get("shards") or []) + self._logged()
        for entry in entries:
            shard = parse_shard(entry)
            if isinstance(shard, str) or self._expected_stop(shard.start) != shard.stop:
                continue
            file = self.path / shard.file
            # A missing or cut shard is redone; checksums are checked by DiskCache.verify().
            if file.is_file() and file.stat().st_size == shard.bytes:
                self.shards[shard.start] = shard

    def _logged(self) -> list[Any]:
        log = self.path / SHARD_LOG
        if not log.exists():
            return []
        out = []
        for line in log.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by a kill: its shard is simply redone
        return out

    @property
    def done(self) -> set[int]:
        return set(self.shards)

    def write(self, start: int, tensors: dict[str, Tensor]) -> None:
        self.record(write_shard(self.path, self.header["fingerprint"], start, tensors))

    def record(self, shard: Shard) -> None:
        """Log a shard written (by this process or by a worker) as finished."""
        with _disk_full_hint(self.path), open(self.path / SHARD_LOG, "a") as log:
            log.write(json.dumps(shard.to_json()) + "\n")
            log.flush()
            os.fsync(log.fileno())
        self.shards[shard.start] = shard

    def finish(self) -> None:
        """Record every tensor's per-example shape and dtype (read from the first shard, so a
        resumed run needs no recomputation) and mark the store complete."""
        shapes: dict[str, list[int]] = {}
        dtypes: dict[str, str] = {}
        with safe_open(self.path / self.shards[0].file, framework="pt") as f:
            keys = f.keys()  # a safetensors handle, not a dict
            for key in keys:
                sl = f.get_slice(key)
                shapes[key] = list(sl.get_shape())[1:]
                dtypes[key] = dtype_name(sl[0:0].dtype)  # an empty read: the header only
        unknown = {k: d for k, d in dtypes.items() if d not in STORED_DTYPES}
        if unknown:
            raise InterpError(f"Cannot record dtypes {unknown} in {self.path}: not storable.")
        self.header["shapes"] = shapes
        self.header["dtypes"] = dtypes
        with _disk_full_hint(self.path):
            self._write_manifest(complete=True)
        (self.path / SHARD_LOG).unlink(missing_ok=True)
        for p in self.path.iterdir():  # a temporary file of a worker that died mid-write
            if p.name != LOCK and is_leftover(p.name):
                p.unlink(missing_ok=True)

    def _write_manifest(self, complete: bool) -> None:
        body = {
            **self.header,
            "complete": complete,
            "shards": [self.shards[s].to_json() for s in sorted(self.shards)],
        }
        atomic_write_text(self.path / MANIFEST, json.dumps(body, indent=1))


def write_shard(path: Path, fingerprint: str, start: int, tensors: dict[str, Tensor]) -> Shard:
    """Write one batch's shard into the store at `path`, atomically, and describe it.

    Workers of a distributed run call this themselves (the store is then a shared path), and
    the driver's `CacheWriter.record` logs the result. A unit run twice (its first worker died
    after writing) writes the same bytes again, so either copy is the shard.
    """
    stop = start + next(iter(tensors.values())).shape[0]
    file = path / shard_file(start)
    # The shard names its rows and its cache, so one copied over another is caught on read.
    # One key: safetensors writes several in random order, and a resume must be identical.
    own = {"format": FORMAT, "fingerprint": fingerprint, "start": start}
    meta = {SHARD_META: json.dumps({**own, "stop": stop}, sort_keys=True)}
    with _disk_full_hint(path):
        data = tensor_bytes(tensors, meta)  # serialised once: hashed and written
        atomic_write_bytes(file, data)
    return Shard(file.name, start, stop, len(data), hashlib.sha256(data).hexdigest())
