"""Offline circuitsvis attention views: the JavaScript bundle shipped inside the circuitsvis
package is inlined (its own saved HTML would load it from a CDN).

`save_attention_figure` exports the view as PNG or PDF: the widget is rendered in headless
Chromium (`interp.viz.browser`, no network) and captured once it has stopped changing.
"""

from __future__ import annotations

import html
import math
import os
import re
import tempfile
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from interp.errors import InterpError
from interp.viz.html import script_json
from interp.viz.metadata import figure_format, figure_metadata, write_figure

if TYPE_CHECKING:
    from interp.results.attribution import AttentionResult
    from interp.viz.browser import Page


@lru_cache(maxsize=1)
def circuitsvis_js() -> str:
    import circuitsvis

    bundle = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
    # A closing script tag (any case) would end the inline script early; "<\/" means "</" in JS.
    return re.sub(r"</(script)", r"<\\/\1", bundle.read_text(encoding="utf-8"), flags=re.I)


def attention_heads_html(
    tokens: list[str], patterns: Tensor, head_names: list[str], include_js: bool = True
) -> str:
    """An interactive circuitsvis ``AttentionHeads`` view; works with no network.

    Args:
        tokens: the prompt's token strings.
        patterns: ``[head, query, key]`` attention probabilities.
        head_names: one label per head (e.g. ``L2H5``).
        include_js: inline the circuitsvis bundle (once per page is enough).
    """
    div = "circuits-vis-" + uuid.uuid4().hex[:12]
    # Tokens and head names are untrusted text: script_json keeps them from ending the script.
    props = script_json(
        {
            "tokens": tokens,
            "attention": patterns.detach().cpu().float().tolist(),
            "attentionHeadNames": head_names,
        }
    )
    js = f"<script>{circuitsvis_js()}</script>" if include_js else ""
    return (
        f'{js}<div id="{html.escape(div)}" style="margin: 15px 0;"></div>'
        f'<script>CircuitsVis.render("{div}", CircuitsVis.AttentionHeads, {props});</script>'
    )


def attention_result_html(res: AttentionResult, include_js: bool = True) -> str:
    """The circuitsvis view of an `AttentionResult` (its tokens, patterns and head labels)."""
    heads = [str(h) for h in res.coords["head"]]
    return attention_heads_html(list(res.tokens), res.values, heads, include_js=include_js)


#: Width of an exported attention view, in CSS px.
FIGURE_WIDTH = 900
#: How long the view may take to render before the export gives up (seconds).
RENDER_TIMEOUT = 90.0
# The widget alone on a white page, in a box of fixed width at the top left: the capture is
# cropped to that box and a PDF page is exactly its size. No title: captions belong to papers.
_PAGE = (
    "<!DOCTYPE html><html><head><meta charset='utf-8'><title>attention</title><style>"
    "html,body{{margin:0;padding:0;background:#fff}}"
    "#interp-figure{{width:{width}px;padding:4px 12px;box-sizing:border-box;display:flow-root;"
    "background:#fff}}</style></head><body><div id='interp-figure'>{view}</div></body></html>"
)
# What the rendered view looks like now: null before the widget has drawn, else its box and a
# hash of every canvas's pixels (circuitsvis animates its charts for a few hundred ms).
_STATE = """(() => {
  const fig = document.getElementById('interp-figure');
  const root = fig.querySelector('[id^="circuits-vis-"]');
  if (!root || !root.children.length) return null;
  const box = fig.getBoundingClientRect();
  let sig = `${box.width}x${box.height}`;
  for (const c of fig.querySelectorAll('canvas')) {
    const d = c.toDataURL();
    let h = 0;
    for (let i = 0; i < d.length; i++) h = (h * 31 + d.charCodeAt(i)) | 0;
    sig += `|${c.width}x${c.height}:${h}`;
  }
  return [sig, box.x, box.y, box.width, box.height];
})()"""


def save_attention_figure(
    res: AttentionResult,
    path: str | os.PathLike[str],
    format: str | None = None,
    *,
    scale: float | None = None,
) -> Path:
    """Write the circuitsvis view of `res` as PNG or PDF, with a sidecar JSON of its metadata.

    The view is rendered in headless Chromium with no network, FIGURE_WIDTH px wide; the PNG
    is cropped to it, the PDF is one page of its size. (`Result.save_figure(path,
    view="attention")` calls this.)

    Args:
        res: the attention result.
        path: output file; the format comes from its suffix unless `format` is given.
        format: ``"png"`` or ``"pdf"``; an HTML widget has no SVG form.
        scale: device pixels per CSS px of the PNG (default 2).

    Returns:
        The path written. Nothing is written when anything fails (no Chromium, a bad suffix,
        a view that does not render in time).
    """
    out = Path(path)
    fmt = figure_format(out, format)
    if fmt == "svg":
        raise InterpError(
            "The attention view is an HTML widget (circuitsvis) with no vector form: save it as "
            ".png or .pdf, or save the heatmap view (view='plot') as SVG."
        )
    if out.is_dir():
        raise InterpError(f"path={out} is a directory; give a file such as {out}/attention.{fmt}.")
    if scale is not None and not (0 < float(scale) <= 20):
        raise InterpError(
            f"scale={scale!r}: give a positive factor up to 20 (2 = twice the pixels)."
        )
    px_scale = float(scale) if scale is not None else (2.0 if fmt == "png" else 1.0)
    from interp.viz.export import browser_path

    browser_path()  # no Chromium: the error that says how to install one, before any work
    data, width, height = _render(attention_result_html(res), fmt, px_scale)
    record = figure_metadata(
        dict(res.meta),
        view="attention",
        format=fmt,
        width_px=width,
        height_px=height,
        width_in=round(width / 96, 4),
        height_in=round(height / 96, 4),
        scale=px_scale,
        kind=res.kind,
        title=res.title,
    )
    return write_figure(out, data, fmt, record)


def _render(view: str, fmt: str, scale: float) -> tuple[bytes, int, int]:
    """The view captured as `fmt` and its size in CSS px (whole pixels)."""
    from interp.viz.export import page_session

    with tempfile.TemporaryDirectory(prefix="interp-attention-") as tmp:
        page_file = Path(tmp) / "attention.html"
        page_file.write_text(_PAGE.format(width=FIGURE_WIDTH, view=view), encoding="utf-8")
        with (
            page_session(RENDER_TIMEOUT) as session,
            session.open_page(
                page_file, width=FIGURE_WIDTH, height=200, timeout=RENDER_TIMEOUT
            ) as page,
        ):
            x, y, w, h = _wait_rendered(page, RENDER_TIMEOUT)
            width, height = math.ceil(w), math.ceil(h)
            if fmt == "png":
                data = page.screenshot(scale=scale, clip=(x, y, width, height))
            else:
                data = page.pdf(size=(x + width, y + height))  # the box sits at the top left
    return data, width, height


def _wait_rendered(page: Page, timeout: float, settle: int = 3) -> tuple[float, ...]:
    """Wait until the widget has drawn and looked the same `settle` times in a row (0.15 s
    apart); its box ``x, y, width, height``."""
    deadline = time.monotonic() + timeout
    last, same = None, 0
    while time.monotonic() < deadline:
        state = page.evaluate(_STATE)
        if state is not None:
            same = same + 1 if state[0] == last else 1
            last = state[0]
            if same >= settle:
                return tuple(float(v) for v in state[1:])
        time.sleep(0.15)
    errors = "; ".join(page.console_errors[:5]) or "no errors on the page"
    raise InterpError(f"The attention view did not finish rendering in {timeout:g} s ({errors}).")
