"""Resolve hook names: canonical TransformerLens names, and short forms for every layer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from interp.errors import InterpError
from interp.models.hooks import layer_of, layer_pattern, short_form

__all__ = ["layer_of", "layer_pattern", "resolve_names", "short_form", "valid_names_text"]


def valid_names_text(hook_names: Sequence[str]) -> str:
    """A compact list of every valid name: short forms, then canonical patterns."""
    shorts = sorted({short_form(h) for h in hook_names})
    patterns = list(dict.fromkeys(layer_pattern(h) for h in hook_names))
    return (
        "short forms (every layer): " + ", ".join(shorts) + "\ncanonical names ({l} = layer "
        "index): " + ", ".join(patterns)
    )


def resolve_names(names: str | Iterable[str], hook_names: Sequence[str]) -> list[str]:
    """Expand short forms and validate; returns canonical names in the model's hook order.

    Raises InterpError listing every valid name when one is unknown, before any forward pass.
    """
    if isinstance(names, str):
        names = [names]
    names = list(names)
    if not names:
        raise InterpError("No hook names given: pass names=['resid_post'] or canonical names.")
    known = set(hook_names)
    wanted: set[str] = set()
    unknown: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise InterpError(f"Hook names must be strings, got {name!r}.")
        if name in known:
            wanted.add(name)
            continue
        bare = name[5:] if name.startswith("hook_") else name
        matches = [h for h in hook_names if short_form(h) == bare]
        if matches:
            wanted.update(matches)
        else:
            unknown.append(name)
    if unknown:
        raise InterpError(
            f"Unknown hook name(s) {unknown}. Valid names are\n{valid_names_text(hook_names)}"
        )
    return [h for h in hook_names if h in wanted]
