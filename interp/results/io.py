"""Save and load results exactly: a directory with result.json and tensors-<save id>.safetensors.

Tensor fields (and dicts of tensors) go to safetensors, tables (pandas DataFrame fields, and
dicts of them) go into the same safetensors file as Parquet bytes (dtypes, index and NaN exact),
everything else to JSON. Each save writes
its tensors under a new name, then renames result.json (which names that file) into place: the
header's rename is the single commit point, so a crash at any moment leaves either the old result
or the new one, whole. Only then is the old tensors file removed. Files are written under a
temporary name and renamed with the normal file mode (interp.files). Other files in the
directory (a user's notes) are left alone. Results saved before per-save tensor names (a plain
tensors.safetensors, no "tensors" key in the header) still load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import re
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from interp.errors import InterpError
from interp.files import atomic_save_tensors, atomic_write_text, check_readable, read_json
from interp.results.base import Result, result_class

FORMAT = "interp-result/1"
HEADER = "result.json"
TENSORS = "tensors.safetensors"  # the tensors file of results saved before per-save names
_TENSORS_NAME = re.compile(r"tensors(-[0-9a-f]+)?\.safetensors")


def _tensors_name(save_id: str) -> str:
    return f"tensors-{save_id}.safetensors"


def _encode_json(value: Any) -> Any:
    """JSON cannot hold NaN/inf portably or tell tuples from lists: tag them."""
    if isinstance(value, float) and not math.isfinite(value):
        return {"__float__": repr(value)}
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_json(v) for v in value]}
    if isinstance(value, list):
        return [_encode_json(v) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise InterpError(f"Result metadata keys must be strings: {list(value)[:5]}.")
        return {k: _encode_json(v) for k, v in value.items()}
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    raise InterpError(
        f"Cannot save {type(value).__name__} in result metadata; use JSON-able values "
        "(str, int, float, bool, None, list, dict) or store tensors in `extras`."
    )


def _decode_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        if set(value) == {"__tuple__"}:
            return tuple(_decode_json(v) for v in value["__tuple__"])
        return {k: _decode_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_json(v) for v in value]
    return value


def _own(t: Tensor) -> Tensor:
    # safetensors refuses tensors that share storage (a result may keep a view of another).
    return t.detach().cpu().clone().contiguous()


def _table_bytes(df: pd.DataFrame) -> Tensor:
    buf = io.BytesIO()
    df.to_parquet(buf, engine="pyarrow")
    return torch.frombuffer(bytearray(buf.getvalue()), dtype=torch.uint8)


def _read_table(data: Tensor) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(data.numpy().tobytes()), engine="pyarrow")


def _all_of(value: Any, kind: type) -> bool:
    return (
        isinstance(value, dict) and bool(value) and all(isinstance(v, kind) for v in value.values())
    )


def _header_and_tensors(result: Result) -> tuple[dict[str, Any], dict[str, Tensor]]:
    """Split a result into its JSON header and tensors (raises on unsaveable metadata)."""
    tensors: dict[str, Tensor] = {}
    header: dict[str, Any] = {"format": FORMAT, "kind": result.kind, "fields": {}}
    for name, value in result._field_items():
        if isinstance(value, Tensor):
            tensors[name] = _own(value)
            header["fields"][name] = {"tensor": name}
        elif isinstance(value, pd.DataFrame):
            tensors[name] = _table_bytes(value)
            header["fields"][name] = {"table": name}
        elif _all_of(value, Tensor):
            for k, v in value.items():
                tensors[f"{name}.{k}"] = _own(v)
            header["fields"][name] = {"tensor_dict": list(value)}
        elif _all_of(value, pd.DataFrame):
            for k, v in value.items():
                tensors[f"{name}.{k}"] = _table_bytes(v)
            header["fields"][name] = {"table_dict": list(value)}
        else:
            header["fields"][name] = {"json": _encode_json(value)}
    return header, tensors


def _is_own(name: str) -> bool:
    """A file a save writes: the header, a tensors file, or their temporaries (.NAME.*.tmp)."""
    if name == HEADER or _TENSORS_NAME.fullmatch(name):
        return True
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    base = name[1:].split(".tmp", 1)[0].rsplit(".", 1)[0]  # .NAME.<random>.tmp -> NAME
    return base == HEADER or bool(_TENSORS_NAME.fullmatch(base))


def _check_target(target: Path) -> bool:
    """Refuse a target that is a file or somebody else's directory; True if it must be made."""
    if not target.exists():
        return True
    if not target.is_dir():
        raise InterpError(f"{target} exists and is not a directory; choose another path.")
    if not (target / HEADER).exists() and not all(_is_own(n) for n in os.listdir(target)):
        raise InterpError(
            f"{target} exists and is not a saved result (it has other files and no {HEADER}); "
            "choose another directory, or an empty one."
        )
    return False


def _named_tensors(header: Any) -> str | None:
    """The tensors file a parsed header names (TENSORS for older saves); None if malformed.

    Only a plain name of the form a save writes is accepted, so a hand-edited header can never
    make a save or a load touch a file outside the result directory.
    """
    if not isinstance(header, dict):
        return None
    name = header.get("tensors", TENSORS)
    return name if isinstance(name, str) and _TENSORS_NAME.fullmatch(name) else None


def _current_tensors(target: Path) -> str | None:
    """The tensors file the header now in `target` names; None if there is no readable header."""
    try:
        return _named_tensors(json.loads((target / HEADER).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


def save_result(result: Result, path: str | os.PathLike[str]) -> str:
    """Write `result` into directory `path`: tensors-<save id>.safetensors, then result.json.

    The new tensors file never replaces the old one; renaming result.json (which names the new
    tensors file) into place commits the save, so an interrupted save leaves the previous result
    loadable and unchanged. The previous tensors file is removed after the commit. Anything else
    a user keeps in the directory stays.
    """
    target = Path(path)
    header, tensors = _header_and_tensors(result)  # unsaveable metadata fails before any write
    created = _check_target(target)
    header["save_id"] = uuid.uuid4().hex
    name = header["tensors"] = _tensors_name(header["save_id"])
    try:
        # mkdir honours the umask: the directory gets the normal mode, like the files.
        target.mkdir(parents=True, exist_ok=True)
        atomic_save_tensors(target / name, tensors, {})
        previous = {TENSORS, _current_tensors(target)} - {None, name}
        atomic_write_text(target / HEADER, json.dumps(header, indent=1))  # the commit point
    except BaseException:
        if _current_tensors(target) != name:  # not committed: the previous result stays whole
            (target / name).unlink(missing_ok=True)
            if created:  # a first save that failed leaves nothing
                with contextlib.suppress(OSError):
                    target.rmdir()
        raise
    for old in previous:
        # The save is committed; a tensors file that cannot be removed is only left over.
        with contextlib.suppress(OSError):
            (target / str(old)).unlink(missing_ok=True)
    return str(target)


def _open_tensors(path: Path) -> dict[str, Tensor]:
    """The tensors of a result's safetensors file; problems name the file."""
    fix = "save the result again with Result.save"
    check_readable(path, "result tensors", fix)
    try:
        with safe_open(str(path), framework="pt") as f:
            names = f.keys()
            return {k: f.get_tensor(k) for k in names}
    except PermissionError:
        raise InterpError(f"{path}: permission denied reading the result tensors; {fix}.") from None
    except (SafetensorError, OSError) as e:
        raise InterpError(f"{path}: the result tensors are damaged ({e}); {fix}.") from None


def load_result(path: str | os.PathLike[str]) -> Result:
    """Load a result saved with `Result.save`, as its own result type."""
    src = Path(path)
    if not src.is_dir():
        raise InterpError(f"{src} does not exist or is not a directory; give a saved result.")
    if not (src / HEADER).exists():
        raise InterpError(
            f"{src} is not a saved result (no {HEADER}); give what Result.save wrote."
        )
    fix = "save the result again with Result.save"
    header = read_json(src / HEADER, "result header", fix)
    if not isinstance(header, dict) or not isinstance(header.get("fields"), dict):
        raise InterpError(f"{src / HEADER}: the result header is damaged (no fields); {fix}.")
    if header.get("format") != FORMAT:
        raise InterpError(f"{src}: unsupported result format {header.get('format')!r}.")
    cls = result_class(str(header.get("kind")))
    specs = header["fields"]
    name = _named_tensors(header)  # "tensors" is absent from older saves: TENSORS
    if name is None:
        raise InterpError(
            f"{src / HEADER}: the result header is damaged (bad tensors file name "
            f"{header.get('tensors')!r}); {fix}."
        )
    tensors = _open_tensors(src / name)  # `values` is always a tensor: every result has one
    kwargs: dict[str, Any] = {}
    try:
        for name, spec in specs.items():
            if "tensor" in spec:
                kwargs[name] = tensors[spec["tensor"]]
            elif "tensor_dict" in spec:
                kwargs[name] = {k: tensors[f"{name}.{k}"] for k in spec["tensor_dict"]}
            elif "table" in spec:
                kwargs[name] = _read_table(tensors[spec["table"]])
            elif "table_dict" in spec:
                kwargs[name] = {k: _read_table(tensors[f"{name}.{k}"]) for k in spec["table_dict"]}
            else:
                kwargs[name] = _decode_json(spec["json"])
        kwargs = cls.from_legacy(kwargs)  # results saved before their type declared fields
    except (KeyError, TypeError, AttributeError, ValueError, OSError) as e:
        # A field the tensors file lacks, a damaged table, or a hand-edited header.
        raise InterpError(
            f"{src}: the saved result is damaged ({type(e).__name__}: {e}); {fix}."
        ) from None
    fields = dataclasses.fields(cls)
    required = [
        f.name
        for f in fields
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing := [n for n in required if n not in kwargs]:
        raise InterpError(f"{src / HEADER}: the result header lacks {missing}; {fix}.")
    known = {f.name for f in fields}
    return cls(**{k: v for k, v in kwargs.items() if k in known})


def tensors_equal(a: Tensor | None, b: Tensor | None) -> bool:
    """Exact equality including dtype and NaN positions (for round-trip checks)."""
    if a is None or b is None:
        return a is None and b is None
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if not a.is_floating_point():
        return bool(torch.equal(a, b))
    return bool(torch.equal(a.isnan(), b.isnan())) and bool(
        torch.equal(torch.nan_to_num(a), torch.nan_to_num(b))
    )
