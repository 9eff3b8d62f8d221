"""`interp.report`: one self-contained HTML file from a list of results (opens with no network).

The page: title, intro and the command that reproduces the report; a findings summary (one
sentence per result that ranks something, `interp.viz.findings`); a table of contents linking to
every section; then the sections, each result with the call or command that reproduces it.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from interp.errors import InterpError
from interp.files import atomic_write_text
from interp.results.base import Result
from interp.viz.findings import finding
from interp.viz.html import CSS, result_html

Block = Result | tuple[str, str]
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Section:
    """One section of the page: its heading (text), the id of its heading, its finding."""

    heading: str
    anchor: str
    finding: str | None


def anchor_id(index: int, heading: str) -> str:
    """``s3-direct-logit-attribution-by-head``: the section's position makes the id unique;
    the slug (ASCII letters and digits only, at most 40) makes it readable and safe in a URL."""
    slug = _NOT_SLUG.sub("-", heading.lower()).strip("-")[:40].rstrip("-")
    return f"s{index}-{slug}" if slug else f"s{index}"


def _checked(items: Sequence[Block]) -> list[Block]:
    """The items, refused (before anything is computed or written) unless each is a result or
    a ``(heading, html)`` string pair."""
    if not items:
        raise InterpError("report() needs at least one result or section.")
    for item in items:
        pair = isinstance(item, tuple) and len(item) == 2 and all(isinstance(s, str) for s in item)
        if not (isinstance(item, Result) or pair):
            raise InterpError(
                f"report() items must be Results or (heading, html) string pairs: {item!r:.200}."
            )
    return list(items)


def _findings_html(sections: Sequence[Section]) -> str:
    rows = [
        f"<li>{html.escape(s.finding)} "
        f"<a class='jump' href=\"#{html.escape(s.anchor)}\">(section)</a></li>"
        for s in sections
        if s.finding
    ]
    if not rows:
        return ""
    return f"<div class='findings'><h2>Findings</h2><ul>{''.join(rows)}</ul></div>"


def _toc_html(sections: Sequence[Section]) -> str:
    rows = "".join(
        f'<li><a href="#{html.escape(s.anchor)}">{html.escape(s.heading)}</a></li>'
        for s in sections
    )
    return f"<nav class='toc'><h2>Contents</h2><ol>{rows}</ol></nav>"


def report(
    items: Sequence[Block],
    path: str | os.PathLike[str],
    title: str = "interp report",
    intro: str = "",
    command: str | None = None,
) -> Path:
    """Write `path` as a single HTML file.

    Args:
        items: results, or ``(heading, html)`` blocks for free-form sections (the heading is
            text; the html is placed as given, so build it only from strings you trust).
        path: output file; written atomically. plotly.js is inlined once, so the file works
            offline and from any location.
        title: page title (text).
        intro: optional text shown under the title; for markup, use a ``(heading, html)`` item.
        command: the shell command that wrote this report (``interp demo --model organism``),
            shown at the top as the way to reproduce it.
    """
    items = _checked(items)
    out = Path(path)
    if out.is_dir():
        raise InterpError(
            f"path={out} is a directory; give the report file, e.g. {out}/report.html."
        )
    from plotly.offline import get_plotlyjs

    body: list[str] = []
    sections: list[Section] = []
    assets: set[str] = set()
    for i, item in enumerate(items, start=1):
        if isinstance(item, Result):
            heading = item.title or item.kind
            anchor = anchor_id(i, heading)
            body.append(result_html(item, include_plotlyjs=False, assets=assets, anchor=anchor))
            sections.append(Section(heading, anchor, finding(item)))
        else:
            heading, block = item
            anchor = anchor_id(i, heading)
            body.append(
                f"<div class='interp-result'><h2 id=\"{html.escape(anchor)}\">"
                f"{html.escape(heading)}</h2>{block}</div>"
            )
            sections.append(Section(heading, anchor, None))
    # Title, intro and command are text (a CLI flag, a notebook string): escaped like every
    # result field.
    lead = f"<p class='note'>{html.escape(intro)}</p>" if intro else ""
    if command:
        lead += (
            f"<p class='reproduce'>Reproduce this report: <code>{html.escape(command)}</code></p>"
        )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{CSS}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>{lead}{_findings_html(sections)}{_toc_html(sections)}"
        f"{''.join(body)}</body></html>"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, page)
    return out
