"""The dtypes a cache may hold, by name: the one table between user input, manifests and torch.

A manifest is data from disk, so its dtype names are looked up here and never with
``getattr(torch, name)`` (which would hand back any torch attribute, ``"__class__"`` included).
"""

from __future__ import annotations

from typing import Any

import torch

from interp.dtypes import STORAGE_DTYPES, dtype_name, float_dtype_name
from interp.errors import InterpError

__all__ = ["STORAGE_DTYPES", "STORED_DTYPES", "dtype_name", "storage_dtype", "stored_dtype"]

# What a store may contain: the storage types plus the integer bookkeeping (tokens, positions).
STORED_DTYPES: dict[str, torch.dtype] = {
    **STORAGE_DTYPES,
    "int64": torch.int64,
    "int32": torch.int32,
}


def storage_dtype(value: Any) -> torch.dtype | None:
    """Validate `dtype=` of `interp.cache`: None, a floating torch dtype or its name.

    Raises an InterpError listing the accepted values for anything else (``torch.int8``,
    ``"float8"``), so nothing is computed or written with a dtype that cannot be stored.
    """
    if value is None:
        return None
    name = float_dtype_name(value)
    if name in STORAGE_DTYPES:
        return STORAGE_DTYPES[name]
    accepted = ", ".join(f"torch.{n}" for n in STORAGE_DTYPES)
    raise InterpError(
        f"dtype={value!r} cannot store activations: use None (the model's dtype) or one of "
        f"{accepted}, or their names ('float16', 'fp16', 'half', 'bfloat16', ...)."
    )


def stored_dtype(name: Any) -> torch.dtype | None:
    """The torch dtype of a name read from a manifest, or None if it is not on the allow-list."""
    return STORED_DTYPES.get(name) if isinstance(name, str) else None
