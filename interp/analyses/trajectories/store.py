"""Traces on disk, one file per prompt, so long sampling runs can stop and resume.

A store directory holds ``traces.json`` (the sampling parameters and the prompts, checked on
resume) and ``prompt-00012.safetensors`` per finished prompt: its samples' tokens, per-token
statistics and chunk means, with texts and verdicts in the file's metadata. Each file is written
under a temporary name and renamed, so an interrupted run leaves only whole prompts behind, and
each prompt has its own random stream, so a resumed run samples what an uninterrupted one would.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from interp.analyses.trajectories.trace import Trace
from interp.errors import InterpError
from interp.files import atomic_save_tensors, atomic_write_text

HEADER = "traces.json"
FORMAT = "interp-traces/1"


def _file(root: Path, i: int) -> Path:
    return root / f"prompt-{i:05d}.safetensors"


class TraceStore:
    """A directory of sampled traces for one (model, task, sampling parameters)."""

    def __init__(self, root: str | Path, params: dict[str, Any] | None = None) -> None:
        self.root = Path(root)
        header = self.root / HEADER
        if params is None:  # reading an existing store
            if not header.exists():
                raise InterpError(f"{self.root} is not a trace store (no {HEADER}).")
            self.params = json.loads(header.read_text())["params"]
            return
        if header.exists():
            saved = json.loads(header.read_text())["params"]
            changed = sorted(k for k in set(saved) | set(params) if saved.get(k) != params.get(k))
            if changed:
                raise InterpError(
                    f"{self.root} holds traces sampled with other settings ({', '.join(changed)}"
                    f" differ): resume with the same model, task and parameters, or use a new "
                    "directory."
                )
        else:
            self.root.mkdir(parents=True, exist_ok=True)
            atomic_write_text(header, json.dumps({"format": FORMAT, "params": params}, indent=1))
        self.params = params

    def done(self, i: int) -> bool:
        return _file(self.root, i).exists()

    def write(self, i: int, traces: list[Trace]) -> None:
        tensors: dict[str, torch.Tensor] = {}
        info = []
        for t in traces:
            r = t.sample_index
            tensors[f"{r}.tokens"] = torch.tensor(t.tokens, dtype=torch.long)
            tensors[f"{r}.logprobs"] = t.logprobs
            tensors[f"{r}.margins"] = t.margins
            tensors[f"{r}.entropies"] = t.entropies
            tensors[f"{r}.chunks"] = t.chunks
            info.append({"sample": r, "text": t.text, "answer": t.answer, "correct": t.correct})
        meta = {"prompt": str(i), "chunk": str(traces[0].chunk), "traces": json.dumps(info)}
        atomic_save_tensors(_file(self.root, i), tensors, meta)

    def read(self, i: int) -> list[Trace]:
        with safe_open(str(_file(self.root, i)), "pt") as f:
            meta = f.metadata()
            info = json.loads(meta["traces"])
            out = []
            for row in info:
                r = row["sample"]
                out.append(
                    Trace(
                        prompt_index=i,
                        sample_index=r,
                        tokens=f.get_tensor(f"{r}.tokens").tolist(),
                        text=row["text"],
                        logprobs=f.get_tensor(f"{r}.logprobs"),
                        margins=f.get_tensor(f"{r}.margins"),
                        entropies=f.get_tensor(f"{r}.entropies"),
                        chunks=f.get_tensor(f"{r}.chunks"),
                        correct=row["correct"],
                        chunk=int(meta["chunk"]),
                        answer=row["answer"],
                    )
                )
        return out

    def prompts(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.root.glob("prompt-*.safetensors"))


def load_traces(root: str | Path) -> list[Trace]:
    """Every trace in a store written by ``sample(..., store=root)``, in prompt order."""
    store = TraceStore(root)
    return [t for i in store.prompts() for t in store.read(i)]
