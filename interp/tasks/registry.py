"""Tasks by name (generators) or from a prompts file, for the CLI and the demo."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interp.errors import InterpError
from interp.tasks.arithmetic import arithmetic
from interp.tasks.facts import facts
from interp.tasks.induction import induction
from interp.tasks.ioi import ioi
from interp.tasks.task import Task
from interp.tasks.word_arithmetic import word_arithmetic

GENERATORS: dict[str, Callable[..., Task]] = {
    "induction": induction,
    "ioi": ioi,
    "arithmetic": arithmetic,
    "facts": facts,
    "word_arithmetic": word_arithmetic,
}


def make_task(model: Any, spec: str, n: int = 32, seed: int = 0, **kw: Any) -> Task:
    """A generator name (``induction`` ...) or a file: ``.txt`` (one prompt per line) or
    ``.jsonl`` (objects with ``clean`` and optional ``corrupt``, ``answer`` [correct, incorrect],
    ``label``)."""
    if spec in GENERATORS:
        return GENERATORS[spec](model, n=n, seed=seed, **kw)
    path = Path(spec)
    if not path.exists():
        raise InterpError(
            f"Unknown task {spec!r}: use one of {sorted(GENERATORS)} or a path to a .txt "
            "(one prompt per line) or .jsonl file."
        )
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        if not rows or any("clean" not in r for r in rows):
            raise InterpError(f"{path}: every line needs a 'clean' prompt.")
        return Task.from_prompts(
            model,
            clean=[r["clean"] for r in rows],
            corrupt=[r["corrupt"] for r in rows] if all("corrupt" in r for r in rows) else None,
            answers=[tuple(r["answer"]) for r in rows]
            if all("answer" in r for r in rows)
            else None,
            labels=[r["label"] for r in rows] if all("label" in r for r in rows) else None,
            name=path.stem,
        )
    prompts = [line for line in path.read_text().splitlines() if line.strip()]
    return Task.from_prompts(model, clean=prompts, name=path.stem)
