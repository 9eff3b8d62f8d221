"""The demo's linear probes section."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from interp.tasks.registry import make_task


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
    acc = layers.metric("accuracy")
    sel = layers.metric("selectivity")
    assert layers.best_layer is not None  # a sweep over layers always sets it
    best = layers.coords["layer"].index(layers.best_layer)
    items.append(
        (
            "Probe summary",
            f"<p>Truth of held-out statements ({layers.split['n_test']} test examples): accuracy "
            f"first jumps at layer {layers.jump_layer} and plateaus at layer "
            f"{layers.plateau_layer}; best layer {layers.best_layer} with accuracy "
            f"{float(acc[best]):.3f} and selectivity {float(sel[best]):.3f} over the "
            "random-label control. Layer 0 is the embedding.</p>"
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
