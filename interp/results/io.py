"""Save and load results exactly: a directory with result.json and tensors.safetensors.

Tensor fields (and dicts of tensors) go to safetensors, everything else to JSON. The directory is
built under a temporary name and renamed into place, so a crash never leaves half a result.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from interp.errors import InterpError
from interp.files import umask_mode
from interp.results.base import Result, result_class

FORMAT = "interp-result/1"
HEADER = "result.json"
TENSORS = "tensors.safetensors"


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


def save_result(result: Result, path: str | os.PathLike[str]) -> str:
    target = Path(path)
    tensors: dict[str, Tensor] = {}
    header: dict[str, Any] = {"format": FORMAT, "kind": result.kind, "fields": {}}
    for name, value in result._field_items():
        if isinstance(value, Tensor):
            tensors[name] = _own(value)
            header["fields"][name] = {"tensor": name}
        elif (
            isinstance(value, dict) and value and all(isinstance(v, Tensor) for v in value.values())
        ):
            keys = []
            for k, v in value.items():
                tensors[f"{name}.{k}"] = _own(v)
                keys.append(k)
            header["fields"][name] = {"tensor_dict": keys}
        else:
            header["fields"][name] = {"json": _encode_json(value)}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    os.chmod(tmp, umask_mode(0o777))
    try:
        (tmp / HEADER).write_text(json.dumps(header, indent=1))
        save_file(tensors, str(tmp / TENSORS))
        _replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return str(target)


def _replace_dir(new: Path, target: Path) -> None:
    if target.exists():
        if not (target / HEADER).exists():
            raise InterpError(
                f"{target} exists and is not a saved result; choose another directory."
            )
        old = target.with_name(f".{target.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def load_result(path: str | os.PathLike[str]) -> Result:
    """Load a result saved with `Result.save`, as its own result type."""
    src = Path(path)
    if not (src / HEADER).exists():
        raise InterpError(f"{src} is not a saved result (no {HEADER}).")
    header = json.loads((src / HEADER).read_text())
    if header.get("format") != FORMAT:
        raise InterpError(f"{src}: unsupported result format {header.get('format')!r}.")
    cls = result_class(header["kind"])
    tensors = load_file(str(src / TENSORS)) if (src / TENSORS).exists() else {}
    kwargs: dict[str, Any] = {}
    for name, spec in header["fields"].items():
        if "tensor" in spec:
            kwargs[name] = tensors[spec["tensor"]]
        elif "tensor_dict" in spec:
            kwargs[name] = {k: tensors[f"{name}.{k}"] for k in spec["tensor_dict"]}
        else:
            kwargs[name] = _decode_json(spec["json"])
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in kwargs.items() if k in known}
    return cls(**kwargs)


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
