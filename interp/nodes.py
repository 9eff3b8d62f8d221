"""Nodes and heads: the one place a component is named, written and parsed.

A node is a target (an activation site kind: ``resid_pre``, ``z``, ``pattern`` ...) at a layer,
and where the target has them, a head and a position. A head is the node of a head's output
(target ``z``). Labels are written ``L3H5`` (a head) or ``L3`` (a layer) everywhere, and read back
by `Node.parse` / `parse_heads`, so a label a result shows is a name a function accepts.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from interp.errors import InterpError

# TransformerLens calls head outputs "attn_head_out"; DESIGN.md's example says "head_out".
ALIASES = {"head_out": "z", "attn_head_out": "z", "result": "z"}

_NODE = re.compile(r"\s*(?:(\w+):)?L(\d+)(?:H(\d+))?(?:@(\d+))?(?:>(\d+))?\s*", flags=re.I)
_PAIR = re.compile(r"\s*(\d+)\.(\d+)\s*")


def canonical(target: str) -> str:
    """The activation name for a target, accepting the aliases of head outputs."""
    return ALIASES.get(target, target)


def layer_label(layer: int) -> str:
    """``L3``: how a layer is written on axes and in tables."""
    return f"L{int(layer)}"


def head_label(layer: int, head: int) -> str:
    """``L3H5``: how a head is written on axes, in tables and on the command line."""
    return f"L{int(layer)}H{int(head)}"


def head_axis_label(head: int) -> str:
    """``H5``: a head on the head axis of a layer x head grid (the layer is the other axis)."""
    return f"H{int(head)}"


def head_labels(n_layers: int, n_heads: int) -> list[str]:
    """Every head's label, layer-major (``L0H0, L0H1, ..., L1H0, ...``): a flattened head grid."""
    return [head_label(l, h) for l in range(n_layers) for h in range(n_heads)]


@dataclass(frozen=True, order=True)
class Node:
    """One component of the model.

    Attributes:
        target: the activation site kind (``resid_pre``, ``z``, ``q``, ``pattern`` ...).
        layer: block index.
        head: query head (z, q, pattern) or key-value head (k, v); None for residual targets.
        pos: position (for ``pattern``: the destination position); None = all positions.
        src_pos: ``pattern`` only: one source position; None = the whole row.
    """

    target: str
    layer: int
    head: int | None = None
    pos: int | None = None
    src_pos: int | None = None

    @property
    def hook(self) -> str:
        # Imported here: interp.models loads torch, and the CLI parses heads before it needs it.
        from interp.models.hooks import hook_name

        return hook_name(self.target, self.layer)

    @property
    def start(self) -> int:
        """First position whose computation the patch can change (causal models)."""
        return 0 if self.pos is None else self.pos

    @property
    def label(self) -> str:
        """``L3H5`` for a head, ``L3`` for a layer-wide node (target and position left out)."""
        return layer_label(self.layer) if self.head is None else head_label(self.layer, self.head)

    def __str__(self) -> str:
        s = f"{self.target}:{self.label}"
        if self.pos is not None:
            s += f"@{self.pos}"
        if self.src_pos is not None:
            s += f">{self.src_pos}"
        return s

    @classmethod
    def parse(cls, text: str) -> Node:
        """Read ``"L3H2"`` (head output z), ``"q:L3H2"``, ``"resid_pre:L2@5"``, ``"mlp_out:L1"``
        or ``"pattern:L1H0@7>3"`` (destination 7, source 3)."""
        m = _NODE.fullmatch(text)
        if m is None:
            raise InterpError(
                f"Cannot read node {text!r}: write e.g. 'L3H2' (head output), 'q:L3H2', "
                "'resid_pre:L2@5' (layer 2, position 5) or 'pattern:L1H0@7>3'."
            )
        target, layer, head, pos, src = m.groups()
        target = canonical((target or ("z" if head is not None else "resid_pre")).lower())
        return cls(
            target,
            int(layer),
            None if head is None else int(head),
            None if pos is None else int(pos),
            None if src is None else int(src),
        )


def is_index(value: Any) -> bool:
    """An integer as an index: int, numpy integer, 0-d integer tensor; not a bool or a float."""
    if isinstance(value, bool):
        return False
    try:
        operator.index(value)
    except TypeError:
        return False
    return True


def head_node(layer: int, head: int) -> Node:
    """The output (``z``) of one attention head."""
    return Node("z", int(layer), int(head))


#: A head as users write it: a Node (target z), ``"L3H5"``, ``"3.5"`` or ``(3, 5)``.
HeadLike = Node | str | tuple[int, int]


def as_head(spec: HeadLike) -> Node:
    """One head as a `Node` (target ``z``), from any way a user writes it."""
    if isinstance(spec, Node):
        node = spec
    elif isinstance(spec, str):
        pair = _PAIR.fullmatch(spec)
        node = head_node(int(pair[1]), int(pair[2])) if pair else _parse_head(spec)
    elif isinstance(spec, tuple | list) and len(spec) == 2 and all(map(is_index, spec)):
        node = head_node(operator.index(spec[0]), operator.index(spec[1]))
    else:
        raise InterpError(f"Cannot read head {spec!r}: write 'L2H5', '2.5' or (2, 5).")
    if node.target != "z" or node.head is None or node.pos is not None:
        raise InterpError(f"{spec!r} is not a head: write 'L2H5', '2.5' or (2, 5).")
    return node


def _parse_head(text: str) -> Node:
    try:
        return Node.parse(text)
    except InterpError:
        raise InterpError(f"Cannot read head {text!r}: write 'L2H5', '2.5' or (2, 5).") from None


def parse_heads(spec: str | Iterable[HeadLike]) -> list[Node]:
    """Heads from ``"L0H1,L2H3"`` (or ``"0.1,2.3"``) or from a list of heads in any form."""
    items: Sequence[HeadLike] = spec.split(",") if isinstance(spec, str) else list(spec)
    heads = [as_head(x) for x in items]
    if not heads:
        raise InterpError("No heads given: write e.g. 'L0H1,L2H3'.")
    return heads


def heads_of(table: Any) -> list[Node]:
    """The heads in a table with ``layer`` and ``head`` columns, in row order: e.g. the top
    heads of a result, ``heads_of(res.top(5))``."""
    if not {"layer", "head"} <= set(table.columns):
        raise InterpError(f"heads_of needs layer and head columns; got {list(table.columns)}.")
    return [head_node(l, h) for l, h in zip(table["layer"], table["head"], strict=True)]


def check_heads(heads: Iterable[Node], n_layers: int, n_heads: int, model_name: str) -> None:
    """Refuse heads the model does not have, naming the head and the model's range."""
    for node in heads:
        if not (0 <= node.layer < n_layers and node.head is not None and 0 <= node.head < n_heads):
            raise InterpError(
                f"{node.label} is not a head of {model_name}: it has layers 0..{n_layers - 1} "
                f"and heads 0..{n_heads - 1}."
            )
