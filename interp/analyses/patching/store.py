"""An exact patching sweep on disk, one file per work unit, so a long sweep resumes anywhere.

``store=DIR`` holds ``sweep.json`` (what identifies the sweep: the model, the prompts, every
setting and the plan of units; checked on resume) and ``unit-00012.safetensors`` per finished
unit: its node sets' metric per prompt. Each file is written whole (a temporary name, then a
rename) by the driver, whichever executor computed it, so an interrupted sweep resumes with any
executor and the same numbers.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from torch import Tensor

from interp.activations.api import inputs_id, model_id
from interp.activations.lock import StoreLock
from interp.analyses.patching.engine import PatchUnit
from interp.errors import InterpError
from interp.files import atomic_save_tensors, atomic_write_text, is_temporary
from interp.models import Model
from interp.tasks.task import Task

HEADER = "sweep.json"
FORMAT = "interp-patch-sweep/1"


def _file(root: Path, i: int) -> Path:
    return root / f"unit-{i:05d}.safetensors"


def sweep_header(
    model: Model,
    task: Task,
    corruption: Any,
    params: dict[str, Any],
    units: list[PatchUnit] | None = None,
) -> dict[str, Any]:
    """What a resumed sweep must match: model, prompts (both runs), answers, corruption,
    settings, and (once planned) the units. Without `units`: what can be checked before the
    sweep's first forward pass."""
    corrupt = task.corrupt_tokens if task.corrupt_tokens is not None else task.clean_tokens
    none = torch.zeros(0, dtype=torch.long)
    head: dict[str, Any] = {
        "format": FORMAT,
        "model": model.name,
        "model_id": model_id(model),
        "clean": inputs_id(task.clean_tokens, task.answer_pos),
        "corrupt": inputs_id(corrupt, task.answer_pos),
        "answers": inputs_id(task.answers if task.answers is not None else none, none),
        "corruption": _corruption_id(corruption),
        "params": params,
    }
    if units is not None:
        plan = json.dumps([[u.layer, u.start, u.narrow, list(u.rows)] for u in units])
        head |= {"units": len(units), "plan": hashlib.sha256(plan.encode()).hexdigest()}
    return json.loads(json.dumps(head, default=str))


def _corruption_id(corruption: Any) -> str:
    if isinstance(corruption, str):
        return corruption
    positions = getattr(corruption, "positions", None)
    h = hashlib.sha256(f"{type(corruption).__name__}|{getattr(corruption, 'scale', '')}|".encode())
    h.update(f"{getattr(corruption, 'seed', '')}|".encode())
    if isinstance(positions, Tensor):  # a mask: hashed whole (its repr is shortened)
        h.update(positions.detach().cpu().numpy().tobytes() + str(tuple(positions.shape)).encode())
    else:
        h.update(repr(positions).encode())
    return h.hexdigest()


def check_store(root: str | os.PathLike[str], header: dict[str, Any]) -> None:
    """Refuse, before any forward pass, a store that cannot hold this sweep: a file, a foreign
    directory, or a sweep with other settings (`header` from `sweep_header` without units)."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise InterpError(f"store={str(root)!r} is a file; pass a directory.")
    head = root / HEADER
    if root.is_dir() and not head.exists():
        foreign = sorted(p.name for p in root.iterdir() if not is_temporary(p.name))
        if foreign:
            raise InterpError(
                f"{root} exists and is not a patching sweep store (it holds {foreign[:3]}); "
                "pass an empty or new directory as store=."
            )
    if head.exists():
        saved = json.loads(head.read_text())
        _compare(root, {k: v for k, v in saved.items() if k not in ("units", "plan")}, header)


def _compare(root: Path, saved: dict[str, Any], header: dict[str, Any]) -> None:
    if saved.get("format") != FORMAT:
        raise InterpError(f"{root} was written by another interp version ({saved!r:.80}).")
    changed = sorted(k for k in set(saved) | set(header) if saved.get(k) != header.get(k))
    if "params" in changed:
        old, new = saved.get("params", {}), header["params"]
        changed += [f"params.{k}" for k in set(old) | set(new) if old.get(k) != new.get(k)]
    if changed:
        raise InterpError(
            f"{root} holds a sweep with other settings ({', '.join(sorted(changed))} differ): "
            "resume with the same model, task and arguments, or use a new directory."
        )


class PatchStore:
    """The store of one sweep; a context manager holding the store's lock while it writes."""

    def __init__(
        self, root: str | os.PathLike[str], header: dict[str, Any], units: list[PatchUnit]
    ) -> None:
        self.root = Path(root)
        self.header, self.units = header, units
        self._lock = StoreLock(self.root, what="activation_patch")

    def __enter__(self) -> PatchStore:
        check_store(self.root, {k: v for k, v in self.header.items() if k not in ("units", "plan")})
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            head = self.root / HEADER
            if head.exists():
                _compare(self.root, json.loads(head.read_text()), self.header)
            else:
                atomic_write_text(head, json.dumps(self.header, indent=1))
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def done(self) -> dict[int, Tensor]:
        """Finished units' values; a file that does not read back whole is computed again."""
        out = {}
        for i, unit in enumerate(self.units):
            f = _file(self.root, i)
            if not f.exists():
                continue
            try:
                with safe_open(str(f), "pt") as h:
                    rows = json.loads(h.metadata()["rows"])
                    vals = h.get_tensor("metric")
            except Exception:
                continue
            if rows == list(unit.rows) and vals.shape[0] == len(rows):
                out[i] = vals
        return out

    def write(self, i: int, vals: Tensor) -> None:
        meta = {"rows": json.dumps(list(self.units[i].rows))}
        atomic_save_tensors(_file(self.root, i), {"metric": vals.float().cpu()}, meta)


def params_for_store(**params: Any) -> dict[str, Any]:
    """Settings as the header records them (callables by their qualified name)."""
    out = {}
    for k, v in params.items():
        if callable(v) and not isinstance(v, torch.nn.Module):
            v = f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', repr(v))}"
        out[k] = v
    return out
