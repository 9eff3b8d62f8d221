"""`interp.report`: one self-contained HTML file from a list of results (opens with no network)."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from pathlib import Path

from interp.errors import InterpError
from interp.files import atomic_write_text
from interp.results.base import Result
from interp.viz.html import CSS, result_html

Block = Result | tuple[str, str]


def report(
    items: Sequence[Block],
    path: str | os.PathLike[str],
    title: str = "interp report",
    intro: str = "",
) -> Path:
    """Write `path` as a single HTML file.

    Args:
        items: results, or ``(heading, html)`` blocks for free-form sections (the heading is
            text; the html is placed as given, so build it only from strings you trust).
        path: output file; written atomically. plotly.js is inlined once, so the file works
            offline and from any location.
        title: page title (text).
        intro: optional text shown under the title; for markup, use a ``(heading, html)`` item.
    """
    if not items:
        raise InterpError("report() needs at least one result or section.")
    out = Path(path)
    if out.is_dir():
        raise InterpError(
            f"path={out} is a directory; give the report file, e.g. {out}/report.html."
        )
    from plotly.offline import get_plotlyjs

    body = []
    assets: set[str] = set()
    for item in items:
        if isinstance(item, Result):
            body.append(result_html(item, include_plotlyjs=False, assets=assets))
        elif isinstance(item, tuple) and len(item) == 2 and all(isinstance(s, str) for s in item):
            body.append(
                f"<div class='interp-result'><h2>{html.escape(item[0])}</h2>{item[1]}</div>"
            )
        else:
            raise InterpError(
                f"report() items must be Results or (heading, html) string pairs: {item!r:.200}."
            )
    # Title and intro are text (a CLI flag, a notebook string): escaped like every result field.
    lead = f"<p class='note'>{html.escape(intro)}</p>" if intro else ""
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>{lead}{''.join(body)}</body></html>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    return out
