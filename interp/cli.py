"""Command line: `interp info | cache | demo | figure | report | run | train-organism`."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from interp.cli_executor import AddressOpt, ExecutorOpt, WorkersOpt, make_executor
from interp.errors import InterpError

app = typer.Typer(
    help="Mechanistic interpretability on TransformerLens: attribution, patching, probes, "
    "trajectories. Every command accepts --help.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _add_run() -> None:
    from interp.cli_run import run_app
    from interp.cli_steer import steer_cmd  # noqa: F401 - registers steer and targets on run_app
    from interp.cli_trajectories import trajectories_cmd  # noqa: F401 - registers trajectories

    app.add_typer(run_app, name="run")


_add_run()


def _add_figure() -> None:
    from interp.cli_figure import figure_cmd

    app.command("figure")(figure_cmd)


_add_figure()


def _add_sae() -> None:
    from interp.cli_sae import sae_app

    app.add_typer(sae_app, name="sae")


_add_sae()

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="'organism', 'smollm2', a .gguf file, a TransformerLens name, or a local HF "
        "directory.",
    ),
]


@app.command()
def info(
    model: Annotated[
        str,
        typer.Argument(help="'organism', 'smollm2', a .gguf file, a model name or a directory."),
    ],
    hooks: Annotated[bool, typer.Option(help="List every hook name.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Architecture, parameter count, source and hook names of a model (and its card, if it
    has one). With --json, stdout holds only the JSON (loading messages go to stderr)."""
    from interp.activations.names import layer_pattern
    from interp.models import load_model

    m = load_model(model, device="cpu")  # it sends loaders' prints to stderr: --json stays clean
    data = asdict(m.info())
    names = list(dict.fromkeys(layer_pattern(h) for h in m.hook_names))
    if as_json:
        typer.echo(json.dumps({**data, "hooks": names, "card": m.card}, indent=1))
        return
    for k, v in data.items():
        typer.echo(f"{k:>26}: {v}")
    if hooks:
        typer.echo(f"\nhook names ({{l}} = 0..{m.n_layers - 1}):")
        for n in names:
            typer.echo(f"  {n}")
    card = Path(m.source) / "card.md"
    if m.card and card.exists():
        typer.echo("\n" + card.read_text())


@app.command("cache")
def cache_cmd(
    model: Annotated[str, typer.Argument(help="'organism', a model name or a local directory.")],
    task: Annotated[str, typer.Option(help="Task generator name or a .txt/.jsonl prompts file.")],
    out: Annotated[Path, typer.Option(help="Directory to stream the cache into.")],
    names: Annotated[
        list[str], typer.Option("--names", help="Hook names or short forms; repeatable.")
    ] = ["resid_post"],  # noqa: B006 - typer reads the default from here
    n: Annotated[int, typer.Option(help="Prompts to generate (generator tasks).")] = 64,
    seed: Annotated[int, typer.Option(help="Task seed.")] = 0,
    positions: Annotated[
        str, typer.Option(help="'all', 'last', or comma-separated indices.")
    ] = "all",
    batch_size: Annotated[int, typer.Option(help="Prompts per forward pass.")] = 32,
    dtype: Annotated[str | None, typer.Option(help="Storage dtype, e.g. float16.")] = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Stream activations to disk (resumable: rerun the same command after an interruption,
    with any --executor)."""
    from interp.activations.api import cache
    from interp.models import load_model
    from interp.tasks.registry import make_task

    m = load_model(model)
    t = make_task(m, task, n=n, seed=seed)
    pos: Any = None
    if positions == "last":
        pos = "last"
    elif positions != "all":
        try:
            idx = [int(p) for p in positions.split(",")]
        except ValueError:
            raise InterpError(f"--positions {positions!r}: use all, last or e.g. 0,3,-1") from None
        pos = idx[0] if len(idx) == 1 else idx
    with make_executor(executor, address, workers) as ex:
        store = cache(
            m, t, names=names, positions=pos, batch_size=batch_size, store=out, dtype=dtype,
            executor=ex,
        )  # fmt: skip
    typer.echo(f"cached {len(store)} hooks x {store.n_examples} examples -> {out}")


@app.command()
def demo(
    ctx: typer.Context,
    model: ModelOpt = "organism",
    out: Annotated[Path, typer.Option(help="Output directory for the report.")] = Path("out/demo"),
    n: Annotated[
        int, typer.Option(help="Prompts per task (models over 50M parameters use at most 8).")
    ] = 32,
    seed: Annotated[int, typer.Option(help="Seed for every task and bootstrap.")] = 0,
    figures: Annotated[
        Path | None,
        typer.Option(
            help="Also write every view of every result as PDF and PNG (paper theme) into "
            "this directory, named NN_kind[_view].pdf after the report's sections."
        ),
    ] = None,
) -> None:
    """Run every analysis on a model (default: the embedded organism) and write OUT/report.html.

    Large models (e.g. smollm2) run smaller sizes: fewer prompts, exact patching of the heads
    attribution patching ranks first, position sweeps over the last positions, shorter
    generation. The report shows the command that reproduces it."""
    from interp.cli_figure import command_line
    from interp.demo import run_demo

    before = _images(figures)
    path = run_demo(model, out, n=n, seed=seed, figures=figures, command=command_line(ctx))
    typer.echo(f"report: {path}")
    if figures is not None:
        after = _images(figures)
        written = [p for p, stamp in after.items() if before.get(p) != stamp]
        typer.echo(f"figures: {len(written)} files (PDF and PNG) in {figures}")


def _images(directory: Path | None) -> dict[Path, int]:
    """The figure files in `directory` and their modification times: the files a run wrote are
    the new or changed ones (each is replaced atomically, so its time changes)."""
    if directory is None or not directory.is_dir():
        return {}
    return {p: p.stat().st_mtime_ns for p in directory.iterdir() if p.suffix in (".pdf", ".png")}


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    results: Annotated[list[Path], typer.Argument(help="Saved result directories.")],
    out: Annotated[Path, typer.Option(help="HTML file to write.")] = Path("out/report.html"),
    title: Annotated[str, typer.Option(help="Page title.")] = "interp report",
) -> None:
    """Combine saved results into one self-contained HTML report (showing this command)."""
    from interp.cli_figure import command_line
    from interp.results.io import load_result
    from interp.viz.report import report

    items = [load_result(r) for r in results]
    path = report(items, out, title=title, command=command_line(ctx))
    typer.echo(f"report: {path}")


@app.command("train-organism")
def train_organism(
    out: Annotated[Path, typer.Option(help="Where to write the model.")] = Path("data/organism"),
    seed: Annotated[int, typer.Option(help="Training seed.")] = 0,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 8000,
    batch_size: Annotated[int, typer.Option(help="Sequences per step.")] = 64,
    eval_n: Annotated[int, typer.Option(help="Held-out prompts per acceptance check.")] = 200,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = 2e-3,
    init_from: Annotated[
        Path | None, typer.Option(help="Continue training this organism directory.")
    ] = None,
    mixture: Annotated[
        str | None,
        typer.Option(
            help="Task weights, e.g. induction=0.3,ioi=0.3,arithmetic=0.25,"
            "facts=0.15 (default: the recipe's mixture)."
        ),
    ] = None,
    induction_gaps: Annotated[
        bool,
        typer.Option(
            "--induction-gaps",
            help="Place induction repeats after a random lead and gap of other words, so only "
            "content (not the position) tells where the earlier copy is.",
        ),
    ] = False,
    ioi_orders: Annotated[
        str,
        typer.Option(
            help="'both' (ABBA and BABA) or 'abba' (ABBA only: a first curriculum stage, so "
            "that a later stage with both orders has to learn which name is repeated).",
        ),
    ] = "both",
    induction_max_len: Annotated[
        int,
        typer.Option(
            help="Longest repeated run of words in induction sequences (4-31; the card scores "
            "induction heads on runs of 20, and a range reaching past 20 keeps the heads "
            "strong there).",
        ),
    ] = 28,
    note: Annotated[str, typer.Option(help="A note recorded in the model card.")] = "",
) -> None:
    """Train the embedded organism on CPU and write weights, tokenizer and model card."""
    from interp.organism.train import Recipe, train

    recipe = Recipe(
        seed=seed,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        warmup=min(200, max(1, steps // 10)),
        init_from=None if init_from is None else str(init_from),
        mixture=None if mixture is None else _weights(mixture),
        induction_gaps=induction_gaps,
        ioi_orders=ioi_orders,
        induction_max_len=induction_max_len,
        note=note,
    )
    card = train(out, recipe, evaluate_n=eval_n)
    typer.echo((out / "card.md").read_text())
    if not card["all_pass"]:
        typer.echo("warning: some acceptance checks failed (see the card).", err=True)


def _weights(text: str) -> tuple[tuple[str, float], ...]:
    from interp.organism.data import KINDS

    try:
        pairs = [(k.strip(), float(v)) for k, v in (item.split("=") for item in text.split(","))]
    except ValueError:
        raise InterpError(
            f"--mixture {text!r}: write task=weight pairs, e.g. ioi=0.5,facts=0.5"
        ) from None
    unknown = [k for k, _ in pairs if k not in KINDS]
    if unknown:
        raise InterpError(f"--mixture: unknown task(s) {unknown}; use {list(KINDS)}.")
    return tuple(pairs)


def main() -> None:
    """Console entry point: bad input prints one clear line instead of a traceback."""
    try:
        app()
    except InterpError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
