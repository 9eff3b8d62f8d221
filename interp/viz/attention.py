"""Offline circuitsvis attention views: the JavaScript bundle shipped inside the circuitsvis
package is inlined (its own saved HTML would load it from a CDN)."""

from __future__ import annotations

import html
import re
import uuid
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from torch import Tensor

from interp.viz.html import script_json

if TYPE_CHECKING:
    from interp.results.attribution import AttentionResult


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
