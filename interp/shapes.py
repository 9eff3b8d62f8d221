"""Tensor shapes checked at the public boundary, from the jaxtyping annotations.

``def logit_diff(logits: Float[Tensor, "batch seq vocab"], ...)`` documents the axes; `@checked`
(interp.checks) also enforces them: every tensor argument annotated with a jaxtyping type is
checked against it, with axis names bound across the call's arguments (``batch`` is one size
for every argument of one call), and a mismatch is an InterpError that names the argument, the
expected axes and what was given. Shapes only: the dtype words document intent. Only the
arguments of public calls are checked; the bodies and the model handle run unchecked, so inner
loops pay nothing (the cost is measured in docs/reliability.md).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from jaxtyping import AbstractArray, Shaped, jaxtyped
from torch import Tensor

from interp.errors import InterpError


def _array_types(annotation: Any) -> list[type[AbstractArray]]:
    """The jaxtyping array types in an annotation (``Float[Tensor, "b s"] | None`` -> one)."""
    if isinstance(annotation, type) and issubclass(annotation, AbstractArray):
        return [annotation]
    return [a for part in typing.get_args(annotation) for a in _array_types(part)]


@functools.cache
def shape_params(fn: Callable[..., Any]) -> dict[str, tuple[type[AbstractArray], ...]]:
    """The parameters of `fn` annotated with jaxtyping array types: name -> the types."""
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception:  # an annotation naming a type-checking-only import: nothing to check
        hints = _hints_one_by_one(fn)
    out: dict[str, tuple[type[AbstractArray], ...]] = {}
    for name in inspect.signature(fn).parameters:
        types = _array_types(hints.get(name))
        if types:
            out[name] = tuple(types)
    return out


def _hints_one_by_one(fn: Callable[..., Any]) -> dict[str, Any]:
    import sys

    module = sys.modules.get(fn.__module__)
    namespace = dict(vars(module)) if module is not None else dict(fn.__globals__)
    out: dict[str, Any] = {}
    for name, param in inspect.signature(fn).parameters.items():
        ann = param.annotation
        if isinstance(ann, str) and ("[" in ann):
            try:
                out[name] = eval(ann, namespace)
            except Exception:
                continue
    return out


@functools.cache
def _shape_only(kind: type[AbstractArray]) -> type[AbstractArray]:
    # Axes only: the dtype words in annotations document intent (labels written Int are also
    # passed as bool or float and work), so enforcing them would refuse calls that work today.
    return Shaped[Tensor, kind.dim_str]  # type: ignore[no-any-return,return-value]


def _given(value: Tensor) -> str:
    return f"shape {tuple(value.shape)}, dtype {str(value.dtype).removeprefix('torch.')}"


def check_shapes(fn: Callable[..., Any], bound: inspect.BoundArguments, where: str) -> None:
    """Refuse tensor arguments whose shape or dtype breaks `fn`'s jaxtyping annotations."""
    params = shape_params(fn)
    items = [(n, bound.arguments[n], params[n]) for n in params if n in bound.arguments]
    items = [(n, v, t) for n, v, t in items if isinstance(v, Tensor)]
    problem = _mismatch(items) if items else None
    if problem:  # raised out here: jaxtyping appends its own notes to errors raised inside
        raise InterpError(f"{where}: {problem}.")


@jaxtyped(typechecker=None)  # one memo of axis sizes for the whole call
def _mismatch(items: list[tuple[str, Tensor, tuple[type[AbstractArray], ...]]]) -> str | None:
    seen: list[str] = []
    for name, value, kinds in items:
        if not any(isinstance(value, _shape_only(k)) for k in kinds):
            want = " or ".join(f"[{k.dim_str}]" for k in kinds)
            others = f", with the axes of {'; '.join(seen)}" if seen else ""
            return f"{name} must have axes {want}{others}; got {_given(value)}"
        seen.append(f"{name}: {tuple(value.shape)}")
    return None
