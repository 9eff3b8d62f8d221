"""The demo's SAE section: the organism's shipped SAEs, their latents as units of analysis."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from interp.tasks.registry import make_task


def sae_section(model: Any, out: Path, seed: int, n: int = 32) -> list[Any]:
    """Card of each shipped SAE; on IOI, latent DLA and AtP over latents verified by exact
    patching; on facts, sparse probing against the dense probe at the SAE's layer."""
    from interp.analyses import sae as S
    from interp.analyses.sae.card import card_lines
    from interp.viz.html import table

    shipped = S.shipped_saes() if getattr(model, "name", None) == "organism" else {}
    if not shipped:
        return [
            (
                "SAE latents",
                "<p class='note'>No SAE ships for this model: train one with "
                "<code>interp sae train --model M --hook blocks.L.hook_resid_post --data TASK "
                "--out DIR</code> and analyse its latents with <code>interp.sae</code>.</p>",
            )
        ]
    saes = {name: S.load(path, model=model) for name, path in shipped.items()}
    cards = "".join(
        f"<h4>{html.escape(name)}</h4><ul>"
        + "".join(f"<li>{html.escape(line.strip())}</li>" for line in card_lines(s.interp_record))
        + "</ul>"
        for name, s in saes.items()
        if getattr(s, "interp_record", None)
    )
    items: list[Any] = [("SAE latents: the shipped SAEs", cards)]
    ioi = make_task(model, "ioi", n=n, seed=seed)
    first = saes[sorted(saes)[0]]
    dla = S.direct_logit(model, ioi, first, seed=seed)
    dla.save(out / "sae_dla")
    atp = S.attribution_patch(model, ioi, first, verify_top_k=10, seed=seed, progress=False)
    atp.save(out / "sae_atp")
    items += [dla, atp]
    rows = atp.verified_table.head(10).to_dict("records")
    items.append(
        (
            "AtP over latents, verified",
            "<p>AtP's ten highest-ranked latents re-measured by exact patching (denoising "
            "scores: 1 = the clean logit difference restored).</p>" + table(rows),
        )
    )
    top = [int(i) for i in atp.verified_table["latent"].head(5)]
    feats = S.features(model, ioi, first, latents=top, top_n=5, progress=False)
    feats.save(out / "sae_features")
    items += [
        feats,
        (
            "Latent features",
            "<p>The five latents AtP ranks highest: their top-activating IOI prompts (each "
            "token shaded by the latent's activation), activation histograms and the output "
            "tokens their decoder directions boost and suppress.</p>" + feats.page_html(top[:3]),
        ),
    ]
    facts = make_task(model, "facts", n=4 * n, seed=seed)
    last = saes[sorted(saes)[-1]]
    probe = S.sparse_probe(model, facts, last, k=8, seed=seed)
    probe.save(out / "sae_probe")
    best = html.escape(probe.labels["latent"][probe.best_latent])
    items += [
        probe,
        (
            "Truth latents",
            f"<p>Best single latent for truth: {best} with held-out ROC-AUC "
            f"{probe.best_auc:.3f}; a sparse probe on 8 latents reaches "
            f"accuracy {probe.accuracy[0]:.3f}, a dense probe on the same activation "
            f"{probe.dense_accuracy[0]:.3f}. The best latent's decoder cosine with the dense "
            f"probe direction: {float(probe.cosine[probe.best_latent]):.3f}.</p>"  # type: ignore[index]
            + table(probe.table(8).to_dict("records")),
        ),
    ]
    return items
