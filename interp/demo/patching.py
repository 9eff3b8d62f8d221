"""The demo's causal mediation patching section."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from interp.demo.sizes import Sizes
from interp.nodes import Node, heads_of
from interp.tasks.registry import make_task
from interp.viz.html import table


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
    top = heads_of(heads.top(k))
    together = activation_patch(model, task, nodes=[top[:i] for i in range(1, k + 1)], seed=seed)
    together.save(out / "patch_head_sets")
    atp = attribution_patch(model, task, target="z", seed=seed)
    atp = agreement(atp, heads, k=k)  # a new result, with the comparison saved alongside
    agree = atp.agreement
    assert agree is not None
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
    mover = max(top, key=lambda h: h.layer)
    if mover.layer > 0:
        path = path_patch(model, task, receivers=[f"q:{mover.label}"], seed=seed)
        path.save(out / "path_patch")
        items.append(path)
    return items


def _patching_large(model: Any, out: Path, task: Any, seed: int, sizes: Sizes) -> list[Any]:
    """Patching within minutes on a large model: AtP ranks every head, exact patching checks
    AtP's top heads one at a time and the best of them together, the residual stream is
    patched at the last few positions of five evenly spaced layers, and path patching reads only the
    top AtP heads as senders."""
    from interp.analyses.patching import activation_patch, attribution_patch, path_patch

    assert sizes.exact_heads is not None and sizes.resid_positions is not None
    atp = attribution_patch(model, task, target="z", seed=seed)
    atp.save(out / "atp_heads")
    ranking = atp.top(4 * sizes.exact_heads)
    ranked = heads_of(ranking)
    checked = ranked[: sizes.exact_heads]
    heads = activation_patch(model, task, nodes=[[h] for h in checked], seed=seed)
    heads.save(out / "patch_heads")
    exact = {h: float(v) for h, v in zip(checked, heads.values.tolist(), strict=True)}
    top = sorted(checked, key=lambda h: -abs(exact[h]))[: sizes.head_sets]
    together = activation_patch(
        model, task, nodes=[top[:i] for i in range(1, len(top) + 1)], seed=seed
    )
    together.save(out / "patch_head_sets")
    one = make_task(model, "ioi", n=len(task), seed=seed, templates=[0])
    last = range(max(0, one.seq_len - sizes.resid_positions), one.seq_len)
    layers = sorted({round(i * (model.n_layers - 1) / 4) for i in range(5)})
    nodes = [[Node("resid_pre", l, pos=p)] for l in layers for p in last]
    resid = activation_patch(model, one, nodes=nodes, seed=seed)
    resid.save(out / "patch_resid_pre")
    atp_of = dict(zip(ranked, ranking["value"].astype(float), strict=True))
    rows = [
        {"head": h.label, "AtP": round(atp_of[h], 4), "exact": round(exact[h], 4)} for h in checked
    ]
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
    mover = max(top, key=lambda h: h.layer)
    early = [h for h in ranked if h.layer < mover.layer][: sizes.path_senders]
    if early:
        path = path_patch(model, task, sender=early, receivers=[f"q:{mover.label}"], seed=seed)
        path.save(out / "path_patch")
        items.append(path)
    return items
