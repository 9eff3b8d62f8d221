"""HTML fragments for one result: heading, metadata, figure and top-k table.

Everything that comes from a result (title, labels, tokens, metadata) is untrusted: a result
loaded from a shared directory can hold any string. Text goes through `html.escape`, JSON inside
``<script>`` through `script_json`, so no string can end a script or add an element.
"""

from __future__ import annotations

import html
import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from interp.results.base import Result

# In a <script>, "</script" ends the element and "<!--" changes how the parser finds its end;
# U+2028/U+2029 end a line in older JavaScript. JSON \u escapes mean the same characters.
_SCRIPT_SAFE = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def script_json(obj: Any) -> str:
    """`obj` as JSON that is safe to place inside an inline ``<script>`` element.

    NaN and infinities stay JavaScript literals (NaN, Infinity), which a script reads as numbers.
    """
    return json.dumps(obj).translate(_SCRIPT_SAFE)


CSS = """
body{font-family:Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;color:#222;
  padding:0 1em}
h1{font-size:1.6em}
h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table.interp{border-collapse:collapse;font-size:.85em;margin:.5em 0}
table.interp td,table.interp th{border:1px solid #ddd;padding:.2em .5em;text-align:left}
table.interp th{background:#f6f6f6}
details{margin:.4em 0;font-size:.85em} summary{cursor:pointer;color:#555}
.interp-result{margin-bottom:2em} .note{color:#555;font-size:.9em}
.reproduce{font-size:.85em;color:#444;margin:.2em 0}
.reproduce code{background:#f4f4f4;padding:.1em .3em;border-radius:3px;word-break:break-all}
nav.toc ol,.findings ul{margin:.3em 0 .8em;padding-left:1.6em;font-size:.9em}
.findings li{margin:.2em 0} a.jump{font-size:.85em;text-decoration:none}
"""


def table(rows: list[dict[str, Any]] | Any, max_rows: int = 20) -> str:
    """A small HTML table from a list of dicts or a pandas DataFrame."""
    if hasattr(rows, "to_dict"):
        rows = rows.to_dict("records")
    rows = list(rows)[:max_rows]
    if not rows:
        return "<p class='note'>(empty)</p>"
    cols = list(rows[0])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
        for r in rows
    )
    return f"<table class='interp'><tr>{head}</tr>{body}</table>"


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def meta_html(meta: dict[str, Any]) -> str:
    """The full metadata as collapsible JSON."""
    text = html.escape(json.dumps(meta, indent=1, default=str))
    return f"<details><summary>metadata</summary><pre>{text}</pre></details>"


def reproduce_command(meta: dict[str, Any]) -> str | None:
    """The command that reproduces a result: the shell command of a CLI run (``command``),
    else the public Python call (``call``); None if the metadata records neither."""
    for key in ("command", "call"):
        value = meta.get(key)
        if value:
            return str(value)
    return None


def describe_setup(meta: dict[str, Any]) -> str:
    """Model, task and seed in words, from a result's metadata: ``model organism; task
    induction (8 prompts, task seed 0); seed 0``. The recorded call writes the
    model and task as ``model`` and ``task``: this says which they were."""
    parts = []
    if meta.get("model") is not None:
        parts.append(f"model {meta['model']}")
    task = meta.get("task")
    if isinstance(task, dict) and task.get("name"):
        # Not seq_len: a generator's own seq_len (induction: the repeated half) overrides the
        # token count in Task.describe, so it does not say how long the prompts are.
        about = [f"{task['n_prompts']} prompts"] if task.get("n_prompts") is not None else []
        if task.get("seed") is not None:
            about.append(f"task seed {task['seed']}")
        parts.append(f"task {task['name']}" + (f" ({', '.join(about)})" if about else ""))
    elif task is not None:
        parts.append(f"task {task}")
    if meta.get("seed") is not None:
        parts.append(f"seed {meta['seed']}")
    return "; ".join(parts)


def reproduce_html(meta: dict[str, Any]) -> str:
    """The reproduce line (command or call, in ``<code>``) and the setup in words; escaped."""
    out = []
    command = reproduce_command(meta)
    if command is not None:
        out.append(f"<p class='reproduce'>Reproduce: <code>{html.escape(command)}</code></p>")
    setup = describe_setup(meta)
    if setup:
        out.append(f"<p class='reproduce setup'>{html.escape(setup)}</p>")
    return "".join(out)


def figure_html(fig: Any, include_plotlyjs: bool | str) -> str:
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=include_plotlyjs,
            config={"displaylogo": False, "responsive": True},
        )
    )


def result_html(
    res: Result,
    include_plotlyjs: bool | str = False,
    k: int = 10,
    assets: set[str] | None = None,
    anchor: str | None = None,
) -> str:
    """Heading, reproduce line, description, figure, top-k table and metadata of one result.

    `assets` records which JavaScript bundles the page already has (so circuitsvis, like
    plotly.js, is inlined once per page); None means this fragment stands alone. `anchor` is
    the heading's id (the report's table of contents links to it).
    """
    title = html.escape(res.title or res.kind)
    ident = f' id="{html.escape(anchor)}"' if anchor else ""
    parts = [f"<div class='interp-result'><h2{ident}>{title}</h2>", reproduce_html(res.meta)]
    if res.meta.get("description"):
        parts.append(f"<p class='note'>{html.escape(str(res.meta['description']))}</p>")
    interactive = getattr(res, "circuitsvis_html", None)
    if interactive is not None:
        first = assets is None or "circuitsvis" not in assets
        parts.append(interactive(include_js=first))
        if assets is not None:
            assets.add("circuitsvis")
    parts.append(figure_html(res.plot(), include_plotlyjs))
    if type(res).show_top:
        parts.append(f"<details open><summary>top {k}</summary>{table(res.top(k))}</details>")
    # The declared scalar fields (best layer, agreement, ...) are part of what a result records.
    parts.append(meta_html({**res.field_summary(), **res.meta}))
    parts.append("</div>")
    return "".join(parts)
