"""`interp sae train|info|features`: SAEs from the command line (interp.sae)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from interp.errors import InterpError

sae_app = typer.Typer(
    help="Sparse autoencoders through sae-lens: train one, print its card, view its latents.",
    no_args_is_help=True,
)

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="'organism', 'smollm2', a .gguf file or directory.")
]


def training_data(model: object, spec: str, rows: int, seed: int) -> object:
    """'mixture' (the organism's training mixture), a task name, or a .txt file of texts."""
    from interp.tasks.registry import GENERATORS, make_task

    if spec == "mixture":
        if getattr(model, "name", None) != "organism":
            raise InterpError(
                "--data mixture is the organism's training mixture: use a task "
                "name or a .txt file for other models."
            )
        from interp.organism.data import Mixture

        return Mixture(model.tokenizer, seed=seed).rows(rows)  # type: ignore[attr-defined]
    if spec in GENERATORS:
        return make_task(model, spec, n=rows, seed=seed)
    path = Path(spec)
    if path.suffix == ".txt" and path.is_file():
        texts = [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
        if not texts:
            raise InterpError(f"{path} holds no text: write one text per line.")
        return texts
    raise InterpError(
        f"--data {spec!r}: use 'mixture' (organism), a task ({', '.join(sorted(GENERATORS))}) "
        "or a .txt file with one text per line."
    )


@sae_app.command("train")
def train_cmd(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="Directory for the SAE (sae-lens format + card).")],
    model: ModelOpt = "organism",
    hook: Annotated[str, typer.Option(help="Hook name, e.g. blocks.2.hook_resid_post.")] = (
        "blocks.2.hook_resid_post"
    ),
    data: Annotated[str, typer.Option(help="'mixture', a task name, or a .txt file.")] = "mixture",
    rows: Annotated[int, typer.Option(help="Rows of data to draw (mixture or task).")] = 20000,
    d_sae: Annotated[int, typer.Option(help="Latents (0: 4 x the hook's width).")] = 0,
    k: Annotated[int, typer.Option(help="TopK: active latents per token (0 with --l1).")] = 32,
    l1: Annotated[float, typer.Option(help="ReLU SAE's L1 coefficient (with --k 0).")] = 0.0,
    training_tokens: Annotated[int, typer.Option(help="Activations seen in training.")] = 1_000_000,
    batch_size: Annotated[int, typer.Option(help="Activations per step.")] = 1024,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 1e-3,
    seed: Annotated[int, typer.Option(help="Seed of the data and the SAE.")] = 0,
    overwrite: Annotated[bool, typer.Option(help="Replace OUT if it exists.")] = False,
) -> None:
    """Train an SAE with sae-lens (offline) and print its card."""
    from interp.analyses.sae import train
    from interp.analyses.sae.card import card_lines
    from interp.cli_figure import command_line
    from interp.models import load_model

    if out.exists() and any(out.iterdir()) and not overwrite:
        raise InterpError(f"{out} exists and is not empty: choose a new --out or --overwrite.")
    if (k > 0) == (l1 > 0):
        raise InterpError("Give --k N (TopK) or --k 0 --l1 C (ReLU with an L1 penalty).")
    m = load_model(model)
    sae = train(
        m, hook, training_data(m, data, rows, seed), d_sae=d_sae or None, k=k or None,
        l1=l1 or None, training_tokens=training_tokens, batch_size=batch_size, lr=lr,
        seed=seed, out=out, overwrite=overwrite, command=command_line(ctx),
    )  # fmt: skip
    typer.echo("\n".join(card_lines(sae.interp_record)))


@sae_app.command("info")
def info_cmd(
    path: Annotated[str, typer.Argument(help="An SAE directory (or a sae-lens release).")],
    sae_id: Annotated[str | None, typer.Option(help="The SAE within a release.")] = None,
) -> None:
    """Print an SAE's card (interp-trained) or its sae-lens config."""
    from interp.analyses.sae import load
    from interp.analyses.sae.card import card_lines

    sae = load(path, sae_id)
    record = getattr(sae, "interp_record", None)
    if record:
        typer.echo("\n".join(card_lines(record)))
        return
    cfg = sae.cfg
    typer.echo(
        f"hook: {cfg.metadata.hook_name}\nmodel: {cfg.metadata.model_name}\n"
        f"architecture: {cfg.architecture()}\nd_in: {cfg.d_in}\nd_sae: {cfg.d_sae}"
    )


def _latent_list(text: str | None) -> list[int] | None:
    """``"3,17"`` -> [3, 17]; None stays None (the top latents by --sort-by)."""
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InterpError(
            f"--latents {text!r}: give latent indices separated by commas, e.g. --latents 3,17."
        ) from None


@sae_app.command("features")
def features_cmd(
    ctx: typer.Context,
    sae_dir: Annotated[Path, typer.Argument(help="An SAE directory (interp sae train, sae-lens).")],
    out: Annotated[Path, typer.Option(help="Directory for the result and features.html.")],
    model: ModelOpt = "organism",
    data: Annotated[str, typer.Option(help="A task name, 'mixture' or a .txt file.")] = "ioi",
    rows: Annotated[int, typer.Option(help="Rows of data (task prompts, mixture rows).")] = 64,
    latents: Annotated[
        str | None,
        typer.Option(help="Latents, e.g. 3,17 (default: all, the page shows the first --top)."),
    ] = None,
    top: Annotated[int, typer.Option(help="Latents the page shows without --latents.")] = 20,
    sort_by: Annotated[
        str, typer.Option(help="Table column to rank latents by (density, max, mean_active, ...).")
    ] = "density",
    examples: Annotated[int, typer.Option(help="Top-activating examples per latent.")] = 10,
    batch_size: Annotated[int, typer.Option(help="Rows per forward pass.")] = 32,
    seed: Annotated[int, typer.Option(help="Seed of the data.")] = 0,
) -> None:
    """Describe SAE latents over some data: density, activations, top examples, histograms and
    output tokens; saves the result and an offline HTML page (OUT/features.html)."""
    from interp.analyses.sae import check_fits, features, load
    from interp.analyses.sae.features import check_latents
    from interp.checks import one_of
    from interp.cli_figure import command_line
    from interp.files import atomic_write_text
    from interp.models import load_model
    from interp.results.sae import METRICS

    chosen = _latent_list(latents)
    one_of("--sort-by", sort_by, ["latent", "label", *METRICS, "top_boosted", "top_suppressed"])
    if top < 1:
        raise InterpError(f"--top must be at least 1, got {top}.")
    if not sae_dir.is_dir():
        raise InterpError(
            f"{sae_dir} is not a directory: give an SAE directory (cfg.json and "
            "sae_weights.safetensors, as interp sae train writes)."
        )
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / "result.json").exists())
    ):
        raise InterpError(f"{out} exists and is not a saved result: choose a new --out.")
    sae = load(sae_dir)
    check_latents(chosen, int(sae.cfg.d_sae))  # before the model loads or any forward pass
    m = load_model(model)
    check_fits(m, sae)
    sae = sae.to(m.device)
    res = features(
        m,
        training_data(m, data, rows, seed),
        sae,
        latents=chosen,
        top_n=examples,
        batch_size=batch_size,
    )
    res.meta["command"] = command_line(ctx)
    res.save(out)
    shown = chosen if chosen is not None else res.ranked(top, sort_by)
    page = out / "features.html"
    atomic_write_text(page, res.page_html(shown, sort_by))
    typer.echo(res.table(sort_by).head(len(shown)).to_string(index=False))
    typer.echo(f"saved {out} and {page}")
