"""Heads as the attribution tools read them: any `HeadLike` through `interp.nodes`, checked
against the model, with the messages these tools have always given."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from interp.errors import InterpError
from interp.models import Model
from interp.nodes import HeadLike, Node, as_head, head_axis_label, is_index


def is_head(x: Any) -> bool:
    """Whether `x` is written as one head (a Node, a label such as ``"L2H5"``, or an int pair),
    as opposed to a list of heads."""
    if isinstance(x, Node | str):
        return True
    return isinstance(x, tuple | list) and len(x) == 2 and all(map(is_index, x))


def model_heads(model: Model, heads: Iterable[HeadLike], hint: str) -> list[Node]:
    """`heads` as head nodes of `model`; `hint` shows the accepted spelling in the error."""
    nodes = []
    for spec in heads:
        if not is_head(spec):
            raise InterpError(f"heads: {spec!r} is not a (layer, head) pair{hint}.")
        node = as_head(spec)
        assert node.head is not None  # as_head returns heads only
        if not (0 <= node.layer < model.n_layers and 0 <= node.head < model.n_heads):
            raise InterpError(
                f"Head {node.label} does not exist: {model.name} has layers "
                f"0..{model.n_layers - 1} and heads 0..{model.n_heads - 1}."
            )
        nodes.append(node)
    return nodes


def head_axis(n_heads: int) -> list[str]:
    """Labels of a layer x head grid's head axis: ``H0, H1, ...``."""
    return [head_axis_label(h) for h in range(n_heads)]
