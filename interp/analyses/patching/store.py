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
    model: Model, task: Task, params: dict[str, Any], units: list[PatchUnit]
) -> dict[str, Any]:
    """What a resumed sweep must match: model, prompts (both runs), settings, and the units."""
    corrupt = task.corrupt_tokens if task.corrupt_tokens is not None else task.clean_tokens
    plan = json.dumps([[u.layer, u.start, u.narrow, list(u.rows)] for u in units])
    return json.loads(
        json.dumps(
            {
                "format": FORMAT,
                "model": model.name,
                "model_id": model_id(model),
                "clean": inputs_id(task.clean_tokens, task.answer_pos),
                "corrupt": inputs_id(corrupt, task.answer_pos),
                "params": params,
                "units": len(units),
                "plan": hashlib.sha256(plan.encode()).hexdigest(),
            },
            default=str,
        )
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
        if self.root.exists() and not self.root.is_dir():
            raise InterpError(f"store={str(self.root)!r} is a file; pass a directory.")
        head = self.root / HEADER
        if self.root.is_dir() and not head.exists():
            foreign = sorted(p.name for p in self.root.iterdir() if not is_temporary(p.name))
            if foreign:
                raise InterpError(
                    f"{self.root} exists and is not a patching sweep store (it holds "
                    f"{foreign[:3]}); pass an empty or new directory as store=."
                )
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock.acquire()
        try:
            if head.exists():
                self._check(json.loads(head.read_text()))
            else:
                atomic_write_text(head, json.dumps(self.header, indent=1))
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def _check(self, saved: dict[str, Any]) -> None:
        if saved.get("format") != FORMAT:
            raise InterpError(f"{self.root} was written by another interp version ({saved!r:.80}).")
        changed = sorted(
            k for k in set(saved) | set(self.header) if saved.get(k) != self.header.get(k)
        )
        if "params" in changed:
            old, new = saved.get("params", {}), self.header["params"]
            changed += [f"params.{k}" for k in set(old) | set(new) if old.get(k) != new.get(k)]
        if changed:
            raise InterpError(
                f"{self.root} holds a sweep with other settings ({', '.join(sorted(changed))} "
                "differ): resume with the same model, task and arguments, or use a new directory."
            )

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
