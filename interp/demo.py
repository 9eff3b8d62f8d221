"""`interp demo`: every analysis on one model, composed into one HTML report."""

from __future__ import annotations

import html
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from interp.activations.api import cache
from interp.analyses.residual import residual_norms
from interp.models import load_model
from interp.tasks.registry import make_task
from interp.viz.html import table
from interp.viz.report import report


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


# Models above this many parameters get the demo's small sizes (SmolLM2-135M has 163M with its
# untied unembedding; the organism and test models are far below).
LARGE_PARAMS = 50_000_000


@dataclass(frozen=True)
class Sizes:
    """How much work each demo section does. `full` is the organism's demo, unchanged; `large`
    keeps a 100M+ parameter model (SmolLM2: 30 layers x 9 heads) within minutes on two cores:
    fewer prompts, shorter sequences, position sweeps over the last few positions only, a
    few patched head sets, path patching from the top heads only, shorter generation."""

    n: int | None = None  # prompts for caching, detectors, attribution, patching (None: n)
    detector_len: int = 16
    exact_heads: int | None = None  # None: exact patching of every head; m: AtP's top m only
    resid_positions: int | None = None  # None: every position; k: the last k of 5 layers
    head_sets: int | None = None  # None: a tenth of the heads
    path_senders: int | None = None  # None: every earlier head
    probe_n: int = 256
    traj_n: int = 32
    traj_samples: int = 6
    traj_tokens: int = 48
    # The organism answers its trained "347 + 589 =" format; a real chat model gets easy
    # one-step questions asking for a number ("What is 7 - 1? Answer with a number only."),
    # which SmolLM2-135M answers right about 30% of the time at T=0.7 (2% asked in words).
    traj_task: str = "arithmetic"
    traj_task_options: tuple[tuple[str, Any], ...] = ()
    traj_temperature: float = 1.0

    @classmethod
    def for_model(cls, model: Any) -> Sizes:
        if model.info().n_params < LARGE_PARAMS:
            return cls()
        return cls(
            n=8,
            detector_len=8,
            exact_heads=10,
            resid_positions=3,
            head_sets=4,
            path_senders=6,
            probe_n=64,
            traj_n=8,
            traj_samples=4,
            traj_tokens=16,
            traj_task="word_arithmetic",
            traj_task_options=(
                ("steps", 1),
                ("max_operand", 9),
                ("ops", ("plus", "minus")),
                ("style", "digits"),
                ("instruction", " Answer with a number only."),
            ),
            traj_temperature=0.7,
        )


def run_demo(model_spec: Any, out: str | Path, n: int = 32, seed: int = 0) -> Path:
    """Load the model, cache the residual stream to disk, analyse, and write out/report.html.

    Large models (over 50M parameters) run smaller sizes (`Sizes.for_model`), so that
    ``interp demo --model smollm2`` finishes in minutes on a laptop CPU.
    """
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
    sections += probes_section(model, out, seed=seed, n=sizes.probe_n)
    sections += trajectories_section(model, out, seed=seed, n=sizes.traj_n, sizes=sizes)
    return report(sections, out / "report.html", title=f"interp demo: {model.name}")


def attribution_section(
    model: Any, out: Path, n: int, seed: int, sizes: Sizes = Sizes()
) -> list[Any]:
    """Head attribution: detectors on every model; DLA and logit lens where there are logits."""
    from interp.analyses.attribution import (
        attention_patterns,
        detect_heads,
        direct_logit,
        logit_lens,
    )

    items: list[Any] = []
    seq_len = min(sizes.detector_len, (model.n_ctx - len(model.prefix_ids)) // 2)
    kinds = ["induction", "previous_token", "duplicate_token", "first_token"]
    if not model.is_causal:
        kinds.append("next_token")
    scores = {}
    for kind in kinds:
        res = detect_heads(model, kind=kind, n=n, seq_len=seq_len, seed=seed)
        res.save(out / f"heads_{kind}")
        scores[kind] = res
        items.append(res)
    if model.has_lm_head and model.backend == "HookedTransformer":
        task = make_task(model, "ioi", n=n, seed=seed)
        dla = direct_logit(model, task, by="head", seed=seed)
        dla.save(out / "dla_heads")
        items.append(dla)
        comp = direct_logit(model, task, by="component", seed=seed)
        comp.save(out / "dla_components")
        items.append(comp)
        lens = logit_lens(model, make_task(model, "ioi", n=n, seed=seed, templates=[0]))
        lens.save(out / "logit_lens")
        items.append(lens)
        top_dla = [(int(r.layer), int(r["head"])) for _, r in dla.top(2).iterrows()]
    else:
        items.append(
            (
                "Direct logit attribution",
                "<p class='note'>Skipped: this model has no "
                "trained LM head, so there are no logits to attribute.</p>",
            )
        )
        top_dla = []
    top_ind = [(int(r.layer), int(r["head"])) for _, r in scores["induction"].top(2).iterrows()]
    prev = [(int(r.layer), int(r["head"])) for _, r in scores["previous_token"].top(1).iterrows()]
    heads = list(dict.fromkeys(prev + top_ind + top_dla))
    words = make_task(model, "induction", n=1, seed=seed, seq_len=min(8, seq_len))
    items.append(attention_patterns(model, words, heads))
    return items


def patching_section(model: Any, out: Path, n: int, seed: int, sizes: Sizes = Sizes()) -> list[Any]:
    """Causal mediation on IOI: exact head and residual patching, the heads patched together,
    attribution patching against exact, and path patching into the top head's query."""
    from interp.analyses.patching import (
        activation_patch,
        agreement,
        attribution_patch,
        path_patch,
    )

    if not (model.has_lm_head and model.backend == "HookedTransformer"):
        return [
            (
                "Activation patching",
                "<p class='note'>Skipped: patching metrics read logits, and this model has no "
                "trained LM head (or is not a HookedTransformer).</p>",
            )
        ]
    task = make_task(model, "ioi", n=n, seed=seed)
    if sizes.exact_heads is not None:
        return _patching_large(model, out, task, seed, sizes)
    heads = activation_patch(model, task, target="z", seed=seed)
    heads.save(out / "patch_heads")
    one = make_task(model, "ioi", n=n, seed=seed, templates=[0])
    resid = activation_patch(model, one, target="resid_pre", per_position=True, seed=seed)
    resid.save(out / "patch_resid_pre")
    k = max(1, (model.n_layers * model.n_heads) // 10)
    top = [f"L{int(r.layer)}H{int(r['head'])}" for _, r in heads.top(k).iterrows()]
    together = activation_patch(model, task, target=[top[:i] for i in range(1, k + 1)], seed=seed)
    together.save(out / "patch_head_sets")
    atp = attribution_patch(model, task, target="z", seed=seed)
    agree = agreement(atp, heads, k=k)
    atp.save(out / "atp_heads")
    items: list[Any] = [heads, resid, together, atp]
    items.append(
        (
            "Attribution patching against exact patching",
            f"<p>AtP estimates every head from two forward passes and one backward pass. "
            f"Spearman with exact patching: {agree['spearman']:.3f}; top-{agree['k']} recall "
            f"{agree['top_k_recall']:.2f}.</p>"
            + atp.scatter().to_html(include_plotlyjs=False, full_html=False),
        )
    )
    # The deepest of the top heads: every earlier head is a candidate sender into its query.
    mover = max(top, key=lambda h: int(h[1 : h.index("H")]))
    if not mover.startswith("L0"):
        path = path_patch(model, task, receivers=[f"q:{mover}"], seed=seed)
        path.save(out / "path_patch")
        items.append(path)
    return items


def _layer(head: str) -> int:
    return int(head[1 : head.index("H")])


def _patching_large(model: Any, out: Path, task: Any, seed: int, sizes: Sizes) -> list[Any]:
    """Patching within minutes on a large model: AtP ranks every head, exact patching checks
    AtP's top heads one at a time and the best of them together, the residual stream is
    patched at the last few positions of five evenly spaced layers, and path patching reads only the
    top AtP heads as senders."""
    from interp.analyses.patching import activation_patch, attribution_patch, path_patch

    assert sizes.exact_heads is not None and sizes.resid_positions is not None
    atp = attribution_patch(model, task, target="z", seed=seed)
    atp.save(out / "atp_heads")
    ranked = [
        f"L{int(r.layer)}H{int(r['head'])}" for _, r in atp.top(4 * sizes.exact_heads).iterrows()
    ]
    checked = ranked[: sizes.exact_heads]
    heads = activation_patch(model, task, target=[[h] for h in checked], seed=seed)
    heads.save(out / "patch_heads")
    exact = {h: float(v) for h, v in zip(checked, heads.values.tolist(), strict=True)}
    top = sorted(checked, key=lambda h: -abs(exact[h]))[: sizes.head_sets]
    together = activation_patch(
        model, task, target=[top[:i] for i in range(1, len(top) + 1)], seed=seed
    )
    together.save(out / "patch_head_sets")
    one = make_task(model, "ioi", n=len(task), seed=seed, templates=[0])
    last = range(max(0, one.seq_len - sizes.resid_positions), one.seq_len)
    layers = sorted({round(i * (model.n_layers - 1) / 4) for i in range(5)})
    nodes = [[f"resid_pre:L{l}@{p}"] for l in layers for p in last]
    resid = activation_patch(model, one, target=nodes, seed=seed)
    resid.save(out / "patch_resid_pre")
    atp_of = {
        f"L{int(r.layer)}H{int(r['head'])}": float(r.value)
        for _, r in atp.top(4 * sizes.exact_heads).iterrows()
    }
    rows = [{"head": h, "AtP": round(atp_of[h], 4), "exact": round(exact[h], 4)} for h in checked]
    items: list[Any] = [atp, heads, together, resid]
    items.append(
        (
            "Attribution patching against exact patching",
            f"<p>{html.escape(model.name)} is large ({model.n_layers} layers x "
            f"{model.n_heads} heads), so the "
            "demo patches exactly only the heads attribution patching ranks first (AtP needs "
            "two forward passes and one backward pass for every head), the residual stream "
            f"at the last {sizes.resid_positions} positions of layers {layers}, and path "
            f"patching from the top {sizes.path_senders} earlier AtP heads. Run "
            "<code>interp run patch</code> for full sweeps.</p>" + table(rows, max_rows=50),
        )
    )
    mover = max(top, key=_layer)
    early = [h for h in ranked if _layer(h) < _layer(mover)][: sizes.path_senders]
    if early:
        path = path_patch(model, task, sender=early, receivers=[f"q:{mover}"], seed=seed)
        path.save(out / "path_patch")
        items.append(path)
    return items


def probes_section(model: Any, out: Path, seed: int, n: int = 256) -> list[Any]:
    """Where the truth of the facts task's statements is linearly readable: logistic probes by
    layer (with the random-label control) and by head, the examples projected on the best
    layer's direction, and CCS with and without a distractor beside its baselines."""
    from interp.analyses.probes import sweep
    from interp.errors import InterpError

    try:
        task = make_task(model, "facts", n=n, seed=seed)
    except InterpError as err:
        return [("Linear probes", f"<p class='note'>Skipped: {html.escape(str(err))}</p>")]
    layers = sweep(model, task, over="layers", seed=seed, progress=False)
    layers.save(out / "probe_layers")
    heads = sweep(model, task, over="heads", seed=seed, progress=False)
    heads.save(out / "probe_heads")
    items: list[Any] = [layers, heads]
    m = layers.meta
    acc = layers.metric("accuracy")
    sel = layers.metric("selectivity")
    best = layers.coords["layer"].index(m["best_layer"])
    items.append(
        (
            "Probe summary",
            f"<p>Truth of held-out statements ({m['split']['n_test']} test examples): accuracy "
            f"first jumps at layer {m['jump_layer']} and plateaus at layer {m['plateau_layer']}; "
            f"best layer {m['best_layer']} with accuracy {float(acc[best]):.3f} and selectivity "
            f"{float(sel[best]):.3f} over the random-label control. Layer 0 is the embedding.</p>"
            + layers.plot_projection().to_html(include_plotlyjs=False, full_html=False),
        )
    )
    # CCS reads representations only, so it runs on any model with the facts vocabulary.
    rows = []
    for label, words in (("no distractor", None), ("distractor red/blue", ("red", "blue"))):
        try:
            ccs = sweep(model, task, probe="ccs", distractor=words, seed=seed, progress=False)
        except InterpError as err:
            rows.append(f"<tr><td>{label}</td><td colspan=5>{html.escape(str(err))}</td></tr>")
            continue
        ccs.save(out / ("probe_ccs" if words is None else "probe_ccs_distractor"))
        b = int(ccs.metric("accuracy").argmax())
        cells = "".join(
            f"<td>{float(ccs.metric(k)[b]):.3f}</td>"
            for k in ("accuracy", "pca_accuracy", "kmeans_accuracy")
        )
        extra = (
            f"<td>{float(ccs.metric('distractor_accuracy')[b]):.3f}</td>" if words else "<td>-</td>"
        )
        rows.append(f"<tr><td>{label}</td><td>{ccs.coords['layer'][b]}</td>{cells}{extra}</tr>")
    items.append(
        (
            "CCS and its baselines",
            "<p>Unsupervised probes on contrast pairs (statement + ' true' / ' false'), "
            "sign-free accuracy on held-out pairs at CCS's best layer. With the distractor, "
            "each pair also starts with 'red' on one side and 'blue' on the other in random "
            "orientation (Farquhar et al. 2023): the last column says how well CCS predicts "
            "that orientation instead of truth.</p><table><tr><th>setting</th><th>layer</th>"
            "<th>CCS</th><th>PCA</th><th>k-means</th><th>CCS vs distractor</th></tr>"
            + "".join(rows)
            + "</table>",
        )
    )
    return items


def trajectories_section(
    model: Any, out: Path, seed: int, n: int = 32, sizes: Sizes = Sizes()
) -> list[Any]:
    """Latent-trajectory signals on arithmetic: sample several answers per problem, then score
    how the hidden states move against whether each answer is right, beside output confidence
    and null baselines, best-of-n selection and sequential acceptance."""
    from interp.analyses.trajectories import evaluate
    from interp.errors import InterpError

    name = "Latent-trajectory signals"
    if not (model.has_lm_head and model.backend == "HookedTransformer"):
        return [(name, "<p class='note'>Skipped: sampling needs a model with an LM head.</p>")]
    try:
        task = make_task(model, sizes.traj_task, n=n, seed=seed, **dict(sizes.traj_task_options))
        room = min(sizes.traj_tokens, model.n_ctx - int(task.answer_pos.max()) - 1)
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
    acc = res.acceptance()
    return [
        res,
        (
            "Trajectory evidence",
            f"<p>{p['n_traces']} answers to {p['n_prompts']} problems, chunks of {p['k']} "
            f"tokens, early signals from the first {p['early']} chunks. Selection picks one "
            "of each problem's samples by a signal; sequential acceptance reads samples in "
            "order and stops at the first that clears a threshold calibrated on "
            f"{len(res.meta['calibration_prompts'])} held-out problems (reported on the "
            "others).</p>"
            + table(auroc[cols].round(3), max_rows=50)
            + fig(res.plot_roc())
            + fig(res.plot_layers())
            + fig(res.plot_trajectories())
            + fig(res.plot_tokens())
            + "<h3>best-of-n selection</h3>"
            + table(res.selection().round(3), max_rows=50)
            + "<h3>sequential acceptance (test problems)</h3>"
            + table(acc.round(3), max_rows=50),
        ),
    ]
