"""Renamed keywords keep working for one release, with a DeprecationWarning naming the new spelling.

    @renamed(by=("over", {"head": "heads", "layer": "layers"}))
    @checked
    def direct_logit(model, task, over="heads"): ...

``direct_logit(m, t, by="head")`` then runs as ``direct_logit(m, t, over="heads")`` and warns
(once per call site, under Python's default warning filters). Put `renamed` above `checked`,
so the checks see (and name) the new spelling.
"""

from __future__ import annotations

import functools
import typing
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from interp.errors import InterpError

F = TypeVar("F", bound=Callable[..., Any])

#: The release that drops the old spellings.
REMOVED_IN = "0.3"

Rename = str | tuple[str, Mapping[Any, Any] | Callable[[Any], Any]]


def warn_renamed(old: str, new: str, where: str, stacklevel: int = 3) -> None:
    """Warn that `old` is the deprecated spelling of `new` (any kind of name)."""
    warnings.warn(
        f"{where}: {old} is deprecated and will be removed in interp {REMOVED_IN}; write {new}.",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed(**renames: Rename) -> Callable[[F], F]:
    """Decorator: accept old keyword names (and, with a mapping, their old values).

    Each keyword maps an old name to the new name, or to ``(new name, {old value: new value})``
    when the values were renamed too (values missing from the mapping pass through unchanged),
    or to ``(new name, function)`` when the old value converts (``alpha=0.05`` ->
    ``confidence=0.95``).
    """

    def wrap(fn: F) -> F:
        where = fn.__qualname__

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old in renames.keys() & kwargs.keys():
                spec = renames[old]
                new, values = (spec, {}) if isinstance(spec, str) else spec
                if new in kwargs:
                    raise InterpError(f"{where}: give {new}= only ({old}= is its old name).")
                given = kwargs.pop(old)
                if callable(values):
                    value = values(given)
                else:
                    value = values.get(given, given) if _hashable(given) else given
                kwargs[new] = value
                if value is given:
                    warn_renamed(f"{old}=", f"{new}=", where)
                else:
                    warn_renamed(f"{old}={given!r}", f"{new}={value!r}", where)
            return fn(*args, **kwargs)

        return typing.cast(F, wrapper)

    return wrap


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
