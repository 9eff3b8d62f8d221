"""Argument checks at the public boundary, before any forward pass or write.

A typo such as ``cache(..., which="clen")`` must not fall through to a default branch. Public
functions declare string options as ``Literal[...]`` and carry ``@checked``, which validates
every Literal-typed argument before the body runs, with the valid values and the nearest one in
the message. The same decorator checks the parameters whose names mean the same thing across
the package (``n_boot``, ``batch_size``, ``seed``, ``scale`` ... see `CONVENTIONS`), so
``n_boot=0`` or ``scale=nan`` is refused by name instead of failing deep inside. Options whose
valid values are only known at run time (registered metric names, detector kinds) use `one_of`.
"""

from __future__ import annotations

import builtins
import difflib
import functools
import inspect
import math
import numbers
import sys
import types
import typing
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from interp.calls import recording
from interp.errors import InterpError
from interp.shapes import check_shapes, shape_params

F = TypeVar("F", bound=Callable[..., Any])

_UNION_TYPES: tuple[Any, ...] = (typing.Union, types.UnionType)


def _quoted(values: Iterable[Any]) -> str:
    return ", ".join(repr(v) for v in values)


def one_of(arg: str, value: Any, allowed: Iterable[Any], where: str = "", also: str = "") -> None:
    """Raise an InterpError unless `value` is one of `allowed`.

    Args:
        arg: the argument's name, for the message.
        value: what the user passed.
        allowed: the valid values.
        where: the function's name, for the message.
        also: other accepted forms, appended to the message (``"or a GaussianNoise"``).
    """
    allowed = list(allowed)
    if any(_same(value, a) for a in allowed):
        return
    hint = ""
    if isinstance(value, str):
        close = difflib.get_close_matches(value, [a for a in allowed if isinstance(a, str)], n=1)
        if close:
            hint = f" Did you mean {close[0]!r}?"
    call = f"{where}({arg}=...)" if where else arg
    choices = f"use one of {_quoted(allowed)}" if len(allowed) > 1 else f"use {allowed[0]!r}"
    tail = f", or {also}" if also else ""
    raise InterpError(f"{call}: got {value!r}; {choices}{tail}.{hint}")


def _same(value: Any, option: Any) -> bool:
    # Type first: a tensor compared with == gives a tensor, and True == 1.
    return type(value) is type(option) and bool(value == option)


def literal_choices(annotation: Any) -> tuple[list[Any], list[Any]]:
    """Split an annotation into its Literal values and its other (non-Literal) members."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return list(typing.get_args(annotation)), []
    if origin in _UNION_TYPES:
        values: list[Any] = []
        others: list[Any] = []
        for member in typing.get_args(annotation):
            v, o = literal_choices(member)
            values += v
            others += o
        return values, others
    return [], [annotation]


def _accepts(value: Any, annotation: Any) -> bool:
    """Whether `value` plausibly belongs to the non-Literal annotation `annotation`."""
    if annotation is Any:
        return True
    if annotation is type(None):
        return value is None
    runtime = typing.get_origin(annotation) or annotation
    if not isinstance(runtime, type):
        return True  # a TypeVar, Callable[...] or other form we cannot test: let it through
    if isinstance(value, str) and runtime is not str:
        return False  # a str is a Sequence, but a misspelt option is not a list of items
    if runtime is float and isinstance(value, int) and not isinstance(value, bool):
        return True
    # bool is an int subclass; a Literal option typed `int | Literal[...]` must not take True.
    if isinstance(value, bool) and runtime is int:
        return False
    return isinstance(value, runtime)


def _literal_params(fn: Callable[..., Any]) -> dict[str, tuple[list[Any], list[Any]]]:
    """The parameters of `fn` whose annotation contains a Literal: name -> (values, others)."""
    out: dict[str, tuple[list[Any], list[Any]]] = {}
    for name, param in inspect.signature(fn).parameters.items():
        ann = param.annotation
        if isinstance(ann, str):
            if "Literal" not in ann and not _names_literal_alias(ann, fn):
                continue
            # Annotations are strings (from __future__ import annotations): evaluate this one in
            # the function's module, where its aliases live.
            ann = eval(ann, {}, _Names(_namespace(fn)))
        values, others = literal_choices(ann)
        if values:
            out[name] = (values, others)
    return out


class _Names(dict[str, Any]):
    """Names for evaluating an annotation; one imported only for type checkers reads as Any."""

    def __missing__(self, key: str) -> Any:
        # Lookups stop here before globals and builtins, so builtins (int, str) go here too.
        return getattr(builtins, key, getattr(typing, key, Any))


def _namespace(fn: Callable[..., Any]) -> dict[str, Any]:
    # A dataclass' generated __init__ may not carry its module's globals; the module does.
    module = sys.modules.get(fn.__module__)
    return dict(vars(module)) if module is not None else dict(fn.__globals__)


def _where(fn: Callable[..., Any]) -> str:
    return fn.__qualname__.removesuffix(".__init__")


def _names_literal_alias(ann: str, fn: Callable[..., Any]) -> bool:
    """Whether the annotation string mentions a module-level alias that is a Literal union."""
    for word in ann.replace("|", " ").replace("[", " ").replace("]", " ").split():
        alias = _namespace(fn).get(word.strip(", "))
        if alias is not None and literal_choices(alias)[0]:
            return True
    return False


def check_literals(fn: Callable[..., Any], bound: inspect.BoundArguments) -> None:
    """Validate every Literal-typed argument of a call of `fn`."""
    params = _literal_params_cached(fn)
    for name, (values, others) in params.items():
        if name not in bound.arguments:
            continue
        value = bound.arguments[name]
        if any(_same(value, v) for v in values) or any(_accepts(value, o) for o in others):
            continue
        also = " or ".join(_type_name(o) for o in others)
        one_of(name, value, values, where=_where(fn), also=also)


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "None"
    if annotation is bool:
        return "True/False"
    name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
    return f"an {name}" if name[0].lower() in "aeiou" else f"a {name}"


@functools.cache
def _literal_params_cached(fn: Callable[..., Any]) -> dict[str, tuple[list[Any], list[Any]]]:
    return _literal_params(fn)


def _count(minimum: int) -> Callable[[str, Any], str | None]:
    def check(arg: str, v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            return f"{arg} must be an integer >= {minimum}, got {v!r}"
        if v < minimum:
            return f"{arg} must be at least {minimum}, got {v}"
        return None

    return check


def _real(
    lo: float, hi: float = math.inf, open_lo: bool = False
) -> Callable[[str, Any], str | None]:
    def check(arg: str, v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            return f"{arg} must be a number, got {v!r}"
        v = float(v)
        if not math.isfinite(v):
            return f"{arg} must be a finite number, got {v}"
        if v < lo or (open_lo and v == lo) or v > hi:
            if hi == math.inf:
                return f"{arg} must be {'>' if open_lo else '>='} {lo:g}, got {v}"
            low = "(" if open_lo else "["
            return f"{arg} must be in {low}{lo:g}, {hi:g}], got {v}"
        return None

    return check


def _integer(arg: str, v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        return f"{arg} must be an integer, got {v!r}"
    return None


def _unit_interval(arg: str, v: Any) -> str | None:
    bad = _real(0.0, 1.0, open_lo=True)(arg, v)
    if bad is None and v == 1.0:
        return f"{arg} must be in (0, 1), got {v}"
    return bad


#: Parameter names with one meaning across the public API, and what each must satisfy.
#: None is always allowed where the signature allows it (it means "the default").
CONVENTIONS: dict[str, Callable[[str, Any], str | None]] = {
    "n": _count(1),
    "n_boot": _count(1),
    "batch_size": _count(1),
    "k": _count(1),
    "projection_dim": _count(1),
    "max_new_tokens": _count(1),
    "n_restarts": _count(1),
    "chunk": _count(1),
    "seed": _integer,
    "test_size": _unit_interval,
    "temperature": _real(0.0),
    "scale": _real(0.0),
    "rtol": _real(0.0),
    "tol": _real(0.0),
    "lr": _real(0.0, open_lo=True),
}


def _class_params(fn: Callable[..., Any]) -> dict[str, tuple[type, ...]]:
    """Parameters annotated with interp classes only (``task: Task``, ``reference: Task |
    None``): name -> the accepted classes (NoneType included when None is allowed)."""
    out: dict[str, tuple[type, ...]] = {}
    namespace = _namespace(fn)
    for name, param in inspect.signature(fn).parameters.items():
        ann = param.annotation
        if not isinstance(ann, str):
            continue
        accepted: list[type] = []
        for part in (x.strip() for x in ann.split("|")):
            obj = type(None) if part == "None" else namespace.get(part)
            if obj is type(None) or (isinstance(obj, type) and obj.__name__ in _HOW_TO_MAKE):
                accepted.append(obj)  # type: ignore[arg-type]
            else:
                break
        else:
            if any(a is not type(None) for a in accepted):
                out[name] = tuple(accepted)
    return out


@functools.cache
def _class_params_cached(fn: Callable[..., Any]) -> dict[str, tuple[type, ...]]:
    return _class_params(fn)


#: The interp classes nothing else can stand in for, and how to build one, for the message.
#: (A `Model` argument is not here: load_model converts TransformerLens objects and names.)
_HOW_TO_MAKE = {
    "Task": "a Task: e.g. interp.tasks.ioi(model, n=64) or Task.from_prompts(model, [...])",
}


def check_classes(fn: Callable[..., Any], bound: inspect.BoundArguments) -> None:
    """Refuse a wrong object where an interp class is the only thing that works."""
    for name, classes in _class_params_cached(fn).items():
        if name not in bound.arguments:
            continue
        value = bound.arguments[name]
        if isinstance(value, classes):
            continue
        cls = next(c for c in classes if c is not type(None))
        want = _HOW_TO_MAKE[cls.__name__]
        raise InterpError(f"{_where(fn)}: {name} must be {want}; got {type(value).__name__}.")


def check_conventions(fn: Callable[..., Any], bound: inspect.BoundArguments) -> None:
    """Validate the arguments of a call of `fn` named in `CONVENTIONS`."""
    for name, value in bound.arguments.items():
        rule = CONVENTIONS.get(name)
        if rule is None or value is None:
            continue
        problem = rule(name, value)
        if problem:
            raise InterpError(f"{_where(fn)}: {problem}.")


def checked(fn: F) -> F:
    """Decorator: refuse bad options (Literal values, `CONVENTIONS`) and tensors whose shapes
    break the jaxtyping annotations (interp.shapes) before the body runs.

    On a class (a dataclass of options such as GaussianNoise) it checks the constructor.
    """
    if isinstance(fn, type):
        fn.__init__ = checked(fn.__init__)  # type: ignore[misc]
        return fn
    sig = inspect.signature(fn)
    shaped = bool(shape_params(fn))

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            bound = sig.bind(*args, **kwargs)
        except TypeError:
            return fn(*args, **kwargs)  # let Python raise its own message for a wrong call
        check_literals(fn, bound)
        check_conventions(fn, bound)
        check_classes(fn, bound)
        if shaped:
            check_shapes(fn, bound, _where(fn))
        with recording(fn, bound):  # the result's metadata says how to reproduce it
            return fn(*args, **kwargs)

    wrapper.__interp_checked__ = True  # type: ignore[attr-defined]
    return typing.cast(F, wrapper)
