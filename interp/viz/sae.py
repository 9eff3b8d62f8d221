"""Views of SAE latent features: an overview scatter and per-latent histograms (plotly), and HTML
cards: top examples shaded by activation, histogram, boosted and suppressed output tokens.

Every string from a result (token strings, labels, metadata) is untrusted and goes through
`html.escape`; the HTML views are static (no script, nothing fetched), so they work offline.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go

from interp.viz.figures import default_figure
from interp.viz.html import CSS, reproduce_html, table
from interp.viz.theme import BLUE, ORANGE, apply_theme

if TYPE_CHECKING:
    from interp.results.base import Result
    from interp.results.sae import LatentFeatures

#: Latents a notebook view shows as cards, and rows of its table.
NOTEBOOK_CARDS, NOTEBOOK_ROWS = 3, 10
#: Latents a page shows by default.
PAGE_LATENTS = 20
# Shading colour: the theme's orange, as RGB for an alpha channel.
_SHADE = tuple(int(ORANGE[i : i + 2], 16) for i in (1, 3, 5))
SAE_CSS = """
.sae-latent{border:1px solid #ddd;border-radius:4px;padding:.4em .8em;margin:1em 0}
.sae-latent h3{margin:.2em 0;font-size:1.1em}
.sae-cols{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
.sae-hist svg{display:block;background:#fafafa;border-bottom:1px solid #444}
.sae-axis{display:flex;justify-content:space-between;font-size:.75em;color:#555;width:320px}
.sae-example{font-family:Menlo,Consolas,monospace;font-size:.8em;margin:.25em 0;
  line-height:1.7;word-break:break-word}
.sae-example span.t{white-space:pre;padding:0 1px;margin-right:2px;border-radius:2px}
.sae-example span.skip{color:#999}
.sae-example span.peak{outline:1.5px solid #222}
.sae-example .v{color:#555;display:inline-block;min-width:4.5em}
"""


def is_features(res: Result) -> bool:
    """Whether `res` has the shape `interp.sae.features` returns (else views fall back)."""
    return res.dims == ("latent", "metric") and getattr(res, "hist_counts", None) is not None


def _fmt(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.4g}"


# ----------------------------------------------------------------- plotly figures
def overview_figure(res: LatentFeatures, **kw: Any) -> go.Figure:
    """Every latent that fired: density (log) against max activation; hover shows its label
    and top boosted tokens. Latents that never fired are counted in the title."""
    if not is_features(res):
        return default_figure(res, **kw)
    title = kw.pop("title", res.title)
    df = res.table("latent", ascending=True)
    alive = df[df["density"] > 0]
    hover = [
        f"{lab}: density {d:.3g}, max {m:.3g}; boosts {up or 'n/a'}"
        for lab, d, m, up in zip(
            alive["label"], alive["density"], alive["max"], alive["top_boosted"], strict=True
        )
    ]
    fig = go.Figure(
        go.Scatter(
            x=alive["density"].tolist(),
            y=alive["max"].tolist(),
            mode="markers",
            marker={"color": BLUE, "size": 6, "opacity": 0.7},
            hovertext=hover,
            hoverinfo="text",
        )
    )
    dead = len(df) - len(alive)
    if dead:
        title = f"{title} ({dead} of {len(df)} latents never active)"
    fig.update_xaxes(title="density (fraction of content tokens active)", type="log")
    fig.update_yaxes(title="max activation")
    return apply_theme(fig, title=title, **kw)


def histogram_figure(res: LatentFeatures, latent: int | None = None, **kw: Any) -> go.Figure:
    """The histogram of one latent's active values (default: the densest latent)."""
    if not is_features(res):
        return default_figure(res, **kw)
    if latent is None:
        latent = res.ranked(1, "density")[0]
    edges, counts = res.histogram(latent)
    i = res.index(latent)
    width = float(edges[1] - edges[0])
    fig = go.Figure(
        go.Bar(
            x=((edges[:-1] + edges[1:]) / 2).tolist(),
            y=counts.tolist(),
            width=width if width > 0 else None,
            marker={"color": ORANGE, "line": {"width": 0}},
        )
    )
    fig.update_xaxes(title="activation (active tokens only)")
    fig.update_yaxes(title="content tokens")
    title = kw.pop("title", f"{res.label('latent', i)}: active values ({int(counts.sum())})")
    return apply_theme(fig, title=title, bargap=0.05, **kw)


# ----------------------------------------------------------------- HTML
def _histogram_svg(res: LatentFeatures, latent: int) -> str:
    edges, counts = res.histogram(latent)
    top = max(int(counts.max()), 1) if len(counts) else 1
    w, h, n = 320, 70, max(len(counts), 1)
    bars = "".join(
        f"<rect x='{j * w / n:.2f}' y='{h - c / top * h:.2f}' width='{max(w / n - 1, 0.5):.2f}' "
        f"height='{c / top * h:.2f}' fill='{ORANGE}'/>"
        for j, c in enumerate(counts.tolist())
        if c
    )
    svg = f"<svg width='{w}' height='{h}' role='img'>{bars}</svg>"
    axis = f"<div class='sae-axis'><span>0</span><span>{float(edges[-1]):.3g}</span></div>"
    return f"<div class='sae-hist'>{svg}{axis}</div>"


def _token_span(tok: str, act: float, peak: float, is_max: bool) -> str:
    shown = html.escape(tok.replace("\n", "\\n"))
    if math.isnan(act):
        return f"<span class='t skip' title='not content'>{shown}</span>"
    alpha = min(max(act / peak, 0.0), 1.0) if peak > 0 else 0.0
    r, g, b = _SHADE
    tip = html.escape(f"{tok!r}: {act:.4g}", quote=True)
    cls = "t peak" if is_max else "t"
    return (
        f"<span class='{cls}' style='background:rgba({r},{g},{b},{alpha:.3f})' "
        f"title='{tip}'>{shown}</span>"
    )


def _examples_html(res: LatentFeatures, latent: int) -> str:
    examples = res.examples(latent)
    if not examples:
        return "<p class='note'>No active examples in the data.</p>"
    peak = max(e["value"] for e in examples)
    lines = []
    for e in examples:
        spans = "".join(
            _token_span(t, a, peak, k == e["pos"])
            for k, (t, a) in enumerate(zip(e["tokens"], e["acts"], strict=True))
        )
        where = html.escape(f"row {e['row']}, pos {e['pos']}")
        lines.append(
            f"<div class='sae-example' title='{where}'>"
            f"<span class='v'>{e['value']:.3g}</span> {spans}</div>"
        )
    return "".join(lines)


def _tokens_table(res: LatentFeatures, latent: int, which: str) -> str:
    toks = res.output_tokens(latent, which)
    if not toks:
        return ""
    rows = [{"token": repr(t), "logit": v} for t, v in toks]
    return f"<div><b>{which}</b>{table(rows)}</div>"


def latent_html(res: LatentFeatures, latent: int) -> str:
    """One latent: statistics, histogram, output tokens and top examples (escaped, static)."""
    i = res.index(latent)
    stats = {str(m): float(res.values[i, k]) for k, m in enumerate(res.coords["metric"])}
    active = round(stats["density"] * res.n_tokens)
    label = html.escape(res.label("latent", i))
    summary = html.escape(
        f"density {_fmt(stats['density'])} ({active} of {res.n_tokens} content tokens); "
        f"mean when active {_fmt(stats['mean_active'])}; max {_fmt(stats['max'])}"
    )
    cols = _histogram_svg(res, latent) + _tokens_table(res, latent, "boosted")
    cols += _tokens_table(res, latent, "suppressed")
    return (
        f"<div class='sae-latent' id='latent-{int(latent)}'><h3>{label}</h3>"
        f"<p class='note'>{summary}</p><div class='sae-cols'>{cols}</div>"
        f"<p class='note'>Top activating examples (shading: activation / the largest shown; "
        f"outlined: the example's token; grey: not content)</p>{_examples_html(res, latent)}</div>"
    )


def page_html(
    res: LatentFeatures, latents: list[int] | None = None, sort_by: str = "density"
) -> str:
    """A standalone page: heading, reproduce line, the latent table and one card per latent."""
    df = res.table(sort_by)
    shown = res.ranked(PAGE_LATENTS, sort_by) if latents is None else latents
    cards = "".join(latent_html(res, latent) for latent in shown)
    title = html.escape(res.title or res.kind)
    about = html.escape(str(res.meta.get("description", "")))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{CSS}{SAE_CSS}</style></head><body>"
        f"<h1>{title}</h1>{reproduce_html(res.meta)}<p class='note'>{about}</p>"
        f"<h2>Latents by {html.escape(sort_by)}</h2>{table(df, max_rows=max(len(shown), 20))}"
        f"<h2>Latents</h2>{cards}</body></html>"
    )


def notebook_html(res: LatentFeatures, base: str) -> str:
    """The result's standard view (`base`) followed by its table and the densest latents."""
    if not is_features(res):
        return base
    shown = res.ranked(NOTEBOOK_CARDS, "density")
    cards = "".join(latent_html(res, latent) for latent in shown)
    rows = table(res.table("density"), max_rows=NOTEBOOK_ROWS)
    return (
        f"{base}<div class='interp-result'><style>{SAE_CSS}</style>"
        f"<details open><summary>latents by density</summary>{rows}</details>{cards}</div>"
    )
