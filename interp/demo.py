"""`interp demo`: every analysis on one model, composed into one HTML report."""

from __future__ import annotations

import html
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from interp.analyses.residual import residual_norms
from interp.cache.api import cache
from interp.models import load_model
from interp.report import report
from interp.tasks.registry import make_task
from interp.viz.html import table


def _info_html(model: Any) -> str:
    info = asdict(model.info())
    rows = [{"property": k, "value": v} for k, v in info.items()]
    card = model.card or {}
    extra = ""
    if card.get("acceptance"):
        extra = "<h3>model card: measured behaviour</h3>" + table(
            [
                {"check": k, **(v if isinstance(v, dict) else {"value": v})}
                for k, v in card["acceptance"].items()
            ]
        )
    return table(rows, max_rows=100) + extra


def run_demo(model_spec: Any, out: str | Path, n: int = 32, seed: int = 0) -> Path:
    """Load the model, cache the residual stream to disk, analyse, and write out/report.html."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(model_spec)
    sections: list[Any] = [("Model", _info_html(model))]

    task = make_task(model, "induction", n=n, seed=seed, seq_len=min(10, (model.n_ctx - 1) // 2))
    store_dir = out / "cache"
    shutil.rmtree(store_dir, ignore_errors=True)
    acts = cache(model, task, names=["resid_post"], store=store_dir, batch_size=16)
    sizes = sum(f.stat().st_size for f in store_dir.glob("*.safetensors"))
    sections.append(
        (
            "Activation cache",
            f"<p>Streamed <code>resid_post</code> of every layer for {len(task)} induction "
            f"prompts of {task.seq_len} tokens to <code>{html.escape(str(store_dir))}</code> "
            f"({sizes / 1e6:.2f} MB in {len(list(store_dir.glob('*.safetensors')))} shards).</p>",
        )
    )
    norms = residual_norms(acts, model=model, seed=seed)
    norms.save(out / "residual_norms")
    sections.append(norms)
    return report(sections, out / "report.html", title=f"interp demo: {model.name}")
