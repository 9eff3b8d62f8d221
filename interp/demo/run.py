"""The demo's driver: load, cache, run every section, write the report."""

from __future__ import annotations

import html
import shlex
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import Any

from interp.activations.api import cache
from interp.analyses.residual import residual_norms
from interp.demo.attribution import attribution_section
from interp.demo.patching import patching_section
from interp.demo.probes import probes_section
from interp.demo.sae import sae_section
from interp.demo.sizes import LARGE_PARAMS, Sizes
from interp.demo.steering import steering_section
from interp.demo.trajectories import trajectories_section
from interp.models import load_model
from interp.results.base import Result
from interp.tasks.registry import make_task
from interp.viz.html import table
from interp.viz.report import report

__all__ = ["LARGE_PARAMS", "Sizes", "demo_results", "demo_sections", "run_demo"]


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


def run_demo(
    model_spec: Any,
    out: str | Path,
    n: int = 32,
    seed: int = 0,
    figures: str | Path | None = None,
    command: str | None = None,
) -> Path:
    """Load the model, cache the residual stream to disk, analyse, and write out/report.html.

    Large models (over 50M parameters) run smaller sizes (`Sizes.for_model`), so that
    ``interp demo --model smollm2`` finishes in minutes on a laptop CPU.

    Args:
        figures: also write every view of every result as PDF and PNG into this directory
            (`demo_figures`).
        command: the shell command shown in the report as how to reproduce it (default: the
            ``interp demo`` command of these arguments, when the model is given by name).
    """
    if figures is not None:
        from interp.viz.export import browser_path

        browser_path()  # no Chromium: a clear error now rather than after every analysis
    if command is None and isinstance(model_spec, str | Path):
        command = _demo_command(model_spec, out, n, seed, figures)
    sections, name = demo_sections(model_spec, out, n=n, seed=seed)
    path = report(
        sections, Path(out) / "report.html", title=f"interp demo: {name}", command=command
    )
    if figures is not None:  # after the report: the report stands even if an export fails
        demo_figures(sections, figures)
    return path


def demo_results(model_spec: Any, out: str | Path, n: int = 32, seed: int = 0) -> list[Result]:
    """The results the demo reports (no report written): for figure galleries and benchmarks."""
    sections, _ = demo_sections(model_spec, out, n=n, seed=seed)
    return [item for item in sections if isinstance(item, Result)]


def demo_sections(
    model_spec: Any, out: str | Path, n: int = 32, seed: int = 0
) -> tuple[list[Any], str]:
    """Every section of the demo report (results and ``(heading, html)`` blocks), in order,
    and the model's name; the cache and the results are saved under `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(model_spec)
    sizes = Sizes.for_model(model)
    n = min(n, sizes.n) if sizes.n else n
    sections: list[Any] = [("Model", _info_html(model))]

    task = make_task(model, "induction", n=n, seed=seed, seq_len=min(10, (model.n_ctx - 1) // 2))
    store_dir = out / "cache"
    if (store_dir / "manifest.json").exists():  # only ever remove our own previous cache
        shutil.rmtree(store_dir)
    acts = cache(model, task, names=["resid_post"], store=store_dir, batch_size=16)
    n_bytes = sum(f.stat().st_size for f in store_dir.glob("*.safetensors"))
    sections.append(
        (
            "Activation cache",
            f"<p>Streamed <code>resid_post</code> of every layer for {len(task)} induction "
            f"prompts of {task.seq_len} tokens to <code>{html.escape(str(store_dir))}</code> "
            f"({n_bytes / 1e6:.2f} MB in {len(list(store_dir.glob('*.safetensors')))} shards).</p>",
        )
    )
    norms = residual_norms(acts, model=model, seed=seed)
    norms.save(out / "residual_norms")
    sections.append(norms)
    sections += attribution_section(model, out, n=n, seed=seed, sizes=sizes)
    sections += patching_section(model, out, n=n, seed=seed, sizes=sizes)
    probes = probes_section(model, out, seed=seed, n=sizes.probe_n)
    sections += probes
    sections += steering_section(model, out, seed=seed, sizes=sizes, probes=probes)
    sections += trajectories_section(model, out, seed=seed, n=sizes.traj_n, sizes=sizes)
    sections += sae_section(model, out, seed=seed, n=n)
    return sections, str(model.name)


def demo_figures(sections: list[Any], directory: str | Path) -> list[Path]:
    """Every view of every Result among `sections` as PDF and PNG (paper theme) in
    `directory`, one browser for all. Files are named after the section's place in the report
    and the result's kind (``03_dla.pdf``, ``12_steering_frontier.png``): unique, and sorted
    as the report reads."""
    from interp.viz.export import export_session, save_result_figures

    written: list[Path] = []
    with export_session():
        for i, item in enumerate(sections):
            if isinstance(item, Result):
                written += save_result_figures(item, directory, stem=f"{i:02d}_{item.kind}")
    return written


def _demo_command(
    model_spec: str | Path, out: str | Path, n: int, seed: int, figures: str | Path | None
) -> str:
    words = ["interp", "demo", "--model", str(model_spec), "--out", str(out)]
    words += ["--n", str(n), "--seed", str(seed)]
    if figures is not None:
        words += ["--figures", str(figures)]
    return shlex.join(words)
