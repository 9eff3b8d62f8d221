"""`steer`: add directions to a model's activations for the duration of a block.

Inside ``with steer(model, d, alpha=4.0):`` every forward of `model` (any analysis: caching,
patching, attribution, generation with `interp.steering.generate`) runs with
``alpha * d.sigma * d.vector`` added at `d`'s site and at the chosen positions. Hooks go on at
a fresh context level and come off on exit, also when the block raises.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from interp.analyses.steering.vector import SteeringDirection
from interp.errors import InterpError
from interp.models import Model, load_model
from interp.models.hooks import HookFn

#: Where steering adds: every position, each sequence's last one, only generated tokens
#: (`generate`), explicit absolute positions, or a ``[batch]`` tensor (one position per row).
PositionSpec = Literal["all", "last", "generated"] | int | Sequence[int] | Tensor
Directions = SteeringDirection | Sequence[SteeringDirection]
Strengths = float | Sequence[float]


def as_directions(directions: Directions) -> list[SteeringDirection]:
    items = [directions] if isinstance(directions, SteeringDirection) else list(directions)
    bad = [type(d).__name__ for d in items if not isinstance(d, SteeringDirection)]
    if bad:
        raise InterpError(
            f"Steering takes SteeringDirection objects, got {bad[0]}; make one with "
            "interp.steering.direction(model, task, ...) or SteeringDirection.from_probe(...)."
        )
    if not items:
        raise InterpError("No steering directions given.")
    return items


def as_strengths(alpha: Strengths, n: int) -> list[float]:
    """One finite strength per direction (a single number applies to all)."""
    values = [alpha] * n if isinstance(alpha, int | float) else list(alpha)
    if len(values) != n:
        raise InterpError(f"Got {len(values)} strengths for {n} directions: give one or {n}.")
    return [finite_strength(a) for a in values]


def finite_strength(a: Any) -> float:
    """A strength as a float; NaN, infinities and non-numbers are refused."""
    try:
        f = float(a)
    except (TypeError, ValueError):
        raise InterpError(f"Strength {a!r} is not a number.") from None
    if not math.isfinite(f):
        raise InterpError(f"Strength {a!r} is not finite: give a finite number (sigma units).")
    return f


@dataclass
class Positions:
    """Which positions of the current forward steering writes to.

    ``offset`` is the absolute position of the forward's first token (generation with a
    key-value cache feeds one new token at a time); ``prompt_len`` is set by `generate`.
    """

    spec: Any = "all"
    offset: int = 0
    prompt_len: int | None = None

    @classmethod
    def parse(cls, spec: PositionSpec) -> Positions:
        if isinstance(spec, str):
            if spec not in ("all", "last", "generated"):
                raise InterpError(
                    f"positions={spec!r}: use 'all', 'last', 'generated', an int, a list of "
                    "ints, or a [batch] tensor of positions."
                )
            return cls(spec)
        if isinstance(spec, Tensor):
            if spec.ndim != 1 or spec.is_floating_point():
                raise InterpError("positions as a tensor must be [batch] integer positions.")
            return cls(spec.long().cpu())
        items: list[Any] = [spec] if not isinstance(spec, Sequence) else list(spec)
        try:
            idx = [operator.index(p) for p in items]
        except TypeError:
            raise InterpError(
                f"positions={spec!r}: use 'all', 'last', 'generated', or integer positions."
            ) from None
        if not idx:
            raise InterpError("positions is an empty list: give at least one position.")
        return cls(sorted(set(idx)))

    def check(self, seq_len: int, batch: int | None = None) -> None:
        """Refuse positions a prompt of `seq_len` tokens does not have (before any forward)."""
        spec = self.spec
        if isinstance(spec, list):
            bad = [p for p in spec if not -seq_len <= p < seq_len]
            if bad:
                raise InterpError(
                    f"Steering positions {bad} are beyond the prompt, which has positions "
                    f"0..{seq_len - 1}."
                )
        elif isinstance(spec, Tensor):
            if batch is not None and spec.shape[0] != batch:
                raise InterpError(f"positions has {spec.shape[0]} entries for {batch} prompts.")
            if bool(((spec < 0) | (spec >= seq_len)).any()):
                raise InterpError(
                    f"Steering positions {spec.tolist()} include some beyond the prompts' "
                    f"positions 0..{seq_len - 1}."
                )

    def mask(self, batch: int, seq: int, device: torch.device) -> Tensor | None:
        """``[batch, seq]`` bool of the positions to steer in this forward; None = all."""
        spec, lo = self.spec, self.offset
        if spec == "all":
            return None
        out = torch.zeros(batch, seq, dtype=torch.bool, device=device)
        if spec == "generated":
            if self.prompt_len is None:
                raise InterpError(
                    "positions='generated' steers generated tokens only: use it with "
                    "interp.steering.generate(model, prompts, directions, ...)."
                )
            first = max(self.prompt_len - lo, 0)
            out[:, first:] = True
        elif spec == "last":
            if self.prompt_len is None:
                out[:, seq - 1] = True
            elif lo <= self.prompt_len - 1 < lo + seq:
                out[:, self.prompt_len - 1 - lo] = True
        elif isinstance(spec, Tensor):
            if batch % spec.shape[0]:
                raise InterpError(
                    f"positions has {spec.shape[0]} entries but the forward has {batch} rows."
                )
            # Analyses that stack copies of the batch (patching) repeat it copy-major.
            rel = spec.to(device).repeat(batch // spec.shape[0]) - lo
            rows = ((rel >= 0) & (rel < seq)).nonzero()[:, 0]
            out[rows, rel[rows]] = True
        else:
            total = lo + seq
            for p in spec:
                a = p + total if p < 0 and self.prompt_len is None else p
                if not 0 <= a < total and self.prompt_len is None:
                    raise InterpError(
                        f"Steering position {p} is beyond the sequence, which has positions "
                        f"0..{total - 1}."
                    )
                if lo <= a < total:
                    out[:, a - lo] = True
        return out


def adder(direction: SteeringDirection, alpha: float, positions: Positions) -> HookFn:
    """The forward hook that adds ``alpha * sigma * vector`` at the site's positions."""
    added = direction.added(alpha)
    head = direction.site.head

    def hook(act: Tensor, hook: Any) -> Tensor:
        vec = added.to(device=act.device, dtype=act.dtype)
        mask = positions.mask(act.shape[0], act.shape[1], act.device)
        if mask is None and head is None:
            return act + vec
        out = act.clone()
        view = out if head is None else out[:, :, head]
        if mask is None:
            view += vec
        else:
            view[mask] += vec
        return out

    return hook


def steering_hooks(
    model: Model,
    directions: Directions,
    alpha: Strengths,
    positions: Positions,
) -> list[tuple[str, HookFn]]:
    """Checked hooks for `directions` at strengths `alpha` (zero strengths add no hook)."""
    dirs = as_directions(directions)
    alphas = as_strengths(alpha, len(dirs))
    for d in dirs:
        d.check(model)
    return [
        (model.hook_name(d.site.target, d.site.layer), adder(d, a, positions))
        for d, a in zip(dirs, alphas, strict=True)
        if a != 0.0
    ]


@contextmanager
def steer(
    model: Model | Any,
    directions: Directions,
    alpha: Strengths = 1.0,
    positions: PositionSpec = "all",
) -> Iterator[Model]:
    """Steer every forward of `model` inside the block.

    Args:
        model: the model (a handle, or anything `interp.load_model` accepts).
        directions: one `SteeringDirection` or several (each at its own site).
        alpha: strength in sigma units, one for all directions or one per direction; 0 adds
            nothing (the run is the plain run, bit for bit).
        positions: ``"all"`` (default), ``"last"`` (each forward's final position; give a
            ``[batch]`` tensor such as ``task.answer_pos`` for right-padded batches), explicit
            positions (``[3, 4]``, ``-1``), or ``"generated"`` (only with
            `interp.steering.generate`). Explicit and per-prompt positions index each
            forward's own positions from 0: around analyses that run only later positions
            (patching skips the positions before a patch) use ``"all"`` or ``"last"``.

    Yields the model handle, so ``with steer(model, d, 4.0) as m: m(tokens)`` reads well.

    Example:
        >>> d = interp.steering.direction(model, task, at="resid_post", layer=2)
        >>> with interp.steering.steer(model, d, alpha=8.0, positions="last"):
        ...     res = interp.attribution.direct_logit(model, task)
    """
    model = load_model(model)
    pos = Positions.parse(positions)
    if pos.spec == "generated":
        raise InterpError(
            "positions='generated' steers generated tokens only: use "
            "interp.steering.generate(model, prompts, directions, positions='generated')."
        )
    hooks = steering_hooks(model, directions, alpha, pos)
    with model.hooks(hooks):
        yield model
