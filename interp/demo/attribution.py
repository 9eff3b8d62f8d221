"""The demo's head attribution section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interp.demo.sizes import Sizes
from interp.nodes import heads_of
from interp.tasks.registry import make_task


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
        dla = direct_logit(model, task, over="heads", seed=seed)
        dla.save(out / "dla_heads")
        items.append(dla)
        comp = direct_logit(model, task, over="components", seed=seed)
        comp.save(out / "dla_components")
        items.append(comp)
        lens = logit_lens(model, make_task(model, "ioi", n=n, seed=seed, templates=[0]))
        lens.save(out / "logit_lens")
        items.append(lens)
        top_dla = heads_of(dla.top(2))
    else:
        items.append(
            (
                "Direct logit attribution",
                "<p class='note'>Skipped: this model has no "
                "trained LM head, so there are no logits to attribute.</p>",
            )
        )
        top_dla = []
    top_ind = heads_of(scores["induction"].top(2))
    prev = heads_of(scores["previous_token"].top(1))
    heads = list(dict.fromkeys(prev + top_ind + top_dla))
    words = make_task(model, "induction", n=1, seed=seed, seq_len=min(8, seq_len))
    items.append(attention_patterns(model, words, heads))
    return items
