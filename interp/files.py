"""Files that are whole or absent, readable by the team, and errors that name the file.

Every finished file interp writes (caches, results, reports, trace stores) goes through the
atomic writers here: a temporary file in the same directory, renamed into place, with the
process's normal mode (0666 minus umask). Readers use `read_json` / `check_readable`, so a
missing, unreadable or corrupt file is an `InterpError` that names the path and the fix instead
of a bare FileNotFoundError, PermissionError or JSONDecodeError.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import save
from torch import Tensor

from interp.errors import InterpError


def umask_mode(mode: int) -> int:
    """`mode` minus the process's umask: what `open()` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return mode & ~mask


def normal_mode(path: str | os.PathLike[str], directory: bool = False) -> None:
    """Give a finished file (or directory) the mode a plain `open()` would have created.

    mkstemp/mkdtemp and safetensors create 0600/0700, which a team sharing a directory cannot read.
    """
    os.chmod(path, umask_mode(0o777 if directory else 0o666))


def is_temporary(name: str) -> bool:
    """A temporary file of the atomic writers below, or a store's lock: what a killed writer
    can leave in a directory besides its finished files."""
    return name == ".lock" or (name.startswith(".") and name.endswith(".tmp"))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` via a temporary file in the same directory, fsynced, and an
    atomic rename: the file is whole or absent, also after a power loss."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        normal_mode(tmp)  # mkstemp creates the file 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    """UTF-8 text written whole or not at all (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def tensor_bytes(tensors: dict[str, Tensor], metadata: dict[str, str]) -> bytes:
    """The safetensors serialisation of `tensors` with `metadata`."""
    return save({k: v.contiguous() for k, v in tensors.items()}, metadata=metadata)


def atomic_save_tensors(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str]) -> None:
    """safetensors file written whole or not at all, with the normal file mode."""
    atomic_write_bytes(path, tensor_bytes(tensors, metadata))


def check_readable(path: Path, what: str, fix: str) -> None:
    """Raise an InterpError naming `path` if it is missing or cannot be read.

    Args:
        path: the file.
        what: what the file is, for the message (``"result header"``).
        fix: what the user should do (``"save the result again"``).
    """
    if not path.exists():
        raise InterpError(f"{path}: the {what} is missing; {fix}.")
    if not os.access(path, os.R_OK):
        raise InterpError(
            f"{path}: permission denied reading the {what}; ask its owner to make it readable "
            f"(chmod a+r), or {fix}."
        )


def read_json(path: Path, what: str, fix: str) -> Any:
    """Parse the JSON file `path`; a missing, unreadable or damaged file is an InterpError."""
    check_readable(path, what, fix)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except PermissionError:
        raise InterpError(f"{path}: permission denied reading the {what}; {fix}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InterpError(f"{path}: the {what} is damaged ({e}); {fix}.") from None


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (shards can be large)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
