"""Run one batch and capture chosen hook activations, sliced to chosen positions inside the hook."""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Int
from torch import Tensor

from interp.activations.names import layer_of, short_form
from interp.errors import InterpError

if TYPE_CHECKING:
    from interp.models import Model

Positions = None | str | int | list[int]
_QUERY_AXIS_2 = {"pattern", "attn_scores"}  # [batch, head, query, key]


def pos_axis(hook_name: str) -> int:
    return 2 if short_form(hook_name) in _QUERY_AXIS_2 else 1


def check_positions(positions: Any, seq_len: int) -> Positions:
    """Reject positions that cannot be read before any forward pass; return them normalised
    (None, ``"last"``, a Python int or a list of Python ints: numpy and 0-d tensor integers
    become ints, so the store's manifest can hold them)."""
    if positions is None or positions == "last":
        return positions
    if isinstance(positions, str):
        raise InterpError(f"positions={positions!r}: use None (all), 'last', an int or a list.")
    single = not isinstance(positions, list | tuple)
    try:
        idx = [operator.index(p) for p in ([positions] if single else positions)]
    except TypeError:
        raise InterpError(
            f"positions={positions!r}: use None (all), 'last', an int or a list of ints."
        ) from None
    if not idx:
        raise InterpError("positions is an empty list: give at least one position or None.")
    bad = [p for p in idx if not -seq_len <= p < seq_len]
    if bad:
        raise InterpError(f"Positions {bad} are outside the prompts' length {seq_len}.")
    return idx[0] if single else idx


def select_positions(
    act: Tensor, hook_name: str, positions: Positions, answer_pos: Int[Tensor, " batch"]
) -> Tensor:
    """Slice a hook activation to the requested positions (a single position drops the axis)."""
    if positions is None:
        return act
    axis = pos_axis(hook_name)
    if positions == "last":
        rows = torch.arange(act.shape[0], device=act.device)
        moved = act.movedim(axis, 1)
        return moved[rows, answer_pos.to(act.device)]
    if isinstance(positions, int):
        return act.select(axis, positions)
    size = act.shape[axis]
    return act.index_select(axis, torch.tensor([p % size for p in positions], device=act.device))


def stop_layer(model: Model, names: list[str]) -> int | None:
    """Forward passes can stop after the last block any requested hook lives in."""
    if model.backend != "HookedTransformer":
        return None
    layers = [layer_of(n) for n in names]
    if any(layer is None for layer in layers):
        return None
    last = max(int(layer) for layer in layers if layer is not None)
    return None if last + 1 >= model.n_layers else last + 1


@torch.inference_mode()
def capture_batch(
    model: Model,
    tokens: Int[Tensor, "batch seq"],
    names: list[str],
    positions: Positions,
    answer_pos: Int[Tensor, " batch"],
    dtype: torch.dtype | None = None,
    device: str | torch.device = "cpu",
    attention_mask: Tensor | None = None,
) -> dict[str, Tensor]:
    """One forward pass over `tokens`; returns {hook name: activation at positions} on `device`."""
    store: dict[str, Tensor] = {}

    def recorder(name: str) -> Any:
        # Key by the requested name: on a TransformerBridge, hook.name is the internal alias.
        def hook(act: Tensor, hook: Any) -> None:
            out = select_positions(act, name, positions, answer_pos)
            store[name] = out.to(device=device, dtype=dtype or out.dtype).clone()

        return hook

    kwargs: dict[str, Any] = {}
    stop = stop_layer(model, names)
    if stop is not None:
        kwargs["stop_at_layer"] = stop
    if attention_mask is not None:
        kwargs["attention_mask"] = attention_mask.to(model.device)
    model.run_with_hooks(
        tokens.to(model.device),
        fwd_hooks=[(n, recorder(n)) for n in names],
        return_type=None,
        **kwargs,
    )
    missing = [n for n in names if n not in store]
    if missing:
        raise InterpError(f"Hooks {missing} did not fire on {model.name}; they cannot be cached.")
    return store
