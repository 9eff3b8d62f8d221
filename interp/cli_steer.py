"""`interp run steer` and `interp run targets`: steering from the command line.

Registered on `run_app` (interp/cli_run.py) when interp/cli.py adds the `run` group. Every
option is checked before the model loads, and nothing is written to OUT unless the whole
analysis (and its figures) succeeded.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer

from interp.cli_figure import record_run, run_command
from interp.cli_run import ModelOpt, OutOpt, SeedOpt, run_app
from interp.errors import InterpError

SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "z")
METHODS = ("mean_diff", "pca", "probe", "act_add")
EVIDENCE = ("dla", "patching", "probes")
DETECTORS = ("induction", "previous_token", "next_token", "duplicate_token", "first_token")
#: The library's defaults, written as literals so `interp --help` does not import torch
#: (a test checks they stay the library's).
VERIFY_ALPHAS = "1,2,4,8,16"
NEUTRAL_N = 32

AlphasOpt = Annotated[str, typer.Option(help="Strengths in sigma units, comma-separated.")]
NeutralOpt = Annotated[
    str,
    typer.Option(
        help="Neutral text for side effects (KL, loss change): 'auto' (prompts of the other "
        "built-in tasks), 'none' (skip), or a .txt file with one text per line."
    ),
]
PositionsOpt = Annotated[
    str, typer.Option(help="Where steering adds: last (the answer position), all, or e.g. 3,4.")
]


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    from interp.checks import one_of

    one_of(option, value, allowed)
    return value


def _floats(option: str, text: str) -> list[float]:
    """Comma-separated finite numbers (``"1,2,4"``)."""
    try:
        values = [float(p) for p in text.split(",") if p.strip()]
    except ValueError:
        raise InterpError(
            f"{option} {text!r}: give comma-separated numbers (sigma units), e.g. 1,2,4,8."
        ) from None
    if not values:
        raise InterpError(f"{option} is empty: give at least one strength, e.g. 1,2,4,8.")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise InterpError(f"{option} {text!r}: strengths must be finite, got {bad[0]}.")
    return values


def _names(option: str, text: str, allowed: tuple[str, ...]) -> list[str]:
    """Comma-separated names from `allowed` (hyphens read as underscores)."""
    items = [p.strip().replace("-", "_") for p in text.split(",") if p.strip()]
    for item in items:
        _choice(option, item, allowed)
    return items


def _positions(text: str) -> Any:
    if text in ("last", "all"):
        return text
    try:
        idx = [int(p) for p in text.split(",") if p.strip()]
    except ValueError:
        idx = []
    if not idx:
        raise InterpError(f"--positions {text!r}: use last, all, or positions such as 3,4.")
    return idx[0] if len(idx) == 1 else idx


def _neutral_file(text: str) -> list[str] | None:
    """The texts of a neutral .txt file, read before any model loads ('auto'/'none': None)."""
    if text in ("auto", "none"):
        return None
    from interp.files import check_readable

    path = Path(text)
    check_readable(path, "neutral text file", "give 'auto', 'none' or a .txt file")
    if path.is_dir():
        raise InterpError(f"--neutral {text}: a directory; give a .txt file, 'auto' or 'none'.")
    try:
        lines = [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
    except UnicodeDecodeError:
        raise InterpError(f"--neutral {text}: not UTF-8 text; save it as UTF-8.") from None
    if not lines:
        raise InterpError(f"--neutral {text}: the file holds no texts (one per line).")
    return lines


def _neutral(model: Any, spec: str, texts: list[str] | None, task: str, seed: int) -> Any:
    from interp.analyses.steering import neutral_prompts
    from interp.tasks.registry import GENERATORS

    if spec == "none":
        return None
    if texts is not None:
        return texts
    exclude = task if task in GENERATORS else None
    return neutral_prompts(model, NEUTRAL_N, seed=seed, exclude=exclude)


def _head(text: str | None) -> Any:
    if text is None:
        return None
    return int(text) if text.lstrip("-").isdigit() else text


def _save(out: Path, res: Any, views: dict[str, Any]) -> None:
    """Figures first (a view that fails leaves OUT untouched), then the result, then them."""
    figs = {name: make() for name, make in views.items()}
    record_run(res)
    res.save(out)
    for name, fig in figs.items():
        fig.write_html(str(out / f"{name}.html"), include_plotlyjs=True)
    shown = ", ".join(f"{name}.html" for name in figs)
    typer.echo(f"{res.title}\nsaved: {out}  (views: {shown})")


def _g(x: Any) -> str:
    """A number as the printed tables and summaries show it."""
    return f"{float(x):.4g}"


@run_app.command("steer")
@run_command
def steer_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    task: Annotated[
        str,
        typer.Option(
            help="A task with two sets of examples: facts (true/false statements), a task with "
            "corrupted prompts (ioi ...), or a .jsonl file with labels or corrupt prompts."
        ),
    ] = "facts",
    at: Annotated[str, typer.Option(help=f"The site: {', '.join(SITES)} (z: give --head).")] = (
        "resid_post"
    ),
    layer: Annotated[int | None, typer.Option(help="The block (default: the last).")] = None,
    head: Annotated[str | None, typer.Option(help="With --at z: a head, 5 or L3H5.")] = None,
    method: Annotated[str, typer.Option(help="mean_diff, pca, probe or act_add.")] = "mean_diff",
    alphas: AlphasOpt = "1,2,4,8",
    positions: PositionsOpt = "last",
    toward: Annotated[
        str, typer.Option(help="positive (towards label 1 / the clean answer) or negative.")
    ] = "positive",
    n_random: Annotated[
        int, typer.Option(help="Random directions per strength (same site and norm).")
    ] = 5,
    n: Annotated[int, typer.Option(help="Examples the direction is computed from.")] = 256,
    n_eval: Annotated[int, typer.Option(help="Held-out prompts the steering is measured on.")] = (
        128
    ),
    seed: SeedOpt = 0,
    neutral: NeutralOpt = "auto",
) -> None:
    """A steering direction from the task's own examples, measured on a held-out draw.

    The direction comes from --n examples drawn with --seed (for facts: statements about the
    trained half of the world); its effect at each strength (sigma units) is measured on --n-eval
    prompts drawn with seed + 1 (facts: the held-out half), beside random directions of the same
    norm, with side effects on neutral text. Saves the result, the direction (OUT/direction)
    and figure.html; prints the table."""
    strengths = _floats("--alphas", alphas)
    _choice("--at", at, SITES)
    if (at == "z") != (head is not None):
        raise InterpError(
            "--at z steers one head's output: give --head (e.g. --head L3H5)."
            if at == "z"
            else f"--head applies to --at z (a head's output), not --at {at}."
        )
    _choice("--method", method, METHODS)
    _choice("--toward", toward, ("positive", "negative"))
    pos = _positions(positions)
    texts = _neutral_file(neutral)
    if n_random < 0 or n < 1 or n_eval < 1:
        raise InterpError("--n and --n-eval must be at least 1, --n-random at least 0.")
    from interp.analyses.steering import direction, evaluate
    from interp.models import load_model
    from interp.tasks.registry import make_task

    m = load_model(model)
    site_layer = layer
    if site_layer is None and (at != "z" or head is None or str(head).isdigit()):
        site_layer = m.n_layers - 1
    src_kw: dict[str, Any] = {"split": "train"} if task == "facts" else {}
    eval_kw: dict[str, Any] = {"split": "eval"} if task == "facts" else {}
    source = make_task(m, task, n=n, seed=seed, **src_kw)
    held_out = make_task(m, task, n=n_eval, seed=seed + 1, **eval_kw)
    d = direction(m, source, at=at, layer=site_layer, head=_head(head), method=method)  # type: ignore[arg-type]
    side = _neutral(m, neutral, texts, task, seed)
    res = evaluate(
        m,
        held_out,
        d,
        alphas=strengths,
        neutral=side,
        kl=side is not None,
        toward=toward,  # type: ignore[arg-type]
        positions=pos,
        n_random=n_random,
        seed=seed,
        progress=False,
    )
    _save(out, res, {"figure": res.plot, "frontier": res.plot_frontier})
    d.save(out / "direction")
    typer.echo(
        f"direction: {d.label}, sigma={_g(d.sigma)} (class means {_g(d.separation)} sigma "
        f"apart), from {d.provenance['source']}; saved: {out / 'direction'}"
    )
    b = res.baseline
    typer.echo(
        f"measured on {res.n_prompts} held-out prompts ({res.objective}); unsteered target "
        f"rate {_g(b['target_rate'])}; {res.n_neutral} neutral texts"
    )
    table = res.table().drop(columns=["direction", "site"])
    typer.echo(table.to_string(index=False, float_format=_g))


@run_app.command("targets")
@run_command
def targets_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    task: Annotated[
        str, typer.Option(help="A task with two sets of examples: facts, ioi, ... or a .jsonl.")
    ] = "facts",
    n: Annotated[int, typer.Option(help="Prompts to generate.")] = 128,
    seed: SeedOpt = 0,
    over: Annotated[str, typer.Option(help="heads (each head's z) or layers.")] = "heads",
    evidence: Annotated[
        str, typer.Option(help="Evidence sources, any of dla,patching,probes ('' for none).")
    ] = "dla,patching,probes",
    detectors: Annotated[
        str, typer.Option(help="Head detectors to add as evidence, e.g. induction.")
    ] = "",
    patching: Annotated[str, typer.Option(help="exact or atp.")] = "exact",
    k: Annotated[int, typer.Option(help="Top units (and as many random ones) to steer.")] = 5,
    alphas: AlphasOpt = VERIFY_ALPHAS,
    alpha: Annotated[
        float | None,
        typer.Option(help="Verify at this strength (default: calibrated to --kl-budget)."),
    ] = None,
    kl_budget: Annotated[float, typer.Option(help="KL (nats) the calibration allows.")] = 1.0,
    positions: PositionsOpt = "last",
    neutral: Annotated[
        str,
        typer.Option(
            help="Text verify measures KL on (and calibrates the strength with): 'none' (the "
            "task's own answer position), 'auto' (prompts of the other built-in tasks) or a "
            ".txt file with one text per line."
        ),
    ] = "none",
) -> None:
    """Rank steering targets by evidence, then verify the top --k by steering them.

    Every head (or layer) is ranked by each evidence source and by a merged rank; `verify`
    steers the top k and k random units along their mean-difference directions and reports
    the realised effect, its KL cost and each source's Spearman correlation with the effect.
    Saves the verified scorecard, figure.html (ranks) and verification.html."""
    unit = {"head": "heads", "layer": "layers"}.get(over, over)  # --over head -> heads
    _choice("--over", unit, ("heads", "layers"))
    sources = _names("--evidence", evidence, EVIDENCE)
    kinds = _names("--detectors", detectors, DETECTORS)
    if not sources and not kinds:
        raise InterpError("No evidence to rank by: give --evidence and/or --detectors.")
    if kinds and unit != "heads":
        raise InterpError("Head detectors score heads: use --detectors with --over heads.")
    _choice("--patching", patching, ("exact", "atp"))
    grid = _floats("--alphas", alphas)
    if alpha is not None:
        _floats("--alpha", str(alpha))
    if k < 1 or n < 1:
        raise InterpError(f"--k and --n must be at least 1, got --k {k} --n {n}.")
    if not kl_budget > 0:
        raise InterpError(f"--kl-budget must be positive, got {kl_budget}.")
    pos = _positions(positions)
    texts = _neutral_file(neutral)
    from interp.analyses.steering import targets
    from interp.cli_run import _setup

    m, t = _setup(model, task, n, seed)
    n_units = m.n_layers * m.n_heads if unit == "heads" else m.n_layers
    if k > n_units // 2:
        raise InterpError(f"--k {k}: give at most {n_units // 2} (half of the {n_units} {unit}).")
    side = _neutral(m, neutral, texts, task, seed)
    card = targets(
        m,
        t,
        over=unit,  # type: ignore[arg-type]
        evidence=sources,
        detectors=kinds,
        patching=patching,  # type: ignore[arg-type]
        neutral=side,
        positions=pos,
        seed=seed,
        progress=False,
    )
    card = card.verify(
        k=k, alpha=alpha, alphas=grid, kl_budget=kl_budget, seed=seed, progress=False
    )
    _save(out, card, {"figure": card.plot, "verification": card.plot_verification})
    cols = ["unit", *[c for c in card.ranking().columns if c.startswith("rank_")]]
    typer.echo(f"ranking ({card.merge_rule}):")
    typer.echo(card.ranking()[cols].head(max(10, 2 * k)).to_string(index=False, float_format=_g))
    s = card.verify_summary
    how = "calibrated" if s["calibrated"] else "given"
    if s.get("within_budget") is False:
        how += ", over the budget even so"
    typer.echo(
        f"\nverified at alpha={_g(s['alpha'])} sigma ({how}; KL budget {_g(s['kl_budget'])} "
        f"on {s['kl_on']}):\n"
        f"  top {s['k']}:    {', '.join(s['top'])}: effect {_g(s['top_effect'])}, "
        f"KL {_g(s['top_kl'])}\n"
        f"  random {s['k']}: {', '.join(s['random'])}: effect {_g(s['random_effect'])}, "
        f"KL {_g(s['random_kl'])}\n"
        f"  mean |effect|: top {_g(s['top_abs_effect'])}, random {_g(s['random_abs_effect'])}"
        f" ({_g(s['top_over_random'])} x)"
    )
    typer.echo("Spearman correlation of each evidence source with the realised effect:")
    for src, rho in card.correlations.items():
        typer.echo(f"  {src}: {_g(rho)}")
