"""The public call that produced a result, so figures and reports can say how to reproduce it.

`checked` (the argument checks every public analysis carries) records the outermost call of an
analysis function while it runs; `make_meta` copies it into the result's metadata as ``call``:
``interp.attribution.direct_logit(model, task, over='heads', seed=0)``. Arguments are written
as the user passed them: numbers, strings and short lists literally, a model as ``model``, a task
as ``task`` (both are described elsewhere in the metadata), anything else by its type.
Command-line runs record the shell command instead (``command``).
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any

_CALL: contextvars.ContextVar[str | None] = contextvars.ContextVar("interp_call", default=None)
_SIMPLE = (int, float, str, bool, type(None))


def public_name(fn: Callable[..., Any]) -> str | None:
    """How users reach a function the analyses export: ``interp.<family>.<name>`` for the
    families `interp` exposes, else its module path (``interp.analyses.residual.residual_norms``);
    None for anything else (methods, private helpers)."""
    module = getattr(fn, "__module__", "") or ""
    parts = module.split(".")
    if len(parts) < 3 or parts[:2] != ["interp", "analyses"] or "." in fn.__qualname__:
        return None
    package = ".".join(parts[:3])
    if fn.__name__.startswith("_"):
        return None
    import interp

    families: dict[str, str] = dict(getattr(interp, "_FAMILIES", {}))
    target = inspect.unwrap(fn)

    def exports(module: str, name: str) -> bool:
        try:
            value = getattr(importlib.import_module(module), name, None)
        except ImportError:
            return False
        return value is not None and inspect.unwrap(value) is target

    # Its own family first; a function another family re-exports (interp.sae.direct_logit is
    # attribution's latent DLA) is named where it carries its own name.
    own = [(parts[2], families.get(parts[2], package))] if parts[2] in families else []
    for family, module in [*own, *families.items()]:
        if exports(module, fn.__name__):
            return f"interp.{family}.{fn.__name__}"
    if exports(package, fn.__name__):
        return f"{package}.{fn.__name__}"
    return None


def _literal(value: Any, depth: int = 0) -> bool:
    """Whether `value` reads back as itself from its repr: numbers, strings, and small lists,
    tuples and dicts of them."""
    if isinstance(value, _SIMPLE):
        return True
    if depth > 3:
        return False
    if isinstance(value, list | tuple):
        return len(value) <= 16 and all(_literal(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return len(value) <= 16 and all(
            _literal(k, depth + 1) and _literal(v, depth + 1) for k, v in value.items()
        )
    return False


def _arg(value: Any) -> str:
    kind = type(value).__name__
    if _literal(value) and len(text := repr(value)) <= 300:
        return text
    if hasattr(value, "W_dec") and hasattr(value, "cfg"):  # an sae-lens SAE (it has a cfg too)
        return "sae"
    if kind in ("Model", "HookedTransformer", "TransformerBridge") or hasattr(value, "cfg"):
        return "model"
    if kind == "Task":
        return "task"
    return f"<{kind}>"


def format_call(name: str, bound: inspect.BoundArguments) -> str:
    """``name(arg, key=value, ...)`` from the arguments as passed (defaults left out).

    `model` and `task` are written without their keyword while they are the leading arguments
    (as users call analyses); once any argument has been written with a keyword, every later
    one is too, so the text is always a valid call."""
    params = bound.signature.parameters
    args: list[str] = []
    keyword = False
    for key, value in bound.arguments.items():
        kind = params[key].kind
        if kind is inspect.Parameter.VAR_POSITIONAL:
            if keyword:  # *args after a keyword cannot be written as a call: name the tuple
                args.append(f"*{_arg(tuple(value))}")
            else:
                args.extend(_arg(v) for v in value)
        elif kind is inspect.Parameter.VAR_KEYWORD:
            args.extend(f"{k}={_arg(v)}" for k, v in value.items())
            keyword = True
        elif kind is inspect.Parameter.POSITIONAL_ONLY or (
            not keyword
            and key in ("model", "task")
            and kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        ):
            args.append(_arg(value))
        else:
            args.append(f"{key}={_arg(value)}")
            keyword = True
    return f"{name}({', '.join(args)})"


@contextlib.contextmanager
def recording(fn: Callable[..., Any], bound: inspect.BoundArguments) -> Iterator[None]:
    """Record `fn`'s call while it runs, if it is a public analysis and the outermost one."""
    name = public_name(fn) if _CALL.get() is None else None
    if name is None:
        yield
        return
    token = _CALL.set(format_call(name, bound))
    try:
        yield
    finally:
        _CALL.reset(token)


def current_call() -> str | None:
    """The public analysis call running now (the outermost), or None."""
    return _CALL.get()
