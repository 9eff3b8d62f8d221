"""The demo's latent trajectories section."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from interp.demo.sizes import Sizes
from interp.tasks.registry import make_task
from interp.viz.html import table


def trajectories_section(
    model: Any, out: Path, seed: int, n: int = 32, sizes: Sizes = Sizes()
) -> list[Any]:
    """Latent-trajectory signals on arithmetic: sample several answers per problem, then score
    how the hidden states move against whether each answer is right, beside output confidence
    and null baselines, best-of-n selection and sequential acceptance."""
    from interp.analyses.trajectories import evaluate
    from interp.analyses.trajectories.sampling import new_token_budget
    from interp.errors import InterpError

    name = "Latent-trajectory signals"
    if not (model.has_lm_head and model.backend == "HookedTransformer"):
        return [(name, "<p class='note'>Skipped: sampling needs a model with an LM head.</p>")]
    try:
        task = make_task(model, sizes.traj_task, n=n, seed=seed, **dict(sizes.traj_task_options))
        room = min(sizes.traj_tokens, new_token_budget(model, task, None))
        res = evaluate(
            model,
            task,
            n=sizes.traj_samples,
            max_new_tokens=room,
            temperature=sizes.traj_temperature,
            chunk=4,
            seed=seed,
            progress=False,
        )
    except InterpError as err:
        return [(name, f"<p class='note'>Skipped: {html.escape(str(err))}</p>")]
    res.save(out / "trajectories")
    auroc = res.auroc()
    cols = ["signal", "auroc", "auroc_low", "auroc_high", "null_auroc", "projection_auroc"]

    def fig(f: Any) -> str:
        return str(f.to_html(include_plotlyjs=False, full_html=False))

    p = res.meta["params"]
    acc = res.acceptance
    return [
        res,
        (
            "Trajectory evidence",
            f"<p>{p['n_traces']} answers to {p['n_prompts']} problems, chunks of {p['k']} "
            f"tokens, early signals from the first {p['early']} chunks. Selection picks one "
            "of each problem's samples by a signal; sequential acceptance reads samples in "
            "order and stops at the first that clears a threshold calibrated on "
            f"{len(res.calibration_prompts)} held-out problems (reported on the "
            "others).</p>"
            + table(auroc[cols].round(3), max_rows=50)
            + fig(res.plot_roc())
            + fig(res.plot_layers())
            + fig(res.plot_trajectories())
            + fig(res.plot_tokens())
            + "<h3>best-of-n selection</h3>"
            + table(res.selection.round(3), max_rows=50)
            + "<h3>sequential acceptance (test problems)</h3>"
            + table(acc.round(3), max_rows=50),
        ),
    ]
