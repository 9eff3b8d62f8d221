"""Tasks by name (generators) or from a prompts file, for the CLI and the demo."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from interp.errors import InterpError
from interp.files import check_readable
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
        return _jsonl_task(model, path)
    prompts = [line for line in _read_lines(path) if line.strip()]
    if not prompts:
        raise InterpError(f"{path} holds no prompts: write one prompt per line.")
    return Task.from_prompts(model, clean=prompts, name=path.stem)


JSONL_KEYS = ("clean", "corrupt", "answer", "label")


def _read_lines(path: Path) -> list[str]:
    check_readable(path, "task file", "check the path")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise InterpError(f"{path} is not UTF-8 text ({e}); save it as UTF-8.") from None


def _jsonl_task(model: Any, path: Path) -> Task:
    """A task from JSON lines; an optional field must be on every line or on none."""
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InterpError(f"{path}, line {number}: not valid JSON ({e.msg}).") from None
        if not isinstance(row, dict):
            raise InterpError(
                f"{path}, line {number}: expected an object like "
                '{"clean": "...", "corrupt": "...", "answer": ["correct", "incorrect"]}.'
            )
        unknown = sorted(set(row) - set(JSONL_KEYS))
        if unknown:
            raise InterpError(
                f"{path}, line {number}: unknown field(s) {unknown}; use {list(JSONL_KEYS)}."
            )
        if not isinstance(row.get("clean"), str):
            raise InterpError(f"{path}, line {number}: every line needs a 'clean' prompt string.")
        rows.append((number, row))
    if not rows:
        raise InterpError(f"{path} holds no lines: write one JSON object per prompt.")
    fields: dict[str, list[Any] | None] = {}
    for key in JSONL_KEYS[1:]:
        missing = [n for n, r in rows if key not in r]
        if len(missing) == len(rows):
            fields[key] = None
        elif missing:
            raise InterpError(
                f"{path}: {len(rows) - len(missing)} lines give {key!r} but lines "
                f"{missing[:10]} do not; give it on every line or on none."
            )
        else:
            fields[key] = [r[key] for _, r in rows]
    answers = fields["answer"]
    if answers is not None:
        for (number, _), a in zip(rows, answers, strict=True):
            ok = isinstance(a, str | int) or (isinstance(a, list) and 1 <= len(a) <= 2)
            if not ok:
                raise InterpError(
                    f"{path}, line {number}: 'answer' is {a!r}; give \"token\" or "
                    '["correct", "incorrect"].'
                )
        answers = [
            (tuple(a) if len(a) == 2 else a[0]) if isinstance(a, list) else a for a in answers
        ]
    return Task.from_prompts(
        model,
        clean=[r["clean"] for _, r in rows],
        corrupt=fields["corrupt"],
        answers=answers,
        labels=fields["label"],
        name=path.stem,
    )
