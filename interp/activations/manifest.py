"""The store layout's names and the checks on a manifest read from disk.

A manifest is untrusted data: every field is checked before it is used, so a damaged or edited
store is an InterpError naming the file and the fix, never wrong rows, a read outside the store
or an arbitrary torch attribute.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from interp.activations.dtypes import STORAGE_DTYPES, stored_dtype
from interp.errors import InterpError
from interp.files import read_json

FORMAT = "interp-cache/2"
MANIFEST = "manifest.json"
SHARD_LOG = "shards.log"
SHARD_META = "interp-cache"  # the shard's safetensors metadata key: JSON of its identity
LOCK = ".lock"
TOKENS_KEY = "__tokens__"
ANSWER_POS_KEY = "__answer_pos__"
# Shard files are plain names inside the store, named by their first example.
SHARD_NAME = re.compile(r"shard-(\d{8,})\.safetensors")
# Temporary files of the atomic writers (".<name>.<random>.tmp") that a kill can leave behind.
LEFTOVER = re.compile(r"\.(manifest\.json|shard-\d{8,}\.safetensors)\..+\.tmp")
_SHA256 = re.compile(r"[0-9a-f]{64}")

# The settings that make two caches the same: a store is resumed only if all of them match.
HEADER_FIELDS = (
    "model",
    "model_id",
    "task",
    "inputs",
    "names",
    "positions",
    "dtype",
    "which",
    "batch_size",
    "n_examples",
)
_ARGUMENTS = ("names", "positions", "dtype", "which", "batch_size")  # cache() arguments


@dataclass(frozen=True)
class Shard:
    file: str
    start: int
    stop: int
    bytes: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def shard_file(start: int) -> str:
    return f"shard-{start:08d}.safetensors"


def is_leftover(name: str) -> bool:
    """A temporary file or lock that a killed writer leaves behind (not foreign content)."""
    return name == LOCK or LEFTOVER.fullmatch(name) is not None


def rebuild(path: Path) -> str:
    return f"delete {path} and run interp.cache(..., store={str(path)!r}) again"


class DamagedCache(InterpError):
    """A failed integrity check: the file, what is wrong with it, and how to rebuild."""

    def __init__(self, path: Path, file: Path, problem: str) -> None:
        self.file, self.problem = file, problem
        super().__init__(f"{file}: {problem}. The activation cache is damaged; {rebuild(path)}.")


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def parse_shard(entry: Any) -> Shard | str:
    """A Shard from a manifest or log entry, or the reason it is not a valid one."""
    if not isinstance(entry, dict) or set(entry) != {"file", "start", "stop", "bytes", "sha256"}:
        return f"shard entry {entry!r} lacks file, start, stop, bytes or sha256"
    file, start, stop = entry["file"], entry["start"], entry["stop"]
    if not isinstance(file, str) or not SHARD_NAME.fullmatch(file):
        return (
            f"shard entry names file {file!r}, which is not a shard file name inside the store "
            "(shard-NNNNNNNN.safetensors)"
        )
    if not (_is_int(start) and _is_int(stop) and 0 <= start < stop):
        return f"shard {file} has rows {start!r}..{stop!r}, not a non-empty range"
    if file != shard_file(start):
        return f"shard {file} is recorded as starting at example {start}"
    if not (_is_int(entry["bytes"]) and entry["bytes"] > 0):
        return f"shard {file} has size {entry['bytes']!r}"
    if not (isinstance(entry["sha256"], str) and _SHA256.fullmatch(entry["sha256"])):
        return f"shard {file} has checksum {entry['sha256']!r}"
    return Shard(**entry)


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of store `path`, parsed and of this format (complete or not)."""
    file = path / MANIFEST
    body = read_json(file, "activation cache manifest", rebuild(path))
    if not isinstance(body, dict):
        raise DamagedCache(path, file, "the manifest is not a JSON object")
    fmt = body.get("format")
    if fmt == FORMAT:
        return body
    if isinstance(fmt, str) and fmt.startswith("interp-cache/"):
        age = "an older" if fmt < FORMAT else "a newer"
        raise InterpError(
            f"{path} was made by {age} interp (format {fmt}; this interp reads {FORMAT}); "
            f"{rebuild(path)}" + (", or upgrade interp." if age == "a newer" else ".")
        )
    raise InterpError(f"{path} is not an interp activation cache ({file} has format {fmt!r}).")


def check_header(path: Path, body: dict[str, Any]) -> None:
    """Every setting of the header has the type the writer gives it."""
    file = path / MANIFEST
    missing = [f for f in (*HEADER_FIELDS, "fingerprint") if f not in body]
    if missing:
        raise DamagedCache(path, file, f"the manifest lacks {missing}")
    for field in ("model", "model_id", "task", "inputs", "which", "fingerprint"):
        if not isinstance(body[field], str):
            raise DamagedCache(path, file, f"{field} is {body[field]!r}, not a string")
    names = body["names"]
    if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise DamagedCache(path, file, f"names is {names!r}, not a list of hook names")
    if len(set(names)) != len(names) or {TOKENS_KEY, ANSWER_POS_KEY} & set(names):
        raise DamagedCache(path, file, f"names {names} repeat a name or use a reserved one")
    for field in ("batch_size", "n_examples"):
        if not (_is_int(body[field]) and body[field] >= 1):
            raise DamagedCache(path, file, f"{field} is {body[field]!r}, not a positive integer")
    if body["dtype"] is not None and body["dtype"] not in STORAGE_DTYPES:
        raise DamagedCache(
            path, file, f"dtype is {body['dtype']!r}, not one of {list(STORAGE_DTYPES)}"
        )


def check_finished(path: Path, body: dict[str, Any]) -> list[Shard]:
    """Validate a complete manifest; returns its shards, contiguous from 0 to n_examples."""
    file = path / MANIFEST
    check_header(path, body)
    keys = [*body["names"], TOKENS_KEY, ANSWER_POS_KEY]
    shapes, dtypes = body.get("shapes"), body.get("dtypes")
    if not (isinstance(shapes, dict) and isinstance(dtypes, dict)):
        raise DamagedCache(path, file, "the manifest lacks the shapes and dtypes of its tensors")
    if set(shapes) != set(keys) or set(dtypes) != set(keys):
        raise DamagedCache(path, file, f"shapes and dtypes do not list exactly {keys}")
    for key in keys:
        shape = shapes[key]
        if not (isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)):
            raise DamagedCache(path, file, f"the shape of {key} is {shape!r}")
        if stored_dtype(dtypes[key]) is None:
            raise DamagedCache(
                path, file, f"the dtype of {key} is {dtypes[key]!r}, not a known dtype"
            )
    entries = body.get("shards")
    if not isinstance(entries, list) or not entries:
        raise DamagedCache(path, file, "the manifest lists no shards")
    shards: list[Shard] = []
    for entry in entries:
        shard = parse_shard(entry)
        if isinstance(shard, str):
            raise DamagedCache(path, file, shard)
        expected = shards[-1].stop if shards else 0
        if shard.start != expected:
            raise DamagedCache(
                path,
                file,
                f"shard {shard.file} starts at example {shard.start} where {expected} was "
                "expected (shards must be contiguous, in order, from 0)",
            )
        shards.append(shard)
    n = body["n_examples"]
    if shards[-1].stop != n:
        raise DamagedCache(
            path, file, f"the shards hold {shards[-1].stop} examples, not n_examples={n}"
        )
    return shards


def _differences(stored: dict[str, Any], given: dict[str, Any]) -> list[str]:
    out = []
    for field in HEADER_FIELDS:
        old, new = stored.get(field), given[field]
        if old == new:
            continue
        if field == "inputs":
            out.append("inputs: the prompts' token ids or answer positions differ")
        elif field == "model_id":
            if stored.get("model") == given["model"]:
                out.append(f"model: {new!r} has other weights than the one that made it")
        else:
            out.append(f"{field}: stored {old!r}, given {new!r}")
    return out


def same_cache(stored: dict[str, Any], header: dict[str, Any]) -> bool:
    """Whether a stored manifest was made with every setting of `header` (see HEADER_FIELDS)."""
    return all(stored.get(f) == header[f] for f in HEADER_FIELDS)


def mismatch_error(path: Path, stored: dict[str, Any], given: dict[str, Any]) -> InterpError:
    """Say which settings differ between a store and a call, and how to resume or start anew."""
    diffs = _differences(stored, given) or ["the inputs or the model differ"]
    differing = [f for f in HEADER_FIELDS if stored.get(f) != given[f]]
    fields = [f for f in differing if f in _ARGUMENTS]
    resume = ", ".join(f"{f}={stored.get(f)!r}" for f in fields)
    others = len(fields) < len(differing) or not differing
    how = f"pass {resume}" if fields else ""
    if others:
        how += (" with " if how else "use ") + "the same model and prompts"
    return InterpError(
        f"{path} already holds a different activation cache: {'; '.join(diffs)}. To reuse or "
        f"resume it {how}; otherwise pass a new directory as store=, or delete {path} to "
        "recompute."
    )
