"""`interp run trajectories`: latent-trajectory signals from the command line (registered on
`interp run` by interp/cli.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interp.cli_executor import AddressOpt, ExecutorOpt, WorkersOpt, make_executor
from interp.cli_figure import run_command
from interp.cli_run import ModelOpt, NOpt, OutOpt, SeedOpt, _finish, _setup, run_app


@run_app.command("trajectories")
@run_command
def trajectories_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    task: Annotated[
        str, typer.Option(help="A generation task with a checker: arithmetic.")
    ] = "arithmetic",
    n: NOpt = 48,
    seed: SeedOpt = 0,
    samples: Annotated[int, typer.Option(help="Answers sampled per prompt.")] = 6,
    max_new_tokens: Annotated[
        int | None,
        typer.Option(help="Longest answer in tokens (default: what the context leaves, <= 48)."),
    ] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0: greedy).")] = 1.0,
    chunk: Annotated[int, typer.Option(help="Tokens per pooled chunk while sampling.")] = 4,
    k: Annotated[int | None, typer.Option(help="Signal chunk size, a multiple of --chunk.")] = None,
    early: Annotated[int, typer.Option(help="Chunks read by the early signals.")] = 3,
    calibration: Annotated[
        float, typer.Option(help="Fraction of prompts calibrating sequential acceptance.")
    ] = 0.5,
    store: Annotated[
        Path | None, typer.Option(help="Write traces here; a rerun resumes where it stopped.")
    ] = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Latent-trajectory signals: sample answers, score how hidden states move against whether
    each answer is right, next to confidence and null baselines."""
    from interp.analyses.trajectories import evaluate

    m, t = _setup(model, task, n, seed)
    with make_executor(executor, address, workers) as ex:
        res = evaluate(
            m,
            t,
            n=samples,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            chunk=chunk,
            k=k,
            early=early,
            calibration=calibration,
            seed=seed,
            store=store,
            executor=ex,
        )
    _finish(res, out)
    views = {
        "roc": res.plot_roc(),
        "distributions": res.plot_distributions(),
        "trajectories": res.plot_trajectories(),
        "tokens": res.plot_tokens(),
        "layers": res.plot_layers(),
    }
    for name, fig in views.items():
        fig.write_html(str(out / f"{name}.html"), include_plotlyjs=True)
    typer.echo(f"views: {', '.join(f'{name}.html' for name in views)}")
    cols = ["signal", "auroc", "auroc_low", "auroc_high", "null_auroc", "projection_auroc"]
    typer.echo(res.auroc()[cols].round(3).to_string(index=False))
    typer.echo("\nbest-of-n selection:\n" + res.selection.round(3).to_string(index=False))
    typer.echo(
        "\nsequential acceptance (test prompts):\n" + res.acceptance.round(3).to_string(index=False)
    )
