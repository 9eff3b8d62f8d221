"""`interp run ANALYSIS`: run one analysis, save its result and figure, print its top rows.
Each records the command reproducing it and takes --figure (interp/cli_figure.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from interp.cli_executor import AddressOpt, ExecutorOpt, WorkersOpt, make_executor
from interp.cli_figure import record_run, run_command
from interp.errors import InterpError
from interp.nodes import parse_heads

run_app = typer.Typer(
    help="Run one analysis; saves OUT/ (result, with the command that reproduces it) and "
    "OUT/figure.html; --figure PATH also writes a static PDF/SVG/PNG.",
    no_args_is_help=True,
)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="'organism', a name or a directory.")]
TaskOpt = Annotated[
    str,
    typer.Option(
        help="Task generator (ioi, induction, facts, arithmetic) or a .txt/.jsonl prompts file."
    ),
]
OutOpt = Annotated[Path, typer.Option(help="Directory for the saved result.")]
NOpt = Annotated[int, typer.Option(help="Prompts to generate.")]
SeedOpt = Annotated[int, typer.Option(help="Seed for the task and bootstrap.")]


def _finish(res: Any, out: Path, k: int = 10) -> None:
    record_run(res)
    res.save(out)
    res.plot().write_html(str(out / "figure.html"), include_plotlyjs=True)
    typer.echo(f"{res.title}\nsaved: {out}  (figure: {out / 'figure.html'})")
    if type(res).show_top:
        typer.echo(res.top(k).to_string(index=False))


def _setup(
    model: str, task: str, n: int, seed: int, template: int | None = None
) -> tuple[Any, Any]:
    from interp.models import load_model
    from interp.tasks.registry import make_task

    m = load_model(model)
    extra: dict[str, Any] = {}
    if template is not None:
        if task != "ioi":
            raise InterpError("--template applies to the ioi task only.")
        extra["templates"] = [template]
    return m, make_task(m, task, n=n, seed=seed, **extra)


TemplateOpt = Annotated[
    int | None, typer.Option(help="IOI only: use one template so every prompt has one length.")
]


@run_app.command("dla")
@run_command
def dla_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    task: TaskOpt = "ioi",
    n: NOpt = 64,
    seed: SeedOpt = 0,
    over: Annotated[
        str,
        typer.Option(
            "--over",
            "--by",  # the old spelling (singular values accepted too)
            help="heads, layers, components or positions.",
        ),
    ] = "heads",
    token: Annotated[str | None, typer.Option(help="Attribute this token's logit instead.")] = None,
    template: TemplateOpt = None,
) -> None:
    """Direct logit attribution per head, layer, component or source position."""
    from interp.analyses.attribution import direct_logit

    m, t = _setup(model, task, n, seed, template)
    unit = over if over.endswith("s") else over + "s"  # --by head -> heads
    _finish(direct_logit(m, t, over=unit, token=token, seed=seed), out)  # type: ignore[arg-type]


@run_app.command("logit-lens")
@run_command
def logit_lens_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    task: TaskOpt = "ioi",
    n: NOpt = 16,
    seed: SeedOpt = 0,
    token: Annotated[
        str | None,
        typer.Option("--token", "--target", help="Token to track (default: the answer)."),
    ] = None,
    template: TemplateOpt = None,
) -> None:
    """Decode every layer's residual stream with the final norm and unembedding."""
    from interp.analyses.attribution import logit_lens

    m, t = _setup(model, task, n, seed, template)
    _finish(logit_lens(m, t, token=token), out)


@run_app.command("ablate")
@run_command
def ablate_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    task: TaskOpt = "ioi",
    n: NOpt = 64,
    seed: SeedOpt = 0,
    how: Annotated[str, typer.Option(help="zero, mean or resample.")] = "mean",
    heads: Annotated[str, typer.Option(help="'each', or a set like L3H0,L3H5.")] = "each",
) -> None:
    """Ablate heads one at a time (or a set together) and measure the metric change."""
    from interp.analyses.attribution import ablate

    m, t = _setup(model, task, n, seed)
    spec: Any = "each" if heads == "each" else parse_heads(heads)
    _finish(ablate(m, t, heads=spec, how=how, seed=seed), out)  # type: ignore[arg-type]


@run_app.command("heads")
@run_command
def heads_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    kind: Annotated[
        str,
        typer.Option(help="induction, previous_token, next_token, duplicate_token or first_token."),
    ] = "induction",
    n: NOpt = 32,
    seed: SeedOpt = 0,
    seq_len: Annotated[int, typer.Option(help="Length of the repeated random sequence.")] = 16,
) -> None:
    """Score every head with a head detector."""
    from interp.analyses.attribution import detect_heads
    from interp.models import load_model

    m = load_model(model)
    seq_len = min(seq_len, (m.n_ctx - len(m.prefix_ids)) // 2)
    _finish(detect_heads(m, kind=kind.replace("-", "_"), n=n, seq_len=seq_len, seed=seed), out)


ModeOpt = Annotated[
    str,
    typer.Option(
        "--mode",
        "--direction",  # the old spelling
        help="denoise (run corrupted, patch in clean) or noise (run clean, patch in corrupted).",
    ),
]
TargetOpt = Annotated[
    str,
    typer.Option(
        help="resid_pre, resid_mid, resid_post, attn_out, mlp_out, z, q, k, v or pattern "
        "(a node list here still works, as --nodes)."
    ),
]
NodesOpt = Annotated[
    str | None,
    typer.Option(help="Patch these nodes together instead of sweeping: e.g. 'L3H2,L3H6'."),
]
PerPosOpt = Annotated[bool, typer.Option("--per-position", help="Sweep positions separately.")]


def _mode(text: str) -> Any:
    if text not in ("denoise", "noise"):
        raise InterpError(f"--mode {text!r}: use denoise or noise.")
    return text


def _sweep_or_nodes(target: str, nodes: str | None) -> dict[str, Any]:
    """``target=`` for a sweep, or ``nodes=`` for one node set (also when given as --target)."""
    from interp.analyses.patching import TARGETS

    if (
        nodes is None
        and target not in TARGETS
        and ("," in target or ":" in target or "L" in target)
    ):
        nodes = target
    if nodes is None:
        return {"target": target}
    return {"nodes": [s.strip() for s in nodes.split(",") if s.strip()]}


@run_app.command("patch")
@run_command
def patch_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    task: TaskOpt = "ioi",
    n: NOpt = 64,
    seed: SeedOpt = 0,
    target: TargetOpt = "z",
    nodes: NodesOpt = None,
    per_position: PerPosOpt = False,
    mode: ModeOpt = "denoise",
    metric: Annotated[str, typer.Option(help="logit_diff, log_prob, prob or kl.")] = "logit_diff",
    template: TemplateOpt = None,
    store: Annotated[
        Path | None,
        typer.Option(help="Keep each finished unit here; a rerun resumes where it stopped."),
    ] = None,
    executor: ExecutorOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Exact activation patching over every component of a target (batched, exact)."""
    from interp.analyses.patching import activation_patch

    m, t = _setup(model, task, n, seed, template)
    with make_executor(executor, address, workers) as ex:
        res = activation_patch(
            m,
            t,
            **_sweep_or_nodes(target, nodes),
            per_position=per_position,
            mode=_mode(mode),
            metric=metric,
            seed=seed,
            store=store,
            executor=ex,
        )
    _finish(res, out)


@run_app.command("atp")
@run_command
def atp_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    task: TaskOpt = "ioi",
    n: NOpt = 64,
    seed: SeedOpt = 0,
    target: Annotated[str, typer.Option(help="A patching target (z, q, k, v, mlp_out ...).")] = "z",
    per_position: PerPosOpt = False,
    mode: ModeOpt = "denoise",
    star: Annotated[bool, typer.Option("--star", help="AtP*: QK fix and GradDrop.")] = False,
    verify: Annotated[int, typer.Option(help="Verify the top k by exact patching (0: no).")] = 0,
    compare: Annotated[
        bool, typer.Option("--compare", help="Also run the exact sweep and report agreement.")
    ] = False,
    template: TemplateOpt = None,
) -> None:
    """Attribution patching (AtP / AtP*): every component from two forwards and one backward."""
    from interp.analyses.patching import activation_patch, agreement, attribution_patch

    m, t = _setup(model, task, n, seed, template)
    res = attribution_patch(
        m,
        t,
        target=target,
        per_position=per_position,
        mode=_mode(mode),
        star=star,
        verify_top_k=verify or None,
        seed=seed,
    )
    if compare:
        exact = activation_patch(
            m,
            t,
            target=target,
            per_position=per_position,
            mode=_mode(mode),
            seed=seed,
        )
        res = agreement(res, exact)
        a = res.agreement
        assert a is not None
        typer.echo(
            f"agreement with exact patching: Spearman {a['spearman']:.3f}, "
            f"top-{a['k']} recall {a['top_k_recall']:.2f}"
        )
    _finish(res, out)


@run_app.command("path-patch")
@run_command
def path_patch_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    task: TaskOpt = "ioi",
    n: NOpt = 64,
    seed: SeedOpt = 0,
    sender: Annotated[
        str | None, typer.Option(help="'L1H0', 'mlp_out:L1', a comma list; default: every head.")
    ] = None,
    receivers: Annotated[
        str, typer.Option(help="'logits' or head inputs like 'q:L3H2,q:L3H6'.")
    ] = "logits",
    mode: ModeOpt = "noise",
    template: TemplateOpt = None,
) -> None:
    """Path patching: a sender's effect on receivers through direct paths only."""
    from interp.analyses.patching import path_patch

    m, t = _setup(model, task, n, seed, template)
    senders: Any = None if sender is None else [s.strip() for s in sender.split(",")]
    recv: Any = receivers if receivers == "logits" else [r.strip() for r in receivers.split(",")]
    res = path_patch(
        m,
        t,
        sender=senders,
        receivers=recv,
        mode=_mode(mode),
        seed=seed,
    )
    _finish(res, out)


@run_app.command("probe")
@run_command
def probe_cmd(
    out: OutOpt,
    model: ModelOpt = "organism",
    task: Annotated[
        str, typer.Option(help="A labelled task: facts (true/false statements) or a .jsonl file.")
    ] = "facts",
    n: NOpt = 256,
    seed: SeedOpt = 0,
    over: Annotated[str, typer.Option(help="layers or heads.")] = "layers",
    probe: Annotated[str, typer.Option(help="logistic, mass_mean, ridge or ccs.")] = "logistic",
    split: Annotated[str, typer.Option(help="holdout, or a number of folds.")] = "holdout",
    distractor: Annotated[
        str | None, typer.Option(help="CCS only: two words, e.g. red,blue (Farquhar's control).")
    ] = None,
) -> None:
    """Linear probes on every layer or head, with a control task and confidence intervals."""
    from interp.analyses.probes import sweep

    m, t = _setup(model, task, n, seed)
    words = None
    if distractor is not None:
        parts = [w.strip() for w in distractor.split(",")]
        if len(parts) != 2 or not all(parts):
            raise InterpError(f"--distractor {distractor!r}: give two words, e.g. red,blue.")
        words = (parts[0], parts[1])
    res = sweep(
        m,
        t,
        over=over,  # type: ignore[arg-type]
        probe=probe,  # type: ignore[arg-type]
        split=int(split) if split.isdigit() else split,  # type: ignore[arg-type]
        distractor=words,
        seed=seed,
    )
    _finish(res, out)
    if res.jump_layer is not None:
        typer.echo(
            f"accuracy first jumps at layer {res.jump_layer}, plateaus at layer "
            f"{res.plateau_layer}; best layer {res.best_layer}."
        )
