"""The demo's steering section."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from interp.demo.sizes import Sizes
from interp.tasks.registry import make_task

ALPHAS = (1.0, 2.0, 4.0, 8.0)
NAME = "Steering"


def _note(text: str) -> list[Any]:
    return [(NAME, f"<p class='note'>Skipped: {html.escape(text)}</p>")]


def _probe_site(model: Any, probes: Sequence[Any], train: Any, seed: int) -> Any:
    """The site of the best layer of the probes section's sweep (or of a new one)."""
    from interp.analyses.probes import sweep
    from interp.analyses.steering import SteeringDirection
    from interp.results.probes import ProbeResult

    found = [p for p in probes if isinstance(p, ProbeResult) and p.over == "layers"]
    layers = found[0] if found else sweep(model, train, over="layers", seed=seed, progress=False)
    assert layers.best_layer is not None  # a sweep over layers always sets it
    return SteeringDirection.from_probe(layers, layers.best_layer).site, layers.best_layer


def steering_section(
    model: Any, out: Path, seed: int, sizes: Sizes = Sizes(), probes: Sequence[Any] = ()
) -> list[Any]:
    """Steering towards " true" on the facts statements: a mean-difference truth direction at
    the site of the probes' best layer, measured over strengths on held-out false statements
    beside random directions and with side effects on neutral text; the steering-target
    scorecard over heads verified by steering the top 5 and 5 random heads; generations."""
    from interp.analyses.steering import compare, direction, evaluate, neutral_prompts, targets
    from interp.errors import InterpError

    if not (model.has_lm_head and model.backend == "HookedTransformer"):
        return _note("steering is measured on logits, and this model has no trained LM head.")
    try:
        train = make_task(model, "facts", n=sizes.probe_n, seed=seed, split="train")
        held = make_task(model, "facts", n=sizes.steer_n, seed=seed + 1, split="eval")
        neutral = neutral_prompts(model, sizes.steer_neutral, seed=seed, exclude="facts")
    except InterpError as err:
        return _note(str(err))
    site, best = _probe_site(model, probes, train, seed)
    d = direction(model, train, at=site.target, layer=site.layer)
    res = evaluate(
        model,
        held,
        d,
        alphas=ALPHAS,
        neutral=neutral,
        positions="last",
        n_random=5,
        n_boot=200,
        seed=seed,
        progress=False,
    )
    res.save(out / "steering")
    units = model.n_layers * model.n_heads
    card = targets(
        model, held, over="heads", patching=sizes.steer_patching, seed=seed, progress=False
    )
    card = card.verify(k=min(5, units // 2), seed=seed, n_boot=200, progress=False)
    card.save(out / "steering_targets")
    labels = held.labels.tolist() if held.labels is not None else []
    false = [p for p, y in zip(held.clean_prompts, labels, strict=True) if y == 0][:4]
    gens = compare(
        model, false, d, alphas=(0.0, 2.0, 4.0), positions="last", max_new_tokens=sizes.steer_tokens
    )
    gens.save(out / "steering_generations")
    return [res, card, gens, (f"{NAME} summary", _summary(res, card, d, best))]


def _summary(res: Any, card: Any, d: Any, best: Any) -> str:
    from interp.viz.html import table

    t = res.table()
    at2 = t[t.alpha == 2.0].iloc[0]
    s = card.verify_summary
    how = "calibrated" if s["calibrated"] else "given"
    unknown = (
        " The effect stays within the random band: the synthetic world is the organism's, and "
        "a model not trained on it has no truth about it to steer."
        if not at2.effect > at2.random_high
        else ""
    )
    cols = ["alpha", "effect", "random_low", "random_high", "target_rate", "kl", "loss_change"]

    def fig(f: Any) -> str:
        return str(f.to_html(include_plotlyjs=False, full_html=False))

    return (
        f"<p>Direction: {html.escape(d.label)} (the site of the probes' best layer, {best}), "
        f"computed from {d.provenance['n_positive'] + d.provenance['n_negative']} true and "
        f"false statements (split 'train'); sigma {d.sigma:.3g}, class means "
        f"{d.separation:.2f} sigma apart. Steered at the answer position of "
        f"{res.n_prompts} held-out false statements (unsteered, "
        f"{res.baseline['target_rate']:.0%} answer ' true'): at 2 sigma "
        f"{at2.target_rate:.0%} do, effect {at2.effect:.2f} against {at2.random_low:.2f} to "
        f"{at2.random_high:.2f} for 5 random directions of the same norm, KL "
        f"{at2.kl:.3f} nats on {res.n_neutral} neutral texts.{unknown}</p>"
        + table(t[cols].round(3), max_rows=20)
        + fig(res.plot_frontier())
        + f"<p>Scorecard verified at {s['alpha']:g} sigma ({how}): "
        f"the top {s['k']} heads by merged rank ({html.escape(', '.join(s['top']))}) move the "
        f"answer by {s['top_effect']:.2f} on average, {s['k']} random heads by "
        f"{s['random_effect']:.2f}. Spearman correlation of each evidence source with the "
        "realised effect: "
        + ", ".join(f"{html.escape(k)} {v:.2f}" for k, v in card.correlations.items())
        + ".</p>"
        + fig(card.plot_verification())
    )
