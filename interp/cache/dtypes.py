"""The dtypes a cache may hold, by name: the one table between user input, manifests and torch.

A manifest is data from disk, so its dtype names are looked up here and never with
``getattr(torch, name)`` (which would hand back any torch attribute, ``"__class__"`` included).
"""

from __future__ import annotations

from typing import Any

import torch

from interp.errors import InterpError

# What `interp.cache(..., dtype=...)` may store activations as: floating types only (an integer
# type would truncate activations, and safetensors has no code for some of them).
STORAGE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}
# Other spellings users write for the same types.
_ALIASES = {"fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16"}
_ALIASES |= {"bf16": "bfloat16", "fp64": "float64", "double": "float64"}
# What a store may contain: the storage types plus the integer bookkeeping (tokens, positions).
STORED_DTYPES: dict[str, torch.dtype] = {
    **STORAGE_DTYPES,
    "int64": torch.int64,
    "int32": torch.int32,
}


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.float16`` -> ``"float16"``."""
    return str(dtype).removeprefix("torch.")


def storage_dtype(value: Any) -> torch.dtype | None:
    """Validate `dtype=` of `interp.cache`: None, a floating torch dtype or its name.

    Raises an InterpError listing the accepted values for anything else (``torch.int8``,
    ``"float8"``), so nothing is computed or written with a dtype that cannot be stored.
    """
    if value is None:
        return None
    if isinstance(value, torch.dtype):
        name = dtype_name(value)
    elif isinstance(value, str):
        key = value.strip().lower().removeprefix("torch.")
        name = _ALIASES.get(key, key)
    else:
        name = ""
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
