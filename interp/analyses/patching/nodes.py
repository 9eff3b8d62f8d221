"""Patchable components ("nodes"): which activation, which layer, head and position.

A node names one slice of one TransformerLens activation. ``z``, ``q``, ``k``, ``v`` are head
vectors ``[batch, pos, head, d_head]`` (``k``/``v`` indexed by key-value head, so grouped-query
models work); ``pattern`` is ``[batch, head, dest, src]``; the residual-like targets are
``[batch, pos, d_model]``. ``pos=None`` means every position.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from interp.errors import InterpError
from interp.models import Model
from interp.nodes import Node, as_head, canonical

RESID_TARGETS = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
HEAD_TARGETS = ("z", "q", "k", "v")
TARGETS = (*RESID_TARGETS, *HEAD_TARGETS, "pattern")

PerPosition = bool | Literal["dest_src"]


NodeLike = Node | str


def as_node(model: Model, node: NodeLike | tuple[int, int]) -> Node:
    """Accept a Node, its string form (``"q:L3H2"``, ``"mlp_out:L1"``), or a head written any
    way `interp.nodes.as_head` reads (``"L3H2"``, ``"3.2"``, ``(3, 2)``: its output z)."""
    if isinstance(node, Node):
        n = node
    elif isinstance(node, str):
        try:
            n = Node.parse(node)
        except InterpError as e:
            try:
                n = as_head(node)  # the other ways of writing a head ("3.2")
            except InterpError:
                raise e from None
    elif isinstance(node, tuple | list) and len(node) == 2:
        n = as_head((int(node[0]), int(node[1])))
    else:
        raise InterpError(
            f"Cannot read node {node!r}: give a Node, 'L3H2', 'q:L3H2', '3.2' or (layer, head)."
        )
    check_node(model, n)
    return n


def check_target(model: Model, target: str, per_position: PerPosition = False) -> None:
    target = canonical(target)
    if target not in TARGETS:
        raise InterpError(f"Unknown patching target {target!r}; use one of {list(TARGETS)}.")
    if per_position == "dest_src" and target != "pattern":
        raise InterpError("per_position='dest_src' applies to target='pattern' only.")
    if per_position not in (True, False, "dest_src"):
        raise InterpError(f"per_position must be True, False or 'dest_src', got {per_position!r}.")
    hook = model.hook_name(target, 0)
    if not model.has_hook(hook):
        raise InterpError(
            f"{model.name} has no {target!r} activation ({hook}); "
            + (
                "attention-only models have no resid_mid or mlp_out."
                if "mlp" in hook or "mid" in hook
                else "pick another target."
            )
        )


def latent_sae(target: Any, sae: Any) -> Any:
    """The SAE of a ``target="latents"`` call (``sae=`` alone also means latents)."""
    if sae is None:
        raise InterpError(
            "target='latents' needs sae=: an sae-lens SAE, e.g. interp.sae.load(path, model=model)."
        )
    if target not in ("latents", "z"):
        raise InterpError(f"sae= patches SAE latents: give target='latents', not {target!r}.")
    return sae


def n_head_index(model: Model, target: str) -> int:
    """Heads along the head axis: key-value heads for k and v (grouped-query attention)."""
    return model.n_key_value_heads if target in ("k", "v") else model.n_heads


def check_node(model: Model, node: Node) -> None:
    check_target(model, node.target)
    if not 0 <= node.layer < model.n_layers:
        raise InterpError(f"{node}: layer must be in 0..{model.n_layers - 1}.")
    if node.target in RESID_TARGETS:
        if node.head is not None:
            raise InterpError(f"{node}: {node.target} has no heads; drop the H part.")
    else:
        n = n_head_index(model, node.target)
        if node.head is None or not 0 <= node.head < n:
            kind = "key-value heads" if node.target in ("k", "v") else "heads"
            raise InterpError(f"{node}: give a head in 0..{n - 1} ({model.name} has {n} {kind}).")
    for p in (node.pos, node.src_pos):
        if p is not None and not 0 <= p < model.n_ctx:
            raise InterpError(f"{node}: position {p} is outside 0..{model.n_ctx - 1}.")
    if node.src_pos is not None and node.target != "pattern":
        raise InterpError(f"{node}: a source position applies to attention patterns only.")


def sweep(
    model: Model, target: str, per_position: PerPosition, seq_len: int
) -> tuple[list[Node], tuple[str, ...], dict[str, list[int]]]:
    """Every node of a target, in the order of the result's axes (TransformerLens' order)."""
    check_target(model, target, per_position)
    target = canonical(target)
    L, T = model.n_layers, seq_len
    layers = list(range(L))
    if target in RESID_TARGETS:
        if per_position:
            nodes = [Node(target, l, pos=p) for l in layers for p in range(T)]
            return nodes, ("layer", "pos"), {"layer": layers, "pos": list(range(T))}
        return [Node(target, l) for l in layers], ("layer",), {"layer": layers}
    H = n_head_index(model, target)
    head_dim = "kv_head" if target in ("k", "v") else "head"
    heads = list(range(H))
    if target == "pattern" and per_position == "dest_src":
        nodes = [
            Node(target, l, h, d, s)
            for l in layers
            for h in heads
            for d in range(T)
            for s in range(T)
        ]
        dims = ("layer", "head", "dest_pos", "src_pos")
        return (
            nodes,
            dims,
            {"layer": layers, "head": heads, "dest_pos": list(range(T)), "src_pos": list(range(T))},
        )
    if target == "pattern" and per_position:
        nodes = [Node(target, l, h, d) for l in layers for h in heads for d in range(T)]
        return (
            nodes,
            ("layer", "head", "dest_pos"),
            {"layer": layers, "head": heads, "dest_pos": list(range(T))},
        )
    if per_position:
        nodes = [Node(target, l, h, p) for l in layers for p in range(T) for h in heads]
        return (
            nodes,
            ("layer", "pos", head_dim),
            {"layer": layers, "pos": list(range(T)), head_dim: heads},
        )
    return (
        [Node(target, l, h) for l in layers for h in heads],
        ("layer", head_dim),
        {"layer": layers, head_dim: heads},
    )


def node_sets(model: Model, spec: Sequence[object]) -> list[list[Node]]:
    """A list of nodes (one set patched together) or a list of such lists (several sets)."""
    items = list(spec)
    if not items:
        raise InterpError("No nodes given: pass e.g. ['L3H2', 'L3H6'] or [['L3H2'], ['L1H0']].")
    one_set = all(isinstance(x, Node | str) or _is_pair(x) for x in items)
    groups = [items] if one_set else items
    sets = []
    for g in groups:
        members: list[Any] = [g] if isinstance(g, Node | str) or _is_pair(g) else list(g)  # type: ignore[call-overload]
        nodes = [as_node(model, x) for x in members]
        if not nodes:
            raise InterpError("A node set is empty.")
        sets.append(nodes)
    return sets


def _is_pair(x: object) -> bool:
    return isinstance(x, tuple) and len(x) == 2 and all(isinstance(v, int) for v in x)
